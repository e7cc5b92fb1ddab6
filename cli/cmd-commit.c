/* cmd-commit.c — ovctl commit CLIENT: publish base + the client's overlay as
 * the image's new head generation and move the client onto it.
 *
 * Offline through the store (ov_store_client_commit). When ovgated serves
 * the client (it holds the overlay's writer lock), ovgated is asked to
 * commit online ("commit" on the control socket): it quiesces the client,
 * commits and lets it continue on the new generation.
 */
#include <inttypes.h>
#include <stdio.h>

#include <glib.h>
#include <json-glib/json-glib.h>

#include "ovctl.h"

/* A commit copies a whole image; allow it time, but never hang forever. */
#define COMMIT_TIMEOUT_S 3600

static bool
commit_online(struct ovctl *ctx, const char *name, uint32_t *gen, GError **error)
{
    JsonBuilder *b = json_builder_new();
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "cmd");
    json_builder_add_string_value(b, "commit");
    json_builder_set_member_name(b, "client");
    json_builder_add_string_value(b, name);
    json_builder_end_object(b);
    JsonObject *answer = ovctl_ctl_request(ctx, b, COMMIT_TIMEOUT_S, error);
    if (!answer) {
        g_prefix_error(error, "client %s is connected and ovgated did not commit it: ", name);
        return false;
    }
    gint64 g = json_object_get_int_member_with_default(answer, "generation", 0);
    json_object_unref(answer);
    if (g <= 0 || g > G_MAXUINT32) {
        g_set_error(error, OVCTL_ERROR, OVCTL_ERROR_DAEMON,
                    "ovgated answered the commit of %s without a generation number", name);
        return false;
    }
    *gen = (uint32_t)g;
    return true;
}

int
ovctl_cmd_commit(struct ovctl *ctx, int argc, char **argv)
{
    g_autoptr(GError) error = NULL;
    if (!ovctl_parse(ctx, NULL, true, &argc, &argv, 1, "CLIENT",
                     "Publish a client's disk as its image's new head generation.", &error))
        return ovctl_fail(error);
    const char *name = argv[1];
    struct ov_store *store = ovctl_open_store(ctx, false, &error);
    if (!store)
        return ovctl_fail(error);
    uint32_t gen = 0;
    bool online = false;
    bool ok = ov_store_client_commit(store, name, NULL, &gen, &error);
    if (!ok && g_error_matches(error, OV_ERROR, OV_ERROR_LOCKED)) {
        g_clear_error(&error);
        online = true;
        ok = commit_online(ctx, name, &gen, &error);
    }
    struct ov_client_info *c = ok ? ov_store_client_get(store, name, &error) : NULL;
    ov_store_close(store);
    if (!c)
        return ovctl_fail(error);
    if (ctx->json) {
        JsonBuilder *b = json_builder_new();
        json_builder_begin_object(b);
        json_builder_set_member_name(b, "client");
        json_builder_add_string_value(b, name);
        json_builder_set_member_name(b, "image");
        json_builder_add_string_value(b, c->image);
        json_builder_set_member_name(b, "generation");
        json_builder_add_int_value(b, gen);
        json_builder_set_member_name(b, "online");
        json_builder_add_boolean_value(b, online);
        json_builder_end_object(b);
        ovctl_json_print(b);
    } else {
        printf("committed client %s%s: image %s generation %" PRIu32 "\n", name,
               online ? " (online, through ovgated)" : "", c->image, gen);
    }
    ov_client_info_free(c);
    return OVCTL_EXIT_OK;
}
