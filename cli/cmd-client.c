/* cmd-client.c — ovctl client add|list|info|remove and ovctl init. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <glib.h>
#include <json-glib/json-glib.h>

#include "ovctl.h"

int
ovctl_cmd_init(struct ovctl *ctx, int argc, char **argv)
{
    g_autoptr(GError) error = NULL;
    if (!ovctl_parse(ctx, NULL, false, &argc, &argv, 0, "",
                     "Create the image store (an absent or empty directory).", &error))
        return ovctl_fail(error);
    struct ov_store *existing = ov_store_open(ctx->store_dir, false, NULL);
    if (existing) {
        printf("%s is already an ovgate store\n", ov_store_get_dir(existing));
        ov_store_close(existing);
        return OVCTL_EXIT_OK;
    }
    struct ov_store *store = ovctl_open_store(ctx, true, &error);
    if (!store)
        return ovctl_fail(error);
    printf("created ovgate store %s\n", ov_store_get_dir(store));
    ov_store_close(store);
    return OVCTL_EXIT_OK;
}

int
ovctl_cmd_client_add(struct ovctl *ctx, int argc, char **argv)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *image = NULL;
    g_auto(GStrv) iqns = NULL;
    g_auto(GStrv) macs = NULL;
    const GOptionEntry entries[] = {
        {"image", 0, 0, G_OPTION_ARG_STRING, &image, "The client's image", "NAME"},
        {"iqn", 0, 0, G_OPTION_ARG_STRING_ARRAY, &iqns,
         "iSCSI initiator name (iqn.…, eui.…, naa.…); repeatable", "IQN"},
        {"mac", 0, 0, G_OPTION_ARG_STRING_ARRAY, &macs, "MAC address (boot config); repeatable",
         "MAC"},
        {NULL},
    };
    if (!ovctl_parse(ctx, entries, false, &argc, &argv, 1, "CLIENT",
                     "Add a client on its image's head generation with an empty overlay.", &error))
        return ovctl_fail(error);
    if (!image) {
        g_set_error(&error, OVCTL_ERROR, OVCTL_ERROR_USAGE,
                    "ovctl client add: --image NAME is required");
        return ovctl_fail(error);
    }
    struct ov_store *store = ovctl_open_store(ctx, false, &error);
    if (!store)
        return ovctl_fail(error);
    struct ov_client_info *c = NULL;
    if (ov_store_client_add(store, argv[1], image, (const char *const *)iqns,
                            (const char *const *)macs, &error))
        c = ov_store_client_get(store, argv[1], &error);
    ov_store_close(store);
    if (!c)
        return ovctl_fail(error);
    printf("added client %s: image %s generation %" PRIu32 "\n", c->name, c->image, c->generation);
    ov_client_info_free(c);
    return OVCTL_EXIT_OK;
}

static char *
join_or_dash(char **list)
{
    return list && list[0] ? g_strjoinv(",", list) : g_strdup("-");
}

static void
json_add_strv(JsonBuilder *b, const char *member, char **list)
{
    json_builder_set_member_name(b, member);
    json_builder_begin_array(b);
    for (size_t i = 0; list && list[i]; i++)
        json_builder_add_string_value(b, list[i]);
    json_builder_end_array(b);
}

/* connected: 0 or 1, or -1 to leave it out */
static void
client_json(JsonBuilder *b, const struct ov_client_info *c, int connected)
{
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "name");
    json_builder_add_string_value(b, c->name);
    json_builder_set_member_name(b, "image");
    json_builder_add_string_value(b, c->image);
    json_builder_set_member_name(b, "generation");
    json_builder_add_int_value(b, c->generation);
    json_add_strv(b, "iqns", c->iqns);
    json_add_strv(b, "macs", c->macs);
    json_builder_set_member_name(b, "overlay");
    json_builder_add_string_value(b, c->overlay_path);
    json_builder_set_member_name(b, "created");
    json_builder_add_int_value(b, c->created);
    if (connected >= 0) {
        json_builder_set_member_name(b, "connected");
        json_builder_add_boolean_value(b, connected);
    }
    json_builder_end_object(b);
}

