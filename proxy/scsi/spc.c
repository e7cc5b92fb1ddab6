/* spc.c — primary commands (SPC-4): INQUIRY (standard data; VPD pages are in
 * vpd.c), TEST UNIT READY, REQUEST SENSE, REPORT LUNS, START STOP UNIT,
 * PREVENT ALLOW MEDIUM REMOVAL, REPORT SUPPORTED OPERATION CODES and REPORT
 * SUPPORTED TASK MANAGEMENT FUNCTIONS. MODE SENSE/SELECT live in mode.c and
 * reservations in pr.c.
 */
#include "sdev-int.h"

enum sdev_sense
sdev_spc_test_unit_ready_parse(struct sdev_req *req)
{
    return SDEV_SENSE_OK;
}

enum sdev_sense
sdev_spc_test_unit_ready_exec(struct sdev_req *req)
{
    return SDEV_SENSE_OK; /* the medium is always present and ready */
}

/* SPC-4 §6.6.2 standard INQUIRY data, 96 bytes. */
size_t
sdev_inquiry_std(struct sdev_lu *lu, uint8_t *buf, size_t cap, bool no_lun)
{
    static const uint16_t versions[] = {
        0x00a0, /* SAM-5 */
        0x0460, /* SPC-4 */
        0x04c0, /* SBC-3 */
    };

    g_assert(cap >= 96);
    memset(buf, 0, 96);
    /* PERIPHERAL QUALIFIER 000b / type 00h (direct access); 011b / 1Fh when
     * no logical unit is there (SPC-4 §6.6.2 table 141). */
    buf[0] = no_lun ? 0x7f : 0x00;
    buf[2] = 0x06;        /* VERSION: SPC-4 */
    buf[3] = 0x10 | 0x02; /* HISUP, RESPONSE DATA FORMAT 2 */
    buf[4] = 96 - 5;      /* ADDITIONAL LENGTH */
    buf[5] = 0x00;        /* SCCS=0 ACC=0 TPGS=00b 3PC=0 PROTECT=0 */
    buf[7] = 0x02;        /* CMDQUE */
    memcpy(buf + 8, lu ? lu->vendor : "OVGATE  ", 8);
    memcpy(buf + 16, lu ? lu->product : "ovgate disk     ", 16);
    memcpy(buf + 32, lu ? lu->revision : "0   ", 4);
    for (size_t i = 0; i < G_N_ELEMENTS(versions); i++)
        sdev_put_be16(buf + 58 + 2 * i, versions[i]);
    return 96;
}

enum sdev_sense
sdev_spc_inquiry_parse(struct sdev_req *req)
{
    struct sdev_cmd *cmd = req->cmd;

    if (!(cmd->cdb[1] & 0x01) && cmd->cdb[2] != 0)
        return sdev_bad_cdb(req, 2, -1); /* PAGE CODE without EVPD */
    cmd->dir = SDEV_DIR_READ;
    cmd->xfer_len = sdev_be16(cmd->cdb + 3);
    return SDEV_SENSE_OK;
}

enum sdev_sense
sdev_spc_inquiry_exec(struct sdev_req *req)
{
    struct sdev_cmd *cmd = req->cmd;

    if (cmd->cdb[1] & 0x01) {
        uint8_t *page = NULL;
        size_t len = 0;
        enum sdev_sense r = sdev_vpd_build(req, cmd->cdb[2], &page, &len);
        if (r)
            return r;
        sdev_cmd_release_data_in(cmd);
        cmd->data_in = page;
        cmd->data_in_len = (uint32_t)MIN(len, (size_t)cmd->xfer_len);
        return SDEV_SENSE_OK;
    }
    sdev_inquiry_std(req->lu, sdev_data_in(req, 96, cmd->xfer_len), 96, false);
    return SDEV_SENSE_OK;
}

enum sdev_sense
sdev_spc_request_sense_parse(struct sdev_req *req)
{
    struct sdev_cmd *cmd = req->cmd;

    cmd->dir = SDEV_DIR_READ;
    cmd->xfer_len = cmd->cdb[4];
    return SDEV_SENSE_OK;
}

/* SPC-4 §6.39: returns (and clears) the oldest pending unit attention, else
 * NO SENSE. The DESC bit picks descriptor format. */
