/* nbdsrv.c — the NBD server object and the life of one connection.
 *
 * The daemon's net layer accepts a socket (TCP_NODELAY already set) and
 * calls nbdsrv_conn_run() on that connection's own thread
 * (docs/concurrency.md). The connection runs the handshake and then the
 * transmission phase with plain blocking code, and unwinds in one place:
 * close the export (detach from the registry, release the writer slot),
 * end TLS, close the socket.
 *
 * Ending connections from outside (nbdsrv_shutdown, a registry kick, a
 * replacing connection) is shutdown(fd, SHUT_RDWR): the blocked read or
 * write returns and the thread unwinds by itself. srv->lock guards the set
 * of connections, so a socket is never shut down after it was closed.
 */
#include <assert.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>

#include "nbd-int.h"
#include "log.h"

G_DEFINE_QUARK(nbdsrv - error - quark, nbdsrv_error)

struct nbdsrv *
nbdsrv_new_with_exports(struct cfg *cfg, const struct nbdsrv_export_ops *ops, void *ops_data,
                        GError **error)
{
    GError *local = NULL;
    struct nbdsrv_tls *tls = nbdsrv_tls_new(cfg, &local);

    if (local) {
        g_propagate_error(error, local);
        return NULL;
    }
    if (cfg->nbd_require_tls && !tls) {
        g_set_error(error, NBDSRV_ERROR, NBDSRV_ERROR_CONFIG,
                    "nbd_require_tls needs tls_cert and tls_key, or tls_psk_file");
        return NULL;
    }
    struct nbdsrv *srv = g_new0(struct nbdsrv, 1);
    srv->cfg = cfg_ref(cfg);
    srv->exports = ops;
    srv->exports_data = ops_data;
    srv->tls = tls;
    srv->tls_cfg = cfg_ref(cfg);
    pthread_condattr_t attr;
    pthread_mutex_init(&srv->lock, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&srv->cond, &attr);
    pthread_condattr_destroy(&attr);
    srv->conns = g_hash_table_new(NULL, NULL);
    srv->writers = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    srv->handshake_timeout_ms = NBDSRV_HANDSHAKE_TIMEOUT_MS;
    return srv;
}

void
nbdsrv_free(struct nbdsrv *srv)
{
    if (!srv)
        return;
    g_warn_if_fail(g_hash_table_size(srv->conns) == 0);
    g_hash_table_unref(srv->conns);
    g_hash_table_unref(srv->writers);
    nbdsrv_tls_unref(srv->tls);
    cfg_unref(srv->tls_cfg);
    cfg_unref(srv->cfg);
    pthread_mutex_destroy(&srv->lock);
    pthread_cond_destroy(&srv->cond);
    g_free(srv);
}

struct cfg *
nbdsrv_get_cfg(struct nbdsrv *srv)
{
    return srv->get_cfg ? srv->get_cfg(srv) : cfg_ref(srv->cfg);
}

pthread_mutex_t *
nbdsrv_lock(struct nbdsrv *srv)
{
    pthread_mutex_lock(&srv->lock);
    return &srv->lock;
}

void
nbdsrv_unlockp(pthread_mutex_t **lockp)
{
    if (*lockp != NULL)
        pthread_mutex_unlock(*lockp);
}

bool
nbdsrv_cond_wait_until(struct nbdsrv *srv, gint64 deadline)
{
    struct timespec ts = {
        .tv_sec = deadline / G_USEC_PER_SEC,
        .tv_nsec = (deadline % G_USEC_PER_SEC) * 1000,
    };

    return pthread_cond_timedwait(&srv->cond, &srv->lock, &ts) != ETIMEDOUT;
}

bool
nbdsrv_is_shutting_down(struct nbdsrv *srv)
{
    NBDSRV_LOCKED(srv);

    return srv->shutting_down;
}

void
nbdsrv_shutdown(struct nbdsrv *srv)
{
    GHashTableIter it;
    gpointer key;

    pthread_mutex_lock(&srv->lock);
    srv->shutting_down = true;
    g_hash_table_iter_init(&it, srv->conns);
    while (g_hash_table_iter_next(&it, &key, NULL)) {
        struct nbdsrv_conn *conn = key;
        g_atomic_int_set(&conn->kicked, 1);
        shutdown(conn->io.fd, SHUT_RDWR);
    }
    pthread_cond_broadcast(&srv->cond);
    pthread_mutex_unlock(&srv->lock);
}

static void
set_recv_timeout(int fd, unsigned ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};

    /* Not fatal: without it only the timeout is lost (e.g. not a socket). */
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
        g_debug("SO_RCVTIMEO: %s", g_strerror(errno));
}

