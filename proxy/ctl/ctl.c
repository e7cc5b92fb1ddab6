/* ctl.c — the control socket: decode one JSON line, dispatch, reply
 * (ctl-proto.h is the wire contract, docs/control.md the prose).
 *
 * Connections live on the main loop. Each has a receive buffer filled by
 * g_input_stream_read_async; every complete line is one request. Requests
 * on one connection are answered in order: while one runs (a blocking
 * command runs in a GTask worker thread) nothing more is read. A line longer
 * than CTL_MAX_LINE gets an error and the connection is closed, since its end
 * cannot be found without buffering it.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <gio/gio.h>
#include <gio/gunixsocketaddress.h>

#include "ctl.h"

#define CTL_READ_CHUNK 4096
#define CTL_KICK_TIMEOUT_MS 15000
#define CTL_TASK_DRAIN_MS 20000

struct ctl_server {
    struct reg *reg;
    gint tasks; /* worker threads running a command; ctl_server_free waits for 0 */
    char *path;
    GSocketService *service;
    ctl_reload_fn reload;
    void *reload_data;
};

struct ctl_conn {
    struct ctl_server *ctl;
    GSocketConnection *conn;
    GString *buf;
    guint8 chunk[CTL_READ_CHUNK];
    char *reply; /* being written */
    bool closing;
};

/* --- encoding --- */

JsonObject *
ctl_error_response(const char *message)
{
    JsonObject *o = json_object_new();

    json_object_set_boolean_member(o, "ok", FALSE);
    json_object_set_string_member(o, "error", message);
    return o;
}

static JsonObject *
ctl_ok_response(void)
{
    JsonObject *o = json_object_new();

    json_object_set_boolean_member(o, "ok", TRUE);
    return o;
}

char *
ctl_format_response(JsonObject *resp)
{
    g_autoptr(JsonGenerator) gen = json_generator_new();
    g_autoptr(JsonNode) node = json_node_new(JSON_NODE_OBJECT);

    json_node_set_object(node, resp);
    json_generator_set_root(gen, node);
    json_generator_set_pretty(gen, FALSE);
    return json_generator_to_data(gen, NULL);
}

JsonObject *
ctl_parse_line(const char *line, gsize len, GError **error)
{
    g_autoptr(JsonParser) parser = json_parser_new();
    JsonNode *root;

    if (!g_utf8_validate(line, (gssize)len, NULL)) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "request is not valid UTF-8");
        return NULL;
    }
    if (!json_parser_load_from_data(parser, line, (gssize)len, error)) {
        g_prefix_error(error, "bad JSON: ");
        return NULL;
    }
    root = json_parser_get_root(parser);
    if (root == NULL || !JSON_NODE_HOLDS_OBJECT(root)) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "request must be one JSON object");
        return NULL;
    }
    return json_object_ref(json_node_get_object(root));
}

/* --- commands --- */

static const char *
ctl_proto_name(enum reg_protocol p)
{
    return p == REG_PROTO_NBD ? "nbd" : "iscsi";
}

static JsonObject *
ctl_cmd_ping(void)
{
    JsonObject *o = ctl_ok_response();

    json_object_set_string_member(o, "version", OVGATE_VERSION);
    json_object_set_int_member(o, "pid", (gint64)getpid());
    return o;
}

static JsonObject *
ctl_cmd_status(struct reg *reg)
{
    g_autoptr(GPtrArray) st = reg_get_status(reg);
    JsonArray *arr = json_array_new();
    JsonObject *o = ctl_ok_response();

    for (guint i = 0; i < st->len; i++) {
        const struct reg_session_status *s = g_ptr_array_index(st, i);
        JsonObject *e = json_object_new();

        if (s->client != NULL)
            json_object_set_string_member(e, "client", s->client);
        else
            json_object_set_null_member(e, "client");
        json_object_set_string_member(e, "image", s->image);
        json_object_set_int_member(e, "generation", s->generation);
        json_object_set_string_member(e, "protocol", ctl_proto_name(s->protocol));
        json_object_set_string_member(e, "peer", s->peer ? s->peer : "");
        json_object_set_string_member(e, "initiator", s->initiator ? s->initiator : "");
        json_object_set_int_member(e, "since", s->since);
        json_object_set_int_member(e, "read_ops", (gint64)s->stats.read_ops);
        json_object_set_int_member(e, "read_bytes", (gint64)s->stats.read_bytes);
        json_object_set_int_member(e, "write_ops", (gint64)s->stats.write_ops);
        json_object_set_int_member(e, "write_bytes", (gint64)s->stats.write_bytes);
        json_object_set_int_member(e, "zero_ops", (gint64)s->stats.zero_ops);
        json_object_set_int_member(e, "flush_ops", (gint64)s->stats.flush_ops);
        json_object_set_int_member(e, "errors", (gint64)s->stats.errors);
        json_array_add_object_element(arr, e);
    }
    json_object_set_array_member(o, "sessions", arr);
    return o;
}

