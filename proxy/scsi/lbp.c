/* lbp.c — logical block provisioning (SBC-3 §4.7): WRITE SAME 10/16, UNMAP,
 * GET LBA STATUS.
 *
 * The disk is thin (provisioning type 2, LBPME=1) and unmapped blocks read
 * zeros (LBPRZ=1): the overlay's ZERO state never shows the base's old bytes.
 * So UNMAP, WRITE SAME with the UNMAP bit (whatever its pattern: the blocks
 * are deallocated and read zeros, as SBC-4 recommends for thin LUs) and WRITE
 * SAME with a zero pattern all become view_zero(); without the UNMAP bit we
 * pass VIEW_NO_UNMAP (SBC-3 §5.43: UNMAP=0 writes). Any other pattern is
 * replicated through a bounce buffer of whole blocks.
 *
 * WSNZ=0: NUMBER OF LOGICAL BLOCKS 0 means "to the end of the medium"
 * (SBC-3 §5.43), subject like any count to MAXIMUM WRITE SAME LENGTH, so one
 * command never touches more than that. ANC_SUP=0: ANCHOR=1 is rejected.
 */
#include "sdev-int.h"
#include "log.h"

#define SDEV_PATTERN_BUF (1u << 20)
#define SDEV_LBA_STATUS_MAX_DESC 1024u
/* One GET LBA STATUS looks at most this far: the descriptors need not reach
 * the end of the medium (SBC-3 §5.6.1), and the initiator asks again from
 * where the answer stopped. Bounds the map walk on a huge sparse disk. */
#define SDEV_LBA_STATUS_SCAN (4ull << 30)

static enum sdev_sense
sdev_lbp_error(struct sdev_req *req, int rc)
{
    LOG_RATELIMITED(G_LOG_LEVEL_WARNING, 10, 5, "%s at LBA %" G_GUINT64_FORMAT " failed: %s",
                    req->op->name, req->cmd->lba, g_strerror(-rc));
    return sdev_sense_from_errno(rc, true);
}

static uint64_t
sdev_max_ws_blocks(const struct sdev_lu *lu)
{
    return SDEV_MAX_UNMAP_BYTES >> lu->block_shift;
}

enum sdev_sense
sdev_sbc_write_same_parse(struct sdev_req *req)
{
    struct sdev_cmd *cmd = req->cmd;
    const uint8_t *cdb = cmd->cdb;
    bool ws16 = cdb[0] == 0x93;
    uint64_t lba = ws16 ? sdev_be64(cdb + 2) : sdev_be32(cdb + 2);
    uint32_t n = ws16 ? sdev_be32(cdb + 10) : sdev_be16(cdb + 7);
    unsigned len_byte = ws16 ? 10 : 7;
    enum sdev_sense r;

    if (cdb[1] & 0xe0)
        return sdev_bad_cdb(req, 1, 7); /* WRPROTECT */
    if (cdb[1] & 0x10)
        return sdev_bad_cdb(req, 1, 4); /* ANCHOR, ANC_SUP=0 */
    r = sdev_check_range(req, lba, n);
    if (r)
        return r;
    uint64_t count = n ? n : sdev_lu_nblocks(req->lu) - lba; /* 0: to the end */
    if (count > sdev_max_ws_blocks(req->lu))
        return sdev_bad_cdb(req, len_byte, -1); /* MAXIMUM WRITE SAME LENGTH */
    cmd->lba = lba;
    cmd->nblocks = (uint32_t)count;
    if (cdb[1] & 0x08)
        cmd->flags |= SDEV_CF_UNMAP;
    if (ws16 && (cdb[1] & 0x01)) {
        cmd->flags |= SDEV_CF_NDOB; /* no data-out: the pattern is zeros (SBC-4 §5.50) */
        cmd->dir = SDEV_DIR_NONE;
        cmd->xfer_len = 0;
    } else {
        cmd->dir = SDEV_DIR_WRITE;
        cmd->xfer_len = req->lu->block_size;
        /* Exactly one block of data-out: anything else is not a pattern. */
        if (cmd->expected_len != cmd->xfer_len)
            return SDEV_SENSE_INVALID_FIELD_IN_CDB;
    }
    return SDEV_SENSE_OK;
}

static bool
sdev_all_zero(const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (p[i])
            return false;
    }
    return true;
}

