/* overlay.c — the lifecycle of an open overlay: open (lock, header, base
 * identity, map load), info, close.
 *
 * Lifecycle: open -> (I/O)* -> close. A writer holds an exclusive OFD lock
 * (fcntl F_OFD_SETLK, whole file) for as long as the overlay is open; the
 * lock belongs to the open file description, so a second open in the same
 * process is refused just like one from another process, and the kernel
 * drops it when the descriptor is closed (also on crash). Readers
 * (OV_OPEN_READ_ONLY) take a shared lock so they can coexist with each other
 * but not with a writer; OV_OPEN_NO_LOCK takes none.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <glib.h>

#include "ov-int.h"

G_GNUC_UNUSED static bool
ov_overlay_check_invariants(struct ov_overlay *ov)
{
    if (ov->fd < 0 || !ov->base || ov->base->size != ov->hdr.size)
        return false;
    if ((UINT64_C(1) << ov->granule_shift) != ov->hdr.granule)
        return false;
    if (ov->n_granules != (ov->hdr.size + ov->hdr.granule - 1) / ov->hdr.granule ||
        (ov->n_granules + OV_MAP_GRANULES - 1) / OV_MAP_GRANULES != ov->hdr.map_blocks)
        return false;
    for (uint64_t b = 0; b < ov->hdr.map_blocks; b++) {
        /* A corrupt block is never loaded nor changed; slots are 0 or 1. */
        if ((ov->bad[b] && __atomic_load_n(&ov->blocks[b], __ATOMIC_ACQUIRE)) ||
            ov->cur_slot[b] > 1)
            return false;
    }
    return true;
}

static bool
take_lock(int fd, bool exclusive, const char *path, GError **error)
{
    struct flock fl = {
        .l_type = exclusive ? F_WRLCK : F_RDLCK,
        .l_whence = SEEK_SET,
        .l_start = 0,
        .l_len = 0,
    };

    if (fcntl(fd, F_OFD_SETLK, &fl) == 0)
        return true;
    if (errno == EAGAIN || errno == EACCES) {
        g_set_error(error, OV_ERROR, OV_ERROR_LOCKED,
                    "overlay %s is in use by %s (is the client connected, or another ovctl "
                    "running?)",
                    path, exclusive ? "another user" : "a writer");
        return false;
    }
    ov_set_error_errno(error, errno, "locking overlay %s", path);
    return false;
}

static bool
check_base(struct ov_overlay *ov, struct ov_base *base, GError **error)
{
    const struct ov_base_id *want = &ov->hdr.base;
    char w[37], h[37];

    ov_uuid_format(want->uuid, w);
    if (base->has_id && !ov_base_id_equal(&base->id, want)) {
        ov_uuid_format(base->id.uuid, h);
        g_set_error(error, OV_ERROR, OV_ERROR_WRONG_BASE,
                    "overlay %s sits on %s generation %u (%" G_GUINT64_FORMAT " bytes, uuid %s),"
                    " not on %s generation %u (%" G_GUINT64_FORMAT " bytes, uuid %s)",
                    ov->path, want->image, want->generation, want->size, w, base->id.image,
                    base->id.generation, base->id.size, h);
        return false;
    }
    if (base->size != ov->hdr.size) {
        g_set_error(error, OV_ERROR, OV_ERROR_WRONG_BASE,
                    "overlay %s sits on %s generation %u (%" G_GUINT64_FORMAT " bytes), "
                    "but base %s has %" G_GUINT64_FORMAT " bytes",
                    ov->path, want->image, want->generation, want->size, base->description,
                    base->size);
        return false;
    }
    return true;
}

static void
overlay_free(struct ov_overlay *ov)
{
    ov_map_free(ov);
    if (ov->fd >= 0)
        close(ov->fd); /* also drops the OFD lock */
    ov_base_unref(ov->base);
    pthread_mutex_destroy(&ov->dirty_lock);
    pthread_mutex_destroy(&ov->flush_lock);
    for (unsigned s = 0; s < OV_STRIPES; s++)
        pthread_mutex_destroy(&ov->stripes[s]);
    g_free(ov->zero_buf);
    g_free(ov->path);
    g_free(ov);
}

