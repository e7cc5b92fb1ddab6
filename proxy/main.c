/* main.c — ovgated: options, configuration, the main loop, signals and the
 * ordered shutdown.
 *
 * Threads (docs/concurrency.md): the main thread runs a GMainLoop for
 * signals, the control socket and the periodic store rescan; the net layer
 * runs one accept thread per listener and one thread per connection.
 *
 * Shutdown (SIGTERM/SIGINT), in this order so that no write is lost:
 *   1. stop accepting (close listeners, join accept threads);
 *   2. end every connection (iscsit_target_shutdown / nbdsrv_shutdown);
 *   3. wait (bounded) until every connection thread has returned;
 *   4. close the control socket (the file is removed) and wait (bounded) for
 *      a kick/reset/commit still running in a worker;
 *   5. free the front ends, then the registry: closing each view closes its
 *      overlay, which is the final flush; close the store, exit 0.
 * If a wait in 3 or 4 times out, something is stuck in disk I/O: exit 1
 * without freeing the disks under it.
 * SIGHUP re-reads the config file; a bad file is logged and the old
 * configuration stays in force.
 *
 * File descriptors: every session holds two (its socket and its overlay
 * file), so at start-up the soft RLIMIT_NOFILE is raised to the hard limit
 * (scale finding S2: the common soft limit of 1024 ran out near 500
 * sessions). Nothing here uses select(), so descriptors above 1024 are fine.
 *
 * Readiness: once every listener is bound and the control socket is up, the
 * port file is written (--port-file) and systemd is told READY=1
 * (Type=notify).
 */
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <glib-unix.h>

#include "cfg.h"
#include "ctl.h"
#include "iscsit.h"
#include "nbdsrv.h"
#include "net.h"
#include "rxpoll.h"
#include "reg.h"
#include "store.h"

#define MAIN_SHUTDOWN_WAIT_MS 15000
#define MAIN_RESCAN_INTERVAL_S 2

struct opts {
    char *store;
    char *config;
    char **listen_iscsi;
    char **listen_nbd;
    char *port_file;
    char *control_socket;
    char *log_level;
    char *serve_stdin;
    gboolean foreground;
    gboolean check_config;
    gboolean version;
};

/* A listening socket handed over by systemd (socket activation). */
struct main_passed_fd {
    int fd;
    bool nbd;
};

struct daemon {
    struct opts *opts;
    GArray *passed; /* struct main_passed_fd; empty unless socket-activated */
    struct ov_store *store;
    struct reg *reg;
    struct iscsit_target *iscsi;
    struct nbdsrv *nbd;
    struct net_server *net;
    struct ctl_server *ctl;
    GMainLoop *loop;
};

/* --- logging --- */

static volatile gint main_log_max = G_LOG_LEVEL_MESSAGE;
static bool main_journal;

static GLogLevelFlags
main_log_level_parse(const char *name)
{
    if (g_str_equal(name, "error"))
        return G_LOG_LEVEL_CRITICAL;
    if (g_str_equal(name, "warning"))
        return G_LOG_LEVEL_WARNING;
    if (g_str_equal(name, "info"))
        return G_LOG_LEVEL_INFO;
    if (g_str_equal(name, "debug"))
        return G_LOG_LEVEL_DEBUG;
    return G_LOG_LEVEL_MESSAGE;
}

static GLogWriterOutput
main_log_writer(GLogLevelFlags level, const GLogField *fields, gsize n_fields, gpointer data)
{
    const char *domain = "ovgated";
    const char *msg = "";
    const char *name = "debug";
    int prio = 7;
    GLogLevelFlags lvl = level & G_LOG_LEVEL_MASK;

    /* GLib levels grow in verbosity: ERROR=4 < CRITICAL=8 < ... < DEBUG=128. */
    if ((gint)lvl > g_atomic_int_get(&main_log_max))
        return G_LOG_WRITER_HANDLED;
    for (gsize i = 0; i < n_fields; i++) {
        if (g_str_equal(fields[i].key, "GLIB_DOMAIN") && fields[i].length < 0)
            domain = fields[i].value;
        else if (g_str_equal(fields[i].key, "MESSAGE") && fields[i].length < 0)
            msg = fields[i].value;
    }
    switch (lvl) {
    case G_LOG_LEVEL_ERROR:
        name = "fatal", prio = 2;
        break;
    case G_LOG_LEVEL_CRITICAL:
        name = "error", prio = 3;
        break;
    case G_LOG_LEVEL_WARNING:
        name = "warning", prio = 4;
        break;
    case G_LOG_LEVEL_MESSAGE:
        name = "notice", prio = 5;
        break;
    case G_LOG_LEVEL_INFO:
        name = "info", prio = 6;
        break;
    default:
        break;
    }
    /* Under systemd, "<N>" sets the journal priority (sd-daemon(3)). */
    if (main_journal)
        fprintf(stderr, "<%d>%s: %s\n", prio, domain, msg);
    else
        fprintf(stderr, "ovgated[%d]: %s: %s: %s\n", (int)getpid(), name, domain, msg);
    return G_LOG_WRITER_HANDLED;
}

