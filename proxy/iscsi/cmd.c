/* cmd.c — SCSI commands over iSCSI: SCSI Command (RFC 7143 §11.3), Data-Out
 * (§11.7), R2T (§11.8), Data-In (§11.7) and SCSI Response (§11.4).
 *
 * Flow of one command:
 *   1. iscsit_rx_scsi_cmd decodes LUN, CDB (+ extended CDB AHS) and asks
 *      sdev to parse the CDB. LUN 0 is the client's disk; any other LUN is
 *      answered by sdev_cmd_exec_no_lun.
 *   2. Commands without Data-Out run at once. A write becomes a task that
 *      collects immediate data, unsolicited Data-Out (InitialR2T=No, up to
 *      FirstBurstLength) and solicited Data-Out: cmd_progress sends R2Ts of
 *      at most MaxBurstLength each, at most MaxOutstandingR2T at a time, in
 *      offset order (DataSequenceInOrder=Yes, DataPDUInOrder=Yes).
 *   3. With all data in, sdev executes; Data-In goes out in PDUs of at most
 *      the initiator's MaxRecvDataSegmentLength, sequences of at most
 *      MaxBurstLength, with status in the last one (S bit, "phase collapse")
 *      when it is GOOD, else in a SCSI Response carrying the sense data.
 * Residuals (§11.4.5): EDTL is compared with the length the command moves
 * (the data sdev returned for reads, the CDB's transfer length for writes).
 * A write whose CDB asks for more than EDTL writes only the whole blocks
 * within EDTL and reports the overflow (FCP-4 §9.5.8 a).
 * Data of a command that will not use it (failed parse, no LUN)
 * is still received — the unsolicited part — and dropped; no R2T asks for
 * more. Any Data-Out out of sequence (offset, DataSN, TTT) is a protocol
 * error: Reject, and the task ends without a response.
 */
#include <string.h>

#include "log.h"
#include "iscsi-int.h"

/* SPC-4 sense codes for the refusals made here (bidirectional commands,
 * writes larger than we buffer); sdev builds the bytes. */
#define SENSE_KEY_ILLEGAL_REQUEST 0x05
#define ASC_INVALID_FIELD_IN_CDB 0x24

void
iscsit_task_free(struct iscsit_task *task)
{
    if (!task)
        return;
    /* R2Ts still outstanding and data held no longer count against the
     * connection. */
    if (task->conn)
        task->conn->buffered -= task->received;
    for (guint i = 0; task->r2ts && i < task->r2ts->len; i++) {
        struct iscsit_r2t *r = &g_array_index(task->r2ts, struct iscsit_r2t, i);

        task->conn->solicited -= r->len - r->got;
    }
    sdev_cmd_clear(&task->cmd);
    g_free(task->buf);
    if (task->r2ts)
        g_array_unref(task->r2ts);
    g_free(task);
}

/* Residual flags and count for a command that moved `actual` of `edtl`. */
static uint8_t
cmd_residual(uint32_t edtl, uint32_t actual, uint32_t *count)
{
    if (actual > edtl) {
        *count = actual - edtl;
        return ISCSIT_RSP_OVER;
    }
    if (actual < edtl) {
        *count = edtl - actual;
        return ISCSIT_RSP_UNDER;
    }
    *count = 0;
    return 0;
}