/* The credentials for a connection under cfg: reloaded when a reloaded
 * configuration names other files (docs/config.md: TLS settings apply to
 * new connections). Returns a reference or NULL (no TLS). */
static struct nbdsrv_tls *
conn_tls(struct nbdsrv *srv, struct cfg *cfg)
{
    NBDSRV_LOCKED(srv);

    if (cfg != srv->tls_cfg && !nbdsrv_tls_same_files(cfg, srv->tls_cfg)) {
        g_autoptr(GError) error = NULL;
        struct nbdsrv_tls *tls = nbdsrv_tls_new(cfg, &error);
        if (error) {
            g_warning("NBD TLS credentials not reloaded, keeping the old ones: %s", error->message);
        } else {
            g_message("NBD TLS credentials %s", tls ? "reloaded" : "removed");
            nbdsrv_tls_unref(srv->tls);
            srv->tls = tls;
        }
    }
    if (cfg != srv->tls_cfg) {
        cfg_unref(srv->tls_cfg);
        srv->tls_cfg = cfg_ref(cfg);
    }
    return nbdsrv_tls_ref(srv->tls);
}

bool
nbdsrv_conn_check_invariants(const struct nbdsrv_conn *conn)
{
    switch (conn->state) {
    case NBDSRV_STATE_GREETING:
        return conn->exp == NULL && !conn->tls_active;
    case NBDSRV_STATE_OPTIONS:
        /* contexts only with structured replies; identity only with TLS */
        return conn->exp == NULL && (conn->meta == 0 || conn->structured) &&
               (conn->tls_identity == NULL || conn->tls_active);
    case NBDSRV_STATE_TRANSMISSION:
        return conn->exp != NULL && (conn->meta == 0 || conn->structured) &&
               (!conn->cfg->nbd_require_tls || conn->tls_active);
    case NBDSRV_STATE_CLOSED:
        return true;
    }
    return false;
}

void
nbdsrv_conn_run(struct nbdsrv *srv, int fd, const char *peer)
{
    struct nbdsrv_conn *conn = g_new0(struct nbdsrv_conn, 1);

    conn->srv = srv;
    conn->peer = g_strdup(peer ? peer : "?");
    conn->cfg = nbdsrv_get_cfg(srv);
    conn->tls = conn_tls(srv, conn->cfg);
    nbdsrv_io_init(&conn->io, fd);
    bool late;

    pthread_mutex_lock(&srv->lock);
    conn->id = ++srv->next_id;
    g_hash_table_add(srv->conns, conn);
    /* Accepted just before nbdsrv_shutdown() but started after it: the
     * shutdown never saw this connection, so it ends here, or a silent peer
     * would hold the daemon's bounded shutdown until the handshake timeout. */
    late = srv->shutting_down;
    pthread_mutex_unlock(&srv->lock);
    g_debug("%s: NBD connection %" G_GUINT64_FORMAT "%s", conn->peer, conn->id,
            late ? " refused: shutting down" : "");

    /* Negotiation must not take forever: a peer that connects and goes
     * silent would hold a thread. Transmission may idle as long as it likes. */
    set_recv_timeout(fd, srv->handshake_timeout_ms);
    if (!late && nbdsrv_handshake(conn)) {
        set_recv_timeout(fd, 0);
        nbdsrv_transmission(conn);
    }
    g_atomic_int_set(&conn->closing, 1);

    if (conn->exp)
        srv->exports->close(srv, conn, conn->exp);
    conn->exp = NULL;
    nbdsrv_tls_end(&conn->io);
    pthread_mutex_lock(&srv->lock);
    g_hash_table_remove(srv->conns, conn);
    pthread_mutex_unlock(&srv->lock);
    g_debug("%s: NBD connection %" G_GUINT64_FORMAT " closed (%" G_GUINT64_FORMAT
            " bytes in, %" G_GUINT64_FORMAT " out)",
            conn->peer, conn->id, conn->io.rx_bytes, conn->io.tx_bytes);
    nbdsrv_io_clear(&conn->io);
    close(fd);
    cfg_unref(conn->cfg);
    nbdsrv_tls_unref(conn->tls);
    g_free(conn->tls_identity);
    g_free(conn->meta_export);
    g_free(conn->writer_client);
    g_free(conn->peer);
    g_free(conn);
}

void
nbdsrv_export_free(struct nbdsrv_export *exp)
{
    if (!exp)
        return;
    g_free(exp->name);
    g_free(exp->description);
    g_free(exp);
}
