/* header.c — the overlay header: layout, encode/decode/verify, creation of a
 * new overlay file, and reading the recorded base identity.
 *
 * The header is written once, when the overlay is created, under a temporary
 * name that is fsynced and then renamed into place (then the directory is
 * fsynced), so a path either does not exist or holds a complete overlay. It
 * is stored twice (offsets 0 and 4096) so that damage to one sector never
 * makes the overlay unreadable; readers use the first valid copy. The only
 * later header write is clearing unknown autoclear feature bits (writes copy
 * 1, syncs, then copy 0, syncs: one copy is valid at every moment).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <glib.h>
#include <glib/gstdio.h>

#include "ov-int.h"

bool
ov_layout_compute(uint64_t size, uint32_t granule, uint64_t *map_blocks, uint64_t *data_offset,
                  GError **error)
{
    uint64_t granules, blocks, map_end;

    if (granule < OV_MIN_GRANULE || granule > OV_MAX_GRANULE || (granule & (granule - 1))) {
        g_set_error(error, OV_ERROR, OV_ERROR_INVALID,
                    "granule size %u is not a power of two between %u and %u", granule,
                    OV_MIN_GRANULE, OV_MAX_GRANULE);
        return false;
    }
    if (size == 0 || size > (UINT64_C(1) << 62)) {
        g_set_error(error, OV_ERROR, OV_ERROR_INVALID,
                    "virtual size %" G_GUINT64_FORMAT " is out of range", size);
        return false;
    }
    granules = (size + granule - 1) / granule;
    blocks = (granules + OV_MAP_GRANULES - 1) / OV_MAP_GRANULES;
    if (blocks > OV_MAX_MAP_BLOCKS) {
        g_set_error(error, OV_ERROR, OV_ERROR_INVALID,
                    "virtual size %" G_GUINT64_FORMAT " needs %" G_GUINT64_FORMAT
                    " map blocks at granule %u (at most %u): use a larger granule",
                    size, blocks, granule, OV_MAX_MAP_BLOCKS);
        return false;
    }
    map_end = OV_MAP_OFFSET + blocks * OV_MAP_BLOCK_BYTES;
    *map_blocks = blocks;
    *data_offset = (map_end + OV_DATA_ALIGN - 1) & ~(uint64_t)(OV_DATA_ALIGN - 1);
    if (size > (uint64_t)G_MAXINT64 - *data_offset) {
        g_set_error(error, OV_ERROR, OV_ERROR_INVALID,
                    "virtual size %" G_GUINT64_FORMAT " is too large for a file", size);
        return false;
    }
    return true;
}

static bool
base_id_valid(const struct ov_base_id *id, GError **error)
{
    size_t n = strnlen(id->image, sizeof(id->image));

    if (n == 0 || n > OV_IMAGE_NAME_MAX) {
        g_set_error(error, OV_ERROR, OV_ERROR_INVALID, "base image name must be 1..%d bytes",
                    OV_IMAGE_NAME_MAX);
        return false;
    }
    return true;
}

bool
ov_header_init(struct ov_header *h, const struct ov_base_id *base_id, uint32_t granule,
               GError **error)
{
    memset(h, 0, sizeof(*h));
    if (!base_id_valid(base_id, error))
        return false;
    if (!ov_layout_compute(base_id->size, granule, &h->map_blocks, &h->data_offset, error))
        return false;
    h->version = OV_FORMAT_VERSION;
    h->size = base_id->size;
    h->granule = granule;
    ov_uuid_generate(h->overlay_uuid);
    h->created = g_get_real_time() / G_USEC_PER_SEC;
    h->base = *base_id;
    h->base.image[OV_IMAGE_NAME_MAX] = '\0';
    return true;
}

void
ov_header_encode(const struct ov_header *h, uint8_t out[OV_HEADER_SIZE])
{
    struct ov_disk_header d;

    memset(&d, 0, sizeof(d));
    memcpy(d.magic, OV_HEADER_MAGIC, 8);
    d.version = GUINT32_TO_LE(h->version);
    d.header_size = GUINT32_TO_LE(OV_HEADER_SIZE);
    d.incompat = GUINT64_TO_LE(h->incompat);
    d.compat = GUINT64_TO_LE(h->compat);
    d.autoclear = GUINT64_TO_LE(h->autoclear);
    d.virtual_size = GUINT64_TO_LE(h->size);
    d.granule = GUINT32_TO_LE(h->granule);
    d.map_granules = GUINT32_TO_LE(OV_MAP_GRANULES);
    d.map_offset = GUINT64_TO_LE(OV_MAP_OFFSET);
    d.map_blocks = GUINT64_TO_LE(h->map_blocks);
    d.data_offset = GUINT64_TO_LE(h->data_offset);
    memcpy(d.overlay_uuid, h->overlay_uuid, OV_UUID_LEN);
    d.created = GINT64_TO_LE(h->created);
    memcpy(d.base_image, h->base.image, strnlen(h->base.image, sizeof(d.base_image) - 1));
    d.base_generation = GUINT32_TO_LE(h->base.generation);
    d.base_size = GUINT64_TO_LE(h->base.size);
    memcpy(d.base_uuid, h->base.uuid, OV_UUID_LEN);
    d.crc = GUINT32_TO_LE(ov_crc32c(0, &d, G_STRUCT_OFFSET(struct ov_disk_header, crc)));
    memcpy(out, &d, OV_HEADER_SIZE);
}

static bool
corrupt(GError **error, const char *what)
{
    g_set_error(error, OV_ERROR, OV_ERROR_CORRUPT, "overlay header: %s", what);
    return false;
}

bool
ov_header_decode(const uint8_t in[OV_HEADER_SIZE], struct ov_header *h, GError **error)
{
    struct ov_disk_header d;
    uint64_t map_blocks, data_offset;
    uint64_t unknown;

    memcpy(&d, in, sizeof(d));
    if (memcmp(d.magic, OV_HEADER_MAGIC, 8) != 0)
        return corrupt(error, "bad magic (not an ovgate overlay)");
    if (GUINT32_FROM_LE(d.crc) != ov_crc32c(0, in, G_STRUCT_OFFSET(struct ov_disk_header, crc)))
        return corrupt(error, "checksum mismatch");
    memset(h, 0, sizeof(*h));
    h->version = GUINT32_FROM_LE(d.version);
    if (h->version > OV_FORMAT_VERSION) {
        g_set_error(error, OV_ERROR, OV_ERROR_UNSUPPORTED,
                    "overlay format version %u is newer than this program (%u)", h->version,
                    OV_FORMAT_VERSION);
        return false;
    }
    if (h->version == 0)
        return corrupt(error, "version 0");
    if (GUINT32_FROM_LE(d.header_size) != OV_HEADER_SIZE)
        return corrupt(error, "wrong header size");
    h->incompat = GUINT64_FROM_LE(d.incompat);
    h->compat = GUINT64_FROM_LE(d.compat);
    h->autoclear = GUINT64_FROM_LE(d.autoclear);
    unknown = h->incompat & ~OV_INCOMPAT_KNOWN;
    if (unknown) {
        g_set_error(error, OV_ERROR, OV_ERROR_UNSUPPORTED,
                    "overlay uses unknown incompatible features 0x%" G_GINT64_MODIFIER "x",
                    unknown);
        return false;
    }
    h->size = GUINT64_FROM_LE(d.virtual_size);
    h->granule = GUINT32_FROM_LE(d.granule);
    h->map_blocks = GUINT64_FROM_LE(d.map_blocks);
    h->data_offset = GUINT64_FROM_LE(d.data_offset);
    if (GUINT32_FROM_LE(d.map_granules) != OV_MAP_GRANULES ||
        GUINT64_FROM_LE(d.map_offset) != OV_MAP_OFFSET)
        return corrupt(error, "unexpected map geometry");
    if (!ov_layout_compute(h->size, h->granule, &map_blocks, &data_offset, NULL))
        return corrupt(error, "size or granule out of range");
    if (map_blocks != h->map_blocks || data_offset != h->data_offset)
        return corrupt(error, "map/data offsets inconsistent with the size");
    memcpy(h->overlay_uuid, d.overlay_uuid, OV_UUID_LEN);
    h->created = GINT64_FROM_LE(d.created);
    if (d.base_image[sizeof(d.base_image) - 1] != '\0' || d.base_image[0] == '\0')
        return corrupt(error, "bad base image name");
    memcpy(h->base.image, d.base_image, sizeof(h->base.image));
    h->base.generation = GUINT32_FROM_LE(d.base_generation);
    h->base.size = GUINT64_FROM_LE(d.base_size);
    memcpy(h->base.uuid, d.base_uuid, OV_UUID_LEN);
    if (h->base.size != h->size)
        return corrupt(error, "base size differs from virtual size");
    return true;
}

bool
ov_header_read(int fd, struct ov_header *h, unsigned *good, GError **error)
{
    uint8_t buf[2][OV_HEADER_SIZE];
    g_autoptr(GError) first = NULL;
    bool have = false;

    *good = 0;
    for (unsigned c = 0; c < 2; c++) {
        struct ov_header tmp;
        g_autoptr(GError) err = NULL;
        int r = ov_sys_pread(fd, buf[c], OV_HEADER_SIZE, (uint64_t)c * OV_HEADER_COPY_STRIDE, true);

        if (r < 0) {
            ov_set_error_errno(error, r, "reading overlay header");
            return false;
        }
        if (!ov_header_decode(buf[c], &tmp, &err)) {
            if (g_error_matches(err, OV_ERROR, OV_ERROR_UNSUPPORTED)) {
                g_propagate_error(error, g_steal_pointer(&err));
                return false;
            }
            if (!first)
                first = g_steal_pointer(&err);
            continue;
        }
        *good |= 1u << c;
        if (!have) {
            *h = tmp;
            have = true;
        }
    }
    if (!have) {
        g_propagate_error(error, g_steal_pointer(&first));
        return false;
    }
    return true;
}

bool
ov_header_write(int fd, const struct ov_header *h, GError **error)
{
    uint8_t buf[OV_HEADER_SIZE];

    ov_header_encode(h, buf);
    for (int c = 1; c >= 0; c--) {
        if (pwrite(fd, buf, OV_HEADER_SIZE, (off_t)c * OV_HEADER_COPY_STRIDE) !=
            (ssize_t)OV_HEADER_SIZE) {
            ov_set_error_errno(error, errno ? errno : EIO, "writing overlay header");
            return false;
        }
        if (fdatasync(fd) < 0) {
            ov_set_error_errno(error, errno, "syncing overlay header");
            return false;
        }
    }
    return true;
}

bool
ov_base_id_equal(const struct ov_base_id *a, const struct ov_base_id *b)
{
    return strncmp(a->image, b->image, sizeof(a->image)) == 0 && a->generation == b->generation &&
           a->size == b->size && memcmp(a->uuid, b->uuid, OV_UUID_LEN) == 0;
}

static bool
fsync_dir_of(const char *path, GError **error)
{
    g_autofree char *dir = g_path_get_dirname(path);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (dfd < 0 || fsync(dfd) < 0) {
        int err = errno;
        if (dfd >= 0)
            close(dfd);
        ov_set_error_errno(error, err, "syncing directory %s", dir);
        return false;
    }
    close(dfd);
    return true;
}

static bool
write_new_file(int fd, const struct ov_header *h, GError **error)
{
    uint8_t buf[OV_HEADER_SIZE];

    ov_header_encode(h, buf);
    for (unsigned c = 0; c < 2; c++) {
        if (pwrite(fd, buf, OV_HEADER_SIZE, (off_t)c * OV_HEADER_COPY_STRIDE) !=
            (ssize_t)OV_HEADER_SIZE) {
            ov_set_error_errno(error, errno ? errno : EIO, "writing overlay header");
            return false;
        }
    }
    if (ftruncate(fd, (off_t)(h->data_offset + h->size)) < 0) {
        ov_set_error_errno(error, errno, "sizing overlay file");
        return false;
    }
    if (fsync(fd) < 0) {
        ov_set_error_errno(error, errno, "syncing overlay file");
        return false;
    }
    return true;
}

static bool
move_into_place(const char *tmp, const char *path, bool replace, GError **error)
{
    if (replace) {
        if (rename(tmp, path) == 0)
            return true;
    } else {
        if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) == 0)
            return true;
        /* Filesystems without RENAME_NOREPLACE: link() also refuses an
         * existing target and is just as atomic. */
        if ((errno == EINVAL || errno == ENOSYS) && link(tmp, path) == 0) {
            unlink(tmp);
            return true;
        }
    }
    if (errno == EEXIST)
        g_set_error(error, OV_ERROR, OV_ERROR_EXISTS, "overlay %s already exists", path);
    else
        ov_set_error_errno(error, errno, "moving new overlay to %s", path);
    return false;
}

