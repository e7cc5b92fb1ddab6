/* transmission.c — the NBD transmission phase (proto.md "Transmission",
 * "Request types"): read a request, check it once (codec.c
 * nbdsrv_request_check), run one handler per command, queue the reply.
 *
 * Design notes:
 * - Requests run in order on the connection's thread; replies are queued
 *   and sent in one batch when the receive buffer is drained (io.c).
 * - Reads: data is read from the view straight into the buffer the reply
 *   is sent from. With structured replies, reads of NBDSRV_HOLE_MIN_READ
 *   or more ask the view where the zeros are and send those ranges as
 *   NBD_REPLY_TYPE_OFFSET_HOLE (no bytes read or sent for them). Nothing
 *   is queued until every read finished, so an error becomes a clean error
 *   chunk (structured) or an error with no payload (simple reply).
 *   Large reads on a plain socket ask the disk where the bytes live
 *   instead (read_segments) and queue them as pointers into the base's
 *   mapping or as overlay file ranges, which io.c sends without a copy in
 *   this thread (VIEW_ZC_BASE_MIN / VIEW_ZC_FILE_MIN). Zero runs become
 *   hole chunks (a single data chunk from a static zero buffer with DF or
 *   simple replies).
 * - Writes: a payload already in the receive buffer goes to the view from
 *   there; larger ones are read into their own buffer. A write that is
 *   refused (range, read-only, flags, too large) still has its payload
 *   consumed, so the stream stays in step and the connection usable.
 * - WRITE_ZEROES with FAST_ZERO: the export says whether zeroing is fast
 *   (exp->fast_zero); if not, ENOTSUP at once (proto.md: fail fast, the
 *   client then writes zeros itself). On client views zeroing is a map
 *   update (whole granules become ZERO, NO_HOLE included), so it is fast.
 * - Flush and FUA block this connection only (docs/concurrency.md).
 */
#include <errno.h>
#include <string.h>

#include "nbd-int.h"
#include "log.h"

#define READ_MAX_RUNS 64
#define CACHE_CHUNK (1024u * 1024)

uint16_t
nbdsrv_export_tflags(const struct nbdsrv_export *exp, bool structured)
{
    uint16_t f = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_CACHE;

    if (exp->read_only)
        f |= NBD_FLAG_READ_ONLY;
    else
        f |= NBD_FLAG_SEND_FUA | NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES |
             NBD_FLAG_SEND_FAST_ZERO;
    if (exp->multi_conn)
        f |= NBD_FLAG_CAN_MULTI_CONN;
    if (structured)
        f |= NBD_FLAG_SEND_DF;
    return f;
}

static void
reply_ok(struct nbdsrv_conn *conn, const struct nbdsrv_request *req)
{
    nbdsrv_encode_simple_reply(nbdsrv_io_put(&conn->io, NBD_SIMPLE_REPLY_LEN), 0, req->handle);
}

/* An error answer: an NBD_REPLY_TYPE_ERROR chunk with a message when
 * structured replies are on (required for reads), else a simple reply. */
static void
reply_error(struct nbdsrv_conn *conn, const struct nbdsrv_request *req, uint32_t nbd_err,
            const char *msg)
{
    LOG_RATELIMITED(G_LOG_LEVEL_DEBUG, 10, 20,
                    "%s: %s offset %" G_GUINT64_FORMAT " length %u: error %u (%s)", conn->peer,
                    nbdsrv_cmd_name(req->type), req->offset, req->length, nbd_err, msg);
    if (!conn->structured) {
        nbdsrv_encode_simple_reply(nbdsrv_io_put(&conn->io, NBD_SIMPLE_REPLY_LEN), nbd_err,
                                   req->handle);
        return;
    }
    size_t ml = MIN(strlen(msg), (size_t)NBDSRV_STRING_MAX);
    uint8_t *p = nbdsrv_io_put(&conn->io, NBD_CHUNK_HDR_LEN + 6 + ml);
    nbdsrv_encode_chunk(p, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR, req->handle,
                        (uint32_t)(6 + ml));
    nbdsrv_put_be32(p + NBD_CHUNK_HDR_LEN, nbd_err);
    nbdsrv_put_be16(p + NBD_CHUNK_HDR_LEN + 4, (uint16_t)ml);
    memcpy(p + NBD_CHUNK_HDR_LEN + 6, msg, ml);
}

