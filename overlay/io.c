/* io.c — the merged data path: read, write, zero and block status of an open
 * overlay over its base.
 *
 * Reads split the range into runs of one granule state (map.c) and serve
 * each run with one call: BASE from the base (ov_base_pread; a file base
 * preads the shared base file, so every client shares one page-cache copy),
 * DATA from the overlay file, ZERO as memset. No lock is taken.
 * ov_overlay_read_segments and ov_overlay_block_status walk the same runs
 * (walk_runs): the former says where they live (base file, overlay file,
 * zeros), for senders that send the files' pages instead of copying the
 * bytes through a buffer.
 *
 * Writes: when every granule of the range is already DATA the bytes go
 * straight to pwrite at data_offset + offset, without a lock. Otherwise the
 * write takes the stripe locks of its granules (one lock per 64 consecutive
 * granules, OV_STRIPES of them), re-reads the states, completes partial edge
 * granules that are not DATA with their current contents (from the base or
 * zeros: read-modify-write), writes everything with one pwritev, and only
 * then marks the granules DATA. Zeroing whole granules marks them ZERO and
 * punches their space under the same locks; partial edge granules are
 * written with zeros, unless they are ZERO already.
 *
 * On-disk invariants kept here (the flush side is in journal.c):
 *  I1. A granule's bytes are written to the file before the in-memory map
 *      says DATA, so any map snapshot that says DATA was taken after the
 *      granule's bytes reached the page cache (all of them, partial
 *      granules included, thanks to read-modify-write).
 *  I2. Every state change of a granule (BASE/ZERO -> DATA, any -> ZERO)
 *      happens under its stripe lock after re-reading its state, so two
 *      writers never both complete the same granule from stale contents.
 *  I3. The map is never changed to BASE by the data path; BASE only ever
 *      means "never written since the overlay was created or repaired".
 *  I4. A hole is punched only for granules already marked ZERO, under the
 *      lock, so a punch never removes bytes that a DATA granule needs.
 */
#include <errno.h>
#include <string.h>
#include <glib.h>

#include "ov-int.h"

static int
check_range(struct ov_overlay *ov, uint64_t offset, uint64_t len)
{
    if (offset > ov->hdr.size || len > ov->hdr.size - offset)
        return -EINVAL;
    return 0;
}

/* Call fn for each run of one granule state in [offset, offset+len), in
 * order, clipped to the range; reads, block status and segment lookup are
 * all this walk. fn returns 0 to go on, > 0 to stop early, < 0 to stop with
 * that error. A corrupt map entry is -EIO. Returns 0 or the error. */
typedef int (*run_fn)(struct ov_overlay *ov, uint64_t pos, uint64_t n, enum ov_gstate st,
                      void *user_data);

static inline int
walk_runs(struct ov_overlay *ov, uint64_t offset, uint64_t len, run_fn fn, void *user_data)
{
    uint64_t pos = offset, end = offset + len, g_end;
    int r = check_range(ov, offset, len);

    if (r < 0 || len == 0)
        return r;
    g_end = ((end - 1) >> ov->granule_shift) + 1;
    while (pos < end) {
        uint64_t run_end;
        enum ov_gstate st = ov_map_run(ov, pos >> ov->granule_shift, g_end, &run_end);
        uint64_t n = MIN(run_end << ov->granule_shift, end) - pos;

        if (st == OV_G_BAD)
            return -EIO;
        r = fn(ov, pos, n, st, user_data);
        if (r != 0)
            return r < 0 ? r : 0;
        pos += n;
    }
    return 0;
}

/* Apply op to every stripe mutex covering granules [g0, g1), in ascending
 * stripe order (so two lockers never deadlock): the granules' chunks map to
 * one run of stripes, or two when the run wraps past the last stripe, or to
 * all of them. */
static void
stripes_apply(struct ov_overlay *ov, uint64_t g0, uint64_t g1, int (*op)(pthread_mutex_t *))
{
    uint64_t c0 = g0 >> OV_STRIPE_SHIFT, c1 = (g1 - 1) >> OV_STRIPE_SHIFT;
    unsigned s0 = (unsigned)(c0 % OV_STRIPES), s1 = (unsigned)(c1 % OV_STRIPES);
    unsigned lo_end, hi_start; /* stripes [0, lo_end) and [hi_start, OV_STRIPES) */

    if (c1 - c0 + 1 >= OV_STRIPES) {
        lo_end = OV_STRIPES;
        hi_start = OV_STRIPES;
    } else if (s0 <= s1) {
        for (unsigned s = s0; s <= s1; s++)
            op(&ov->stripes[s]);
        return;
    } else {
        lo_end = s1 + 1;
        hi_start = s0;
    }
    for (unsigned s = 0; s < lo_end; s++)
        op(&ov->stripes[s]);
    for (unsigned s = hi_start; s < OV_STRIPES; s++)
        op(&ov->stripes[s]);
}

void
ov_stripes_lock(struct ov_overlay *ov, uint64_t g0, uint64_t g1)
{
    stripes_apply(ov, g0, g1, pthread_mutex_lock);
}

