/* sbc.c — block commands (SBC-3): READ/WRITE 6/10/12/16, VERIFY, WRITE AND
 * VERIFY, COMPARE AND WRITE, SYNCHRONIZE CACHE, READ CAPACITY 10/16.
 *
 * Parse decodes LBA and transfer length by CDB size, rejects protection
 * information (we report PROTECT=0, so any non-zero RDPROTECT/WRPROTECT/
 * VRPROTECT is INVALID FIELD IN CDB, SBC-3 §5.8 table 32), checks the Block
 * Limits maximum (INVALID FIELD IN CDB on the length field) and the medium
 * end (LOGICAL BLOCK ADDRESS OUT OF RANGE), in that order.
 *
 * Writes: the cache is write-back (caching page WCE=1), so a plain write lands
 * in the overlay's page cache and is durable after SYNCHRONIZE CACHE; FUA (or
 * WCE=0 set by MODE SELECT) passes VIEW_FUA. When the transport received less
 * data-out than the CDB asked for (iSCSI EDTL < transfer length), only the
 * whole blocks that arrived are written (RFC 7143 §11.4.5.2 residuals are the
 * transport's business; the blocks past the data are left untouched).
 */
#include <errno.h>

#include "sdev-int.h"
#include "log.h"

#define SDEV_CHUNK (1u << 20) /* bounce buffer size for verify passes */

static uint32_t
sdev_max_xfer_blocks(const struct sdev_lu *lu)
{
    return SDEV_MAX_XFER_BYTES >> lu->block_shift;
}

/* LBA, count and the CDB byte of the length field, by CDB size. */
static void
sdev_rw_decode(const uint8_t *cdb, uint64_t *lba, uint32_t *n, unsigned *len_byte)
{
    switch (cdb[0] >> 5) {
    case 0: /* 6-byte: 21-bit LBA, 0 blocks means 256 (SBC-3 §5.7) */
        *lba = sdev_be24(cdb + 1) & 0x1fffff;
        *n = cdb[4] ? cdb[4] : 256;
        *len_byte = 4;
        break;
    case 1:
    case 2: /* 10-byte */
        *lba = sdev_be32(cdb + 2);
        *n = sdev_be16(cdb + 7);
        *len_byte = 7;
        break;
    case 5: /* 12-byte */
        *lba = sdev_be32(cdb + 2);
        *n = sdev_be32(cdb + 6);
        *len_byte = 6;
        break;
    default: /* 16-byte */
        *lba = sdev_be64(cdb + 2);
        *n = sdev_be32(cdb + 10);
        *len_byte = 10;
        break;
    }
}

/* Common part of READ, WRITE, VERIFY and WRITE AND VERIFY parsing. */
static enum sdev_sense
sdev_rw_parse(struct sdev_req *req, enum sdev_dir dir)
{
    struct sdev_cmd *cmd = req->cmd;
    const uint8_t *cdb = cmd->cdb;
    uint64_t lba;
    uint32_t n;
    unsigned len_byte;
    enum sdev_sense r;

    sdev_rw_decode(cdb, &lba, &n, &len_byte);
    if (cdb[0] >= 0x20 && (cdb[1] & 0xe0))
        return sdev_bad_cdb(req, 1, 7); /* xxPROTECT: no protection information */
    r = sdev_check_range(req, lba, n);
    if (r)
        return r;
    if (n > sdev_max_xfer_blocks(req->lu))
        return sdev_bad_cdb(req, len_byte, -1);
    cmd->lba = lba;
    cmd->nblocks = n;
    if (cdb[0] >= 0x20 && (cdb[1] & 0x08))
        cmd->flags |= SDEV_CF_FUA;
    cmd->dir = dir;
    cmd->xfer_len = dir == SDEV_DIR_NONE ? 0 : n << req->lu->block_shift;
    return SDEV_SENSE_OK;
}

static unsigned
sdev_write_flags(struct sdev_req *req)
{
    bool wce;

    sdev_lu_lock(req->lu);
    wce = req->lu->wce;
    sdev_lu_unlock(req->lu);
    return ((req->cmd->flags & SDEV_CF_FUA) || !wce) ? VIEW_FUA : 0;
}

static enum sdev_sense
sdev_io_error(struct sdev_req *req, int rc, bool write)
{
    LOG_RATELIMITED(G_LOG_LEVEL_WARNING, 10, 5, "%s at LBA %" G_GUINT64_FORMAT " failed: %s",
                    req->op->name, req->cmd->lba, g_strerror(-rc));
    return sdev_sense_from_errno(rc, write);
}

