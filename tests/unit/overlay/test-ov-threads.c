/* test-ov-threads.c — the overlay under concurrent writers, zeroes, reads and
 * flushes, checked against a reference and against a simulated process
 * crash.
 *
 * The disk is cut into units (a sector, half a granule, a granule or three
 * granules; chosen per run) dealt round-robin to THREADS writer threads, so
 * two threads often share a granule (partial-granule read-modify-write from
 * the base racing another thread's write of the same granule) or a map
 * block (concurrent map updates and dirty flags racing the flushes). Each
 * thread only touches its own units, so its private part of the reference
 * is exact without a lock, and each of its reads is checked at once.
 * Another thread flushes and reads block status all the time.
 *
 * Each writer also flushes now and then and records, per sector it owns,
 * the content at that flush and every content written after it. At the end
 * the overlay file is copied as it stands without closing the overlay — what
 * a SIGKILL leaves (page cache kept, in-memory map lost) — and the copy must
 * show, for every sector, its content at its owner's last flush or a later
 * one: a write acknowledged before flush() was called is durable when it
 * returns, whatever the other threads did meanwhile (docs/overlay-format.md,
 * C3/C4, F2).
 *
 * Random granule (512 B … 1 MiB) and a disk size that is not a multiple of
 * the granule; with 512-byte granules the disk spans several map blocks.
 * Seeded: OVT_SEED=N reproduces the choices (not the interleaving). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <glib.h>

#include "ov-test-util.h"

#define THREADS 4
#define SECTOR 512u

struct shared {
    struct ov_overlay *ov;
    uint64_t size, unit;
    uint32_t granule;
    uint8_t *ref;     /* current contents; byte ranges owned by one thread each */
    uint8_t *durable; /* contents at the owner's last completed flush */
    GArray **later;   /* per sector: CRCs of contents written after that flush */
    int stop;         /* atomic */
    unsigned steps;
};

struct worker {
    struct shared *s;
    unsigned index;
    guint32 seed;
    pthread_t thread;
};

static uint64_t
rnd(GRand *r, uint64_t n)
{
    return n <= 1 ? 0 : (uint64_t)g_rand_int_range(r, 0, (gint32)MIN(n, (uint64_t)G_MAXINT32));
}

static uint64_t
n_units(struct shared *s)
{
    return (s->size + s->unit - 1) / s->unit;
}

/* After a write or zero of [off, off+len): remember each touched sector's
 * new content as allowed after a crash. */
static void
note_later(struct shared *s, uint64_t off, uint64_t len)
{
    for (uint64_t sec = off / SECTOR; sec <= (off + len - 1) / SECTOR; sec++) {
        uint64_t a = sec * SECTOR, n = MIN((uint64_t)SECTOR, s->size - a);
        uint32_t crc = ov_crc32c(0, s->ref + a, n);
        if (!s->later[sec])
            s->later[sec] = g_array_new(FALSE, FALSE, sizeof(uint32_t));
        g_array_append_val(s->later[sec], crc);
    }
}

/* The thread's flush returned: its units' current contents are durable.
 * (Units are multiples of 512 bytes, so each sector has one owner.) */
static void
own_flushed(struct shared *s, unsigned me)
{
    uint64_t units = n_units(s);

    for (uint64_t u = me; u < units; u += THREADS) {
        uint64_t a = u * s->unit, n = MIN(s->unit, s->size - a);
        memcpy(s->durable + a, s->ref + a, n);
        for (uint64_t sec = a / SECTOR; sec <= (a + n - 1) / SECTOR; sec++)
            if (s->later[sec])
                g_array_set_size(s->later[sec], 0);
    }
}