static void
reply_errno(struct nbdsrv_conn *conn, const struct nbdsrv_request *req, int rc)
{
    if (rc == -ENOSPC || rc == -EDQUOT)
        LOG_RATELIMITED(G_LOG_LEVEL_WARNING, 10, 5, "%s: export %s: store full", conn->peer,
                        conn->exp->name);
    else if (rc == -EIO)
        LOG_RATELIMITED(G_LOG_LEVEL_WARNING, 10, 5, "%s: export %s: I/O error on %s", conn->peer,
                        conn->exp->name, nbdsrv_cmd_name(req->type));
    reply_error(conn, req, nbdsrv_errno_to_nbd(rc), g_strerror(-rc));
}

static void
queue_data_chunk(struct nbdsrv_conn *conn, const struct nbdsrv_request *req, bool done,
                 uint64_t offset, const uint8_t *data, uint32_t len, void *owned)
{
    uint8_t *p = nbdsrv_io_put(&conn->io, NBD_CHUNK_HDR_LEN + 8);

    nbdsrv_encode_chunk(p, done ? NBD_REPLY_FLAG_DONE : 0, NBD_REPLY_TYPE_OFFSET_DATA, req->handle,
                        len + 8);
    nbdsrv_put_be64(p + NBD_CHUNK_HDR_LEN, offset);
    nbdsrv_io_put_ext(&conn->io, data, len, owned);
}

static void
queue_hole_chunk(struct nbdsrv_conn *conn, const struct nbdsrv_request *req, bool done,
                 uint64_t offset, uint32_t len)
{
    uint8_t *p = nbdsrv_io_put(&conn->io, NBD_CHUNK_HDR_LEN + 12);

    nbdsrv_encode_chunk(p, done ? NBD_REPLY_FLAG_DONE : 0, NBD_REPLY_TYPE_OFFSET_HOLE, req->handle,
                        12);
    nbdsrv_put_be64(p + NBD_CHUNK_HDR_LEN, offset);
    nbdsrv_put_be32(p + NBD_CHUNK_HDR_LEN + 8, len);
}

/* Queue len zero bytes from a shared static buffer. */
static void
queue_zeros(struct nbdsrv_conn *conn, uint64_t len)
{
    static const uint8_t zeros[64 * 1024];

    for (uint64_t n; len > 0; len -= n) {
        n = MIN(len, (uint64_t)sizeof(zeros));
        nbdsrv_io_put_ext(&conn->io, zeros, (size_t)n, NULL);
    }
}

/* Zero-copy read (plain sockets, large reads): the disk says where the
 * bytes live (the base's mapping, an overlay file, zeros) and the reply
 * queue sends them from there (io.c). Returns false
 * when this read must take the copy path (nothing queued then). The disk
 * has already answered by the time anything is queued, so an error is
 * still a clean error reply; a file that fails while being sent ends the
 * connection (io.c), as the header is already out. */