static void
main_set_log_level(const char *name)
{
    g_atomic_int_set(&main_log_max, (gint)main_log_level_parse(name));
}

/* --- systemd readiness --- */

/* sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET (a path,
 * or an abstract name starting with '@'). Does nothing when it is unset. */
static void
main_sd_notify(const char *state)
{
    const char *path = g_getenv("NOTIFY_SOCKET");
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t len;
    int fd;

    if (path == NULL || (path[0] != '/' && path[0] != '@') ||
        (len = strlen(path)) >= sizeof(sa.sun_path))
        return;
    memcpy(sa.sun_path, path, len);
    if (path[0] == '@')
        sa.sun_path[0] = '\0';
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    if (sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa,
               (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)) < 0)
        g_debug("sd_notify %s: %s", state, g_strerror(errno));
    close(fd);
}

/* Socket activation, sd_listen_fds(3): LISTEN_FDS sockets from fd 3 on,
 * meant for us when LISTEN_PID is our pid. LISTEN_FDNAMES (systemd's
 * FileDescriptorName=) says which front end each is for: a name containing
 * "nbd" is NBD, any other name iSCSI. The variables are removed so that no
 * child inherits them. */
static bool
main_take_passed_fds(struct daemon *d, GError **error)
{
    const char *pid = g_getenv("LISTEN_PID");
    const char *fds = g_getenv("LISTEN_FDS");
    g_auto(GStrv) names = NULL;
    guint64 n;

    if (pid == NULL || fds == NULL || g_ascii_strtoull(pid, NULL, 10) != (guint64)getpid())
        return true;
    if (!g_ascii_string_to_unsigned(fds, 10, 1, 1024, &n, NULL)) {
        g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                    "socket activation: bad LISTEN_FDS '%s'", fds);
        return false;
    }
    if (g_getenv("LISTEN_FDNAMES") != NULL)
        names = g_strsplit(g_getenv("LISTEN_FDNAMES"), ":", -1);
    for (guint64 i = 0; i < n; i++) {
        struct main_passed_fd p = {3 + (int)i, false};
        if (names != NULL && i < g_strv_length(names))
            p.nbd = strstr(names[i], "nbd") != NULL;
        g_array_append_val(d->passed, p);
    }
    g_unsetenv("LISTEN_PID");
    g_unsetenv("LISTEN_FDS");
    g_unsetenv("LISTEN_FDNAMES");
    return true;
}

static bool
main_passed_nbd(const struct daemon *d)
{
    for (guint i = 0; i < d->passed->len; i++)
        if (g_array_index(d->passed, struct main_passed_fd, i).nbd)
            return true;
    return false;
}

/* --- configuration --- */

static bool
main_check_log_level(const char *name, GError **error)
{
    static const char *const levels[] = {"error", "warning", "message", "info", "debug", NULL};

    if (g_strv_contains(levels, name))
        return true;
    g_set_error(error, CFG_ERROR, CFG_ERROR_INVALID,
                "--log-level: '%s' is not one of error, warning, message, info, debug", name);
    return false;
}

static bool
main_override_listen(GPtrArray *list, char **args, uint16_t default_port, const char *opt,
                     GError **error)
{
    if (args == NULL)
        return true;
    g_ptr_array_set_size(list, 0);
    for (size_t i = 0; args[i] != NULL; i++) {
        struct cfg_listen l = {0};
        if (g_str_equal(args[i], "none"))
            continue;
        if (!cfg_parse_listen(args[i], default_port, &l, error)) {
            g_prefix_error(error, "%s: ", opt);
            return false;
        }
        g_ptr_array_add(list, g_memdup2(&l, sizeof(l)));
    }
    return true;
}

