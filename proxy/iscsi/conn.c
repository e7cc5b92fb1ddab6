/* conn.c — one iSCSI connection: its thread's main loop, the full feature
 * phase dispatch, NOP-In/NOP-Out, Logout, Reject and SNACK.
 *
 * Design notes:
 * - Blocking I/O over the receive machine (rx.c). iscsit_conn_fill sends
 *   the queued replies and blocks only once the socket is drained (a read
 *   that did not fill the buffer, or a non-blocking read finding nothing).
 *   So a batch of commands that arrived together is executed back to back
 *   and answered with one sendmsg (cork while more input is buffered,
 *   docs/concurrency.md); at queue depth 1 a command costs one recv and one
 *   sendmsg. Timeouts (login, NOP-In pings) are SO_RCVTIMEO on that read.
 * - Phase and CmdSN window are checked once, in conn_dispatch, before the
 *   opcode's handler runs (RFC 7143 §3.2.2.1: a non-immediate command
 *   outside [ExpCmdSN, MaxCmdSN] is dropped silently; immediate commands do
 *   not advance ExpCmdSN). Handlers come from a designated-initializer table.
 * - Commands ahead of ExpCmdSN but inside the window are held (copied) and
 *   delivered when the gap closes, so commands reach SCSI in CmdSN order.
 * - The target pings an initiator idle for nop_interval_s with a NOP-In and
 *   drops the connection when nothing at all arrives for nop_timeout_s
 *   after the ping.
 */
#include <errno.h>
#include <netdb.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "log.h"
#include "iscsi-int.h"

bool
iscsit_conn_check_invariants(const struct iscsit_conn *conn)
{
    switch (conn->state) {
    case ISCSIT_CONN_XPT_UP:
    case ISCSIT_CONN_IN_LOGIN:
        return g_hash_table_size(conn->tasks) == 0;
    case ISCSIT_CONN_LOGGED_IN:
    case ISCSIT_CONN_IN_LOGOUT:
        return conn->sess && conn->sess->conn == conn && conn->sess->state == ISCSIT_SESS_LOGGED_IN;
    case ISCSIT_CONN_CLEANUP:
        return true;
    }
    return false;
}

void
iscsit_conn_shutdown(struct iscsit_conn *conn)
{
    if (!conn)
        return;
    g_mutex_lock(&conn->fd_lock);
    if (conn->fd >= 0)
        shutdown(conn->fd, SHUT_RDWR);
    g_mutex_unlock(&conn->fd_lock);
}

/* RFC 7143 §4.2.2.1: the window is ISCSIT_CMDSN_WINDOW commands less one
 * per task still waiting for its Data-Out, so an initiator that never sends
 * its data runs out of CmdSNs instead of growing our task table without
 * bound. MaxCmdSN never moves back (initiators ignore a smaller one). */
void
iscsit_conn_update_window(struct iscsit_conn *conn)
{
    struct iscsit_sess *sess = conn->sess;
    guint waiting = g_hash_table_size(conn->tasks);
    uint32_t open = ISCSIT_CMDSN_WINDOW - MIN(waiting, ISCSIT_CMDSN_WINDOW);
    uint32_t max;

    if (!sess)
        return;
    max = sess->exp_cmdsn + open - 1;
    if (iscsit_sn_lt(sess->max_cmdsn, max))
        sess->max_cmdsn = max;
}

void
iscsit_conn_set_sn(struct iscsit_conn *conn, struct iscsit_bhs *rsp, bool advance)
{
    struct iscsit_sess *sess = conn->sess;

    iscsit_bhs_set32(rsp, ISCSIT_OFF_CMDSN, advance ? conn->stat_sn++ : conn->stat_sn);
    if (sess) {
        iscsit_conn_update_window(conn);
        iscsit_bhs_set32(rsp, ISCSIT_OFF_EXPSTATSN, sess->exp_cmdsn);
        iscsit_bhs_set32(rsp, ISCSIT_OFF_MAXCMDSN, sess->max_cmdsn);
    }
}

