/* xcopy.c — the copy manager: EXTENDED COPY (LID1) and RECEIVE COPY RESULTS
 * (SPC-4 §6.3, §6.18; parameter list and descriptors SPC-4 §6.4).
 *
 * What it copies: blocks of this LU to other blocks of this LU, so that an
 * initiator (Linux's dm-kcopyd, VMware's XCOPY offload) can clone within the
 * disk without moving the data over the network. The only copy target
 * (CSCD) descriptor accepted is the identification descriptor (E4h) with
 * peripheral device type 0, our block length, and a designator that names
 * this LU as VPD page 83h does (its NAA or T10 vendor ID designator). Its
 * LU ID TYPE field is ignored: in SPC-4 the designator alone names the LU. A well-formed descriptor
 * naming anything else, or with the NUL bit, is a device this copy manager cannot reach: a segment
 * that uses it ends the command with COPY ABORTED / COPY TARGET DEVICE NOT REACHABLE. The only
 * segment descriptor is block device to block device (02h).
 *
 * The whole parameter list is checked before any block is copied: length
 * errors, the limits reported by OPERATING PARAMETERS, descriptor type codes,
 * descriptor fields, CSCD indexes and LBA ranges. A segment that would run
 * past the end of the LU ends the command with COPY ABORTED (no further
 * additional sense code: the range check is the copy manager's own, no copy
 * target command failed). Then segments run in order through the view, in
 * chunks of 1 MiB; an overlapping copy to a higher LBA runs backwards so the
 * source is read before it is overwritten. Writes honour WCE like WRITE.
 *
 * Held results: with LIST ID USAGE 00b the outcome (COPY STATUS: completed,
 * with or without errors, segments processed, bytes copied) is kept per
 * I_T nexus (the last SDEV_COPY_HELD lists) for RECEIVE COPY RESULTS. No
 * copy is ever "in progress" when another command of the nexus arrives:
 * commands run synchronously. RECEIVE DATA and FAILED SEGMENT DETAILS are not
 * offered (no held data: no segment type here produces any).
 */
#include "sdev-int.h"
#include "log.h"

#define SDEV_XCOPY_HDR 16u
#define SDEV_XCOPY_CSCD_LEN 32u
#define SDEV_XCOPY_B2B_LEN 28u
#define SDEV_XCOPY_MAX_CSCD 2u
#define SDEV_XCOPY_MAX_SEGMENTS 16u
/* MAXIMUM DESCRIPTOR LIST LENGTH: CSCD + segment descriptor lists. */
#define SDEV_XCOPY_MAX_LIST_LEN                                                                    \
    (SDEV_XCOPY_MAX_CSCD * SDEV_XCOPY_CSCD_LEN + SDEV_XCOPY_MAX_SEGMENTS * SDEV_XCOPY_B2B_LEN)
#define SDEV_XCOPY_BUF (1u << 20)

#define SDEV_RCR_COPY_STATUS 0x00
#define SDEV_RCR_OPERATING_PARAMETERS 0x03

struct sdev_xcopy_seg {
    uint64_t src_lba;
    uint64_t dst_lba;
    uint32_t nblocks;
};

struct sdev_xcopy_list {
    uint8_t list_id;
    uint8_t usage; /* LIST ID USAGE */
    unsigned n_cscd;
    bool reachable[SDEV_XCOPY_MAX_CSCD];
    unsigned n_seg;
    struct sdev_xcopy_seg seg[SDEV_XCOPY_MAX_SEGMENTS];
};

enum sdev_sense
sdev_spc_extended_copy_parse(struct sdev_req *req)
{
    struct sdev_cmd *cmd = req->cmd;
    uint32_t plen = sdev_be32(cmd->cdb + 10);

    /* Longer than any list within our limits can be (inline data: none). */
    if (plen > SDEV_XCOPY_HDR + SDEV_XCOPY_MAX_LIST_LEN)
        return SDEV_SENSE_PARAM_LIST_LENGTH;
    cmd->xfer_len = plen;
    cmd->dir = plen ? SDEV_DIR_WRITE : SDEV_DIR_NONE;
    return SDEV_SENSE_OK;
}

