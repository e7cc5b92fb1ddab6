/* test-nbd-codec.c — the NBD wire codec: option payload parsing, request
 * checks, reply encoding, errno mapping, metadata context matching. */
#include <errno.h>
#include <string.h>
#include <glib.h>

#include "nbd-int.h"

/* Build an NBD_OPT_INFO/GO payload. */
static GByteArray *
info_payload(const char *name, size_t name_len, const uint16_t *infos, unsigned n)
{
    GByteArray *b = g_byte_array_new();
    uint8_t tmp[4];

    nbdsrv_put_be32(tmp, (uint32_t)name_len);
    g_byte_array_append(b, tmp, 4);
    g_byte_array_append(b, (const uint8_t *)name, (guint)name_len);
    nbdsrv_put_be16(tmp, (uint16_t)n);
    g_byte_array_append(b, tmp, 2);
    for (unsigned i = 0; i < n; i++) {
        nbdsrv_put_be16(tmp, infos[i]);
        g_byte_array_append(b, tmp, 2);
    }
    return b;
}

static void
test_info_ok(void)
{
    const uint16_t infos[] = {NBD_INFO_NAME, NBD_INFO_BLOCK_SIZE};
    g_autoptr(GByteArray) b = info_payload("lab/pc1", 7, infos, 2);
    struct nbdsrv_info_req req;

    g_assert_cmpuint(nbdsrv_parse_info_req(b->data, b->len, &req), ==, 0);
    g_assert_cmpstr(req.name, ==, "lab/pc1");
    g_assert_cmpuint(req.n_info, ==, 2);
    g_assert_cmpuint(nbdsrv_get_be16(req.info + 2), ==, NBD_INFO_BLOCK_SIZE);
    g_free(req.name);

    g_autoptr(GByteArray) empty = info_payload("", 0, NULL, 0);
    g_assert_cmpuint(nbdsrv_parse_info_req(empty->data, empty->len, &req), ==, 0);
    g_assert_cmpstr(req.name, ==, "");
    g_free(req.name);
}

static void
test_info_malformed(void)
{
    const uint16_t infos[] = {NBD_INFO_NAME};
    g_autoptr(GByteArray) b = info_payload("lab", 3, infos, 1);
    struct nbdsrv_info_req req;

    /* truncated anywhere */
    for (guint len = 0; len < b->len; len++)
        g_assert_cmpuint(nbdsrv_parse_info_req(b->data, len, &req), ==, NBD_REP_ERR_INVALID);
    g_assert_null(req.name);
    /* trailing garbage: count does not match */
    g_byte_array_append(b, (const uint8_t *)"x", 1);
    g_assert_cmpuint(nbdsrv_parse_info_req(b->data, b->len, &req), ==, NBD_REP_ERR_INVALID);
    /* name length pointing far beyond the payload */
    g_autoptr(GByteArray) big = info_payload("lab", 3, NULL, 0);
    nbdsrv_put_be32(big->data, 0xffffffffu);
    g_assert_cmpuint(nbdsrv_parse_info_req(big->data, big->len, &req), ==, NBD_REP_ERR_INVALID);
    /* NUL inside the name, invalid UTF-8, too long */
    g_autoptr(GByteArray) nul = info_payload("a\0b", 3, NULL, 0);
    g_assert_cmpuint(nbdsrv_parse_info_req(nul->data, nul->len, &req), ==, NBD_REP_ERR_INVALID);
    g_autoptr(GByteArray) bad = info_payload("\xff\xfe", 2, NULL, 0);
    g_assert_cmpuint(nbdsrv_parse_info_req(bad->data, bad->len, &req), ==, NBD_REP_ERR_INVALID);
    g_autofree char *longname = g_strnfill(NBDSRV_STRING_MAX + 1, 'a');
    g_autoptr(GByteArray) lng = info_payload(longname, strlen(longname), NULL, 0);
    g_assert_cmpuint(nbdsrv_parse_info_req(lng->data, lng->len, &req), ==, NBD_REP_ERR_INVALID);
}

