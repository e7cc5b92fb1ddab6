/* test-ctl.c — proxy/ctl: request parsing, dispatch of every command against
 * a real registry and store, and the socket server itself (mode 0600, stale
 * and live socket files, several requests per connection, bad and oversized
 * lines). */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <gio/gio.h>
#include <glib/gstdio.h>

#include "ctl.h"

struct fixture {
    char *dir;
    char *sock;
    struct ov_store *store;
    struct cfg *cfg;
    struct reg *reg;
    int reloads;
    bool reload_fails;
};

static void
setup(struct fixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;
    const char *iqns[] = {"iqn.2026-11.test:pc01", NULL};

    f->dir = g_dir_make_tmp("test-ctl-XXXXXX", &err);
    g_assert_no_error(err);
    f->sock = g_build_filename(f->dir, CTL_SOCKET_NAME, NULL);
    f->store = ov_store_open(f->dir, true, &err);
    g_assert_no_error(err);
    g_assert_true(ov_store_image_create_empty(f->store, "lab", 1 << 20, &err));
    g_assert_true(ov_store_client_add(f->store, "pc01", "lab", iqns, NULL, &err));
    f->cfg = cfg_load(NULL, NULL);
    f->reg = reg_new(f->store, f->cfg);
}

static void
teardown(struct fixture *f, gconstpointer data)
{
    g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", f->dir);

    reg_free(f->reg);
    cfg_unref(f->cfg);
    ov_store_close(f->store);
    g_assert_cmpint(system(cmd), ==, 0);
    g_free(f->dir);
    g_free(f->sock);
}

static bool
reload_cb(void *user_data, GError **error)
{
    struct fixture *f = user_data;

    f->reloads++;
    if (f->reload_fails) {
        g_set_error(error, CFG_ERROR, CFG_ERROR_INVALID, "x.conf:[ovgated]:bad: unknown key");
        return false;
    }
    return true;
}

/* Dispatch one request line; returns the response as text. */
static char *
run(struct fixture *f, const char *line)
{
    g_autoptr(GError) err = NULL;
    JsonObject *req = ctl_parse_line(line, strlen(line), &err);
    JsonObject *resp;
    char *text;

    if (req == NULL) {
        resp = ctl_error_response(err->message);
    } else {
        resp = ctl_dispatch(f->reg, req, reload_cb, f);
        json_object_unref(req);
    }
    text = ctl_format_response(resp);
    json_object_unref(resp);
    return text;
}

#define assert_contains(hay, needle)                                                               \
    do {                                                                                           \
        const char *hay_ = (hay);                                                                  \
        if (strstr(hay_, (needle)) == NULL)                                                        \
            g_error("'%s' does not contain '%s'", hay_, (needle));                                 \
    } while (0)

static void
test_parse(struct fixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;
    const char bad_utf8[] = "{\"cmd\":\"\xff\"}";

    g_assert_null(ctl_parse_line("{", 1, &err));
    assert_contains(err->message, "bad JSON");
    g_clear_error(&err);
    g_assert_null(ctl_parse_line("[1]", 3, &err));
    assert_contains(err->message, "one JSON object");
    g_clear_error(&err);
    g_assert_null(ctl_parse_line("", 0, &err));
    g_assert_nonnull(err);
    g_clear_error(&err);
    g_assert_null(ctl_parse_line(bad_utf8, strlen(bad_utf8), &err));
    assert_contains(err->message, "UTF-8");
}