static void *
worker_main(void *data)
{
    struct worker *w = data;
    struct shared *s = w->s;
    g_autoptr(GRand) r = g_rand_new_with_seed(w->seed);
    uint64_t units = n_units(s);
    uint64_t mine = (units - w->index + THREADS - 1) / THREADS;
    g_autofree uint8_t *buf = g_malloc(s->unit);

    if (mine == 0)
        return NULL;
    for (unsigned i = 0; i < s->steps; i++) {
        uint64_t u = w->index + THREADS * rnd(r, mine);
        uint64_t ua = u * s->unit, ulen = MIN(s->unit, s->size - ua);
        uint64_t off = ua + rnd(r, ulen), len = 1 + rnd(r, ua + ulen - off);
        unsigned op = (unsigned)rnd(r, 100);

        if (rnd(r, 3) == 0) { /* whole unit: whole granules, runs to the end of the disk */
            off = ua;
            len = ulen;
        }
        if (op < 50) {
            for (uint64_t k = 0; k < len; k++)
                buf[k] = (uint8_t)g_rand_int(r);
            g_assert_cmpint(ov_overlay_pwrite(s->ov, buf, len, off, rnd(r, 30) == 0 ? OV_FUA : 0),
                            ==, 0);
            memcpy(s->ref + off, buf, len);
            note_later(s, off, len);
        } else if (op < 70) {
            g_assert_cmpint(ov_overlay_zero(s->ov, off, len, 0), ==, 0);
            memset(s->ref + off, 0, len);
            note_later(s, off, len);
        } else if (op < 95) {
            g_assert_cmpint(ov_overlay_pread(s->ov, buf, len, off), ==, 0);
            if (memcmp(buf, s->ref + off, len) != 0)
                g_error("thread %u step %u: read %" G_GUINT64_FORMAT "+%" G_GUINT64_FORMAT
                        " differs from the reference",
                        w->index, i, off, len);
        } else {
            g_assert_cmpint(ov_overlay_flush(s->ov), ==, 0);
            own_flushed(s, w->index);
        }
    }
    return NULL;
}

static bool
count_extent(uint64_t offset, uint64_t length, enum ov_extent_kind kind, void *user_data)
{
    uint64_t *total = user_data;

    g_assert_cmpint(kind, <=, OV_EXTENT_ZERO);
    g_assert_cmpuint(offset, ==, *total);
    *total += length;
    return true;
}

static void *
flusher_main(void *data)
{
    struct shared *s = data;

    while (!__atomic_load_n(&s->stop, __ATOMIC_ACQUIRE)) {
        uint64_t total = 0;
        g_assert_cmpint(ov_overlay_flush(s->ov), ==, 0);
        g_assert_cmpint(ov_overlay_block_status(s->ov, 0, s->size, count_extent, &total), ==, 0);
        g_assert_cmpuint(total, ==, s->size);
        g_usleep(200);
    }
    return NULL;
}

/* Every sector of the crash copy holds its content at its owner's last
 * flush or a content written after it. */
static void
verify_crash_copy(struct shared *s, const char *copy_path, struct ov_base *base, const char *label)
{
    g_autoptr(GError) error = NULL;
    g_autofree uint8_t *got = g_malloc(s->size);
    struct ov_overlay *ov = ov_overlay_open(copy_path, base, OV_OPEN_READ_ONLY, &error);
    struct ov_overlay_info info;

    g_assert_no_error(error);
    ov_overlay_get_info(ov, &info);
    g_assert_false(info.corrupt);
    g_assert_cmpint(ov_overlay_pread(ov, got, s->size, 0), ==, 0);
    for (uint64_t sec = 0; sec * SECTOR < s->size; sec++) {
        uint64_t a = sec * SECTOR, n = MIN((uint64_t)SECTOR, s->size - a);
        bool ok = memcmp(got + a, s->durable + a, n) == 0;
        uint32_t crc = ov_crc32c(0, got + a, n);

        for (guint k = 0; !ok && s->later[sec] && k < s->later[sec]->len; k++)
            ok = g_array_index(s->later[sec], uint32_t, k) == crc;
        if (!ok)
            g_error("%s: after a crash, sector %" G_GUINT64_FORMAT " holds neither its content "
                    "at its owner's last flush nor a later one",
                    label, sec);
    }
    g_assert_true(ov_overlay_close(ov, NULL));
}

static void
copy_file(const char *from, const char *to)
{
    g_autofree char *data = NULL;
    gsize n;

    g_assert_true(g_file_get_contents(from, &data, &n, NULL));
    g_assert_true(g_file_set_contents(to, data, (gssize)n, NULL));
}

