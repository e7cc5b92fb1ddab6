/* cmd-image.c — ovctl image create|list|info|set|remove. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <glib.h>
#include <json-glib/json-glib.h>

#include "ovctl.h"

int
ovctl_cmd_image_create(struct ovctl *ctx, int argc, char **argv)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *from = NULL, *size_text = NULL;
    gboolean auto_enroll = false;
    const GOptionEntry entries[] = {
        {"from", 0, 0, G_OPTION_ARG_FILENAME, &from, "Generation 1 is a copy of this raw file",
         "RAW_FILE"},
        {"size", 0, 0, G_OPTION_ARG_STRING, &size_text,
         "Generation 1 is an empty disk of SIZE (K/M/G/T suffixes, multiple of 512)", "SIZE"},
        {"auto-enroll", 0, 0, G_OPTION_ARG_NONE, &auto_enroll,
         "Unknown initiators become clients on first login", NULL},
        {NULL},
    };
    if (!ovctl_parse(ctx, entries, false, &argc, &argv, 1, "NAME",
                     "Create an image with generation 1 from a raw file or empty.", &error))
        return ovctl_fail(error);
    const char *name = argv[1];
    uint64_t size = 0;
    if (!!from == !!size_text) {
        g_set_error(&error, OVCTL_ERROR, OVCTL_ERROR_USAGE,
                    "ovctl image create: give exactly one of --from RAW_FILE and --size SIZE");
        return ovctl_fail(error);
    }
    if (size_text && !ovctl_parse_size(size_text, &size, &error))
        return ovctl_fail(error);
    if (!ov_store_name_valid(name)) {
        g_set_error(&error, OV_ERROR, OV_ERROR_INVALID,
                    "invalid image name '%s' (use 1-63 of A-Z a-z 0-9 . _ -, starting with a "
                    "letter or digit)",
                    name);
        return ovctl_fail(error);
    }
    struct ov_store *store = ovctl_open_store(ctx, false, &error);
    if (!store)
        return ovctl_fail(error);
    bool ok = ov_store_image_create(store, name, from, size, auto_enroll, &error);
    struct ov_image_info *info = ok ? ov_store_image_get(store, name, &error) : NULL;
    int rc = OVCTL_EXIT_OK;
    if (info) {
        g_autofree char *human = ovctl_format_size(info->size);
        printf("created image %s: generation 1, %s (%" PRIu64 " bytes)%s\n", name, human,
               info->size, auto_enroll ? ", auto-enroll on" : "");
    } else {
        rc = ovctl_fail(error);
    }
    ov_image_info_free(info);
    ov_store_close(store);
    return rc;
}

/* Number of clients per image (name -> count) or per "image/gen". */
static GHashTable *
count_clients(GPtrArray *clients, bool per_generation)
{
    GHashTable *h = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    for (guint i = 0; clients && i < clients->len; i++) {
        struct ov_client_info *c = clients->pdata[i];
        char *key = per_generation ? g_strdup_printf("%s/%" PRIu32, c->image, c->generation)
                                   : g_strdup(c->image);
        guint n = GPOINTER_TO_UINT(g_hash_table_lookup(h, key));
        g_hash_table_replace(h, key, GUINT_TO_POINTER(n + 1));
    }
    return h;
}

