/* ctl-client.c — ovctl's side of ovgated's control socket: one JSON request
 * line, one JSON response line (proxy/ctl/ctl-proto.h, docs/control.md). */
#include <string.h>

#include <gio/gio.h>
#include <gio/gunixsocketaddress.h>
#include <glib.h>
#include <json-glib/json-glib.h>

#include "ctl-proto.h"
#include "ovctl.h"

char *
ovctl_ctl_socket_path(struct ovctl *ctx)
{
    if (ctx->socket_path)
        return g_strdup(ctx->socket_path);
    return g_build_filename(ctx->store_dir, CTL_SOCKET_NAME, NULL);
}

static char *
request_line(JsonBuilder *request)
{
    JsonNode *root = json_builder_get_root(request);
    JsonGenerator *gen = json_generator_new();
    json_generator_set_root(gen, root);
    char *text = json_generator_to_data(gen, NULL);
    g_object_unref(gen);
    json_node_unref(root);
    return text;
}

static JsonObject *
parse_response(const char *line, const char *path, GError **error)
{
    JsonParser *parser = json_parser_new();
    JsonObject *obj = NULL;
    g_autoptr(GError) local = NULL;
    if (!json_parser_load_from_data(parser, line, -1, &local)) {
        g_set_error(error, OVCTL_ERROR, OVCTL_ERROR_DAEMON,
                    "ovgated sent an unreadable answer on %s: %s", path, local->message);
    } else {
        JsonNode *root = json_parser_get_root(parser);
        if (root && JSON_NODE_HOLDS_OBJECT(root))
            obj = json_object_ref(json_node_get_object(root));
        else
            g_set_error(error, OVCTL_ERROR, OVCTL_ERROR_DAEMON,
                        "ovgated sent an answer that is not a JSON object on %s", path);
    }
    g_object_unref(parser);
    if (obj && !json_object_get_boolean_member_with_default(obj, "ok", false)) {
        const char *msg = json_object_get_string_member_with_default(obj, "error", "");
        g_set_error(error, OVCTL_ERROR, OVCTL_ERROR_DAEMON, "ovgated: %s",
                    *msg ? msg : "request refused (no reason given)");
        g_clear_pointer(&obj, json_object_unref);
    }
    return obj;
}

JsonObject *
ovctl_ctl_request(struct ovctl *ctx, JsonBuilder *request, unsigned timeout_s, GError **error)
{
    g_autofree char *path = ovctl_ctl_socket_path(ctx);
    g_autofree char *text = request_line(request);
    g_object_unref(request);
    g_autoptr(GError) local = NULL;

    GSocketClient *client = g_socket_client_new();
    g_socket_client_set_timeout(client, timeout_s);
    GSocketAddress *addr = g_unix_socket_address_new(path);
    GSocketConnection *conn =
        g_socket_client_connect(client, G_SOCKET_CONNECTABLE(addr), NULL, &local);
    g_object_unref(addr);
    g_object_unref(client);
    if (!conn) {
        g_set_error(error, OVCTL_ERROR, OVCTL_ERROR_DAEMON,
                    "ovgated is not running (no answer on %s: %s)", path, local->message);
        return NULL;
    }
    GOutputStream *out = g_io_stream_get_output_stream(G_IO_STREAM(conn));
    g_autofree char *line = g_strconcat(text, "\n", NULL);
    JsonObject *obj = NULL;
    if (!g_output_stream_write_all(out, line, strlen(line), NULL, NULL, &local)) {
        g_set_error(error, OVCTL_ERROR, OVCTL_ERROR_DAEMON, "cannot send to ovgated on %s: %s",
                    path, local->message);
    } else {
        GDataInputStream *in =
            g_data_input_stream_new(g_io_stream_get_input_stream(G_IO_STREAM(conn)));
        gsize len = 0;
        g_autofree char *answer = g_data_input_stream_read_line(in, &len, NULL, &local);
        if (!answer) {
            g_set_error(error, OVCTL_ERROR, OVCTL_ERROR_DAEMON,
                        "ovgated closed %s without answering%s%s", path, local ? ": " : "",
                        local ? local->message : "");
        } else if (len > CTL_MAX_LINE * 16) {
            g_set_error(error, OVCTL_ERROR, OVCTL_ERROR_DAEMON,
                        "ovgated's answer on %s is too long", path);
        } else {
            obj = parse_response(answer, path, error);
        }
        g_object_unref(in);
    }
    g_io_stream_close(G_IO_STREAM(conn), NULL, NULL);
    g_object_unref(conn);
    return obj;
}