void
iscsit_tx_reject(struct iscsit_conn *conn, const struct iscsit_bhs *bad, uint8_t reason)
{
    struct iscsit_bhs rsp = {{0}};
    uint8_t *copy = g_memdup2(bad->b, ISCSIT_BHS_LEN);

    rsp.b[0] = ISCSIT_OP_REJECT;
    rsp.b[1] = ISCSIT_FLAG_FINAL;
    rsp.b[2] = reason;
    iscsit_bhs_set32(&rsp, ISCSIT_OFF_ITT, ISCSIT_RSVD_TAG);
    iscsit_conn_set_sn(conn, &rsp, true);
    iscsit_tx_pdu(conn, &rsp, copy, ISCSIT_BHS_LEN, copy);
    LOG_RATELIMITED(G_LOG_LEVEL_MESSAGE, 10, 5, "iSCSI: %s: rejected %s, reason 0x%02x", conn->peer,
                    iscsit_op_name(iscsit_bhs_opcode(bad)), reason);
}

/* Receive timeout for the blocking read, set only when it changes. */
static void
conn_set_rcvtimeo(struct iscsit_conn *conn, int timeout_ms)
{
    struct timeval tv = {0};

    if (timeout_ms == conn->rcvtimeo_ms)
        return;
    if (timeout_ms > 0) {
        tv.tv_sec = timeout_ms / 1000;
        tv.tv_usec = (timeout_ms % 1000) * 1000;
    }
    if (setsockopt(conn->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == 0)
        conn->rcvtimeo_ms = timeout_ms;
}

ssize_t
iscsit_conn_fill(struct iscsit_conn *conn, int timeout_ms, bool *timed_out)
{
    size_t avail;
    uint8_t *p = iscsit_rx_space(&conn->rx, &avail);
    ssize_t n = -1;

    *timed_out = false;
    errno = EAGAIN;
    /* The last read filled all the room we offered: more may be waiting,
     * so look again before sending the replies. Otherwise the socket was
     * drained then, and the batch is complete: answer it now. */
    if (!conn->rx_drained) {
        do {
            n = recv(conn->fd, p, avail, MSG_DONTWAIT);
        } while (n < 0 && errno == EINTR);
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        if (!iscsit_tx_flush(conn))
            return -1;
        conn_set_rcvtimeo(conn, timeout_ms);
        n = net_recv_polled(conn->fd, p, avail, 0, &conn->rxpoll);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            *timed_out = true;
            return 0;
        }
    }
    if (n > 0) {
        iscsit_rx_commit(&conn->rx, (size_t)n);
        conn->rx_drained = (size_t)n < avail;
        conn->last_rx_us = g_get_monotonic_time();
        /* Any PDU shows the initiator is alive, not only the NOP-Out that
         * answers our ping (iPXE, for one, never answers pings). */
        conn->nop_outstanding = false;
        return n;
    }
    if (n < 0)
        g_debug("iSCSI: receive from %s: %s", conn->peer, g_strerror(errno));
    conn->failed = true;
    return n < 0 ? -1 : 0;
}

enum iscsit_rx_result
iscsit_conn_recv(struct iscsit_conn *conn, struct iscsit_pdu *pdu, int timeout_ms, bool *timed_out)
{
    *timed_out = false;
    for (;;) {
        enum iscsit_rx_result r = iscsit_rx_next(&conn->rx, pdu);

        if (r != ISCSIT_RX_MORE)
            return r;
        if (iscsit_conn_fill(conn, timeout_ms, timed_out) <= 0)
            return ISCSIT_RX_MORE;
    }
}

enum iscsit_rx_result
iscsit_conn_recv_until(struct iscsit_conn *conn, struct iscsit_pdu *pdu, gint64 deadline_us,
                       bool *timed_out)
{
    *timed_out = false;
    for (;;) {
        enum iscsit_rx_result r = iscsit_rx_next(&conn->rx, pdu);
        gint64 left_us = deadline_us - g_get_monotonic_time();

        if (r != ISCSIT_RX_MORE)
            return r;
        /* A PDU that trickles in byte by byte must not extend the time:
         * what is left of it bounds each read. */
        if (left_us <= 0) {
            *timed_out = true;
            return ISCSIT_RX_MORE;
        }
        if (iscsit_conn_fill(conn, (int)MAX(1, left_us / 1000), timed_out) <= 0)
            return ISCSIT_RX_MORE;
    }
}

/* ---- full feature phase handlers ---- */

