/* test-ov-crash.c — crash consistency of the overlay (docs/overlay-format.md,
 * "Crash invariants").
 *
 * /overlay/crash/sigkill: a child process writes, zeroes and flushes at
 * random and logs each operation (intent before, done after) to a side
 * file; the parent SIGKILLs it at a random moment. Page-cache contents
 * survive a process kill, so this exercises every interleaving of our own
 * steps (a flush killed between its slot writes, a write killed before its
 * map update...).
 *
 * /overlay/crash/power-loss: the same workload in-process, through the
 * library's fault hook: every write, hole punch and sync is seen before it
 * happens; the pre-image of each write since the last fdatasync is kept.
 * At a random operation the "power fails": that call and every later one
 * fail, and each 512-byte sector of every unsynced write independently
 * keeps its new bytes or gets its old ones back (newest write first), which
 * also tears map slots mid-write. This is what a disk with a volatile cache
 * may do, which a process kill never shows.
 *
 * After each crash: ov_overlay_check must find the file clean (torn older
 * slots are notes, not damage), open must succeed without corrupt blocks,
 * and every 512-byte sector must read as its content at the last completed
 * flush or as its content after one of the later operations (never
 * anything else): writes acknowledged before the last completed flush are
 * all present, unflushed ones may be old or new, nothing is garbage.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <glib.h>

#include "ov-test-util.h"

#define DISK (UINT64_C(3) << 20)
#define SECTOR 512u
#define NSECT (DISK / SECTOR)

enum rec_kind { REC_WRITE, REC_ZERO, REC_FLUSH, REC_DONE };

struct rec {
    uint32_t kind;
    uint32_t op;
    uint64_t off;
    uint64_t len;
    uint32_t seed;
    uint32_t fua;
};

struct op {
    struct rec r;
    bool done;
};

static void
gen_bytes(uint32_t seed, uint8_t *buf, size_t len)
{
    uint32_t x = seed * 2654435761u + 1;

    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        buf[i] = (uint8_t)x;
    }
}

/* ---- the workload ---- */

typedef void (*log_fn)(void *ud, const struct rec *r);

/* Run up to max_ops random operations; stop at the first failure (the
 * power-loss variant fails everything after the crash point). */
static void
workload(struct ov_overlay *ov, GRand *rand, uint32_t granule, unsigned max_ops, log_fn log,
         void *ud)
{
    g_autofree uint8_t *buf = g_malloc(256 * 1024);

    for (uint32_t i = 0; i < max_ops; i++) {
        struct rec r = {.op = i, .seed = g_rand_int(rand)};
        unsigned pick = (unsigned)g_rand_int_range(rand, 0, 100);
        int ret;

        if (pick < 12) {
            r.kind = REC_FLUSH;
        } else {
            r.kind = pick < 70 ? REC_WRITE : REC_ZERO;
            if (g_rand_boolean(rand)) { /* sector I/O */
                r.len = SECTOR * (uint64_t)g_rand_int_range(rand, 1, 17);
                r.off = SECTOR * (uint64_t)g_rand_int_range(rand, 0, (gint32)(NSECT - 16));
            } else { /* any bytes, sometimes many granules */
                r.len = (uint64_t)g_rand_int_range(
                    rand, 1, g_rand_boolean(rand) ? (gint32)(3 * granule) : 256 * 1024);
                r.off = (uint64_t)g_rand_int_range(rand, 0, (gint32)(DISK - r.len));
            }
            r.fua = r.kind == REC_WRITE && g_rand_int_range(rand, 0, 10) == 0;
        }
        log(ud, &r);
        switch (r.kind) {
        case REC_WRITE:
            gen_bytes(r.seed, buf, r.len);
            ret = ov_overlay_pwrite(ov, buf, r.len, r.off, r.fua ? OV_FUA : 0);
            break;
        case REC_ZERO:
            ret = ov_overlay_zero(ov, r.off, r.len, 0);
            break;
        default:
            ret = ov_overlay_flush(ov);
            break;
        }
        if (ret < 0)
            return;
        log(ud, &(struct rec){.kind = REC_DONE, .op = i});
    }
}

