/* file.c — the local-file base source (base.h).
 *
 * One read-only descriptor per opened base, shared by every overlay that
 * references it: pread on one descriptor is thread-safe and all clients read
 * through the same page cache, which is what makes a boot storm cheap (one
 * copy of the boot files in memory however many clients read them).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <glib.h>

#include "base.h"

struct base_file {
    struct ov_base base; /* first: the ov_base pointer is the base_file pointer */
};

static int
base_file_pread(struct ov_base *base, void *buf, size_t len, uint64_t offset)
{
    uint8_t *p = buf;

    while (len > 0) {
        ssize_t n = pread(base->fd, p, len, (off_t)offset);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            return -EIO; /* the file shrank under us: never invent bytes */
        p += n;
        len -= (size_t)n;
        offset += (uint64_t)n;
    }
    return 0;
}

static int
base_file_block_status(struct ov_base *base, uint64_t offset, uint64_t length, ov_base_extent_fn fn,
                       void *user_data)
{
    uint64_t end = offset + length;

    while (offset < end) {
        off_t data = lseek(base->fd, (off_t)offset, SEEK_DATA);
        uint64_t next;

        if (data < 0) {
            if (errno == ENXIO) { /* only a hole up to EOF */
                fn(offset, end - offset, OV_BASE_ZERO, user_data);
                return 0;
            }
            if (errno == EINVAL || errno == EOPNOTSUPP) { /* no SEEK_DATA: all data */
                fn(offset, end - offset, OV_BASE_DATA, user_data);
                return 0;
            }
            return -errno;
        }
        if ((uint64_t)data > offset) {
            next = MIN((uint64_t)data, end);
            if (!fn(offset, next - offset, OV_BASE_ZERO, user_data))
                return 0;
            offset = next;
            continue;
        }
        off_t hole = lseek(base->fd, (off_t)offset, SEEK_HOLE);
        if (hole < 0)
            return -errno;
        next = MIN((uint64_t)hole, end);
        if (!fn(offset, next - offset, OV_BASE_DATA, user_data))
            return 0;
        offset = next;
    }
    return 0;
}

static void
base_file_prefetch(struct ov_base *base, uint64_t offset, uint64_t len)
{
    (void)posix_fadvise(base->fd, (off_t)offset, (off_t)len, POSIX_FADV_WILLNEED);
}

static void
base_file_destroy(struct ov_base *base)
{
    close(base->fd);
    g_free(base); /* struct base_file starts with its ov_base */
}

static const struct ov_base_ops base_file_ops = {
    .name = "file",
    .pread = base_file_pread,
    .block_status = base_file_block_status,
    .prefetch = base_file_prefetch,
    .destroy = base_file_destroy,
};

struct ov_base *
base_file_open(const char *path, GError **error)
{
    struct base_file *bf;
    g_autofree char *desc = NULL;
    struct stat st;
    uint64_t size;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        int err = errno;
        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(err), "opening base image %s: %s",
                    path, g_strerror(err));
        return NULL;
    }
    if (fstat(fd, &st) < 0)
        goto fail;
    if (S_ISBLK(st.st_mode)) {
        if (ioctl(fd, BLKGETSIZE64, &size) < 0)
            goto fail;
    } else if (S_ISREG(st.st_mode)) {
        size = (uint64_t)st.st_size;
    } else {
        errno = EINVAL;
        goto fail;
    }
    if (size == 0) {
        close(fd);
        g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL, "base image %s is empty", path);
        return NULL;
    }
    bf = g_new0(struct base_file, 1);
    desc = g_strdup_printf("file:%s", path);
    ov_base_init(&bf->base, &base_file_ops, size, fd, desc);
    return &bf->base;

fail : {
    int err = errno;
    close(fd);
    g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(err), "base image %s: %s", path,
                err == EINVAL ? "not a regular file or block device" : g_strerror(err));
    return NULL;
}
}
