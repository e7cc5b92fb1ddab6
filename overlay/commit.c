/* commit.c — building generation files: copying a raw file or a base into
 * a new generation, and commit (base + a client's overlay -> new head
 * generation). See store.h and docs/store.md.
 *
 * Copy strategy, cheapest first:
 *   1. ioctl FICLONE: the filesystem shares the extents (btrfs, XFS with
 *      reflink); instant, no space used until either copy is written.
 *   2. copy_file_range over the source's data extents only (found with
 *      SEEK_DATA/SEEK_HOLE), so holes stay holes; the kernel may still
 *      reflink or copy server-side.
 *   3. read/write in 1 MiB chunks, skipping all-zero chunks (they stay holes
 *      in the pre-sized destination).
 * A base without a local fd is copied with ov_base_block_status + pread.
 *
 * Commit state machine (one call, no state survives it):
 *
 *   HOLD      overlay opened as writer (or handed in by the daemon, quiesced)
 *     | build_gen()        copy base into STORE/tmp/commit-XXXXXX (no store lock)
 *   BUILT     apply DATA extents (pwrite) and ZERO extents (punch holes), fsync
 *     | publish()          store lock: rename to gen/N.raw, write N.conf,
 *   PUBLISHED              image.conf head = N, replace the client's overlay
 *     |                    with an empty one on N; undo in reverse on failure
 *   DONE
 *
 * Crash between the steps of publish leaves either an unreferenced N.raw /
 * N.conf (gc removes it) or a new head with the client still on its old
 * overlay (consistent: the client reads what it read before).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib.h>

#include "store-int.h"

#define COPY_CHUNK (1u << 20)

static bool
pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return false;
        }
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return true;
}

static bool
pread_all(int fd, void *buf, size_t len, uint64_t off)
{
    char *p = buf;
    while (len > 0) {
        ssize_t n = pread(fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EIO; /* the source shrank under us */
            return false;
        }
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return true;
}

static bool
is_zero(const uint8_t *buf, size_t len)
{
    return len == 0 || (buf[0] == 0 && memcmp(buf, buf + 1, len - 1) == 0);
}

/* read/write one range, leaving all-zero chunks as holes. */
static bool
copy_rw(int src, int dst, uint64_t off, uint64_t len, uint8_t *buf, GError **error)
{
    while (len > 0) {
        size_t n = len < COPY_CHUNK ? (size_t)len : COPY_CHUNK;
        if (!pread_all(src, buf, n, off))
            return store_fail_errno(error, errno, "cannot read the source at %" PRIu64, off);
        if (!is_zero(buf, n) && !pwrite_all(dst, buf, n, off))
            return store_fail_errno(error, errno, "cannot write the new generation");
        off += n;
        len -= n;
    }
    return true;
}

/* copy_file_range one range; *fallback set when the kernel/filesystem
 * cannot do it (the caller switches to read/write). */
static bool
copy_range(int src, int dst, uint64_t off, uint64_t len, bool *fallback, GError **error)
{
    while (len > 0) {
        off64_t in = (off64_t)off, out = (off64_t)off;
        size_t n = len < (1u << 30) ? (size_t)len : (1u << 30);
        ssize_t done = copy_file_range(src, &in, dst, &out, n, 0);
        if (done < 0 && errno == EINTR)
            continue;
        if (done < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS ||
                         errno == EOPNOTSUPP || errno == EBADF)) {
            *fallback = true;
            return true;
        }
        if (done < 0)
            return store_fail_errno(error, errno, "cannot copy into the new generation");
        if (done == 0) {
            g_set_error(error, OV_ERROR, OV_ERROR_FAILED, "the source ended early at %" PRIu64,
                        off);
            return false;
        }
        off += (uint64_t)done;
        len -= (uint64_t)done;
    }
    return true;
}

/* Next data extent at or after off: [*start, *end). false at the end. When
 * the source does not report holes, everything is one data extent. */
static bool
next_data(int src, uint64_t off, uint64_t size, uint64_t *start, uint64_t *end)
{
    off_t s = lseek(src, (off_t)off, SEEK_DATA);
    if (s < 0) {
        if (errno == ENXIO)
            return false; /* only a hole is left */
        *start = off;     /* no SEEK_DATA support: treat as data */
        *end = size;
        return off < size;
    }
    off_t e = lseek(src, s, SEEK_HOLE);
    *start = (uint64_t)s;
    *end = e < 0 || (uint64_t)e > size ? size : (uint64_t)e;
    return *start < size;
}

bool
store_copy_fd(int src, int dst, uint64_t size, GError **error)
{
    int err = store_fault("copy");
    if (err)
        return store_fail_errno(error, err, "cannot copy into the new generation");
    if (ioctl(dst, FICLONE, src) == 0)
        return true;
    bool fallback = false;
    g_autofree uint8_t *buf = NULL;
    uint64_t off = 0, start, end;
    while (off < size && next_data(src, off, size, &start, &end)) {
        if (!fallback && !copy_range(src, dst, start, end - start, &fallback, error))
            return false;
        if (fallback) {
            if (!buf)
                buf = g_malloc(COPY_CHUNK);
            if (!copy_rw(src, dst, start, end - start, buf, error))
                return false;
        }
        off = end;
    }
    /* Last, so that a trailing hole stays a hole. */
    if (ftruncate(dst, (off_t)size) < 0)
        return store_fail_errno(error, errno, "cannot size the new generation");
    return true;
}

