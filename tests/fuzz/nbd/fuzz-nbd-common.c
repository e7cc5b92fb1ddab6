/* fuzz-nbd-common.c — see fuzz-nbd-common.h. Each input runs on a fresh
 * socketpair: the server on its own thread (as in the daemon), a drain
 * thread reading its replies (so a large reply never blocks it), and the
 * caller writing the input. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <glib.h>
#include <glib/gstdio.h>

#include "fuzz-nbd-common.h"

static struct nbdsrv *fuzz_srv;
static char *fuzz_psk_path;

static void
quiet_log(const gchar *domain, GLogLevelFlags level, const gchar *message, gpointer user_data)
{
}

static void
fuzz_cleanup(void)
{
    if (fuzz_psk_path)
        g_unlink(fuzz_psk_path);
}

struct nbdsrv *
fuzz_nbd_server(void)
{
    if (fuzz_srv)
        return fuzz_srv;
    g_autoptr(GError) error = NULL;
    /* Quiet: a fuzzer makes the server log on nearly every input. */
    g_log_set_handler("ovgate-nbd",
                      G_LOG_LEVEL_DEBUG | G_LOG_LEVEL_INFO | G_LOG_LEVEL_MESSAGE |
                          G_LOG_LEVEL_WARNING,
                      quiet_log, NULL);
    int fd = g_file_open_tmp("fuzz-nbd-XXXXXX.psk", &fuzz_psk_path, &error);
    if (fd < 0) {
        fprintf(stderr, "fuzz: %s\n", error->message);
        abort();
    }
    static const char keys[] = "alice:00112233445566778899aabbccddeeff\n";
    if (write(fd, keys, sizeof(keys) - 1) != (ssize_t)(sizeof(keys) - 1))
        abort();
    close(fd);
    atexit(fuzz_cleanup);
    struct cfg *cfg = cfg_load(NULL, &error);
    if (!cfg)
        abort();
    cfg->tls_psk_file = g_strdup(fuzz_psk_path);
    fuzz_srv = nbdsrv_new_with_exports(cfg, &nbdt_export_ops, nbdt_exports_new(256 * 1024), &error);
    cfg_unref(cfg);
    if (!fuzz_srv) {
        fprintf(stderr, "fuzz: %s\n", error->message);
        abort();
    }
    return fuzz_srv;
}

struct serve_args {
    struct nbdsrv *srv;
    int fd;
};

static gpointer
serve_thread(gpointer p)
{
    struct serve_args *a = p;
    nbdsrv_conn_run(a->srv, a->fd, "fuzz");
    return NULL;
}

static gpointer
drain_thread(gpointer p)
{
    int fd = GPOINTER_TO_INT(p);
    static __thread char buf[65536];
    while (recv(fd, buf, sizeof(buf), 0) > 0)
        ;
    return NULL;
}

static void
send_all(int fd, const uint8_t *p, size_t len)
{
    while (len > 0) {
        ssize_t r = send(fd, p, len, MSG_NOSIGNAL);
        if (r <= 0)
            return; /* the server hung up: fine */
        p += r;
        len -= (size_t)r;
    }
}

void
fuzz_nbd_run(const uint8_t *prefix, size_t prefix_len, const uint8_t *data, size_t len)
{
    int sv[2];
    struct serve_args a = {.srv = fuzz_nbd_server()};

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        abort();
    a.fd = sv[0];
    GThread *srv = g_thread_new("fuzz-srv", serve_thread, &a);
    GThread *drain = g_thread_new("fuzz-drain", drain_thread, GINT_TO_POINTER(sv[1]));
    send_all(sv[1], prefix, prefix_len);
    send_all(sv[1], data, len);
    shutdown(sv[1], SHUT_WR);
    g_thread_join(srv); /* closes sv[0]; the drain thread then sees EOF */
    g_thread_join(drain);
    close(sv[1]);
}
