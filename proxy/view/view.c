/* view.c — one disk as the front ends see it (view.h): a client's overlay
 * on its base generation, or a read-only view of one generation's base.
 *
 * Locks, outermost first (docs/concurrency.md):
 *   gate (rwlock)   every I/O holds it shared; view_freeze() holds it
 *                   exclusive from freeze to thaw, so an online reset or
 *                   commit waits for in-flight I/O and holds new I/O back.
 *   caw  (rwlock)   writers (pwrite, zero) hold it shared, so they run in
 *                   parallel with each other; COMPARE AND WRITE holds it
 *                   exclusive for its read-compare-write, so no other write
 *                   of this view can land between its read and its write
 *                   (SBC-4 §5.3: the compare and the write are one atomic
 *                   operation). Reads and flushes do not take it.
 * Fields that a swap changes (ov, base, size, granule, generation) are read
 * only under the gate (shared) or while frozen.
 *
 * Both are pthread rwlocks that prefer writers, not GRWLock: glibc's default
 * (and so GRWLock) prefers readers, and with several connections of one
 * client keeping reads in flight back to back a freeze or a COMPARE AND
 * WRITE would wait forever. Writer preference means a thread must never
 * take the same lock shared twice (a waiting writer would block the inner
 * acquisition): no view function calls another one under a lock, and the
 * block-status callback must not call back into the view.
 *
 * Counters are relaxed atomics: status wants totals, not a snapshot that is
 * consistent across counters.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "view.h"

GQuark
view_error_quark(void)
{
    return g_quark_from_static_string("ovgate-view-error-quark");
}

#define VIEW_BASE_GRANULE 4096u

struct view {
    volatile int refcount;
    pthread_rwlock_t gate;
    pthread_rwlock_t caw;
    struct ov_overlay *ov; /* NULL for an image view */
    struct ov_base *base;  /* borrowed from ov, or our reference for an image view */
    char *client;
    char *image;
    uint32_t generation;
    uint64_t size;
    uint32_t granule;
    uint8_t disk_id[16];
    struct view_stats stats;
};

static void
view_rwlock_init(pthread_rwlock_t *lock)
{
    pthread_rwlockattr_t attr;

    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(lock, &attr);
    pthread_rwlockattr_destroy(&attr);
}

/* These cannot fail for a valid, initialised lock used as documented. */
static void
view_rdlock(pthread_rwlock_t *lock)
{
    pthread_rwlock_rdlock(lock);
}

static void
view_wrlock(pthread_rwlock_t *lock)
{
    pthread_rwlock_wrlock(lock);
}

static void
view_unlock(pthread_rwlock_t *lock)
{
    pthread_rwlock_unlock(lock);
}

static void
view_stat_add(uint64_t *counter, uint64_t n)
{
    __atomic_fetch_add(counter, n, __ATOMIC_RELAXED);
}

/* Identity: SHA-256 over a tag, the image and the client name, cut to 16
 * bytes. Names are NUL-separated so ("ab","c") and ("a","bc") differ. */
static void
view_compute_disk_id(struct view *view)
{
    g_autoptr(GChecksum) sum = g_checksum_new(G_CHECKSUM_SHA256);
    static const guchar tag[] = "ovgate-disk-id";
    guint8 digest[32];
    gsize len = sizeof(digest);

    g_checksum_update(sum, tag, sizeof(tag));
    g_checksum_update(sum, (const guchar *)view->image, (gssize)strlen(view->image) + 1);
    if (view->client != NULL)
        g_checksum_update(sum, (const guchar *)view->client, (gssize)strlen(view->client) + 1);
    else
        g_checksum_update(sum, (const guchar *)"\0read-only", 10);
    g_checksum_get_digest(sum, digest, &len);
    memcpy(view->disk_id, digest, sizeof(view->disk_id));
}

static void
view_take_overlay(struct view *view, struct ov_overlay *ov)
{
    struct ov_overlay_info info;

    ov_overlay_get_info(ov, &info);
    view->ov = ov;
    view->base = ov_overlay_get_base(ov);
    view->size = info.size;
    view->granule = info.granule;
    view->generation = info.base.generation;
}

static struct view *
view_alloc(const char *client, const char *image)
{
    struct view *view = g_new0(struct view, 1);

    view->refcount = 1;
    view_rwlock_init(&view->gate);
    view_rwlock_init(&view->caw);
    view->client = g_strdup(client);
    view->image = g_strdup(image);
    view_compute_disk_id(view);
    return view;
}

struct view *
view_new_overlay(struct ov_overlay *ov_take, const char *client, const char *image)
{
    struct view *view = view_alloc(client, image);

    view_take_overlay(view, ov_take);
    return view;
}

