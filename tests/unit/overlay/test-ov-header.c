/* test-ov-header.c — header codec and verification, CRC-32C, UUIDs, create. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <glib.h>

#include "ov-test-util.h"

uint32_t ov_crc32c_soft(uint32_t crc, const void *data, size_t len);

static void
test_crc32c(void)
{
    /* RFC 3720 appendix B.4 test vectors and the usual check value. */
    uint8_t zeros[32] = {0}, ones[32], inc[32];

    memset(ones, 0xff, sizeof(ones));
    for (int i = 0; i < 32; i++)
        inc[i] = (uint8_t)i;
    g_assert_cmphex(ov_crc32c(0, "123456789", 9), ==, 0xE3069283);
    g_assert_cmphex(ov_crc32c(0, zeros, 32), ==, 0x8A9136AA);
    g_assert_cmphex(ov_crc32c(0, ones, 32), ==, 0x62A8AB43);
    g_assert_cmphex(ov_crc32c(0, inc, 32), ==, 0x46DD794E);
    /* Incremental == one-shot; hardware == table for odd lengths. */
    g_assert_cmphex(ov_crc32c(ov_crc32c(0, "1234", 4), "56789", 5), ==, 0xE3069283);
    for (size_t n = 0; n < 32; n++)
        g_assert_cmphex(ov_crc32c(0, inc + 1, n), ==, ov_crc32c_soft(0, inc + 1, n));
}

static void
test_uuid(void)
{
    uint8_t u[OV_UUID_LEN], v[OV_UUID_LEN];
    char text[37];

    ov_uuid_generate(u);
    g_assert_cmpint(u[6] >> 4, ==, 4);
    g_assert_cmpint(u[8] >> 6, ==, 2);
    ov_uuid_format(u, text);
    g_assert_cmpint(strlen(text), ==, 36);
    g_assert_true(ov_uuid_parse(text, v));
    g_assert_cmpmem(u, 16, v, 16);
    g_assert_true(ov_uuid_parse("01234567-89AB-cdef-0123-456789abcdef", v));
    g_assert_cmpint(v[5], ==, 0xab);
    g_assert_false(ov_uuid_parse("01234567-89ab-cdef-0123-456789abcde", v));
    g_assert_false(ov_uuid_parse("01234567089ab-cdef-0123-456789abcdef", v));
    g_assert_false(ov_uuid_parse("0123456g-89ab-cdef-0123-456789abcdef", v));
    g_assert_false(ov_uuid_parse(NULL, v));
}

static void
make_header(struct ov_header *h, uint8_t raw[OV_HEADER_SIZE])
{
    struct ov_base_id id;
    g_autoptr(GError) error = NULL;

    ovt_base_id(&id, 10 << 20, 3);
    g_assert_true(ov_header_init(h, &id, 4096, &error));
    g_assert_no_error(error);
    ov_header_encode(h, raw);
}

static void
refresh_crc(uint8_t raw[OV_HEADER_SIZE])
{
    uint32_t crc = GUINT32_TO_LE(ov_crc32c(0, raw, 508));
    memcpy(raw + 508, &crc, 4);
}