static void
test_dispatch(struct fixture *f, gconstpointer data)
{
    g_autofree char *pid = g_strdup_printf("\"pid\":%d", (int)getpid());
    struct {
        const char *req;
        const char *want;
    } cases[] = {
        {"{\"cmd\":\"ping\"}", "\"version\":\"" OVGATE_VERSION "\""},
        {"{\"cmd\":\"status\"}", "{\"ok\":true,\"sessions\":[]}"},
        {"{}", "missing \\\"cmd\\\""},
        {"{\"cmd\":5}", "missing \\\"cmd\\\""},
        {"{\"cmd\":\"reboot\"}", "unknown command \\\"reboot\\\""},
        {"{\"cmd\":\"kick\"}", "invalid \\\"client\\\""},
        {"{\"cmd\":\"kick\",\"client\":\"\"}", "invalid \\\"client\\\""},
        {"{\"cmd\":\"commit\",\"client\":[1]}", "invalid \\\"client\\\""},
        {"{\"cmd\":\"kick\",\"client\":\"pc01\"}", "{\"ok\":true,\"kicked\":0}"},
        {"{\"cmd\":\"reset\",\"client\":\"pc01\",\"force\":1}", "\\\"force\\\" must be"},
        {"{\"cmd\":\"reset\",\"client\":\"pc01\"}", "{\"ok\":true}"},
        {"{\"cmd\":\"commit\",\"client\":\"pc01\"}", "{\"ok\":true,\"generation\":2}"},
        {"{\"cmd\":\"reset\",\"client\":\"ghost\",\"force\":true}", "ghost"},
        {"{\"cmd\":\"rescan\"}", "{\"ok\":true}"},
        {"{\"cmd\":\"reload\"}", "{\"ok\":true}"},
    };
    g_autofree char *ping = run(f, "{\"cmd\":\"ping\"}");

    assert_contains(ping, pid);
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *got = run(f, cases[i].req);
        assert_contains(got, cases[i].want);
    }
    g_assert_cmpint(f->reloads, ==, 1);
    f->reload_fails = true;
    {
        g_autofree char *got = run(f, "{\"cmd\":\"reload\"}");
        assert_contains(got, "{\"ok\":false,\"error\":\"x.conf:[ovgated]:bad: unknown key\"}");
    }
}

static void
kick_noop(void *user_data, const char *reason)
{
    g_atomic_int_inc((gint *)user_data);
}

static void
test_status_and_reset_busy(struct fixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;
    gint kicks = 0;
    struct reg_attach_params p = {REG_PROTO_NBD, "127.0.0.1:9", "lab/pc01", kick_noop, &kicks};
    struct reg_attach *a = reg_attach_client(f->reg, "pc01", &p, &err);
    g_autofree char *st = NULL, *busy = NULL;

    g_assert_no_error(err);
    st = run(f, "{\"cmd\":\"status\"}");
    assert_contains(st, "\"client\":\"pc01\"");
    assert_contains(st, "\"protocol\":\"nbd\"");
    assert_contains(st, "\"peer\":\"127.0.0.1:9\"");
    assert_contains(st, "\"initiator\":\"lab/pc01\"");
    assert_contains(st, "\"generation\":1");
    assert_contains(st, "\"read_ops\":0");
    busy = run(f, "{\"cmd\":\"reset\",\"client\":\"pc01\"}");
    assert_contains(busy, "has 1 session(s)");
    g_assert_cmpint(kicks, ==, 0);
    reg_detach(a);
}

/* --- the socket server --- */

struct server_ctx {
    struct fixture *f;
    GMainLoop *loop;
    GPtrArray *lines; /* to send */
    GPtrArray *got;   /* responses */
    bool closed_early;
};

static gpointer
client_thread(gpointer data)
{
    struct server_ctx *c = data;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    FILE *fp;
    char *line = NULL;
    size_t cap = 0;

    g_strlcpy(sa.sun_path, c->f->sock, sizeof(sa.sun_path));
    g_assert_cmpint(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), ==, 0);
    fp = fdopen(fd, "r+");
    for (guint i = 0; i < c->lines->len; i++) {
        const char *l = g_ptr_array_index(c->lines, i);
        fputs(l, fp);
        fputc('\n', fp);
        fflush(fp);
        if (getline(&line, &cap, fp) < 0) {
            c->closed_early = true;
            break;
        }
        g_ptr_array_add(c->got, g_strdup(line));
    }
    free(line);
    fclose(fp);
    g_main_loop_quit(c->loop);
    return NULL;
}

static void
run_server_session(struct fixture *f, struct server_ctx *c)
{
    g_autoptr(GError) err = NULL;
    struct ctl_server *ctl = ctl_server_new(f->reg, f->sock, reload_cb, f, &err);
    struct stat st;
    GThread *t;

    g_assert_no_error(err);
    g_assert_cmpint(stat(f->sock, &st), ==, 0);
    g_assert_cmpint(st.st_mode & 0777, ==, 0600);
    c->f = f;
    c->loop = g_main_loop_new(NULL, FALSE);
    t = g_thread_new("client", client_thread, c);
    g_main_loop_run(c->loop);
    g_thread_join(t);
    g_main_loop_unref(c->loop);
    ctl_server_free(ctl);
    g_assert_false(g_file_test(f->sock, G_FILE_TEST_EXISTS));
}

