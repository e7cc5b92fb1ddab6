/* test-ov-model.c — randomized model test: random writes, zeroes, discards
 * and reads at unaligned offsets against an overlay and against a plain
 * reference file, compared after every step, with flushes and close/reopen
 * mixed in. Seeded; the seed is printed (OVT_SEED=N reproduces a run).
 * Built twice: the short run is in suite 'unit', OVT_MODEL_LONG in 'slow'. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <glib.h>

#include "ov-test-util.h"

#ifdef OVT_MODEL_LONG
#define STEPS 20000
#define RUNS 4
#else
#define STEPS 2500
#define RUNS 3
#endif

struct model {
    GRand *rand;
    char *dir, *base_path, *ov_path, *ref_path;
    struct ov_base *base;
    struct ov_overlay *ov;
    int ref_fd;
    uint64_t size;
    uint32_t granule;
    uint8_t *a, *b; /* scratch, size bytes each */
};

static uint64_t
rnd(struct model *m, uint64_t n)
{
    /* uniform enough for test offsets; n <= 2^32 here */
    return n <= 1 ? 0
                  : (uint64_t)g_rand_int_range(m->rand, 0, (gint32)MIN(n, (uint64_t)G_MAXINT32));
}

/* A random range: small and unaligned most of the time, sometimes large,
 * sometimes granule-aligned, sometimes touching the end of the disk. */
static void
pick_range(struct model *m, uint64_t *off, uint64_t *len)
{
    uint64_t max;

    switch (rnd(m, 6)) {
    case 0: /* sector-aligned sector I/O */
        *len = 512 * (1 + rnd(m, 8));
        *off = 512 * rnd(m, m->size / 512);
        break;
    case 1: /* granule-aligned */
        *len = m->granule * (1 + rnd(m, 4));
        *off = m->granule * rnd(m, m->size / m->granule);
        break;
    case 2: /* large */
        *len = 1 + rnd(m, 300000);
        *off = rnd(m, m->size);
        break;
    case 3: /* to the end */
        *off = m->size - 1 - rnd(m, 3 * m->granule);
        *len = m->size - *off;
        break;
    default: /* any bytes */
        *len = 1 + rnd(m, 3 * m->granule);
        *off = rnd(m, m->size);
        break;
    }
    max = m->size - MIN(*off, m->size);
    if (*off >= m->size) {
        *off = m->size - 1;
        max = 1;
    }
    *len = MIN(*len, max);
}

static void
compare_all(struct model *m, unsigned step, const char *what)
{
    g_assert_cmpint(ov_overlay_pread(m->ov, m->a, m->size, 0), ==, 0);
    g_assert_cmpint(pread(m->ref_fd, m->b, m->size, 0), ==, (ssize_t)m->size);
    if (memcmp(m->a, m->b, m->size) != 0) {
        uint64_t i = 0;
        while (m->a[i] == m->b[i])
            i++;
        g_error("step %u (%s): byte %" G_GUINT64_FORMAT " differs: overlay %02x, reference %02x",
                step, what, i, m->a[i], m->b[i]);
    }
}

static void
reopen(struct model *m)
{
    g_autoptr(GError) error = NULL;

    g_assert_true(ov_overlay_close(m->ov, &error));
    g_assert_no_error(error);
    m->ov = ov_overlay_open(m->ov_path, m->base, 0, &error);
    g_assert_no_error(error);
}