/* The "client" argument: a non-empty string. */
static const char *
ctl_arg_client(JsonObject *req, char **err_out)
{
    JsonNode *n = json_object_get_member(req, "client");

    if (n == NULL || !JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_STRING ||
        json_node_get_string(n)[0] == '\0') {
        *err_out = g_strdup("missing or invalid \"client\" (a client name string)");
        return NULL;
    }
    return json_node_get_string(n);
}

static JsonObject *
ctl_cmd_client(struct reg *reg, const char *cmd, JsonObject *req)
{
    g_autofree char *msg = NULL;
    g_autoptr(GError) err = NULL;
    const char *client = ctl_arg_client(req, &msg);
    JsonObject *o;

    if (client == NULL)
        return ctl_error_response(msg);
    if (g_str_equal(cmd, "kick")) {
        int n = reg_kick_client(reg, client, "ended by ovctl", true, CTL_KICK_TIMEOUT_MS);
        o = ctl_ok_response();
        json_object_set_int_member(o, "kicked", n);
        return o;
    }
    if (g_str_equal(cmd, "commit")) {
        uint32_t gen = 0;
        if (!reg_commit_client(reg, client, &gen, &err))
            return ctl_error_response(err->message);
        o = ctl_ok_response();
        json_object_set_int_member(o, "generation", gen);
        return o;
    }
    /* reset: DESIGN rule 4 — a connected client is refused unless forced, and
     * then its sessions end before the overlay is replaced. */
    {
        JsonNode *f = json_object_get_member(req, "force");
        bool force = false;

        if (f != NULL) {
            if (!JSON_NODE_HOLDS_VALUE(f) || json_node_get_value_type(f) != G_TYPE_BOOLEAN)
                return ctl_error_response("\"force\" must be true or false");
            force = json_node_get_boolean(f);
        }
        /* Without force the registry decides "connected?" and resets in one
         * step: counting sessions here first left a window in which a login
         * attached and then had its disk replaced under it. */
        if (!force) {
            if (!reg_reset_client_idle(reg, client, &err))
                return ctl_error_response(err->message);
            return ctl_ok_response();
        }
        /* An initiator may log straight back in after the kick: the reset
         * then happens online under its new session, which gets a unit
         * attention (reg_reset_client freezes the disk and swaps it). */
        reg_kick_client(reg, client, "reset by ovctl", true, CTL_KICK_TIMEOUT_MS);
        if (!reg_reset_client(reg, client, &err))
            return ctl_error_response(err->message);
        return ctl_ok_response();
    }
}

JsonObject *
ctl_dispatch(struct reg *reg, JsonObject *req, ctl_reload_fn reload, void *reload_data)
{
    JsonNode *n = json_object_get_member(req, "cmd");
    const char *cmd;

    if (n == NULL || !JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_STRING)
        return ctl_error_response("missing \"cmd\" (a string)");
    cmd = json_node_get_string(n);
    if (g_str_equal(cmd, "ping"))
        return ctl_cmd_ping();
    if (g_str_equal(cmd, "status"))
        return ctl_cmd_status(reg);
    if (g_str_equal(cmd, "kick") || g_str_equal(cmd, "reset") || g_str_equal(cmd, "commit"))
        return ctl_cmd_client(reg, cmd, req);
    if (g_str_equal(cmd, "rescan")) {
        reg_rescan(reg);
        return ctl_ok_response();
    }
    if (g_str_equal(cmd, "reload")) {
        g_autoptr(GError) err = NULL;
        if (reload == NULL)
            return ctl_error_response("reload is not available");
        if (!reload(reload_data, &err))
            return ctl_error_response(err->message);
        return ctl_ok_response();
    }
    {
        g_autofree char *cmd_c = g_strescape(cmd, NULL);
        g_autofree char *m = g_strdup_printf("unknown command \"%s\"", cmd_c);
        return ctl_error_response(m);
    }
}

/* Commands that wait for sessions or disk I/O run off the main thread. */
static bool
ctl_cmd_blocks(JsonObject *req)
{
    const char *cmd = json_object_get_string_member_with_default(req, "cmd", "");

    return g_str_equal(cmd, "kick") || g_str_equal(cmd, "reset") || g_str_equal(cmd, "commit");
}