/* A socket file nobody listens on, as a crashed daemon leaves it. */
static void
make_stale_socket(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    g_assert_cmpint(fd, >=, 0);
    g_strlcpy(sa.sun_path, path, sizeof(sa.sun_path));
    g_assert_cmpint(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), ==, 0);
    close(fd);
}

static void
test_server(struct fixture *f, gconstpointer data)
{
    struct server_ctx c = {0};
    g_autoptr(GPtrArray) lines = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GPtrArray) got = g_ptr_array_new_with_free_func(g_free);

    c.lines = lines;
    c.got = got;
    g_ptr_array_add(lines, g_strdup("{\"cmd\":\"ping\"}"));
    g_ptr_array_add(lines, g_strdup("not json"));
    g_ptr_array_add(lines, g_strdup("{\"cmd\":\"commit\",\"client\":\"pc01\"}"));
    g_ptr_array_add(lines, g_strdup("{\"cmd\":\"status\"}"));
    /* a stale socket file from a crashed daemon is replaced */
    make_stale_socket(f->sock);
    run_server_session(f, &c);
    g_assert_false(c.closed_early);
    g_assert_cmpuint(got->len, ==, 4);
    assert_contains(got->pdata[0], "\"ok\":true");
    assert_contains(got->pdata[1], "bad JSON");
    assert_contains(got->pdata[2], "\"generation\":2");
    assert_contains(got->pdata[3], "\"sessions\":[]");
}

static void
test_server_oversized(struct fixture *f, gconstpointer data)
{
    struct server_ctx c = {0};
    g_autoptr(GPtrArray) lines = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GPtrArray) got = g_ptr_array_new_with_free_func(g_free);
    GString *big = g_string_new("{\"cmd\":\"ping\",\"x\":\"");

    while (big->len <= CTL_MAX_LINE + 10)
        g_string_append_c(big, 'y');
    g_string_append(big, "\"}");
    c.lines = lines;
    c.got = got;
    g_ptr_array_add(lines, g_string_free(big, FALSE));
    g_ptr_array_add(lines, g_strdup("{\"cmd\":\"ping\"}"));
    run_server_session(f, &c);
    g_assert_cmpuint(got->len, ==, 1);
    assert_contains(got->pdata[0], "longer than 65536 bytes");
    g_assert_true(c.closed_early); /* the connection was closed after the error */
}

static void
test_server_in_use(struct fixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;
    struct ctl_server *ctl = ctl_server_new(f->reg, f->sock, NULL, NULL, &err);

    g_assert_no_error(err);
    g_assert_null(ctl_server_new(f->reg, f->sock, NULL, NULL, &err));
    g_assert_error(err, G_IO_ERROR, G_IO_ERROR_ADDRESS_IN_USE);
    ctl_server_free(ctl);
    ctl_server_free(NULL);
}

/* A control-socket path that names something else (a typo in
 * control-socket= pointing at the config file) must not be deleted to make
 * room: only a stale socket is replaced. */
static void
test_server_not_a_socket(struct fixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *text = NULL;
    struct ctl_server *ctl;

    g_assert_true(g_file_set_contents(f->sock, "precious\n", -1, NULL));
    g_assert_null(ctl_server_new(f->reg, f->sock, NULL, NULL, &err));
    g_assert_error(err, G_IO_ERROR, G_IO_ERROR_EXISTS);
    g_assert_nonnull(strstr(err->message, "not a socket"));
    g_assert_true(g_file_get_contents(f->sock, &text, NULL, NULL));
    g_assert_cmpstr(text, ==, "precious\n");
    g_unlink(f->sock);
    /* a stale socket (nobody listening) is still replaced */
    make_stale_socket(f->sock);
    g_clear_error(&err);
    ctl = ctl_server_new(f->reg, f->sock, NULL, NULL, &err);
    g_assert_no_error(err);
    ctl_server_free(ctl);
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
#define ADD(path, fn) g_test_add(path, struct fixture, NULL, setup, fn, teardown)
    ADD("/ctl/parse", test_parse);
    ADD("/ctl/dispatch", test_dispatch);
    ADD("/ctl/status-and-busy-reset", test_status_and_reset_busy);
    ADD("/ctl/server", test_server);
    ADD("/ctl/server-oversized", test_server_oversized);
    ADD("/ctl/server-in-use", test_server_in_use);
    ADD("/ctl/server-not-a-socket", test_server_not_a_socket);
    return g_test_run();
}
