/* io.c — a connection's byte stream: a buffered reader and a reply queue,
 * over the plain socket or, after NBD_OPT_STARTTLS, a GnuTLS session.
 *
 * Design (docs/concurrency.md "batching"):
 * - Reads fill a large receive buffer with whatever the socket has, so one
 *   recv() usually brings in many pipelined requests. Write payloads that
 *   are already buffered are handed to the disk straight from this buffer;
 *   large payloads are read directly into their destination.
 * - Replies are queued, not sent: small bytes (headers, option replies) go
 *   to obuf, read data is queued by pointer (zero copy). The queue is sent
 *   with one sendmsg() when the reader would otherwise block, i.e. once the
 *   requests already received are all answered. Before blocking, a
 *   non-blocking recv() checks whether more requests arrived meanwhile (only
 *   when the batch already holds several: pipelining clients), so a burst is
 *   answered with one send.
 * - Segments in obuf are kept as offsets, since obuf may move when it grows;
 *   iovecs are built only at send time.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>
#include <gnutls/gnutls.h>

#include "nbd-int.h"
#include "rxpoll.h"

#define IO_IOV_BATCH 64
#define IO_TLS_CORK_MAX (64u * 1024)

void
nbdsrv_io_init(struct nbdsrv_io *io, int fd)
{
    memset(io, 0, sizeof(*io));
    io->fd = fd;
    io->rcap = NBDSRV_RBUF_SIZE;
    io->rbuf = g_malloc(io->rcap);
    io->obuf = g_byte_array_sized_new(4096);
    io->oq = g_array_sized_new(FALSE, FALSE, sizeof(struct nbdsrv_oseg), 64);
}

void
nbdsrv_io_clear(struct nbdsrv_io *io)
{
    nbdsrv_io_discard(io);
    g_clear_pointer(&io->rbuf, g_free);
    g_clear_pointer(&io->tls_pre, g_free);
    if (io->obuf)
        g_byte_array_unref(io->obuf);
    if (io->oq)
        g_array_unref(io->oq);
    io->obuf = NULL;
    io->oq = NULL;
}

void
nbdsrv_io_discard(struct nbdsrv_io *io)
{
    if (!io->oq)
        return;
    for (guint i = 0; i < io->oq->len; i++) {
        struct nbdsrv_oseg *seg = &g_array_index(io->oq, struct nbdsrv_oseg, i);
        g_free(seg->owned);
        if (seg->file_fd >= 0)
            close(seg->file_fd);
        if (seg->map)
            munmap(seg->map, seg->map_len);
        ov_base_unref(seg->base_ref);
    }
    g_array_set_size(io->oq, 0);
    g_byte_array_set_size(io->obuf, 0);
    io->oq_bytes = 0;
}

static ssize_t
tls_recv(struct nbdsrv_io *io, void *buf, size_t len)
{
    for (;;) {
        ssize_t r = gnutls_record_recv(io->tls, buf, len);
        if (r >= 0)
            return r;
        if (r == GNUTLS_E_INTERRUPTED)
            continue;
        if (r == GNUTLS_E_AGAIN)
            return -ETIMEDOUT; /* blocking socket: only SO_RCVTIMEO gets here */
        if (r == GNUTLS_E_PREMATURE_TERMINATION)
            return 0;
        g_debug("TLS receive: %s", gnutls_strerror((int)r));
        return -ECONNRESET;
    }
}

/* One receive of up to len bytes; sends queued replies first if it would
 * block. Returns bytes (> 0), 0 at end of stream, or -errno. */
