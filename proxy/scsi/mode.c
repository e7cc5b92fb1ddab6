/* mode.c — MODE SENSE(6/10) and MODE SELECT(6/10) (SPC-4 §6.11-6.14, §7.5).
 *
 * Pages: 01h read-write error recovery, 08h caching, 0Ah control, 1Ch
 * informational exceptions control; 3Fh returns all of them. No subpages.
 * Changeable bits: WCE (caching), D_SENSE and SWP (control). WCE=0 makes
 * every write FUA (write-through); D_SENSE=1 switches sense data to descriptor
 * format; SWP=1 (software write protect) flushes the cache and then refuses
 * every command that writes the medium with DATA PROTECT / WRITE PROTECTED
 * and sets WP in the mode parameter header, until SWP=0 or a reset.
 * Nothing is saved (PS=0): PC=11b (saved values) and SP=1 answer SAVING
 * PARAMETERS NOT SUPPORTED. Settings are per LU (shared by every
 * nexus, SPC-4 §7.5.1 allows this); a change raises MODE PARAMETERS CHANGED
 * for the other nexuses, and a reset restores the defaults.
 *
 * MODE SELECT checks every byte of a page against the current value outside
 * the changeable mask, so an initiator can write back what MODE SENSE gave it
 * but cannot set what we do not implement (INVALID FIELD IN PARAMETER LIST,
 * with the field pointer at the offending byte).
 */
#include "sdev-int.h"

enum sdev_mode_pc {
    SDEV_PC_CURRENT = 0,
    SDEV_PC_CHANGEABLE = 1,
    SDEV_PC_DEFAULT = 2,
    SDEV_PC_SAVED = 3,
};

struct sdev_mode_state {
    bool wce;
    bool d_sense;
    bool swp;
};

#define SDEV_MODE_PAGE_MAX 20

/* Build one page (header included) for pc; returns its length, 0 if unknown. */
static size_t
sdev_mode_page(uint8_t page, enum sdev_mode_pc pc, const struct sdev_mode_state *st, uint8_t *p)
{
    bool ch = pc == SDEV_PC_CHANGEABLE;

    memset(p, 0, SDEV_MODE_PAGE_MAX);
    switch (page) {
    case 0x01: /* read-write error recovery, SBC-3 §6.4.7 */
        p[0] = 0x01;
        p[1] = 0x0a;
        if (!ch)
            p[2] = 0x80 | 0x40; /* AWRE, ARRE: the overlay remaps nothing but never fails here */
        return 12;
    case 0x08: /* caching, SBC-3 §6.4.5 */
        p[0] = 0x08;
        p[1] = 0x12;
        if (ch)
            p[2] = 0x04; /* WCE */
        else if (st->wce)
            p[2] = 0x04;
        return 20;
    case 0x0a: /* control, SPC-4 §7.5.8 */
        p[0] = 0x0a;
        p[1] = 0x0a;
        if (ch) {
            p[2] = 0x04; /* D_SENSE */
            p[4] = 0x08; /* SWP */
            return 12;
        }
        p[2] = st->d_sense ? 0x04 : 0x00; /* TST=000b, TMF_ONLY=0, D_SENSE, GLTSD=0 */
        p[3] = 0x10;                      /* QUEUE ALGORITHM MODIFIER 1: unrestricted */
        p[4] = st->swp ? 0x08 : 0x00;     /* SWP; RAC, UA_INTLCK_CTRL, ... = 0 */
        p[5] = 0x00;                      /* TAS=0, ATO=0 */
        sdev_put_be16(p + 8, 0xffff);     /* BUSY TIMEOUT PERIOD: unlimited */
        return 12;
    case 0x1c: /* informational exceptions control, SPC-4 §7.5.15 */
        p[0] = 0x1c;
        p[1] = 0x0a;
        if (!ch)
            p[2] = 0x08; /* DEXCPT: no failure prediction to report */
        return 12;
    default:
        return 0;
    }
}

static const uint8_t sdev_mode_pages[] = {0x01, 0x08, 0x0a, 0x1c};

