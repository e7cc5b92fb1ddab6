/* tmf.c — Task Management Function Request/Response (RFC 7143 §11.5,
 * §11.6; SAM-5 §7).
 *
 * Commands execute synchronously on the connection thread, so the only
 * tasks that can be "in progress" when a TMF arrives are writes still
 * waiting for Data-Out; aborting a task frees it without a SCSI Response
 * (RFC 7143 §4.2.3.3: the TMF response is the answer). Reservation and unit
 * attention effects are sdev's (sdev_tmf). TARGET COLD RESET ends the
 * connection after its response (RFC 7143 §11.5.1).
 */
#include <string.h>

#include "log.h"
#include "iscsi-int.h"

/* Drop this connection's waiting tasks, all of them or those of one LUN. */
static void
tmf_abort_tasks(struct iscsit_conn *conn, bool all, uint64_t lun_raw)
{
    GHashTableIter it;
    gpointer value;

    g_hash_table_iter_init(&it, conn->tasks);
    while (g_hash_table_iter_next(&it, NULL, &value)) {
        struct iscsit_task *task = value;

        if (all || task->lun_raw == lun_raw)
            g_hash_table_iter_remove(&it);
    }
    /* Commands held ahead of a CmdSN gap belong to the task set too. */
    iscsit_conn_drop_held(conn, NULL, all ? NULL : &lun_raw);
}

/* ABORT TASK (RFC 7143 §11.5.1): a task we still hold (waiting for
 * Data-Out, or held ahead of a CmdSN gap) is dropped. A task we do not have
 * is "complete" only when its RefCmdSN lies in the valid window [ExpCmdSN,
 * MaxCmdSN] before this request (b: the command has not arrived yet; its
 * CmdSN counts as received, so it is not run when it comes); a task already
 * answered (RefCmdSN < ExpCmdSN) or outside the window "does not exist" (c). */
static uint8_t
tmf_abort_task(struct iscsit_conn *conn, const struct iscsit_bhs *req)
{
    struct iscsit_sess *sess = conn->sess;
    uint32_t rtt = iscsit_bhs_get32(req, ISCSIT_OFF_TTT);
    uint32_t ref_cmdsn = iscsit_bhs_get32(req, ISCSIT_OFF_MAXCMDSN);
    uint32_t cmdsn = iscsit_bhs_get32(req, ISCSIT_OFF_CMDSN);
    struct iscsit_task *task = g_hash_table_lookup(conn->tasks, GUINT_TO_POINTER(rtt));

    uint64_t lun_raw = iscsit_bhs_get_lun(req);

    if (task && task->lun_raw == lun_raw) {
        g_hash_table_remove(conn->tasks, GUINT_TO_POINTER(rtt));
        return ISCSIT_TMF_RSP_COMPLETE;
    }
    if (iscsit_conn_drop_held(conn, &rtt, &lun_raw) > 0)
        return ISCSIT_TMF_RSP_COMPLETE;
    if (iscsit_sn_le(sess->exp_cmdsn, ref_cmdsn) && iscsit_sn_le(ref_cmdsn, sess->max_cmdsn) &&
        iscsit_sn_lt(ref_cmdsn, cmdsn)) {
        iscsit_conn_skip_cmdsn(conn, ref_cmdsn);
        return ISCSIT_TMF_RSP_COMPLETE;
    }
    return ISCSIT_TMF_RSP_NO_TASK;
}

static uint8_t
tmf_sdev(struct iscsit_conn *conn, enum sdev_tmf fn)
{
    int r = sdev_tmf(conn->sess->nexus, fn);

    return r == 0 ? ISCSIT_TMF_RSP_COMPLETE : (uint8_t)r;
}

void
iscsit_rx_tmf(struct iscsit_conn *conn, const struct iscsit_pdu *pdu)
{
    const struct iscsit_bhs *req = &pdu->bhs;
    uint8_t fn = req->b[1] & 0x7f;
    uint64_t lun_raw = iscsit_bhs_get_lun(req), lun;
    bool lun_ok = iscsit_lun_decode(lun_raw, &lun) && lun == 0;
    struct iscsit_bhs rsp = {{0}};
    uint8_t response;

    switch (fn) {
    case ISCSIT_TMF_ABORT_TASK:
        response = lun_ok ? tmf_abort_task(conn, req) : ISCSIT_TMF_RSP_NO_LUN;
        break;
    case ISCSIT_TMF_ABORT_TASK_SET:
    case ISCSIT_TMF_CLEAR_TASK_SET:
        if (!lun_ok) {
            response = ISCSIT_TMF_RSP_NO_LUN;
            break;
        }
        tmf_abort_tasks(conn, false, lun_raw);
        response = tmf_sdev(conn, fn == ISCSIT_TMF_ABORT_TASK_SET ? SDEV_TMF_ABORT_TASK_SET
                                                                  : SDEV_TMF_CLEAR_TASK_SET);
        break;
    case ISCSIT_TMF_CLEAR_ACA:
        response = lun_ok ? tmf_sdev(conn, SDEV_TMF_CLEAR_ACA) : ISCSIT_TMF_RSP_NO_LUN;
        break;
    case ISCSIT_TMF_LUN_RESET:
        if (!lun_ok) {
            response = ISCSIT_TMF_RSP_NO_LUN;
            break;
        }
        tmf_abort_tasks(conn, false, lun_raw);
        response = tmf_sdev(conn, SDEV_TMF_LUN_RESET);
        break;
    case ISCSIT_TMF_TARGET_WARM_RESET:
    case ISCSIT_TMF_TARGET_COLD_RESET:
        tmf_abort_tasks(conn, true, 0);
        response = tmf_sdev(conn, fn == ISCSIT_TMF_TARGET_WARM_RESET ? SDEV_TMF_TARGET_WARM_RESET
                                                                     : SDEV_TMF_TARGET_COLD_RESET);
        if (fn == ISCSIT_TMF_TARGET_COLD_RESET && response == ISCSIT_TMF_RSP_COMPLETE)
            conn->closing = true;
        break;
    case ISCSIT_TMF_TASK_REASSIGN:
        /* Needs ErrorRecoveryLevel 2 (RFC 7143 §11.5.1). */
        response = ISCSIT_TMF_RSP_NO_REASSIGN;
        break;
    default:
        response = ISCSIT_TMF_RSP_NOT_SUPPORTED;
        break;
    }
    LOG_RATELIMITED(G_LOG_LEVEL_MESSAGE, 10, 10,
                    "iSCSI: %s: task management function %u -> response %u", conn->peer, fn,
                    response);
    rsp.b[0] = ISCSIT_OP_TMF_RSP;
    rsp.b[1] = ISCSIT_FLAG_FINAL;
    rsp.b[2] = response;
    memcpy(rsp.b + ISCSIT_OFF_ITT, req->b + ISCSIT_OFF_ITT, 4);
    iscsit_conn_set_sn(conn, &rsp, true);
    iscsit_tx_pdu(conn, &rsp, NULL, 0, NULL);
    iscsit_cmd_solicit(conn); /* aborted tasks may have freed R2T budget */
}