static void
step(struct model *m, unsigned i)
{
    uint64_t off, len;
    unsigned op = (unsigned)rnd(m, 100);
    const char *what;

    pick_range(m, &off, &len);
    if (op < 45) {
        what = "write";
        for (uint64_t k = 0; k < len; k++)
            m->a[k] = (uint8_t)g_rand_int(m->rand);
        g_assert_cmpint(ov_overlay_pwrite(m->ov, m->a, len, off, rnd(m, 20) == 0 ? OV_FUA : 0), ==,
                        0);
        g_assert_cmpint(pwrite(m->ref_fd, m->a, len, (off_t)off), ==, (ssize_t)len);
    } else if (op < 65) {
        what = "zero";
        g_assert_cmpint(ov_overlay_zero(m->ov, off, len, 0), ==, 0);
        memset(m->a, 0, len);
        g_assert_cmpint(pwrite(m->ref_fd, m->a, len, (off_t)off), ==, (ssize_t)len);
    } else if (op < 72) {
        what = "discard";
        off = off / m->granule * m->granule;
        len = (1 + rnd(m, 64)) * (uint64_t)m->granule; /* not inside MIN(): rnd() once */
        len = MIN(m->size - off, len);
        g_assert_cmpint(ov_overlay_zero(m->ov, off, len, OV_FUA), ==, 0);
        memset(m->a, 0, len);
        g_assert_cmpint(pwrite(m->ref_fd, m->a, len, (off_t)off), ==, (ssize_t)len);
    } else if (op < 92) {
        what = "read";
        g_assert_cmpint(ov_overlay_pread(m->ov, m->a, len, off), ==, 0);
        g_assert_cmpint(pread(m->ref_fd, m->b, len, (off_t)off), ==, (ssize_t)len);
        if (memcmp(m->a, m->b, len) != 0)
            g_error("step %u: read of %" G_GUINT64_FORMAT "+%" G_GUINT64_FORMAT " differs", i, off,
                    len);
    } else if (op < 97) {
        what = "flush";
        g_assert_cmpint(ov_overlay_flush(m->ov), ==, 0);
    } else {
        what = "reopen";
        reopen(m);
    }
    compare_all(m, i, what);
}

static void
run_one(guint32 seed)
{
    static const uint32_t granules[] = {512, 4096, 4096, 65536};
    struct model m = {0};
    g_autoptr(GError) error = NULL;
    GString *report = g_string_new(NULL);
    bool clean = false;

    m.rand = g_rand_new_with_seed(seed);
    m.granule = granules[rnd(&m, G_N_ELEMENTS(granules))];
    /* Not a multiple of the granule (nor of 512): edge granules matter. */
    m.size = (1u << 20) + 512 * rnd(&m, 2048) + rnd(&m, 512) + 1;
    g_test_message("seed %u: granule %u, size %" G_GUINT64_FORMAT, seed, m.granule, m.size);
    printf("# seed %u (rerun with OVT_SEED=%u)\n", seed, seed);
    m.dir = ovt_tmpdir_new();
    m.base_path = ovt_make_base(m.dir, "base.raw", m.size, seed);
    m.ov_path = ovt_make_overlay(m.dir, "c.ovl", m.size, 1, m.granule);
    m.ref_path = g_build_filename(m.dir, "reference.raw", NULL);
    g_assert_true(g_file_get_contents(m.base_path, (char **)&m.a, NULL, NULL));
    g_assert_true(g_file_set_contents(m.ref_path, (char *)m.a, (gssize)m.size, NULL));
    g_free(m.a);
    m.a = g_malloc(m.size);
    m.b = g_malloc(m.size);
    m.ref_fd = open(m.ref_path, O_RDWR);
    g_assert_cmpint(m.ref_fd, >=, 0);
    m.base = ovt_open_base(m.base_path, 1);
    m.ov = ov_overlay_open(m.ov_path, m.base, 0, &error);
    g_assert_no_error(error);

    for (unsigned i = 0; i < STEPS; i++)
        step(&m, i);
    reopen(&m);
    compare_all(&m, STEPS, "final reopen");
    g_assert_true(ov_overlay_close(m.ov, NULL));
    g_assert_true(ov_overlay_check(m.ov_path, false, report, &clean, &error));
    g_assert_no_error(error);
    if (!clean)
        g_error("check after the run: %s", report->str);

    g_string_free(report, TRUE);
    ov_base_unref(m.base);
    close(m.ref_fd);
    g_free(m.a);
    g_free(m.b);
    g_free(m.base_path);
    g_free(m.ov_path);
    g_free(m.ref_path);
    ovt_tmpdir_free(m.dir);
    g_rand_free(m.rand);
}

static void
test_model(void)
{
    const char *env = g_getenv("OVT_SEED");
    guint32 seed = env ? (guint32)strtoul(env, NULL, 10) : g_random_int();

    for (unsigned r = 0; r < (env ? 1u : RUNS); r++)
        run_one(seed + r);
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/overlay/model/random-ops", test_model);
    return g_test_run();
}
