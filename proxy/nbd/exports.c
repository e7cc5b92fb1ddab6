/* exports.c — NBD exports over the client registry (docs/nbd.md "Exports").
 *
 *   IMAGE         the image's newest generation, read-only, shared by any
 *                 number of connections (reg_attach_image).
 *   IMAGE/CLIENT  the client's own disk: that generation + its overlay,
 *                 read-write (reg_attach_client).
 *
 * One writer per overlay: a client export is held by at most one NBD
 * connection (srv->writers). A second connection for the same client is
 * refused with NBD_REP_ERR_POLICY, unless the client's configuration sets
 * nbd_replace_stale: then the old connection is kicked (a rebooted machine
 * whose old TCP connection is still half-open gets its disk back) and the new
 * one waits, bounded, until the old one has detached. A connection that has
 * already ended and is only unwinding is waited for in any case, so a client
 * reconnecting right after a disconnect is not refused.
 *
 * Multi-conn: NBD_FLAG_CAN_MULTI_CONN is advertised on image exports only.
 * They are read-only and immutable, so every connection sees the same bytes
 * and flush has nothing to make durable. Client exports allow one connection,
 * so advertising it there would invite clients (nbdcopy, qemu) to open
 * connections that are then refused.
 *
 * TLS binding: a client with nbd_tls_identity set is served only over TLS
 * whose PSK identity or client-certificate DN equals it.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "nbd-int.h"
#include "reg.h"
#include "log.h"

#define REPLACE_WAIT_US (10 * G_USEC_PER_SEC)

static int
view_disk_pread(void *disk, void *buf, size_t len, uint64_t offset)
{
    return view_pread(disk, buf, len, offset);
}

static int
view_disk_pwrite(void *disk, const void *buf, size_t len, uint64_t offset, unsigned vflags)
{
    return view_pwrite(disk, buf, len, offset, vflags);
}

static int
view_disk_zero(void *disk, uint64_t offset, uint64_t len, unsigned vflags)
{
    return view_zero(disk, offset, len, vflags);
}

static int
view_disk_flush(void *disk)
{
    return view_flush(disk);
}

static int
view_disk_block_status(void *disk, uint64_t offset, uint64_t len, bool base_detail,
                       view_extent_fn fn, void *user_data)
{
    return view_block_status(disk, offset, len, base_detail, fn, user_data);
}

/* Large reads: where the bytes live, so the reply can carry them without a
 * copy through a buffer (docs/nbd.md "Zero-copy reads"). */
static int
view_disk_read_segments(void *disk, uint64_t offset, uint64_t len, struct view_segments *out)
{
    return view_read_segments(disk, offset, len, out);
}

static const struct nbdsrv_disk_ops view_disk_ops = {
    .read_segments = view_disk_read_segments,
    .pread = view_disk_pread,
    .pwrite = view_disk_pwrite,
    .zero = view_disk_zero,
    .flush = view_disk_flush,
    .block_status = view_disk_block_status,
};

/* Registry kick: only start ending the session (reg.h). */
static void
conn_kick(void *user_data, const char *reason)
{
    struct nbdsrv_conn *conn = user_data;

    g_atomic_int_set(&conn->kicked, 1);
    g_message("%s: NBD connection ended: %s", conn->peer, reason ? reason : "kicked");
    shutdown(conn->io.fd, SHUT_RDWR);
}

/* The option reply for a registry refusal of export name, with *msg for
 * the client. A server-side failure (REG_ERROR_FAILED: out of file
 * descriptors, EIO, ...) says nothing about whether the export exists (scale
 * finding S1). proto.md has no "try again" error: NBD_REP_ERR_UNKNOWN is
 * defined as "the requested export is not available", which is true, and is
 * what nbdkit answers when opening an export fails; POLICY would claim a
 * permanent refusal and SHUTDOWN a server going away. So the code stays
 * UNKNOWN, the message says it is temporary and why, and we log a warning
 * (at default levels, unlike the option's debug trace). */
