/* cdb.c — the command descriptor table and the parse / exec entry points.
 *
 * The table is indexed by operation code; opcodes that carry a service action
 * in byte 1 (SERVICE ACTION IN(16), MAINTENANCE IN, PERSISTENT RESERVE IN/OUT)
 * point to a second table indexed by service action. Each descriptor gives
 * the command's name, CDB length, CDB usage bitmap (reported verbatim by
 * REPORT SUPPORTED OPERATION CODES and used here to reject set reserved bits),
 * flags (unit attention, write, reservation class), and its parse and exec
 * functions.
 *
 * Order of checks in sdev_cmd_parse (SAM-5 §5.14, SPC-4 §5.13):
 *   1. unit attention pending for this nexus (unless INQUIRY / REPORT LUNS /
 *      REQUEST SENSE)                               -> UNIT ATTENTION
 *   2. unknown opcode / service action              -> INVALID COMMAND OPERATION CODE
 *   3. a bit set outside the usage bitmap           -> INVALID FIELD IN CDB (pointer)
 *   4. a sanitize running on the LU, or failed      -> NOT READY / MEDIUM ERROR
 *   5. the descriptor's parse (values, LBA range, transfer length)
 *   6. write to a read-only view or with SWP=1      -> DATA PROTECT / WRITE PROTECTED
 *   7. reservations (SPC-2 and persistent)          -> RESERVATION CONFLICT
 */
#include "sdev-int.h"

/* The table reads best one command per entry. */
/* clang-format off */

/* Reservation classes used below. */
#define RD (SDEV_OPF_PR_READ)
#define WR (SDEV_OPF_PR_WRITE | SDEV_OPF_WRITES)

/* SERVICE ACTION IN(16), SBC-3 §5.16 / §5.8. */
static const struct sdev_op sdev_sai16_ops[32] = {
    [0x10] = {"READ CAPACITY(16)", 16,
              {0x9e, 0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
               0x01, 0x00},
              SDEV_OPF_PR_ALLOW, sdev_sbc_read_capacity16_parse, sdev_sbc_read_capacity16_exec},
    [0x12] = {"GET LBA STATUS", 16,
              {0x9e, 0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
               0x00, 0x00},
              RD, sdev_sbc_get_lba_status_parse, sdev_sbc_get_lba_status_exec},
};

/* SANITIZE, SBC-4 §5.30: byte 1 is IMMED, reserved, AUSE, SERVICE ACTION. */
#define SANITIZE(sa, nm)                                                                       \
    [sa] = {nm, 10, {0x48, 0xa0 | sa, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0x00},              \
            WR | SDEV_OPF_SANITIZE, sdev_sbc_sanitize_parse, sdev_sbc_sanitize_exec}
static const struct sdev_op sdev_sanitize_ops[32] = {
    SANITIZE(0x02, "SANITIZE/BLOCK ERASE"),
    SANITIZE(0x1f, "SANITIZE/EXIT FAILURE MODE"),
};

/* EXTENDED COPY(LID1), SPC-4 §6.3 (xcopy.c). */
static const struct sdev_op sdev_xcopy_ops[32] = {
    [0x00] = {"EXTENDED COPY(LID1)", 16,
              {0x83, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff,
               0x00, 0x00},
              WR, sdev_spc_extended_copy_parse, sdev_spc_extended_copy_exec},
};

/* RECEIVE COPY RESULTS, SPC-4 §6.18 (xcopy.c). Byte 2 is the list id. */
static const struct sdev_op sdev_rcr_ops[32] = {
    [0x00] = {"RECEIVE COPY RESULTS/COPY STATUS", 16,
              {0x84, 0x00, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff,
               0x00, 0x00},
              SDEV_OPF_PR_ALLOW, sdev_spc_receive_copy_results_parse,
              sdev_spc_receive_copy_results_exec},
    [0x03] = {"RECEIVE COPY RESULTS/OPERATING PARAMETERS", 16,
              {0x84, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff,
               0x00, 0x00},
              SDEV_OPF_PR_ALLOW, sdev_spc_receive_copy_results_parse,
              sdev_spc_receive_copy_results_exec},
};

