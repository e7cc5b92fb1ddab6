/* pr.c — reservations: SPC-2 RESERVE/RELEASE(6/10) and SPC-4 persistent
 * reservations (PERSISTENT RESERVE IN/OUT, §5.13, §6.15, §6.16).
 *
 * State (under lu->lock): a list of registrations, each naming an I_T nexus
 * by initiator port + target port (+ relative port id) so it survives the
 * nexus object (an initiator that reconnects with the same ISID is the same
 * nexus); the reservation type (0 = none) and its holder. For the
 * all-registrants types (7h, 8h) every registrant is a holder; pr_holder then
 * points at any one of them and the reservation ends with the last one.
 *
 * Supported: service actions REGISTER, REGISTER AND IGNORE EXISTING KEY,
 * RESERVE, RELEASE, CLEAR, PREEMPT, PREEMPT AND ABORT; IN: READ KEYS, READ
 * RESERVATION, REPORT CAPABILITIES, READ FULL STATUS; all six types; scope
 * LU only. Not supported (REPORT CAPABILITIES says so): SPEC_I_PT, ALL_TG_PT,
 * REGISTER AND MOVE, and APTPL — registrations live in memory and are lost
 * when the daemon restarts, so PTPL_C=0 and APTPL=1 is refused rather than
 * promised and broken.
 *
 * Conflicts (SPC-4 table 62, SBC-3 table 13) are decided from the command's
 * descriptor flags in sdev_pr_check(). SPC-2 reservations follow SPC-4 §5.13.3
 * for the interaction with persistent reservations (CRH=1).
 */
#include "sdev-int.h"

enum {
    PR_WE = 1,    /* write exclusive */
    PR_EA = 3,    /* exclusive access */
    PR_WE_RO = 5, /* write exclusive, registrants only */
    PR_EA_RO = 6, /* exclusive access, registrants only */
    PR_WE_AR = 7, /* write exclusive, all registrants */
    PR_EA_AR = 8, /* exclusive access, all registrants */
};

static bool
pr_type_valid(uint8_t t)
{
    return t == PR_WE || t == PR_EA || t == PR_WE_RO || t == PR_EA_RO || t == PR_WE_AR ||
           t == PR_EA_AR;
}

static bool
pr_type_all_regs(uint8_t t)
{
    return t == PR_WE_AR || t == PR_EA_AR;
}

static bool
pr_type_regs(uint8_t t)
{
    return t == PR_WE_RO || t == PR_EA_RO || pr_type_all_regs(t);
}

static bool
pr_reg_is_nexus(const struct sdev_pr_reg *reg, const struct sdev_nexus *n)
{
    return g_strcmp0(reg->initiator_port, n->initiator_port) == 0 &&
           g_strcmp0(reg->target_port, n->target_port) == 0 && reg->rel_tpid == n->rel_tpid;
}

static struct sdev_pr_reg *
pr_find(struct sdev_lu *lu, const struct sdev_nexus *n)
{
    for (guint i = 0; i < lu->registrants->len; i++) {
        struct sdev_pr_reg *reg = g_ptr_array_index(lu->registrants, i);
        if (pr_reg_is_nexus(reg, n))
            return reg;
    }
    return NULL;
}

static bool
pr_is_holder(const struct sdev_lu *lu, const struct sdev_pr_reg *reg)
{
    if (!reg || lu->pr_type == 0)
        return false;
    return pr_type_all_regs(lu->pr_type) || lu->pr_holder == reg;
}

static void
pr_reg_free(struct sdev_pr_reg *reg)
{
    g_free(reg->initiator_port);
    g_free(reg->target_port);
    g_free(reg);
}

void
sdev_pr_free_all(struct sdev_lu *lu)
{
    for (guint i = 0; i < lu->registrants->len; i++)
        pr_reg_free(g_ptr_array_index(lu->registrants, i));
    g_ptr_array_set_size(lu->registrants, 0);
    lu->pr_type = 0;
    lu->pr_holder = NULL;
}

static void
pr_release_locked(struct sdev_lu *lu)
{
    lu->pr_type = 0;
    lu->pr_holder = NULL;
}