enum sdev_sense
sdev_sbc_read_parse(struct sdev_req *req)
{
    return sdev_rw_parse(req, SDEV_DIR_READ);
}

enum sdev_sense
sdev_sbc_read_exec(struct sdev_req *req)
{
    struct sdev_cmd *cmd = req->cmd;
    size_t len = (size_t)cmd->nblocks << req->lu->block_shift;
    int rc;

    if (len == 0)
        return SDEV_SENSE_OK;
    sdev_cmd_release_data_in(cmd);
    /* Large reads for a transport that sends from memory: map the disk's
     * pages instead of copying them through a buffer (sdev.h). */
    if (cmd->data_in_map_ok && len >= VIEW_ZC_BASE_MIN &&
        view_map_read(req->lu->view, cmd->lba << req->lu->block_shift, len, VIEW_ZC_FILE_MIN,
                      &cmd->data_in_map)) {
        cmd->data_in = (uint8_t *)cmd->data_in_map.data;
        cmd->data_in_len = (uint32_t)len;
        return SDEV_SENSE_OK;
    }
    /* Not sdev_data_in(): the read fills every byte, no need to zero first. */
    uint8_t *buf = g_malloc(len);
    cmd->data_in = buf;
    cmd->data_in_len = (uint32_t)len;
    rc = view_pread(req->lu->view, buf, len, cmd->lba << req->lu->block_shift);
    if (rc < 0)
        return sdev_io_error(req, rc, false);
    return SDEV_SENSE_OK;
}

enum sdev_sense
sdev_sbc_write_parse(struct sdev_req *req)
{
    return sdev_rw_parse(req, SDEV_DIR_WRITE);
}

/* Whole blocks of data-out that arrived, at most the CDB's count. */
static uint32_t
sdev_blocks_received(const struct sdev_req *req)
{
    uint32_t got = sdev_data_out_len(req, req->cmd->xfer_len) >> req->lu->block_shift;
    return MIN(got, req->cmd->nblocks);
}

enum sdev_sense
sdev_sbc_write_exec(struct sdev_req *req)
{
    struct sdev_cmd *cmd = req->cmd;
    size_t len = (size_t)sdev_blocks_received(req) << req->lu->block_shift;
    int rc;

    if (len == 0)
        return SDEV_SENSE_OK;
    rc = view_pwrite(req->lu->view, cmd->data_out, len, cmd->lba << req->lu->block_shift,
                     sdev_write_flags(req));
    if (rc < 0)
        return sdev_io_error(req, rc, true);
    return SDEV_SENSE_OK;
}

/* Compare [lba, lba+n) with expect; stride = 0 compares every block with the
 * one block at expect (VERIFY BYTCHK=11b), else expect is n blocks long.
 * expect = NULL only reads (medium verification). */
static enum sdev_sense
sdev_compare_medium(struct sdev_req *req, uint64_t lba, uint32_t n, const uint8_t *expect,
                    bool one_block)
{
    struct sdev_lu *lu = req->lu;
    uint64_t off = lba << lu->block_shift;
    size_t total = (size_t)n << lu->block_shift;
    g_autofree uint8_t *buf = g_malloc(MIN(total, (size_t)SDEV_CHUNK));

    for (size_t done = 0; done < total;) {
        size_t len = MIN(total - done, (size_t)SDEV_CHUNK);
        int rc = view_pread(lu->view, buf, len, off + done);
        if (rc < 0)
            return sdev_io_error(req, rc, false);
        for (size_t i = 0; expect && i < len; i++) {
            size_t pos = done + i;
            uint8_t want = one_block ? expect[pos & (lu->block_size - 1)] : expect[pos];
            if (buf[i] != want) {
                /* SBC-3 §5.33: INFORMATION = offset of the first byte that
                 * did not match. */
                req->info_valid = true;
                req->info = pos;
                return SDEV_SENSE_MISCOMPARE;
            }
        }
        done += len;
    }
    return SDEV_SENSE_OK;
}

enum sdev_sense
sdev_sbc_verify_parse(struct sdev_req *req)
{
    struct sdev_cmd *cmd = req->cmd;
    unsigned bytchk = (cmd->cdb[1] >> 1) & 3;
    enum sdev_sense r;

    if (bytchk == 2)
        return sdev_bad_cdb(req, 1, 2);
    r = sdev_rw_parse(req, bytchk ? SDEV_DIR_WRITE : SDEV_DIR_NONE);
    if (r)
        return r;
    cmd->flags |= bytchk << SDEV_CF_BYTCHK_SHIFT;
    if (bytchk == 3) /* one block of data-out, compared with each block */
        cmd->xfer_len = cmd->nblocks ? req->lu->block_size : 0;
    return SDEV_SENSE_OK;
}

