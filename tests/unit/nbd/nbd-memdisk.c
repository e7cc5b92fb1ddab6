/* nbd-memdisk.c — see nbd-memdisk.h. */
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include "nbd-memdisk.h"

uint8_t
nbdt_base_byte(uint64_t i)
{
    return (uint8_t)((i * 7 + i / 4096) & 0xff);
}

struct nbdt_disk *
nbdt_disk_new(uint64_t size, uint64_t hole_first, uint64_t hole_last)
{
    struct nbdt_disk *d = g_new0(struct nbdt_disk, 1);
    uint64_t n = size / NBDT_GRANULE;

    g_mutex_init(&d->lock);
    d->size = size;
    d->data = g_malloc(size);
    d->state = g_malloc(n);
    d->fast_zero = true;
    for (uint64_t g = 0; g < n; g++) {
        bool hole = g >= hole_first && g <= hole_last;
        d->state[g] = hole ? VIEW_EXTENT_BASE_ZERO : VIEW_EXTENT_BASE_DATA;
        for (uint64_t i = g * NBDT_GRANULE; i < (g + 1) * NBDT_GRANULE; i++)
            d->data[i] = hole ? 0 : nbdt_base_byte(i);
    }
    return d;
}

void
nbdt_disk_free(struct nbdt_disk *d)
{
    if (!d)
        return;
    g_mutex_clear(&d->lock);
    g_free(d->data);
    g_free(d->state);
    g_free(d);
}

static bool
disk_range_ok(struct nbdt_disk *d, uint64_t off, uint64_t len)
{
    return off <= d->size && len <= d->size - off;
}

static int
md_pread(void *disk, void *buf, size_t len, uint64_t offset)
{
    struct nbdt_disk *d = disk;

    if (!disk_range_ok(d, offset, len))
        return -EINVAL;
    g_mutex_lock(&d->lock);
    memcpy(buf, d->data + offset, len);
    g_mutex_unlock(&d->lock);
    return 0;
}

static int
md_pwrite(void *disk, const void *buf, size_t len, uint64_t offset, unsigned vflags)
{
    struct nbdt_disk *d = disk;

    if (d->read_only)
        return -EROFS;
    if (!disk_range_ok(d, offset, len))
        return -EINVAL;
    g_mutex_lock(&d->lock);
    memcpy(d->data + offset, buf, len);
    for (uint64_t g = offset / NBDT_GRANULE; len && g <= (offset + len - 1) / NBDT_GRANULE; g++)
        d->state[g] = VIEW_EXTENT_OVERLAY_DATA;
    if (vflags & VIEW_FUA)
        d->flushes++;
    g_mutex_unlock(&d->lock);
    return 0;
}

static int
md_zero(void *disk, uint64_t offset, uint64_t len, unsigned vflags)
{
    struct nbdt_disk *d = disk;

    if (d->read_only)
        return -EROFS;
    if (!disk_range_ok(d, offset, len))
        return -EINVAL;
    g_mutex_lock(&d->lock);
    memset(d->data + offset, 0, len);
    for (uint64_t g = offset / NBDT_GRANULE; len && g <= (offset + len - 1) / NBDT_GRANULE; g++) {
        bool whole = g * NBDT_GRANULE >= offset && (g + 1) * NBDT_GRANULE <= offset + len;
        if (whole)
            d->state[g] = VIEW_EXTENT_OVERLAY_ZERO;
        else if (d->state[g] != VIEW_EXTENT_OVERLAY_ZERO)
            d->state[g] = VIEW_EXTENT_OVERLAY_DATA;
    }
    if (vflags & VIEW_FUA)
        d->flushes++;
    g_mutex_unlock(&d->lock);
    return 0;
}

static int
md_flush(void *disk)
{
    struct nbdt_disk *d = disk;

    g_mutex_lock(&d->lock);
    d->flushes++;
    g_mutex_unlock(&d->lock);
    return 0;
}

static int
md_block_status(void *disk, uint64_t offset, uint64_t len, bool base_detail, view_extent_fn fn,
                void *user_data)
{
    struct nbdt_disk *d = disk;

    if (!disk_range_ok(d, offset, len) || len == 0)
        return -EINVAL;
    uint64_t end = offset + len;
    uint64_t pos = offset;
    if (d->quirky && !fn(offset, 0, VIEW_EXTENT_OVERLAY_ZERO, user_data))
        return 0;
    while (pos < end) {
        uint64_t g = pos / NBDT_GRANULE;
        enum view_extent_kind k = d->state[g];
        if (!base_detail && k == VIEW_EXTENT_BASE_ZERO)
            k = VIEW_EXTENT_BASE_DATA;
        uint64_t run_end = (g + 1) * NBDT_GRANULE;
        while (run_end < end) {
            enum view_extent_kind k2 = d->state[run_end / NBDT_GRANULE];
            if (!base_detail && k2 == VIEW_EXTENT_BASE_ZERO)
                k2 = VIEW_EXTENT_BASE_DATA;
            if (k2 != k)
                break;
            run_end += NBDT_GRANULE;
        }
        if (!d->quirky || run_end < end)
            run_end = MIN(run_end, end);
        if (!fn(pos, run_end - pos, k, user_data))
            break;
        pos = run_end;
    }
    return 0;
}

static bool
md_is_zero(struct nbdt_disk *d, uint64_t pos)
{
    enum view_extent_kind k = d->state[pos / NBDT_GRANULE];
    return k == VIEW_EXTENT_OVERLAY_ZERO || k == VIEW_EXTENT_BASE_ZERO;
}