static bool
cmd_read_zero_copy(struct nbdsrv_conn *conn, const struct nbdsrv_request *req)
{
    const struct nbdsrv_export *exp = conn->exp;
    struct view_segments segs;

    if (conn->io.tls || !exp->ops->read_segments || req->length < VIEW_ZC_BASE_MIN)
        return false;
    int rc = exp->ops->read_segments(exp->disk, req->offset, req->length, &segs);
    if (rc == -E2BIG || rc == -ENOTSUP || rc == -EMFILE || rc == -ENFILE)
        return false;
    if (rc < 0) {
        reply_errno(conn, req, rc);
        return true;
    }
    if (req->length < VIEW_ZC_FILE_MIN) {
        for (unsigned i = 0; i < segs.n; i++) {
            if (segs.seg[i].fd >= 0) { /* an overlay piece: copying is cheaper */
                view_segments_clear(&segs);
                return false;
            }
        }
    }
    /* One chunk (simple reply, or DF) carries every segment; otherwise
     * each file segment is a data chunk and each zero run a hole chunk. */
    bool one_chunk = !conn->structured || (req->flags & NBD_CMD_FLAG_DF);
    if (!conn->structured) {
        nbdsrv_encode_simple_reply(nbdsrv_io_put(&conn->io, NBD_SIMPLE_REPLY_LEN), 0, req->handle);
    } else if (one_chunk) {
        uint8_t *p = nbdsrv_io_put(&conn->io, NBD_CHUNK_HDR_LEN + 8);
        nbdsrv_encode_chunk(p, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_OFFSET_DATA, req->handle,
                            req->length + 8);
        nbdsrv_put_be64(p + NBD_CHUNK_HDR_LEN, req->offset);
    }
    uint64_t pos = req->offset;
    for (unsigned i = 0; i < segs.n; i++) {
        struct view_segment *seg = &segs.seg[i];
        bool done = i == segs.n - 1;
        bool zeros = seg->fd < 0 && seg->mem == NULL;
        if (!one_chunk && zeros) {
            queue_hole_chunk(conn, req, done, pos, (uint32_t)seg->len);
        } else if (!one_chunk) {
            uint8_t *p = nbdsrv_io_put(&conn->io, NBD_CHUNK_HDR_LEN + 8);
            nbdsrv_encode_chunk(p, done ? NBD_REPLY_FLAG_DONE : 0, NBD_REPLY_TYPE_OFFSET_DATA,
                                req->handle, (uint32_t)seg->len + 8);
            nbdsrv_put_be64(p + NBD_CHUNK_HDR_LEN, pos);
        }
        if (seg->mem != NULL) {
            nbdsrv_io_put_base(&conn->io, seg->mem, (size_t)seg->len, seg->mem_ref);
            seg->mem_ref = NULL; /* the queue owns it now */
        } else if (seg->fd >= 0) {
            nbdsrv_io_put_file(&conn->io, seg->fd, seg->file_offset, (size_t)seg->len);
            seg->fd = -1; /* the queue owns it now */
        } else if (one_chunk) {
            queue_zeros(conn, seg->len);
        }
        pos += seg->len;
    }
    return true;
}

static void
cmd_read(struct nbdsrv_conn *conn, const struct nbdsrv_request *req)
{
    const struct nbdsrv_export *exp = conn->exp;
    struct nbdsrv_run runs[READ_MAX_RUNS];
    int n = 1;

    if (cmd_read_zero_copy(conn, req))
        return;

    runs[0] = (struct nbdsrv_run){.offset = req->offset, .len = req->length, .zero = false};
    if (conn->structured && !(req->flags & NBD_CMD_FLAG_DF) &&
        req->length >= NBDSRV_HOLE_MIN_READ) {
        int r = nbdsrv_read_runs(exp, req->offset, req->length, runs, READ_MAX_RUNS);
        if (r > 0)
            n = r;
        else
            runs[0] = (struct nbdsrv_run){.offset = req->offset, .len = req->length};
    }

    bool any_data = false;
    for (int i = 0; i < n; i++)
        any_data |= !runs[i].zero;
    uint8_t *data = any_data ? g_try_malloc(req->length) : NULL;
    if (any_data && !data) {
        reply_error(conn, req, NBD_ENOMEM, "out of memory");
        return;
    }
    for (int i = 0; i < n; i++) {
        if (runs[i].zero)
            continue;
        int rc = exp->ops->pread(exp->disk, data + (runs[i].offset - req->offset), runs[i].len,
                                 runs[i].offset);
        if (rc < 0) {
            g_free(data);
            reply_errno(conn, req, rc);
            return;
        }
    }

    if (!conn->structured) {
        nbdsrv_encode_simple_reply(nbdsrv_io_put(&conn->io, NBD_SIMPLE_REPLY_LEN), 0, req->handle);
        nbdsrv_io_put_ext(&conn->io, data, req->length, data);
        return;
    }
    void *owned = data; /* freed with the first data segment's send */
    for (int i = 0; i < n; i++) {
        bool done = i == n - 1;
        if (runs[i].zero) {
            queue_hole_chunk(conn, req, done, runs[i].offset, runs[i].len);
        } else {
            queue_data_chunk(conn, req, done, runs[i].offset, data + (runs[i].offset - req->offset),
                             runs[i].len, owned);
            owned = NULL;
        }
    }
}