struct view *
view_new_base(struct ov_base *base, const char *image, uint32_t generation)
{
    struct view *view = view_alloc(NULL, image);

    view->base = ov_base_ref(base);
    view->size = base->size;
    view->granule = VIEW_BASE_GRANULE;
    view->generation = generation;
    return view;
}

struct view *
view_ref(struct view *view)
{
    g_atomic_int_inc(&view->refcount);
    return view;
}

void
view_unref(struct view *view)
{
    if (view == NULL || !g_atomic_int_dec_and_test(&view->refcount))
        return;
    if (view->ov != NULL) {
        g_autoptr(GError) err = NULL;
        if (!ov_overlay_close(view->ov, &err))
            g_warning("closing the disk of client %s: %s", view->client, err->message);
    } else {
        ov_base_unref(view->base);
    }
    pthread_rwlock_destroy(&view->gate);
    pthread_rwlock_destroy(&view->caw);
    g_free(view->client);
    g_free(view->image);
    g_free(view);
}

uint64_t
view_get_size(struct view *view)
{
    uint64_t size;

    view_rdlock(&view->gate);
    size = view->size;
    view_unlock(&view->gate);
    return size;
}

bool
view_is_read_only(struct view *view)
{
    return view->client == NULL;
}

uint32_t
view_get_granule(struct view *view)
{
    uint32_t g;

    view_rdlock(&view->gate);
    g = view->granule;
    view_unlock(&view->gate);
    return g;
}

const char *
view_get_client(struct view *view)
{
    return view->client;
}

const char *
view_get_image(struct view *view)
{
    return view->image;
}

uint32_t
view_get_generation(struct view *view)
{
    uint32_t g;

    view_rdlock(&view->gate);
    g = view->generation;
    view_unlock(&view->gate);
    return g;
}

void
view_get_disk_id(struct view *view, uint8_t id[16])
{
    memcpy(id, view->disk_id, 16);
}

static bool
view_range_ok(const struct view *view, uint64_t offset, uint64_t len)
{
    return offset <= view->size && len <= view->size - offset;
}

/* A client view between view_detach_overlay and view_swap_overlay has no
 * disk: its I/O fails with -EIO rather than reaching a freed base. */
static bool
view_detached(const struct view *view)
{
    return view->client != NULL && view->ov == NULL;
}

static int
view_count(struct view *view, int rc)
{
    if (rc < 0)
        view_stat_add(&view->stats.errors, 1);
    return rc;
}

int
view_pread(struct view *view, void *buf, size_t len, uint64_t offset)
{
    int rc;

    view_rdlock(&view->gate);
    if (view_detached(view))
        rc = -EIO;
    else if (!view_range_ok(view, offset, len))
        rc = -EINVAL;
    else if (view->ov != NULL)
        rc = ov_overlay_pread(view->ov, buf, len, offset);
    else
        rc = len == 0 ? 0 : ov_base_pread(view->base, buf, len, offset);
    view_unlock(&view->gate);
    view_stat_add(&view->stats.read_ops, 1);
    if (rc == 0)
        view_stat_add(&view->stats.read_bytes, len);
    return view_count(view, rc);
}

void
view_segments_clear(struct view_segments *s)
{
    for (unsigned i = 0; i < s->n; i++) {
        if (s->seg[i].fd >= 0)
            close(s->seg[i].fd);
        s->seg[i].fd = -1;
        g_clear_pointer(&s->seg[i].mem_ref, ov_base_unref);
        s->seg[i].mem = NULL;
    }
    s->n = 0;
}

/* Under the gate: the current segments with borrowed descriptors. */
static int
view_segments_locked(struct view *view, uint64_t offset, uint64_t len, struct ov_segment *segs)
{
    if (view_detached(view))
        return -EIO;
    if (!view_range_ok(view, offset, len))
        return -EINVAL;
    if (view->ov != NULL)
        return ov_overlay_read_segments(view->ov, offset, len, segs, VIEW_MAX_SEGMENTS);
    if (len == 0)
        return 0;
    if (view->base->fd < 0)
        return -ENOTSUP;
    segs[0] = (struct ov_segment){.fd = view->base->fd, .file_offset = offset, .len = len};
    return 1;
}

/* count_fallback: count a read that the caller will redo with view_pread
 * only when it says so (view_map_read counts its own). */
static int
view_read_segments_counted(struct view *view, uint64_t offset, uint64_t len,
                           struct view_segments *out, bool count_fallback)
{
    struct ov_segment segs[VIEW_MAX_SEGMENTS];
    int rc;