/* ---- the checker ---- */

struct allowed {
    GArray **crcs; /* per sector: CRCs of acceptable contents besides durable */
    uint8_t *durable;
};

static void
apply(uint8_t *disk, const struct rec *r)
{
    if (r->kind == REC_WRITE)
        gen_bytes(r->seed, disk + r->off, r->len);
    else if (r->kind == REC_ZERO)
        memset(disk + r->off, 0, r->len);
}

static bool
is_durable_point(const struct op *o)
{
    return o->done && (o->r.kind == REC_FLUSH || (o->r.kind == REC_WRITE && o->r.fua));
}

static void
build_allowed(struct allowed *a, const uint8_t *base, GArray *ops)
{
    g_autofree uint8_t *cur = g_memdup2(base, DISK);
    int last = -1;

    for (guint i = 0; i < ops->len; i++)
        if (is_durable_point(&g_array_index(ops, struct op, i)))
            last = (int)i;
    for (int i = 0; i <= last; i++)
        apply(cur, &g_array_index(ops, struct op, i).r);
    a->durable = g_memdup2(cur, DISK);
    a->crcs = g_new0(GArray *, NSECT);
    for (guint i = (guint)(last + 1); i < ops->len; i++) {
        const struct rec *r = &g_array_index(ops, struct op, i).r;
        if (r->kind == REC_FLUSH)
            continue;
        apply(cur, r);
        for (uint64_t s = r->off / SECTOR; s <= (r->off + r->len - 1) / SECTOR; s++) {
            uint32_t crc = ov_crc32c(0, cur + s * SECTOR, SECTOR);
            if (!a->crcs[s])
                a->crcs[s] = g_array_new(FALSE, FALSE, sizeof(uint32_t));
            g_array_append_val(a->crcs[s], crc);
        }
    }
}

static void
free_allowed(struct allowed *a)
{
    for (uint64_t s = 0; s < NSECT; s++)
        if (a->crcs[s])
            g_array_unref(a->crcs[s]);
    g_free(a->crcs);
    g_free(a->durable);
}

/* Say what a bad sector holds, to tell a model bug from a library bug. */
static void
diagnose(const uint8_t *got, uint64_t s, const uint8_t *base, const uint8_t *durable, GArray *ops)
{
    static const uint8_t zero[SECTOR];
    g_autofree uint8_t *buf = g_malloc(DISK);
    int last = -1;

    for (guint i = 0; i < ops->len; i++)
        if (is_durable_point(&g_array_index(ops, struct op, i)))
            last = (int)i;
    printf("# sector %" G_GUINT64_FORMAT ": base %d, zero %d, durable %d; last durable op %d\n", s,
           memcmp(got, base + s * SECTOR, SECTOR) == 0, memcmp(got, zero, SECTOR) == 0,
           memcmp(got, durable + s * SECTOR, SECTOR) == 0, last);
    for (guint i = 0; i < ops->len; i++) {
        const struct op *o = &g_array_index(ops, struct op, i);
        if (o->r.kind == REC_FLUSH) {
            printf("#  op %u flush%s\n", i, o->done ? "" : " (not done)");
            continue;
        }
        if (o->r.off >= (s + 1) * SECTOR || o->r.off + o->r.len <= s * SECTOR)
            continue;
        bool same = false;
        if (o->r.kind == REC_WRITE) {
            gen_bytes(o->r.seed, buf, o->r.len);
            uint64_t a = MAX(s * SECTOR, o->r.off), b = MIN((s + 1) * SECTOR, o->r.off + o->r.len);
            same = memcmp(buf + (a - o->r.off), got + (a - s * SECTOR), b - a) == 0;
        }
        printf("#  op %u %s %" G_GUINT64_FORMAT "+%" G_GUINT64_FORMAT "%s%s%s\n", i,
               o->r.kind == REC_WRITE ? "write" : "zero", o->r.off, o->r.len,
               o->r.fua ? " fua" : "", o->done ? "" : " (not done)", same ? " <- matches" : "");
    }
}