/* Remove one registration; a holder's removal releases or hands over the
 * reservation (SPC-4 §5.13.11.2.3). Returns true if the reservation ended. */
static bool
pr_unregister_locked(struct sdev_lu *lu, struct sdev_pr_reg *reg)
{
    bool ended = false;

    g_ptr_array_remove(lu->registrants, reg);
    if (lu->pr_type && pr_type_all_regs(lu->pr_type)) {
        if (lu->registrants->len == 0) {
            pr_release_locked(lu);
            ended = true;
        } else {
            lu->pr_holder = g_ptr_array_index(lu->registrants, 0);
        }
    } else if (lu->pr_type && lu->pr_holder == reg) {
        pr_release_locked(lu);
        ended = true;
    }
    pr_reg_free(reg);
    return ended;
}

void
sdev_pr_nexus_gone_locked(struct sdev_lu *lu, struct sdev_nexus *nexus)
{
    if (lu->spc2_holder == nexus)
        lu->spc2_holder = NULL;
}

/* ---- conflict checks ---- */

static bool
pr_allowed(struct sdev_lu *lu, const struct sdev_op *op, const struct sdev_pr_reg *reg)
{
    uint32_t f = op->flags;

    if (f & SDEV_OPF_PR_ALLOW)
        return true;
    if (f & SDEV_OPF_PR_REGONLY)
        return reg != NULL;
    switch (lu->pr_type) {
    case PR_WE:
        return (f & SDEV_OPF_PR_READ) != 0;
    case PR_EA:
        return false;
    case PR_WE_RO:
    case PR_WE_AR:
        return (f & SDEV_OPF_PR_READ) || reg;
    case PR_EA_RO:
    case PR_EA_AR:
        return reg != NULL;
    default:
        return true;
    }
}

enum sdev_sense
sdev_pr_check(struct sdev_req *req)
{
    struct sdev_lu *lu = req->lu;
    const struct sdev_op *op = req->op;
    bool ok = true;

    sdev_lu_lock(lu);
    if (lu->spc2_holder && lu->spc2_holder != req->nexus && !(op->flags & SDEV_OPF_SPC2_ALLOW)) {
        /* SPC-2 §5.5.1: all but INQUIRY, REQUEST SENSE, REPORT LUNS and
         * RELEASE conflict; SPC-4 §5.13.3: so do PERSISTENT RESERVE IN/OUT. */
        ok = false;
    } else if (lu->pr_type && !(op->flags & SDEV_OPF_PR_SELF)) {
        struct sdev_pr_reg *reg = pr_find(lu, req->nexus);
        ok = pr_is_holder(lu, reg) || pr_allowed(lu, op, reg);
    }
    sdev_lu_unlock(lu);
    return ok ? SDEV_SENSE_OK : SDEV_SENSE_RESERVATION_CONFLICT;
}

/* ---- RESERVE / RELEASE (6/10), SPC-2 §7.21-7.24 ---- */

enum sdev_sense
sdev_spc_reserve_parse(struct sdev_req *req)
{
    return SDEV_SENSE_OK; /* usage bitmap already refused 3RDPTY / LONGID / extents */
}

enum sdev_sense
sdev_spc_release_parse(struct sdev_req *req)
{
    return SDEV_SENSE_OK;
}

/* SPC-4 §5.13.3: with registrations present, RESERVE/RELEASE conflict, except
 * that a persistent reservation holder (or a registrant under a registrants
 * type) gets GOOD without any effect. Returns 1 for "GOOD, no effect". */
static int
pr_spc2_exception_locked(struct sdev_lu *lu, struct sdev_nexus *n)
{
    if (lu->registrants->len == 0)
        return 0;
    struct sdev_pr_reg *reg = pr_find(lu, n);
    if (reg && (pr_is_holder(lu, reg) || (lu->pr_type && pr_type_regs(lu->pr_type))))
        return 1;
    return -1;
}

enum sdev_sense
sdev_spc_reserve_exec(struct sdev_req *req)
{
    struct sdev_lu *lu = req->lu;
    enum sdev_sense r = SDEV_SENSE_OK;

    sdev_lu_lock(lu);
    int ex = pr_spc2_exception_locked(lu, req->nexus);
    if (ex < 0 || (ex == 0 && lu->spc2_holder && lu->spc2_holder != req->nexus))
        r = SDEV_SENSE_RESERVATION_CONFLICT;
    else if (ex == 0)
        lu->spc2_holder = req->nexus;
    sdev_lu_unlock(lu);
    return r;
}