static GByteArray *
meta_payload(const char *name, const char *const *queries)
{
    GByteArray *b = g_byte_array_new();
    uint8_t tmp[4];
    unsigned n = queries ? g_strv_length((char **)queries) : 0;

    nbdsrv_put_be32(tmp, (uint32_t)strlen(name));
    g_byte_array_append(b, tmp, 4);
    g_byte_array_append(b, (const uint8_t *)name, (guint)strlen(name));
    nbdsrv_put_be32(tmp, n);
    g_byte_array_append(b, tmp, 4);
    for (unsigned i = 0; i < n; i++) {
        nbdsrv_put_be32(tmp, (uint32_t)strlen(queries[i]));
        g_byte_array_append(b, tmp, 4);
        g_byte_array_append(b, (const uint8_t *)queries[i], (guint)strlen(queries[i]));
    }
    return b;
}

static void
test_meta_parse(void)
{
    const char *const q[] = {"base:allocation", "ovgate:", NULL};
    g_autoptr(GByteArray) b = meta_payload("lab", q);
    g_autofree struct nbdsrv_meta_req *req = g_new(struct nbdsrv_meta_req, 1);

    g_assert_cmpuint(nbdsrv_parse_meta_req(b->data, b->len, req), ==, 0);
    g_assert_cmpstr(req->name, ==, "lab");
    g_assert_cmpuint(req->n_queries, ==, 2);
    g_assert_cmpuint(req->query_len[1], ==, 7);
    g_assert_cmpmem(req->query[1], 7, "ovgate:", 7);
    g_free(req->name);

    for (guint len = 0; len < b->len; len++)
        g_assert_cmpuint(nbdsrv_parse_meta_req(b->data, len, req), !=, 0);
    /* more queries than we accept */
    g_autoptr(GByteArray) many = meta_payload("lab", NULL);
    nbdsrv_put_be32(many->data + 7, NBDSRV_MAX_QUERIES + 1);
    g_assert_cmpuint(nbdsrv_parse_meta_req(many->data, many->len, req), ==, NBD_REP_ERR_TOO_BIG);
    /* query length beyond the payload */
    g_autoptr(GByteArray) lie = meta_payload("lab", q);
    nbdsrv_put_be32(lie->data + 11, 0x7fffffff);
    g_assert_cmpuint(nbdsrv_parse_meta_req(lie->data, lie->len, req), ==, NBD_REP_ERR_INVALID);
}

static void
test_meta_match(void)
{
    g_assert_cmpuint(nbdsrv_meta_match("base:allocation", 15, false), ==,
                     NBDSRV_META_BASE_ALLOCATION);
    g_assert_cmpuint(nbdsrv_meta_match("ovgate:overlay", 14, false), ==,
                     NBDSRV_META_OVGATE_OVERLAY);
    /* the bare namespace is a wildcard for LIST only */
    g_assert_cmpuint(nbdsrv_meta_match("base:", 5, true), ==, NBDSRV_META_BASE_ALLOCATION);
    g_assert_cmpuint(nbdsrv_meta_match("base:", 5, false), ==, 0);
    g_assert_cmpuint(nbdsrv_meta_match("ovgate:", 7, true), ==, NBDSRV_META_OVGATE_OVERLAY);
    g_assert_cmpuint(nbdsrv_meta_match("base:allocationX", 16, false), ==, 0);
    g_assert_cmpuint(nbdsrv_meta_match("qemu:dirty-bitmap:x", 19, true), ==, 0);
    g_assert_cmpuint(nbdsrv_meta_match("", 0, true), ==, 0);
    g_assert_cmpstr(nbdsrv_meta_name(0), ==, "base:allocation");
    g_assert_cmpstr(nbdsrv_meta_name(1), ==, "ovgate:overlay");
    g_assert_cmpuint(nbdsrv_meta_id(0), !=, nbdsrv_meta_id(1));
}