int
ovctl_cmd_image_list(struct ovctl *ctx, int argc, char **argv)
{
    g_autoptr(GError) error = NULL;
    if (!ovctl_parse(ctx, NULL, true, &argc, &argv, 0, "", "List the images.", &error))
        return ovctl_fail(error);
    struct ov_store *store = ovctl_open_store(ctx, false, &error);
    if (!store)
        return ovctl_fail(error);
    g_autoptr(GPtrArray) images = ov_store_image_list(store, &error);
    g_autoptr(GPtrArray) clients = images ? ov_store_client_list(store, &error) : NULL;
    ov_store_close(store);
    if (!images || !clients)
        return ovctl_fail(error);
    g_autoptr(GHashTable) counts = count_clients(clients, false);
    if (ctx->json) {
        JsonBuilder *b = json_builder_new();
        json_builder_begin_array(b);
        for (guint i = 0; i < images->len; i++) {
            struct ov_image_info *img = images->pdata[i];
            json_builder_begin_object(b);
            json_builder_set_member_name(b, "name");
            json_builder_add_string_value(b, img->name);
            json_builder_set_member_name(b, "head");
            json_builder_add_int_value(b, img->head);
            json_builder_set_member_name(b, "size");
            json_builder_add_int_value(b, (gint64)img->size);
            json_builder_set_member_name(b, "generations");
            json_builder_add_int_value(b, img->generations->len);
            json_builder_set_member_name(b, "clients");
            json_builder_add_int_value(b, GPOINTER_TO_UINT(g_hash_table_lookup(counts, img->name)));
            json_builder_set_member_name(b, "auto_enroll");
            json_builder_add_boolean_value(b, img->auto_enroll);
            json_builder_end_object(b);
        }
        json_builder_end_array(b);
        ovctl_json_print(b);
        return OVCTL_EXIT_OK;
    }
    const char *header[] = {"NAME", "HEAD", "SIZE", "GENERATIONS", "CLIENTS", "AUTO-ENROLL", NULL};
    struct ovctl_table *t = ovctl_table_new(header);
    for (guint i = 0; i < images->len; i++) {
        struct ov_image_info *img = images->pdata[i];
        g_autofree char *head = g_strdup_printf("%" PRIu32, img->head);
        g_autofree char *size = ovctl_format_size(img->size);
        g_autofree char *gens = g_strdup_printf("%u", img->generations->len);
        g_autofree char *n =
            g_strdup_printf("%u", GPOINTER_TO_UINT(g_hash_table_lookup(counts, img->name)));
        ovctl_table_add(t, img->name, head, size, gens, n, img->auto_enroll ? "on" : "off", NULL);
    }
    ovctl_table_print(t);
    return OVCTL_EXIT_OK;
}

/* Names of the clients of image sitting on generation gen, ", "-joined. */
static char *
clients_on(GPtrArray *clients, const char *image, uint32_t gen)
{
    GString *s = g_string_new(NULL);
    for (guint i = 0; i < clients->len; i++) {
        struct ov_client_info *c = clients->pdata[i];
        if (!strcmp(c->image, image) && c->generation == gen)
            g_string_append_printf(s, "%s%s", s->len ? ", " : "", c->name);
    }
    return g_string_free(s, false);
}

static void
image_info_json(struct ov_image_info *img, GPtrArray *clients)
{
    JsonBuilder *b = json_builder_new();
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "name");
    json_builder_add_string_value(b, img->name);
    json_builder_set_member_name(b, "head");
    json_builder_add_int_value(b, img->head);
    json_builder_set_member_name(b, "size");
    json_builder_add_int_value(b, (gint64)img->size);
    json_builder_set_member_name(b, "auto_enroll");
    json_builder_add_boolean_value(b, img->auto_enroll);
    json_builder_set_member_name(b, "generations");
    json_builder_begin_array(b);
    for (guint i = 0; i < img->generations->len; i++) {
        struct ov_generation_info *g = img->generations->pdata[i];
        char uuid[37];
        ov_uuid_format(g->uuid, uuid);
        json_builder_begin_object(b);
        json_builder_set_member_name(b, "generation");
        json_builder_add_int_value(b, g->generation);
        json_builder_set_member_name(b, "size");
        json_builder_add_int_value(b, (gint64)g->size);
        json_builder_set_member_name(b, "file_bytes");
        json_builder_add_int_value(b, (gint64)g->file_bytes);
        json_builder_set_member_name(b, "uuid");
        json_builder_add_string_value(b, uuid);
        json_builder_set_member_name(b, "created");
        json_builder_add_int_value(b, g->created);
        json_builder_set_member_name(b, "source");
        json_builder_add_string_value(b, g->source);
        json_builder_set_member_name(b, "path");
        json_builder_add_string_value(b, g->path);
        json_builder_set_member_name(b, "clients");
        json_builder_begin_array(b);
        for (guint j = 0; j < clients->len; j++) {
            struct ov_client_info *c = clients->pdata[j];
            if (!strcmp(c->image, img->name) && c->generation == g->generation)
                json_builder_add_string_value(b, c->name);
        }
        json_builder_end_array(b);
        json_builder_end_object(b);
    }
    json_builder_end_array(b);
    json_builder_end_object(b);
    ovctl_json_print(b);
}

