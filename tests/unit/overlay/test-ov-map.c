/* test-ov-map.c — map slots (codec, A/B selection, torn and corrupt slots),
 * autoclear features, and ov_overlay_check (verify and repair). */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <glib.h>

#include "ov-test-util.h"

static const uint8_t uuid[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

static void
test_slot_codec(void)
{
    uint64_t words[OV_MAP_WORDS] = {0}, out[OV_MAP_WORDS], seq = 0;
    uint8_t slot[OV_SLOT_SIZE];
    const char *why;

    words[0] = 0x9; /* granule 0 DATA, granule 1 ZERO */
    words[503] = UINT64_C(1) << 62;
    ov_slot_encode(slot, 7, uuid, 42, words);
    g_assert_cmpint(ov_slot_decode(slot, 7, uuid, OV_MAP_GRANULES, &seq, out, &why), ==,
                    OV_SLOT_VALID);
    g_assert_cmpuint(seq, ==, 42);
    g_assert_cmpmem(words, sizeof(words), out, sizeof(out));
    /* Wrong block, wrong overlay, too few granules, flipped bit. */
    g_assert_cmpint(ov_slot_decode(slot, 8, uuid, OV_MAP_GRANULES, &seq, out, &why), ==,
                    OV_SLOT_INVALID);
    g_assert_cmpstr(why, ==, "belongs to another map block");
    {
        uint8_t other[16] = {0};
        g_assert_cmpint(ov_slot_decode(slot, 7, other, OV_MAP_GRANULES, &seq, out, &why), ==,
                        OV_SLOT_INVALID);
    }
    g_assert_cmpint(ov_slot_decode(slot, 7, uuid, 100, &seq, out, &why), ==, OV_SLOT_INVALID);
    g_assert_cmpstr(why, ==, "granules beyond the end of the disk");
    slot[1000] ^= 0x10;
    g_assert_cmpint(ov_slot_decode(slot, 7, uuid, OV_MAP_GRANULES, &seq, out, &why), ==,
                    OV_SLOT_INVALID);
    g_assert_cmpstr(why, ==, "checksum mismatch");
    /* State 3 with a good checksum. */
    words[5] = 0x3;
    ov_slot_encode(slot, 7, uuid, 1, words);
    g_assert_cmpint(ov_slot_decode(slot, 7, uuid, OV_MAP_GRANULES, &seq, out, &why), ==,
                    OV_SLOT_INVALID);
    g_assert_cmpstr(why, ==, "invalid granule state");
    memset(slot, 0, sizeof(slot));
    g_assert_cmpint(ov_slot_decode(slot, 7, uuid, OV_MAP_GRANULES, &seq, out, &why), ==,
                    OV_SLOT_EMPTY);
}

static void
test_select(void)
{
    const enum ov_slot_state E = OV_SLOT_EMPTY, V = OV_SLOT_VALID, I = OV_SLOT_INVALID;

    g_assert_cmpint(ov_slot_select(V, 3, V, 4), ==, 1);
    g_assert_cmpint(ov_slot_select(V, 5, V, 4), ==, 0);
    g_assert_cmpint(ov_slot_select(V, 5, I, 0), ==, 0); /* torn newer write */
    g_assert_cmpint(ov_slot_select(I, 0, V, 2), ==, 1);
    g_assert_cmpint(ov_slot_select(V, 1, E, 0), ==, 0);
    g_assert_cmpint(ov_slot_select(E, 0, E, 0), ==, OV_SELECT_NONE);
    g_assert_cmpint(ov_slot_select(I, 0, E, 0), ==, OV_SELECT_NONE); /* torn first write */
    g_assert_cmpint(ov_slot_select(E, 0, I, 0), ==, OV_SELECT_NONE);
    g_assert_cmpint(ov_slot_select(I, 0, I, 0), ==, OV_SELECT_CORRUPT);
}

/* ---- on files ---- */

#define SIZE (UINT64_C(20) << 20) /* 3 map blocks at 512-byte granules */
#define GRAN 512u
#define BLOCK_BYTES ((uint64_t)OV_MAP_GRANULES * GRAN)

struct fx {
    char *dir, *base_path, *path;
    struct ov_base *base;
};

static void
fx_setup(struct fx *f, gconstpointer data)
{
    f->dir = ovt_tmpdir_new();
    f->base_path = ovt_make_sparse_base(f->dir, "base.raw", SIZE);
    f->path = ovt_make_overlay(f->dir, "c.ovl", SIZE, 1, GRAN);
    f->base = ovt_open_base(f->base_path, 1);
}

static void
fx_teardown(struct fx *f, gconstpointer data)
{
    ov_base_unref(f->base);
    g_free(f->base_path);
    g_free(f->path);
    ovt_tmpdir_free(f->dir);
}

static struct ov_overlay *
fx_open(struct fx *f, unsigned flags)
{
    g_autoptr(GError) error = NULL;
    struct ov_overlay *ov = ov_overlay_open(f->path, f->base, flags, &error);

    g_assert_no_error(error);
    return ov;
}

static void
poke(const char *path, uint64_t offset, const void *bytes, size_t n)
{
    int fd = open(path, O_RDWR);

    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(pwrite(fd, bytes, n, (off_t)offset), ==, (ssize_t)n);
    close(fd);
}

static bool
first_kind(uint64_t offset, uint64_t length, enum ov_extent_kind kind, void *user_data)
{
    *(enum ov_extent_kind *)user_data = kind;
    return false;
}

static enum ov_extent_kind
kind_at(struct ov_overlay *ov, uint64_t off)
{
    enum ov_extent_kind k = 99;
    g_assert_cmpint(ov_overlay_block_status(ov, off, 1, first_kind, &k), ==, 0);
    return k;
}

static void
write_byte(struct ov_overlay *ov, uint64_t off, uint8_t v)
{
    g_assert_cmpint(ov_overlay_pwrite(ov, &v, 1, off, 0), ==, 0);
}

static void
test_torn_newest(struct fx *f, gconstpointer data)
{
    struct ov_overlay *ov = fx_open(f, 0);

    write_byte(ov, 5 * GRAN, 1);
    g_assert_cmpint(ov_overlay_flush(ov), ==, 0); /* block 0: slot A, seq 1 */
    write_byte(ov, 6 * GRAN, 2);
    g_assert_cmpint(ov_overlay_flush(ov), ==, 0); /* block 0: slot B, seq 2 */
    ov_overlay_close(ov, NULL);
    /* Tear slot B (as a crash during its write would). */
    poke(f->path, ov_slot_offset(0, 1) + 2000, "torn", 4);
    ov = fx_open(f, 0);
    g_assert_cmpint(kind_at(ov, 5 * GRAN), ==, OV_EXTENT_DATA);
    g_assert_cmpint(kind_at(ov, 6 * GRAN), ==, OV_EXTENT_BASE); /* seq 1 state */
    {
        struct ov_overlay_info info;
        ov_overlay_get_info(ov, &info);
        g_assert_false(info.corrupt);
    }
    /* The next flush rewrites slot B (the torn one) and wins. */
    write_byte(ov, 7 * GRAN, 3);
    g_assert_cmpint(ov_overlay_flush(ov), ==, 0);
    ov_overlay_close(ov, NULL);
    poke(f->path, ov_slot_offset(0, 0) + 2000, "torn", 4); /* now slot A is old */
    ov = fx_open(f, 0);
    g_assert_cmpint(kind_at(ov, 7 * GRAN), ==, OV_EXTENT_DATA);
    ov_overlay_close(ov, NULL);
}

static void
test_torn_first(struct fx *f, gconstpointer data)
{
    struct ov_overlay *ov;
    GString *report = g_string_new(NULL);
    bool clean = false;

    poke(f->path, ov_slot_offset(1, 0) + 100, "half-written", 12);
    ov = fx_open(f, 0);
    g_assert_cmpint(kind_at(ov, BLOCK_BYTES + 4096), ==, OV_EXTENT_BASE);
    write_byte(ov, BLOCK_BYTES + 4096, 9);
    g_assert_cmpint(ov_overlay_flush(ov), ==, 0);
    ov_overlay_close(ov, NULL);
    g_assert_true(ov_overlay_check(f->path, false, report, &clean, NULL));
    g_assert_true(clean);
    ov = fx_open(f, 0);
    g_assert_cmpint(kind_at(ov, BLOCK_BYTES + 4096), ==, OV_EXTENT_DATA);
    ov_overlay_close(ov, NULL);
    g_string_free(report, TRUE);
}

static void
test_corrupt_block(struct fx *f, gconstpointer data)
{
    struct ov_overlay *ov = fx_open(f, 0);
    struct ov_overlay_info info;
    g_autoptr(GError) error = NULL;
    GString *report = g_string_new(NULL);
    uint8_t buf[1024];
    bool clean = true;

    write_byte(ov, 10, 1);
    write_byte(ov, BLOCK_BYTES + 10, 2);
    g_assert_cmpint(ov_overlay_flush(ov), ==, 0);
    write_byte(ov, BLOCK_BYTES + 20, 3);
    g_assert_cmpint(ov_overlay_flush(ov), ==, 0);
    ov_overlay_close(ov, NULL);
    poke(f->path, ov_slot_offset(1, 0) + 300, "bad", 3);
    poke(f->path, ov_slot_offset(1, 1) + 300, "bad", 3);

    g_test_expect_message("ovgate-overlay", G_LOG_LEVEL_WARNING, "*map block 1 has no valid*");
    ov = fx_open(f, 0);
    g_test_assert_expected_messages();
    ov_overlay_get_info(ov, &info);
    g_assert_true(info.corrupt);
    g_assert_cmpint(ov_overlay_pread(ov, buf, 1, BLOCK_BYTES + 10), ==, -EIO);
    g_assert_cmpint(ov_overlay_pread(ov, buf, 1024, BLOCK_BYTES - 512), ==, -EIO);
    g_assert_cmpint(ov_overlay_pwrite(ov, buf, 1, BLOCK_BYTES + 10, 0), ==, -EIO);
    g_assert_cmpint(ov_overlay_zero(ov, BLOCK_BYTES, BLOCK_BYTES, 0), ==, -EIO);
    g_assert_cmpint(ov_overlay_block_status(ov, 0, SIZE, first_kind, buf), ==, 0);
    g_assert_cmpint(ov_overlay_pread(ov, buf, 1, 10), ==, 0); /* other blocks work */
    g_assert_cmpint(buf[0], ==, 1);

    /* check refuses while the overlay is open for writing. */
    g_assert_false(ov_overlay_check(f->path, false, report, &clean, &error));
    g_assert_error(error, OV_ERROR, OV_ERROR_LOCKED);
    g_clear_error(&error);
    ov_overlay_close(ov, NULL);

    g_assert_true(ov_overlay_check(f->path, false, report, &clean, &error));
    g_assert_no_error(error);
    g_assert_false(clean);
    g_assert_nonnull(strstr(report->str, "map block 1 (bytes 8257536..16515071): no valid copy"));
    g_string_truncate(report, 0);
    g_assert_true(ov_overlay_check(f->path, true, report, &clean, &error));
    g_assert_false(clean);
    g_assert_nonnull(strstr(report->str, "repaired: map block 1 set to BASE"));
    g_string_truncate(report, 0);
    g_assert_true(ov_overlay_check(f->path, false, report, &clean, &error));
    g_assert_true(clean);
    g_assert_nonnull(strstr(report->str, "1 DATA granules"));

    ov = fx_open(f, 0);
    ov_overlay_get_info(ov, &info);
    g_assert_false(info.corrupt);
    g_assert_cmpint(ov_overlay_pread(ov, buf, 1, BLOCK_BYTES + 10), ==, 0);
    g_assert_cmpint(buf[0], ==, 0); /* the base again */
    ov_overlay_close(ov, NULL);
    g_string_free(report, TRUE);
}

static void
test_check_header_and_size(struct fx *f, gconstpointer data)
{
    struct ov_overlay *ov = fx_open(f, 0);
    GString *report = g_string_new(NULL);
    g_autoptr(GError) error = NULL;
    struct ov_header h;
    unsigned good;
    bool clean = false;
    int fd;

    write_byte(ov, 100, 1);
    write_byte(ov, SIZE - 1, 2);
    ov_overlay_close(ov, NULL);
    g_assert_true(ov_overlay_check(f->path, false, report, &clean, &error));
    g_assert_true(clean);

    poke(f->path, OV_HEADER_COPY_STRIDE + 20, "xx", 2);
    fd = open(f->path, O_RDWR);
    g_assert_true(ov_header_read(fd, &h, &good, NULL));
    g_assert_cmpuint(good, ==, 1);
    g_assert_cmpint(ftruncate(fd, (off_t)(h.data_offset + 4096)), ==, 0);
    close(fd);

    /* Open still works on the good copy, flags the short file, and a DATA
     * granule past the end of the file reads as an error, not as zeros. */
    g_test_expect_message("ovgate-overlay", G_LOG_LEVEL_WARNING, "*header copy 1 is damaged*");
    g_test_expect_message("ovgate-overlay", G_LOG_LEVEL_WARNING, "*shorter than its data*");
    ov = fx_open(f, 0);
    g_test_assert_expected_messages();
    {
        struct ov_overlay_info info;
        uint8_t b;
        ov_overlay_get_info(ov, &info);
        g_assert_true(info.corrupt);
        g_assert_cmpint(ov_overlay_pread(ov, &b, 1, SIZE - 1), ==, -EIO);
        g_assert_cmpint(ov_overlay_pread(ov, &b, 1, 100), ==, 0);
        g_assert_cmpint(b, ==, 1);
    }
    ov_overlay_close(ov, NULL);

    g_string_truncate(report, 0);
    g_assert_true(ov_overlay_check(f->path, true, report, &clean, &error));
    g_assert_no_error(error);
    g_assert_false(clean);
    g_assert_nonnull(strstr(report->str, "header copy 1: overlay header: checksum mismatch"));
    g_assert_nonnull(strstr(report->str, "repaired: header copy 1 rewritten"));
    g_assert_nonnull(strstr(report->str, "1 DATA granules lie past the end"));
    g_assert_nonnull(strstr(report->str, "repaired: file extended"));
    g_string_truncate(report, 0);
    g_assert_true(ov_overlay_check(f->path, false, report, &clean, &error));
    g_assert_true(clean);
    ov = fx_open(f, 0);
    g_assert_cmpint(kind_at(ov, 100), ==, OV_EXTENT_DATA);
    g_assert_cmpint(kind_at(ov, SIZE - 1), ==, OV_EXTENT_BASE);
    ov_overlay_close(ov, NULL);
    g_string_free(report, TRUE);
}

static void
set_autoclear(const char *path, uint64_t bits)
{
    int fd = open(path, O_RDWR);
    uint8_t raw[OV_HEADER_SIZE];
    uint64_t v = GUINT64_TO_LE(bits);
    uint32_t crc;

    g_assert_cmpint(pread(fd, raw, OV_HEADER_SIZE, 0), ==, OV_HEADER_SIZE);
    memcpy(raw + 32, &v, 8);
    crc = GUINT32_TO_LE(ov_crc32c(0, raw, 508));
    memcpy(raw + 508, &crc, 4);
    g_assert_cmpint(pwrite(fd, raw, OV_HEADER_SIZE, 0), ==, OV_HEADER_SIZE);
    g_assert_cmpint(pwrite(fd, raw, OV_HEADER_SIZE, OV_HEADER_COPY_STRIDE), ==, OV_HEADER_SIZE);
    close(fd);
}

static uint64_t
get_autoclear(const char *path)
{
    int fd = open(path, O_RDONLY);
    struct ov_header h;
    unsigned good;

    g_assert_true(ov_header_read(fd, &h, &good, NULL));
    g_assert_cmpuint(good, ==, 3);
    close(fd);
    return h.autoclear;
}

static void
test_autoclear(struct fx *f, gconstpointer data)
{
    struct ov_overlay *ov;

    set_autoclear(f->path, UINT64_C(1) << 5);
    ov = fx_open(f, OV_OPEN_READ_ONLY);
    ov_overlay_close(ov, NULL);
    g_assert_cmphex(get_autoclear(f->path), ==, UINT64_C(1) << 5);
    ov = fx_open(f, 0);
    ov_overlay_close(ov, NULL);
    g_assert_cmphex(get_autoclear(f->path), ==, 0);
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/overlay/map/slot-codec", test_slot_codec);
    g_test_add_func("/overlay/map/select", test_select);
#define ADD(path, fn) g_test_add(path, struct fx, NULL, fx_setup, fn, fx_teardown)
    ADD("/overlay/map/torn-newest", test_torn_newest);
    ADD("/overlay/map/torn-first", test_torn_first);
    ADD("/overlay/map/corrupt-block", test_corrupt_block);
    ADD("/overlay/check/header-and-size", test_check_header_and_size);
    ADD("/overlay/header/autoclear", test_autoclear);
    return g_test_run();
}