    out->n = 0;
    view_rdlock(&view->gate);
    rc = view_segments_locked(view, offset, len, segs);
    /* References taken under the gate: a swap cannot close the files (or
     * drop the base) before we hold our own. Base pieces come from the
     * base's mapping when it has one: no descriptor to duplicate, and the
     * pages stay mapped from one read to the next. */
    const uint8_t *base_map =
        rc > 0 && view->base != NULL && view->base->fd >= 0 ? ov_base_map(view->base) : NULL;
    for (int i = 0; i < rc; i++) {
        struct view_segment vs = {.fd = -1, .file_offset = segs[i].file_offset, .len = segs[i].len};
        if (base_map != NULL && segs[i].fd >= 0 && segs[i].fd == view->base->fd) {
            vs.mem = base_map + segs[i].file_offset;
            vs.mem_ref = ov_base_ref(view->base);
        } else if (segs[i].fd >= 0 && (vs.fd = fcntl(segs[i].fd, F_DUPFD_CLOEXEC, 0)) < 0) {
            rc = -errno;
            break;
        }
        out->seg[out->n++] = vs;
    }
    view_unlock(&view->gate);
    if (rc < 0) {
        view_segments_clear(out);
        if (rc == -E2BIG || rc == -ENOTSUP || rc == -EMFILE || rc == -ENFILE)
            return rc; /* not an I/O error: the caller reads with view_pread */
        if (!count_fallback)
            return rc;
        view_stat_add(&view->stats.read_ops, 1);
        return view_count(view, rc);
    }
    if (count_fallback) {
        view_stat_add(&view->stats.read_ops, 1);
        view_stat_add(&view->stats.read_bytes, len);
    }
    return 0;
}

int
view_read_segments(struct view *view, uint64_t offset, uint64_t len, struct view_segments *out)
{
    return view_read_segments_counted(view, offset, len, out, true);
}

/* Map one file piece at its place in the area: pieces meet inside a page
 * only at the area's ends (the first piece's head, the last one's tail),
 * where nothing else shares the page. */
static bool
view_map_piece(uint8_t *area, size_t page, size_t pos, const struct view_segment *seg, bool first,
               bool last)
{
    size_t head = pos % page;
    size_t end = pos + (size_t)seg->len;
    size_t start = pos - head;
    size_t stop = (end + page - 1) / page * page;

    int fd = seg->mem_ref != NULL ? seg->mem_ref->fd : seg->fd;

    if ((head != 0 && !first) || (end % page != 0 && !last))
        return false;
    if (seg->file_offset < head || (seg->file_offset - head) % page != 0)
        return false;
    return mmap(area + start, stop - start, PROT_READ, MAP_SHARED | MAP_FIXED | MAP_POPULATE, fd,
                (off_t)(seg->file_offset - head)) != MAP_FAILED;
}

bool
view_map_read(struct view *view, uint64_t offset, size_t len, size_t mixed_min,
              struct view_map *out)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    struct view_segments segs;
    size_t lead = (size_t)(offset % page), pos, maplen;
    uint8_t *area;
    bool ok = true;

    memset(out, 0, sizeof(*out));
    if (len == 0 || view_read_segments_counted(view, offset, len, &segs, false) < 0)
        return false;
    /* All in the base's mapping: point into it, nothing to map. */
    if (segs.n == 1 && segs.seg[0].mem != NULL) {
        out->data = segs.seg[0].mem;
        out->ref = g_steal_pointer(&segs.seg[0].mem_ref);
        view_segments_clear(&segs);
        view_stat_add(&view->stats.read_ops, 1);
        view_stat_add(&view->stats.read_bytes, len);
        return true;
    }
    if (len < mixed_min) {
        view_segments_clear(&segs);
        return false;
    }
    maplen = (lead + len + page - 1) / page * page;
    /* Private anonymous, never written: every page reads as zeros, which
     * is what the zero pieces need; the file pieces replace theirs. */
    area = mmap(NULL, maplen, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (area == MAP_FAILED) {
        view_segments_clear(&segs);
        return false;
    }
    pos = lead;
    for (unsigned i = 0; i < segs.n && ok; i++) {
        if (segs.seg[i].fd >= 0 || segs.seg[i].mem != NULL)
            ok = view_map_piece(area, page, pos, &segs.seg[i], i == 0, i == segs.n - 1);
        pos += (size_t)segs.seg[i].len;
    }
    view_segments_clear(&segs); /* a mapping keeps its file open */
    if (!ok) {
        munmap(area, maplen);
        return false;
    }
    view_stat_add(&view->stats.read_ops, 1);
    view_stat_add(&view->stats.read_bytes, len);
    out->addr = area;
    out->len = maplen;
    out->data = area + lead;
    return true;
}