enum sdev_sense
sdev_spc_release_exec(struct sdev_req *req)
{
    struct sdev_lu *lu = req->lu;
    enum sdev_sense r = SDEV_SENSE_OK;

    sdev_lu_lock(lu);
    int ex = pr_spc2_exception_locked(lu, req->nexus);
    if (ex < 0)
        r = SDEV_SENSE_RESERVATION_CONFLICT;
    else if (ex == 0 && lu->spc2_holder == req->nexus)
        lu->spc2_holder = NULL; /* a RELEASE from anyone else is GOOD, no effect */
    sdev_lu_unlock(lu);
    return r;
}

/* ---- PERSISTENT RESERVE IN ---- */

enum sdev_sense
sdev_spc_pr_in_parse(struct sdev_req *req)
{
    struct sdev_cmd *cmd = req->cmd;

    cmd->dir = SDEV_DIR_READ;
    cmd->xfer_len = sdev_be16(cmd->cdb + 7);
    return SDEV_SENSE_OK;
}

/* iSCSI TransportID (SPC-4 §7.6.4.6): FORMAT CODE 01b (name,i,0xISID) when
 * the port name carries an ISID, 00b otherwise; padded to a multiple of 4. */
static void
pr_transport_id(GByteArray *out, const char *port)
{
    size_t n = strlen(port) + 1;
    size_t padded = MAX((n + 3) & ~(size_t)3, (size_t)20);
    uint8_t hdr[4] = {0};

    hdr[0] = (uint8_t)((strstr(port, ",i,0x") ? 0x40 : 0x00) | 0x05); /* protocol 5: iSCSI */
    sdev_put_be16(hdr + 2, (uint16_t)padded);
    g_byte_array_append(out, hdr, 4);
    g_byte_array_append(out, (const uint8_t *)port, (guint)(n - 1));
    for (size_t i = n - 1; i < padded; i++)
        g_byte_array_append(out, (const uint8_t *)"", 1);
}

static void
pr_in_full_status(struct sdev_lu *lu, GByteArray *out)
{
    for (guint i = 0; i < lu->registrants->len; i++) {
        struct sdev_pr_reg *reg = g_ptr_array_index(lu->registrants, i);
        uint8_t d[24] = {0};
        guint start = out->len;

        sdev_put_be64(d, reg->key);
        if (pr_is_holder(lu, reg)) {
            d[12] = 0x01; /* R_HOLDER */
            d[13] = lu->pr_type & 0x0f;
        }
        sdev_put_be16(d + 18, reg->rel_tpid);
        g_byte_array_append(out, d, 24);
        pr_transport_id(out, reg->initiator_port);
        sdev_put_be32(out->data + start + 20, out->len - start - 24);
    }
}