/* Load the config file and apply the command line over it. The result is
 * not shared yet, so it may still be edited here. */
static struct cfg *
main_load_cfg(const struct opts *o, GError **error)
{
    struct cfg *cfg = cfg_load(o->config, error);

    if (cfg == NULL)
        return NULL;
    g_free(cfg->store_dir);
    cfg->store_dir = g_strdup(o->store);
    if (!main_override_listen(cfg->listen_iscsi, o->listen_iscsi, CFG_DEFAULT_ISCSI_PORT,
                              "--listen-iscsi", error) ||
        !main_override_listen(cfg->listen_nbd, o->listen_nbd, CFG_DEFAULT_NBD_PORT, "--listen-nbd",
                              error)) {
        cfg_unref(cfg);
        return NULL;
    }
    if (o->control_socket != NULL) {
        g_free(cfg->control_socket);
        cfg->control_socket = g_strdup(o->control_socket);
    }
    if (o->log_level != NULL) {
        g_free(cfg->log_level);
        cfg->log_level = g_strdup(o->log_level);
    }
    /* The TLS files must load too: otherwise --check-config (run by the
     * systemd unit before a reload) said ok to a file the daemon then
     * could not start with, and a reload kept half of it. */
    if (!nbdsrv_tls_check(cfg, error)) {
        g_prefix_error(error, "%s: ", o->config != NULL ? o->config : "configuration");
        cfg_unref(cfg);
        return NULL;
    }
    return cfg;
}

static bool
main_reload(void *user_data, GError **error)
{
    struct daemon *d = user_data;
    struct cfg *cfg = main_load_cfg(d->opts, error);
    struct cfg *old;

    if (cfg == NULL)
        return false;
    old = reg_get_cfg(d->reg);
    if (old->listen_iscsi->len != cfg->listen_iscsi->len ||
        old->listen_nbd->len != cfg->listen_nbd->len)
        g_message("listen addresses change only on restart");
    cfg_unref(old);
    main_set_log_level(cfg->log_level);
    net_rxpoll_set_us((unsigned)cfg->busy_poll_us);
    reg_set_cfg(d->reg, cfg);
    cfg_unref(cfg);
    g_message("configuration reloaded from %s", d->opts->config ? d->opts->config : "defaults");
    return true;
}

/* --- main loop callbacks --- */

static gboolean
main_on_sighup(gpointer data)
{
    struct daemon *d = data;
    g_autoptr(GError) err = NULL;

    main_sd_notify("RELOADING=1");
    if (!main_reload(d, &err))
        g_warning("reload failed, keeping the old configuration: %s", err->message);
    main_sd_notify("READY=1");
    return G_SOURCE_CONTINUE;
}

static gboolean
main_on_quit(gpointer data)
{
    struct daemon *d = data;

    g_message("shutting down");
    main_sd_notify("STOPPING=1");
    g_main_loop_quit(d->loop);
    return G_SOURCE_CONTINUE;
}

static gboolean
main_on_rescan(gpointer data)
{
    struct daemon *d = data;

    reg_rescan(d->reg);
    return G_SOURCE_CONTINUE;
}

static void
main_serve_iscsi(void *user_data, int fd, const char *peer)
{
    iscsit_conn_run(user_data, fd, peer);
}

static void
main_serve_nbd(void *user_data, int fd, const char *peer)
{
    nbdsrv_conn_run(user_data, fd, peer);
}

/* --- setup and teardown --- */

static bool
main_adopt(struct daemon *d, GError **error)
{
    g_message("socket activation: serving %u socket(s) from systemd; listen-* settings are "
              "not used",
              d->passed->len);
    for (guint i = 0; i < d->passed->len; i++) {
        struct main_passed_fd *p = &g_array_index(d->passed, struct main_passed_fd, i);
        g_autofree char *bound = NULL;

        if (p->nbd) {
            if (!net_server_adopt(d->net, p->fd, "nbd", main_serve_nbd, d->nbd, NULL, error))
                return false;
        } else {
            if (!net_server_adopt(d->net, p->fd, "iscsi", main_serve_iscsi, d->iscsi, &bound,
                                  error))
                return false;
            iscsit_target_add_portal(d->iscsi, bound, 1);
        }
        p->fd = -1; /* the net server owns it now */
    }
    return true;
}