static void
cmd_tx_response(struct iscsit_conn *conn, struct iscsit_task *task, uint8_t res_flags,
                uint32_t residual, uint32_t exp_data_sn)
{
    struct iscsit_bhs rsp = {{0}};
    struct sdev_cmd *cmd = &task->cmd;

    rsp.b[0] = ISCSIT_OP_SCSI_RSP;
    rsp.b[1] = ISCSIT_FLAG_FINAL | res_flags;
    rsp.b[2] = 0; /* command completed at target */
    rsp.b[3] = cmd->status;
    iscsit_bhs_set32(&rsp, ISCSIT_OFF_ITT, task->itt);
    iscsit_conn_set_sn(conn, &rsp, true);
    iscsit_bhs_set32(&rsp, ISCSIT_OFF_DATASN, exp_data_sn);
    iscsit_bhs_set32(&rsp, ISCSIT_OFF_RESIDUAL, residual);
    if (cmd->status == SDEV_STATUS_CHECK_CONDITION && cmd->sense_len > 0) {
        /* RFC 7143 §11.4.7.2: SenseLength (2 bytes) + sense data. */
        uint32_t slen = MIN(cmd->sense_len, (uint32_t)SDEV_SENSE_MAX);
        uint8_t *seg = g_malloc(2 + slen);

        seg[0] = slen >> 8;
        seg[1] = slen & 0xff;
        memcpy(seg + 2, cmd->sense, slen);
        iscsit_tx_pdu(conn, &rsp, seg, 2 + slen, seg);
    } else {
        iscsit_tx_pdu(conn, &rsp, NULL, 0, NULL);
    }
}

/* Data-In PDUs for len bytes of data (R bit set), status in the last when
 * it is GOOD. Takes cmd->data_in. */
static void
cmd_tx_data_in(struct iscsit_conn *conn, struct iscsit_task *task, uint32_t len, uint8_t res_flags,
               uint32_t residual)
{
    struct iscsit_params *p = &conn->sess->params;
    struct sdev_cmd *cmd = &task->cmd;
    uint8_t *data = cmd->data_in;
    bool collapse = cmd->status == SDEV_STATUS_GOOD || cmd->status == SDEV_STATUS_CONDITION_MET;
    uint32_t off = 0, data_sn = 0, seq_left = p->max_burst_length;
    bool mapped = cmd->data_in_map.data != NULL;

    /* The queue takes the data: a mapping is unmapped, a buffer freed,
     * once the PDUs pointing into it are sent. */
    if (mapped) {
        iscsit_tx_own_map(conn, &cmd->data_in_map);
        memset(&cmd->data_in_map, 0, sizeof(cmd->data_in_map));
    }
    cmd->data_in = NULL;
    cmd->data_in_len = 0;
    while (off < len) {
        struct iscsit_bhs h = {{0}};
        uint32_t n = MIN(MIN(len - off, p->max_recv_dsl_initiator), seq_left);
        bool last = off + n == len;

        h.b[0] = ISCSIT_OP_DATA_IN;
        seq_left -= n;
        if (last || seq_left == 0)
            h.b[1] |= ISCSIT_FLAG_FINAL; /* end of a sequence (MaxBurstLength) */
        if (seq_left == 0)
            seq_left = p->max_burst_length;
        iscsit_bhs_set_lun(&h, task->lun_raw);
        iscsit_bhs_set32(&h, ISCSIT_OFF_ITT, task->itt);
        iscsit_bhs_set32(&h, ISCSIT_OFF_TTT, ISCSIT_RSVD_TAG);
        if (last && collapse) {
            h.b[1] |= ISCSIT_DATAIN_STATUS | res_flags;
            h.b[3] = cmd->status;
            iscsit_bhs_set32(&h, ISCSIT_OFF_RESIDUAL, residual);
            iscsit_conn_set_sn(conn, &h, true);
        } else {
            iscsit_conn_set_sn(conn, &h, false);
            iscsit_bhs_set32(&h, ISCSIT_OFF_CMDSN, 0); /* StatSN reserved without S */
        }
        iscsit_bhs_set32(&h, ISCSIT_OFF_DATASN, data_sn++);
        iscsit_bhs_set32(&h, ISCSIT_OFF_BUFOFF, off);
        iscsit_tx_pdu(conn, &h, data + off, n, last && !mapped ? data : NULL);
        off += n;
    }
    if (len == 0 && !mapped)
        g_free(data);
    if (!collapse || len == 0)
        cmd_tx_response(conn, task, res_flags, residual, data_sn);
}