/* --- connections --- */

static void ctl_conn_process(struct ctl_conn *c);

static void
ctl_conn_free(struct ctl_conn *c)
{
    g_io_stream_close(G_IO_STREAM(c->conn), NULL, NULL);
    g_object_unref(c->conn);
    g_string_free(c->buf, TRUE);
    g_free(c->reply);
    g_free(c);
}

static void
ctl_conn_written(GObject *src, GAsyncResult *res, gpointer data)
{
    struct ctl_conn *c = data;
    g_autoptr(GError) err = NULL;

    g_clear_pointer(&c->reply, g_free);
    if (!g_output_stream_write_all_finish(G_OUTPUT_STREAM(src), res, NULL, &err) || c->closing) {
        ctl_conn_free(c);
        return;
    }
    ctl_conn_process(c);
}

static void
ctl_conn_reply(struct ctl_conn *c, JsonObject *resp)
{
    g_autofree char *text = ctl_format_response(resp);
    GOutputStream *out = g_io_stream_get_output_stream(G_IO_STREAM(c->conn));

    json_object_unref(resp);
    c->reply = g_strconcat(text, "\n", NULL);
    g_output_stream_write_all_async(out, c->reply, strlen(c->reply), G_PRIORITY_DEFAULT, NULL,
                                    ctl_conn_written, c);
}

static void
ctl_task_thread(GTask *task, gpointer src, gpointer data, GCancellable *cancel)
{
    struct ctl_conn *c = data;
    struct ctl_server *ctl = c->ctl;
    JsonObject *req = g_object_get_data(G_OBJECT(task), "req");
    JsonObject *resp = ctl_dispatch(ctl->reg, req, NULL, NULL);

    /* Once the result is returned the main loop may answer and, if the
     * peer has gone, free c: do not touch c after this. */
    g_task_return_pointer(task, resp, (GDestroyNotify)json_object_unref);
    g_atomic_int_dec_and_test(&ctl->tasks);
}

static void
ctl_task_done(GObject *src, GAsyncResult *res, gpointer data)
{
    struct ctl_conn *c = data;
    JsonObject *resp = g_task_propagate_pointer(G_TASK(res), NULL);

    ctl_conn_reply(c, resp);
}

static void
ctl_conn_request(struct ctl_conn *c, const char *line, gsize len)
{
    g_autoptr(GError) err = NULL;
    JsonObject *req = ctl_parse_line(line, len, &err);

    if (req == NULL) {
        ctl_conn_reply(c, ctl_error_response(err->message));
        return;
    }
    if (ctl_cmd_blocks(req)) {
        GTask *task = g_task_new(NULL, NULL, ctl_task_done, c);
        g_task_set_task_data(task, c, NULL);
        g_task_set_check_cancellable(task, FALSE);
        /* the request travels with the task and is freed with it */
        g_object_set_data_full(G_OBJECT(task), "req", req, (GDestroyNotify)json_object_unref);
        g_atomic_int_inc(&c->ctl->tasks);
        g_task_run_in_thread(task, (GTaskThreadFunc)ctl_task_thread);
        g_object_unref(task);
        return;
    }
    ctl_conn_reply(c, ctl_dispatch(c->ctl->reg, req, c->ctl->reload, c->ctl->reload_data));
    json_object_unref(req);
}

static void
ctl_conn_read_done(GObject *src, GAsyncResult *res, gpointer data)
{
    struct ctl_conn *c = data;
    gssize n = g_input_stream_read_finish(G_INPUT_STREAM(src), res, NULL);

    if (n <= 0) {
        ctl_conn_free(c);
        return;
    }
    g_string_append_len(c->buf, (const char *)c->chunk, n);
    ctl_conn_process(c);
}

/* Answer the next complete line, or read more. */
static void
ctl_conn_process(struct ctl_conn *c)
{
    const char *nl = memchr(c->buf->str, '\n', MIN(c->buf->len, (gsize)CTL_MAX_LINE + 1));
    GInputStream *in;

    if (nl != NULL) {
        gsize len = (gsize)(nl - c->buf->str);
        g_autofree char *line = g_strndup(c->buf->str, len);

        g_string_erase(c->buf, 0, (gssize)len + 1);
        ctl_conn_request(c, line, len);
        return;
    }
    if (c->buf->len > CTL_MAX_LINE) {
        g_autofree char *m = g_strdup_printf("request line longer than %d bytes", CTL_MAX_LINE);
        c->closing = true;
        ctl_conn_reply(c, ctl_error_response(m));
        return;
    }
    in = g_io_stream_get_input_stream(G_IO_STREAM(c->conn));
    g_input_stream_read_async(in, c->chunk, sizeof(c->chunk), G_PRIORITY_DEFAULT, NULL,
                              ctl_conn_read_done, c);
}