/* ------------------------------------------------------ copy from a base */

struct base_copy {
    struct ov_base *base;
    int dst;
    uint8_t *buf;
    int err;
};

static bool
base_copy_extent(uint64_t offset, uint64_t length, enum ov_base_extent kind, void *user_data)
{
    struct base_copy *bc = user_data;
    if (kind == OV_BASE_ZERO)
        return true; /* the destination is pre-sized: a hole */
    while (length > 0) {
        size_t n = length < COPY_CHUNK ? (size_t)length : COPY_CHUNK;
        int r = ov_base_pread(bc->base, bc->buf, n, offset);
        if (r < 0) {
            bc->err = -r;
            return false;
        }
        if (!is_zero(bc->buf, n) && !pwrite_all(bc->dst, bc->buf, n, offset)) {
            bc->err = errno;
            return false;
        }
        offset += n;
        length -= n;
    }
    return true;
}

static bool
copy_base(struct ov_base *base, int dst, GError **error)
{
    if (base->fd >= 0)
        return store_copy_fd(base->fd, dst, base->size, error);
    if (ftruncate(dst, (off_t)base->size) < 0)
        return store_fail_errno(error, errno, "cannot size the new generation");
    struct base_copy bc = {.base = base, .dst = dst, .buf = g_malloc(COPY_CHUNK)};
    int r = ov_base_block_status(base, 0, base->size, base_copy_extent, &bc);
    g_free(bc.buf);
    if (r < 0 || bc.err)
        return store_fail_errno(error, bc.err ? bc.err : -r, "cannot copy base %s",
                                base->description ? base->description : "");
    return true;
}

/* ------------------------------------------------ apply overlay extents */

struct apply {
    struct ov_overlay *ov;
    int dst;
    uint8_t *buf;
    int err;
    const char *what;
};

static bool
apply_extent(uint64_t offset, uint64_t length, enum ov_extent_kind kind, void *user_data)
{
    struct apply *a = user_data;
    if (kind == OV_EXTENT_BASE)
        return true;
    if (kind == OV_EXTENT_ZERO) {
        if (fallocate(a->dst, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)offset,
                      (off_t)length) == 0)
            return true;
        if (errno != EOPNOTSUPP) {
            a->err = errno;
            a->what = "cannot punch a hole in the new generation";
            return false;
        }
        memset(a->buf, 0, COPY_CHUNK); /* no hole punching here: write zeros */
    }
    while (length > 0) {
        size_t n = length < COPY_CHUNK ? (size_t)length : COPY_CHUNK;
        if (kind == OV_EXTENT_DATA) {
            int r = ov_overlay_pread(a->ov, a->buf, n, offset);
            if (r < 0) {
                a->err = -r;
                a->what = "cannot read the overlay";
                return false;
            }
        }
        if (!pwrite_all(a->dst, a->buf, n, offset)) {
            a->err = errno;
            a->what = "cannot write the new generation";
            return false;
        }
        offset += n;
        length -= n;
    }
    return true;
}

/* Build the new generation's bytes in an open temporary file. */
static bool
build_gen(struct ov_overlay *ov, int dst, GError **error)
{
    struct ov_base *base = ov_overlay_get_base(ov);
    if (!copy_base(base, dst, error))
        return false;
    int err = store_fault("apply");
    if (err)
        return store_fail_errno(error, err, "cannot write the new generation");
    struct apply a = {.ov = ov, .dst = dst, .buf = g_malloc(COPY_CHUNK)};
    int r = ov_overlay_block_status(ov, 0, base->size, apply_extent, &a);
    g_free(a.buf);
    if (a.err)
        return store_fail_errno(error, a.err, "%s", a.what);
    if (r < 0)
        return store_fail_errno(error, -r, "cannot read the overlay's map");
    if (fsync(dst) < 0)
        return store_fail_errno(error, errno, "cannot sync the new generation");
    if (fchmod(dst, 0444) < 0)
        return store_fail_errno(error, errno, "cannot make the new generation read-only");
    return true;
}

/* --------------------------------------------------------------- publish */

struct publish {
    const char *client;
    const char *image;
    const char *overlay_path;
    uint32_t granule;
    uint64_t size;
    uint32_t gen; /* out */
};

/* After a failed ov_overlay_create(replace): did the new overlay land anyway
 * (only the directory sync failed)? Then the commit must not be undone, or
 * the client would sit on a generation that no longer exists. */
static bool
overlay_moved(const char *path, const struct ov_base_id *id)
{
    struct ov_base_id now;
    return ov_overlay_read_base_id(path, &now, NULL) && now.generation == id->generation &&
           memcmp(now.uuid, id->uuid, OV_UUID_LEN) == 0;
}