int
ovctl_cmd_client_list(struct ovctl *ctx, int argc, char **argv)
{
    g_autoptr(GError) error = NULL;
    if (!ovctl_parse(ctx, NULL, true, &argc, &argv, 0, "", "List the clients.", &error))
        return ovctl_fail(error);
    struct ov_store *store = ovctl_open_store(ctx, false, &error);
    if (!store)
        return ovctl_fail(error);
    g_autoptr(GPtrArray) clients = ov_store_client_list(store, &error);
    ov_store_close(store);
    if (!clients)
        return ovctl_fail(error);
    if (ctx->json) {
        JsonBuilder *b = json_builder_new();
        json_builder_begin_array(b);
        for (guint i = 0; i < clients->len; i++)
            client_json(b, clients->pdata[i], -1);
        json_builder_end_array(b);
        ovctl_json_print(b);
        return OVCTL_EXIT_OK;
    }
    const char *header[] = {"NAME", "IMAGE", "GEN", "IQNS", "MACS", NULL};
    struct ovctl_table *t = ovctl_table_new(header);
    for (guint i = 0; i < clients->len; i++) {
        struct ov_client_info *c = clients->pdata[i];
        g_autofree char *gen =
            c->generation ? g_strdup_printf("%" PRIu32, c->generation) : g_strdup("?");
        g_autofree char *iqns = join_or_dash(c->iqns);
        g_autofree char *macs = join_or_dash(c->macs);
        ovctl_table_add(t, c->name, c->image, gen, iqns, macs, NULL);
    }
    ovctl_table_print(t);
    return OVCTL_EXIT_OK;
}

int
ovctl_cmd_client_info(struct ovctl *ctx, int argc, char **argv)
{
    g_autoptr(GError) error = NULL;
    if (!ovctl_parse(ctx, NULL, true, &argc, &argv, 1, "CLIENT", "Show a client.", &error))
        return ovctl_fail(error);
    struct ov_store *store = ovctl_open_store(ctx, false, &error);
    if (!store)
        return ovctl_fail(error);
    struct ov_client_info *c = ov_store_client_get(store, argv[1], &error);
    struct ov_image_info *img = c ? ov_store_image_get(store, c->image, NULL) : NULL;
    bool connected = false;
    bool known = c && ov_store_client_connected(store, argv[1], &connected, NULL);
    ov_store_close(store);
    if (!c)
        return ovctl_fail(error);
    if (ctx->json) {
        JsonBuilder *b = json_builder_new();
        client_json(b, c, known ? connected : -1);
        ovctl_json_print(b);
    } else {
        g_autofree char *when = ovctl_format_time(c->created);
        printf("client:      %s\n", c->name);
        printf("image:       %s\n", c->image);
        if (c->generation == 0)
            printf("generation:  ? (the overlay's header cannot be read: run ovctl check)\n");
        else if (img && img->head != c->generation)
            printf("generation:  %" PRIu32 " (image head is %" PRIu32 ")\n", c->generation,
                   img->head);
        else
            printf("generation:  %" PRIu32 " (head)\n", c->generation);
        for (size_t i = 0; c->iqns[i]; i++)
            printf("iqn:         %s\n", c->iqns[i]);
        for (size_t i = 0; c->macs[i]; i++)
            printf("mac:         %s\n", c->macs[i]);
        printf("overlay:     %s\n", c->overlay_path);
        printf("connected:   %s\n", !known ? "?" : connected ? "yes" : "no");
        printf("created:     %s\n", when);
    }
    ov_image_info_free(img);
    ov_client_info_free(c);
    return OVCTL_EXIT_OK;
}

int
ovctl_cmd_client_remove(struct ovctl *ctx, int argc, char **argv)
{
    g_autoptr(GError) error = NULL;
    if (!ovctl_parse(ctx, NULL, false, &argc, &argv, 1, "CLIENT",
                     "Remove a client and its overlay (it must not be connected).", &error))
        return ovctl_fail(error);
    struct ov_store *store = ovctl_open_store(ctx, false, &error);
    if (!store)
        return ovctl_fail(error);
    bool ok = ov_store_client_remove(store, argv[1], &error);
    ov_store_close(store);
    if (!ok) {
        if (g_error_matches(error, OV_ERROR, OV_ERROR_LOCKED)) {
            g_clear_error(&error);
            g_set_error(&error, OV_ERROR, OV_ERROR_LOCKED,
                        "client %s is connected (ovgated holds its overlay); end its session "
                        "first (ovctl reset %s --force, or stop the machine)",
                        argv[1], argv[1]);
        }
        return ovctl_fail(error);
    }
    printf("removed client %s\n", argv[1]);
    return OVCTL_EXIT_OK;
}
