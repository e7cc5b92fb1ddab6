/* cmd-reset.c — ovctl reset CLIENT | --all [--force].
 *
 * Offline through the store: the overlay is replaced atomically by an empty
 * one on the image's head generation. A client that ovgated is serving holds
 * its overlay's writer lock; then without --force the reset is refused, and
 * with --force ovgated is asked (control socket, "reset" with force) to end
 * the session and reset the overlay itself.
 */
#include <inttypes.h>
#include <stdio.h>

#include <glib.h>
#include <json-glib/json-glib.h>

#include "ovctl.h"

#define RESET_TIMEOUT_S 120

static int
reset_online(struct ovctl *ctx, struct ov_store *store, const char *name)
{
    g_autoptr(GError) error = NULL;
    JsonBuilder *b = json_builder_new();
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "cmd");
    json_builder_add_string_value(b, "reset");
    json_builder_set_member_name(b, "client");
    json_builder_add_string_value(b, name);
    json_builder_set_member_name(b, "force");
    json_builder_add_boolean_value(b, true);
    json_builder_end_object(b);
    JsonObject *answer = ovctl_ctl_request(ctx, b, RESET_TIMEOUT_S, &error);
    if (!answer) {
        g_prefix_error(&error, "client %s is connected and could not be reset: ", name);
        return ovctl_fail(error);
    }
    json_object_unref(answer);
    struct ov_client_info *c = ov_store_client_get(store, name, NULL);
    if (c)
        printf("reset client %s: ovgated ended its session; empty overlay on image %s "
               "generation %" PRIu32 "\n",
               name, c->image, c->generation);
    else
        printf("reset client %s: ovgated ended its session and reset it\n", name);
    ov_client_info_free(c);
    return OVCTL_EXIT_OK;
}

static int
reset_one(struct ovctl *ctx, struct ov_store *store, const char *name, bool force)
{
    g_autoptr(GError) error = NULL;
    if (ov_store_client_reset(store, name, false, &error)) {
        struct ov_client_info *c = ov_store_client_get(store, name, NULL);
        printf("reset client %s: empty overlay on image %s generation %" PRIu32 "\n", name,
               c ? c->image : "?", c ? c->generation : 0);
        ov_client_info_free(c);
        return OVCTL_EXIT_OK;
    }
    if (!g_error_matches(error, OV_ERROR, OV_ERROR_LOCKED))
        return ovctl_fail(error);
    if (force)
        return reset_online(ctx, store, name);
    g_clear_error(&error);
    g_set_error(&error, OV_ERROR, OV_ERROR_LOCKED,
                "client %s is connected (ovgated holds its overlay); use --force to end its "
                "session and reset",
                name);
    return ovctl_fail(error);
}

int
ovctl_cmd_reset(struct ovctl *ctx, int argc, char **argv)
{
    g_autoptr(GError) error = NULL;
    gboolean all = false, force = false;
    const GOptionEntry entries[] = {
        {"all", 0, 0, G_OPTION_ARG_NONE, &all, "Reset every client", NULL},
        {"force", 0, 0, G_OPTION_ARG_NONE, &force,
         "End a connected client's session (through ovgated) and reset it", NULL},
        {NULL},
    };
    if (!ovctl_parse(ctx, entries, false, &argc, &argv, -1, "CLIENT | --all",
                     "Discard a client's overlay: back to the image's head generation.", &error))
        return ovctl_fail(error);
    if (all == (argc == 2) || argc > 2) {
        g_set_error(&error, OVCTL_ERROR, OVCTL_ERROR_USAGE,
                    "ovctl reset: give one CLIENT or --all");
        return ovctl_fail(error);
    }
    struct ov_store *store = ovctl_open_store(ctx, false, &error);
    if (!store)
        return ovctl_fail(error);
    int rc = OVCTL_EXIT_OK;
    if (!all) {
        rc = reset_one(ctx, store, argv[1], force);
    } else {
        g_autoptr(GPtrArray) clients = ov_store_client_list(store, &error);
        if (!clients)
            rc = ovctl_fail(error);
        else if (clients->len == 0)
            printf("no clients to reset\n");
        for (guint i = 0; clients && i < clients->len; i++) {
            struct ov_client_info *c = clients->pdata[i];
            int one = reset_one(ctx, store, c->name, force);
            if (rc == OVCTL_EXIT_OK)
                rc = one; /* carry on with the others; report the first failure */
        }
    }
    ov_store_close(store);
    return rc;
}
