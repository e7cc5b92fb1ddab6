/* sys.c — the write-side system calls on an overlay file, in one place so
 * that (1) EDQUOT is reported as ENOSPC everywhere (the daemon maps ENOSPC to
 * the protocols' "out of space" errors) and (2) the crash and fault tests can
 * intercept every write, sync and hole punch through one hook. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <linux/falloc.h>

#include "ov-int.h"

static int
norm_errno(int err)
{
    return err == EDQUOT ? -ENOSPC : -err;
}

static int
fault(struct ov_overlay *ov, enum ov_fault_op op, uint64_t offset, uint64_t len)
{
    if (!ov->fault_fn)
        return 0;
    return ov->fault_fn(ov->fault_data, op, ov->fd, offset, len);
}

void
ov_overlay_set_fault_hook(struct ov_overlay *ov, ov_fault_fn fn, void *user_data)
{
    ov->fault_fn = fn;
    ov->fault_data = user_data;
}

int
ov_sys_pwritev(struct ov_overlay *ov, enum ov_fault_op op, struct iovec *iov, int iovcnt,
               uint64_t offset)
{
    size_t total = 0;
    int r;

    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    r = fault(ov, op, offset, total);
    if (r < 0)
        return r;
    while (iovcnt > 0) {
        ssize_t n = pwritev(ov->fd, iov, iovcnt, (off_t)offset);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return norm_errno(errno);
        }
        if (n == 0)
            return -EIO;
        offset += (uint64_t)n;
        /* Short write (e.g. the filesystem filled up mid-way): advance the
         * vector and retry, so that the real error is reported. */
        while (iovcnt > 0 && (size_t)n >= iov->iov_len) {
            n -= (ssize_t)iov->iov_len;
            iov++;
            iovcnt--;
        }
        if (iovcnt > 0) {
            iov->iov_base = (uint8_t *)iov->iov_base + n;
            iov->iov_len -= (size_t)n;
        }
    }
    return 0;
}

int
ov_sys_pwrite(struct ov_overlay *ov, enum ov_fault_op op, const void *buf, size_t len,
              uint64_t offset)
{
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    return ov_sys_pwritev(ov, op, &iov, 1, offset);
}

int
ov_sys_sync(struct ov_overlay *ov)
{
    int r = fault(ov, OV_FAULT_SYNC, 0, 0);

    if (r < 0)
        return r;
    if (fdatasync(ov->fd) < 0)
        return norm_errno(errno);
    return 0;
}

int
ov_sys_punch(struct ov_overlay *ov, uint64_t offset, uint64_t len)
{
    int r = fault(ov, OV_FAULT_PUNCH, offset, len);

    if (r < 0)
        return r;
    if (fallocate(ov->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)offset, (off_t)len) <
        0)
        return norm_errno(errno);
    return 0;
}

int
ov_sys_pread(int fd, void *buf, size_t len, uint64_t offset, bool zero_eof)
{
    uint8_t *p = buf;

    while (len > 0) {
        ssize_t n = pread(fd, p, len, (off_t)offset);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0) {
            if (!zero_eof)
                return -EIO;
            memset(p, 0, len);
            return 0;
        }
        p += n;
        len -= (size_t)n;
        offset += (uint64_t)n;
    }
    return 0;
}