/* Like view_read_segments: a copy of the range in a fresh memfd, one
 * duplicate of it per data run, zero runs as fd -1; -E2BIG past
 * VIEW_MAX_SEGMENTS runs (the server then takes the copy path). */
static int
md_read_segments(void *disk, uint64_t offset, uint64_t len, struct view_segments *out)
{
    struct nbdt_disk *d = disk;
    int rc = 0;

    out->n = 0;
    if (!disk_range_ok(d, offset, len))
        return -EINVAL;
    int mfd = memfd_create("nbdt-read", MFD_CLOEXEC);
    if (mfd < 0)
        return -errno;
    g_mutex_lock(&d->lock);
    if (pwrite(mfd, d->data + offset, len, 0) != (ssize_t)len)
        rc = -EIO;
    for (uint64_t pos = offset, end = offset + len; rc == 0 && pos < end;) {
        bool zero = md_is_zero(d, pos);
        uint64_t run_end = MIN((pos / NBDT_GRANULE + 1) * NBDT_GRANULE, end);
        while (run_end < end && md_is_zero(d, run_end) == zero)
            run_end = MIN(run_end + NBDT_GRANULE, end);
        if (out->n == VIEW_MAX_SEGMENTS) {
            rc = -E2BIG;
            break;
        }
        int fd = zero ? -1 : dup(mfd);
        if (!zero && fd < 0) {
            rc = -errno;
            break;
        }
        out->seg[out->n++] =
            (struct view_segment){.fd = fd, .file_offset = pos - offset, .len = run_end - pos};
        pos = run_end;
    }
    g_mutex_unlock(&d->lock);
    close(mfd);
    if (rc < 0) {
        for (unsigned i = 0; i < out->n; i++)
            if (out->seg[i].fd >= 0)
                close(out->seg[i].fd);
        out->n = 0;
    }
    return rc;
}

static const struct nbdsrv_disk_ops md_ops = {
    .read_segments = md_read_segments,
    .pread = md_pread,
    .pwrite = md_pwrite,
    .zero = md_zero,
    .flush = md_flush,
    .block_status = md_block_status,
};

struct nbdt_exports *
nbdt_exports_new(uint64_t size)
{
    struct nbdt_exports *e = g_new0(struct nbdt_exports, 1);

    /* granules 4..7 (16..32 KiB) and the last 64 KiB are base holes */
    e->img = nbdt_disk_new(size, 4, 7);
    e->img->read_only = true;
    e->c1 = nbdt_disk_new(size, 4, 7);
    e->slow = nbdt_disk_new(size, 4, 7);
    e->slow->fast_zero = false;
    e->tls = nbdt_disk_new(size, 4, 7);
    return e;
}

void
nbdt_exports_free(struct nbdt_exports *e)
{
    if (!e)
        return;
    nbdt_disk_free(e->img);
    nbdt_disk_free(e->c1);
    nbdt_disk_free(e->slow);
    nbdt_disk_free(e->tls);
    g_free(e);
}

static uint32_t
nbdt_open(struct nbdsrv *srv, struct nbdsrv_conn *conn, const char *name, bool for_go,
          struct nbdsrv_export **out, char **msg)
{
    struct nbdt_exports *e = srv->exports_data;
    struct nbdt_disk *d = NULL;

    if (strcmp(name, "img") == 0)
        d = e->img;
    else if (strcmp(name, "img/c1") == 0)
        d = e->c1;
    else if (strcmp(name, "img/slow") == 0)
        d = e->slow;
    else if (strcmp(name, "img/tls") == 0)
        d = e->tls;
    if (!d) {
        *msg = g_strdup_printf("no export named '%s'", name);
        return NBD_REP_ERR_UNKNOWN;
    }
    if (d == e->tls) {
        if (!conn->tls_active) {
            *msg = g_strdup("needs TLS");
            return conn->tls ? NBD_REP_ERR_TLS_REQD : NBD_REP_ERR_POLICY;
        }
        if (g_strcmp0(conn->tls_identity, "alice") != 0) {
            *msg = g_strdup("identity not allowed");
            return NBD_REP_ERR_POLICY;
        }
    }
    struct nbdsrv_export *exp = g_new0(struct nbdsrv_export, 1);
    exp->name = g_strdup(name);
    exp->description = g_strdup_printf("test disk %s", name);
    exp->size = d->size;
    exp->granule = NBDT_GRANULE;
    exp->read_only = d->read_only;
    exp->multi_conn = d->read_only;
    exp->fast_zero = d->fast_zero;
    exp->ops = &md_ops;
    exp->disk = d;
    *out = exp;
    return 0;
}

static void
nbdt_close(struct nbdsrv *srv, struct nbdsrv_conn *conn, struct nbdsrv_export *exp)
{
    nbdsrv_export_free(exp);
}

static GPtrArray *
nbdt_list(struct nbdsrv *srv, struct nbdsrv_conn *conn)
{
    GPtrArray *list = g_ptr_array_new_with_free_func(g_free);

    g_ptr_array_add(list, g_strdup("img"));
    g_ptr_array_add(list, g_strdup("test image"));
    return list;
}

const struct nbdsrv_export_ops nbdt_export_ops = {
    .open = nbdt_open,
    .close = nbdt_close,
    .list = nbdt_list,
};