static struct nbdsrv_neg
neg_rw(void)
{
    return (struct nbdsrv_neg){
        .size = 1 << 20,
        .tflags = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA |
                  NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES | NBD_FLAG_SEND_FAST_ZERO |
                  NBD_FLAG_SEND_CACHE | NBD_FLAG_SEND_DF,
        .structured = true,
        .meta = NBDSRV_META_BASE_ALLOCATION,
    };
}

static uint32_t
check(uint16_t type, uint16_t flags, uint64_t off, uint32_t len, const struct nbdsrv_neg *neg)
{
    struct nbdsrv_request r = {.type = type, .flags = flags, .offset = off, .length = len};
    return nbdsrv_request_check(&r, neg);
}

static void
test_request_check(void)
{
    struct nbdsrv_neg rw = neg_rw();
    struct nbdsrv_neg ro = rw;
    ro.tflags = NBD_FLAG_HAS_FLAGS | NBD_FLAG_READ_ONLY | NBD_FLAG_SEND_FLUSH;
    ro.structured = false;
    ro.meta = 0;

    g_assert_cmpuint(check(NBD_CMD_READ, 0, 0, 4096, &rw), ==, 0);
    g_assert_cmpuint(check(NBD_CMD_READ, NBD_CMD_FLAG_DF, 0, 4096, &rw), ==, 0);
    g_assert_cmpuint(check(NBD_CMD_READ, NBD_CMD_FLAG_DF, 0, 4096, &ro), ==, NBD_EINVAL);
    g_assert_cmpuint(check(NBD_CMD_READ, 0, (1 << 20) - 1, 2, &rw), ==, NBD_EINVAL);
    g_assert_cmpuint(check(NBD_CMD_READ, 0, UINT64_MAX, 2, &rw), ==, NBD_EINVAL);
    g_assert_cmpuint(check(NBD_CMD_READ, 0, 0, 0, &rw), ==, NBD_EINVAL);
    g_assert_cmpuint(check(NBD_CMD_READ, NBD_CMD_FLAG_NO_HOLE, 0, 512, &rw), ==, NBD_EINVAL);
    /* proto.md: ENOSPC for writes past the end, EPERM on read-only */
    g_assert_cmpuint(check(NBD_CMD_WRITE, 0, (1 << 20) - 1, 2, &rw), ==, NBD_ENOSPC);
    g_assert_cmpuint(check(NBD_CMD_WRITE, NBD_CMD_FLAG_FUA, 0, 512, &rw), ==, 0);
    g_assert_cmpuint(check(NBD_CMD_WRITE, 0, 0, 512, &ro), ==, NBD_EPERM);
    g_assert_cmpuint(check(NBD_CMD_WRITE, NBD_CMD_FLAG_FUA, 0, 512, &ro), ==, NBD_EPERM);
    g_assert_cmpuint(check(NBD_CMD_TRIM, 0, 0, 512, &ro), ==, NBD_EPERM);
    g_assert_cmpuint(check(NBD_CMD_WRITE_ZEROES, 0, 0, 512, &ro), ==, NBD_EPERM);
    g_assert_cmpuint(check(NBD_CMD_WRITE, 0, 0, NBDSRV_MAX_PAYLOAD + 1, &rw), ==, NBD_EINVAL);
    g_assert_cmpuint(check(NBD_CMD_WRITE_ZEROES,
                           NBD_CMD_FLAG_NO_HOLE | NBD_CMD_FLAG_FAST_ZERO | NBD_CMD_FLAG_FUA, 0,
                           1 << 20, &rw),
                     ==, 0);
    g_assert_cmpuint(check(NBD_CMD_TRIM, NBD_CMD_FLAG_NO_HOLE, 0, 512, &rw), ==, NBD_EINVAL);
    g_assert_cmpuint(check(NBD_CMD_FLUSH, 0, 0, 0, &rw), ==, 0);
    g_assert_cmpuint(check(NBD_CMD_FLUSH, 0, 0, 0, &ro), ==, 0);
    g_assert_cmpuint(check(NBD_CMD_FLUSH, 0, 512, 0, &rw), ==, NBD_EINVAL);
    g_assert_cmpuint(check(NBD_CMD_CACHE, 0, 0, 4096, &rw), ==, 0);
    g_assert_cmpuint(check(NBD_CMD_CACHE, 0, 0, 4096, &ro), ==, NBD_EINVAL);
    rw.size = 1ULL << 40;
    g_assert_cmpuint(check(NBD_CMD_CACHE, 0, 0, NBDSRV_MAX_PAYLOAD + 1, &rw), ==, NBD_EINVAL);
    g_assert_cmpuint(check(NBD_CMD_TRIM, 0, 0, UINT32_MAX, &rw), ==, 0);
    rw.size = 1 << 20;
    g_assert_cmpuint(check(NBD_CMD_BLOCK_STATUS, NBD_CMD_FLAG_REQ_ONE, 0, 4096, &rw), ==, 0);
    g_assert_cmpuint(check(NBD_CMD_BLOCK_STATUS, 0, 0, 4096, &ro), ==, NBD_EINVAL);
    g_assert_cmpuint(check(NBD_CMD_BLOCK_STATUS, 0, 1 << 20, 1, &rw), ==, NBD_EINVAL);
    g_assert_cmpuint(check(NBD_CMD_DISC, 0xffff, 99, 99, &rw), ==, 0);
    g_assert_cmpuint(check(8, 0, 0, 0, &rw), ==, NBD_EINVAL);
    g_assert_cmpuint(check(0xffff, 0, 0, 0, &rw), ==, NBD_EINVAL);
    g_assert_cmpuint(check(NBD_CMD_READ, 1u << 15, 0, 512, &rw), ==, NBD_EINVAL);
}