/* Execute (if the command is good to go) and answer. */
static void
cmd_complete(struct iscsit_conn *conn, struct iscsit_task *task, bool read_bit)
{
    struct sdev_cmd *cmd = &task->cmd;
    uint32_t residual = 0, actual = 0;
    uint8_t res_flags;

    if (task->parse_ok) {
        if (cmd->dir == SDEV_DIR_WRITE) {
            cmd->data_out = task->buf;
            cmd->data_out_len = task->want;
        }
        sdev_cmd_exec(conn->sess->nexus, cmd);
    } else if (!task->lun_ok && cmd->status == SDEV_STATUS_GOOD && cmd->sense_len == 0) {
        sdev_cmd_exec_no_lun(cmd);
    }
    if (cmd->dir == SDEV_DIR_WRITE && task->parse_ok)
        actual = cmd->xfer_len;
    else
        actual = cmd->data_in_len;
    if (task->edtl == 0 && actual == 0)
        res_flags = 0;
    else
        res_flags = cmd_residual(task->edtl, actual, &residual);
    if (read_bit && cmd->data_in_len > 0) {
        cmd_tx_data_in(conn, task, MIN(cmd->data_in_len, task->edtl), res_flags, residual);
        return;
    }
    cmd_tx_response(conn, task, res_flags, residual, 0);
}

static void
cmd_tx_r2t(struct iscsit_conn *conn, struct iscsit_task *task, struct iscsit_r2t *r)
{
    struct iscsit_bhs h = {{0}};

    h.b[0] = ISCSIT_OP_R2T;
    h.b[1] = ISCSIT_FLAG_FINAL;
    iscsit_bhs_set_lun(&h, task->lun_raw);
    iscsit_bhs_set32(&h, ISCSIT_OFF_ITT, task->itt);
    iscsit_bhs_set32(&h, ISCSIT_OFF_TTT, r->ttt);
    iscsit_conn_set_sn(conn, &h, false);
    iscsit_bhs_set32(&h, ISCSIT_OFF_DATASN, r->r2tsn);
    iscsit_bhs_set32(&h, ISCSIT_OFF_BUFOFF, r->offset);
    iscsit_bhs_set32(&h, ISCSIT_OFF_RESIDUAL, r->len);
    iscsit_tx_pdu(conn, &h, NULL, 0, NULL);
}

/* Store Data-Out bytes at off. The buffer grows with the data that really
 * arrived (in order: DataPDUInOrder and DataSequenceInOrder are Yes), so
 * memory follows the bytes received, not the lengths announced. */
static void
cmd_buf_put(struct iscsit_task *task, uint32_t off, const uint8_t *data, uint32_t len)
{
    uint32_t n, need;

    if (off >= task->want || len == 0)
        return;
    n = MIN(len, task->want - off);
    need = off + n;
    if (need > task->buf_cap) {
        uint32_t cap = MAX(need, MIN(task->want, MAX(task->buf_cap * 2, 65536u)));

        task->buf = g_realloc(task->buf, cap);
        task->buf_cap = cap;
    }
    memcpy(task->buf + off, data, n);
}

/* The oldest task that still needs R2Ts, or NULL. */
static struct iscsit_task *
cmd_oldest_needing(struct iscsit_conn *conn)
{
    struct iscsit_task *oldest = NULL;
    GHashTableIter it;
    gpointer value;

    g_hash_table_iter_init(&it, conn->tasks);
    while (g_hash_table_iter_next(&it, NULL, &value)) {
        struct iscsit_task *t = value;

        if (t->next_r2t_off < t->want && (!oldest || t->seq < oldest->seq))
            oldest = t;
    }
    return oldest;
}

/* May this task get another R2T? The connection's budget covers bytes
 * asked for and bytes already held by unfinished writes, so an initiator
 * that leaves every write one burst short cannot make us hold 256 x 32 MiB.
 * When the budget is spent and no R2T is outstanding, nothing could move:
 * then the oldest waiting write goes on alone until it completes and frees
 * its share (memory stays under the budget plus one write). */
static bool
cmd_may_solicit(struct iscsit_conn *conn, struct iscsit_task *task)
{
    if ((uint64_t)conn->solicited + conn->buffered < ISCSIT_MAX_SOLICITED)
        return true;
    return conn->solicited == 0 && cmd_oldest_needing(conn) == task;
}