void
ov_stripes_unlock(struct ov_overlay *ov, uint64_t g0, uint64_t g1)
{
    stripes_apply(ov, g0, g1, pthread_mutex_unlock);
}

struct read_ctx {
    uint8_t *buf;
    uint64_t offset; /* of buf[0] */
};

static int
read_run(struct ov_overlay *ov, uint64_t pos, uint64_t n, enum ov_gstate st, void *user_data)
{
    const struct read_ctx *c = user_data;
    uint8_t *p = c->buf + (pos - c->offset);

    switch (st) {
    case OV_G_BASE:
        return ov_base_pread(ov->base, p, n, pos);
    case OV_G_DATA:
        return ov_sys_pread(ov->fd, p, n, ov->hdr.data_offset + pos, false);
    case OV_G_ZERO:
    default:
        memset(p, 0, n);
        return 0;
    }
}

int
ov_overlay_pread(struct ov_overlay *ov, void *buf, size_t len, uint64_t offset)
{
    struct read_ctx c = {.buf = buf, .offset = offset};

    return walk_runs(ov, offset, len, read_run, &c);
}

/* Fill buf with the current contents of [offset, offset+len), which lies in
 * one granule of state st (BASE or ZERO). */
static int
fill_from(struct ov_overlay *ov, enum ov_gstate st, uint8_t *buf, uint64_t len, uint64_t offset)
{
    if (st == OV_G_ZERO) {
        memset(buf, 0, len);
        return 0;
    }
    return ov_base_pread(ov->base, buf, len, offset);
}

/* Write with the stripe locks of [g0, g1) held (I2). */
static int
write_locked(struct ov_overlay *ov, const void *buf, size_t len, uint64_t offset, uint64_t g0,
             uint64_t g1)
{
    uint64_t gstart = g0 << ov->granule_shift;
    uint64_t gend = MIN(g1 << ov->granule_shift, ov->hdr.size);
    uint64_t end = offset + len;
    enum ov_gstate head = ov_map_get(ov, g0), tail = ov_map_get(ov, g1 - 1);
    uint64_t pre_len = head != OV_G_DATA ? offset - gstart : 0;
    uint64_t post_len = tail != OV_G_DATA ? gend - end : 0;
    g_autofree uint8_t *pre = NULL, *post = NULL;
    struct iovec iov[3];
    int n = 0, r;

    for (uint64_t g = g0, run_end; g < g1; g = run_end)
        if (ov_map_run(ov, g, g1, &run_end) == OV_G_BAD)
            return -EIO;
    if (pre_len) {
        pre = g_malloc(pre_len);
        if ((r = fill_from(ov, head, pre, pre_len, gstart)) < 0)
            return r;
        iov[n++] = (struct iovec){.iov_base = pre, .iov_len = pre_len};
    }
    iov[n++] = (struct iovec){.iov_base = (void *)buf, .iov_len = len};
    if (post_len) {
        post = g_malloc(post_len);
        if ((r = fill_from(ov, tail, post, post_len, end)) < 0)
            return r;
        iov[n++] = (struct iovec){.iov_base = post, .iov_len = post_len};
    }
    r = ov_sys_pwritev(ov, OV_FAULT_DATA_WRITE, iov, n, ov->hdr.data_offset + offset - pre_len);
    if (r < 0)
        return r;
    ov_map_set_range(ov, g0, g1, OV_G_DATA); /* I1: only after the bytes are written */
    return 0;
}

static int
write_nofua(struct ov_overlay *ov, const void *buf, size_t len, uint64_t offset)
{
    uint64_t g0 = offset >> ov->granule_shift;
    uint64_t g1 = ((offset + len - 1) >> ov->granule_shift) + 1;
    uint64_t run_end;
    int r;

    if (ov_map_run(ov, g0, g1, &run_end) == OV_G_DATA && run_end == g1)
        return ov_sys_pwrite(ov, OV_FAULT_DATA_WRITE, buf, len, ov->hdr.data_offset + offset);
    ov_stripes_lock(ov, g0, g1);
    r = write_locked(ov, buf, len, offset, g0, g1);
    ov_stripes_unlock(ov, g0, g1);
    return r;
}

int
ov_overlay_pwrite(struct ov_overlay *ov, const void *buf, size_t len, uint64_t offset,
                  unsigned flags)
{
    int r;

    if (ov->read_only)
        return -EROFS;
    if ((r = check_range(ov, offset, len)) < 0)
        return r;
    if (len > 0 && (r = write_nofua(ov, buf, len, offset)) < 0)
        return r;
    return (flags & OV_FUA) ? ov_overlay_flush(ov) : 0;
}

/* Write zeros to a range inside at most two partial granules, one granule
 * per call so that no sector is split between two writes. A granule that is
 * ZERO already reads as zeros: writing it would only turn it into a DATA
 * granule that takes space, so it is left alone. (Seeing ZERO without the
 * stripe lock is enough: the range read as zeros at that moment, and any
 * write racing with this call may land before or after it.) */