static ssize_t
io_recv(struct nbdsrv_io *io, void *buf, size_t len)
{
    ssize_t r;

    if (io->tls) {
        if (io->oq->len > 0 && gnutls_record_check_pending(io->tls) == 0) {
            int err = nbdsrv_io_flush(io);
            if (err < 0)
                return err;
        }
        r = tls_recv(io, buf, len);
    } else {
        /* Look for more requests before sending only when this batch has
         * several already: a client at queue depth 1 waits for our reply,
         * so the look would always come back empty and cost a syscall. */
        if (io->oq->len > 0) {
            if (io->batch > 1) {
                r = recv(io->fd, buf, len, MSG_DONTWAIT);
                if (r >= 0)
                    goto got;
                if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                    return -errno;
            }
            int err = nbdsrv_io_flush(io);
            if (err < 0)
                return err;
        }
        r = net_recv_polled(io->fd, buf, len, 0, &io->rxpoll);
        if (r < 0)
            return -errno;
    }
got:
    io->rx_bytes += (uint64_t)r;
    return r;
}

int
nbdsrv_io_want(struct nbdsrv_io *io, size_t n)
{
    g_assert(n <= io->rcap);
    while (nbdsrv_io_avail(io) < n) {
        if (io->rcap - io->rlen < n - nbdsrv_io_avail(io) || io->rpos == io->rlen) {
            size_t avail = nbdsrv_io_avail(io);
            memmove(io->rbuf, io->rbuf + io->rpos, avail);
            io->rpos = 0;
            io->rlen = avail;
        }
        ssize_t r = io_recv(io, io->rbuf + io->rlen, io->rcap - io->rlen);
        if (r < 0)
            return (int)r;
        if (r == 0)
            return -ECONNRESET;
        io->rlen += (size_t)r;
    }
    return 0;
}

int
nbdsrv_io_read(struct nbdsrv_io *io, void *buf, size_t len)
{
    uint8_t *dst = buf;
    size_t take = MIN(len, nbdsrv_io_avail(io));

    memcpy(dst, nbdsrv_io_peek(io), take);
    nbdsrv_io_consume(io, take);
    dst += take;
    len -= take;
    /* Large remainders go straight into the caller's buffer. */
    while (len >= io->rcap / 2) {
        ssize_t r = io_recv(io, dst, len);
        if (r < 0)
            return (int)r;
        if (r == 0)
            return -ECONNRESET;
        dst += r;
        len -= (size_t)r;
    }
    if (len > 0) {
        int err = nbdsrv_io_want(io, len);
        if (err < 0)
            return err;
        memcpy(dst, nbdsrv_io_peek(io), len);
        nbdsrv_io_consume(io, len);
    }
    return 0;
}

int
nbdsrv_io_skip(struct nbdsrv_io *io, uint64_t len)
{
    size_t take = (size_t)MIN(len, (uint64_t)nbdsrv_io_avail(io));

    nbdsrv_io_consume(io, take);
    len -= take;
    while (len > 0) {
        io->rpos = io->rlen = 0;
        ssize_t r = io_recv(io, io->rbuf, (size_t)MIN(len, (uint64_t)io->rcap));
        if (r < 0)
            return (int)r;
        if (r == 0)
            return -ECONNRESET;
        len -= (uint64_t)r;
    }
    return 0;
}

uint8_t *
nbdsrv_io_put(struct nbdsrv_io *io, size_t n)
{
    size_t off = io->obuf->len;
    struct nbdsrv_oseg *last =
        io->oq->len ? &g_array_index(io->oq, struct nbdsrv_oseg, io->oq->len - 1) : NULL;

    g_byte_array_set_size(io->obuf, (guint)(off + n));
    if (last && !last->ext && last->off + last->len == off) {
        last->len += n;
    } else {
        struct nbdsrv_oseg seg = {.ext = NULL, .off = off, .len = n, .owned = NULL, .file_fd = -1};
        g_array_append_val(io->oq, seg);
    }
    io->oq_bytes += n;
    return io->obuf->data + off;
}

void
nbdsrv_io_put_ext(struct nbdsrv_io *io, const void *p, size_t len, void *owned)
{
    struct nbdsrv_oseg seg = {.ext = p, .off = 0, .len = len, .owned = owned, .file_fd = -1};

    g_array_append_val(io->oq, seg);
    io->oq_bytes += len;
}