/* start: the disk's contents before ops (the base for a fresh overlay, or
 * what the previous crash left); on return, what this crash left. */
static void
verify_after_crash(const char *ov_path, struct ov_base *base, const uint8_t *base_bytes,
                   uint8_t *start, GArray *ops, const char *label)
{
    g_autoptr(GError) error = NULL;
    GString *report = g_string_new(NULL);
    g_autofree uint8_t *got = g_malloc(DISK);
    struct ov_overlay_info info;
    struct allowed a;
    struct ov_overlay *ov;
    bool clean = false;

    g_assert_true(ov_overlay_check(ov_path, false, report, &clean, &error));
    g_assert_no_error(error);
    if (!clean)
        g_error("%s: check after crash:\n%s", label, report->str);
    g_string_free(report, TRUE);

    ov = ov_overlay_open(ov_path, base, 0, &error);
    g_assert_no_error(error);
    ov_overlay_get_info(ov, &info);
    g_assert_false(info.corrupt);
    g_assert_cmpint(ov_overlay_pread(ov, got, DISK, 0), ==, 0);
    build_allowed(&a, start, ops);
    for (uint64_t s = 0; s < NSECT; s++) {
        const uint8_t *p = got + s * SECTOR;
        uint32_t crc;
        bool ok = memcmp(p, a.durable + s * SECTOR, SECTOR) == 0;

        if (!ok && a.crcs[s]) {
            crc = ov_crc32c(0, p, SECTOR);
            for (guint k = 0; k < a.crcs[s]->len && !ok; k++)
                ok = g_array_index(a.crcs[s], uint32_t, k) == crc;
        }
        if (!ok)
            diagnose(p, s, base_bytes, a.durable, ops);
        if (!ok)
            g_error("%s: sector %" G_GUINT64_FORMAT " holds neither its flushed content nor a "
                    "later write (%u ops logged)",
                    label, s, ops->len);
    }
    free_allowed(&a);
    memcpy(start, got, DISK);
    /* The overlay keeps working after the crash. */
    g_assert_cmpint(ov_overlay_pwrite(ov, got, SECTOR, 0, OV_FUA), ==, 0);
    g_assert_true(ov_overlay_close(ov, NULL));
}

/* ---- shared set-up ---- */

struct setup {
    char *dir, *base_path, *ov_path;
    struct ov_base *base;
    uint8_t *base_bytes;
};

static void
setup_init(struct setup *s, guint32 seed)
{
    gsize n;

    s->dir = ovt_tmpdir_new();
    s->base_path = ovt_make_base(s->dir, "base.raw", DISK, seed);
    g_assert_true(g_file_get_contents(s->base_path, (char **)&s->base_bytes, &n, NULL));
    s->base = ovt_open_base(s->base_path, 1);
    s->ov_path = g_build_filename(s->dir, "c.ovl", NULL);
}

static void
setup_clear(struct setup *s)
{
    ov_base_unref(s->base);
    g_free(s->base_bytes);
    g_free(s->base_path);
    g_free(s->ov_path);
    ovt_tmpdir_free(s->dir);
}

static uint32_t
pick_granule(GRand *rand)
{
    static const uint32_t g[] = {512, 4096, 4096, 65536};
    return g[g_rand_int_range(rand, 0, G_N_ELEMENTS(g))];
}

static void
make_fresh_overlay(struct setup *s, uint32_t granule)
{
    g_free(ovt_make_overlay(s->dir, "c.ovl", DISK, 1, granule));
}

/* OVT_CRASH_SCALE=N runs N times the default iterations (a long run by
 * hand; CI keeps the default). */
static unsigned
scaled(unsigned iterations)
{
    const char *env = g_getenv("OVT_CRASH_SCALE");
    unsigned k = env ? (unsigned)strtoul(env, NULL, 10) : 1u;

    return iterations * MAX(k, 1u);
}

static guint32
test_seed(void)
{
    const char *env = g_getenv("OVT_SEED");
    guint32 seed = env ? (guint32)strtoul(env, NULL, 10) : g_random_int();

    printf("# seed %u (rerun with OVT_SEED=%u)\n", seed, seed);
    return seed;
}

