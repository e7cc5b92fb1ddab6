/* cmd-status.c — ovctl status: the running daemon's sessions, asked over
 * the control socket ("status", proxy/ctl/ctl-proto.h). */
#include <inttypes.h>
#include <stdio.h>

#include <glib.h>
#include <json-glib/json-glib.h>

#include "ovctl.h"

#define STATUS_TIMEOUT_S 30

static const char *
str_member(JsonObject *o, const char *name)
{
    return json_object_get_string_member_with_default(o, name, "-");
}

static char *
int_member(JsonObject *o, const char *name)
{
    return g_strdup_printf("%" G_GINT64_FORMAT,
                           json_object_get_int_member_with_default(o, name, 0));
}

static char *
bytes_member(JsonObject *o, const char *name)
{
    gint64 v = json_object_get_int_member_with_default(o, name, 0);
    return ovctl_format_size(v > 0 ? (uint64_t)v : 0);
}

static void
print_session(struct ovctl_table *t, JsonObject *s)
{
    g_autofree char *gen = int_member(s, "generation");
    g_autofree char *since =
        ovctl_format_time(json_object_get_int_member_with_default(s, "since", 0));
    g_autofree char *rops = int_member(s, "read_ops");
    g_autofree char *rbytes = bytes_member(s, "read_bytes");
    g_autofree char *wops = int_member(s, "write_ops");
    g_autofree char *wbytes = bytes_member(s, "write_bytes");
    g_autofree char *flushes = int_member(s, "flush_ops");
    g_autofree char *errors = int_member(s, "errors");
    ovctl_table_add(t, str_member(s, "client"), str_member(s, "image"), gen,
                    str_member(s, "protocol"), str_member(s, "peer"), since, rops, rbytes, wops,
                    wbytes, flushes, errors, NULL);
}

int
ovctl_cmd_status(struct ovctl *ctx, int argc, char **argv)
{
    g_autoptr(GError) error = NULL;
    if (!ovctl_parse(ctx, NULL, true, &argc, &argv, 0, "",
                     "Show the running ovgated's client sessions.", &error))
        return ovctl_fail(error);
    JsonBuilder *b = json_builder_new();
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "cmd");
    json_builder_add_string_value(b, "status");
    json_builder_end_object(b);
    JsonObject *answer = ovctl_ctl_request(ctx, b, STATUS_TIMEOUT_S, &error);
    if (!answer)
        return ovctl_fail(error);
    JsonArray *sessions = json_object_has_member(answer, "sessions")
                              ? json_object_get_array_member(answer, "sessions")
                              : NULL;
    if (ctx->json) {
        JsonBuilder *out = json_builder_new();
        json_builder_begin_object(out);
        json_builder_set_member_name(out, "sessions");
        if (sessions) {
            json_builder_add_value(out, json_node_copy(json_object_get_member(answer, "sessions")));
        } else {
            json_builder_begin_array(out);
            json_builder_end_array(out);
        }
        json_builder_end_object(out);
        ovctl_json_print(out);
        json_object_unref(answer);
        return OVCTL_EXIT_OK;
    }
    guint n = sessions ? json_array_get_length(sessions) : 0;
    const char *header[] = {"CLIENT", "IMAGE",  "GEN",     "PROTO",   "PEER",   "SINCE", "READS",
                            "READ",   "WRITES", "WRITTEN", "FLUSHES", "ERRORS", NULL};
    struct ovctl_table *t = ovctl_table_new(header);
    for (guint i = 0; i < n; i++) {
        JsonNode *node = json_array_get_element(sessions, i);
        if (JSON_NODE_HOLDS_OBJECT(node))
            print_session(t, json_node_get_object(node));
    }
    ovctl_table_print(t);
    printf("%u session%s\n", n, n == 1 ? "" : "s");
    json_object_unref(answer);
    return OVCTL_EXIT_OK;
}
