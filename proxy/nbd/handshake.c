/* handshake.c — fixed newstyle negotiation (proto.md "Fixed newstyle
 * negotiation", "Option types", "TLS support").
 *
 * Owns the GREETING and OPTIONS states of a connection (state diagram in
 * nbd-int.h). One handler per option, dispatched through a switch after the
 * checks every option shares (payload size, shutdown, FORCEDTLS).
 *
 * Design notes:
 * - Only fixed newstyle: a client that does not set NBD_FLAG_C_FIXED_NEWSTYLE
 *   is disconnected (we never speak oldstyle or plain newstyle).
 * - Option payloads larger than NBDSRV_OPT_MAX_LEN are never allocated: up
 *   to NBDSRV_OPT_DRAIN_MAX they are read and dropped and answered with
 *   NBD_REP_ERR_TOO_BIG; beyond that (or for NBD_OPT_EXPORT_NAME, which
 *   cannot be answered with an error) the connection is dropped.
 * - TLS modes: without credentials we are NOTLS (STARTTLS gets
 *   NBD_REP_ERR_POLICY). With credentials and nbd_require_tls we are
 *   FORCEDTLS: every option but STARTTLS and ABORT gets NBD_REP_ERR_TLS_REQD
 *   until TLS is up. With credentials but not required we are SELECTIVETLS:
 *   exports bound to a TLS identity answer NBD_REP_ERR_TLS_REQD.
 * - STARTTLS forgets everything negotiated before it (structured replies,
 *   metadata contexts), so nothing a man in the middle injected in clear
 *   text survives into the TLS session.
 * - Metadata contexts selected for one export do not carry over to NBD_OPT_GO
 *   of another export.
 */
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <string.h>

#include "nbd-int.h"
#include "log.h"

enum opt_result {
    OPT_CONTINUE, /* answered; read the next option */
    OPT_GO,       /* export open: enter transmission */
    OPT_CLOSE,    /* end the session */
};

static void
opt_reply(struct nbdsrv_conn *conn, uint32_t opt, uint32_t type, const void *data, size_t len)
{
    uint8_t *p = nbdsrv_io_put(&conn->io, NBD_OPT_REP_HDR_LEN + len);

    nbdsrv_encode_opt_reply(p, opt, type, (uint32_t)len);
    if (len)
        memcpy(p + NBD_OPT_REP_HDR_LEN, data, len);
}

/* An error reply carries a message for the user (proto.md "Option reply
 * types": error replies MAY carry a string). */
static G_GNUC_PRINTF(4, 5) void opt_error(struct nbdsrv_conn *conn, uint32_t opt, uint32_t type,
                                          const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    size_t len = MIN(strlen(msg), (size_t)NBDSRV_STRING_MAX);

    g_debug("%s: %s -> error 0x%x: %s", conn->peer, nbdsrv_opt_name(opt), type, msg);
    opt_reply(conn, opt, type, msg, len);
}

static enum opt_result
opt_abort(struct nbdsrv_conn *conn, uint32_t opt)
{
    /* proto.md: the server MUST reply with NBD_REP_ACK; then the client
     * shuts TLS down and drops the connection. */
    opt_reply(conn, opt, NBD_REP_ACK, NULL, 0);
    nbdsrv_io_flush(&conn->io);
    return OPT_CLOSE;
}

static enum opt_result
opt_list(struct nbdsrv_conn *conn, uint32_t opt, size_t len)
{
    if (len != 0) {
        opt_error(conn, opt, NBD_REP_ERR_INVALID, "NBD_OPT_LIST takes no data");
        return OPT_CONTINUE;
    }
    g_autoptr(GPtrArray) list = conn->srv->exports->list(conn->srv, conn);
    for (guint i = 0; list && i + 1 < list->len; i += 2) {
        const char *name = list->pdata[i], *desc = list->pdata[i + 1];
        size_t nl = strlen(name), dl = MIN(strlen(desc), (size_t)NBDSRV_STRING_MAX);
        if (nl > NBDSRV_STRING_MAX)
            continue;
        uint8_t *p = nbdsrv_io_put(&conn->io, NBD_OPT_REP_HDR_LEN + 4 + nl + dl);
        nbdsrv_encode_opt_reply(p, opt, NBD_REP_SERVER, (uint32_t)(4 + nl + dl));
        nbdsrv_put_be32(p + NBD_OPT_REP_HDR_LEN, (uint32_t)nl);
        memcpy(p + NBD_OPT_REP_HDR_LEN + 4, name, nl);
        memcpy(p + NBD_OPT_REP_HDR_LEN + 4 + nl, desc, dl);
    }
    opt_reply(conn, opt, NBD_REP_ACK, NULL, 0);
    return OPT_CONTINUE;
}