static enum sdev_sense
sdev_write_pattern(struct sdev_req *req, const uint8_t *block)
{
    struct sdev_lu *lu = req->lu;
    struct sdev_cmd *cmd = req->cmd;
    size_t total = (size_t)cmd->nblocks << lu->block_shift;
    size_t cap = MIN(total, (size_t)SDEV_PATTERN_BUF);
    g_autofree uint8_t *buf = g_malloc(cap);
    uint64_t off = cmd->lba << lu->block_shift;

    for (size_t i = 0; i < cap; i += lu->block_size)
        memcpy(buf + i, block, lu->block_size);
    for (size_t done = 0; done < total;) {
        size_t len = MIN(total - done, cap);
        int rc = view_pwrite(lu->view, buf, len, off + done, 0);
        if (rc < 0)
            return sdev_lbp_error(req, rc);
        done += len;
    }
    return SDEV_SENSE_OK;
}

enum sdev_sense
sdev_sbc_write_same_exec(struct sdev_req *req)
{
    struct sdev_lu *lu = req->lu;
    struct sdev_cmd *cmd = req->cmd;
    const uint8_t *block = NULL;
    int rc;

    if (!(cmd->flags & SDEV_CF_NDOB)) {
        if (sdev_data_out_len(req, lu->block_size) < lu->block_size)
            return SDEV_SENSE_OK; /* the pattern block never arrived: nothing written */
        block = cmd->data_out;
    }
    /* UNMAP=1 (ANCHOR=0) on a thin LU: deallocate each LBA whatever the
     * pattern (SBC-4 WRITE SAME "ANCHOR/UNMAP/ANC_SUP" table: "should
     * deallocate"); with LBPRZ=1 they then read zeros. The initiator gave the
     * data up by asking for the unmap. */
    if (!block || (cmd->flags & SDEV_CF_UNMAP) || sdev_all_zero(block, lu->block_size)) {
        unsigned flags = (cmd->flags & SDEV_CF_UNMAP) ? 0 : VIEW_NO_UNMAP;
        rc = view_zero(lu->view, cmd->lba << lu->block_shift,
                       (uint64_t)cmd->nblocks << lu->block_shift, flags);
        return rc < 0 ? sdev_lbp_error(req, rc) : SDEV_SENSE_OK;
    }
    return sdev_write_pattern(req, block);
}

enum sdev_sense
sdev_sbc_unmap_parse(struct sdev_req *req)
{
    struct sdev_cmd *cmd = req->cmd;

    if (cmd->cdb[1] & 0x01)
        return sdev_bad_cdb(req, 1, 0); /* ANCHOR, ANC_SUP=0 */
    cmd->xfer_len = sdev_be16(cmd->cdb + 7);
    cmd->dir = cmd->xfer_len ? SDEV_DIR_WRITE : SDEV_DIR_NONE;
    return SDEV_SENSE_OK;
}

/* SBC-3 §5.28: parameter list = 8-byte header + 16-byte block descriptors.
 * Everything is checked before anything is unmapped. */
enum sdev_sense
sdev_sbc_unmap_exec(struct sdev_req *req)
{
    struct sdev_lu *lu = req->lu;
    const uint8_t *p = req->cmd->data_out;
    uint32_t len = sdev_data_out_len(req, req->cmd->xfer_len);
    uint64_t total = 0;
    enum sdev_sense r;

    if (len == 0)
        return SDEV_SENSE_OK; /* PARAMETER LIST LENGTH 0: nothing to do */
    if (len < 8)
        return SDEV_SENSE_PARAM_LIST_LENGTH;
    uint32_t data_len = sdev_be16(p);
    uint32_t bd_len = sdev_be16(p + 2);
    if (data_len + 2 > len || bd_len + 8 > len)
        return SDEV_SENSE_PARAM_LIST_LENGTH;
    uint32_t n_desc = bd_len / 16; /* a trailing partial descriptor is ignored */
    if (n_desc > SDEV_MAX_UNMAP_DESCRIPTORS)
        return sdev_bad_param(req, 2, -1);

    for (uint32_t i = 0; i < n_desc; i++) {
        const uint8_t *d = p + 8 + 16 * i;
        uint64_t lba = sdev_be64(d);
        uint32_t n = sdev_be32(d + 8);
        r = sdev_check_range(req, lba, n);
        if (r)
            return r;
        total += n;
        if (total > sdev_max_ws_blocks(lu))
            return sdev_bad_param(req, 8 + 16 * i + 8, -1); /* MAXIMUM UNMAP LBA COUNT */
    }
    for (uint32_t i = 0; i < n_desc; i++) {
        const uint8_t *d = p + 8 + 16 * i;
        uint64_t lba = sdev_be64(d);
        uint32_t n = sdev_be32(d + 8);
        if (n == 0)
            continue;
        req->cmd->lba = lba;
        int rc = view_zero(lu->view, lba << lu->block_shift, (uint64_t)n << lu->block_shift, 0);
        if (rc < 0)
            return sdev_lbp_error(req, rc);
    }
    return SDEV_SENSE_OK;
}