enum sdev_sense
sdev_spc_pr_in_exec(struct sdev_req *req)
{
    struct sdev_lu *lu = req->lu;
    struct sdev_cmd *cmd = req->cmd;
    uint8_t sa = cmd->cdb[1] & 0x1f;
    g_autoptr(GByteArray) out = g_byte_array_new();
    uint8_t hdr[8] = {0};

    sdev_lu_lock(lu);
    switch (sa) {
    case 0x00: /* READ KEYS */
        sdev_put_be32(hdr, lu->pr_generation);
        g_byte_array_append(out, hdr, 8);
        for (guint i = 0; i < lu->registrants->len; i++) {
            uint8_t key[8];
            sdev_put_be64(key, ((struct sdev_pr_reg *)g_ptr_array_index(lu->registrants, i))->key);
            g_byte_array_append(out, key, 8);
        }
        sdev_put_be32(out->data + 4, out->len - 8);
        break;
    case 0x01: /* READ RESERVATION */
        sdev_put_be32(hdr, lu->pr_generation);
        g_byte_array_append(out, hdr, 8);
        if (lu->pr_type) {
            uint8_t d[16] = {0};
            /* all-registrants types report key 0 (SPC-4 §6.15.3.2) */
            if (!pr_type_all_regs(lu->pr_type))
                sdev_put_be64(d, lu->pr_holder->key);
            d[13] = lu->pr_type & 0x0f; /* SCOPE 0h: LU */
            g_byte_array_append(out, d, 16);
        }
        sdev_put_be32(out->data + 4, out->len - 8);
        break;
    case 0x02: { /* REPORT CAPABILITIES, SPC-4 §6.15.4 */
        uint8_t d[8] = {0};
        sdev_put_be16(d, 8);
        d[2] = 0x10; /* CRH=1; SIP_C=0, ATP_C=0, PTPL_C=0 (not persisted) */
        d[3] = 0x80; /* TMV: the type mask is valid; PTPL_A=0 */
        d[4] = 0x80 | 0x40 | 0x20 | 0x08 | 0x02; /* WR_EX_AR EX_AC_RO WR_EX_RO EX_AC WR_EX */
        d[5] = 0x01;                             /* EX_AC_AR */
        g_byte_array_append(out, d, 8);
        break;
    }
    default: /* 0x03 READ FULL STATUS */
        sdev_put_be32(hdr, lu->pr_generation);
        g_byte_array_append(out, hdr, 8);
        pr_in_full_status(lu, out);
        sdev_put_be32(out->data + 4, out->len - 8);
        break;
    }
    sdev_lu_unlock(lu);
    memcpy(sdev_data_in(req, out->len, cmd->xfer_len), out->data, out->len);
    return SDEV_SENSE_OK;
}

/* ---- PERSISTENT RESERVE OUT ---- */

enum sdev_sense
sdev_spc_pr_out_parse(struct sdev_req *req)
{
    struct sdev_cmd *cmd = req->cmd;
    const uint8_t *cdb = cmd->cdb;
    uint8_t sa = cdb[1] & 0x1f;
    uint8_t scope = cdb[2] >> 4;
    uint8_t type = cdb[2] & 0x0f;
    uint32_t plen = sdev_be32(cdb + 5);

    /* RESERVE, RELEASE, PREEMPT (AND ABORT) use SCOPE and TYPE. */
    if (sa == 0x01 || sa == 0x02 || sa == 0x04 || sa == 0x05) {
        if (scope != 0)
            return sdev_bad_cdb(req, 2, 7);
        if (!pr_type_valid(type))
            return sdev_bad_cdb(req, 2, 3);
    }
    /* Without SPEC_I_PT the parameter list is exactly 24 bytes (§6.16.3). */
    if (plen != 24)
        return SDEV_SENSE_PARAM_LIST_LENGTH;
    cmd->dir = SDEV_DIR_WRITE;
    cmd->xfer_len = plen;
    return SDEV_SENSE_OK;
}

struct pr_out {
    uint8_t sa, type;
    uint64_t key, sa_key;
    struct sdev_pr_reg *reg; /* this nexus's registration or NULL */
};

static enum sdev_sense
pr_out_register(struct sdev_req *req, struct pr_out *o, bool ignore_key)
{
    struct sdev_lu *lu = req->lu;
    struct sdev_nexus *n = req->nexus;

    if (!o->reg) {
        if (!ignore_key && o->key != 0)
            return SDEV_SENSE_RESERVATION_CONFLICT;
        if (o->sa_key == 0)
            return SDEV_SENSE_OK; /* unregistering an unregistered nexus: no-op */
        if (lu->registrants->len >= SDEV_PR_MAX_REGISTRANTS)
            return SDEV_SENSE_INSUFFICIENT_REG_RESOURCES;
        struct sdev_pr_reg *reg = g_new0(struct sdev_pr_reg, 1);
        reg->initiator_port = g_strdup(n->initiator_port);
        reg->target_port = g_strdup(n->target_port);
        reg->rel_tpid = n->rel_tpid;
        reg->key = o->sa_key;
        g_ptr_array_add(lu->registrants, reg);
        lu->pr_generation++;
        return SDEV_SENSE_OK;
    }
    if (!ignore_key && o->key != o->reg->key)
        return SDEV_SENSE_RESERVATION_CONFLICT;
    if (o->sa_key != 0) {
        o->reg->key = o->sa_key;
        lu->pr_generation++;
        return SDEV_SENSE_OK;
    }
    /* Unregister. A registrants-only reservation released this way tells the
     * other registrants (SPC-4 §5.13.11.2.3). */
    uint8_t type = lu->pr_type;
    if (pr_unregister_locked(lu, o->reg) && (type == PR_WE_RO || type == PR_EA_RO)) {
        for (guint i = 0; i < lu->registrants->len; i++)
            sdev_ua_raise_reg_locked(lu, g_ptr_array_index(lu->registrants, i),
                                     SDEV_ASC_PARAMS_CHANGED, SDEV_ASCQ_RESERVATIONS_RELEASED);
    }
    o->reg = NULL;
    lu->pr_generation++;
    return SDEV_SENSE_OK;
}