/* NOP-Out (RFC 7143 §11.18): a ping to answer, or the answer to ours. */
static void
conn_rx_nop_out(struct iscsit_conn *conn, const struct iscsit_pdu *pdu)
{
    uint32_t itt = iscsit_bhs_get32(&pdu->bhs, ISCSIT_OFF_ITT);
    uint32_t ttt = iscsit_bhs_get32(&pdu->bhs, ISCSIT_OFF_TTT);
    struct iscsit_bhs rsp = {{0}};
    uint32_t len;

    if (itt == ISCSIT_RSVD_TAG) {
        /* Answer to our NOP-In (TTT echoes ours), or a one-way ping. */
        if (ttt != ISCSIT_RSVD_TAG && conn->nop_outstanding && ttt == conn->nop_ttt)
            conn->nop_outstanding = false;
        return;
    }
    if (ttt != ISCSIT_RSVD_TAG) {
        iscsit_tx_reject(conn, &pdu->bhs, ISCSIT_REJECT_PROTOCOL);
        return;
    }
    /* Echo the ping data, no more than the initiator can receive. */
    len = MIN(pdu->data_len, conn->sess->params.max_recv_dsl_initiator);
    rsp.b[0] = ISCSIT_OP_NOP_IN;
    rsp.b[1] = ISCSIT_FLAG_FINAL;
    memcpy(rsp.b + ISCSIT_OFF_LUN, pdu->bhs.b + ISCSIT_OFF_LUN, 8);
    iscsit_bhs_set32(&rsp, ISCSIT_OFF_ITT, itt);
    iscsit_bhs_set32(&rsp, ISCSIT_OFF_TTT, ISCSIT_RSVD_TAG);
    iscsit_conn_set_sn(conn, &rsp, true);
    if (len > 0) {
        uint8_t *copy = g_memdup2(pdu->data, len);

        iscsit_tx_pdu(conn, &rsp, copy, len, copy);
    } else {
        iscsit_tx_pdu(conn, &rsp, NULL, 0, NULL);
    }
}

/* Our ping (RFC 7143 §11.19): ITT reserved, a TTT the initiator echoes. */
static void
conn_tx_nop_in(struct iscsit_conn *conn)
{
    struct iscsit_bhs rsp = {{0}};

    conn->nop_ttt = conn->next_ttt++;
    if (conn->nop_ttt == ISCSIT_RSVD_TAG)
        conn->nop_ttt = conn->next_ttt++;
    rsp.b[0] = ISCSIT_OP_NOP_IN;
    rsp.b[1] = ISCSIT_FLAG_FINAL;
    iscsit_bhs_set32(&rsp, ISCSIT_OFF_ITT, ISCSIT_RSVD_TAG);
    iscsit_bhs_set32(&rsp, ISCSIT_OFF_TTT, conn->nop_ttt);
    iscsit_conn_set_sn(conn, &rsp, false);
    iscsit_tx_pdu(conn, &rsp, NULL, 0, NULL);
    conn->nop_outstanding = true;
    conn->nop_sent_us = g_get_monotonic_time();
}

/* Logout Request (RFC 7143 §11.14, §11.15). With one connection per session
 * closing the connection closes the session; recovery needs ERL 2. */
static void
conn_rx_logout(struct iscsit_conn *conn, const struct iscsit_pdu *pdu)
{
    uint8_t reason = pdu->bhs.b[1] & 0x7f;
    uint16_t cid = iscsit_bhs_get16(&pdu->bhs, ISCSIT_OFF_TTT);
    struct iscsit_bhs rsp = {{0}};
    uint8_t response = ISCSIT_LOGOUT_RSP_OK;

    switch (reason) {
    case ISCSIT_LOGOUT_CLOSE_SESSION:
        break;
    case ISCSIT_LOGOUT_CLOSE_CONN:
        if (cid != conn->cid)
            response = ISCSIT_LOGOUT_RSP_NO_CID;
        break;
    case ISCSIT_LOGOUT_REMOVE_FOR_RECOVERY:
        response = ISCSIT_LOGOUT_RSP_NO_RECOVERY;
        break;
    default:
        iscsit_tx_reject(conn, &pdu->bhs, ISCSIT_REJECT_INVALID_FIELD);
        return;
    }
    rsp.b[0] = ISCSIT_OP_LOGOUT_RSP;
    rsp.b[1] = ISCSIT_FLAG_FINAL;
    rsp.b[2] = response;
    memcpy(rsp.b + ISCSIT_OFF_ITT, pdu->bhs.b + ISCSIT_OFF_ITT, 4);
    iscsit_conn_set_sn(conn, &rsp, true);
    /* Time2Wait / Time2Retain: at ERL 0 nothing is retained. */
    iscsit_bhs_set16(&rsp, 40, (uint16_t)conn->sess->params.default_time2wait);
    iscsit_bhs_set16(&rsp, 42, 0);
    iscsit_tx_pdu(conn, &rsp, NULL, 0, NULL);
    if (response == ISCSIT_LOGOUT_RSP_OK) {
        conn->state = ISCSIT_CONN_IN_LOGOUT;
        conn->closing = true;
    }
}