/* ---- SIGKILL ---- */

static void
log_to_fd(void *ud, const struct rec *r)
{
    int fd = GPOINTER_TO_INT(ud);
    if (write(fd, r, sizeof(*r)) != (ssize_t)sizeof(*r))
        _exit(3);
}

static GArray *
read_log(const char *path)
{
    g_autofree char *data = NULL;
    gsize n = 0;
    GArray *ops = g_array_new(FALSE, TRUE, sizeof(struct op));

    g_assert_true(g_file_get_contents(path, &data, &n, NULL));
    for (gsize i = 0; i + sizeof(struct rec) <= n; i += sizeof(struct rec)) {
        struct rec r;
        memcpy(&r, data + i, sizeof(r));
        if (r.kind == REC_DONE) {
            g_assert_cmpuint(r.op, <, ops->len);
            g_array_index(ops, struct op, r.op).done = true;
        } else {
            struct op o = {.r = r};
            g_assert_cmpuint(r.op, ==, ops->len);
            g_array_append_val(ops, o);
        }
    }
    return ops;
}

static void
test_sigkill(void)
{
    guint32 seed = test_seed();
    g_autoptr(GRand) rand = g_rand_new_with_seed(seed);
    struct setup s;
    unsigned iterations = scaled(40);
    g_autofree uint8_t *start = g_malloc(DISK);
    uint32_t kept_granule = 0;

    setup_init(&s, seed);
    for (unsigned it = 0; it < iterations; it++) {
        /* Half the time, crash again from what the last crash left. */
        bool fresh = it == 0 || g_rand_boolean(rand);
        uint32_t granule = fresh ? pick_granule(rand) : kept_granule;
        g_autofree char *log_path = g_build_filename(s.dir, "ops.log", NULL);
        g_autofree char *label =
            g_strdup_printf("seed %u iteration %u granule %u%s", seed, it, granule,
                            fresh ? "" : " (after the previous crash)");
        guint32 child_seed = g_rand_int(rand);
        int delay_us = g_rand_int_range(rand, 0, 40000);
        int log_fd, status;
        pid_t pid;
        GArray *ops;

        if (fresh) {
            make_fresh_overlay(&s, granule);
            memcpy(start, s.base_bytes, DISK);
        }
        kept_granule = granule;
        log_fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
        g_assert_cmpint(log_fd, >=, 0);
        pid = fork();
        g_assert_cmpint(pid, >=, 0);
        if (pid == 0) {
            GRand *crand = g_rand_new_with_seed(child_seed);
            struct ov_overlay *ov = ov_overlay_open(s.ov_path, s.base, 0, NULL);
            if (!ov)
                _exit(2);
            workload(ov, crand, granule, 100000, log_to_fd, GINT_TO_POINTER(log_fd));
            _exit(0);
        }
        close(log_fd);
        g_usleep((gulong)delay_us);
        kill(pid, SIGKILL);
        g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
        g_assert_true(WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) == 0));
        ops = read_log(log_path);
        g_test_message("%s: %u ops before the kill", label, ops->len);
        verify_after_crash(s.ov_path, s.base, s.base_bytes, start, ops, label);
        g_array_unref(ops);
    }
    setup_clear(&s);
}

/* ---- power loss through the fault hook ---- */

struct preimage {
    uint64_t off;
    GBytes *old;
};

struct power {
    GRand *rand;
    unsigned countdown; /* hooked calls until the power fails */
    bool failed;
    GArray *unsynced; /* struct preimage, oldest first */
    GArray *ops;      /* struct op, as logged */
};

static void
clear_unsynced(struct power *p)
{
    for (guint i = 0; i < p->unsynced->len; i++)
        g_bytes_unref(g_array_index(p->unsynced, struct preimage, i).old);
    g_array_set_size(p->unsynced, 0);
}