static void
test_errno_map(void)
{
    static const struct {
        int err;
        uint32_t nbd;
    } map[] = {
        {0, NBD_SUCCESS},        {-EPERM, NBD_EPERM},
        {-EROFS, NBD_EPERM},     {-EIO, NBD_EIO},
        {-ENOMEM, NBD_ENOMEM},   {-EINVAL, NBD_EINVAL},
        {-ENOSPC, NBD_ENOSPC},   {-EDQUOT, NBD_ENOSPC},
        {-EFBIG, NBD_ENOSPC},    {-EOVERFLOW, NBD_EOVERFLOW},
        {-ENOTSUP, NBD_ENOTSUP}, {-ESHUTDOWN, NBD_ESHUTDOWN},
        {EIO, NBD_EIO},          {-EILSEQ, NBD_EIO},
        {-EBADF, NBD_EIO},
    };
    for (size_t i = 0; i < G_N_ELEMENTS(map); i++)
        g_assert_cmpuint(nbdsrv_errno_to_nbd(map[i].err), ==, map[i].nbd);
}

static void
test_encode(void)
{
    uint8_t o[NBD_OPT_REP_HDR_LEN], s[NBD_SIMPLE_REPLY_LEN], c[NBD_CHUNK_HDR_LEN];
    static const uint8_t want_o[] = {0x00, 0x03, 0xe8, 0x89, 0x04, 0x55, 0x65, 0xa9, 0, 0,
                                     0,    7,    0x80, 0,    0,    6,    0,    0,    0, 5};
    static const uint8_t want_s[] = {0x67, 0x44, 0x66, 0x98, 0, 0, 0, 28, 1, 2, 3, 4, 5, 6, 7, 8};
    static const uint8_t want_c[] = {0x66, 0x8e, 0x33, 0xef, 0, 1, 0x80, 1, 0, 0,
                                     0,    0,    0,    0,    0, 9, 0,    0, 0, 12};

    nbdsrv_encode_opt_reply(o, NBD_OPT_GO, NBD_REP_ERR_UNKNOWN, 5);
    g_assert_cmpmem(o, sizeof(o), want_o, sizeof(want_o));
    nbdsrv_encode_simple_reply(s, NBD_ENOSPC, 0x0102030405060708ULL);
    g_assert_cmpmem(s, sizeof(s), want_s, sizeof(want_s));
    nbdsrv_encode_chunk(c, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR, 9, 12);
    g_assert_cmpmem(c, sizeof(c), want_c, sizeof(want_c));

    uint8_t b[8];
    nbdsrv_put_be64(b, 0x1122334455667788ULL);
    g_assert_cmphex(nbdsrv_get_be64(b), ==, 0x1122334455667788ULL);
    g_assert_cmphex(nbdsrv_get_be32(b + 4), ==, 0x55667788u);
    g_assert_cmphex(nbdsrv_get_be16(b + 6), ==, 0x7788u);
}