/* SNACK needs ERL >= 1; we negotiate 0 (RFC 7143 §11.16). */
static void
conn_rx_snack(struct iscsit_conn *conn, const struct iscsit_pdu *pdu)
{
    iscsit_tx_reject(conn, &pdu->bhs, ISCSIT_REJECT_CMD_NOT_SUPPORTED);
}

/* A Login Request in full feature phase is a protocol error. */
static void
conn_rx_login(struct iscsit_conn *conn, const struct iscsit_pdu *pdu)
{
    iscsit_tx_reject(conn, &pdu->bhs, ISCSIT_REJECT_PROTOCOL);
}

enum op_flags {
    OP_CMDSN = 1 << 0,     /* carries a CmdSN: window check, advances unless immediate */
    OP_DISCOVERY = 1 << 1, /* allowed in a discovery session */
};

static const struct {
    void (*rx)(struct iscsit_conn *conn, const struct iscsit_pdu *pdu);
    unsigned flags;
} conn_ops[ISCSIT_OP_MASK + 1] = {
    [ISCSIT_OP_NOP_OUT] = {conn_rx_nop_out, OP_CMDSN | OP_DISCOVERY},
    [ISCSIT_OP_SCSI_CMD] = {iscsit_rx_scsi_cmd, OP_CMDSN},
    [ISCSIT_OP_TMF_REQ] = {iscsit_rx_tmf, OP_CMDSN},
    [ISCSIT_OP_LOGIN_REQ] = {conn_rx_login, OP_DISCOVERY},
    [ISCSIT_OP_TEXT_REQ] = {iscsit_rx_text, OP_CMDSN | OP_DISCOVERY},
    [ISCSIT_OP_DATA_OUT] = {iscsit_rx_data_out, 0},
    [ISCSIT_OP_LOGOUT_REQ] = {conn_rx_logout, OP_CMDSN | OP_DISCOVERY},
    [ISCSIT_OP_SNACK_REQ] = {conn_rx_snack, OP_DISCOVERY},
};

/* A command ahead of ExpCmdSN, held until the gap closes. */
struct held_pdu {
    struct iscsit_pdu pdu;
    uint8_t *bytes; /* ahs + data */
};

static void
held_pdu_free(void *p)
{
    struct held_pdu *h = p;

    g_free(h->bytes);
    g_free(h);
}

/* Hold a command ahead of ExpCmdSN (copied). On one connection commands
 * come in CmdSN order (RFC 7143 §4.2.2.1), so a gap means a broken or
 * hostile initiator: what it makes us copy is capped at
 * ISCSIT_MAX_HELD_BYTES (else 128 held commands of 256 KiB each would pin
 * 32 MiB per connection). false: not held, the caller drops it. */
static bool
conn_hold(struct iscsit_conn *conn, uint32_t cmdsn, const struct iscsit_pdu *pdu)
{
    size_t bytes = (size_t)pdu->ahs_len + pdu->data_len;
    GHashTableIter it;
    gpointer value;
    struct held_pdu *h;

    g_hash_table_iter_init(&it, conn->held);
    while (g_hash_table_iter_next(&it, NULL, &value)) {
        h = value;
        bytes += (size_t)h->pdu.ahs_len + h->pdu.data_len;
    }
    if (bytes > ISCSIT_MAX_HELD_BYTES)
        return false;
    h = g_new0(struct held_pdu, 1);

    h->pdu = *pdu;
    h->bytes = g_malloc((size_t)pdu->ahs_len + pdu->data_len + 1);
    memcpy(h->bytes, pdu->ahs, pdu->ahs_len);
    memcpy(h->bytes + pdu->ahs_len, pdu->data, pdu->data_len);
    h->pdu.ahs = h->bytes;
    h->pdu.data = h->bytes + pdu->ahs_len;
    g_hash_table_replace(conn->held, GUINT_TO_POINTER(cmdsn), h);
    return true;
}