enum sdev_sense
sdev_spc_request_sense_exec(struct sdev_req *req)
{
    struct sdev_cmd *cmd = req->cmd;
    uint8_t asc = 0, ascq = 0, key = SDEV_KEY_NO_SENSE;
    uint8_t sense[SDEV_SENSE_MAX];

    sdev_lu_lock(req->lu);
    if (req->lu->sanitizing) /* SBC-4 §4.11.2 */
        sdev_sense_lookup(SDEV_SENSE_SANITIZE_IN_PROGRESS, &key, &asc, &ascq);
    else if (sdev_ua_take_locked(req->nexus, &asc, &ascq))
        key = SDEV_KEY_UNIT_ATTENTION;
    sdev_lu_unlock(req->lu);

    uint32_t n = sdev_sense_build(sense, cmd->cdb[1] & 0x01, key, asc, ascq, NULL);
    memcpy(sdev_data_in(req, n, cmd->xfer_len), sense, n);
    return SDEV_SENSE_OK;
}

/* SPC-4 §6.33. Every target has exactly LUN 0. */
enum sdev_sense
sdev_spc_report_luns_parse(struct sdev_req *req)
{
    struct sdev_cmd *cmd = req->cmd;
    uint8_t select = cmd->cdb[2];

    if (select != 0x00 && select != 0x01 && select != 0x02 && (select < 0x10 || select > 0x12))
        return sdev_bad_cdb(req, 2, -1);
    cmd->dir = SDEV_DIR_READ;
    cmd->xfer_len = sdev_be32(cmd->cdb + 6);
    return SDEV_SENSE_OK;
}

enum sdev_sense
sdev_spc_report_luns_exec(struct sdev_req *req)
{
    struct sdev_cmd *cmd = req->cmd;
    uint8_t select = cmd->cdb[2];
    /* 00h all LUs, 02h all LUs, 11h/12h LUs below the administrative LU
     * (we have none, so 11h lists LUN 0 as "all"); 01h well-known LUs and
     * 10h administrative LUs: none. */
    bool list = select == 0x00 || select == 0x02 || select == 0x11;
    uint8_t *buf = sdev_data_in(req, list ? 16 : 8, cmd->xfer_len);

    sdev_put_be32(buf, list ? 8 : 0); /* LUN LIST LENGTH; LUN 0 is all zeros */
    return SDEV_SENSE_OK;
}

/* SBC-3 §5.25. There is no medium to load or eject and no power state to
 * change; stopping the unit flushes the write-back cache (unless NO_FLUSH). */
enum sdev_sense
sdev_spc_start_stop_unit_parse(struct sdev_req *req)
{
    uint8_t pc = req->cmd->cdb[4] >> 4;

    switch (pc) {
    case 0x0: /* START_VALID */
    case 0x1: /* ACTIVE */
    case 0x2: /* IDLE */
    case 0x3: /* STANDBY */
    case 0x7: /* LU_CONTROL */
    case 0xa: /* FORCE_IDLE_0 */
    case 0xb: /* FORCE_STANDBY_0 */
        return SDEV_SENSE_OK;
    default:
        return sdev_bad_cdb(req, 4, 7);
    }
}

enum sdev_sense
sdev_spc_start_stop_unit_exec(struct sdev_req *req)
{
    const uint8_t *cdb = req->cmd->cdb;
    bool stop = (cdb[4] >> 4) == 0 && !(cdb[4] & 0x01);

    if (stop && !(cdb[4] & 0x04)) {
        int rc = view_flush(req->lu->view);
        if (rc < 0)
            return sdev_sense_from_errno(rc, true);
    }
    return SDEV_SENSE_OK;
}

/* SPC-4 §6.13 / SBC-3 §5.11: the medium is not removable, so PREVENT
 * (01b, 10b, 11b) is not supported: INVALID FIELD IN CDB. ALLOW succeeds. */
enum sdev_sense
sdev_spc_prevent_allow_parse(struct sdev_req *req)
{
    if (req->cmd->cdb[4] & 0x03)
        return sdev_bad_cdb(req, 4, 1);
    return SDEV_SENSE_OK;
}

enum sdev_sense
sdev_spc_prevent_allow_exec(struct sdev_req *req)
{
    return SDEV_SENSE_OK;
}

/* ---- REPORT SUPPORTED OPERATION CODES, SPC-4 §6.35 ---- */

enum sdev_sense
sdev_spc_report_opcodes_parse(struct sdev_req *req)
{
    struct sdev_cmd *cmd = req->cmd;
    const uint8_t *cdb = cmd->cdb;
    uint8_t options = cdb[2] & 0x07;
    bool has_sa = false;

    if (options > 3)
        return sdev_bad_cdb(req, 2, 2);
    if (options == 1 || options == 2) {
        /* 001b: the opcode must not have service actions; 010b: it must. */
        (void)sdev_op_lookup(cdb[3], 0, &has_sa);
        if (options == 1 && has_sa)
            return sdev_bad_cdb(req, 3, -1);
        if (options == 2 && !has_sa)
            return sdev_bad_cdb(req, 3, -1);
    }
    cmd->dir = SDEV_DIR_READ;
    cmd->xfer_len = sdev_be32(cdb + 6);
    return SDEV_SENSE_OK;
}