static uint32_t
reg_error_to_rep(struct nbdsrv_conn *conn, const char *name, const GError *error, char **msg)
{
    if (g_error_matches(error, REG_ERROR, REG_ERROR_FAILED)) {
        LOG_RATELIMITED(G_LOG_LEVEL_WARNING, 10, 5,
                        "%s: export '%s' refused for a server-side failure: %s", conn->peer, name,
                        error->message);
        *msg = g_strdup_printf("export '%s' is unavailable for now (server-side failure: "
                               "%s); try again later",
                               name, error->message);
        return NBD_REP_ERR_UNKNOWN;
    }
    *msg = g_strdup(error->message);
    if (g_error_matches(error, REG_ERROR, REG_ERROR_BUSY))
        return NBD_REP_ERR_POLICY;
    return NBD_REP_ERR_UNKNOWN;
}

/* Take srv->writers[client] for conn (see top). */
static uint32_t
claim_writer(struct nbdsrv *srv, struct nbdsrv_conn *conn, const char *client,
             const struct cfg_client *ccfg, char **msg)
{
    NBDSRV_LOCKED(srv);
    gint64 deadline = g_get_monotonic_time() + REPLACE_WAIT_US;
    struct nbdsrv_conn *kicked = NULL;

    for (;;) {
        if (srv->shutting_down) {
            *msg = g_strdup("server is shutting down");
            return NBD_REP_ERR_SHUTDOWN;
        }
        struct nbdsrv_conn *cur = g_hash_table_lookup(srv->writers, client);
        if (!cur) {
            g_hash_table_insert(srv->writers, g_strdup(client), conn);
            conn->writer_client = g_strdup(client);
            return 0;
        }
        bool ending = g_atomic_int_get(&cur->closing) || g_atomic_int_get(&cur->kicked);
        if (!ending && (!ccfg || !ccfg->nbd_replace_stale)) {
            *msg = g_strdup_printf("client %s already has an NBD connection from %s", client,
                                   cur->peer);
            return NBD_REP_ERR_POLICY;
        }
        if (!ending && cur != kicked) {
            g_message("%s: replacing the NBD connection of client %s from %s", conn->peer, client,
                      cur->peer);
            g_atomic_int_set(&cur->kicked, 1);
            shutdown(cur->io.fd, SHUT_RDWR);
            kicked = cur;
        }
        if (!nbdsrv_cond_wait_until(srv, deadline)) {
            *msg = g_strdup_printf("the old connection of client %s did not end", client);
            return NBD_REP_ERR_POLICY;
        }
    }
}

static void
release_writer(struct nbdsrv *srv, struct nbdsrv_conn *conn)
{
    if (!conn->writer_client)
        return;
    pthread_mutex_lock(&srv->lock);
    if (g_hash_table_lookup(srv->writers, conn->writer_client) == conn)
        g_hash_table_remove(srv->writers, conn->writer_client);
    pthread_cond_broadcast(&srv->cond);
    pthread_mutex_unlock(&srv->lock);
    g_clear_pointer(&conn->writer_client, g_free);
}

/* A client export's TLS binding (see top). */
static uint32_t
check_tls_binding(struct nbdsrv *srv, struct nbdsrv_conn *conn, const char *client,
                  const struct cfg_client *ccfg, char **msg)
{
    if (!ccfg || !ccfg->nbd_tls_identity)
        return 0;
    if (!conn->tls_active) {
        *msg = g_strdup_printf("export of client %s needs TLS", client);
        /* NBD_REP_ERR_TLS_REQD only where TLS can be had (proto.md NOTLS). */
        return conn->tls ? NBD_REP_ERR_TLS_REQD : NBD_REP_ERR_POLICY;
    }
    if (!conn->tls_identity || strcmp(conn->tls_identity, ccfg->nbd_tls_identity) != 0) {
        *msg = g_strdup_printf("TLS identity is not allowed to use client %s", client);
        return NBD_REP_ERR_POLICY;
    }
    return 0;
}

static struct nbdsrv_export *
export_from_view(const char *name, struct reg_attach *attach)
{
    struct view *view = reg_attach_get_view(attach);
    struct nbdsrv_export *exp = g_new0(struct nbdsrv_export, 1);
    const char *client = view_get_client(view);

    exp->name = g_strdup(name);
    exp->size = view_get_size(view);
    exp->granule = view_get_granule(view);
    exp->read_only = view_is_read_only(view);
    exp->multi_conn = exp->read_only && client == NULL;
    /* view_zero turns whole granules into ZERO map entries and writes at
     * most one partial granule at each end (NO_HOLE included). */
    exp->fast_zero = !exp->read_only;
    exp->ops = &view_disk_ops;
    exp->disk = view;
    exp->priv = attach;
    if (client)
        exp->description =
            g_strdup_printf("ovgate disk of client %s: image %s generation %u + overlay", client,
                            view_get_image(view), view_get_generation(view));
    else
        exp->description = g_strdup_printf("ovgate image %s generation %u (read-only)",
                                           view_get_image(view), view_get_generation(view));
    return exp;
}