static bool
main_listen(struct daemon *d, struct cfg *cfg, GError **error)
{
    if (d->passed->len > 0)
        return main_adopt(d, error);
    for (guint i = 0; i < cfg->listen_iscsi->len; i++) {
        g_autofree char *bound = NULL;
        if (!net_server_listen(d->net, g_ptr_array_index(cfg->listen_iscsi, i), "iscsi",
                               main_serve_iscsi, d->iscsi, &bound, error))
            return false;
        iscsit_target_add_portal(d->iscsi, bound, 1);
    }
    for (guint i = 0; i < cfg->listen_nbd->len; i++) {
        if (!net_server_listen(d->net, g_ptr_array_index(cfg->listen_nbd, i), "nbd", main_serve_nbd,
                               d->nbd, NULL, error))
            return false;
    }
    return true;
}

/* Raise the soft RLIMIT_NOFILE to the hard one (see top) and say how many
 * sessions that allows. A hard limit of "unlimited" is capped at the
 * kernel's fs.nr_open, the most a process can have. */
static void
main_raise_nofile(void)
{
    g_autofree char *nr_open = NULL;
    struct rlimit rl;
    rlim_t old, want;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
        g_warning("getrlimit(RLIMIT_NOFILE): %s", g_strerror(errno));
        return;
    }
    old = rl.rlim_cur;
    want = rl.rlim_max;
    if (want == RLIM_INFINITY) {
        guint64 v = 0;
        if (g_file_get_contents("/proc/sys/fs/nr_open", &nr_open, NULL, NULL) &&
            g_ascii_string_to_unsigned(g_strstrip(nr_open), 10, 1, G_MAXINT, &v, NULL))
            want = (rlim_t)v;
        else
            want = old;
    }
    if (want > old) {
        rl.rlim_cur = want;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
            g_warning("cannot raise the file descriptor limit from %llu to %llu: %s",
                      (unsigned long long)old, (unsigned long long)want, g_strerror(errno));
            want = old;
        }
    }
    /* Two descriptors per session; a few dozen for listeners, the control
     * socket, logs and the store. */
    g_info("file descriptor limit %llu (was %llu): room for about %llu sessions",
           (unsigned long long)want, (unsigned long long)old,
           (unsigned long long)(want > 64 ? (want - 64) / 2 : 0));
}

static bool
main_setup(struct daemon *d, struct cfg *cfg, GError **error)
{
    d->store = ov_store_open(d->opts->store, false, error);
    if (d->store == NULL)
        return false;
    d->reg = reg_new(d->store, cfg);
    d->iscsi = iscsit_target_new(d->reg);
    if ((d->passed->len == 0 && cfg->listen_nbd->len > 0) || main_passed_nbd(d) ||
        (d->opts->serve_stdin != NULL && g_str_equal(d->opts->serve_stdin, "nbd"))) {
        d->nbd = nbdsrv_new(d->reg, error);
        if (d->nbd == NULL)
            return false;
    }
    return true;
}

/* The shutdown order at the top of this file. */
static int
main_teardown(struct daemon *d)
{
    int rc = 0;

    if (d->net != NULL)
        net_server_stop_accepting(d->net);
    if (d->iscsi != NULL)
        iscsit_target_shutdown(d->iscsi);
    if (d->nbd != NULL)
        nbdsrv_shutdown(d->nbd);
    if (d->net != NULL && !net_server_wait_idle(d->net, MAIN_SHUTDOWN_WAIT_MS)) {
        /* A thread is stuck (e.g. in a sync on a dead disk): freeing the
         * views under it would be worse than exiting without the last flush. */
        g_critical("%u connection(s) did not end within %d ms; exiting without closing them",
                   net_server_get_active(d->net), MAIN_SHUTDOWN_WAIT_MS);
        if (d->ctl != NULL)
            ctl_server_stop(d->ctl, 0);
        return 1;
    }
    if (d->ctl != NULL && !ctl_server_stop(d->ctl, MAIN_SHUTDOWN_WAIT_MS)) {
        g_critical("a control command did not finish within %d ms; exiting without closing "
                   "the disks",
                   MAIN_SHUTDOWN_WAIT_MS);
        return 1;
    }
    ctl_server_free(g_steal_pointer(&d->ctl));
    net_server_free(g_steal_pointer(&d->net));
    g_clear_pointer(&d->iscsi, iscsit_target_free);
    g_clear_pointer(&d->nbd, nbdsrv_free);
    g_clear_pointer(&d->reg, reg_free);
    g_clear_pointer(&d->store, ov_store_close);
    return rc;
}

