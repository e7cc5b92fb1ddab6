/* ov-bench.c — micro-benchmarks of the overlay data path against plain
 * file I/O on the same machine, in the same run.
 *
 *   reads:  4 KiB random reads of granules that are in the base (an empty
 *           overlay), warm page cache, vs pread() on the base file;
 *   writes: 4 KiB random writes into an empty overlay (no flush) vs
 *           pwrite() into a sparse file;
 *   flush:  the cost of one flush after N writes, on a small and a large
 *           virtual disk, with the writes packed (same dirty map blocks on
 *           both disks) and spread (one dirty block per write).
 *
 * Runs are interleaved A B A B ... and the median of each side is reported
 * with the ratio. The base is re-read right before every read run because
 * this VM's memory-reclaim daemon evicts page-cache pages left idle for
 * about a minute (docs/../MACHINE-NOTES), which would make "warm" runs cold.
 *
 * Usage: ov-bench [--dir DIR] [--size MiB] [--ops N] [--runs N] [--quick]
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <glib.h>
#include <glib/gstdio.h>

#include "base.h"
#include "format.h" /* OV_MAP_GRANULES, to count dirty map blocks */
#include "overlay.h"

static char *opt_dir;
static int opt_size_mib = 256;
static int opt_ops = 100000;
static int opt_runs = 7;
static gboolean opt_quick;

static double
now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rng = 88172645463325252ull;

static uint64_t
next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double
median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void
die(const char *what, GError *error)
{
    fprintf(stderr, "ov-bench: %s: %s\n", what, error ? error->message : g_strerror(errno));
    exit(1);
}

static void
make_file(const char *path, uint64_t size, bool fill)
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    g_autofree uint8_t *buf = g_malloc(1 << 20);

    if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
        die(path, NULL);
    for (uint64_t off = 0; fill && off < size; off += 1 << 20) {
        for (size_t i = 0; i < (1 << 20); i += 8) {
            uint64_t r = next_rand();
            memcpy(buf + i, &r, 8);
        }
        if (pwrite(fd, buf, 1 << 20, (off_t)off) != 1 << 20)
            die(path, NULL);
    }
    close(fd);
}

static void
warm(int fd, uint64_t size)
{
    g_autofree uint8_t *buf = g_malloc(1 << 20);

    for (uint64_t off = 0; off < size; off += 1 << 20)
        if (pread(fd, buf, 1 << 20, (off_t)off) < 0)
            die("warming the base", NULL);
}

static struct ov_overlay *
new_overlay(const char *path, struct ov_base *base)
{
    struct ov_base_id id = {.image = "bench", .generation = 1, .size = base->size};
    GError *error = NULL;
    struct ov_overlay *ov;

    if (!ov_overlay_create(path, &id, 0, true, &error))
        die("create", error);
    ov = ov_overlay_open(path, base, 0, &error);
    if (!ov)
        die("open", error);
    return ov;
}

static struct ov_base *
open_base(const char *path)
{
    GError *error = NULL;
    struct ov_base *base = base_file_open(path, &error);
    struct ov_base_id id = {.image = "bench", .generation = 1};

    if (!base)
        die("base", error);
    id.size = base->size;
    ov_base_set_id(base, &id);
    return base;
}

/* ---- reads ---- */

static double
read_run(struct ov_overlay *ov, int fd, uint64_t blocks)
{
    uint8_t buf[4096];
    double t = now();

    for (int i = 0; i < opt_ops; i++) {
        uint64_t off = (next_rand() % blocks) * 4096;
        int r = ov ? ov_overlay_pread(ov, buf, 4096, off)
                   : (pread(fd, buf, 4096, (off_t)off) == 4096 ? 0 : -EIO);
        if (r < 0)
            die("read", NULL);
    }
    return opt_ops / (now() - t);
}

static void
bench_reads(const char *dir, const char *base_path, uint64_t size)
{
    g_autofree char *ov_path = g_build_filename(dir, "read.ovl", NULL);
    struct ov_base *base = open_base(base_path);
    struct ov_overlay *ov = new_overlay(ov_path, base);
    double a[64], b[64];

    for (int r = 0; r < opt_runs; r++) {
        warm(base->fd, size);
        a[r] = read_run(ov, -1, size / 4096);
        warm(base->fd, size);
        b[r] = read_run(NULL, base->fd, size / 4096);
    }
    double ma = median(a, opt_runs), mb = median(b, opt_runs);
    printf("4k random read, base granules, warm cache: overlay %.0f IOPS, pread %.0f IOPS, "
           "ratio %.2fx (goal >= 0.9x)\n",
           ma, mb, ma / mb);
    ov_overlay_close(ov, NULL);
    ov_base_unref(base);
    g_unlink(ov_path);
}

/* ---- writes ---- */

static double
write_run(struct ov_overlay *ov, int fd, uint64_t blocks)
{
    uint8_t buf[4096];
    double t;

    memset(buf, 0x3c, sizeof(buf));
    t = now();
    for (int i = 0; i < opt_ops; i++) {
        uint64_t off = (next_rand() % blocks) * 4096;
        int r = ov ? ov_overlay_pwrite(ov, buf, 4096, off, 0)
                   : (pwrite(fd, buf, 4096, (off_t)off) == 4096 ? 0 : -EIO);
        if (r < 0)
            die("write", NULL);
    }
    return opt_ops / (now() - t);
}

