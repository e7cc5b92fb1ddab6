/* test-ov-io.c — merged read/write/zero at unaligned offsets, block status,
 * persistence, locking, wrong base, ENOSPC and concurrent sector writes. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>
#include <glib.h>

#include "ov-test-util.h"

struct fixture {
    char *dir;
    char *base_path;
    char *ov_path;
    struct ov_base *base;
    struct ov_overlay *ov;
    uint8_t *ref; /* what the merged disk must read */
    uint64_t size;
};

#define SIZE ((UINT64_C(1) << 20) + 1536) /* last granule is partial */

static struct ov_overlay *
open_ov(struct fixture *f, unsigned flags)
{
    g_autoptr(GError) error = NULL;
    struct ov_overlay *ov = ov_overlay_open(f->ov_path, f->base, flags, &error);

    g_assert_no_error(error);
    return ov;
}

static void
setup(struct fixture *f, gconstpointer data)
{
    struct ov_base_id id;
    g_autoptr(GError) error = NULL;
    uint32_t granule = GPOINTER_TO_UINT(data) ? GPOINTER_TO_UINT(data) : 4096;
    int fd;

    f->size = SIZE;
    f->dir = ovt_tmpdir_new();
    f->base_path = ovt_make_base(f->dir, "base.raw", f->size, 42);
    f->ov_path = g_build_filename(f->dir, "c.ovl", NULL);
    f->base = ovt_open_base(f->base_path, 1);
    ovt_base_id(&id, f->size, 1);
    g_assert_true(ov_overlay_create(f->ov_path, &id, granule, false, &error));
    f->ov = open_ov(f, 0);
    f->ref = g_malloc(f->size);
    fd = open(f->base_path, O_RDONLY);
    g_assert_cmpint(pread(fd, f->ref, f->size, 0), ==, (ssize_t)f->size);
    close(fd);
}

static void
teardown(struct fixture *f, gconstpointer data)
{
    g_assert_true(ov_overlay_close(f->ov, NULL));
    ov_base_unref(f->base);
    g_free(f->ref);
    g_free(f->base_path);
    g_free(f->ov_path);
    ovt_tmpdir_free(f->dir);
}

/* Read [off, off+len) through ov_overlay_read_segments into buf. */
static void
read_segments(struct fixture *f, uint8_t *buf, uint64_t len, uint64_t off)
{
    enum { MAX = 1024 };
    g_autofree struct ov_segment *segs = g_new(struct ov_segment, MAX);
    int n = ov_overlay_read_segments(f->ov, off, len, segs, MAX);
    uint64_t done = 0;

    g_assert_cmpint(n, >=, len > 0 ? 1 : 0);
    for (int i = 0; i < n; i++) {
        if (segs[i].fd < 0)
            memset(buf + done, 0, segs[i].len);
        else
            g_assert_cmpint(pread(segs[i].fd, buf + done, segs[i].len, (off_t)segs[i].file_offset),
                            ==, (ssize_t)segs[i].len);
        done += segs[i].len;
    }
    g_assert_cmpuint(done, ==, len);
}

static void
verify(struct fixture *f)
{
    g_autofree uint8_t *buf = g_malloc(f->size);

    g_assert_cmpint(ov_overlay_pread(f->ov, buf, f->size, 0), ==, 0);
    for (uint64_t i = 0; i < f->size; i++)
        if (buf[i] != f->ref[i])
            g_error("byte %" G_GUINT64_FORMAT ": got %02x want %02x", i, buf[i], f->ref[i]);
    /* Some unaligned sub-reads too. */
    for (uint64_t off = 1; off < f->size; off += 70001) {
        uint8_t small[777];
        size_t n = (size_t)MIN((uint64_t)sizeof(small), f->size - off);
        g_assert_cmpint(ov_overlay_pread(f->ov, small, n, off), ==, 0);
        g_assert_cmpmem(small, n, f->ref + off, n);
        read_segments(f, small, n, off);
        g_assert_cmpmem(small, n, f->ref + off, n);
    }
    /* The same bytes described as file segments (zero-copy senders). */
    memset(buf, 0xee, f->size);
    read_segments(f, buf, f->size, 0);
    g_assert_cmpmem(buf, f->size, f->ref, f->size);
}