static int
main_serve_stdin(struct daemon *d)
{
    int fd = dup(STDIN_FILENO);

    if (fd < 0) {
        g_critical("--serve-stdin: %s", g_strerror(errno));
        return 1;
    }
    if (g_str_equal(d->opts->serve_stdin, "iscsi"))
        iscsit_conn_run(d->iscsi, fd, "stdin");
    else
        nbdsrv_conn_run(d->nbd, fd, "stdin");
    return main_teardown(d);
}

static int
main_run(struct daemon *d, struct cfg *cfg)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *ctl_path = NULL;
    g_autofree char *ports = NULL;
    int rc;

    /* Signal handlers first: once the port file exists a SIGTERM must take
     * the ordered path, never the default action. One that arrives during
     * set-up waits in the main context and ends the loop at once. */
    d->loop = g_main_loop_new(NULL, FALSE);
    g_unix_signal_add(SIGTERM, main_on_quit, d);
    g_unix_signal_add(SIGINT, main_on_quit, d);
    g_unix_signal_add(SIGHUP, main_on_sighup, d);
    d->net = net_server_new();
    if (!main_listen(d, cfg, &err))
        goto fail;
    ctl_path = cfg->control_socket != NULL ? g_strdup(cfg->control_socket)
                                           : ov_store_control_socket_path(d->store);
    d->ctl = ctl_server_new(d->reg, ctl_path, main_reload, d, &err);
    if (d->ctl == NULL || !net_server_start(d->net, &err))
        goto fail;
    ports = net_server_describe(d->net);
    if (d->opts->port_file != NULL && !net_write_file_atomic(d->opts->port_file, ports, &err))
        goto fail;
    g_timeout_add_seconds(MAIN_RESCAN_INTERVAL_S, main_on_rescan, d);
    g_message("ovgated %s serving store %s (control socket %s)", OVGATE_VERSION, d->opts->store,
              ctl_path);
    main_sd_notify("READY=1");
    g_main_loop_run(d->loop);
    rc = main_teardown(d);
    g_main_loop_unref(d->loop);
    return rc;

fail:
    g_critical("%s", err->message);
    main_teardown(d);
    g_main_loop_unref(d->loop);
    return 1;
}

static bool
main_parse_args(struct opts *o, int *argc, char ***argv, GError **error)
{
    const GOptionEntry entries[] = {
        {"store", 's', 0, G_OPTION_ARG_FILENAME, &o->store, "Image store directory", "DIR"},
        {"config", 'c', 0, G_OPTION_ARG_FILENAME, &o->config, "Configuration file", "FILE"},
        {"listen-iscsi", 0, 0, G_OPTION_ARG_STRING_ARRAY, &o->listen_iscsi,
         "iSCSI listener (repeatable; port 0 = any free port; 'none' = no iSCSI)", "ADDR:PORT"},
        {"listen-nbd", 0, 0, G_OPTION_ARG_STRING_ARRAY, &o->listen_nbd,
         "NBD listener (repeatable; port 0 = any free port)", "ADDR:PORT"},
        {"port-file", 0, 0, G_OPTION_ARG_FILENAME, &o->port_file,
         "Write 'PROTO ADDR:PORT' lines here once every listener is bound", "FILE"},
        {"control-socket", 0, 0, G_OPTION_ARG_FILENAME, &o->control_socket,
         "Control socket path (default STORE/" CTL_SOCKET_NAME ")", "PATH"},
        {"foreground", 'f', 0, G_OPTION_ARG_NONE, &o->foreground,
         "Stay in the foreground (the default; for systemd Type=simple)", NULL},
        {"log-level", 0, 0, G_OPTION_ARG_STRING, &o->log_level,
         "error, warning, message, info or debug", "LEVEL"},
        {"serve-stdin", 0, 0, G_OPTION_ARG_STRING, &o->serve_stdin,
         "Serve exactly one connection on the socket at fd 0, then exit", "iscsi|nbd"},
        {"check-config", 0, 0, G_OPTION_ARG_NONE, &o->check_config,
         "Check the configuration (file and options), print 'ok' and exit", NULL},
        {"version", 'V', 0, G_OPTION_ARG_NONE, &o->version, "Print the version", NULL},
        {NULL},
    };
    g_autoptr(GOptionContext) ctx = g_option_context_new("- ovgate iSCSI/NBD gateway daemon");

    g_option_context_add_main_entries(ctx, entries, NULL);
    if (!g_option_context_parse(ctx, argc, argv, error))
        return false;
    if (*argc > 1) {
        g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED, "unexpected argument '%s'",
                    (*argv)[1]);
        return false;
    }
    if (o->serve_stdin != NULL && !g_str_equal(o->serve_stdin, "iscsi") &&
        !g_str_equal(o->serve_stdin, "nbd")) {
        g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                    "--serve-stdin: expected iscsi or nbd, not '%s'", o->serve_stdin);
        return false;
    }
    if (o->log_level != NULL && !main_check_log_level(o->log_level, error))
        return false;
    if (o->store == NULL)
        o->store = g_strdup(g_getenv("OVGATE_STORE") != NULL ? g_getenv("OVGATE_STORE")
                                                             : OVGATE_DEFAULT_STORE);
    return true;
}