static int
power_hook(void *ud, enum ov_fault_op op, int fd, uint64_t offset, uint64_t len)
{
    struct power *p = ud;

    if (p->failed || p->countdown-- == 0) {
        p->failed = true;
        return -EIO;
    }
    if (op == OV_FAULT_SYNC) {
        clear_unsynced(p);
        return 0;
    }
    /* A disk writes whole sectors: keep the pre-image of whole sectors. */
    uint64_t end = (offset + len + SECTOR - 1) / SECTOR * SECTOR;
    offset = offset / SECTOR * SECTOR;
    len = end - offset;
    struct preimage pi = {.off = offset};
    uint8_t *old = g_malloc(len);
    ssize_t n = pread(fd, old, len, (off_t)offset);
    if (n < (ssize_t)len)
        memset(old + MAX(n, 0), 0, len - (size_t)MAX(n, 0));
    pi.old = g_bytes_new_take(old, len);
    g_array_append_val(p->unsynced, pi);
    return 0;
}

/* Undo unsynced writes, sector by sector, at random (newest first). */
static void
lose_power(struct power *p, const char *path)
{
    int fd = open(path, O_RDWR);

    g_assert_cmpint(fd, >=, 0);
    for (guint i = p->unsynced->len; i-- > 0;) {
        struct preimage *pi = &g_array_index(p->unsynced, struct preimage, i);
        gsize len;
        const uint8_t *old = g_bytes_get_data(pi->old, &len);
        for (uint64_t s = pi->off; s < pi->off + len; s += SECTOR)
            if (g_rand_boolean(p->rand))
                g_assert_cmpint(pwrite(fd, old + (s - pi->off), SECTOR, (off_t)s), ==, SECTOR);
    }
    close(fd);
    clear_unsynced(p);
}

static void
log_to_array(void *ud, const struct rec *r)
{
    struct power *p = ud;

    if (r->kind == REC_DONE) {
        g_array_index(p->ops, struct op, r->op).done = true;
    } else {
        struct op o = {.r = *r};
        g_array_append_val(p->ops, o);
    }
}

static void
test_power_loss(void)
{
    guint32 seed = test_seed();
    g_autoptr(GRand) rand = g_rand_new_with_seed(seed);
    struct setup s;
    unsigned iterations = scaled(60);
    g_autofree uint8_t *start = g_malloc(DISK);
    uint32_t kept_granule = 0;

    setup_init(&s, seed);
    for (unsigned it = 0; it < iterations; it++) {
        bool fresh = it == 0 || g_rand_boolean(rand);
        uint32_t granule = fresh ? pick_granule(rand) : kept_granule;
        g_autofree char *label =
            g_strdup_printf("seed %u iteration %u granule %u%s", seed, it, granule,
                            fresh ? "" : " (after the previous crash)");
        struct power p = {
            .rand = rand,
            .countdown = (unsigned)g_rand_int_range(rand, 1, 400),
            .unsynced = g_array_new(FALSE, FALSE, sizeof(struct preimage)),
            .ops = g_array_new(FALSE, TRUE, sizeof(struct op)),
        };
        g_autoptr(GError) error = NULL;
        struct ov_overlay *ov;

        if (fresh) {
            make_fresh_overlay(&s, granule);
            memcpy(start, s.base_bytes, DISK);
        }
        kept_granule = granule;
        ov = ov_overlay_open(s.ov_path, s.base, 0, &error);
        g_assert_no_error(error);
        ov_overlay_set_fault_hook(ov, power_hook, &p);
        workload(ov, rand, granule, 1000, log_to_array, &p);
        p.failed = true;            /* whatever close tries to write is lost */
        ov_overlay_close(ov, NULL); /* (its final flush fails) */
        lose_power(&p, s.ov_path);
        g_test_message("%s: %u ops before the power failed", label, p.ops->len);
        verify_after_crash(s.ov_path, s.base, s.base_bytes, start, p.ops, label);
        g_array_unref(p.ops);
        g_array_unref(p.unsynced);
    }
    setup_clear(&s);
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/overlay/crash/sigkill", test_sigkill);
    g_test_add_func("/overlay/crash/power-loss", test_power_loss);
    return g_test_run();
}