void
nbdsrv_io_put_base(struct nbdsrv_io *io, const uint8_t *p, size_t len, struct ov_base *ref)
{
    struct nbdsrv_oseg seg = {.ext = p, .off = 0, .len = len, .file_fd = -1, .base_ref = ref};

    g_array_append_val(io->oq, seg);
    io->oq_bytes += len;
}

void
nbdsrv_io_put_file(struct nbdsrv_io *io, int fd, uint64_t file_off, size_t len)
{
    struct nbdsrv_oseg seg = {
        .ext = NULL, .off = 0, .len = len, .owned = NULL, .file_fd = fd, .file_off = file_off};

    g_array_append_val(io->oq, seg);
    io->oq_bytes += len;
}

static const uint8_t *
seg_base(struct nbdsrv_io *io, const struct nbdsrv_oseg *seg)
{
    return seg->ext ? seg->ext : io->obuf->data + seg->off;
}

static int
tls_send_all(struct nbdsrv_io *io, const uint8_t *p, size_t len)
{
    while (len > 0) {
        ssize_t r = gnutls_record_send(io->tls, p, len);
        if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED)
            continue;
        if (r < 0) {
            g_debug("TLS send: %s", gnutls_strerror((int)r));
            return -EIO;
        }
        p += r;
        len -= (size_t)r;
    }
    return 0;
}

static int
tls_uncork(struct nbdsrv_io *io)
{
    for (;;) {
        int r = gnutls_record_uncork(io->tls, GNUTLS_RECORD_WAIT);
        if (r >= 0)
            return 0;
        if (r != GNUTLS_E_AGAIN && r != GNUTLS_E_INTERRUPTED) {
            g_debug("TLS send: %s", gnutls_strerror(r));
            return -EIO;
        }
    }
}

/* A file segment over TLS needs its bytes in memory: read and send them in
 * pieces. (Transmission queues file segments on plain sockets only; this
 * keeps the queue correct for any caller.) */
static int
tls_send_file(struct nbdsrv_io *io, const struct nbdsrv_oseg *seg)
{
    g_autofree uint8_t *buf = g_malloc(IO_TLS_CORK_MAX);

    for (size_t done = 0; done < seg->len;) {
        size_t n = MIN(seg->len - done, (size_t)IO_TLS_CORK_MAX);
        ssize_t r = pread(seg->file_fd, buf, n, (off_t)(seg->file_off + done));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return r < 0 ? -errno : -EIO;
        int err = tls_send_all(io, buf, (size_t)r);
        if (err < 0)
            return err;
        done += (size_t)r;
    }
    return 0;
}

/* Small segments are corked into few TLS records; large ones go alone. */
static int
flush_tls(struct nbdsrv_io *io)
{
    bool corked = false;
    int err = 0;

    for (guint i = 0; i < io->oq->len && err == 0; i++) {
        const struct nbdsrv_oseg *seg = &g_array_index(io->oq, struct nbdsrv_oseg, i);
        if (seg->file_fd >= 0) {
            if (corked)
                err = tls_uncork(io);
            corked = false;
            if (err == 0)
                err = tls_send_file(io, seg);
            continue;
        }
        if (seg->len > IO_TLS_CORK_MAX) {
            if (corked)
                err = tls_uncork(io);
            corked = false;
            if (err == 0)
                err = tls_send_all(io, seg_base(io, seg), seg->len);
            continue;
        }
        if (!corked)
            gnutls_record_cork(io->tls);
        corked = true;
        err = tls_send_all(io, seg_base(io, seg), seg->len);
    }
    if (corked && err == 0)
        err = tls_uncork(io);
    return err;
}

/* sendfile the rest of file segment seg (skip bytes already sent). A short
 * file (truncated under us) is an I/O error: the reply header promised
 * the bytes, so the connection cannot continue. */