/* The payload of a write: borrowed from the receive buffer when complete
 * there, else read into *owned (caller frees). NULL on I/O error. */
static const uint8_t *
write_payload(struct nbdsrv_conn *conn, uint32_t len, uint8_t **owned)
{
    *owned = NULL;
    if (nbdsrv_io_avail(&conn->io) >= len) {
        const uint8_t *p = nbdsrv_io_peek(&conn->io);
        nbdsrv_io_consume(&conn->io, len);
        return p;
    }
    if (len <= conn->io.rcap / 4) {
        if (nbdsrv_io_want(&conn->io, len) < 0)
            return NULL;
        const uint8_t *p = nbdsrv_io_peek(&conn->io);
        nbdsrv_io_consume(&conn->io, len);
        return p;
    }
    *owned = g_try_malloc(len);
    if (!*owned)
        return NULL;
    if (nbdsrv_io_read(&conn->io, *owned, len) < 0) {
        g_clear_pointer(owned, g_free);
        return NULL;
    }
    return *owned;
}

static bool
cmd_write(struct nbdsrv_conn *conn, const struct nbdsrv_request *req)
{
    const struct nbdsrv_export *exp = conn->exp;
    uint8_t *owned;
    const uint8_t *data = write_payload(conn, req->length, &owned);

    if (!data)
        return false; /* stream lost (or no memory for the payload): end the session */
    unsigned vflags = (req->flags & NBD_CMD_FLAG_FUA) ? VIEW_FUA : 0;
    int rc = exp->ops->pwrite(exp->disk, data, req->length, req->offset, vflags);
    g_free(owned);
    if (rc < 0)
        reply_errno(conn, req, rc);
    else
        reply_ok(conn, req);
    return true;
}

static void
cmd_flush(struct nbdsrv_conn *conn, const struct nbdsrv_request *req)
{
    const struct nbdsrv_export *exp = conn->exp;
    int rc = exp->read_only ? 0 : exp->ops->flush(exp->disk);

    if (rc < 0)
        reply_errno(conn, req, rc);
    else
        reply_ok(conn, req);
}

static void
cmd_zero(struct nbdsrv_conn *conn, const struct nbdsrv_request *req)
{
    const struct nbdsrv_export *exp = conn->exp;
    unsigned vflags = (req->flags & NBD_CMD_FLAG_FUA) ? VIEW_FUA : 0;

    if ((req->flags & NBD_CMD_FLAG_FAST_ZERO) && !exp->fast_zero) {
        reply_error(conn, req, NBD_ENOTSUP, "zeroing is not fast on this export");
        return;
    }
    if (req->flags & NBD_CMD_FLAG_NO_HOLE)
        vflags |= VIEW_NO_UNMAP;
    int rc = exp->ops->zero(exp->disk, req->offset, req->length, vflags);
    if (rc < 0)
        reply_errno(conn, req, rc);
    else
        reply_ok(conn, req);
}

/* NBD_CMD_CACHE: read the range so the base's pages are in the page cache
 * (shared by every client) before the client needs them. */