/* One identification CSCD descriptor (SPC-4 §6.4.5.6) at p, offset off. */
static enum sdev_sense
sdev_xcopy_cscd(struct sdev_req *req, const uint8_t *d, unsigned off, bool *reachable)
{
    struct sdev_lu *lu = req->lu;

    if (d[0] != 0xe4)
        return SDEV_SENSE_UNSUPPORTED_TARGET_DESC;
    if (d[1] & 0x1f) /* PERIPHERAL DEVICE TYPE: block devices only */
        return sdev_bad_param(req, off + 1, 4);
    uint8_t assoc = (d[5] >> 4) & 3, type = d[5] & 0x0f, dlen = d[7];
    if (dlen > 16) /* the designator has 20 bytes including its header */
        return sdev_bad_param(req, off + 7, -1);
    if (sdev_be24(d + 29) != lu->block_size) /* DISK BLOCK LENGTH */
        return sdev_bad_param(req, off + 29, -1);
    *reachable = !(d[1] & 0x20) && sdev_vpd_names_lu(lu, assoc, type, d + 8, dlen);
    return SDEV_SENSE_OK;
}

/* One block-to-block segment descriptor (SPC-4 §6.4.6.5) at d, offset off. */
static enum sdev_sense
sdev_xcopy_segment_check(struct sdev_req *req, const struct sdev_xcopy_list *l, const uint8_t *d,
                         unsigned off, struct sdev_xcopy_seg *seg)
{
    if (d[0] != 0x02)
        return SDEV_SENSE_UNSUPPORTED_SEGMENT_DESC;
    if (sdev_be16(d + 2) + 4u != SDEV_XCOPY_B2B_LEN)
        return sdev_bad_param(req, off + 2, -1);
    uint16_t src = sdev_be16(d + 4), dst = sdev_be16(d + 6);
    if (src >= l->n_cscd || dst >= l->n_cscd || !l->reachable[src] || !l->reachable[dst])
        return SDEV_SENSE_COPY_TARGET_UNREACHABLE;
    seg->nblocks = sdev_be16(d + 10);
    seg->src_lba = sdev_be64(d + 12);
    seg->dst_lba = sdev_be64(d + 20);
    /* Same LU and block length on both sides, so DC changes nothing. */
    if (sdev_check_range(req, seg->src_lba, seg->nblocks) ||
        sdev_check_range(req, seg->dst_lba, seg->nblocks))
        return SDEV_SENSE_COPY_ABORTED;
    return SDEV_SENSE_OK;
}

/* Parameter list (SPC-4 §6.4.3): header, CSCD descriptors, segment
 * descriptors, inline data. Fills l; copies nothing. */
static enum sdev_sense
sdev_xcopy_parse_list(struct sdev_req *req, const uint8_t *p, uint32_t len,
                      struct sdev_xcopy_list *l)
{
    enum sdev_sense r;

    if (len < SDEV_XCOPY_HDR)
        return SDEV_SENSE_PARAM_LIST_LENGTH;
    l->list_id = p[0];
    l->usage = (p[1] >> 3) & 3;
    if (l->usage == 1)
        return sdev_bad_param(req, 1, 4); /* reserved LIST ID USAGE */
    if (l->usage == 3 && l->list_id != 0)
        return sdev_bad_param(req, 0, -1); /* "no list identifier" needs 0 */
    uint32_t tdl = sdev_be16(p + 2), sdl = sdev_be32(p + 8), inl = sdev_be32(p + 12);
    if ((uint64_t)SDEV_XCOPY_HDR + tdl + sdl + inl > len)
        return SDEV_SENSE_PARAM_LIST_LENGTH;
    if ((uint64_t)tdl + sdl > SDEV_XCOPY_MAX_LIST_LEN)
        return SDEV_SENSE_PARAM_LIST_LENGTH;
    if (inl != 0)
        return sdev_bad_param(req, 12, -1); /* MAXIMUM INLINE DATA LENGTH is 0 */
    if (tdl % SDEV_XCOPY_CSCD_LEN)
        return sdev_bad_param(req, 2, -1);
    if (tdl / SDEV_XCOPY_CSCD_LEN > SDEV_XCOPY_MAX_CSCD)
        return SDEV_SENSE_TOO_MANY_TARGET_DESC;
    l->n_cscd = tdl / SDEV_XCOPY_CSCD_LEN;