static gboolean
ctl_on_incoming(GSocketService *service, GSocketConnection *conn, GObject *source, gpointer data)
{
    struct ctl_conn *c = g_new0(struct ctl_conn, 1);

    c->ctl = data;
    c->conn = g_object_ref(conn);
    c->buf = g_string_new(NULL);
    ctl_conn_process(c);
    return TRUE;
}

/* --- server --- */

/* A socket file left by a crashed daemon is replaced; a live one is not. */
static bool
ctl_claim_path(const char *path, GError **error)
{
    g_autoptr(GSocketClient) client = NULL;
    g_autoptr(GSocketAddress) addr = NULL;
    g_autoptr(GSocketConnection) conn = NULL;
    struct stat st;

    if (lstat(path, &st) < 0)
        return true;
    /* Only a socket is ours to replace: a control-socket= that names some
     * other file by mistake (the config file, say) must not delete it. */
    if (!S_ISSOCK(st.st_mode)) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_EXISTS,
                    "control socket %s: the path exists and is not a socket (not removing it)",
                    path);
        return false;
    }
    client = g_socket_client_new();
    addr = g_unix_socket_address_new(path);
    conn = g_socket_client_connect(client, G_SOCKET_CONNECTABLE(addr), NULL, NULL);
    if (conn != NULL) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_ADDRESS_IN_USE,
                    "control socket %s is in use: is another ovgated running on this store?", path);
        return false;
    }
    if (unlink(path) < 0 && errno != ENOENT) {
        g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errno), "cannot remove %s: %s", path,
                    g_strerror(errno));
        return false;
    }
    return true;
}

struct ctl_server *
ctl_server_new(struct reg *reg, const char *path, ctl_reload_fn reload, void *reload_data,
               GError **error)
{
    struct ctl_server *ctl;
    g_autoptr(GSocketAddress) addr = NULL;
    mode_t old_mask;
    bool ok;

    if (!ctl_claim_path(path, error))
        return NULL;
    ctl = g_new0(struct ctl_server, 1);
    ctl->reg = reg;
    ctl->path = g_strdup(path);
    ctl->reload = reload;
    ctl->reload_data = reload_data;
    ctl->service = g_socket_service_new();
    addr = g_unix_socket_address_new(path);
    /* Created 0600 from the start: no window in which others may connect. */
    old_mask = umask(0077);
    ok = g_socket_listener_add_address(G_SOCKET_LISTENER(ctl->service), addr, G_SOCKET_TYPE_STREAM,
                                       G_SOCKET_PROTOCOL_DEFAULT, NULL, NULL, error);
    umask(old_mask);
    if (!ok) {
        g_prefix_error(error, "control socket %s: ", path);
        g_object_unref(ctl->service);
        g_free(ctl->path);
        g_free(ctl);
        return NULL;
    }
    chmod(path, 0600);
    g_signal_connect(ctl->service, "incoming", G_CALLBACK(ctl_on_incoming), ctl);
    g_socket_service_start(ctl->service);
    return ctl;
}

bool
ctl_server_stop(struct ctl_server *ctl, int timeout_ms)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

    if (ctl->service != NULL) {
        g_socket_service_stop(ctl->service);
        g_socket_listener_close(G_SOCKET_LISTENER(ctl->service));
        g_clear_object(&ctl->service);
        unlink(ctl->path);
    }
    /* A kick/reset/commit still running in a worker uses the registry, which
     * the caller frees next: let it finish (the front ends have ended every
     * session by now, so kicks return at once). Its reply is never sent. */
    while (g_atomic_int_get(&ctl->tasks) > 0 && g_get_monotonic_time() < deadline)
        g_usleep(10 * 1000);
    return g_atomic_int_get(&ctl->tasks) == 0;
}

void
ctl_server_free(struct ctl_server *ctl)
{
    if (ctl == NULL)
        return;
    if (!ctl_server_stop(ctl, CTL_TASK_DRAIN_MS)) {
        /* The worker still points at ctl: leave it allocated. */
        g_warning("a control command was still running at shutdown");
        return;
    }
    g_free(ctl->path);
    g_free(ctl);
}