/* The next generation number: above every existing one, skipping numbers
 * held by an orphan N.raw (left by a crash; gc removes it). *raw is its path. */
static bool
pick_generation(struct ov_store *store, const char *image, uint32_t head, uint32_t *gen, char **raw,
                GError **error)
{
    struct ov_image_info *img = ov_store_image_get(store, image, error);
    if (!img)
        return false;
    uint32_t n = head;
    for (guint i = 0; i < img->generations->len; i++) {
        struct ov_generation_info *g = img->generations->pdata[i];
        n = MAX(n, g->generation);
    }
    ov_image_info_free(img);
    do {
        if (n == UINT32_MAX) {
            g_set_error(error, OV_ERROR, OV_ERROR_FAILED,
                        "image '%s' has no generation numbers left", image);
            return false;
        }
        n++;
        g_free(*raw);
        *raw = store_gen_path(store, image, n, "raw");
    } while (g_file_test(*raw, G_FILE_TEST_EXISTS));
    *gen = n;
    return true;
}

/* Under the store lock: move tmp_path into place as the next generation,
 * make it the head, and move the client onto it. Undone in reverse order on
 * failure. */
static bool
publish(struct ov_store *store, struct publish *p, const char *tmp_path, GError **error)
{
    uint32_t head;
    bool auto_enroll;
    gint64 created;
    if (!store_image_read_conf(store, p->image, &head, &auto_enroll, &created, error))
        return false;
    uint32_t gen;
    g_autofree char *raw = NULL;
    if (!pick_generation(store, p->image, head, &gen, &raw, error))
        return false;
    g_autofree char *image_dir = store_image_dir(store, p->image);
    g_autofree char *conf = store_gen_path(store, p->image, gen, "conf");
    g_autofree char *source = g_strdup_printf("commit:%s", p->client);
    struct ov_generation_info info = {.generation = gen, .size = p->size};
    ov_uuid_generate(info.uuid);
    gint64 now = g_get_real_time() / G_USEC_PER_SEC;
    struct ov_base_id id;
    store_base_id_set(&id, p->image, &info);

    if (!store_rename_noreplace(tmp_path, raw, error)) {
        if (!g_file_test(tmp_path, G_FILE_TEST_EXISTS))
            unlink(raw); /* it moved; only a directory sync failed */
        return false;
    }
    if (!store_gen_write_conf(image_dir, gen, info.uuid, p->size, now, source, error))
        goto undo_conf; /* like every write below: it may have landed, unsynced */
    if (!store_image_write_conf(store, image_dir, gen, auto_enroll, created, error))
        goto undo_head;
    if (!store_overlay_create(p->overlay_path, &id, p->granule, true, error) &&
        !overlay_moved(p->overlay_path, &id))
        goto undo_head;
    g_clear_error(error); /* moved: only syncing its directory failed */
    p->gen = gen;
    return true;

undo_head:
    store_image_write_conf(store, image_dir, head, auto_enroll, created, NULL);
undo_conf:
    unlink(conf);
    unlink(raw);
    store_fsync_parent(raw, NULL);
    return false;
}

static bool
same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

bool
ov_store_client_commit(struct ov_store *store, const char *name, struct ov_overlay *ov,
                       uint32_t *new_generation, GError **error)
{
    struct ov_client_info *c = ov_store_client_get(store, name, error);
    if (!c)
        return false;
    struct ov_overlay *own = NULL;
    if (!ov) {
        own = ov_store_client_open_overlay(store, name, 0, error);
        if (!own && error && *error && (*error)->code == OV_ERROR_LOCKED) {
            g_clear_error(error);
            g_set_error(error, OV_ERROR, OV_ERROR_LOCKED,
                        "client '%s' is connected (its overlay is held by a writer)", name);
        }
        ov = own;
    }
    bool ok = ov != NULL;
    struct ov_overlay_info oi;
    if (ok) {
        ov_overlay_get_info(ov, &oi);
        if (strcmp(oi.base.image, c->image) != 0 ||
            !same_file(ov_overlay_get_path(ov), c->overlay_path)) {
            g_set_error(error, OV_ERROR, OV_ERROR_INVALID,
                        "the overlay given is not client '%s''s overlay", name);
            ok = false;
        }
    }
    struct store_tmp tmp = {.fd = -1};
    ok = ok && store_tmp_file(store, "commit", false, &tmp, error) && build_gen(ov, tmp.fd, error);
    if (ok) {
        struct publish p = {.client = name,
                            .image = c->image,
                            .overlay_path = c->overlay_path,
                            .granule = oi.granule,
                            .size = oi.size};
        int lock = store_lock(store, true, error);
        ok = lock >= 0 && publish(store, &p, tmp.path, error);
        store_unlock(lock);
        if (ok && new_generation)
            *new_generation = p.gen;
    }
    if (ok)
        store_tmp_release(&tmp);
    else
        store_tmp_discard(&tmp);
    if (!ok)
        g_prefix_error(error, "cannot commit client '%s': ", name);
    ov_overlay_close(own, NULL);
    ov_client_info_free(c);
    return ok;
}