static void
do_write(struct fixture *f, uint64_t off, size_t len, uint8_t seed)
{
    g_autofree uint8_t *buf = g_malloc(len);

    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(seed + i * 7);
    g_assert_cmpint(ov_overlay_pwrite(f->ov, buf, len, off, 0), ==, 0);
    memcpy(f->ref + off, buf, len);
}

static void
do_zero(struct fixture *f, uint64_t off, uint64_t len)
{
    g_assert_cmpint(ov_overlay_zero(f->ov, off, len, 0), ==, 0);
    memset(f->ref + off, 0, len);
}

static void
test_merged(struct fixture *f, gconstpointer data)
{
    verify(f);
    do_write(f, 100, 512, 1); /* inside one granule, unaligned */
    verify(f);
    do_write(f, 4000, 10000, 2); /* spans granules, partial both ends */
    verify(f);
    do_write(f, 8192, 4096, 3);  /* exactly one already-DATA granule */
    do_write(f, 65536, 8192, 4); /* aligned, fresh */
    verify(f);
    do_zero(f, 7, 3);         /* tiny zero inside a DATA granule */
    do_zero(f, 5000, 100000); /* whole granules + partial edges */
    verify(f);
    do_write(f, 20000, 300, 5); /* partial write into a ZERO granule */
    verify(f);
    do_write(f, f->size - 700, 700, 6); /* the partial last granule */
    do_zero(f, f->size - 5000, 5000);   /* zero to the end of the disk */
    verify(f);
    do_write(f, f->size - 1, 1, 7);
    do_write(f, 0, 1, 8);
    verify(f);
    g_assert_cmpint(ov_overlay_flush(f->ov), ==, 0);
    g_assert_true(ov_overlay_close(f->ov, NULL));
    f->ov = open_ov(f, 0);
    verify(f);
}

/* read_segments refusals: too many runs for the array, a base without a
 * local file, a bad range. */
static void
test_segments_limits(struct fixture *f, gconstpointer data)
{
    struct ov_segment segs[4];
    int base_fd = f->base->fd;

    do_write(f, 4096, 4096, 1);
    do_zero(f, 3 * 4096, 4096);
    g_assert_cmpint(ov_overlay_read_segments(f->ov, 0, 4 * 4096, segs, 3), ==, -E2BIG);
    g_assert_cmpint(ov_overlay_read_segments(f->ov, 0, 4 * 4096, segs, 4), ==, 4);
    g_assert_true(segs[0].fd == base_fd && segs[0].file_offset == 0 && segs[0].len == 4096);
    g_assert_true(segs[1].fd == f->ov->fd && segs[1].len == 4096);
    g_assert_cmpuint(segs[1].file_offset, ==, f->ov->hdr.data_offset + 4096);
    g_assert_true(segs[2].fd == base_fd && segs[2].file_offset == 2 * 4096);
    g_assert_true(segs[3].fd == -1 && segs[3].len == 4096);
    g_assert_cmpint(ov_overlay_read_segments(f->ov, 0, 0, segs, 4), ==, 0);
    g_assert_cmpint(ov_overlay_read_segments(f->ov, f->size, 1, segs, 4), ==, -EINVAL);
    /* a base with no local file: only its BASE runs are refused */
    f->base->fd = -1;
    g_assert_cmpint(ov_overlay_read_segments(f->ov, 0, 4096, segs, 4), ==, -ENOTSUP);
    g_assert_cmpint(ov_overlay_read_segments(f->ov, 4096, 4096, segs, 4), ==, 1);
    f->base->fd = base_fd;
}