/* MAINTENANCE IN, SPC-4 §6.35 / §6.36. */
static const struct sdev_op sdev_maint_in_ops[32] = {
    [0x0c] = {"REPORT SUPPORTED OPERATION CODES", 12,
              {0xa3, 0x0c, 0x87, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00},
              SDEV_OPF_PR_ALLOW, sdev_spc_report_opcodes_parse, sdev_spc_report_opcodes_exec},
    [0x0d] = {"REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS", 12,
              {0xa3, 0x0d, 0x80, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00},
              SDEV_OPF_PR_ALLOW, sdev_spc_report_tmfs_parse, sdev_spc_report_tmfs_exec},
};

/* PERSISTENT RESERVE IN, SPC-4 §6.15. */
#define PRIN(sa, nm)                                                                           \
    [sa] = {nm, 10, {0x5e, sa, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0x00},                 \
            SDEV_OPF_PR_ALLOW, sdev_spc_pr_in_parse, sdev_spc_pr_in_exec}
static const struct sdev_op sdev_pr_in_ops[32] = {
    PRIN(0x00, "PERSISTENT RESERVE IN/READ KEYS"),
    PRIN(0x01, "PERSISTENT RESERVE IN/READ RESERVATION"),
    PRIN(0x02, "PERSISTENT RESERVE IN/REPORT CAPABILITIES"),
    PRIN(0x03, "PERSISTENT RESERVE IN/READ FULL STATUS"),
};

/* PERSISTENT RESERVE OUT, SPC-4 §6.16. REGISTER AND MOVE is not offered. */
#define PROUT(sa, nm)                                                                          \
    [sa] = {nm, 10, {0x5f, sa, 0xff, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0x00},                 \
            SDEV_OPF_PR_ALLOW | SDEV_OPF_PR_SELF, sdev_spc_pr_out_parse, sdev_spc_pr_out_exec}
static const struct sdev_op sdev_pr_out_ops[32] = {
    PROUT(0x00, "PERSISTENT RESERVE OUT/REGISTER"),
    PROUT(0x01, "PERSISTENT RESERVE OUT/RESERVE"),
    PROUT(0x02, "PERSISTENT RESERVE OUT/RELEASE"),
    PROUT(0x03, "PERSISTENT RESERVE OUT/CLEAR"),
    PROUT(0x04, "PERSISTENT RESERVE OUT/PREEMPT"),
    PROUT(0x05, "PERSISTENT RESERVE OUT/PREEMPT AND ABORT"),
    PROUT(0x06, "PERSISTENT RESERVE OUT/REGISTER AND IGNORE EXISTING KEY"),
};

#define RW10(op, nm, b1, fl, p, x)                                                             \
    [op] = {nm, 10, {op, b1, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, 0x00}, fl, p, x}
#define RW12(op, nm, b1, fl, p, x)                                                             \
    [op] = {nm,                                                                                \
            12,                                                                                \
            {op, b1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0x00},              \
            fl,                                                                                \
            p,                                                                                 \
            x}
#define RW16(op, nm, b1, fl, p, x)                                                             \
    [op] = {nm,                                                                                \
            16,                                                                                \
            {op, b1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,   \
             0x1f, 0x00},                                                                      \
            fl,                                                                                \
            p,                                                                                 \
            x}