/* Send R2Ts as the window allows; run the command once all data is in.
 * Returns true when the task finished (and was removed). */
static bool
cmd_progress(struct iscsit_conn *conn, struct iscsit_task *task)
{
    struct iscsit_params *p = &conn->sess->params;

    /* Solicit what unsolicited data does not cover (RFC 7143 §11.8). */
    while (task->next_r2t_off < task->want && task->r2ts->len < p->max_outstanding_r2t &&
           cmd_may_solicit(conn, task)) {
        struct iscsit_r2t r = {0};

        r.ttt = conn->next_ttt++;
        if (r.ttt == ISCSIT_RSVD_TAG)
            r.ttt = conn->next_ttt++;
        r.offset = task->next_r2t_off;
        r.len = MIN(task->want - task->next_r2t_off, p->max_burst_length);
        r.r2tsn = task->r2tsn++;
        task->next_r2t_off += r.len;
        conn->solicited += r.len;
        g_array_append_val(task->r2ts, r);
        cmd_tx_r2t(conn, task, &r);
    }
    if (!task->unsol_done || task->r2ts->len > 0 || task->next_r2t_off < task->want)
        return false;
    g_hash_table_steal(conn->tasks, GUINT_TO_POINTER(task->itt));
    cmd_complete(conn, task, false);
    iscsit_task_free(task);
    return true;
}

static bool
cmd_decode_cdb(const struct iscsit_pdu *pdu, struct sdev_cmd *cmd)
{
    return iscsit_pdu_cdb(&pdu->bhs, pdu->ahs, pdu->ahs_len, cmd->cdb, sizeof(cmd->cdb),
                          &cmd->cdb_len);
}