enum sdev_sense
sdev_spc_mode_sense_parse(struct sdev_req *req)
{
    struct sdev_cmd *cmd = req->cmd;
    const uint8_t *cdb = cmd->cdb;
    bool ten = cdb[0] == 0x5a;
    uint8_t pc = cdb[2] >> 6;
    uint8_t page = cdb[2] & 0x3f;
    uint8_t subpage = cdb[3];
    struct sdev_mode_state none = {0};
    uint8_t tmp[SDEV_MODE_PAGE_MAX];

    if (pc == SDEV_PC_SAVED)
        return SDEV_SENSE_SAVING_NOT_SUPPORTED;
    if (page != 0x3f && sdev_mode_page(page, SDEV_PC_CURRENT, &none, tmp) == 0)
        return sdev_bad_cdb(req, 2, 5);
    if (subpage != 0 && !(page == 0x3f && subpage == 0xff))
        return sdev_bad_cdb(req, 3, -1);
    if (cdb[1] & 0x08)
        cmd->flags |= SDEV_CF_DBD;
    if (ten) {
        cmd->flags |= SDEV_CF_TEN;
        if (cdb[1] & 0x10)
            cmd->flags |= SDEV_CF_LONG_LBA;
    }
    cmd->dir = SDEV_DIR_READ;
    cmd->xfer_len = ten ? sdev_be16(cdb + 7) : cdb[4];
    return SDEV_SENSE_OK;
}

enum sdev_sense
sdev_spc_mode_sense_exec(struct sdev_req *req)
{
    struct sdev_lu *lu = req->lu;
    struct sdev_cmd *cmd = req->cmd;
    bool ten = cmd->flags & SDEV_CF_TEN;
    bool longlba = cmd->flags & SDEV_CF_LONG_LBA;
    uint8_t pc = cmd->cdb[2] >> 6;
    uint8_t page = cmd->cdb[2] & 0x3f;
    uint8_t buf[8 + 16 + sizeof(sdev_mode_pages) * SDEV_MODE_PAGE_MAX];
    size_t hdr = ten ? 8 : 4;
    size_t bd_len = (cmd->flags & SDEV_CF_DBD) ? 0 : (longlba ? 16 : 8);
    size_t len = hdr + bd_len;
    struct sdev_mode_state st;
    uint64_t nblocks = sdev_lu_nblocks(lu);

    sdev_lu_lock(lu);
    st.wce = pc == SDEV_PC_DEFAULT ? true : lu->wce;
    st.d_sense = pc == SDEV_PC_DEFAULT ? false : lu->d_sense;
    st.swp = pc == SDEV_PC_DEFAULT ? false : lu->swp;
    bool wp = lu->swp;
    sdev_lu_unlock(lu);

    memset(buf, 0, sizeof(buf));
    for (size_t i = 0; i < sizeof(sdev_mode_pages); i++) {
        if (page == 0x3f || page == sdev_mode_pages[i])
            len += sdev_mode_page(sdev_mode_pages[i], pc, &st, buf + len);
    }
    /* DEVICE-SPECIFIC PARAMETER (SBC-3 §6.4.1): WP (read-only view or SWP), DPOFUA. */
    uint8_t dsp = (uint8_t)((view_is_read_only(lu->view) || wp ? 0x80 : 0) | 0x10);
    if (ten) {
        sdev_put_be16(buf, (uint16_t)(len - 2));
        buf[3] = dsp;
        buf[4] = longlba ? 0x01 : 0x00;
        sdev_put_be16(buf + 6, (uint16_t)bd_len);
    } else {
        buf[0] = (uint8_t)(len - 1);
        buf[2] = dsp;
        buf[3] = (uint8_t)bd_len;
    }
    if (bd_len == 8) { /* short LBA block descriptor */
        sdev_put_be32(buf + hdr, nblocks > UINT32_MAX ? UINT32_MAX : (uint32_t)nblocks);
        sdev_put_be32(buf + hdr + 4, lu->block_size & 0xffffff);
    } else if (bd_len == 16) { /* long LBA block descriptor */
        sdev_put_be64(buf + hdr, nblocks);
        sdev_put_be32(buf + hdr + 12, lu->block_size);
    }
    memcpy(sdev_data_in(req, len, cmd->xfer_len), buf, len);
    return SDEV_SENSE_OK;
}

enum sdev_sense
sdev_spc_mode_select_parse(struct sdev_req *req)
{
    struct sdev_cmd *cmd = req->cmd;
    const uint8_t *cdb = cmd->cdb;
    bool ten = cdb[0] == 0x55;

    if (cdb[1] & 0x01)
        return SDEV_SENSE_SAVING_NOT_SUPPORTED; /* SP: nothing is savable */
    if (ten)
        cmd->flags |= SDEV_CF_TEN;
    cmd->xfer_len = ten ? sdev_be16(cdb + 7) : cdb[4];
    cmd->dir = cmd->xfer_len ? SDEV_DIR_WRITE : SDEV_DIR_NONE;
    return SDEV_SENSE_OK;
}

/* Validate one page at p (off = its offset in the parameter list) and record
 * the new WCE / D_SENSE in *st. */
