/* test-ov-edge.c — edge cases of the overlay data path, each against a
 * reference buffer: disks smaller than one granule, a last granule smaller
 * than the granule, 0-length operations, ranges ending exactly at the end
 * of the disk, offsets whose offset+len overflows, map block boundaries
 * (granule 512: a second map block holding a single granule), granule
 * 1 MiB, and an overlay whose every granule is ZERO. After each case the
 * overlay is closed, checked (clean) and reopened, and must still read the
 * reference. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <glib.h>

#include "ov-test-util.h"

struct edge {
    char *dir, *base_path, *ov_path;
    struct ov_base *base;
    struct ov_overlay *ov;
    uint8_t *ref;
    uint64_t size;
    uint32_t granule;
};

static void
edge_open(struct edge *e, uint64_t size, uint32_t granule)
{
    g_autoptr(GError) error = NULL;
    int fd;

    e->size = size;
    e->granule = granule;
    e->dir = ovt_tmpdir_new();
    e->base_path = ovt_make_base(e->dir, "base.raw", size, (guint32)(size ^ granule));
    e->ov_path = ovt_make_overlay(e->dir, "c.ovl", size, 1, granule);
    e->base = ovt_open_base(e->base_path, 1);
    e->ov = ov_overlay_open(e->ov_path, e->base, 0, &error);
    g_assert_no_error(error);
    e->ref = g_malloc(size);
    fd = open(e->base_path, O_RDONLY);
    g_assert_cmpint(pread(fd, e->ref, size, 0), ==, (ssize_t)size);
    close(fd);
}

static void
edge_verify(struct edge *e, const char *what)
{
    g_autofree uint8_t *buf = g_malloc(e->size);

    g_assert_cmpint(ov_overlay_pread(e->ov, buf, e->size, 0), ==, 0);
    for (uint64_t i = 0; i < e->size; i++)
        if (buf[i] != e->ref[i])
            g_error("%s (size %" G_GUINT64_FORMAT ", granule %u): byte %" G_GUINT64_FORMAT
                    " is %02x, want %02x",
                    what, e->size, e->granule, i, buf[i], e->ref[i]);
}

/* Close, check clean, reopen, verify. */
static void
edge_cycle(struct edge *e, const char *what)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(GString) report = g_string_new(NULL);
    bool clean = false;

    edge_verify(e, what);
    g_assert_true(ov_overlay_close(e->ov, &error));
    g_assert_no_error(error);
    g_assert_true(ov_overlay_check(e->ov_path, false, report, &clean, &error));
    g_assert_no_error(error);
    if (!clean)
        g_error("%s: check: %s", what, report->str);
    e->ov = ov_overlay_open(e->ov_path, e->base, 0, &error);
    g_assert_no_error(error);
    edge_verify(e, what);
}

static void
edge_close(struct edge *e)
{
    g_assert_true(ov_overlay_close(e->ov, NULL));
    ov_base_unref(e->base);
    g_free(e->ref);
    g_free(e->base_path);
    g_free(e->ov_path);
    ovt_tmpdir_free(e->dir);
}