static void
test_granules(struct fixture *f, gconstpointer data)
{
    /* Same sequence with a large granule (param) and 512-byte sectors. */
    for (int i = 0; i < 200; i++)
        do_write(f, (uint64_t)g_test_rand_int_range(0, (int)(f->size / 512)) * 512, 512,
                 (uint8_t)i);
    do_zero(f, 3 * 512, 40000);
    do_write(f, 1000, 70000, 9);
    verify(f);
    g_assert_true(ov_overlay_close(f->ov, NULL));
    f->ov = open_ov(f, 0);
    verify(f);
}

struct extent {
    uint64_t off, len;
    enum ov_extent_kind kind;
};

static bool
collect(uint64_t offset, uint64_t length, enum ov_extent_kind kind, void *user_data)
{
    struct extent e = {offset, length, kind};
    g_array_append_val((GArray *)user_data, e);
    return true;
}

static void
test_block_status(struct fixture *f, gconstpointer data)
{
    g_autoptr(GArray) ex = g_array_new(FALSE, FALSE, sizeof(struct extent));
    struct extent *e;

    do_write(f, 4096 + 10, 20, 1);  /* granule 1 DATA */
    do_zero(f, 3 * 4096, 2 * 4096); /* granules 3-4 ZERO */
    g_assert_cmpint(ov_overlay_block_status(f->ov, 100, 6 * 4096, collect, ex), ==, 0);
    g_assert_cmpuint(ex->len, ==, 5);
    e = (struct extent *)ex->data;
    g_assert_cmpuint(e[0].off, ==, 100);
    g_assert_cmpuint(e[0].len, ==, 4096 - 100);
    g_assert_cmpint(e[0].kind, ==, OV_EXTENT_BASE);
    g_assert_cmpuint(e[1].off, ==, 4096);
    g_assert_cmpint(e[1].kind, ==, OV_EXTENT_DATA);
    g_assert_cmpint(e[2].kind, ==, OV_EXTENT_BASE);
    g_assert_cmpuint(e[3].off, ==, 3 * 4096);
    g_assert_cmpuint(e[3].len, ==, 2 * 4096);
    g_assert_cmpint(e[3].kind, ==, OV_EXTENT_ZERO);
    g_assert_cmpuint(e[4].off + e[4].len, ==, 100 + 6 * 4096); /* clipped */
    g_array_set_size(ex, 0);
    g_assert_cmpint(ov_overlay_block_status(f->ov, 0, f->size, collect, ex), ==, 0);
    g_assert_cmpuint(ex->len, ==, 5);
    e = (struct extent *)ex->data;
    g_assert_cmpuint(e[4].off + e[4].len, ==, f->size);
    g_assert_cmpint(ov_overlay_block_status(f->ov, 0, f->size + 1, collect, ex), ==, -EINVAL);
}

static void
test_info_space(struct fixture *f, gconstpointer data)
{
    struct ov_overlay_info info;
    uint64_t before;

    do_write(f, 0, 512 * 1024, 1);
    g_assert_cmpint(ov_overlay_flush(f->ov), ==, 0);
    ov_overlay_get_info(f->ov, &info);
    g_assert_cmpuint(info.data_granules, ==, 128);
    g_assert_cmpuint(info.zero_granules, ==, 0);
    g_assert_cmpuint(info.file_bytes, >=, 512 * 1024);
    g_assert_cmpuint(info.size, ==, f->size);
    g_assert_false(info.corrupt);
    g_assert_cmpstr(info.base.image, ==, "lab");
    before = info.file_bytes;
    do_zero(f, 0, 512 * 1024);
    ov_overlay_get_info(f->ov, &info);
    g_assert_cmpuint(info.data_granules, ==, 0);
    g_assert_cmpuint(info.zero_granules, ==, 128);
    g_assert_cmpuint(info.file_bytes, <=, before - 500 * 1024); /* space released */
    verify(f); /* zeros, not the base's old bytes */
    g_assert_true(ov_overlay_get_base(f->ov) == f->base);
    g_assert_cmpstr(ov_overlay_get_path(f->ov), ==, f->ov_path);

    /* Discarding parts of granules that are already ZERO (a guest trimming
     * in 512-byte pieces, or trimming twice) must not turn them back into
     * DATA granules full of zeros: that would take space, not release it. */
    before = info.file_bytes;
    do_zero(f, 512, 1024);        /* inside granule 0 */
    do_zero(f, 4096 - 512, 1536); /* the tail of granule 0, the head of 1 */
    do_zero(f, 100 * 4096 + 7, 3);
    ov_overlay_get_info(f->ov, &info);
    g_assert_cmpuint(info.data_granules, ==, 0);
    g_assert_cmpuint(info.zero_granules, ==, 128);
    g_assert_cmpuint(info.file_bytes, <=, before);
    verify(f);
    /* A partial zero of a BASE granule still completes it from the base. */
    do_zero(f, 600 * 1024 + 100, 200);
    ov_overlay_get_info(f->ov, &info);
    g_assert_cmpuint(info.data_granules, ==, 1);
    verify(f);
}