static enum sdev_sense
sdev_mode_select_page(struct sdev_req *req, const uint8_t *p, size_t avail, size_t off,
                      struct sdev_mode_state *st)
{
    uint8_t cur[SDEV_MODE_PAGE_MAX], mask[SDEV_MODE_PAGE_MAX];
    struct sdev_mode_state dummy = {0};

    if (p[0] & 0x40)
        return sdev_bad_param(req, (unsigned)off, 6); /* SPF: no subpages */
    size_t len = sdev_mode_page(p[0] & 0x3f, SDEV_PC_CURRENT, st, cur);
    if (len == 0)
        return sdev_bad_param(req, (unsigned)off, 5);
    if (avail < 2 || p[1] + 2u != len)
        return sdev_bad_param(req, (unsigned)off + 1, -1);
    if (avail < len)
        return SDEV_SENSE_PARAM_LIST_LENGTH;
    sdev_mode_page(p[0] & 0x3f, SDEV_PC_CHANGEABLE, &dummy, mask);
    for (size_t i = 2; i < len; i++) {
        uint8_t diff = (uint8_t)((p[i] ^ cur[i]) & ~mask[i]);
        if (diff)
            return sdev_bad_param(req, (unsigned)(off + i), g_bit_nth_msf(diff, -1));
    }
    if ((p[0] & 0x3f) == 0x08)
        st->wce = p[2] & 0x04;
    if ((p[0] & 0x3f) == 0x0a) {
        st->d_sense = p[2] & 0x04;
        st->swp = p[4] & 0x08;
    }
    return SDEV_SENSE_OK;
}

enum sdev_sense
sdev_spc_mode_select_exec(struct sdev_req *req)
{
    struct sdev_lu *lu = req->lu;
    struct sdev_cmd *cmd = req->cmd;
    bool ten = cmd->flags & SDEV_CF_TEN;
    size_t hdr = ten ? 8 : 4;
    uint32_t len = sdev_data_out_len(req, cmd->xfer_len);
    const uint8_t *p = cmd->data_out;
    struct sdev_mode_state st;
    enum sdev_sense r;

    if (len == 0)
        return SDEV_SENSE_OK;
    if (len < hdr)
        return SDEV_SENSE_PARAM_LIST_LENGTH;
    size_t bd_len = ten ? sdev_be16(p + 6) : p[3];
    bool longlba = ten && (p[4] & 0x01);
    if (bd_len != 0 && bd_len != (longlba ? 16u : 8u))
        return sdev_bad_param(req, ten ? 6 : 3, -1);
    if (hdr + bd_len > len)
        return SDEV_SENSE_PARAM_LIST_LENGTH;
    if (bd_len) {
        /* The block length cannot change; the block count may be 0 or ours. */
        uint64_t nb = longlba ? sdev_be64(p + hdr) : sdev_be32(p + hdr);
        uint32_t bl = longlba ? sdev_be32(p + hdr + 12) : sdev_be24(p + hdr + 5);
        uint64_t ours = sdev_lu_nblocks(lu);
        if (!longlba && ours > UINT32_MAX)
            ours = UINT32_MAX;
        if (nb != 0 && nb != ours)
            return sdev_bad_param(req, (unsigned)hdr, -1);
        if (bl != lu->block_size)
            return sdev_bad_param(req, (unsigned)hdr + (longlba ? 12 : 5), -1);
    }

    sdev_lu_lock(lu);
    st.wce = lu->wce;
    st.d_sense = lu->d_sense;
    st.swp = lu->swp;
    sdev_lu_unlock(lu);
    for (size_t off = hdr + bd_len; off < len;) {
        r = sdev_mode_select_page(req, p + off, len - off, off, &st);
        if (r)
            return r;
        off += (size_t)p[off + 1] + 2;
    }

    /* SPC-4 §7.5.8: SWP inhibits writing "after writing all cached or
     * buffered write data": flush before the protection takes effect. */
    if (st.swp && !view_is_read_only(lu->view)) {
        int rc = view_flush(lu->view);
        if (rc < 0)
            return sdev_sense_from_errno(rc, true);
    }
    sdev_lu_lock(lu);
    bool changed = st.wce != lu->wce || st.d_sense != lu->d_sense || st.swp != lu->swp;
    lu->wce = st.wce;
    lu->d_sense = st.d_sense;
    lu->swp = st.swp;
    if (changed) /* SPC-4 §7.5.1: tell the other initiators */
        sdev_ua_raise_all_locked(lu, req->nexus, SDEV_ASC_PARAMS_CHANGED,
                                 SDEV_ASCQ_MODE_PARAMS_CHANGED);
    sdev_lu_unlock(lu);
    return SDEV_SENSE_OK;
}