static void
bench_writes(const char *dir, const char *base_path, uint64_t size)
{
    g_autofree char *ov_path = g_build_filename(dir, "write.ovl", NULL);
    g_autofree char *plain = g_build_filename(dir, "plain.raw", NULL);
    struct ov_base *base = open_base(base_path);
    double a[64], b[64];

    for (int r = 0; r < opt_runs; r++) {
        struct ov_overlay *ov = new_overlay(ov_path, base);
        a[r] = write_run(ov, -1, size / 4096);
        ov_overlay_close(ov, NULL); /* its flush is not timed */
        make_file(plain, size, false);
        int fd = open(plain, O_RDWR);
        b[r] = write_run(NULL, fd, size / 4096);
        fdatasync(fd);
        close(fd);
    }
    double ma = median(a, opt_runs), mb = median(b, opt_runs);
    printf("4k random write, empty overlay, no flush: overlay %.0f IOPS, pwrite to a sparse file "
           "%.0f IOPS, ratio %.2fx (goal >= 0.5x)\n",
           ma, mb, ma / mb);
    ov_base_unref(base);
    g_unlink(ov_path);
    g_unlink(plain);
}

/* ---- flush ---- */

static void
bench_flush(const char *dir, uint64_t disk, int writes, bool spread)
{
    g_autofree char *base_path = g_build_filename(dir, "flush-base.raw", NULL);
    g_autofree char *ov_path = g_build_filename(dir, "flush.ovl", NULL);
    double t[64], open_t[64];
    uint8_t buf[4096];
    struct ov_base *base;

    GHashTable *blocks = g_hash_table_new(NULL, NULL);
    uint64_t stride = spread ? disk / (uint64_t)writes : 4096;

    for (int i = 0; i < writes; i++)
        g_hash_table_add(blocks, GSIZE_TO_POINTER(((uint64_t)i * stride) / 4096 / OV_MAP_GRANULES));
    memset(buf, 0x77, sizeof(buf));
    make_file(base_path, disk, false); /* sparse */
    base = open_base(base_path);
    for (int r = 0; r < opt_runs; r++) {
        struct ov_overlay *ov = new_overlay(ov_path, base);
        GError *error = NULL;
        /* Packed: consecutive granules (the same map block whatever the
         * disk size). Spread: evenly over the disk (up to one map block per
         * write). */
        for (int i = 0; i < writes; i++)
            if (ov_overlay_pwrite(ov, buf, 4096, ((uint64_t)i * stride) / 4096 * 4096, 0) < 0)
                die("write", NULL);
        double t0 = now();
        if (ov_overlay_flush(ov) < 0)
            die("flush", NULL);
        t[r] = (now() - t0) * 1e3;
        ov_overlay_close(ov, NULL);
        t0 = now();
        ov = ov_overlay_open(ov_path, base, 0, &error);
        if (!ov)
            die("reopen", error);
        open_t[r] = (now() - t0) * 1e3;
        ov_overlay_close(ov, NULL);
    }
    printf("flush after %4d 4k writes %s, %5.0f GiB disk, %4u dirty map blocks: %7.2f ms; "
           "reopen %6.2f ms\n",
           writes, spread ? "spread" : "packed", (double)disk / (1 << 30),
           g_hash_table_size(blocks), median(t, opt_runs), median(open_t, opt_runs));
    g_hash_table_unref(blocks);
    ov_base_unref(base);
    g_unlink(ov_path);
    g_unlink(base_path);
}

int
main(int argc, char **argv)
{
    GOptionEntry entries[] = {
        {"dir", 0, 0, G_OPTION_ARG_FILENAME, &opt_dir, "scratch directory (default $TMPDIR)",
         "DIR"},
        {"size", 0, 0, G_OPTION_ARG_INT, &opt_size_mib, "base image size for I/O tests", "MiB"},
        {"ops", 0, 0, G_OPTION_ARG_INT, &opt_ops, "operations per run", "N"},
        {"runs", 0, 0, G_OPTION_ARG_INT, &opt_runs, "runs per side (median)", "N"},
        {"quick", 0, 0, G_OPTION_ARG_NONE, &opt_quick, "small and short", NULL},
        {NULL},
    };
    g_autoptr(GOptionContext) ctx = g_option_context_new("- overlay micro-benchmarks");
    GError *error = NULL;
    g_autofree char *dir = NULL, *base_path = NULL;
    uint64_t size;

    g_option_context_add_main_entries(ctx, entries, NULL);
    if (!g_option_context_parse(ctx, &argc, &argv, &error))
        die("options", error);
    if (opt_quick) {
        opt_size_mib = 64;
        opt_ops = 20000;
        opt_runs = 5;
    }
    opt_runs = CLAMP(opt_runs, 1, 64);
    size = (uint64_t)opt_size_mib << 20;
    dir = g_build_filename(opt_dir ? opt_dir : g_get_tmp_dir(), "ov-bench-XXXXXX", NULL);
    if (!g_mkdtemp(dir))
        die("scratch directory", NULL);
    base_path = g_build_filename(dir, "base.raw", NULL);
    make_file(base_path, size, true);

    bench_reads(dir, base_path, size);
    bench_writes(dir, base_path, size);
    bench_flush(dir, UINT64_C(1) << 30, 1000, false);
    bench_flush(dir, UINT64_C(256) << 30, 1000, false);
    bench_flush(dir, UINT64_C(1) << 30, 16, true);
    bench_flush(dir, UINT64_C(256) << 30, 1000, true);

    g_unlink(base_path);
    g_rmdir(dir);
    return 0;
}