static void
test_request_parse(void)
{
    uint8_t h[NBD_REQUEST_LEN];
    struct nbdsrv_request r;

    nbdsrv_put_be32(h, NBD_REQUEST_MAGIC);
    nbdsrv_put_be16(h + 4, NBD_CMD_FLAG_FUA);
    nbdsrv_put_be16(h + 6, NBD_CMD_WRITE);
    nbdsrv_put_be64(h + 8, 0xdeadbeefcafeULL);
    nbdsrv_put_be64(h + 16, 1ULL << 40);
    nbdsrv_put_be32(h + 24, 65536);
    g_assert_true(nbdsrv_parse_request(h, &r));
    g_assert_cmpuint(r.flags, ==, NBD_CMD_FLAG_FUA);
    g_assert_cmpuint(r.type, ==, NBD_CMD_WRITE);
    g_assert_cmphex(r.handle, ==, 0xdeadbeefcafeULL);
    g_assert_cmpuint(r.offset, ==, 1ULL << 40);
    g_assert_cmpuint(r.length, ==, 65536);
    h[0] ^= 1;
    g_assert_false(nbdsrv_parse_request(h, &r));
}

static void
test_tflags(void)
{
    struct nbdsrv_export rw = {.read_only = false, .multi_conn = false};
    struct nbdsrv_export ro = {.read_only = true, .multi_conn = true};

    uint16_t f = nbdsrv_export_tflags(&rw, true);
    g_assert_true(f & NBD_FLAG_HAS_FLAGS);
    g_assert_false(f & NBD_FLAG_READ_ONLY);
    g_assert_true(f & NBD_FLAG_SEND_FUA);
    g_assert_true(f & NBD_FLAG_SEND_TRIM);
    g_assert_true(f & NBD_FLAG_SEND_FAST_ZERO);
    g_assert_true(f & NBD_FLAG_SEND_DF);
    g_assert_false(f & NBD_FLAG_CAN_MULTI_CONN);
    f = nbdsrv_export_tflags(&ro, false);
    g_assert_true(f & NBD_FLAG_READ_ONLY);
    g_assert_false(f & (NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES | NBD_FLAG_SEND_FUA));
    g_assert_false(f & NBD_FLAG_SEND_DF); /* proto.md: only with structured replies */
    g_assert_true(f & NBD_FLAG_CAN_MULTI_CONN);
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/nbd/codec/info-request", test_info_ok);
    g_test_add_func("/nbd/codec/info-request-malformed", test_info_malformed);
    g_test_add_func("/nbd/codec/meta-request", test_meta_parse);
    g_test_add_func("/nbd/codec/meta-match", test_meta_match);
    g_test_add_func("/nbd/codec/request-check", test_request_check);
    g_test_add_func("/nbd/codec/request-parse", test_request_parse);
    g_test_add_func("/nbd/codec/errno-map", test_errno_map);
    g_test_add_func("/nbd/codec/encode", test_encode);
    g_test_add_func("/nbd/codec/transmission-flags", test_tflags);
    return g_test_run();
}