void
view_map_release(struct view_map *m)
{
    if (m->addr != NULL)
        munmap(m->addr, m->len);
    ov_base_unref(m->ref);
    memset(m, 0, sizeof(*m));
}

static unsigned
view_ov_flags(unsigned flags)
{
    return (flags & VIEW_FUA) ? OV_FUA : 0;
}

int
view_pwrite(struct view *view, const void *buf, size_t len, uint64_t offset, unsigned flags)
{
    int rc;

    view_rdlock(&view->gate);
    if (view_detached(view)) {
        rc = -EIO;
    } else if (view->ov == NULL) {
        rc = -EROFS;
    } else if (!view_range_ok(view, offset, len)) {
        rc = -EINVAL;
    } else {
        view_rdlock(&view->caw);
        rc = ov_overlay_pwrite(view->ov, buf, len, offset, view_ov_flags(flags));
        view_unlock(&view->caw);
    }
    view_unlock(&view->gate);
    view_stat_add(&view->stats.write_ops, 1);
    if (rc == 0)
        view_stat_add(&view->stats.write_bytes, len);
    return view_count(view, rc);
}

int
view_zero(struct view *view, uint64_t offset, uint64_t len, unsigned flags)
{
    int rc;

    /* VIEW_NO_UNMAP needs no special path: the overlay's ZERO state reads as
     * zeros and a later write allocates, which is what NO_HOLE promises to
     * the client (reads return zeros); it only wants no error. */
    view_rdlock(&view->gate);
    if (view_detached(view)) {
        rc = -EIO;
    } else if (view->ov == NULL) {
        rc = -EROFS;
    } else if (!view_range_ok(view, offset, len)) {
        rc = -EINVAL;
    } else {
        view_rdlock(&view->caw);
        rc = ov_overlay_zero(view->ov, offset, len, view_ov_flags(flags));
        view_unlock(&view->caw);
    }
    view_unlock(&view->gate);
    view_stat_add(&view->stats.zero_ops, 1);
    if (rc == 0)
        view_stat_add(&view->stats.zero_bytes, len);
    return view_count(view, rc);
}

int
view_flush(struct view *view)
{
    int rc = 0;

    view_rdlock(&view->gate);
    if (view_detached(view))
        rc = -EIO;
    else if (view->ov != NULL)
        rc = ov_overlay_flush(view->ov);
    view_unlock(&view->gate);
    view_stat_add(&view->stats.flush_ops, 1);
    return view_count(view, rc);
}

int
view_compare_and_write(struct view *view, const void *cmp, const void *data, size_t len,
                       uint64_t offset, unsigned flags, size_t *miscompare_offset)
{
    g_autofree uint8_t *cur = NULL;
    int rc;

    view_rdlock(&view->gate);
    if (view_detached(view)) {
        rc = -EIO;
        goto out;
    } else if (view->ov == NULL) {
        rc = -EROFS;
        goto out;
    }
    if (!view_range_ok(view, offset, len)) {
        rc = -EINVAL;
        goto out;
    }
    cur = g_malloc(len > 0 ? len : 1);
    view_wrlock(&view->caw);
    rc = ov_overlay_pread(view->ov, cur, len, offset);
    if (rc == 0) {
        const uint8_t *want = cmp;
        for (size_t i = 0; i < len; i++) {
            if (cur[i] != want[i]) {
                if (miscompare_offset != NULL)
                    *miscompare_offset = i;
                rc = -EILSEQ;
                break;
            }
        }
    }
    if (rc == 0)
        rc = ov_overlay_pwrite(view->ov, data, len, offset, view_ov_flags(flags));
    view_unlock(&view->caw);
out:
    view_unlock(&view->gate);
    view_stat_add(&view->stats.read_ops, 1);
    view_stat_add(&view->stats.write_ops, 1);
    if (rc == 0) {
        view_stat_add(&view->stats.read_bytes, len);
        view_stat_add(&view->stats.write_bytes, len);
    }
    /* A miscompare is an answer, not an I/O error. */
    return rc == -EILSEQ ? rc : view_count(view, rc);
}

/* --- block status --- */

struct view_bs_ctx {
    struct view *view;
    bool base_detail;
    view_extent_fn fn;
    void *user_data;
    bool stopped;
    int rc;
};

static bool
view_bs_base_cb(uint64_t offset, uint64_t length, enum ov_base_extent kind, void *user_data)
{
    struct view_bs_ctx *ctx = user_data;
    enum view_extent_kind k = kind == OV_BASE_ZERO ? VIEW_EXTENT_BASE_ZERO : VIEW_EXTENT_BASE_DATA;

    if (!ctx->fn(offset, length, k, ctx->user_data))
        ctx->stopped = true;
    return !ctx->stopped;
}