static void
test_lock(struct fixture *f, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    struct ov_overlay *ov2;

    ov2 = ov_overlay_open(f->ov_path, f->base, 0, &error);
    g_assert_null(ov2);
    g_assert_error(error, OV_ERROR, OV_ERROR_LOCKED);
    g_assert_nonnull(strstr(error->message, "in use"));
    g_clear_error(&error);
    ov2 = ov_overlay_open(f->ov_path, f->base, OV_OPEN_READ_ONLY, &error);
    g_assert_error(error, OV_ERROR, OV_ERROR_LOCKED);
    g_clear_error(&error);
    ov2 = ov_overlay_open(f->ov_path, f->base, OV_OPEN_READ_ONLY | OV_OPEN_NO_LOCK, &error);
    g_assert_no_error(error);
    g_assert_cmpint(ov_overlay_pwrite(ov2, "x", 1, 0, 0), ==, -EROFS);
    g_assert_cmpint(ov_overlay_zero(ov2, 0, 1, 0), ==, -EROFS);
    ov_overlay_close(ov2, NULL);

    /* Readers share; a writer is refused while they hold it. */
    g_assert_true(ov_overlay_close(f->ov, NULL));
    f->ov = open_ov(f, OV_OPEN_READ_ONLY);
    ov2 = open_ov(f, OV_OPEN_READ_ONLY);
    g_assert_null(ov_overlay_open(f->ov_path, f->base, 0, &error));
    g_assert_error(error, OV_ERROR, OV_ERROR_LOCKED);
    g_clear_error(&error);
    ov_overlay_close(ov2, NULL);
    g_assert_true(ov_overlay_close(f->ov, NULL));
    f->ov = open_ov(f, 0);

    /* Another process is refused too (OFD locks are per open file). */
    pid_t pid = fork();
    int status = -1;
    if (pid == 0) {
        GError *e = NULL;
        struct ov_overlay *o = ov_overlay_open(f->ov_path, f->base, 0, &e);
        _exit(o == NULL && g_error_matches(e, OV_ERROR, OV_ERROR_LOCKED) ? 0 : 1);
    }
    g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
    g_assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void
test_wrong_base(struct fixture *f, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    struct ov_base *other = ovt_open_base(f->base_path, 2); /* generation 2 */
    g_autofree char *small_path = ovt_make_base(f->dir, "small.raw", 4096, 1);
    struct ov_base *small = base_file_open(small_path, &error);

    g_assert_true(ov_overlay_close(g_steal_pointer(&f->ov), NULL));
    g_assert_null(ov_overlay_open(f->ov_path, other, 0, &error));
    g_assert_error(error, OV_ERROR, OV_ERROR_WRONG_BASE);
    g_assert_nonnull(strstr(error->message, "generation 2"));
    g_clear_error(&error);
    g_assert_null(ov_overlay_open(f->ov_path, small, 0, &error));
    g_assert_error(error, OV_ERROR, OV_ERROR_WRONG_BASE);
    ov_base_unref(other);
    ov_base_unref(small);
    f->ov = open_ov(f, 0);
}

static void
test_range(struct fixture *f, gconstpointer data)
{
    uint8_t b[16] = {0};

    g_assert_cmpint(ov_overlay_pread(f->ov, b, 16, f->size - 8), ==, -EINVAL);
    g_assert_cmpint(ov_overlay_pwrite(f->ov, b, 16, f->size - 8, 0), ==, -EINVAL);
    g_assert_cmpint(ov_overlay_zero(f->ov, UINT64_MAX - 2, 16, 0), ==, -EINVAL);
    g_assert_cmpint(ov_overlay_pread(f->ov, b, 0, f->size), ==, 0);
    g_assert_cmpint(ov_overlay_pwrite(f->ov, b, 0, 0, OV_FUA), ==, 0);
}

/* ---- fault injection: ENOSPC ---- */

struct faults {
    enum ov_fault_op op;
    int err;
    int calls;
};

static int
inject(void *user_data, enum ov_fault_op op, int fd, uint64_t offset, uint64_t len)
{
    struct faults *fl = user_data;

    if (op != fl->op)
        return 0;
    fl->calls++;
    return fl->err;
}

static void
test_enospc(struct fixture *f, gconstpointer data)
{
    struct faults fl = {OV_FAULT_DATA_WRITE, -ENOSPC, 0};
    uint8_t buf[4096];

    memset(buf, 0xab, sizeof(buf));
    ov_overlay_set_fault_hook(f->ov, inject, &fl);
    /* A failed write changes nothing: still reads the base. */
    g_assert_cmpint(ov_overlay_pwrite(f->ov, buf, 4096, 8192, 0), ==, -ENOSPC);
    g_assert_cmpint(ov_overlay_pwrite(f->ov, buf, 100, 30000, OV_FUA), ==, -ENOSPC);
    g_assert_cmpint(ov_overlay_zero(f->ov, 10, 10, 0), ==, -ENOSPC);
    g_assert_cmpint(fl.calls, ==, 3);
    verify(f);
    ov_overlay_set_fault_hook(f->ov, NULL, NULL);
    do_write(f, 8192, 4096, 2);

    /* A failed map write: flush fails, nothing advances, the next flush
     * writes it again. */
    fl = (struct faults){OV_FAULT_MAP_WRITE, -ENOSPC, 0};
    ov_overlay_set_fault_hook(f->ov, inject, &fl);
    g_assert_cmpint(ov_overlay_flush(f->ov), ==, -ENOSPC);
    ov_overlay_set_fault_hook(f->ov, NULL, NULL);
    g_assert_cmpint(ov_overlay_flush(f->ov), ==, 0);
    g_assert_true(ov_overlay_close(f->ov, NULL));
    f->ov = open_ov(f, 0);
    verify(f);

    /* A failed fdatasync is sticky: later flushes keep failing. */
    do_write(f, 50000, 10, 3);
    fl = (struct faults){OV_FAULT_SYNC, -ENOSPC, 0};
    ov_overlay_set_fault_hook(f->ov, inject, &fl);
    g_assert_cmpint(ov_overlay_flush(f->ov), ==, -ENOSPC);
    ov_overlay_set_fault_hook(f->ov, NULL, NULL);
    g_assert_cmpint(ov_overlay_flush(f->ov), ==, -ENOSPC);
    g_assert_cmpint(ov_overlay_pwrite(f->ov, buf, 1, 0, OV_FUA), ==, -ENOSPC);
    {
        g_autoptr(GError) error = NULL;
        g_assert_false(ov_overlay_close(g_steal_pointer(&f->ov), &error));
        g_assert_error(error, OV_ERROR, OV_ERROR_NO_SPACE);
    }
    f->ov = open_ov(f, 0);
}

/* ---- concurrency: sector writes into shared granules ---- */

struct worker {
    struct ov_overlay *ov;
    unsigned id, n;
};

static gpointer
sector_writer(gpointer data)
{
    struct worker *w = data;
    uint8_t buf[512];

    /* Worker id owns sector id of every granule; all start out BASE, so each
     * first write is a read-modify-write that must not undo the others. */
    for (unsigned round = 0; round < 3; round++) {
        for (unsigned g = 0; g < w->n; g++) {
            memset(buf, (int)(w->id * 16 + round), sizeof(buf));
            g_assert_cmpint(ov_overlay_pwrite(w->ov, buf, 512, (uint64_t)g * 4096 + w->id * 512, 0),
                            ==, 0);
            if (g % 7 == w->id)
                g_assert_cmpint(ov_overlay_flush(w->ov), ==, 0);
        }
    }
    return NULL;
}

struct reader {
    struct fixture *f;
    unsigned n;
    int stop;
    unsigned reads;
};

/* Readers run while the writers convert granules: every byte must read as
 * the base's byte or as its sector's writer's pattern, never anything else
 * (bytes, not whole sectors: the kernel does not make a buffered read
 * atomic against a concurrent pwrite of the same page). */
static gpointer
sector_reader(gpointer data)
{
    struct reader *r = data;
    uint8_t buf[4096];

    while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
        unsigned g = (unsigned)g_random_int_range(0, (gint32)r->n);
        g_assert_cmpint(ov_overlay_pread(r->f->ov, buf, 4096, (uint64_t)g * 4096), ==, 0);
        for (unsigned k = 0; k < 4096; k++) {
            unsigned v = buf[k], sector = k / 512;
            if (v != r->f->ref[(uint64_t)g * 4096 + k] && (v < sector * 16 || v > sector * 16 + 2))
                g_error("granule %u byte %u reads %02x: neither base nor its writer's", g, k, v);
        }
        r->reads++;
    }
    return NULL;
}