int
ovctl_cmd_image_info(struct ovctl *ctx, int argc, char **argv)
{
    g_autoptr(GError) error = NULL;
    if (!ovctl_parse(ctx, NULL, true, &argc, &argv, 1, "NAME",
                     "Show an image, its generations and which clients sit on each.", &error))
        return ovctl_fail(error);
    struct ov_store *store = ovctl_open_store(ctx, false, &error);
    if (!store)
        return ovctl_fail(error);
    struct ov_image_info *img = ov_store_image_get(store, argv[1], &error);
    g_autoptr(GPtrArray) clients = img ? ov_store_client_list(store, &error) : NULL;
    ov_store_close(store);
    if (!img || !clients) {
        ov_image_info_free(img);
        return ovctl_fail(error);
    }
    if (ctx->json) {
        image_info_json(img, clients);
        ov_image_info_free(img);
        return OVCTL_EXIT_OK;
    }
    g_autofree char *size = ovctl_format_size(img->size);
    printf("image:        %s\n", img->name);
    printf("head:         %" PRIu32 "\n", img->head);
    printf("size:         %s (%" PRIu64 " bytes)\n", size, img->size);
    printf("auto-enroll:  %s\n", img->auto_enroll ? "on" : "off");
    printf("generations:\n");
    for (guint i = 0; i < img->generations->len; i++) {
        struct ov_generation_info *g = img->generations->pdata[i];
        char uuid[37];
        ov_uuid_format(g->uuid, uuid);
        g_autofree char *gen_size = ovctl_format_size(g->size);
        g_autofree char *disk = ovctl_format_size(g->file_bytes);
        g_autofree char *when = ovctl_format_time(g->created);
        g_autofree char *on = clients_on(clients, img->name, g->generation);
        printf("  generation %" PRIu32 "%s\n", g->generation,
               g->generation == img->head ? " (head)" : "");
        printf("    size:     %s (%" PRIu64 " bytes)\n", gen_size, g->size);
        printf("    on disk:  %s\n", disk);
        printf("    uuid:     %s\n", uuid);
        printf("    created:  %s\n", when);
        printf("    source:   %s\n", g->source);
        printf("    clients:  %s\n", *on ? on : "-");
    }
    ov_image_info_free(img);
    return OVCTL_EXIT_OK;
}

int
ovctl_cmd_image_set(struct ovctl *ctx, int argc, char **argv)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *ae = NULL;
    const GOptionEntry entries[] = {
        {"auto-enroll", 0, 0, G_OPTION_ARG_STRING, &ae,
         "Unknown initiators become clients on first login", "on|off"},
        {NULL},
    };
    if (!ovctl_parse(ctx, entries, false, &argc, &argv, 1, "NAME", "Change an image's settings.",
                     &error))
        return ovctl_fail(error);
    bool enabled = false;
    if (!ae) {
        g_set_error(&error, OVCTL_ERROR, OVCTL_ERROR_USAGE,
                    "ovctl image set: nothing to set (use --auto-enroll=on|off)");
        return ovctl_fail(error);
    }
    if (!ovctl_parse_bool(ae, &enabled, &error)) {
        g_prefix_error(&error, "--auto-enroll: ");
        return ovctl_fail(error);
    }
    struct ov_store *store = ovctl_open_store(ctx, false, &error);
    if (!store)
        return ovctl_fail(error);
    bool ok = ov_store_image_set_auto_enroll(store, argv[1], enabled, &error);
    ov_store_close(store);
    if (!ok)
        return ovctl_fail(error);
    printf("image %s: auto-enroll %s\n", argv[1], enabled ? "on" : "off");
    return OVCTL_EXIT_OK;
}

int
ovctl_cmd_image_remove(struct ovctl *ctx, int argc, char **argv)
{
    g_autoptr(GError) error = NULL;
    if (!ovctl_parse(ctx, NULL, false, &argc, &argv, 1, "NAME",
                     "Remove an image with all its generations (it must have no clients).", &error))
        return ovctl_fail(error);
    struct ov_store *store = ovctl_open_store(ctx, false, &error);
    if (!store)
        return ovctl_fail(error);
    bool ok = ov_store_image_remove(store, argv[1], &error);
    ov_store_close(store);
    if (!ok)
        return ovctl_fail(error);
    printf("removed image %s\n", argv[1]);
    return OVCTL_EXIT_OK;
}