/* Base extents of [offset, offset+length): the base's own detail, or one
 * BASE_DATA extent. */
static bool
view_bs_emit_base(struct view_bs_ctx *ctx, uint64_t offset, uint64_t length)
{
    if (!ctx->base_detail) {
        if (!ctx->fn(offset, length, VIEW_EXTENT_BASE_DATA, ctx->user_data))
            ctx->stopped = true;
        return !ctx->stopped;
    }
    ctx->rc = ov_base_block_status(ctx->view->base, offset, length, view_bs_base_cb, ctx);
    return ctx->rc == 0 && !ctx->stopped;
}

static bool
view_bs_ov_cb(uint64_t offset, uint64_t length, enum ov_extent_kind kind, void *user_data)
{
    struct view_bs_ctx *ctx = user_data;

    switch (kind) {
    case OV_EXTENT_DATA:
        if (!ctx->fn(offset, length, VIEW_EXTENT_OVERLAY_DATA, ctx->user_data))
            ctx->stopped = true;
        return !ctx->stopped;
    case OV_EXTENT_ZERO:
        if (!ctx->fn(offset, length, VIEW_EXTENT_OVERLAY_ZERO, ctx->user_data))
            ctx->stopped = true;
        return !ctx->stopped;
    case OV_EXTENT_BASE:
    default:
        return view_bs_emit_base(ctx, offset, length);
    }
}

int
view_block_status(struct view *view, uint64_t offset, uint64_t length, bool base_detail,
                  view_extent_fn fn, void *user_data)
{
    struct view_bs_ctx ctx = {view, base_detail, fn, user_data, false, 0};
    int rc;

    view_rdlock(&view->gate);
    if (view_detached(view))
        rc = -EIO;
    else if (!view_range_ok(view, offset, length))
        rc = -EINVAL;
    else if (length == 0)
        rc = 0;
    else if (view->ov != NULL)
        rc = ov_overlay_block_status(view->ov, offset, length, view_bs_ov_cb, &ctx);
    else {
        view_bs_emit_base(&ctx, offset, length);
        rc = 0;
    }
    view_unlock(&view->gate);
    if (rc == 0)
        rc = ctx.rc;
    return view_count(view, rc);
}

/* --- freeze / swap / thaw --- */

int
view_freeze(struct view *view)
{
    int rc = 0;

    view_wrlock(&view->gate);
    /* Our own flush, not view_flush(): the gate is ours exclusively now. */
    if (view->ov != NULL)
        rc = ov_overlay_flush(view->ov);
    return rc;
}

void
view_swap_overlay(struct view *view, struct ov_overlay *ov_take, struct ov_overlay **old_out)
{
    struct ov_overlay *old = view->ov;

    g_return_if_fail(view->client != NULL);
    view_take_overlay(view, ov_take);
    if (old_out != NULL) {
        *old_out = old;
    } else if (old != NULL) {
        g_autoptr(GError) err = NULL;
        if (!ov_overlay_close(old, &err))
            g_warning("closing the old overlay of client %s: %s", view->client, err->message);
    }
}

void
view_thaw(struct view *view)
{
    view_unlock(&view->gate);
}

struct ov_overlay *
view_detach_overlay(struct view *view)
{
    struct ov_overlay *ov = view->ov;

    view->ov = NULL;
    view->base = NULL;
    return ov;
}

struct ov_overlay *
view_get_overlay(struct view *view)
{
    return view->ov;
}

void
view_get_stats(struct view *view, struct view_stats *out)
{
    out->read_ops = __atomic_load_n(&view->stats.read_ops, __ATOMIC_RELAXED);
    out->read_bytes = __atomic_load_n(&view->stats.read_bytes, __ATOMIC_RELAXED);
    out->write_ops = __atomic_load_n(&view->stats.write_ops, __ATOMIC_RELAXED);
    out->write_bytes = __atomic_load_n(&view->stats.write_bytes, __ATOMIC_RELAXED);
    out->zero_ops = __atomic_load_n(&view->stats.zero_ops, __ATOMIC_RELAXED);
    out->zero_bytes = __atomic_load_n(&view->stats.zero_bytes, __ATOMIC_RELAXED);
    out->flush_ops = __atomic_load_n(&view->stats.flush_ops, __ATOMIC_RELAXED);
    out->errors = __atomic_load_n(&view->stats.errors, __ATOMIC_RELAXED);
}