static uint32_t
reg_export_open(struct nbdsrv *srv, struct nbdsrv_conn *conn, const char *name, bool for_go,
                struct nbdsrv_export **out, char **msg)
{
    g_auto(GStrv) parts = g_strsplit(name, "/", 3);
    g_autoptr(GError) error = NULL;
    struct reg_attach_params params = {
        .protocol = REG_PROTO_NBD,
        .peer = conn->peer,
        .initiator = name,
        .kick = conn_kick,
        .kick_data = conn,
    };

    if (!srv->reg || !parts[0] || !*parts[0] || (parts[1] && (!*parts[1] || parts[2]))) {
        *msg = g_strdup_printf("no export named '%s'", name);
        return NBD_REP_ERR_UNKNOWN;
    }
    if (!parts[1]) {
        struct reg_attach *attach = reg_attach_image(srv->reg, parts[0], &params, &error);
        if (!attach)
            return reg_error_to_rep(conn, name, error, msg);
        *out = export_from_view(name, attach);
        return 0;
    }

    const char *image = parts[0], *client = parts[1];
    const struct cfg_client *ccfg = cfg_get_client(conn->cfg, client);
    uint32_t err = check_tls_binding(srv, conn, client, ccfg, msg);
    if (err)
        return err;
    if (for_go && (err = claim_writer(srv, conn, client, ccfg, msg)) != 0)
        return err;
    struct reg_attach *attach = reg_attach_client(srv->reg, client, &params, &error);
    if (!attach) {
        release_writer(srv, conn);
        return reg_error_to_rep(conn, name, error, msg);
    }
    if (g_strcmp0(view_get_image(reg_attach_get_view(attach)), image) != 0) {
        reg_detach(attach);
        release_writer(srv, conn);
        *msg = g_strdup_printf("no export named '%s'", name);
        return NBD_REP_ERR_UNKNOWN;
    }
    *out = export_from_view(name, attach);
    return 0;
}

static void
reg_export_close(struct nbdsrv *srv, struct nbdsrv_conn *conn, struct nbdsrv_export *exp)
{
    if (!exp)
        return;
    reg_detach(exp->priv);
    exp->priv = NULL;
    if (conn->exp == exp)
        release_writer(srv, conn);
    nbdsrv_export_free(exp);
}

/* NBD_OPT_LIST names the image exports only: client exports are bound to one
 * machine each and listing them would tell every caller who the clients are. */
static GPtrArray *
reg_export_list(struct nbdsrv *srv, struct nbdsrv_conn *conn)
{
    GPtrArray *list = g_ptr_array_new_with_free_func(g_free);

    if (!srv->reg)
        return list;
    g_auto(GStrv) images = reg_list_images(srv->reg);
    for (int i = 0; images && images[i]; i++) {
        g_ptr_array_add(list, g_strdup(images[i]));
        g_ptr_array_add(list, g_strdup_printf("ovgate image %s, newest generation (read-only); "
                                              "clients use %s/CLIENT",
                                              images[i], images[i]));
    }
    return list;
}

const struct nbdsrv_export_ops nbdsrv_reg_exports = {
    .open = reg_export_open,
    .close = reg_export_close,
    .list = reg_export_list,
};

static struct cfg *
reg_current_cfg(struct nbdsrv *srv)
{
    return reg_get_cfg(srv->reg);
}

struct nbdsrv *
nbdsrv_new(struct reg *reg, GError **error)
{
    struct cfg *cfg = reg_get_cfg(reg);
    struct nbdsrv *srv = nbdsrv_new_with_exports(cfg, &nbdsrv_reg_exports, NULL, error);

    cfg_unref(cfg);
    if (srv) {
        srv->reg = reg;
        srv->get_cfg = reg_current_cfg;
    }
    return srv;
}
