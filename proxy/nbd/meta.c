/* meta.c — metadata contexts (proto.md "Metadata querying") and extent
 * collection for NBD_CMD_BLOCK_STATUS and for hole detection in reads.
 *
 * Contexts (docs/nbd.md "Block status"):
 *   base:allocation (id 1)  NBD_STATE_HOLE|NBD_STATE_ZERO for ranges that
 *       read as zeros without taking space: overlay ZERO granules (discarded
 *       or zeroed by the client) and holes of the base image; 0 otherwise.
 *   ovgate:overlay (id 2)   OVGATE_STATE_OVERLAY for ranges the client's
 *       overlay holds (written or zeroed), plus OVGATE_STATE_ZERO when they
 *       were zeroed/discarded; 0 for ranges that still come from the base.
 *
 * Both are computed from one view_block_status() walk. Runs with equal
 * flags are merged; each context gets at most NBDSRV_MAX_EXTENTS
 * descriptors (1 with NBD_CMD_FLAG_REQ_ONE), which proto.md allows: the
 * descriptors may cover less than the request, never more.
 */
#include <errno.h>
#include <string.h>

#include "nbd-int.h"

static const char *const meta_names[NBDSRV_META_COUNT] = {
    "base:allocation",
    "ovgate:overlay",
};

const char *
nbdsrv_meta_name(unsigned index)
{
    return index < NBDSRV_META_COUNT ? meta_names[index] : NULL;
}

uint32_t
nbdsrv_meta_id(unsigned index)
{
    return index + 1;
}

static bool
str_eq(const char *q, size_t len, const char *s)
{
    return strlen(s) == len && memcmp(q, s, len) == 0;
}

unsigned
nbdsrv_meta_match(const char *query, size_t len, bool list_mode)
{
    if (str_eq(query, len, "base:allocation") || (list_mode && str_eq(query, len, "base:")))
        return NBDSRV_META_BASE_ALLOCATION;
    if (str_eq(query, len, "ovgate:overlay") || (list_mode && str_eq(query, len, "ovgate:")))
        return NBDSRV_META_OVGATE_OVERLAY;
    return 0;
}

static uint32_t
meta_flags(unsigned index, enum view_extent_kind kind)
{
    if (index == 0) {
        bool zero = kind == VIEW_EXTENT_OVERLAY_ZERO || kind == VIEW_EXTENT_BASE_ZERO;
        return zero ? NBD_STATE_HOLE | NBD_STATE_ZERO : 0;
    }
    switch (kind) {
    case VIEW_EXTENT_OVERLAY_DATA:
        return OVGATE_STATE_OVERLAY;
    case VIEW_EXTENT_OVERLAY_ZERO:
        return OVGATE_STATE_OVERLAY | OVGATE_STATE_ZERO;
    default:
        return 0;
    }
}

struct meta_acc {
    uint32_t len[NBDSRV_MAX_EXTENTS];
    uint32_t flags[NBDSRV_MAX_EXTENTS];
    unsigned n;
    uint64_t cur_len; /* pending run not yet emitted */
    uint32_t cur_flags;
    bool closed; /* descriptor budget used up */
};

struct meta_walk {
    struct meta_acc acc[NBDSRV_META_COUNT];
    unsigned meta;
    unsigned max;
    uint64_t next, end; /* where the next extent must start; end of request */
};

static void
acc_emit(struct meta_acc *a, unsigned max)
{
    if (a->cur_len == 0 || a->closed)
        return;
    a->len[a->n] = (uint32_t)a->cur_len;
    a->flags[a->n] = a->cur_flags;
    a->n++;
    a->cur_len = 0;
    if (a->n >= max)
        a->closed = true;
}

static bool
meta_walk_cb(uint64_t offset, uint64_t length, enum view_extent_kind kind, void *user_data)
{
    struct meta_walk *w = user_data;
    bool open = false;

    /* Never describe more than the request, nor a range twice. */
    if (offset != w->next || offset >= w->end)
        return false;
    if (length == 0)
        return true; /* descriptors MUST NOT be empty: skip it */
    length = MIN(length, w->end - offset);
    w->next = offset + length;

    for (unsigned i = 0; i < NBDSRV_META_COUNT; i++) {
        struct meta_acc *a = &w->acc[i];
        if (!(w->meta & (1u << i)) || a->closed)
            continue;
        uint32_t f = meta_flags(i, kind);
        if (a->cur_len > 0 && f != a->cur_flags)
            acc_emit(a, w->max);
        if (!a->closed) {
            if (a->cur_len == 0)
                a->cur_flags = f;
            a->cur_len += length;
            open = true;
        }
    }
    return open; /* stop once every context has its descriptors */
}