static const struct sdev_op sdev_ops[256] = {
    [0x00] = {"TEST UNIT READY", 6, {0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, SDEV_OPF_PR_ALLOW,
              sdev_spc_test_unit_ready_parse, sdev_spc_test_unit_ready_exec},
    [0x03] = {"REQUEST SENSE", 6, {0x03, 0x01, 0x00, 0x00, 0xff, 0x00},
              SDEV_OPF_UA_PASS | SDEV_OPF_PR_ALLOW | SDEV_OPF_SPC2_ALLOW | SDEV_OPF_SAN_PASS,
              sdev_spc_request_sense_parse, sdev_spc_request_sense_exec},
    [0x08] = {"READ(6)", 6, {0x08, 0x1f, 0xff, 0xff, 0xff, 0x00}, RD, sdev_sbc_read_parse,
              sdev_sbc_read_exec},
    [0x0a] = {"WRITE(6)", 6, {0x0a, 0x1f, 0xff, 0xff, 0xff, 0x00}, WR, sdev_sbc_write_parse,
              sdev_sbc_write_exec},
    [0x12] = {"INQUIRY", 6, {0x12, 0x01, 0xff, 0xff, 0xff, 0x00},
              SDEV_OPF_UA_PASS | SDEV_OPF_PR_ALLOW | SDEV_OPF_SPC2_ALLOW | SDEV_OPF_SAN_PASS,
              sdev_spc_inquiry_parse, sdev_spc_inquiry_exec},
    [0x15] = {"MODE SELECT(6)", 6, {0x15, 0x11, 0x00, 0x00, 0xff, 0x00}, SDEV_OPF_PR_REGONLY,
              sdev_spc_mode_select_parse, sdev_spc_mode_select_exec},
    [0x16] = {"RESERVE(6)", 6, {0x16, 0x00, 0x00, 0x00, 0x00, 0x00},
              SDEV_OPF_PR_SELF | SDEV_OPF_PR_ALLOW, sdev_spc_reserve_parse, sdev_spc_reserve_exec},
    [0x17] = {"RELEASE(6)", 6, {0x17, 0x00, 0x00, 0x00, 0x00, 0x00},
              SDEV_OPF_PR_SELF | SDEV_OPF_PR_ALLOW | SDEV_OPF_SPC2_ALLOW, sdev_spc_release_parse,
              sdev_spc_release_exec},
    [0x1a] = {"MODE SENSE(6)", 6, {0x1a, 0x08, 0xff, 0xff, 0xff, 0x00}, SDEV_OPF_PR_REGONLY,
              sdev_spc_mode_sense_parse, sdev_spc_mode_sense_exec},
    [0x1b] = {"START STOP UNIT", 6, {0x1b, 0x01, 0x00, 0x0f, 0xf7, 0x00}, SDEV_OPF_PR_ALLOW,
              sdev_spc_start_stop_unit_parse, sdev_spc_start_stop_unit_exec},
    [0x1e] = {"PREVENT ALLOW MEDIUM REMOVAL", 6, {0x1e, 0x00, 0x00, 0x00, 0x03, 0x00},
              SDEV_OPF_PR_ALLOW, sdev_spc_prevent_allow_parse, sdev_spc_prevent_allow_exec},
    [0x25] = {"READ CAPACITY(10)", 10,
              {0x25, 0x00, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x01, 0x00}, SDEV_OPF_PR_ALLOW,
              sdev_sbc_read_capacity10_parse, sdev_sbc_read_capacity10_exec},
    RW10(0x28, "READ(10)", 0xfe, RD, sdev_sbc_read_parse, sdev_sbc_read_exec),
    RW10(0x2a, "WRITE(10)", 0xfa, WR, sdev_sbc_write_parse, sdev_sbc_write_exec),
    RW10(0x2e, "WRITE AND VERIFY(10)", 0xf6, WR, sdev_sbc_write_verify_parse,
         sdev_sbc_write_verify_exec),
    RW10(0x2f, "VERIFY(10)", 0xf6, RD, sdev_sbc_verify_parse, sdev_sbc_verify_exec),
    RW10(0x34, "PRE-FETCH(10)", 0x02, RD, sdev_sbc_prefetch_parse, sdev_sbc_prefetch_exec),
    RW10(0x35, "SYNCHRONIZE CACHE(10)", 0x06, SDEV_OPF_PR_WRITE, sdev_sbc_sync_cache_parse,
         sdev_sbc_sync_cache_exec),
    [0x37] = {"READ DEFECT DATA(10)", 10,
              {0x37, 0x00, 0x1f, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0x00},
              RD, sdev_sbc_read_defect_data_parse, sdev_sbc_read_defect_data_exec},
    RW10(0x41, "WRITE SAME(10)", 0xf8, WR, sdev_sbc_write_same_parse, sdev_sbc_write_same_exec),
    [0x42] = {"UNMAP", 10, {0x42, 0x01, 0x00, 0x00, 0x00, 0x00, 0x1f, 0xff, 0xff, 0x00}, WR,
              sdev_sbc_unmap_parse, sdev_sbc_unmap_exec},
    [0x48] = {"SANITIZE", 10, {0x48}, 0, NULL, NULL, sdev_sanitize_ops},
    [0x55] = {"MODE SELECT(10)", 10,
              {0x55, 0x11, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0x00}, SDEV_OPF_PR_REGONLY,
              sdev_spc_mode_select_parse, sdev_spc_mode_select_exec},
    [0x56] = {"RESERVE(10)", 10, {0x56, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00},
              SDEV_OPF_PR_SELF | SDEV_OPF_PR_ALLOW, sdev_spc_reserve_parse, sdev_spc_reserve_exec},
    [0x57] = {"RELEASE(10)", 10, {0x57, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00},
              SDEV_OPF_PR_SELF | SDEV_OPF_PR_ALLOW | SDEV_OPF_SPC2_ALLOW, sdev_spc_release_parse,
              sdev_spc_release_exec},
    [0x5a] = {"MODE SENSE(10)", 10,
              {0x5a, 0x18, 0xff, 0xff, 0x00, 0x00, 0x00, 0xff, 0xff, 0x00}, SDEV_OPF_PR_REGONLY,
              sdev_spc_mode_sense_parse, sdev_spc_mode_sense_exec},
    [0x5e] = {"PERSISTENT RESERVE IN", 10, {0x5e}, 0, NULL, NULL, sdev_pr_in_ops},
    [0x5f] = {"PERSISTENT RESERVE OUT", 10, {0x5f}, 0, NULL, NULL, sdev_pr_out_ops},
    [0x83] = {"EXTENDED COPY", 16, {0x83}, 0, NULL, NULL, sdev_xcopy_ops},
    [0x84] = {"RECEIVE COPY RESULTS", 16, {0x84}, 0, NULL, NULL, sdev_rcr_ops},
    RW16(0x88, "READ(16)", 0xfe, RD, sdev_sbc_read_parse, sdev_sbc_read_exec),
    [0x89] = {"COMPARE AND WRITE",
              16,
              {0x89, 0xfa, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0xff,
               0x1f, 0x00},
              WR,
              sdev_sbc_compare_and_write_parse,
              sdev_sbc_compare_and_write_exec},
    RW16(0x8a, "WRITE(16)", 0xfa, WR, sdev_sbc_write_parse, sdev_sbc_write_exec),
    RW16(0x8b, "ORWRITE(16)", 0xfa, WR, sdev_sbc_orwrite_parse, sdev_sbc_orwrite_exec),
    RW16(0x8e, "WRITE AND VERIFY(16)", 0xf6, WR, sdev_sbc_write_verify_parse,
         sdev_sbc_write_verify_exec),
    RW16(0x8f, "VERIFY(16)", 0xf6, RD, sdev_sbc_verify_parse, sdev_sbc_verify_exec),
    RW16(0x90, "PRE-FETCH(16)", 0x02, RD, sdev_sbc_prefetch_parse, sdev_sbc_prefetch_exec),
    RW16(0x91, "SYNCHRONIZE CACHE(16)", 0x06, SDEV_OPF_PR_WRITE, sdev_sbc_sync_cache_parse,
         sdev_sbc_sync_cache_exec),
    RW16(0x93, "WRITE SAME(16)", 0xf9, WR, sdev_sbc_write_same_parse, sdev_sbc_write_same_exec),
    [0x9e] = {"SERVICE ACTION IN(16)", 16, {0x9e}, 0, NULL, NULL, sdev_sai16_ops},
    [0xa0] = {"REPORT LUNS", 12,
              {0xa0, 0x00, 0xff, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00},
              SDEV_OPF_UA_PASS | SDEV_OPF_PR_ALLOW | SDEV_OPF_SPC2_ALLOW | SDEV_OPF_SAN_PASS,
              sdev_spc_report_luns_parse, sdev_spc_report_luns_exec},
    [0xa3] = {"MAINTENANCE IN", 12, {0xa3}, 0, NULL, NULL, sdev_maint_in_ops},
    RW12(0xa8, "READ(12)", 0xfe, RD, sdev_sbc_read_parse, sdev_sbc_read_exec),
    RW12(0xaa, "WRITE(12)", 0xfa, WR, sdev_sbc_write_parse, sdev_sbc_write_exec),
    RW12(0xae, "WRITE AND VERIFY(12)", 0xf6, WR, sdev_sbc_write_verify_parse,
         sdev_sbc_write_verify_exec),
    RW12(0xaf, "VERIFY(12)", 0xf6, RD, sdev_sbc_verify_parse, sdev_sbc_verify_exec),
    [0xb7] = {"READ DEFECT DATA(12)", 12,
              {0xb7, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00},
              RD, sdev_sbc_read_defect_data_parse, sdev_sbc_read_defect_data_exec},
};
/* clang-format on */

const struct sdev_op *
sdev_op_lookup(uint8_t opcode, uint8_t sa, bool *has_sa)
{
    const struct sdev_op *op = &sdev_ops[opcode];

    *has_sa = op->sa_ops != NULL;
    if (op->sa_ops)
        op = &op->sa_ops[sa & 0x1f];
    return op->parse ? op : NULL;
}

void
sdev_op_foreach(sdev_op_iter_fn fn, void *user_data)
{
    for (unsigned code = 0; code < 256; code++) {
        const struct sdev_op *op = &sdev_ops[code];
        if (op->sa_ops) {
            for (unsigned sa = 0; sa < 32; sa++) {
                if (op->sa_ops[sa].parse &&
                    !fn((uint8_t)code, (uint8_t)sa, true, &op->sa_ops[sa], user_data))
                    return;
            }
        } else if (op->parse && !fn((uint8_t)code, 0, false, op, user_data)) {
            return;
        }
    }
}

/* ---- helpers shared by the handlers ---- */

enum sdev_sense
sdev_check_range(struct sdev_req *req, uint64_t lba, uint64_t count)
{
    uint64_t nblocks = sdev_lu_nblocks(req->lu);

    if (lba > nblocks || count > nblocks - lba)
        return SDEV_SENSE_LBA_OUT_OF_RANGE;
    return SDEV_SENSE_OK;
}

uint8_t *
sdev_data_in(struct sdev_req *req, size_t len, uint32_t limit)
{
    struct sdev_cmd *cmd = req->cmd;

    sdev_cmd_release_data_in(cmd);
    cmd->data_in = g_malloc0(len ? len : 1);
    cmd->data_in_len = (uint32_t)MIN(len, (size_t)limit);
    return cmd->data_in;
}

bool
sdev_lu_write_protected(struct sdev_lu *lu)
{
    bool swp;

    if (view_is_read_only(lu->view))
        return true;
    sdev_lu_lock(lu);
    swp = lu->swp;
    sdev_lu_unlock(lu);
    return swp;
}

uint32_t
sdev_data_out_len(const struct sdev_req *req, uint32_t want)
{
    const struct sdev_cmd *cmd = req->cmd;

    if (!cmd->data_out)
        return 0;
    return MIN(want, cmd->data_out_len);
}

/* ---- parse / exec ---- */

/* nexus is NULL only for sdev_cmd_exec_no_lun (no LU either). */
static void
sdev_req_init(struct sdev_req *req, struct sdev_lu *lu, struct sdev_nexus *nexus,
              struct sdev_cmd *cmd)
{
    memset(req, 0, sizeof(*req));
    req->nexus = nexus;
    req->lu = lu;
    req->cmd = cmd;
    req->field_bit = -1;
}

/* Step 3: any bit set that the usage bitmap does not allow. For service
 * action opcodes the SA bits of byte 1 were matched by the lookup. */
static enum sdev_sense
sdev_check_usage(struct sdev_req *req, bool has_sa)
{
    const struct sdev_op *op = req->op;
    const uint8_t *cdb = req->cmd->cdb;

    for (unsigned i = 1; i < op->cdb_len; i++) {
        uint8_t allowed = op->usage[i];
        if (i == 1 && has_sa)
            allowed |= 0x1f;
        uint8_t bad = cdb[i] & (uint8_t)~allowed;
        if (bad)
            return sdev_bad_cdb(req, i, g_bit_nth_msf(bad, -1));
    }
    return SDEV_SENSE_OK;
}

static enum sdev_sense
sdev_parse_steps(struct sdev_req *req)
{
    struct sdev_cmd *cmd = req->cmd;
    struct sdev_nexus *nexus = req->nexus;
    bool has_sa = false;
    enum sdev_sense r;

    const struct sdev_op *op =
        cmd->cdb_len > 0 ? sdev_op_lookup(cmd->cdb[0], cmd->cdb[1], &has_sa) : NULL;

    if (!op || !(op->flags & SDEV_OPF_UA_PASS)) {
        bool ua;
        sdev_lu_lock(req->lu);
        ua = sdev_ua_take_locked(nexus, &req->ua_asc, &req->ua_ascq);
        sdev_lu_unlock(req->lu);
        if (ua)
            return SDEV_SENSE_UNIT_ATTENTION;
    }
    if (!op) {
        if (cmd->cdb_len > 0 && sdev_ops[cmd->cdb[0]].sa_ops)
            return sdev_bad_cdb(req, 1, 4); /* known opcode, unknown service action */
        return SDEV_SENSE_INVALID_OPCODE;
    }
    if (cmd->cdb_len < op->cdb_len)
        return SDEV_SENSE_INVALID_OPCODE;
    req->op = op;
    cmd->desc = op;
    r = sdev_check_usage(req, has_sa);
    if (r)
        return r;
    r = sdev_sanitize_check(req);
    if (r)
        return r;
    r = op->parse(req);
    if (r)
        return r;
    if ((op->flags & SDEV_OPF_WRITES) && sdev_lu_write_protected(req->lu))
        return SDEV_SENSE_WRITE_PROTECTED;
    return sdev_pr_check(req);
}

bool
sdev_cmd_parse(struct sdev_nexus *nexus, struct sdev_cmd *cmd)
{
    struct sdev_req req;
    enum sdev_sense r;

    cmd->dir = SDEV_DIR_NONE;
    cmd->xfer_len = 0;
    cmd->data_in = NULL;
    cmd->data_in_len = 0;
    memset(&cmd->data_in_map, 0, sizeof(cmd->data_in_map));
    cmd->status = SDEV_STATUS_GOOD;
    cmd->sense_len = 0;
    cmd->desc = NULL;
    cmd->lba = 0;
    cmd->nblocks = 0;
    cmd->flags = 0;
    if (cmd->cdb_len > SDEV_CDB_MAX)
        cmd->cdb_len = SDEV_CDB_MAX;

    sdev_req_init(&req, nexus->lu, nexus, cmd);
    r = sdev_parse_steps(&req);
    if (r == SDEV_SENSE_OK)
        return true;
    sdev_sense_apply(&req, r, sdev_lu_desc_sense(nexus->lu));
    cmd->desc = NULL;
    return false;
}

void
sdev_cmd_exec(struct sdev_nexus *nexus, struct sdev_cmd *cmd)
{
    struct sdev_req req;
    enum sdev_sense r;

    if (!cmd->desc)
        return; /* parse failed: status and sense are already set */
    sdev_req_init(&req, nexus->lu, nexus, cmd);
    req.op = cmd->desc;
    /* Data-out may have taken R2T round trips since parse; another nexus
     * could have reserved the LU meanwhile (SPC-4 §5.13.1: conflicts are
     * decided when the command is processed). */
    r = SDEV_SENSE_OK;
    if (cmd->dir == SDEV_DIR_WRITE && !(req.op->flags & SDEV_OPF_PR_SELF))
        r = sdev_pr_check(&req);
    if (r == SDEV_SENSE_OK)
        r = req.op->exec(&req);
    sdev_sense_apply(&req, r, r != SDEV_SENSE_OK && sdev_lu_desc_sense(nexus->lu));
}

void
sdev_cmd_release_data_in(struct sdev_cmd *cmd)
{
    if (cmd->data_in_map.data != NULL) {
        view_map_release(&cmd->data_in_map);
        cmd->data_in = NULL;
    }
    g_clear_pointer(&cmd->data_in, g_free);
    cmd->data_in_len = 0;
}

void
sdev_cmd_clear(struct sdev_cmd *cmd)
{
    sdev_cmd_release_data_in(cmd);
    cmd->desc = NULL;
}

/* SPC-4 §4.6.4 / §6.6.1: what a logical unit that does not exist answers. */
void
sdev_cmd_exec_no_lun(struct sdev_cmd *cmd)
{
    struct sdev_req req;
    const uint8_t *cdb = cmd->cdb;

    sdev_req_init(&req, NULL, NULL, cmd);
    cmd->dir = SDEV_DIR_NONE;
    cmd->xfer_len = 0;
    cmd->data_in = NULL;
    cmd->data_in_len = 0;
    memset(&cmd->data_in_map, 0, sizeof(cmd->data_in_map));
    cmd->status = SDEV_STATUS_GOOD;
    cmd->sense_len = 0;
    cmd->desc = NULL;

    if (cmd->cdb_len >= 6 && cdb[0] == 0x12 && (cdb[1] & 0x03) == 0 && cdb[2] == 0) {
        /* Standard INQUIRY: peripheral qualifier 011b, device type 1Fh. */
        uint32_t alloc = sdev_be16(cdb + 3);
        uint8_t *buf = sdev_data_in(&req, 96, alloc);
        sdev_inquiry_std(NULL, buf, 96, true);
        cmd->dir = SDEV_DIR_READ;
        cmd->xfer_len = alloc;
        return;
    }
    if (cmd->cdb_len >= 12 && cdb[0] == 0xa0) {
        /* REPORT LUNS is answered for the target: LUN 0 exists. */
        uint32_t alloc = sdev_be32(cdb + 6);
        uint8_t *buf = sdev_data_in(&req, 16, alloc);
        sdev_put_be32(buf, 8);
        cmd->dir = SDEV_DIR_READ;
        cmd->xfer_len = alloc;
        return;
    }
    if (cmd->cdb_len >= 6 && cdb[0] == 0x03) {
        /* REQUEST SENSE returns the reason in parameter data, GOOD status. */
        uint32_t alloc = cdb[4];
        uint8_t *buf = sdev_data_in(&req, SDEV_SENSE_MAX, alloc);
        uint32_t n = sdev_sense_build(buf, cdb[1] & 1, SDEV_KEY_ILLEGAL_REQUEST, 0x25, 0x00, NULL);
        cmd->data_in_len = MIN(n, alloc);
        cmd->dir = SDEV_DIR_READ;
        cmd->xfer_len = alloc;
        return;
    }
    sdev_sense_apply(&req, SDEV_SENSE_LUN_NOT_SUPPORTED, false);
}