static int
send_file_seg(struct nbdsrv_io *io, const struct nbdsrv_oseg *seg, size_t skip)
{
    off_t pos = (off_t)(seg->file_off + skip);
    size_t left = seg->len - skip;

    while (left > 0) {
        ssize_t r = sendfile(io->fd, seg->file_fd, &pos, left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            return -EIO;
        left -= (size_t)r;
    }
    return 0;
}

/* Map the queued file segments (read-only, shared, pages populated), so
 * that they go out in the same sendmsg() as the headers around them: the
 * page cache is copied once, into the socket. (sendfile also avoids that
 * copy, but on loopback its splice loop of 64 KiB pieces, each taking the
 * socket lock and pushing, cost more than the copy saved: ~8% less
 * throughput for 1 MiB reads here.) The files never shrink while served:
 * overlays are created at full size, base generations are immutable.
 * A segment that cannot be mapped is sent with sendfile. */
static void
map_file_segs(struct nbdsrv_io *io)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);

    for (guint i = 0; i < io->oq->len; i++) {
        struct nbdsrv_oseg *seg = &g_array_index(io->oq, struct nbdsrv_oseg, i);
        if (seg->file_fd < 0 || seg->ext != NULL || seg->len == 0)
            continue;
        size_t delta = (size_t)(seg->file_off % page);
        size_t len = seg->len + delta;
        void *p = mmap(NULL, len, PROT_READ, MAP_SHARED | MAP_POPULATE, seg->file_fd,
                       (off_t)(seg->file_off - delta));
        if (p == MAP_FAILED)
            continue;
        seg->map = p;
        seg->map_len = len;
        seg->ext = (const uint8_t *)p + delta;
    }
}

/* Memory segments go out with sendmsg, up to IO_IOV_BATCH at once (with
 * MSG_MORE when an unmapped file segment follows, so a reply header and
 * its data share packets); such file segments with sendfile. */
static int
flush_plain(struct nbdsrv_io *io)
{
    guint i = 0;
    size_t skip = 0; /* bytes of oq[i] already sent */

    map_file_segs(io);
    while (i < io->oq->len) {
        const struct nbdsrv_oseg *first = &g_array_index(io->oq, struct nbdsrv_oseg, i);
        if (first->file_fd >= 0 && first->ext == NULL) {
            int err = send_file_seg(io, first, skip);
            if (err < 0)
                return err;
            i++;
            skip = 0;
            continue;
        }
        struct iovec iov[IO_IOV_BATCH];
        int n = 0;
        bool more = false;
        for (guint j = i; j < io->oq->len && n < IO_IOV_BATCH; j++, n++) {
            const struct nbdsrv_oseg *seg = &g_array_index(io->oq, struct nbdsrv_oseg, j);
            if (seg->file_fd >= 0 && seg->ext == NULL) {
                more = true;
                break;
            }
            size_t s = j == i ? skip : 0;
            iov[n].iov_base = (void *)(seg_base(io, seg) + s);
            iov[n].iov_len = seg->len - s;
        }
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)n};
        ssize_t r = sendmsg(io->fd, &msg, MSG_NOSIGNAL | (more ? MSG_MORE : 0));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        size_t sent = (size_t)r;
        while (i < io->oq->len) {
            const struct nbdsrv_oseg *seg = &g_array_index(io->oq, struct nbdsrv_oseg, i);
            size_t left = seg->len - skip;
            if (sent < left) {
                skip += sent;
                break;
            }
            sent -= left;
            skip = 0;
            i++;
        }
    }
    return 0;
}

int
nbdsrv_io_flush(struct nbdsrv_io *io)
{
    if (io->oq->len == 0)
        return 0;
    size_t bytes = io->oq_bytes;
    int err = io->tls ? flush_tls(io) : flush_plain(io);
    if (err == 0)
        io->tx_bytes += bytes;
    io->batch = 0;
    nbdsrv_io_discard(io);
    return err;
}