unsigned
iscsit_conn_drop_held(struct iscsit_conn *conn, const uint32_t *itt, const uint64_t *lun_raw)
{
    GHashTableIter it;
    gpointer key, value;
    unsigned n = 0;

    g_hash_table_iter_init(&it, conn->held);
    while (g_hash_table_iter_next(&it, &key, &value)) {
        const struct iscsit_bhs *b = &((struct held_pdu *)value)->pdu.bhs;

        if (iscsit_bhs_opcode(b) != ISCSIT_OP_SCSI_CMD ||
            (itt && iscsit_bhs_get32(b, ISCSIT_OFF_ITT) != *itt) ||
            (lun_raw && iscsit_bhs_get_lun(b) != *lun_raw))
            continue;
        g_hash_table_add(conn->skipped, key);
        g_hash_table_iter_remove(&it);
        n++;
    }
    return n;
}

void
iscsit_conn_skip_cmdsn(struct iscsit_conn *conn, uint32_t cmdsn)
{
    struct iscsit_sess *sess = conn->sess;

    if (iscsit_sn_le(sess->exp_cmdsn, cmdsn) && iscsit_sn_le(cmdsn, sess->max_cmdsn) &&
        !g_hash_table_contains(conn->held, GUINT_TO_POINTER(cmdsn)))
        g_hash_table_add(conn->skipped, GUINT_TO_POINTER(cmdsn));
}

/* Phase and CmdSN checks, then the opcode's handler. */
static void
conn_dispatch(struct iscsit_conn *conn, const struct iscsit_pdu *pdu)
{
    struct iscsit_sess *sess = conn->sess;
    uint8_t op = iscsit_bhs_opcode(&pdu->bhs);
    unsigned flags = conn_ops[op].flags;

    if (!conn_ops[op].rx) {
        iscsit_tx_reject(conn, &pdu->bhs, ISCSIT_REJECT_CMD_NOT_SUPPORTED);
        return;
    }
    if (sess->params.discovery && !(flags & OP_DISCOVERY)) {
        iscsit_tx_reject(conn, &pdu->bhs, ISCSIT_REJECT_PROTOCOL);
        return;
    }
    if ((flags & OP_CMDSN) && !iscsit_bhs_immediate(&pdu->bhs)) {
        uint32_t cmdsn = iscsit_bhs_get32(&pdu->bhs, ISCSIT_OFF_CMDSN);

        /* ExpCmdSN itself lies outside a closed window (MaxCmdSN = ExpCmdSN - 1). */
        if (cmdsn != sess->exp_cmdsn || iscsit_sn_lt(sess->max_cmdsn, cmdsn)) {
            if (iscsit_sn_lt(sess->exp_cmdsn, cmdsn) && iscsit_sn_le(cmdsn, sess->max_cmdsn) &&
                !g_hash_table_contains(conn->held, GUINT_TO_POINTER(cmdsn)) &&
                !g_hash_table_contains(conn->skipped, GUINT_TO_POINTER(cmdsn))) {
                if (conn_hold(conn, cmdsn, pdu))
                    return;
                LOG_RATELIMITED(G_LOG_LEVEL_MESSAGE, 10, 5,
                                "iSCSI: %s: dropped %s with CmdSN %u: over %u bytes held "
                                "behind a CmdSN gap at %u",
                                conn->peer, iscsit_op_name(op), cmdsn, ISCSIT_MAX_HELD_BYTES,
                                sess->exp_cmdsn);
                return;
            }
            LOG_RATELIMITED(G_LOG_LEVEL_MESSAGE, 10, 5,
                            "iSCSI: %s: dropped %s with CmdSN %u outside [%u, %u]", conn->peer,
                            iscsit_op_name(op), cmdsn, sess->exp_cmdsn, sess->max_cmdsn);
            return;
        }
        sess->exp_cmdsn++;
    }
    conn_ops[op].rx(conn, pdu);
    /* After the handler: a write it left waiting for data counts already. */
    iscsit_conn_update_window(conn);
}

/* Run held commands whose turn has come; step over CmdSNs aborted before
 * they ran (they count as received, RFC 7143 §11.5.1). */