static enum opt_result
opt_starttls(struct nbdsrv_conn *conn, uint32_t opt, size_t len)
{
    if (len != 0) {
        opt_error(conn, opt, NBD_REP_ERR_INVALID, "NBD_OPT_STARTTLS takes no data");
        return OPT_CONTINUE;
    }
    if (!conn->tls) {
        opt_error(conn, opt, NBD_REP_ERR_POLICY, "TLS is not configured on this server");
        return OPT_CONTINUE;
    }
    if (conn->tls_active) {
        opt_error(conn, opt, NBD_REP_ERR_INVALID, "TLS is already active");
        return OPT_CONTINUE;
    }
    opt_reply(conn, opt, NBD_REP_ACK, NULL, 0);
    if (nbdsrv_io_flush(&conn->io) < 0)
        return OPT_CLOSE;

    g_autoptr(GError) error = NULL;
    char *identity = NULL;
    if (!nbdsrv_tls_start(conn->tls, &conn->io, &identity, &error)) {
        LOG_RATELIMITED(G_LOG_LEVEL_MESSAGE, 10, 5, "%s: %s", conn->peer, error->message);
        return OPT_CLOSE;
    }
    conn->tls_active = true;
    conn->tls_identity = identity;
    conn->structured = false;
    conn->meta = 0;
    g_clear_pointer(&conn->meta_export, g_free);
    g_debug("%s: TLS up, identity %s", conn->peer, identity ? identity : "(none)");
    return OPT_CONTINUE;
}

static enum opt_result
opt_structured_reply(struct nbdsrv_conn *conn, uint32_t opt, size_t len)
{
    if (len != 0) {
        opt_error(conn, opt, NBD_REP_ERR_INVALID, "NBD_OPT_STRUCTURED_REPLY takes no data");
        return OPT_CONTINUE;
    }
    conn->structured = true;
    opt_reply(conn, opt, NBD_REP_ACK, NULL, 0);
    return OPT_CONTINUE;
}

static void
info_reply(struct nbdsrv_conn *conn, uint32_t opt, uint16_t type, const void *data, size_t len)
{
    uint8_t *p = nbdsrv_io_put(&conn->io, NBD_OPT_REP_HDR_LEN + 2 + len);

    nbdsrv_encode_opt_reply(p, opt, NBD_REP_INFO, (uint32_t)(2 + len));
    nbdsrv_put_be16(p + NBD_OPT_REP_HDR_LEN, type);
    if (len)
        memcpy(p + NBD_OPT_REP_HDR_LEN + 2, data, len);
}

/* NBD_REP_INFO replies for an open export: NBD_INFO_EXPORT always,
 * NBD_INFO_BLOCK_SIZE always (we accept any alignment, so a minimum of 1
 * imposes nothing on a client that did not ask), NAME and DESCRIPTION when
 * asked for. Each at most once. */
static void
info_replies(struct nbdsrv_conn *conn, uint32_t opt, const struct nbdsrv_export *exp,
             const struct nbdsrv_info_req *req)
{
    uint8_t buf[12];
    bool want_name = false, want_desc = false;

    for (uint16_t i = 0; i < req->n_info; i++) {
        uint16_t t = nbdsrv_get_be16(req->info + 2 * i);
        want_name |= t == NBD_INFO_NAME;
        want_desc |= t == NBD_INFO_DESCRIPTION;
    }
    nbdsrv_put_be64(buf, exp->size);
    nbdsrv_put_be16(buf + 8, nbdsrv_export_tflags(exp, conn->structured));
    info_reply(conn, opt, NBD_INFO_EXPORT, buf, 10);
    nbdsrv_put_be32(buf, 1);
    nbdsrv_put_be32(buf + 4, exp->granule);
    nbdsrv_put_be32(buf + 8, NBDSRV_MAX_PAYLOAD);
    info_reply(conn, opt, NBD_INFO_BLOCK_SIZE, buf, 12);
    if (want_name)
        info_reply(conn, opt, NBD_INFO_NAME, exp->name, strlen(exp->name));
    if (want_desc && exp->description)
        info_reply(conn, opt, NBD_INFO_DESCRIPTION, exp->description,
                   MIN(strlen(exp->description), (size_t)NBDSRV_STRING_MAX));
}