static void
cmd_cache(struct nbdsrv_conn *conn, const struct nbdsrv_request *req)
{
    const struct nbdsrv_export *exp = conn->exp;
    g_autofree uint8_t *buf = g_malloc(MIN(req->length, CACHE_CHUNK));

    for (uint64_t done = 0; done < req->length;) {
        uint32_t n = (uint32_t)MIN((uint64_t)CACHE_CHUNK, req->length - done);
        int rc = exp->ops->pread(exp->disk, buf, n, req->offset + done);
        if (rc < 0) {
            reply_errno(conn, req, rc);
            return;
        }
        done += n;
    }
    reply_ok(conn, req);
}

static void
cmd_block_status(struct nbdsrv_conn *conn, const struct nbdsrv_request *req)
{
    int rc = nbdsrv_meta_reply(conn, req);

    if (rc < 0)
        reply_errno(conn, req, rc);
}

/* Returns false when the session ends (NBD_CMD_DISC or a lost stream). */
static bool
handle_request(struct nbdsrv_conn *conn, const struct nbdsrv_request *req)
{
    uint32_t err = nbdsrv_request_check(req, &conn->neg);

    if (err) {
        /* The payload of a refused write is consumed (never allocated), so
         * the next request header is found where the client put it. */
        if (req->type == NBD_CMD_WRITE && nbdsrv_io_skip(&conn->io, req->length) < 0)
            return false;
        reply_error(conn, req, err,
                    err == NBD_EPERM    ? "export is read-only"
                    : err == NBD_ENOSPC ? "request beyond the end of the export"
                                        : "invalid request");
        return true;
    }
    switch (req->type) {
    case NBD_CMD_READ:
        cmd_read(conn, req);
        return true;
    case NBD_CMD_WRITE:
        return cmd_write(conn, req);
    case NBD_CMD_DISC:
        return false;
    case NBD_CMD_FLUSH:
        cmd_flush(conn, req);
        return true;
    case NBD_CMD_TRIM:
    case NBD_CMD_WRITE_ZEROES:
        cmd_zero(conn, req);
        return true;
    case NBD_CMD_CACHE:
        cmd_cache(conn, req);
        return true;
    case NBD_CMD_BLOCK_STATUS:
        cmd_block_status(conn, req);
        return true;
    default:
        reply_error(conn, req, NBD_EINVAL, "unknown command");
        return true;
    }
}

void
nbdsrv_transmission(struct nbdsrv_conn *conn)
{
    struct nbdsrv_export *exp = conn->exp;

    conn->neg = (struct nbdsrv_neg){
        .size = exp->size,
        .tflags = nbdsrv_export_tflags(exp, conn->structured),
        .structured = conn->structured,
        .meta = conn->meta,
    };
    g_debug("%s: export %s: transmission (flags 0x%x%s)", conn->peer, exp->name, conn->neg.tflags,
            conn->structured ? ", structured replies" : "");
    for (;;) {
        struct nbdsrv_request req;
        int rc = nbdsrv_io_want(&conn->io, NBD_REQUEST_LEN);
        if (rc < 0) {
            if (!g_atomic_int_get(&conn->kicked))
                g_debug("%s: connection ended without NBD_CMD_DISC (%s)", conn->peer,
                        g_strerror(-rc));
            break;
        }
        if (!nbdsrv_parse_request(nbdsrv_io_peek(&conn->io), &req)) {
            LOG_RATELIMITED(G_LOG_LEVEL_MESSAGE, 10, 5, "%s: bad request magic, disconnecting",
                            conn->peer);
            break;
        }
        nbdsrv_io_consume(&conn->io, NBD_REQUEST_LEN);
        if (!handle_request(conn, &req))
            break;
        conn->io.batch++;
        if (conn->io.oq_bytes >= NBDSRV_OQ_FLUSH_BYTES && nbdsrv_io_flush(&conn->io) < 0)
            break;
    }
    nbdsrv_io_flush(&conn->io);
    conn->state = NBDSRV_STATE_CLOSED;
}