static void
test_codec(void)
{
    struct ov_header h, d;
    uint8_t raw[OV_HEADER_SIZE];
    g_autoptr(GError) error = NULL;

    make_header(&h, raw);
    g_assert_cmpmem(raw, 8, "OVGATEOV", 8);
    g_assert_true(ov_header_decode(raw, &d, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(d.size, ==, 10 << 20);
    g_assert_cmpuint(d.granule, ==, 4096);
    g_assert_cmpuint(d.map_blocks, ==, 1);
    g_assert_cmpuint(d.data_offset, ==, 1 << 20);
    g_assert_true(ov_base_id_equal(&d.base, &h.base));
    g_assert_cmpmem(d.overlay_uuid, 16, h.overlay_uuid, 16);
    /* Little-endian on disk whatever the host: virtual size at offset 40. */
    g_assert_cmpint(raw[40], ==, 0);
    g_assert_cmpint(raw[42], ==, 0xa0);
}

static void
expect_decode_error(uint8_t raw[OV_HEADER_SIZE], int code, const char *fragment)
{
    struct ov_header d;
    g_autoptr(GError) error = NULL;

    g_assert_false(ov_header_decode(raw, &d, &error));
    g_assert_error(error, OV_ERROR, code);
    g_assert_nonnull(strstr(error->message, fragment));
}

static void
test_bad(void)
{
    struct ov_header h;
    uint8_t raw[OV_HEADER_SIZE], bad[OV_HEADER_SIZE];
    uint64_t v;

    make_header(&h, raw);
    memcpy(bad, raw, sizeof(bad));
    bad[0] = 'X';
    expect_decode_error(bad, OV_ERROR_CORRUPT, "magic");

    memcpy(bad, raw, sizeof(bad));
    bad[200] ^= 1;
    expect_decode_error(bad, OV_ERROR_CORRUPT, "checksum");

    memcpy(bad, raw, sizeof(bad));
    v = GUINT64_TO_LE(UINT64_C(1) << 40);
    memcpy(bad + 16, &v, 8); /* unknown incompatible feature */
    refresh_crc(bad);
    expect_decode_error(bad, OV_ERROR_UNSUPPORTED, "incompatible");

    memcpy(bad, raw, sizeof(bad));
    memcpy(bad + 24, &v, 8); /* unknown compatible feature: fine */
    refresh_crc(bad);
    {
        struct ov_header d;
        g_assert_true(ov_header_decode(bad, &d, NULL));
        g_assert_cmphex(d.compat, ==, UINT64_C(1) << 40);
    }

    memcpy(bad, raw, sizeof(bad));
    bad[8] = 2; /* version 2 */
    refresh_crc(bad);
    expect_decode_error(bad, OV_ERROR_UNSUPPORTED, "newer");

    memcpy(bad, raw, sizeof(bad));
    bad[48] = 0x01; /* granule 4097 */
    refresh_crc(bad);
    expect_decode_error(bad, OV_ERROR_CORRUPT, "out of range");

    memcpy(bad, raw, sizeof(bad));
    bad[72] = 0x10; /* data offset moved */
    refresh_crc(bad);
    expect_decode_error(bad, OV_ERROR_CORRUPT, "inconsistent");

    memcpy(bad, raw, sizeof(bad));
    memset(bad + 104, 'a', 64); /* unterminated image name */
    refresh_crc(bad);
    expect_decode_error(bad, OV_ERROR_CORRUPT, "image name");
}

static void
test_layout(void)
{
    uint64_t blocks, data;
    g_autoptr(GError) error = NULL;

    g_assert_false(ov_layout_compute(1 << 20, 1000, &blocks, &data, &error));
    g_assert_error(error, OV_ERROR, OV_ERROR_INVALID);
    g_clear_error(&error);
    g_assert_false(ov_layout_compute(1 << 20, 256, &blocks, &data, NULL));
    g_assert_false(ov_layout_compute(1 << 20, 2u << 20, &blocks, &data, NULL));
    g_assert_false(ov_layout_compute(0, 4096, &blocks, &data, NULL));
    g_assert_true(ov_layout_compute(UINT64_C(1) << 40, 4096, &blocks, &data, NULL));
    g_assert_cmpuint(blocks, ==, ((UINT64_C(1) << 28) + OV_MAP_GRANULES - 1) / OV_MAP_GRANULES);
    g_assert_cmpuint(data % (1 << 20), ==, 0);
    g_assert_cmpuint(data, >=, OV_MAP_OFFSET + blocks * 8192);
    /* 2^22 blocks at most: 1 PiB at 512-byte granules is refused. */
    g_assert_false(ov_layout_compute(UINT64_C(1) << 50, 512, &blocks, &data, &error));
    g_assert_nonnull(strstr(error->message, "larger granule"));
}

static void
test_create(void)
{
    char *dir = ovt_tmpdir_new();
    g_autofree char *path = g_build_filename(dir, "c.ovl", NULL);
    struct ov_base_id id, got;
    g_autoptr(GError) error = NULL;
    uint8_t raw[2][OV_HEADER_SIZE];
    int fd;

    ovt_base_id(&id, 3 << 20, 7);
    g_assert_true(ov_overlay_create(path, &id, 0, false, &error));
    g_assert_no_error(error);
    g_assert_false(ov_overlay_create(path, &id, 4096, false, &error));
    g_assert_error(error, OV_ERROR, OV_ERROR_EXISTS);
    g_clear_error(&error);
    g_assert_true(ov_overlay_create(path, &id, 65536, true, &error));
    g_assert_true(ov_overlay_read_base_id(path, &got, &error));
    g_assert_no_error(error);
    g_assert_true(ov_base_id_equal(&id, &got));

    /* Both header copies are written and identical. */
    fd = open(path, O_RDONLY);
    g_assert_cmpint(pread(fd, raw[0], OV_HEADER_SIZE, 0), ==, OV_HEADER_SIZE);
    g_assert_cmpint(pread(fd, raw[1], OV_HEADER_SIZE, 4096), ==, OV_HEADER_SIZE);
    close(fd);
    g_assert_cmpmem(raw[0], OV_HEADER_SIZE, raw[1], OV_HEADER_SIZE);

    /* A damaged copy 0 falls back to copy 1. */
    fd = open(path, O_RDWR);
    g_assert_cmpint(pwrite(fd, "garbage", 7, 100), ==, 7);
    close(fd);
    g_assert_true(ov_overlay_read_base_id(path, &got, &error));
    g_assert_no_error(error);
    /* Both damaged: corrupt. */
    fd = open(path, O_RDWR);
    g_assert_cmpint(pwrite(fd, "garbage", 7, 4096 + 100), ==, 7);
    close(fd);
    g_assert_false(ov_overlay_read_base_id(path, &got, &error));
    g_assert_error(error, OV_ERROR, OV_ERROR_CORRUPT);
    g_clear_error(&error);

    /* Bad identities are refused. */
    memset(id.image, 0, sizeof(id.image));
    g_assert_false(ov_overlay_create(path, &id, 4096, true, &error));
    g_assert_error(error, OV_ERROR, OV_ERROR_INVALID);
    g_clear_error(&error);
    g_assert_false(ov_overlay_read_base_id("/nonexistent/x.ovl", &got, &error));
    g_assert_error(error, OV_ERROR, OV_ERROR_NOT_FOUND);
    ovt_tmpdir_free(dir);
}

static void
test_errno_map(void)
{
    g_assert_cmpint(ov_error_from_errno(ENOSPC), ==, OV_ERROR_NO_SPACE);
    g_assert_cmpint(ov_error_from_errno(-EDQUOT), ==, OV_ERROR_NO_SPACE);
    g_assert_cmpint(ov_error_from_errno(EIO), ==, OV_ERROR_FAILED);
    g_assert_cmpint(ov_error_from_errno(ENOENT), ==, OV_ERROR_NOT_FOUND);
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/overlay/crc32c", test_crc32c);
    g_test_add_func("/overlay/uuid", test_uuid);
    g_test_add_func("/overlay/header/codec", test_codec);
    g_test_add_func("/overlay/header/bad", test_bad);
    g_test_add_func("/overlay/header/layout", test_layout);
    g_test_add_func("/overlay/header/create", test_create);
    g_test_add_func("/overlay/errno", test_errno_map);
    return g_test_run();
}