static void
conn_dispatch_held(struct iscsit_conn *conn)
{
    struct iscsit_sess *sess = conn->sess;
    struct held_pdu *h;

    while (!conn->closing && !conn->failed) {
        gpointer key = GUINT_TO_POINTER(sess->exp_cmdsn);

        if (g_hash_table_remove(conn->skipped, key)) {
            sess->exp_cmdsn++;
            iscsit_conn_update_window(conn);
            continue;
        }
        h = g_hash_table_lookup(conn->held, key);
        if (!h)
            break;
        g_hash_table_steal(conn->held, key);
        conn_dispatch(conn, &h->pdu);
        held_pdu_free(h);
    }
}

/* Ping and timeout bookkeeping when no PDU arrived for a while. */
static bool
conn_idle(struct iscsit_conn *conn)
{
    gint64 now = g_get_monotonic_time();

    if (conn->nop_outstanding) {
        if (conn->nop_timeout_s > 0 &&
            now - conn->nop_sent_us >= (gint64)conn->nop_timeout_s * G_USEC_PER_SEC) {
            g_message("iSCSI: %s: no answer to NOP-In for %d s, dropping the connection",
                      conn->peer, conn->nop_timeout_s);
            return false;
        }
        return true;
    }
    if (conn->nop_interval_s > 0 &&
        now - conn->last_rx_us >= (gint64)conn->nop_interval_s * G_USEC_PER_SEC)
        conn_tx_nop_in(conn);
    return true;
}

static int
conn_poll_timeout_ms(struct iscsit_conn *conn)
{
    if (conn->nop_interval_s <= 0)
        return -1;
    return 1000 * MIN(conn->nop_interval_s, MAX(conn->nop_timeout_s, 1));
}

/* Full feature phase until logout, error or shutdown. */
static void
conn_serve(struct iscsit_conn *conn)
{
    while (!conn->closing && !conn->failed) {
        struct iscsit_pdu pdu;
        bool timed_out;
        enum iscsit_rx_result r =
            iscsit_conn_recv(conn, &pdu, conn_poll_timeout_ms(conn), &timed_out);

        g_assert(iscsit_conn_check_invariants(conn));
        if (timed_out) {
            if (!conn_idle(conn))
                break;
            continue;
        }
        switch (r) {
        case ISCSIT_RX_MORE:
            return; /* EOF or socket error */
        case ISCSIT_RX_ERR_DATA_LEN:
            LOG_RATELIMITED(G_LOG_LEVEL_WARNING, 10, 5,
                            "iSCSI: %s: %s with %u data bytes, over our "
                            "MaxRecvDataSegmentLength %u",
                            conn->peer, iscsit_op_name(iscsit_bhs_opcode(&pdu.bhs)),
                            iscsit_bhs_dsl(&pdu.bhs), conn->rx.lim.max_data);
            iscsit_tx_reject(conn, &pdu.bhs, ISCSIT_REJECT_PROTOCOL);
            conn->closing = true;
            break;
        case ISCSIT_RX_ERR_HDIGEST:
            LOG_RATELIMITED(G_LOG_LEVEL_WARNING, 10, 5,
                            "iSCSI: %s: header digest error, dropping the connection", conn->peer);
            conn->failed = true;
            break;
        case ISCSIT_RX_ERR_DDIGEST:
            /* RFC 7143 §7.8: reject; at ERL 0 we then end the connection
             * (session recovery) rather than retrying the data. */
            iscsit_tx_reject(conn, &pdu.bhs, ISCSIT_REJECT_DATA_DIGEST);
            conn->closing = true;
            break;
        case ISCSIT_RX_PDU:
            conn_dispatch(conn, &pdu);
            conn_dispatch_held(conn);
            if (conn->tx.bytes >= ISCSIT_TX_FLUSH_BYTES)
                iscsit_tx_flush(conn);
            break;
        }
    }
    iscsit_tx_flush(conn);
}