static int
write_zeros(struct ov_overlay *ov, uint64_t offset, uint64_t len)
{
    while (len > 0) {
        uint64_t gran = ov->hdr.granule;
        uint64_t n = MIN(len, gran - (offset & (gran - 1)));
        int r = 0;

        if (ov_map_get(ov, offset >> ov->granule_shift) != OV_G_ZERO)
            r = write_nofua(ov, ov->zero_buf, n, offset);
        if (r < 0)
            return r;
        offset += n;
        len -= n;
    }
    return 0;
}

static int
zero_granules(struct ov_overlay *ov, uint64_t g0, uint64_t g1)
{
    uint64_t start = g0 << ov->granule_shift;
    uint64_t end = MIN(g1 << ov->granule_shift, ov->hdr.size);
    int r = 0;

    ov_stripes_lock(ov, g0, g1);
    for (uint64_t g = g0, run_end; g < g1; g = run_end) {
        if (ov_map_run(ov, g, g1, &run_end) == OV_G_BAD) {
            r = -EIO;
            goto out;
        }
    }
    ov_map_set_range(ov, g0, g1, OV_G_ZERO);
    /* I4. Space release is best effort: the map already says ZERO, so the
     * bytes left behind are never read (EOPNOTSUPP, or ENOSPC while an
     * extent is split, leave them in place). */
    if (ov_sys_punch(ov, ov->hdr.data_offset + start, end - start) < 0)
        g_debug("overlay %s: could not release space of a zeroed range", ov->path);
out:
    ov_stripes_unlock(ov, g0, g1);
    return r;
}

int
ov_overlay_zero(struct ov_overlay *ov, uint64_t offset, uint64_t len, unsigned flags)
{
    uint64_t end = offset + len;
    uint64_t gran = ov->hdr.granule;
    uint64_t gs, ge;
    int r;

    if (ov->read_only)
        return -EROFS;
    if ((r = check_range(ov, offset, len)) < 0)
        return r;
    if (len == 0)
        return (flags & OV_FUA) ? ov_overlay_flush(ov) : 0;
    /* Whole granules [gs, ge); the disk's last granule counts as whole when
     * the range reaches the end of the disk. */
    gs = (offset + gran - 1) >> ov->granule_shift;
    ge = end == ov->hdr.size ? ov->n_granules : end >> ov->granule_shift;
    if (gs >= ge) {
        r = write_zeros(ov, offset, len);
    } else {
        uint64_t ws = gs << ov->granule_shift, we = ge << ov->granule_shift;
        r = 0;
        if (offset < ws)
            r = write_zeros(ov, offset, ws - offset);
        if (r == 0 && we < end)
            r = write_zeros(ov, we, end - we);
        if (r == 0)
            r = zero_granules(ov, gs, ge);
    }
    if (r < 0)
        return r;
    return (flags & OV_FUA) ? ov_overlay_flush(ov) : 0;
}

struct extent_ctx {
    ov_extent_fn fn;
    void *user_data;
};

static int
extent_run(struct ov_overlay *ov, uint64_t pos, uint64_t n, enum ov_gstate st, void *user_data)
{
    const struct extent_ctx *c = user_data;
    enum ov_extent_kind kind = st == OV_G_DATA   ? OV_EXTENT_DATA
                               : st == OV_G_ZERO ? OV_EXTENT_ZERO
                                                 : OV_EXTENT_BASE;

    return c->fn(pos, n, kind, c->user_data) ? 0 : 1;
}

int
ov_overlay_block_status(struct ov_overlay *ov, uint64_t offset, uint64_t length, ov_extent_fn fn,
                        void *user_data)
{
    struct extent_ctx c = {.fn = fn, .user_data = user_data};

    return walk_runs(ov, offset, length, extent_run, &c);
}

struct segments_ctx {
    struct ov_segment *segs;
    unsigned n, max;
};

static int
segment_run(struct ov_overlay *ov, uint64_t pos, uint64_t n, enum ov_gstate st, void *user_data)
{
    struct segments_ctx *c = user_data;
    struct ov_segment seg = {.fd = -1, .file_offset = 0, .len = n};

    if (st == OV_G_BASE) {
        if (ov->base->fd < 0)
            return -ENOTSUP;
        seg.fd = ov->base->fd;
        seg.file_offset = pos;
    } else if (st == OV_G_DATA) {
        seg.fd = ov->fd;
        seg.file_offset = ov->hdr.data_offset + pos;
    }
    if (c->n == c->max)
        return -E2BIG;
    c->segs[c->n++] = seg;
    return 0;
}

int
ov_overlay_read_segments(struct ov_overlay *ov, uint64_t offset, uint64_t len,
                         struct ov_segment *segs, unsigned max)
{
    struct segments_ctx c = {.segs = segs, .n = 0, .max = max};
    int r = walk_runs(ov, offset, len, segment_run, &c);

    return r < 0 ? r : (int)c.n;
}