enum sdev_sense
sdev_sbc_verify_exec(struct sdev_req *req)
{
    struct sdev_cmd *cmd = req->cmd;
    unsigned bytchk = (cmd->flags & SDEV_CF_BYTCHK_MASK) >> SDEV_CF_BYTCHK_SHIFT;
    uint32_t n = cmd->nblocks;

    if (n == 0)
        return SDEV_SENSE_OK;
    if (bytchk == 0)
        return sdev_compare_medium(req, cmd->lba, n, NULL, false);
    if (bytchk == 3) {
        if (sdev_data_out_len(req, req->lu->block_size) < req->lu->block_size)
            return SDEV_SENSE_OK; /* no data-out arrived: nothing to compare */
        return sdev_compare_medium(req, cmd->lba, n, cmd->data_out, true);
    }
    n = sdev_blocks_received(req);
    return sdev_compare_medium(req, cmd->lba, n, cmd->data_out, false);
}

enum sdev_sense
sdev_sbc_write_verify_parse(struct sdev_req *req)
{
    struct sdev_cmd *cmd = req->cmd;
    unsigned bytchk = (cmd->cdb[1] >> 1) & 3;
    enum sdev_sense r;

    if (bytchk > 1)
        return sdev_bad_cdb(req, 1, 2);
    r = sdev_rw_parse(req, SDEV_DIR_WRITE);
    if (r)
        return r;
    cmd->flags &= ~(uint32_t)SDEV_CF_FUA; /* bit 3 is reserved in WRITE AND VERIFY */
    cmd->flags |= bytchk << SDEV_CF_BYTCHK_SHIFT;
    return SDEV_SENSE_OK;
}

enum sdev_sense
sdev_sbc_write_verify_exec(struct sdev_req *req)
{
    struct sdev_cmd *cmd = req->cmd;
    uint32_t n = sdev_blocks_received(req);
    size_t len = (size_t)n << req->lu->block_shift;
    int rc;

    if (len == 0)
        return SDEV_SENSE_OK;
    /* The data must be on the medium before it is verified (SBC-3 §5.38). */
    rc = view_pwrite(req->lu->view, cmd->data_out, len, cmd->lba << req->lu->block_shift, VIEW_FUA);
    if (rc < 0)
        return sdev_io_error(req, rc, true);
    if (!(cmd->flags & SDEV_CF_BYTCHK_MASK))
        return SDEV_SENSE_OK;
    return sdev_compare_medium(req, cmd->lba, n, cmd->data_out, false);
}

/* SBC-3 §5.2: the data-out holds n blocks to compare, then n blocks to write. */
enum sdev_sense
sdev_sbc_compare_and_write_parse(struct sdev_req *req)
{
    struct sdev_cmd *cmd = req->cmd;
    const uint8_t *cdb = cmd->cdb;
    uint64_t lba = sdev_be64(cdb + 2);
    uint32_t n = cdb[13];
    enum sdev_sense r;

    if (cdb[1] & 0xe0)
        return sdev_bad_cdb(req, 1, 7);
    if (n > SDEV_MAX_CAW_BLOCKS)
        return sdev_bad_cdb(req, 13, -1);
    r = sdev_check_range(req, lba, n);
    if (r)
        return r;
    cmd->lba = lba;
    cmd->nblocks = n;
    if (cdb[1] & 0x08)
        cmd->flags |= SDEV_CF_FUA;
    cmd->dir = SDEV_DIR_WRITE;
    cmd->xfer_len = (2 * n) << req->lu->block_shift;
    /* Half a compare buffer cannot be split into verify and write data: a
     * transport length that differs from the CDB's is refused up front. */
    if (cmd->expected_len != cmd->xfer_len)
        return sdev_bad_cdb(req, 13, -1);
    return SDEV_SENSE_OK;
}

enum sdev_sense
sdev_sbc_compare_and_write_exec(struct sdev_req *req)
{
    struct sdev_cmd *cmd = req->cmd;
    size_t len = (size_t)cmd->nblocks << req->lu->block_shift;
    size_t miscompare = 0;
    int rc;

    if (len == 0)
        return SDEV_SENSE_OK;
    if (sdev_data_out_len(req, cmd->xfer_len) < 2 * len)
        return sdev_bad_cdb(req, 13, -1); /* the transport delivered less than both halves */
    rc = view_compare_and_write(req->lu->view, cmd->data_out, cmd->data_out + len, len,
                                cmd->lba << req->lu->block_shift, sdev_write_flags(req),
                                &miscompare);
    if (rc == -EILSEQ) {
        req->info_valid = true;
        req->info = miscompare;
        return SDEV_SENSE_MISCOMPARE;
    }
    if (rc < 0)
        return sdev_io_error(req, rc, true);
    return SDEV_SENSE_OK;
}