static enum sdev_sense
pr_out_reserve(struct sdev_req *req, struct pr_out *o)
{
    struct sdev_lu *lu = req->lu;

    if (lu->pr_type == 0) {
        lu->pr_type = o->type;
        lu->pr_holder = o->reg;
        return SDEV_SENSE_OK;
    }
    /* Same holder, same type: GOOD. Anything else conflicts (§5.13.9). */
    if (pr_is_holder(lu, o->reg) && lu->pr_type == o->type)
        return SDEV_SENSE_OK;
    return SDEV_SENSE_RESERVATION_CONFLICT;
}

static enum sdev_sense
pr_out_release(struct sdev_req *req, struct pr_out *o)
{
    struct sdev_lu *lu = req->lu;

    if (lu->pr_type == 0 || !pr_is_holder(lu, o->reg))
        return SDEV_SENSE_OK; /* §5.13.11.2.2: no reservation, or not the holder */
    if (lu->pr_type != o->type)
        return SDEV_SENSE_INVALID_RELEASE_OF_PR;
    uint8_t type = lu->pr_type;
    pr_release_locked(lu);
    if (pr_type_regs(type)) { /* registrants lose access: tell them */
        for (guint i = 0; i < lu->registrants->len; i++) {
            struct sdev_pr_reg *r = g_ptr_array_index(lu->registrants, i);
            if (r != o->reg)
                sdev_ua_raise_reg_locked(lu, r, SDEV_ASC_PARAMS_CHANGED,
                                         SDEV_ASCQ_RESERVATIONS_RELEASED);
        }
    }
    return SDEV_SENSE_OK;
}

static enum sdev_sense
pr_out_clear(struct sdev_req *req, struct pr_out *o)
{
    struct sdev_lu *lu = req->lu;

    for (guint i = 0; i < lu->registrants->len; i++) {
        struct sdev_pr_reg *r = g_ptr_array_index(lu->registrants, i);
        if (r != o->reg)
            sdev_ua_raise_reg_locked(lu, r, SDEV_ASC_PARAMS_CHANGED,
                                     SDEV_ASCQ_RESERVATIONS_PREEMPTED);
    }
    sdev_pr_free_all(lu);
    o->reg = NULL;
    lu->pr_generation++;
    return SDEV_SENSE_OK;
}

/* Remove every registration with key (but never the caller's own); returns
 * how many went. Each one removed gets REGISTRATIONS PREEMPTED. */
static unsigned
pr_remove_key(struct sdev_lu *lu, const struct sdev_pr_reg *self, uint64_t key, bool all)
{
    unsigned removed = 0;

    for (guint i = 0; i < lu->registrants->len;) {
        struct sdev_pr_reg *r = g_ptr_array_index(lu->registrants, i);
        if (r != self && (all || r->key == key)) {
            sdev_ua_raise_reg_locked(lu, r, SDEV_ASC_PARAMS_CHANGED,
                                     SDEV_ASCQ_REGISTRATIONS_PREEMPTED);
            if (lu->pr_holder == r)
                lu->pr_holder = NULL;
            g_ptr_array_remove_index(lu->registrants, i);
            pr_reg_free(r);
            removed++;
        } else {
            i++;
        }
    }
    if (lu->pr_type && pr_type_all_regs(lu->pr_type) && !lu->pr_holder)
        lu->pr_holder = lu->registrants->len ? g_ptr_array_index(lu->registrants, 0) : NULL;
    return removed;
}