enum sdev_sense
sdev_sbc_get_lba_status_parse(struct sdev_req *req)
{
    struct sdev_cmd *cmd = req->cmd;
    uint64_t lba = sdev_be64(cmd->cdb + 2);

    if (lba >= sdev_lu_nblocks(req->lu))
        return SDEV_SENSE_LBA_OUT_OF_RANGE;
    cmd->lba = lba;
    cmd->dir = SDEV_DIR_READ;
    cmd->xfer_len = sdev_be32(cmd->cdb + 10);
    return SDEV_SENSE_OK;
}

/* Collects LBA status descriptors (SBC-3 §5.6.2) from view extents. Mapped
 * ranges round outwards and deallocated ones inwards, so a block that is only
 * partly unmapped (granule smaller than a block) is reported mapped. */
struct sdev_lba_status {
    uint32_t block_shift;
    uint64_t end_lba;
    uint8_t *buf;
    uint32_t n, max;
    uint64_t next_lba;
};

static bool
sdev_lba_status_add(struct sdev_lba_status *st, uint64_t lba, uint64_t end, uint8_t status)
{
    if (end <= lba)
        return true;
    uint8_t *prev = st->n ? st->buf + 8 + 16 * (st->n - 1) : NULL;
    if (prev && (prev[12] & 0x0f) == status) {
        uint64_t count = sdev_be32(prev + 8) + (end - lba);
        if (count <= UINT32_MAX) {
            sdev_put_be32(prev + 8, (uint32_t)count);
            st->next_lba = end;
            return true;
        }
    }
    if (st->n == st->max)
        return false;
    uint8_t *d = st->buf + 8 + 16 * st->n++;
    uint64_t count = MIN(end - lba, (uint64_t)UINT32_MAX);
    sdev_put_be64(d, lba);
    sdev_put_be32(d + 8, (uint32_t)count);
    d[12] = status;
    st->next_lba = lba + count;
    return st->next_lba == end || sdev_lba_status_add(st, lba + count, end, status);
}

static bool
sdev_lba_status_extent(uint64_t offset, uint64_t length, enum view_extent_kind kind,
                       void *user_data)
{
    struct sdev_lba_status *st = user_data;
    uint64_t bs_mask = (1ull << st->block_shift) - 1;
    bool dealloc = kind == VIEW_EXTENT_OVERLAY_ZERO || kind == VIEW_EXTENT_BASE_ZERO;
    uint64_t lba, end;

    if (dealloc) {
        lba = (offset + bs_mask) >> st->block_shift;
        end = (offset + length) >> st->block_shift;
    } else {
        lba = offset >> st->block_shift;
        end = (offset + length + bs_mask) >> st->block_shift;
    }
    lba = MAX(lba, st->next_lba);
    end = MIN(end, st->end_lba);
    /* A gap left by rounding a deallocated extent inwards is mapped. */
    if (lba > st->next_lba && !sdev_lba_status_add(st, st->next_lba, lba, 0))
        return false;
    if (end > lba && !sdev_lba_status_add(st, lba, end, dealloc ? 1 : 0))
        return false;
    return st->next_lba < st->end_lba;
}

enum sdev_sense
sdev_sbc_get_lba_status_exec(struct sdev_req *req)
{
    struct sdev_lu *lu = req->lu;
    struct sdev_cmd *cmd = req->cmd;
    uint32_t alloc = cmd->xfer_len;
    struct sdev_lba_status st = {0};
    int rc;

    if (alloc == 0)
        return SDEV_SENSE_OK;
    st.block_shift = lu->block_shift;
    st.end_lba = sdev_lu_nblocks(lu);
    st.max = alloc >= 24 ? MIN((alloc - 8) / 16, SDEV_LBA_STATUS_MAX_DESC) : 1;
    st.next_lba = cmd->lba;
    st.buf = sdev_data_in(req, 8 + 16 * (size_t)st.max, alloc);

    uint64_t off = cmd->lba << lu->block_shift;
    uint64_t scan = MIN(view_get_size(lu->view) - off, SDEV_LBA_STATUS_SCAN);
    st.end_lba = MIN(st.end_lba, (off + scan) >> lu->block_shift);
    rc = view_block_status(lu->view, off, scan, true, sdev_lba_status_extent, &st);
    if (rc < 0)
        return sdev_sense_from_errno(rc, false);
    if (st.n == 0) /* the view reported nothing (cannot happen for a valid LBA) */
        sdev_lba_status_add(&st, cmd->lba, MIN(cmd->lba + 1, st.end_lba), 0);
    sdev_put_be32(st.buf, 4 + 16 * st.n); /* PARAMETER DATA LENGTH: bytes after this field */
    cmd->data_in_len = MIN(8 + 16 * st.n, alloc);
    return SDEV_SENSE_OK;
}