static void
do_write(struct edge *e, uint64_t off, uint64_t len, uint8_t seed)
{
    g_autofree uint8_t *buf = g_malloc(len ? len : 1);

    for (uint64_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(seed + i * 7);
    g_assert_cmpint(ov_overlay_pwrite(e->ov, buf, len, off, 0), ==, 0);
    memcpy(e->ref + off, buf, len);
}

static void
do_zero(struct edge *e, uint64_t off, uint64_t len)
{
    g_assert_cmpint(ov_overlay_zero(e->ov, off, len, 0), ==, 0);
    memset(e->ref + off, 0, len);
}

static bool
sum_extents(uint64_t offset, uint64_t length, enum ov_extent_kind kind, void *user_data)
{
    uint64_t *next = user_data;

    g_assert_cmpuint(offset, ==, *next);
    g_assert_cmpuint(length, >, 0);
    *next = offset + length;
    return true;
}

/* The same sequence on many geometries. */
static void
test_geometries(void)
{
    static const struct {
        uint64_t size;
        uint32_t granule;
    } geo[] = {
        {512, 512},
        {512, 4096},
        {1536, 4096},
        {512, 1u << 20},
        {(1u << 20) + 512, 1u << 20},
        {3 * 4096 + 512, 4096},
        {(uint64_t)OV_MAP_GRANULES * 512 + 512, 512}, /* block 1 holds one granule */
        {(uint64_t)OV_MAP_GRANULES * 512 * 2, 512},   /* exactly two blocks */
    };

    for (size_t k = 0; k < G_N_ELEMENTS(geo); k++) {
        struct edge e;
        uint64_t size = geo[k].size, g = geo[k].granule;
        uint8_t dummy[1];
        uint64_t next = 0;

        edge_open(&e, size, geo[k].granule);
        /* 0-length operations anywhere, including at the very end. */
        g_assert_cmpint(ov_overlay_pwrite(e.ov, dummy, 0, size, 0), ==, 0);
        g_assert_cmpint(ov_overlay_pread(e.ov, dummy, 0, size), ==, 0);
        g_assert_cmpint(ov_overlay_zero(e.ov, size, 0, OV_FUA), ==, 0);
        g_assert_cmpint(ov_overlay_block_status(e.ov, size, 0, sum_extents, &next), ==, 0);
        /* Past the end, and offset + len wrapping around. */
        g_assert_cmpint(ov_overlay_pwrite(e.ov, dummy, 1, size, 0), ==, -EINVAL);
        g_assert_cmpint(ov_overlay_pread(e.ov, dummy, 1, size), ==, -EINVAL);
        g_assert_cmpint(ov_overlay_zero(e.ov, size, 1, 0), ==, -EINVAL);
        g_assert_cmpint(ov_overlay_zero(e.ov, 512, UINT64_MAX - 100, 0), ==, -EINVAL);
        g_assert_cmpint(ov_overlay_pread(e.ov, dummy, SIZE_MAX, 1), ==, -EINVAL);
        g_assert_cmpint(ov_overlay_pwrite(e.ov, dummy, SIZE_MAX - 10, 20, 0), ==, -EINVAL);
        g_assert_cmpint(ov_overlay_block_status(e.ov, UINT64_MAX - 5, 10, sum_extents, &next), ==,
                        -EINVAL);
        edge_verify(&e, "nothing written");

        /* Ranges ending exactly at the end of the disk. */
        do_write(&e, size - 1, 1, 1);
        do_write(&e, size - MIN(size, 700), MIN(size, 700), 2);
        edge_cycle(&e, "writes to the end");
        do_zero(&e, size - MIN(size, 300), MIN(size, 300));
        edge_cycle(&e, "zero to the end");
        /* Across the last granule boundary and across map blocks. */
        if (size > g) {
            uint64_t last = (size - 1) / g * g;
            do_write(&e, last - 100, 200, 3);
            do_zero(&e, last - 1, 3);
        }
        if (size > (uint64_t)OV_MAP_GRANULES * g) {
            uint64_t b = (uint64_t)OV_MAP_GRANULES * g;
            do_write(&e, b - 1000, MIN(2000, size - (b - 1000)), 4);
            do_zero(&e, b - g, MIN(2 * g, size - (b - g)));
        }
        edge_cycle(&e, "boundaries");
        /* Every granule ZERO, then written back sector by sector. */
        do_zero(&e, 0, size);
        {
            struct ov_overlay_info info;
            ov_overlay_get_info(e.ov, &info);
            g_assert_cmpuint(info.zero_granules, ==, (size + g - 1) / g);
            g_assert_cmpuint(info.data_granules, ==, 0);
        }
        edge_cycle(&e, "all ZERO");
        do_write(&e, 0, MIN(size, 512), 5);
        do_write(&e, size - MIN(size, 512), MIN(size, 512), 6);
        next = 0;
        g_assert_cmpint(ov_overlay_block_status(e.ov, 0, size, sum_extents, &next), ==, 0);
        g_assert_cmpuint(next, ==, size);
        edge_cycle(&e, "rewritten after ZERO");
        edge_close(&e);
    }
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/overlay/edge/geometries", test_geometries);
    return g_test_run();
}