static enum opt_result
opt_info_go(struct nbdsrv_conn *conn, uint32_t opt, const uint8_t *data, size_t len)
{
    struct nbdsrv_info_req req;
    uint32_t err = nbdsrv_parse_info_req(data, len, &req);
    g_autofree char *name = req.name;

    if (err) {
        opt_error(conn, opt, err, "malformed %s request", nbdsrv_opt_name(opt));
        return OPT_CONTINUE;
    }
    struct nbdsrv_export *exp = NULL;
    g_autofree char *msg = NULL;
    err = conn->srv->exports->open(conn->srv, conn, name, opt == NBD_OPT_GO, &exp, &msg);
    if (err) {
        /* Like iSCSI login refusals: at default log levels, rate-limited. */
        LOG_RATELIMITED(G_LOG_LEVEL_MESSAGE, 10, 5, "%s: %s '%s' refused: %s", conn->peer,
                        nbdsrv_opt_name(opt), name, msg ? msg : "not available");
        opt_error(conn, opt, err, "%s", msg ? msg : "export not available");
        return OPT_CONTINUE;
    }
    info_replies(conn, opt, exp, &req);
    opt_reply(conn, opt, NBD_REP_ACK, NULL, 0);
    if (opt == NBD_OPT_INFO) {
        conn->srv->exports->close(conn->srv, conn, exp);
        return OPT_CONTINUE;
    }
    if (conn->meta_export && strcmp(conn->meta_export, name) != 0)
        conn->meta = 0;
    conn->exp = exp;
    return OPT_GO;
}

static enum opt_result
opt_export_name(struct nbdsrv_conn *conn, uint32_t opt, const uint8_t *data, size_t len)
{
    /* proto.md: if the export cannot be served, the server MUST terminate
     * the session (this option has no error reply). */
    if (nbdsrv_check_string(data, len)) {
        LOG_RATELIMITED(G_LOG_LEVEL_MESSAGE, 10, 5, "%s: invalid export name", conn->peer);
        return OPT_CLOSE;
    }
    g_autofree char *name = g_strndup((const char *)data, len);
    g_autofree char *msg = NULL;
    struct nbdsrv_export *exp = NULL;
    uint32_t err = conn->srv->exports->open(conn->srv, conn, name, true, &exp, &msg);
    if (err) {
        LOG_RATELIMITED(G_LOG_LEVEL_MESSAGE, 10, 5, "%s: NBD_OPT_EXPORT_NAME '%s' refused: %s",
                        conn->peer, name, msg ? msg : "not available");
        return OPT_CLOSE;
    }
    uint8_t *p = nbdsrv_io_put(&conn->io, 10 + (conn->no_zeroes ? 0 : 124));
    nbdsrv_put_be64(p, exp->size);
    nbdsrv_put_be16(p + 8, nbdsrv_export_tflags(exp, conn->structured));
    if (!conn->no_zeroes)
        memset(p + 10, 0, 124);
    if (conn->meta_export && strcmp(conn->meta_export, name) != 0)
        conn->meta = 0;
    conn->exp = exp;
    return OPT_GO;
}

static void
meta_context_reply(struct nbdsrv_conn *conn, uint32_t opt, uint32_t id, const char *name)
{
    size_t nl = strlen(name);
    uint8_t *p = nbdsrv_io_put(&conn->io, NBD_OPT_REP_HDR_LEN + 4 + nl);

    nbdsrv_encode_opt_reply(p, opt, NBD_REP_META_CONTEXT, (uint32_t)(4 + nl));
    nbdsrv_put_be32(p + NBD_OPT_REP_HDR_LEN, id);
    memcpy(p + NBD_OPT_REP_HDR_LEN + 4, name, nl);
}