/* SPC-4 §5.13.11.4: PREEMPT and PREEMPT AND ABORT. Commands never wait
 * inside sdev, so "abort the preempted tasks" has nothing left to abort. */
static enum sdev_sense
pr_out_preempt(struct sdev_req *req, struct pr_out *o)
{
    struct sdev_lu *lu = req->lu;

    if (lu->pr_type == 0) {
        if (o->sa_key == 0)
            return sdev_bad_param(req, 8, -1);
        if (pr_remove_key(lu, o->reg, o->sa_key, false) == 0)
            return SDEV_SENSE_RESERVATION_CONFLICT;
    } else if (pr_type_all_regs(lu->pr_type)) {
        if (o->sa_key == 0) {
            /* Preempt everyone else and take a new reservation. */
            pr_remove_key(lu, o->reg, 0, true);
            lu->pr_type = o->type;
            lu->pr_holder = o->reg;
        } else if (pr_remove_key(lu, o->reg, o->sa_key, false) == 0) {
            return SDEV_SENSE_RESERVATION_CONFLICT;
        }
    } else if (o->sa_key == lu->pr_holder->key) {
        /* Preempt the holder: its (and same-key) registrations go, the caller
         * holds a reservation of the requested type. */
        pr_remove_key(lu, o->reg, o->sa_key, false);
        lu->pr_type = o->type;
        lu->pr_holder = o->reg;
    } else {
        if (o->sa_key == 0)
            return sdev_bad_param(req, 8, -1);
        if (pr_remove_key(lu, o->reg, o->sa_key, false) == 0)
            return SDEV_SENSE_RESERVATION_CONFLICT;
    }
    lu->pr_generation++;
    return SDEV_SENSE_OK;
}

static enum sdev_sense
pr_out_dispatch(struct sdev_req *req, struct pr_out *o)
{
    switch (o->sa) {
    case 0x00:
        return pr_out_register(req, o, false);
    case 0x06:
        return pr_out_register(req, o, true);
    default:
        break;
    }
    /* Every other service action needs a registered nexus and its key. */
    if (!o->reg || o->reg->key != o->key)
        return SDEV_SENSE_RESERVATION_CONFLICT;
    switch (o->sa) {
    case 0x01:
        return pr_out_reserve(req, o);
    case 0x02:
        return pr_out_release(req, o);
    case 0x03:
        return pr_out_clear(req, o);
    default: /* 0x04 PREEMPT, 0x05 PREEMPT AND ABORT */
        return pr_out_preempt(req, o);
    }
}

enum sdev_sense
sdev_spc_pr_out_exec(struct sdev_req *req)
{
    struct sdev_lu *lu = req->lu;
    struct sdev_cmd *cmd = req->cmd;
    const uint8_t *p = cmd->data_out;
    struct pr_out o = {0};
    enum sdev_sense r;

    if (sdev_data_out_len(req, 24) < 24)
        return SDEV_SENSE_PARAM_LIST_LENGTH;
    if (p[20] & 0x08)
        return sdev_bad_param(req, 20, 3); /* SPEC_I_PT: SIP_C=0 */
    if ((p[20] & 0x04) && (cmd->cdb[1] & 0x1f) != 0x03)
        return sdev_bad_param(req, 20, 2); /* ALL_TG_PT: ATP_C=0 */
    if (p[20] & 0x01)
        return sdev_bad_param(req, 20, 0); /* APTPL: PTPL_C=0, not persisted */

    o.sa = cmd->cdb[1] & 0x1f;
    o.type = cmd->cdb[2] & 0x0f;
    o.key = sdev_be64(p);
    o.sa_key = sdev_be64(p + 8);

    sdev_lu_lock(lu);
    if (lu->spc2_holder && lu->spc2_holder != req->nexus) {
        r = SDEV_SENSE_RESERVATION_CONFLICT; /* SPC-4 §5.13.3 */
    } else {
        o.reg = pr_find(lu, req->nexus);
        r = pr_out_dispatch(req, &o);
    }
    sdev_lu_unlock(lu);
    return r;
}