    /* Count the segment descriptors by their own lengths. */
    unsigned seg_base = SDEV_XCOPY_HDR + tdl, n_seg = 0;
    for (uint32_t off = 0; off < sdl; n_seg++) {
        if (sdl - off < 4)
            return sdev_bad_param(req, seg_base + off, -1);
        uint32_t dlen = sdev_be16(p + seg_base + off + 2) + 4u;
        if (dlen > sdl - off)
            return sdev_bad_param(req, seg_base + off + 2, -1);
        off += dlen;
    }
    if (n_seg > SDEV_XCOPY_MAX_SEGMENTS)
        return SDEV_SENSE_TOO_MANY_SEGMENT_DESC;

    for (unsigned i = 0; i < l->n_cscd; i++) {
        unsigned off = SDEV_XCOPY_HDR + i * SDEV_XCOPY_CSCD_LEN;
        r = sdev_xcopy_cscd(req, p + off, off, &l->reachable[i]);
        if (r)
            return r;
    }
    l->n_seg = 0;
    for (uint32_t off = 0; off < sdl; l->n_seg++) {
        const uint8_t *d = p + seg_base + off;
        r = sdev_xcopy_segment_check(req, l, d, seg_base + off, &l->seg[l->n_seg]);
        if (r)
            return r;
        off += sdev_be16(d + 2) + 4u;
    }
    return SDEV_SENSE_OK;
}

static void
sdev_xcopy_hold(struct sdev_req *req, const struct sdev_xcopy_list *l, bool ok, unsigned segs,
                uint64_t bytes)
{
    struct sdev_nexus *n = req->nexus;

    if (l->usage != 0)
        return; /* 10b / 11b: the copy manager holds nothing */
    sdev_lu_lock(req->lu);
    struct sdev_copy_result *res = NULL;
    for (unsigned i = 0; i < SDEV_COPY_HELD; i++) {
        if (n->copy_held[i].valid && n->copy_held[i].list_id == l->list_id)
            res = &n->copy_held[i];
    }
    if (!res) {
        res = &n->copy_held[n->copy_next];
        n->copy_next = (n->copy_next + 1) % SDEV_COPY_HELD;
    }
    res->valid = true;
    res->list_id = l->list_id;
    res->status = ok ? 0x01 : 0x02;
    res->segments = (uint16_t)segs;
    res->bytes = bytes;
    sdev_lu_unlock(req->lu);
}

/* Copy one segment; returns 0 or -errno, *write tells which side failed. */
static int
sdev_xcopy_run(struct sdev_lu *lu, uint8_t *buf, const struct sdev_xcopy_seg *s, unsigned wflags,
               bool *write)
{
    uint64_t src = s->src_lba << lu->block_shift, dst = s->dst_lba << lu->block_shift;
    uint64_t bytes = (uint64_t)s->nblocks << lu->block_shift;
    bool backwards = dst > src && dst < src + bytes;

    for (uint64_t done = 0; done < bytes;) {
        size_t len = (size_t)MIN(bytes - done, (uint64_t)SDEV_XCOPY_BUF);
        uint64_t off = backwards ? bytes - done - len : done;
        int rc = view_pread(lu->view, buf, len, src + off);
        *write = false;
        if (rc == 0) {
            rc = view_pwrite(lu->view, buf, len, dst + off, wflags);
            *write = true;
        }
        if (rc < 0)
            return rc;
        done += len;
    }
    return 0;
}

enum sdev_sense
sdev_spc_extended_copy_exec(struct sdev_req *req)
{
    struct sdev_lu *lu = req->lu;
    struct sdev_cmd *cmd = req->cmd;
    uint32_t len = sdev_data_out_len(req, cmd->xfer_len);
    g_autofree struct sdev_xcopy_list *l = g_new0(struct sdev_xcopy_list, 1);
    enum sdev_sense r;

    if (cmd->xfer_len == 0)
        return SDEV_SENSE_OK; /* PARAMETER LIST LENGTH 0: nothing to copy */
    if (len < cmd->xfer_len)
        return SDEV_SENSE_PARAM_LIST_LENGTH; /* the list did not arrive whole */
    r = sdev_xcopy_parse_list(req, cmd->data_out, len, l);
    if (r)
        return r;

    sdev_lu_lock(lu);
    unsigned wflags = lu->wce ? 0 : VIEW_FUA;
    sdev_lu_unlock(lu);
    g_autofree uint8_t *buf = g_malloc(SDEV_XCOPY_BUF);
    uint64_t copied = 0;
    for (unsigned i = 0; i < l->n_seg; i++) {
        bool write = false;
        int rc = sdev_xcopy_run(lu, buf, &l->seg[i], wflags, &write);
        if (rc < 0) {
            LOG_RATELIMITED(G_LOG_LEVEL_WARNING, 10, 5, "EXTENDED COPY segment %u failed: %s", i,
                            g_strerror(-rc));
            sdev_xcopy_hold(req, l, false, i, copied);
            return sdev_sense_from_errno(rc, write);
        }
        copied += (uint64_t)l->seg[i].nblocks << lu->block_shift;
    }
    sdev_xcopy_hold(req, l, true, l->n_seg, copied);
    return SDEV_SENSE_OK;
}