bool
ov_overlay_create(const char *path, const struct ov_base_id *base_id, uint32_t granule,
                  bool replace, GError **error)
{
    struct ov_header h;
    g_autofree char *tmp = g_strdup_printf("%s.tmp-XXXXXX", path);
    int fd;
    bool ok;

    if (granule == 0)
        granule = OV_DEFAULT_GRANULE;
    if (!ov_header_init(&h, base_id, granule, error))
        return false;
    if (!replace && g_file_test(path, G_FILE_TEST_EXISTS)) {
        g_set_error(error, OV_ERROR, OV_ERROR_EXISTS, "overlay %s already exists", path);
        return false;
    }
    fd = g_mkstemp_full(tmp, O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) {
        ov_set_error_errno(error, errno, "creating %s", tmp);
        return false;
    }
    ok = write_new_file(fd, &h, error);
    close(fd);
    ok = ok && move_into_place(tmp, path, replace, error);
    if (!ok) {
        unlink(tmp);
        g_prefix_error(error, "creating overlay %s: ", path);
        return false;
    }
    return fsync_dir_of(path, error);
}

bool
ov_overlay_read_base_id(const char *path, struct ov_base_id *out, GError **error)
{
    struct ov_header h;
    unsigned good;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    bool ok;

    if (fd < 0) {
        ov_set_error_errno(error, errno, "opening overlay %s", path);
        return false;
    }
    ok = ov_header_read(fd, &h, &good, error);
    close(fd);
    if (!ok) {
        g_prefix_error(error, "%s: ", path);
        return false;
    }
    *out = h.base;
    return true;
}