/* SBC-3 §5.13 ORWRITE(16): the blocks become (old | data-out). Each chunk of
 * up to SDEV_CHUNK bytes is read, ORed and written back with the view's
 * atomic COMPARE AND WRITE, retried when another writer changed the chunk in
 * between, so no concurrent write to the same blocks is lost. */
#define SDEV_ORWRITE_RETRIES 1000

enum sdev_sense
sdev_sbc_orwrite_parse(struct sdev_req *req)
{
    return sdev_rw_parse(req, SDEV_DIR_WRITE);
}

static enum sdev_sense
sdev_orwrite_chunk(struct sdev_req *req, const uint8_t *data, size_t len, uint64_t off,
                   uint8_t *old, uint8_t *new)
{
    for (int attempt = 0; attempt < SDEV_ORWRITE_RETRIES; attempt++) {
        size_t mis = 0;
        int rc = view_pread(req->lu->view, old, len, off);
        if (rc < 0)
            return sdev_io_error(req, rc, false);
        for (size_t i = 0; i < len; i++)
            new[i] = old[i] | data[i];
        rc = view_compare_and_write(req->lu->view, old, new, len, off, sdev_write_flags(req), &mis);
        if (rc == 0)
            return SDEV_SENSE_OK;
        if (rc != -EILSEQ)
            return sdev_io_error(req, rc, true);
    }
    LOG_RATELIMITED(G_LOG_LEVEL_WARNING, 10, 5,
                    "ORWRITE at LBA %" G_GUINT64_FORMAT " kept losing to other writers",
                    req->cmd->lba);
    return SDEV_SENSE_INTERNAL_FAILURE;
}

enum sdev_sense
sdev_sbc_orwrite_exec(struct sdev_req *req)
{
    struct sdev_cmd *cmd = req->cmd;
    size_t total = (size_t)sdev_blocks_received(req) << req->lu->block_shift;
    uint64_t off = cmd->lba << req->lu->block_shift;

    if (total == 0)
        return SDEV_SENSE_OK;
    size_t cap = MIN(total, (size_t)SDEV_CHUNK);
    g_autofree uint8_t *old = g_malloc(cap);
    g_autofree uint8_t *new = g_malloc(cap);
    for (size_t done = 0; done < total;) {
        size_t len = MIN(total - done, cap);
        enum sdev_sense r =
            sdev_orwrite_chunk(req, cmd->data_out + done, len, off + done, old, new);
        if (r)
            return r;
        done += len;
    }
    return SDEV_SENSE_OK;
}

/* SBC-3 §5.15/5.16 READ DEFECT DATA: a virtual disk has no defects. Both
 * lists are reported valid and empty in the format asked for (any format
 * describes an empty list); 111b is reserved. */
enum sdev_sense
sdev_sbc_read_defect_data_parse(struct sdev_req *req)
{
    struct sdev_cmd *cmd = req->cmd;
    bool twelve = cmd->cdb[0] == 0xb7;
    uint8_t flags = twelve ? cmd->cdb[1] : cmd->cdb[2];

    if ((flags & 0x07) == 0x07)
        return sdev_bad_cdb(req, twelve ? 1 : 2, 2);
    cmd->dir = SDEV_DIR_READ;
    cmd->xfer_len = twelve ? sdev_be32(cmd->cdb + 6) : sdev_be16(cmd->cdb + 7);
    return SDEV_SENSE_OK;
}

enum sdev_sense
sdev_sbc_read_defect_data_exec(struct sdev_req *req)
{
    struct sdev_cmd *cmd = req->cmd;
    bool twelve = cmd->cdb[0] == 0xb7;
    uint8_t flags = twelve ? cmd->cdb[1] : cmd->cdb[2];
    uint8_t *buf = sdev_data_in(req, twelve ? 8 : 4, cmd->xfer_len);

    buf[1] = flags & 0x1f; /* PLISTV, GLISTV as requested; DEFECT LIST FORMAT */
    return SDEV_SENSE_OK;  /* DEFECT LIST LENGTH 0 */
}

/* A command that names a block range but moves no data (SYNCHRONIZE CACHE,
 * PRE-FETCH): decode it, check it lies on the disk. */