/* Close passed sockets that were never adopted, free the list. */
static void
main_passed_clear(struct daemon *d)
{
    for (guint i = 0; d->passed != NULL && i < d->passed->len; i++) {
        struct main_passed_fd *p = &g_array_index(d->passed, struct main_passed_fd, i);
        if (p->fd >= 0)
            close(p->fd);
    }
    g_clear_pointer(&d->passed, g_array_unref);
}

static void
main_opts_clear(struct opts *o)
{
    g_free(o->store);
    g_free(o->config);
    g_strfreev(o->listen_iscsi);
    g_strfreev(o->listen_nbd);
    g_free(o->port_file);
    g_free(o->control_socket);
    g_free(o->log_level);
    g_free(o->serve_stdin);
}

int
main(int argc, char **argv)
{
    struct opts o = {0};
    struct daemon d = {0};
    g_autoptr(GError) err = NULL;
    struct cfg *cfg;
    int rc;

    main_journal = g_getenv("JOURNAL_STREAM") != NULL;
    g_log_set_writer_func(main_log_writer, NULL, NULL);
    /* Peers vanish mid-reply; writes must fail with EPIPE, not kill us. */
    signal(SIGPIPE, SIG_IGN);
    if (!main_parse_args(&o, &argc, &argv, &err)) {
        fprintf(stderr, "ovgated: %s\n", err->message);
        main_opts_clear(&o);
        return 2;
    }
    if (o.version) {
        printf("ovgated %s\n", OVGATE_VERSION);
        main_opts_clear(&o);
        return 0;
    }
    d.opts = &o;
    d.passed = g_array_new(FALSE, FALSE, sizeof(struct main_passed_fd));
    if (o.serve_stdin == NULL && !o.check_config && !main_take_passed_fds(&d, &err)) {
        fprintf(stderr, "ovgated: %s\n", err->message);
        main_passed_clear(&d);
        main_opts_clear(&o);
        return 2;
    }
    cfg = main_load_cfg(&o, &err);
    if (cfg == NULL) {
        fprintf(stderr, "ovgated: %s\n", err->message);
        main_passed_clear(&d);
        main_opts_clear(&o);
        return 2;
    }
    if (o.check_config) {
        printf("%s: ok\n", o.config != NULL ? o.config : "built-in defaults");
        cfg_unref(cfg);
        main_passed_clear(&d);
        main_opts_clear(&o);
        return 0;
    }
    main_set_log_level(cfg->log_level);
    net_rxpoll_set_us((unsigned)cfg->busy_poll_us);
    main_raise_nofile();
    if (!main_setup(&d, cfg, &err)) {
        g_critical("%s", err->message);
        rc = 1;
        main_teardown(&d);
    } else if (o.serve_stdin != NULL) {
        rc = main_serve_stdin(&d);
    } else {
        rc = main_run(&d, cfg);
    }
    cfg_unref(cfg);
    main_passed_clear(&d);
    main_opts_clear(&o);
    return rc;
}