static struct ov_overlay *
overlay_new(const char *path, bool read_only)
{
    struct ov_overlay *ov = g_new0(struct ov_overlay, 1);

    ov->path = g_strdup(path);
    ov->fd = -1;
    ov->read_only = read_only;
    pthread_mutex_init(&ov->dirty_lock, NULL);
    pthread_mutex_init(&ov->flush_lock, NULL);
    for (unsigned s = 0; s < OV_STRIPES; s++)
        pthread_mutex_init(&ov->stripes[s], NULL);
    return ov;
}

/* Writers clear autoclear bits they do not know (docs/overlay-format.md). */
static bool
clear_unknown_autoclear(struct ov_overlay *ov, GError **error)
{
    if (ov->read_only || !(ov->hdr.autoclear & ~OV_AUTOCLEAR_KNOWN))
        return true;
    ov->hdr.autoclear &= OV_AUTOCLEAR_KNOWN;
    return ov_header_write(ov->fd, &ov->hdr, error);
}

static bool
open_steps(struct ov_overlay *ov, struct ov_base *base, unsigned flags, GError **error)
{
    unsigned good;
    struct stat st;

    ov->fd = open(ov->path, (ov->read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
    if (ov->fd < 0) {
        ov_set_error_errno(error, errno, "opening overlay %s", ov->path);
        return false;
    }
    if (!(flags & OV_OPEN_NO_LOCK) && !take_lock(ov->fd, !ov->read_only, ov->path, error))
        return false;
    if (!ov_header_read(ov->fd, &ov->hdr, &good, error)) {
        g_prefix_error(error, "%s: ", ov->path);
        return false;
    }
    if (good != 3)
        g_warning("overlay %s: header copy %u is damaged; 'ovctl check --repair' rewrites it",
                  ov->path, good == 1 ? 1u : 0u);
    if (!check_base(ov, base, error))
        return false;
    if (!clear_unknown_autoclear(ov, error))
        return false;
    ov->granule_shift = (unsigned)g_bit_nth_lsf(ov->hdr.granule, -1);
    ov->n_granules = (ov->hdr.size + ov->hdr.granule - 1) >> ov->granule_shift;
    ov->zero_buf = g_malloc0(ov->hdr.granule);
    if (!ov_map_alloc(ov)) {
        g_set_error(error, OV_ERROR, OV_ERROR_FAILED, "overlay %s: out of memory for the map",
                    ov->path);
        return false;
    }
    if (!ov_map_load(ov, error)) {
        g_prefix_error(error, "%s: ", ov->path);
        return false;
    }
    if (fstat(ov->fd, &st) == 0 && (uint64_t)st.st_size < ov->hdr.data_offset + ov->hdr.size) {
        /* Truncated behind our back: DATA granules past the end read -EIO. */
        __atomic_store_n(&ov->corrupt, 1, __ATOMIC_RELAXED);
        g_warning("overlay %s: file is shorter than its data region; run 'ovctl check'", ov->path);
    }
    return true;
}

struct ov_overlay *
ov_overlay_open(const char *path, struct ov_base *base, unsigned flags, GError **error)
{
    struct ov_overlay *ov = overlay_new(path, (flags & OV_OPEN_READ_ONLY) != 0);

    if (!open_steps(ov, base, flags, error)) {
        overlay_free(ov);
        return NULL;
    }
    ov->base = ov_base_ref(base);
    assert(ov_overlay_check_invariants(ov));
    return ov;
}

bool
ov_overlay_close(struct ov_overlay *ov, GError **error)
{
    int r;

    if (!ov)
        return true;
    r = ov_overlay_flush(ov);
    assert(ov_overlay_check_invariants(ov));
    overlay_free(ov);
    if (r < 0) {
        ov_set_error_errno(error, r, "flushing overlay on close");
        return false;
    }
    return true;
}

void
ov_overlay_get_info(struct ov_overlay *ov, struct ov_overlay_info *info)
{
    struct stat st;

    memset(info, 0, sizeof(*info));
    info->size = ov->hdr.size;
    info->granule = ov->hdr.granule;
    info->format_version = ov->hdr.version;
    info->base = ov->hdr.base;
    ov_map_count(ov, &info->data_granules, &info->zero_granules);
    if (fstat(ov->fd, &st) == 0)
        info->file_bytes = (uint64_t)st.st_blocks * 512;
    info->corrupt = __atomic_load_n(&ov->corrupt, __ATOMIC_RELAXED) != 0;
}

struct ov_base *
ov_overlay_get_base(struct ov_overlay *ov)
{
    return ov->base;
}

const char *
ov_overlay_get_path(struct ov_overlay *ov)
{
    return ov->path;
}