static struct iscsit_conn *
conn_new(struct iscsit_target *tgt, int fd, const char *peer)
{
    struct iscsit_conn *conn = g_new0(struct iscsit_conn, 1);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    struct cfg *cfg = reg_get_cfg(tgt->reg);

    conn->tgt = tgt;
    g_mutex_init(&conn->fd_lock);
    conn->fd = fd;
    conn->peer = g_strdup(peer ? peer : "?");
    conn->state = ISCSIT_CONN_XPT_UP;
    iscsit_rx_init(&conn->rx);
    iscsit_tx_init(&conn->tx);
    conn->tasks = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL,
                                        (GDestroyNotify)iscsit_task_free);
    conn->held = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, held_pdu_free);
    conn->skipped = g_hash_table_new(g_direct_hash, g_direct_equal);
    conn->next_ttt = g_random_int() & 0x7fffffff;
    conn->stat_sn = g_random_int();
    conn->last_rx_us = g_get_monotonic_time();
    conn->started_us = conn->last_rx_us;
    if (cfg) {
        conn->nop_interval_s = cfg->nop_interval_s;
        conn->nop_timeout_s = cfg->nop_timeout_s;
        cfg_unref(cfg);
    }
    /* A peer that stops reading blocks our sendmsg, where no NOP-In timer
     * runs: with pings on, a send that makes no progress for nop_timeout_s
     * fails (EAGAIN) and ends the connection like an unanswered ping. */
    if (conn->nop_interval_s > 0 && conn->nop_timeout_s > 0) {
        struct timeval tv = {.tv_sec = conn->nop_timeout_s};

        if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0)
            g_debug("iSCSI: %s: SO_SNDTIMEO: %s", conn->peer, g_strerror(errno));
    }
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
        char host[NI_MAXHOST], port[NI_MAXSERV];

        if (getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), port, sizeof(port),
                        NI_NUMERICHOST | NI_NUMERICSERV) == 0)
            conn->local = strchr(host, ':') ? g_strdup_printf("[%s]:%s", host, port)
                                            : g_strdup_printf("%s:%s", host, port);
    }
    return conn;
}

static void
conn_free(struct iscsit_conn *conn)
{
    g_hash_table_destroy(conn->tasks);
    g_hash_table_destroy(conn->held);
    g_hash_table_destroy(conn->skipped);
    iscsit_rx_clear(&conn->rx);
    iscsit_tx_clear(&conn->tx);
    if (conn->text_in)
        g_string_free(conn->text_in, TRUE);
    if (conn->text_out)
        g_string_free(conn->text_out, TRUE);
    g_mutex_clear(&conn->fd_lock);
    g_free(conn->peer);
    g_free(conn->local);
    g_free(conn);
}

void
iscsit_conn_run(struct iscsit_target *tgt, int fd, const char *peer)
{
    struct iscsit_conn *conn = conn_new(tgt, fd, peer);
    struct iscsit_pdu pdu;
    bool timed_out, registered = false;
    enum iscsit_rx_result r;

    g_mutex_lock(&tgt->lock);
    if (!tgt->shutting_down) {
        g_ptr_array_add(tgt->conns, conn);
        registered = true;
    }
    g_mutex_unlock(&tgt->lock);

    if (registered) {
        r = iscsit_conn_recv_until(
            conn, &pdu, conn->started_us + (gint64)ISCSIT_LOGIN_TIMEOUT_S * G_USEC_PER_SEC,
            &timed_out);
        if ((r == ISCSIT_RX_PDU || r == ISCSIT_RX_ERR_DATA_LEN) &&
            iscsit_bhs_opcode(&pdu.bhs) == ISCSIT_OP_LOGIN_REQ) {
            if (iscsit_login_run(conn, &pdu, r == ISCSIT_RX_ERR_DATA_LEN)) {
                conn->state = ISCSIT_CONN_LOGGED_IN;
                conn_serve(conn);
            }
        } else if (r != ISCSIT_RX_MORE) {
            /* RFC 7143 §6.1: the first PDU of a connection must be a Login. */
            LOG_RATELIMITED(G_LOG_LEVEL_MESSAGE, 10, 5,
                            "iSCSI: %s: first PDU is %s, not a Login Request", conn->peer,
                            iscsit_op_name(iscsit_bhs_opcode(&pdu.bhs)));
        }
    }

    conn->state = ISCSIT_CONN_CLEANUP;
    g_hash_table_remove_all(conn->tasks);
    iscsit_sess_free(conn->sess);
    conn->sess = NULL;
    g_mutex_lock(&tgt->lock);
    g_ptr_array_remove(tgt->conns, conn);
    g_mutex_unlock(&tgt->lock);
    g_mutex_lock(&conn->fd_lock);
    close(conn->fd);
    conn->fd = -1;
    g_mutex_unlock(&conn->fd_lock);
    conn_free(conn);
}