static enum sdev_sense
sdev_range_only_parse(struct sdev_req *req)
{
    struct sdev_cmd *cmd = req->cmd;
    uint64_t lba;
    uint32_t n;
    unsigned len_byte;

    sdev_rw_decode(cmd->cdb, &lba, &n, &len_byte);
    cmd->lba = lba;
    cmd->nblocks = n;
    cmd->dir = SDEV_DIR_NONE;
    return sdev_check_range(req, lba, n);
}

/* SBC-3 §5.22/5.23: NUMBER OF LOGICAL BLOCKS 0 means "to the end". */
enum sdev_sense
sdev_sbc_sync_cache_parse(struct sdev_req *req)
{
    return sdev_range_only_parse(req);
}

enum sdev_sense
sdev_sbc_sync_cache_exec(struct sdev_req *req)
{
    /* The overlay flushes as a whole; IMMED=1 is honoured by finishing the
     * flush before GOOD, which SBC-3 permits. */
    int rc = view_flush(req->lu->view);
    if (rc < 0)
        return sdev_io_error(req, rc, true);
    return SDEV_SENSE_OK;
}

/* SBC-3 §5.9/5.10 PRE-FETCH: the range is checked; the view keeps no cache
 * of its own to load (reads come from the page cache shared with the base),
 * so the answer is GOOD — "not all blocks were placed in cache" — rather than
 * CONDITION MET. */
enum sdev_sense
sdev_sbc_prefetch_parse(struct sdev_req *req)
{
    return sdev_range_only_parse(req);
}

enum sdev_sense
sdev_sbc_prefetch_exec(struct sdev_req *req)
{
    return SDEV_SENSE_OK;
}

/* SBC-3 §5.15: with PMI=0 the LOGICAL BLOCK ADDRESS must be zero. */
enum sdev_sense
sdev_sbc_read_capacity10_parse(struct sdev_req *req)
{
    struct sdev_cmd *cmd = req->cmd;

    if (!(cmd->cdb[8] & 1) && sdev_be32(cmd->cdb + 2) != 0)
        return sdev_bad_cdb(req, 2, -1);
    cmd->dir = SDEV_DIR_READ;
    cmd->xfer_len = 8;
    return SDEV_SENSE_OK;
}

enum sdev_sense
sdev_sbc_read_capacity10_exec(struct sdev_req *req)
{
    uint64_t n = sdev_lu_nblocks(req->lu);
    uint8_t *buf = sdev_data_in(req, 8, 8);

    sdev_put_be32(buf, n == 0 ? 0 : (n - 1 > UINT32_MAX ? UINT32_MAX : (uint32_t)(n - 1)));
    sdev_put_be32(buf + 4, req->lu->block_size);
    return SDEV_SENSE_OK;
}

enum sdev_sense
sdev_sbc_read_capacity16_parse(struct sdev_req *req)
{
    struct sdev_cmd *cmd = req->cmd;

    if (!(cmd->cdb[14] & 1) && sdev_be64(cmd->cdb + 2) != 0)
        return sdev_bad_cdb(req, 2, -1);
    cmd->dir = SDEV_DIR_READ;
    cmd->xfer_len = sdev_be32(cmd->cdb + 10);
    return SDEV_SENSE_OK;
}

enum sdev_sense
sdev_sbc_read_capacity16_exec(struct sdev_req *req)
{
    struct sdev_lu *lu = req->lu;
    uint64_t n = sdev_lu_nblocks(lu);
    uint8_t *buf = sdev_data_in(req, 32, req->cmd->xfer_len);

    sdev_put_be64(buf, n ? n - 1 : 0);
    sdev_put_be32(buf + 8, lu->block_size);
    /* byte 12: P_TYPE/PROT_EN = 0 (no protection information). byte 13:
     * LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT = 0: the overlay reads and
     * writes any single logical block at any alignment (a partial granule is
     * merged inside the overlay), so a 512-byte write is never torn into a
     * larger unit the initiator must know about. Provisioning is per granule
     * (an unmap of part of one writes zeros and the blocks stay mapped); the
     * granule is advertised where it is the hint initiators use to align:
     * Block Limits VPD OPTIMAL TRANSFER LENGTH GRANULARITY and OPTIMAL UNMAP
     * GRANULARITY (docs/scsi.md, "Physical block size"). */
    buf[13] = 0;
    buf[14] = 0x80 | 0x40; /* LBPME: thin provisioned; LBPRZ: unmapped blocks read zeros */
    return SDEV_SENSE_OK;
}
