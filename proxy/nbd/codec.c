/* codec.c — the NBD wire codec: big-endian helpers, option payload parsers,
 * request header parsing and checking, reply encoders, and the one errno ->
 * NBD error mapping.
 *
 * Everything here is pure (no I/O, no locks), so unit tests and the fuzzers
 * call it directly. Every length read from the wire is checked against what
 * remains of the payload before it is used; nothing is allocated from a
 * length the client chose except the export name (<= NBDSRV_STRING_MAX).
 */
#include <errno.h>
#include <string.h>

#include "nbd-int.h"

void
nbdsrv_put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

void
nbdsrv_put_be32(uint8_t *p, uint32_t v)
{
    for (int i = 3; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

void
nbdsrv_put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

uint16_t
nbdsrv_get_be16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

uint32_t
nbdsrv_get_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

uint64_t
nbdsrv_get_be64(const uint8_t *p)
{
    return ((uint64_t)nbdsrv_get_be32(p) << 32) | nbdsrv_get_be32(p + 4);
}

/* proto.md "Conventions": strings are UTF-8, contain no NUL and MUST be no
 * longer than 4096 bytes. */
uint32_t
nbdsrv_check_string(const uint8_t *p, size_t len)
{
    if (len > NBDSRV_STRING_MAX)
        return NBD_REP_ERR_INVALID;
    if (len > 0 && memchr(p, 0, len) != NULL)
        return NBD_REP_ERR_INVALID;
    if (!g_utf8_validate_len((const char *)p, len, NULL))
        return NBD_REP_ERR_INVALID;
    return 0;
}

/* NBD_OPT_INFO / NBD_OPT_GO data: 32-bit name length, name, 16-bit count
 * of information requests, that many 16-bit NBD_INFO_* types. */
uint32_t
nbdsrv_parse_info_req(const uint8_t *p, size_t len, struct nbdsrv_info_req *out)
{
    memset(out, 0, sizeof(*out));
    if (len < 6)
        return NBD_REP_ERR_INVALID;
    uint32_t name_len = nbdsrv_get_be32(p);
    if (name_len > len - 6)
        return NBD_REP_ERR_INVALID;
    uint32_t err = nbdsrv_check_string(p + 4, name_len);
    if (err)
        return err;
    uint16_t n = nbdsrv_get_be16(p + 4 + name_len);
    if ((size_t)n * 2 != len - 6 - name_len)
        return NBD_REP_ERR_INVALID;
    out->name = g_strndup((const char *)p + 4, name_len);
    out->n_info = n;
    out->info = p + 6 + name_len;
    return 0;
}

/* NBD_OPT_{LIST,SET}_META_CONTEXT data: 32-bit name length, name, 32-bit
 * number of queries, each a 32-bit length and a string. */
uint32_t
nbdsrv_parse_meta_req(const uint8_t *p, size_t len, struct nbdsrv_meta_req *out)
{
    memset(out, 0, sizeof(*out));
    if (len < 8)
        return NBD_REP_ERR_INVALID;
    uint32_t name_len = nbdsrv_get_be32(p);
    if (name_len > len - 8)
        return NBD_REP_ERR_INVALID;
    uint32_t err = nbdsrv_check_string(p + 4, name_len);
    if (err)
        return err;
    size_t pos = 4 + (size_t)name_len;
    uint32_t nq = nbdsrv_get_be32(p + pos);
    pos += 4;
    if (nq > NBDSRV_MAX_QUERIES)
        return NBD_REP_ERR_TOO_BIG;
    for (uint32_t i = 0; i < nq; i++) {
        if (len - pos < 4)
            return NBD_REP_ERR_INVALID;
        uint32_t qlen = nbdsrv_get_be32(p + pos);
        pos += 4;
        if (qlen > len - pos)
            return NBD_REP_ERR_INVALID;
        err = nbdsrv_check_string(p + pos, qlen);
        if (err)
            return err;
        out->query[i] = p + pos;
        out->query_len[i] = qlen;
        pos += qlen;
    }
    if (pos != len)
        return NBD_REP_ERR_INVALID;
    out->name = g_strndup((const char *)p + 4, name_len);
    out->n_queries = nq;
    return 0;
}

bool
nbdsrv_parse_request(const uint8_t hdr[NBD_REQUEST_LEN], struct nbdsrv_request *out)
{
    if (nbdsrv_get_be32(hdr) != NBD_REQUEST_MAGIC)
        return false;
    out->flags = nbdsrv_get_be16(hdr + 4);
    out->type = nbdsrv_get_be16(hdr + 6);
    out->handle = nbdsrv_get_be64(hdr + 8);
    out->offset = nbdsrv_get_be64(hdr + 16);
    out->length = nbdsrv_get_be32(hdr + 24);
    return true;
}

static bool
range_ok(const struct nbdsrv_request *req, const struct nbdsrv_neg *neg)
{
    return req->offset <= neg->size && req->length <= neg->size - req->offset;
}

/* Command flags each command accepts, given the transmission flags
 * (proto.md "Command flags": a flag not documented for the command, or not
 * negotiated, is EINVAL). */
static uint16_t
allowed_flags(uint16_t type, const struct nbdsrv_neg *neg)
{
    uint16_t fua = (neg->tflags & NBD_FLAG_SEND_FUA) ? NBD_CMD_FLAG_FUA : 0;

    switch (type) {
    case NBD_CMD_READ:
        return fua | ((neg->tflags & NBD_FLAG_SEND_DF) ? NBD_CMD_FLAG_DF : 0);
    case NBD_CMD_WRITE_ZEROES:
        return fua | NBD_CMD_FLAG_NO_HOLE |
               ((neg->tflags & NBD_FLAG_SEND_FAST_ZERO) ? NBD_CMD_FLAG_FAST_ZERO : 0);
    case NBD_CMD_BLOCK_STATUS:
        return fua | NBD_CMD_FLAG_REQ_ONE;
    default:
        return fua;
    }
}

uint32_t
nbdsrv_request_check(const struct nbdsrv_request *req, const struct nbdsrv_neg *neg)
{
    bool ro = (neg->tflags & NBD_FLAG_READ_ONLY) != 0;

    if (req->type == NBD_CMD_DISC)
        return NBD_SUCCESS;
    if (req->type > NBD_CMD_BLOCK_STATUS)
        return NBD_EINVAL; /* unknown command */
    /* proto.md: EPERM for writes and trims on a read-only export (checked
     * first: their flags are not advertised there either). */
    if (ro && (req->type == NBD_CMD_WRITE || req->type == NBD_CMD_TRIM ||
               req->type == NBD_CMD_WRITE_ZEROES))
        return NBD_EPERM;
    if (req->flags & ~allowed_flags(req->type, neg))
        return NBD_EINVAL;

    switch (req->type) {
    case NBD_CMD_READ:
        if (req->length == 0 || req->length > NBDSRV_MAX_PAYLOAD || !range_ok(req, neg))
            return NBD_EINVAL;
        return NBD_SUCCESS;
    case NBD_CMD_WRITE:
    case NBD_CMD_TRIM:
    case NBD_CMD_WRITE_ZEROES:
        if ((req->type == NBD_CMD_TRIM && !(neg->tflags & NBD_FLAG_SEND_TRIM)) ||
            (req->type == NBD_CMD_WRITE_ZEROES && !(neg->tflags & NBD_FLAG_SEND_WRITE_ZEROES)))
            return NBD_EINVAL;
        if (req->length == 0)
            return NBD_EINVAL;
        if (req->type == NBD_CMD_WRITE && req->length > NBDSRV_MAX_PAYLOAD)
            return NBD_EINVAL;
        /* proto.md: ENOSPC for a write beyond the end of the device. */
        if (!range_ok(req, neg))
            return NBD_ENOSPC;
        return NBD_SUCCESS;
    case NBD_CMD_FLUSH:
        if (!(neg->tflags & NBD_FLAG_SEND_FLUSH) || req->offset != 0 || req->length != 0)
            return NBD_EINVAL;
        return NBD_SUCCESS;
    case NBD_CMD_CACHE:
        /* Bounded by the advertised maximum block size like a read: a
         * prefetch of gigabytes would hold the connection for seconds. */
        if (!(neg->tflags & NBD_FLAG_SEND_CACHE) || req->length == 0 ||
            req->length > NBDSRV_MAX_PAYLOAD || !range_ok(req, neg))
            return NBD_EINVAL;
        return NBD_SUCCESS;
    case NBD_CMD_BLOCK_STATUS:
        /* proto.md: BLOCK_STATUS without selected contexts SHOULD be EINVAL. */
        if (!neg->structured || neg->meta == 0 || req->length == 0 || !range_ok(req, neg))
            return NBD_EINVAL;
        return NBD_SUCCESS;
    default:
        return NBD_EINVAL;
    }
}

/* The only errno -> NBD error mapping. EDQUOT and EFBIG become ENOSPC and a
 * read-only disk is EPERM, as proto.md "Error values" asks. An errno the
 * protocol has no word for is an I/O failure as far as the client can tell. */
uint32_t
nbdsrv_errno_to_nbd(int err)
{
    if (err < 0)
        err = -err;
    switch (err) {
    case 0:
        return NBD_SUCCESS;
    case EPERM:
    case EROFS:
    case EACCES:
        return NBD_EPERM;
    case EIO:
        return NBD_EIO;
    case ENOMEM:
        return NBD_ENOMEM;
    case EINVAL:
    case ERANGE:
        return NBD_EINVAL;
    case ENOSPC:
    case EDQUOT:
    case EFBIG:
        return NBD_ENOSPC;
    case EOVERFLOW:
        return NBD_EOVERFLOW;
    case ENOTSUP:
        return NBD_ENOTSUP;
    case ESHUTDOWN:
        return NBD_ESHUTDOWN;
    default:
        return NBD_EIO;
    }
}

const char *
nbdsrv_cmd_name(uint16_t type)
{
    static const char *const names[] = {
        [NBD_CMD_READ] = "NBD_CMD_READ",
        [NBD_CMD_WRITE] = "NBD_CMD_WRITE",
        [NBD_CMD_DISC] = "NBD_CMD_DISC",
        [NBD_CMD_FLUSH] = "NBD_CMD_FLUSH",
        [NBD_CMD_TRIM] = "NBD_CMD_TRIM",
        [NBD_CMD_CACHE] = "NBD_CMD_CACHE",
        [NBD_CMD_WRITE_ZEROES] = "NBD_CMD_WRITE_ZEROES",
        [NBD_CMD_BLOCK_STATUS] = "NBD_CMD_BLOCK_STATUS",
    };
    return type < G_N_ELEMENTS(names) ? names[type] : "unknown command";
}

const char *
nbdsrv_opt_name(uint32_t opt)
{
    static const char *const names[] = {
        [NBD_OPT_EXPORT_NAME] = "NBD_OPT_EXPORT_NAME",
        [NBD_OPT_ABORT] = "NBD_OPT_ABORT",
        [NBD_OPT_LIST] = "NBD_OPT_LIST",
        [NBD_OPT_PEEK_EXPORT] = "NBD_OPT_PEEK_EXPORT",
        [NBD_OPT_STARTTLS] = "NBD_OPT_STARTTLS",
        [NBD_OPT_INFO] = "NBD_OPT_INFO",
        [NBD_OPT_GO] = "NBD_OPT_GO",
        [NBD_OPT_STRUCTURED_REPLY] = "NBD_OPT_STRUCTURED_REPLY",
        [NBD_OPT_LIST_META_CONTEXT] = "NBD_OPT_LIST_META_CONTEXT",
        [NBD_OPT_SET_META_CONTEXT] = "NBD_OPT_SET_META_CONTEXT",
        [NBD_OPT_EXTENDED_HEADERS] = "NBD_OPT_EXTENDED_HEADERS",
    };
    if (opt < G_N_ELEMENTS(names) && names[opt])
        return names[opt];
    return "unknown option";
}

void
nbdsrv_encode_opt_reply(uint8_t out[NBD_OPT_REP_HDR_LEN], uint32_t opt, uint32_t type, uint32_t len)
{
    nbdsrv_put_be64(out, NBD_MAGIC_REP);
    nbdsrv_put_be32(out + 8, opt);
    nbdsrv_put_be32(out + 12, type);
    nbdsrv_put_be32(out + 16, len);
}

void
nbdsrv_encode_simple_reply(uint8_t out[NBD_SIMPLE_REPLY_LEN], uint32_t error, uint64_t handle)
{
    nbdsrv_put_be32(out, NBD_SIMPLE_REPLY_MAGIC);
    nbdsrv_put_be32(out + 4, error);
    nbdsrv_put_be64(out + 8, handle);
}

void
nbdsrv_encode_chunk(uint8_t out[NBD_CHUNK_HDR_LEN], uint16_t flags, uint16_t type, uint64_t handle,
                    uint32_t len)
{
    nbdsrv_put_be32(out, NBD_STRUCTURED_REPLY_MAGIC);
    nbdsrv_put_be16(out + 4, flags);
    nbdsrv_put_be16(out + 6, type);
    nbdsrv_put_be64(out + 8, handle);
    nbdsrv_put_be32(out + 16, len);
}