static void
run_one(guint32 seed, unsigned steps)
{
    static const uint32_t granules[] = {512, 512, 4096, 65536, 1u << 20};
    g_autoptr(GRand) r = g_rand_new_with_seed(seed);
    g_autoptr(GError) error = NULL;
    struct shared s = {.steps = steps};
    struct worker w[THREADS];
    pthread_t flusher;
    g_autofree char *dir = ovt_tmpdir_new();
    g_autofree char *label = NULL;
    g_autofree char *base_path = NULL, *ov_path = NULL, *copy_path = NULL;
    g_autofree uint8_t *all = NULL;
    struct ov_base *base;
    uint64_t unit_pick;

    s.granule = granules[rnd(r, G_N_ELEMENTS(granules))];
    /* Not a multiple of the granule; 512-byte granules span 2+ map blocks. */
    if (s.granule == 512)
        s.size = (uint64_t)OV_MAP_GRANULES * 512 * 2 + 512 * rnd(r, 4096) + 512;
    else
        s.size = (uint64_t)s.granule * (s.granule > 65536 ? 4 + rnd(r, 6) : 8 + rnd(r, 24)) +
                 512 * (1 + rnd(r, s.granule / 512 - 1));
    unit_pick = rnd(r, 4);
    s.unit = unit_pick == 0   ? SECTOR
             : unit_pick == 1 ? MAX(SECTOR, s.granule / 2)
             : unit_pick == 2 ? s.granule
                              : 3u * s.granule;
    label =
        g_strdup_printf("seed %u: granule %u, size %" G_GUINT64_FORMAT ", unit %" G_GUINT64_FORMAT,
                        seed, s.granule, s.size, s.unit);
    printf("# %s (rerun with OVT_SEED=%u)\n", label, seed);

    base_path = ovt_make_base(dir, "base.raw", s.size, seed);
    ov_path = ovt_make_overlay(dir, "c.ovl", s.size, 1, s.granule);
    copy_path = g_build_filename(dir, "crash.ovl", NULL);
    g_assert_true(g_file_get_contents(base_path, (char **)&s.ref, NULL, NULL));
    s.durable = g_memdup2(s.ref, s.size);
    s.later = g_new0(GArray *, s.size / SECTOR + 1);
    base = ovt_open_base(base_path, 1);
    s.ov = ov_overlay_open(ov_path, base, 0, &error);
    g_assert_no_error(error);

    g_assert_cmpint(pthread_create(&flusher, NULL, flusher_main, &s), ==, 0);
    for (unsigned t = 0; t < THREADS; t++) {
        w[t] = (struct worker){.s = &s, .index = t, .seed = g_rand_int(r)};
        g_assert_cmpint(pthread_create(&w[t].thread, NULL, worker_main, &w[t]), ==, 0);
    }
    for (unsigned t = 0; t < THREADS; t++)
        pthread_join(w[t].thread, NULL);
    __atomic_store_n(&s.stop, 1, __ATOMIC_RELEASE);
    pthread_join(flusher, NULL);

    /* The live view equals the reference. */
    all = g_malloc(s.size);
    g_assert_cmpint(ov_overlay_pread(s.ov, all, s.size, 0), ==, 0);
    if (memcmp(all, s.ref, s.size) != 0)
        g_error("%s: the overlay differs from the reference after the run", label);

    /* A SIGKILL now: the file as it stands, without the final flush. */
    copy_file(ov_path, copy_path);
    verify_crash_copy(&s, copy_path, base, label);

    /* Close (final flush) and reopen: everything is there. */
    g_assert_true(ov_overlay_close(s.ov, &error));
    g_assert_no_error(error);
    s.ov = ov_overlay_open(ov_path, base, OV_OPEN_READ_ONLY, &error);
    g_assert_no_error(error);
    g_assert_cmpint(ov_overlay_pread(s.ov, all, s.size, 0), ==, 0);
    if (memcmp(all, s.ref, s.size) != 0)
        g_error("%s: the reopened overlay differs from the reference", label);
    g_assert_true(ov_overlay_close(s.ov, NULL));

    for (uint64_t k = 0; k <= s.size / SECTOR; k++)
        if (s.later[k])
            g_array_unref(s.later[k]);
    g_free(s.later);
    g_free(s.durable);
    g_free(s.ref);
    ov_base_unref(base);
    ovt_tmpdir_free(g_steal_pointer(&dir));
}

static void
test_threads(void)
{
    const char *env = g_getenv("OVT_SEED");
    const char *runs_env = g_getenv("OVT_THREAD_RUNS");
    guint32 seed = env ? (guint32)strtoul(env, NULL, 10) : g_random_int();
    unsigned runs = env ? 1u : (runs_env ? (unsigned)strtoul(runs_env, NULL, 10) : 2u);

    for (unsigned i = 0; i < runs; i++)
        run_one(seed + i, 600);
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/overlay/threads/disjoint-writers", test_threads);
    return g_test_run();
}