static void
test_concurrent(struct fixture *f, gconstpointer data)
{
    struct worker w[8];
    GThread *t[8], *rt[2];
    const unsigned n = 200;
    struct reader rd[2] = {{f, n, 0, 0}, {f, n, 0, 0}};

    for (unsigned i = 0; i < 2; i++)
        rt[i] = g_thread_new("reader", sector_reader, &rd[i]);
    for (unsigned i = 0; i < 8; i++) {
        w[i] = (struct worker){f->ov, i, n};
        t[i] = g_thread_new("writer", sector_writer, &w[i]);
    }
    for (unsigned i = 0; i < 8; i++)
        g_thread_join(t[i]);
    for (unsigned i = 0; i < 2; i++) {
        __atomic_store_n(&rd[i].stop, 1, __ATOMIC_RELEASE);
        g_thread_join(rt[i]);
        g_assert_cmpuint(rd[i].reads, >, 0);
    }
    for (unsigned g = 0; g < n; g++)
        for (unsigned i = 0; i < 8; i++)
            memset(f->ref + g * 4096 + i * 512, (int)(i * 16 + 2), 512);
    verify(f);
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
#define ADD(path, fn, data)                                                                        \
    g_test_add("/overlay/io/" path, struct fixture, data, setup, fn, teardown)
    ADD("merged", test_merged, NULL);
    ADD("merged-512", test_merged, GUINT_TO_POINTER(512));
    ADD("merged-64k", test_merged, GUINT_TO_POINTER(65536));
    ADD("sectors-4k", test_granules, NULL);
    ADD("sectors-1m", test_granules, GUINT_TO_POINTER(1u << 20));
    ADD("block-status", test_block_status, NULL);
    ADD("segments-limits", test_segments_limits, NULL);
    ADD("info-space", test_info_space, NULL);
    ADD("lock", test_lock, NULL);
    ADD("wrong-base", test_wrong_base, NULL);
    ADD("range", test_range, NULL);
    ADD("enospc", test_enospc, NULL);
    ADD("concurrent", test_concurrent, NULL);
    return g_test_run();
}