void
iscsit_rx_scsi_cmd(struct iscsit_conn *conn, const struct iscsit_pdu *pdu)
{
    struct iscsit_sess *sess = conn->sess;
    struct iscsit_params *p = &sess->params;
    uint8_t flags = pdu->bhs.b[1];
    bool rbit = flags & ISCSIT_CMD_READ, wbit = flags & ISCSIT_CMD_WRITE;
    struct iscsit_task *task;
    uint64_t lun;

    task = g_new0(struct iscsit_task, 1);
    task->itt = iscsit_bhs_get32(&pdu->bhs, ISCSIT_OFF_ITT);
    task->cmdsn = iscsit_bhs_get32(&pdu->bhs, ISCSIT_OFF_CMDSN);
    task->lun_raw = iscsit_bhs_get_lun(&pdu->bhs);
    task->edtl = iscsit_bhs_get32(&pdu->bhs, ISCSIT_OFF_TTT);
    /* Protocol checks (RFC 7143 §11.3): immediate data only for writes,
     * negotiated, within FirstBurstLength and EDTL; one task per ITT. */
    if (!cmd_decode_cdb(pdu, &task->cmd) ||
        (pdu->data_len > 0 &&
         (!wbit || !p->immediate_data || pdu->data_len > p->first_burst_length ||
          pdu->data_len > task->edtl)) ||
        task->itt == ISCSIT_RSVD_TAG) {
        iscsit_tx_reject(conn, &pdu->bhs, ISCSIT_REJECT_PROTOCOL);
        iscsit_task_free(task);
        return;
    }
    if (g_hash_table_contains(conn->tasks, GUINT_TO_POINTER(task->itt))) {
        iscsit_tx_reject(conn, &pdu->bhs, ISCSIT_REJECT_TASK_IN_PROGRESS);
        iscsit_task_free(task);
        return;
    }
    task->cmd.task_attr = (enum sdev_task_attr)(flags & ISCSIT_CMD_ATTR_MASK);
    task->cmd.expected_len = task->edtl;
    /* Large reads go out from a mapping of the disk's pages, without a copy
     * through a buffer. Not with DataDigest: the CRC would be computed by
     * touching those pages ourselves, where a disk read error is a SIGBUS,
     * not an error code (view.h). */
    task->cmd.data_in_map_ok = !conn->rx.lim.data_digest;
    task->lun_ok = iscsit_lun_decode(task->lun_raw, &lun) && lun == 0;
    task->cmd.lun = task->lun_ok ? 0 : lun;
    if (rbit && wbit) {
        /* Bidirectional commands are not supported by the device. */
        sdev_cmd_set_sense(&task->cmd, SENSE_KEY_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB, 0);
    } else if (task->lun_ok) {
        task->parse_ok = sdev_cmd_parse(sess->nexus, &task->cmd);
    }
    if (task->parse_ok && task->cmd.dir == SDEV_DIR_WRITE) {
        if (task->cmd.xfer_len > ISCSIT_MAX_TASK_DATA) {
            sdev_cmd_clear(&task->cmd);
            sdev_cmd_set_sense(&task->cmd, SENSE_KEY_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB, 0);
            task->parse_ok = false;
        } else {
            /* FCP-4 §9.5.8 a): never ask for data beyond EDTL; sdev writes
             * the whole blocks that arrived and we report the overflow. */
            task->want = wbit ? MIN(task->cmd.xfer_len, task->edtl) : 0;
        }
    }
    if (!wbit || task->edtl == 0) {
        cmd_complete(conn, task, rbit);
        iscsit_task_free(task);
        return;
    }
    /* A write (W bit): collect immediate + unsolicited + solicited data.
     * Non-immediate commands are bounded by the CmdSN window (it shrinks
     * with every waiting task); immediate ones are not, so past a cap the
     * task set is full (SAM-5 §5.3.1). Later Data-Out for it is dropped. */
    if (g_hash_table_size(conn->tasks) >= ISCSIT_MAX_TASKS) {
        LOG_RATELIMITED(G_LOG_LEVEL_MESSAGE, 10, 5,
                        "iSCSI: %s: %u writes wait for data: TASK SET FULL for ITT 0x%08x",
                        conn->peer, g_hash_table_size(conn->tasks), task->itt);
        sdev_cmd_clear(&task->cmd);
        task->cmd.status = SDEV_STATUS_TASK_SET_FULL;
        cmd_tx_response(conn, task, 0, 0, 0);
        iscsit_task_free(task);
        return;
    }
    task->conn = conn;
    task->seq = conn->task_seq++;
    task->r2ts = g_array_new(FALSE, FALSE, sizeof(struct iscsit_r2t));
    if (!p->initial_r2t && !(flags & ISCSIT_FLAG_FINAL))
        task->unsol_len = MIN(p->first_burst_length, task->edtl);
    else
        task->unsol_len = pdu->data_len;
    if (pdu->data_len > task->unsol_len)
        task->unsol_len = pdu->data_len;
    cmd_buf_put(task, 0, pdu->data, pdu->data_len);
    task->received = pdu->data_len;
    conn->buffered += task->received;
    task->unsol_done = task->received >= task->unsol_len;
    task->next_r2t_off = MIN(task->unsol_len, task->want);
    g_hash_table_insert(conn->tasks, GUINT_TO_POINTER(task->itt), task);
    cmd_progress(conn, task);
}

/* A Data-Out that breaks the sequence rules: Reject it and end the task
 * (ERL 0 has no sequence recovery). The initiator fails the command on the
 * Reject; later Data-Out for the task is dropped as for an unknown task. */
static void
cmd_data_out_error(struct iscsit_conn *conn, const struct iscsit_pdu *pdu, struct iscsit_task *task,
                   const char *why)
{
    LOG_RATELIMITED(G_LOG_LEVEL_MESSAGE, 10, 5, "iSCSI: %s: bad Data-Out for ITT 0x%08x: %s",
                    conn->peer, task->itt, why);
    iscsit_tx_reject(conn, &pdu->bhs, ISCSIT_REJECT_PROTOCOL);
    g_hash_table_remove(conn->tasks, GUINT_TO_POINTER(task->itt));
    iscsit_cmd_solicit(conn);
}