int
nbdsrv_meta_reply(struct nbdsrv_conn *conn, const struct nbdsrv_request *req)
{
    const struct nbdsrv_export *exp = conn->exp;
    g_autofree struct meta_walk *w = g_new0(struct meta_walk, 1);

    w->meta = conn->neg.meta;
    w->max = (req->flags & NBD_CMD_FLAG_REQ_ONE) ? 1 : NBDSRV_MAX_EXTENTS;
    w->next = req->offset;
    w->end = req->offset + req->length;
    int rc = exp->ops->block_status(exp->disk, req->offset, req->length,
                                    (w->meta & NBDSRV_META_BASE_ALLOCATION) != 0, meta_walk_cb, w);
    if (rc < 0)
        return rc;

    unsigned last = 0;
    for (unsigned i = 0; i < NBDSRV_META_COUNT; i++) {
        if (!(w->meta & (1u << i)))
            continue;
        acc_emit(&w->acc[i], w->max);
        if (w->acc[i].n == 0)
            return -EIO; /* the disk reported nothing for a valid range */
        last = i;
    }
    for (unsigned i = 0; i < NBDSRV_META_COUNT; i++) {
        const struct meta_acc *a = &w->acc[i];
        if (!(w->meta & (1u << i)))
            continue;
        size_t plen = 4 + 8 * (size_t)a->n;
        uint8_t *p = nbdsrv_io_put(&conn->io, NBD_CHUNK_HDR_LEN + plen);
        nbdsrv_encode_chunk(p, i == last ? NBD_REPLY_FLAG_DONE : 0, NBD_REPLY_TYPE_BLOCK_STATUS,
                            req->handle, (uint32_t)plen);
        p += NBD_CHUNK_HDR_LEN;
        nbdsrv_put_be32(p, nbdsrv_meta_id(i));
        for (unsigned j = 0; j < a->n; j++) {
            nbdsrv_put_be32(p + 4 + 8 * j, a->len[j]);
            nbdsrv_put_be32(p + 8 + 8 * j, a->flags[j]);
        }
    }
    return 0;
}

struct runs_walk {
    struct nbdsrv_run *runs;
    int n, max;
    uint64_t start, end;
};

static bool
runs_cb(uint64_t offset, uint64_t length, enum view_extent_kind kind, void *user_data)
{
    struct runs_walk *w = user_data;
    bool zero = kind == VIEW_EXTENT_OVERLAY_ZERO || kind == VIEW_EXTENT_BASE_ZERO;
    uint64_t expect = w->n ? w->runs[w->n - 1].offset + w->runs[w->n - 1].len : w->start;

    /* Anything unexpected ends the walk; the caller reads the rest as data. */
    if (offset != expect || offset >= w->end)
        return false;
    if (length == 0)
        return true; /* chunks MUST cover at least one byte: skip it */
    length = MIN(length, w->end - offset);

    if (w->n > 0 && w->runs[w->n - 1].zero == zero) {
        w->runs[w->n - 1].len += (uint32_t)length;
        return true;
    }
    if (w->n == w->max) {
        /* Out of runs: the last one takes the rest as data. */
        struct nbdsrv_run *r = &w->runs[w->n - 1];
        r->zero = false;
        r->len = (uint32_t)(w->end - r->offset);
        return false;
    }
    w->runs[w->n++] = (struct nbdsrv_run){.offset = offset, .len = (uint32_t)length, .zero = zero};
    return true;
}

int
nbdsrv_read_runs(const struct nbdsrv_export *exp, uint64_t offset, uint32_t len,
                 struct nbdsrv_run *runs, int max)
{
    struct runs_walk w = {.runs = runs, .n = 0, .max = max, .start = offset, .end = offset + len};

    int rc = exp->ops->block_status(exp->disk, offset, len, true, runs_cb, &w);
    if (rc < 0)
        return rc;
    if (w.n == 0) {
        runs[0] = (struct nbdsrv_run){.offset = offset, .len = len, .zero = false};
        return 1;
    }
    /* Anything the walk did not describe is read as data. */
    struct nbdsrv_run *lastr = &runs[w.n - 1];
    if (lastr->offset + lastr->len < w.end) {
        if (lastr->zero && w.n < max) {
            uint64_t o = lastr->offset + lastr->len;
            runs[w.n++] = (struct nbdsrv_run){.offset = o, .len = (uint32_t)(w.end - o)};
        } else {
            lastr->zero = false;
            lastr->len = (uint32_t)(w.end - lastr->offset);
        }
    }
    /* Zero runs shorter than 4 KiB are not worth a chunk of their own:
     * fold them into data, merging neighbours. */
    int out = 0;
    for (int i = 0; i < w.n; i++) {
        struct nbdsrv_run r = runs[i];
        if (r.zero && r.len < 4096)
            r.zero = false;
        if (out > 0 && runs[out - 1].zero == r.zero)
            runs[out - 1].len += r.len;
        else
            runs[out++] = r;
    }
    return out;
}