/* Command timeouts descriptor (SPC-4 §6.35.4): length 0Ah, no timeouts known. */
static void
sdev_rsoc_timeouts(uint8_t *p)
{
    sdev_put_be16(p, 0x0a);
}

struct sdev_rsoc_all {
    GByteArray *out;
    bool rctd;
};

static bool
sdev_rsoc_all_one(uint8_t opcode, uint8_t sa, bool has_sa, const struct sdev_op *op,
                  void *user_data)
{
    struct sdev_rsoc_all *all = user_data;
    uint8_t d[20] = {0};

    d[0] = opcode;
    sdev_put_be16(d + 2, sa);
    d[5] = (uint8_t)((all->rctd ? 0x02 : 0) | (has_sa ? 0x01 : 0)); /* CTDP, SERVACTV */
    sdev_put_be16(d + 6, op->cdb_len);
    if (all->rctd)
        sdev_rsoc_timeouts(d + 8);
    g_byte_array_append(all->out, d, all->rctd ? 20 : 8);
    return true;
}

enum sdev_sense
sdev_spc_report_opcodes_exec(struct sdev_req *req)
{
    struct sdev_cmd *cmd = req->cmd;
    const uint8_t *cdb = cmd->cdb;
    uint8_t options = cdb[2] & 0x07;
    bool rctd = cdb[2] & 0x80;
    g_autoptr(GByteArray) out = g_byte_array_new();

    if (options == 0) {
        struct sdev_rsoc_all all = {out, rctd};
        uint8_t hdr[4] = {0};
        g_byte_array_append(out, hdr, 4);
        sdev_op_foreach(sdev_rsoc_all_one, &all);
        sdev_put_be32(out->data, out->len - 4);
    } else {
        bool has_sa = false;
        uint16_t want_sa = sdev_be16(cdb + 4);
        const struct sdev_op *op = sdev_op_lookup(cdb[3], (uint8_t)want_sa, &has_sa);
        uint8_t d[4 + 16 + 12] = {0};
        size_t len = 4;

        if (has_sa && options != 1 && want_sa > 0x1f)
            op = NULL;
        if (!has_sa && options == 3 && want_sa != 0)
            op = NULL; /* 011b names a service action the opcode does not have */
        if (!op) {
            d[1] = 0x01; /* SUPPORT 001b: not supported */
        } else {
            d[1] = (uint8_t)((rctd ? 0x80 : 0) | 0x03); /* CTDP, SUPPORT 011b */
            sdev_put_be16(d + 2, op->cdb_len);
            memcpy(d + 4, op->usage, op->cdb_len);
            len += op->cdb_len;
            if (rctd) {
                sdev_rsoc_timeouts(d + len);
                len += 12;
            }
        }
        g_byte_array_append(out, d, (guint)len);
    }
    uint8_t *buf = sdev_data_in(req, out->len, cmd->xfer_len);
    memcpy(buf, out->data, out->len);
    return SDEV_SENSE_OK;
}

/* ---- REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS, SPC-4 §6.36 ---- */

enum sdev_sense
sdev_spc_report_tmfs_parse(struct sdev_req *req)
{
    struct sdev_cmd *cmd = req->cmd;

    cmd->dir = SDEV_DIR_READ;
    cmd->xfer_len = sdev_be32(cmd->cdb + 6);
    return SDEV_SENSE_OK;
}

enum sdev_sense
sdev_spc_report_tmfs_exec(struct sdev_req *req)
{
    struct sdev_cmd *cmd = req->cmd;
    bool repd = cmd->cdb[2] & 0x80;
    uint8_t *buf = sdev_data_in(req, repd ? 16 : 4, cmd->xfer_len);

    /* ABORT TASK (the transport), ABORT TASK SET, CLEAR TASK SET,
     * LOGICAL UNIT RESET, TARGET RESET. No ACA (NACA is not supported), no
     * QUERY functions, no I_T NEXUS RESET (iSCSI has none). */
    buf[0] = 0x80 | 0x40 | 0x10 | 0x08 | 0x02;
    if (repd)
        buf[3] = 0x0c;
    return SDEV_SENSE_OK;
}