void
iscsit_rx_data_out(struct iscsit_conn *conn, const struct iscsit_pdu *pdu)
{
    uint32_t itt = iscsit_bhs_get32(&pdu->bhs, ISCSIT_OFF_ITT);
    uint32_t ttt = iscsit_bhs_get32(&pdu->bhs, ISCSIT_OFF_TTT);
    uint32_t data_sn = iscsit_bhs_get32(&pdu->bhs, ISCSIT_OFF_DATASN);
    uint32_t off = iscsit_bhs_get32(&pdu->bhs, ISCSIT_OFF_BUFOFF);
    bool final = pdu->bhs.b[1] & ISCSIT_FLAG_FINAL;
    uint32_t len = pdu->data_len;
    struct iscsit_task *task = g_hash_table_lookup(conn->tasks, GUINT_TO_POINTER(itt));

    if (!task) {
        /* Data for a task that was aborted or already answered: drop it
         * (RFC 7143 §11.5.1, data in flight after ABORT TASK). */
        g_debug("iSCSI: %s: Data-Out for unknown ITT 0x%08x dropped", conn->peer, itt);
        return;
    }
    if ((uint64_t)off + len > task->edtl)
        return cmd_data_out_error(conn, pdu, task, "data beyond the expected transfer length");
    if (ttt == ISCSIT_RSVD_TAG) {
        if (task->unsol_done || off != task->received || off + len > task->unsol_len ||
            data_sn != task->unsol_data_sn)
            return cmd_data_out_error(conn, pdu, task, "unsolicited data out of sequence");
        task->unsol_data_sn++;
        if (final || off + len == task->unsol_len)
            task->unsol_done = true;
        if (final && off + len != task->unsol_len)
            return cmd_data_out_error(conn, pdu, task, "unsolicited burst ended early");
    } else {
        struct iscsit_r2t *r = NULL;
        guint i;

        for (i = 0; i < task->r2ts->len && !r; i++)
            if (g_array_index(task->r2ts, struct iscsit_r2t, i).ttt == ttt)
                r = &g_array_index(task->r2ts, struct iscsit_r2t, i);
        if (!r)
            return cmd_data_out_error(conn, pdu, task, "unknown Target Transfer Tag");
        if (off != r->offset + r->got || r->got + len > r->len || data_sn != r->data_sn)
            return cmd_data_out_error(conn, pdu, task, "solicited data out of sequence");
        r->got += len;
        r->data_sn++;
        conn->solicited -= len;
        if (final != (r->got == r->len))
            return cmd_data_out_error(conn, pdu, task, "F bit does not end the R2T's burst");
        if (final)
            g_array_remove_index(task->r2ts, i - 1);
    }
    cmd_buf_put(task, off, pdu->data, len);
    if (off + len > task->received) {
        conn->buffered += off + len - task->received;
        task->received = off + len;
    }
    /* A burst ended or a write completed: room for other tasks' R2Ts. */
    if (cmd_progress(conn, task) || (final && ttt != ISCSIT_RSVD_TAG))
        iscsit_cmd_solicit(conn);
}

static gint
cmd_seq_cmp(gconstpointer a, gconstpointer b)
{
    const struct iscsit_task *ta = *(struct iscsit_task *const *)a;
    const struct iscsit_task *tb = *(struct iscsit_task *const *)b;

    return ta->seq < tb->seq ? -1 : ta->seq > tb->seq;
}

void
iscsit_cmd_solicit(struct iscsit_conn *conn)
{
    g_autoptr(GPtrArray) waiting = g_ptr_array_new();
    GHashTableIter it;
    gpointer value;
    guint i;

    /* Tasks that still need R2Ts; none of them can complete here (each
     * still lacks data), so the table does not change under us. */
    g_hash_table_iter_init(&it, conn->tasks);
    while (g_hash_table_iter_next(&it, NULL, &value)) {
        struct iscsit_task *task = value;

        if (task->next_r2t_off < task->want)
            g_ptr_array_add(waiting, task);
    }
    /* Oldest first: older writes finish first and free their share. */
    g_ptr_array_sort(waiting, cmd_seq_cmp);
    for (i = 0; i < waiting->len; i++)
        cmd_progress(conn, waiting->pdata[i]);
}