enum sdev_sense
sdev_spc_receive_copy_results_parse(struct sdev_req *req)
{
    struct sdev_cmd *cmd = req->cmd;

    cmd->dir = SDEV_DIR_READ;
    cmd->xfer_len = sdev_be32(cmd->cdb + 10);
    return SDEV_SENSE_OK;
}

/* SPC-4 §6.18.4 (LID1 operating parameters). */
static void
sdev_rcr_operating_parameters(struct sdev_req *req)
{
    static const uint8_t types[] = {0x02, 0xe4}; /* block->block, identification CSCD */
    uint8_t *p = sdev_data_in(req, 44 + sizeof(types), req->cmd->xfer_len);

    sdev_put_be32(p, 40 + sizeof(types)); /* AVAILABLE DATA */
    p[4] = 0x01;                          /* SNLID: LIST ID USAGE 11b is supported */
    sdev_put_be16(p + 8, SDEV_XCOPY_MAX_CSCD);
    sdev_put_be16(p + 10, SDEV_XCOPY_MAX_SEGMENTS);
    sdev_put_be32(p + 12, SDEV_XCOPY_MAX_LIST_LEN);
    sdev_put_be32(p + 16, 0xffffu << req->lu->block_shift); /* MAXIMUM SEGMENT LENGTH */
    /* 20: MAXIMUM INLINE DATA LENGTH, 24: HELD DATA LIMIT, 28: MAXIMUM STREAM
     * DEVICE TRANSFER SIZE: all 0 (none of these is used). */
    sdev_put_be16(p + 34, 1);              /* TOTAL CONCURRENT COPIES */
    p[36] = 1;                             /* MAXIMUM CONCURRENT COPIES */
    p[37] = (uint8_t)req->lu->block_shift; /* DATA SEGMENT GRANULARITY (log2) */
    p[43] = sizeof(types);                 /* IMPLEMENTED DESCRIPTOR LIST LENGTH */
    memcpy(p + 44, types, sizeof(types));
}

/* SPC-4 §6.18.2 COPY STATUS of the held result for the CDB's list id. */
static enum sdev_sense
sdev_rcr_copy_status(struct sdev_req *req)
{
    struct sdev_nexus *n = req->nexus;
    uint8_t list_id = req->cmd->cdb[2];
    struct sdev_copy_result res = {0};

    sdev_lu_lock(req->lu);
    for (unsigned i = 0; i < SDEV_COPY_HELD; i++) {
        if (n->copy_held[i].valid && n->copy_held[i].list_id == list_id)
            res = n->copy_held[i];
    }
    sdev_lu_unlock(req->lu);
    if (!res.valid)
        return sdev_bad_cdb(req, 2, -1); /* no copy with that list identifier */

    uint8_t units = 0; /* TRANSFER COUNT UNITS: 00h bytes, 01h KiB, 02h MiB, ... */
    uint64_t count = res.bytes;
    while (count > UINT32_MAX) {
        count >>= 10;
        units++;
    }
    uint8_t *p = sdev_data_in(req, 12, req->cmd->xfer_len);
    sdev_put_be32(p, 8); /* AVAILABLE DATA */
    p[4] = res.status;   /* HDD=0 */
    sdev_put_be16(p + 5, res.segments);
    p[7] = units;
    sdev_put_be32(p + 8, (uint32_t)count);
    return SDEV_SENSE_OK;
}

enum sdev_sense
sdev_spc_receive_copy_results_exec(struct sdev_req *req)
{
    switch (req->cmd->cdb[1] & 0x1f) {
    case SDEV_RCR_COPY_STATUS:
        return sdev_rcr_copy_status(req);
    case SDEV_RCR_OPERATING_PARAMETERS:
        sdev_rcr_operating_parameters(req);
        return SDEV_SENSE_OK;
    default: /* the descriptor table offers no other service action */
        return sdev_bad_cdb(req, 1, 4);
    }
}