static enum opt_result
opt_meta_context(struct nbdsrv_conn *conn, uint32_t opt, const uint8_t *data, size_t len)
{
    bool list = opt == NBD_OPT_LIST_META_CONTEXT;

    /* A failed SET leaves no context selected (never a stale earlier set). */
    if (!list) {
        conn->meta = 0;
        g_clear_pointer(&conn->meta_export, g_free);
    }
    /* proto.md: only after structured replies were negotiated. */
    if (!conn->structured) {
        opt_error(conn, opt, NBD_REP_ERR_INVALID, "negotiate structured replies first");
        return OPT_CONTINUE;
    }
    g_autofree struct nbdsrv_meta_req *req = g_new(struct nbdsrv_meta_req, 1);
    uint32_t err = nbdsrv_parse_meta_req(data, len, req);
    g_autofree char *name = req->name;
    if (err) {
        opt_error(conn, opt, err, "malformed %s request", nbdsrv_opt_name(opt));
        return OPT_CONTINUE;
    }
    struct nbdsrv_export *exp = NULL;
    g_autofree char *msg = NULL;
    err = conn->srv->exports->open(conn->srv, conn, name, false, &exp, &msg);
    if (err) {
        opt_error(conn, opt, err, "%s", msg ? msg : "export not available");
        return OPT_CONTINUE;
    }
    conn->srv->exports->close(conn->srv, conn, exp);

    unsigned sel = 0;
    if (list && req->n_queries == 0)
        sel = NBDSRV_META_ALL;
    for (uint32_t i = 0; i < req->n_queries; i++)
        sel |= nbdsrv_meta_match((const char *)req->query[i], req->query_len[i], list);
    for (unsigned i = 0; i < NBDSRV_META_COUNT; i++) {
        if (sel & (1u << i))
            meta_context_reply(conn, opt, list ? 0 : nbdsrv_meta_id(i), nbdsrv_meta_name(i));
    }
    g_debug("%s: %s for '%s': %u queries select contexts 0x%x", conn->peer, nbdsrv_opt_name(opt),
            name, req->n_queries, sel);
    if (!list) {
        conn->meta = sel;
        g_free(conn->meta_export);
        conn->meta_export = g_steal_pointer(&name);
    }
    opt_reply(conn, opt, NBD_REP_ACK, NULL, 0);
    return OPT_CONTINUE;
}

/* Checks every option shares; false when the option has been answered
 * (or the session must end: *res says which). */
static bool
opt_gate(struct nbdsrv_conn *conn, uint32_t opt, enum opt_result *res)
{
    *res = OPT_CONTINUE;
    if (opt == NBD_OPT_ABORT)
        return true;
    if (nbdsrv_is_shutting_down(conn->srv)) {
        if (opt == NBD_OPT_EXPORT_NAME)
            *res = OPT_CLOSE;
        else
            opt_error(conn, opt, NBD_REP_ERR_SHUTDOWN, "server is shutting down");
        return false;
    }
    if (conn->cfg->nbd_require_tls && !conn->tls_active && opt != NBD_OPT_STARTTLS) {
        if (opt == NBD_OPT_EXPORT_NAME) {
            LOG_RATELIMITED(G_LOG_LEVEL_MESSAGE, 10, 5,
                            "%s: NBD_OPT_EXPORT_NAME without TLS refused", conn->peer);
            *res = OPT_CLOSE;
        } else {
            opt_error(conn, opt, NBD_REP_ERR_TLS_REQD, "TLS is required: use NBD_OPT_STARTTLS");
        }
        return false;
    }
    return true;
}

static enum opt_result
opt_dispatch(struct nbdsrv_conn *conn, uint32_t opt, const uint8_t *data, size_t len)
{
    enum opt_result res;

    if (!opt_gate(conn, opt, &res))
        return res;
    switch (opt) {
    case NBD_OPT_EXPORT_NAME:
        return opt_export_name(conn, opt, data, len);
    case NBD_OPT_ABORT:
        return opt_abort(conn, opt);
    case NBD_OPT_LIST:
        return opt_list(conn, opt, len);
    case NBD_OPT_STARTTLS:
        return opt_starttls(conn, opt, len);
    case NBD_OPT_INFO:
    case NBD_OPT_GO:
        return opt_info_go(conn, opt, data, len);
    case NBD_OPT_STRUCTURED_REPLY:
        return opt_structured_reply(conn, opt, len);
    case NBD_OPT_LIST_META_CONTEXT:
    case NBD_OPT_SET_META_CONTEXT:
        return opt_meta_context(conn, opt, data, len);
    default:
        opt_error(conn, opt, NBD_REP_ERR_UNSUP, "option %u (%s) is not supported", opt,
                  nbdsrv_opt_name(opt));
        return OPT_CONTINUE;
    }
}

static bool
greeting(struct nbdsrv_conn *conn)
{
    uint8_t *p = nbdsrv_io_put(&conn->io, 18);

    nbdsrv_put_be64(p, NBD_MAGIC_INIT_PASSWD);
    nbdsrv_put_be64(p + 8, NBD_MAGIC_IHAVEOPT);
    nbdsrv_put_be16(p + 16, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
    if (nbdsrv_io_want(&conn->io, 4) < 0)
        return false;
    uint32_t cflags = nbdsrv_get_be32(nbdsrv_io_peek(&conn->io));
    nbdsrv_io_consume(&conn->io, 4);
    /* proto.md "Client flags": unknown flags MUST drop the connection. */
    if (cflags & ~(uint32_t)(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES)) {
        LOG_RATELIMITED(G_LOG_LEVEL_MESSAGE, 10, 5, "%s: unknown client flags 0x%x", conn->peer,
                        cflags);
        return false;
    }
    if (!(cflags & NBD_FLAG_C_FIXED_NEWSTYLE)) {
        LOG_RATELIMITED(G_LOG_LEVEL_MESSAGE, 10, 5,
                        "%s: client does not speak fixed newstyle negotiation", conn->peer);
        return false;
    }
    conn->no_zeroes = (cflags & NBD_FLAG_C_NO_ZEROES) != 0;
    return true;
}

/* Read one option header and its payload; false ends the session. */
static bool
read_option(struct nbdsrv_conn *conn, uint32_t *opt, uint8_t **data, uint32_t *len, bool *too_big)
{
    *data = NULL;
    *too_big = false;
    if (nbdsrv_io_want(&conn->io, NBD_OPT_HDR_LEN) < 0)
        return false;
    const uint8_t *h = nbdsrv_io_peek(&conn->io);
    uint64_t magic = nbdsrv_get_be64(h);
    *opt = nbdsrv_get_be32(h + 8);
    *len = nbdsrv_get_be32(h + 12);
    nbdsrv_io_consume(&conn->io, NBD_OPT_HDR_LEN);
    if (magic != NBD_MAGIC_IHAVEOPT) {
        LOG_RATELIMITED(G_LOG_LEVEL_MESSAGE, 10, 5, "%s: bad option magic", conn->peer);
        return false;
    }
    if (++conn->n_options > NBDSRV_MAX_OPTIONS) {
        LOG_RATELIMITED(G_LOG_LEVEL_MESSAGE, 10, 5, "%s: too many options", conn->peer);
        return false;
    }
    if (*len > NBDSRV_OPT_MAX_LEN) {
        if (*opt == NBD_OPT_EXPORT_NAME || *len > NBDSRV_OPT_DRAIN_MAX) {
            LOG_RATELIMITED(G_LOG_LEVEL_MESSAGE, 10, 5, "%s: option %u of %u bytes", conn->peer,
                            *opt, *len);
            return false;
        }
        *too_big = true;
        return nbdsrv_io_skip(&conn->io, *len) == 0;
    }
    *data = g_malloc(*len ? *len : 1);
    return nbdsrv_io_read(&conn->io, *data, *len) == 0;
}

bool
nbdsrv_handshake(struct nbdsrv_conn *conn)
{
    conn->state = NBDSRV_STATE_GREETING;
    if (!greeting(conn)) {
        conn->state = NBDSRV_STATE_CLOSED;
        return false;
    }
    conn->state = NBDSRV_STATE_OPTIONS;
    for (;;) {
        uint32_t opt, len;
        bool too_big;
        g_autofree uint8_t *data = NULL;
        enum opt_result res;

        if (!read_option(conn, &opt, &data, &len, &too_big)) {
            res = OPT_CLOSE;
        } else if (too_big) {
            opt_error(conn, opt, NBD_REP_ERR_TOO_BIG, "option data of %u bytes is too large", len);
            res = OPT_CONTINUE;
        } else {
            res = opt_dispatch(conn, opt, data, len);
        }
        if (res == OPT_CLOSE) {
            nbdsrv_io_flush(&conn->io);
            conn->state = NBDSRV_STATE_CLOSED;
            return false;
        }
        if (res == OPT_GO) {
            conn->state = NBDSRV_STATE_TRANSMISSION;
            assert(nbdsrv_conn_check_invariants(conn));
            return nbdsrv_io_flush(&conn->io) == 0;
        }
    }
}
