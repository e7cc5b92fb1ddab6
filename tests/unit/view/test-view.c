/* test-view.c — proxy/view over the real overlay library and a file base:
 * data path, read-only image views, COMPARE AND WRITE atomicity, freeze /
 * swap / thaw, block status, identity and counters. */
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <glib/gstdio.h>

#include "base.h"
#include "view.h"

#define DISK_SIZE (1024 * 1024)
#define GRANULE 4096

struct fixture {
    char *dir;
    char *raw;
    struct ov_base *base;
    struct ov_base_id id;
    struct view *view;
    int n_overlays;
};

static uint8_t
pattern(uint64_t off)
{
    return (uint8_t)((off * 7 + 3) & 0xff);
}

static struct ov_overlay *
new_overlay(struct fixture *f)
{
    g_autofree char *path = g_strdup_printf("%s/ov%d", f->dir, f->n_overlays++);
    g_autoptr(GError) err = NULL;
    struct ov_overlay *ov;

    g_assert_true(ov_overlay_create(path, &f->id, GRANULE, false, &err));
    ov = ov_overlay_open(path, f->base, 0, &err);
    g_assert_no_error(err);
    return ov;
}

static void
setup(struct fixture *f, gconstpointer data)
{
    g_autofree uint8_t *buf = g_malloc(DISK_SIZE);
    g_autoptr(GError) err = NULL;

    f->dir = g_dir_make_tmp("test-view-XXXXXX", &err);
    g_assert_no_error(err);
    f->raw = g_build_filename(f->dir, "base.raw", NULL);
    for (uint64_t i = 0; i < DISK_SIZE; i++)
        buf[i] = pattern(i);
    /* the last 64 KiB are a hole: the base reports it as zero */
    memset(buf + DISK_SIZE - 65536, 0, 65536);
    g_assert_true(g_file_set_contents(f->raw, (const char *)buf, DISK_SIZE - 65536, &err));
    g_assert_cmpint(truncate(f->raw, DISK_SIZE), ==, 0);
    f->base = base_file_open(f->raw, &err);
    g_assert_no_error(err);
    g_strlcpy(f->id.image, "lab", sizeof(f->id.image));
    f->id.generation = 3;
    f->id.size = DISK_SIZE;
    ov_uuid_generate(f->id.uuid);
    ov_base_set_id(f->base, &f->id);
    f->view = view_new_overlay(new_overlay(f), "pc01", "lab");
}

static void
rm_tree(const char *dir)
{
    GDir *d = g_dir_open(dir, 0, NULL);
    const char *name;

    while (d != NULL && (name = g_dir_read_name(d)) != NULL) {
        g_autofree char *p = g_build_filename(dir, name, NULL);
        g_unlink(p);
    }
    if (d != NULL)
        g_dir_close(d);
    g_rmdir(dir);
}

static void
teardown(struct fixture *f, gconstpointer data)
{
    view_unref(f->view);
    ov_base_unref(f->base);
    rm_tree(f->dir);
    g_free(f->dir);
    g_free(f->raw);
}

static void
test_identity(struct fixture *f, gconstpointer data)
{
    uint8_t a[16], b[16], c[16];
    struct view *other = view_new_overlay(new_overlay(f), "pc02", "lab");
    struct view *ro = view_new_base(f->base, "lab", 3);

    g_assert_cmpuint(view_get_size(f->view), ==, DISK_SIZE);
    g_assert_cmpuint(view_get_granule(f->view), ==, GRANULE);
    g_assert_cmpstr(view_get_client(f->view), ==, "pc01");
    g_assert_cmpstr(view_get_image(f->view), ==, "lab");
    g_assert_cmpuint(view_get_generation(f->view), ==, 3);
    g_assert_false(view_is_read_only(f->view));
    view_get_disk_id(f->view, a);
    view_get_disk_id(other, b);
    view_get_disk_id(ro, c);
    g_assert_true(memcmp(a, b, 16) != 0);
    g_assert_true(memcmp(a, c, 16) != 0);
    /* the same names give the same identity (stable across restarts) */
    view_unref(other);
    other = view_new_overlay(new_overlay(f), "pc01", "lab");
    view_get_disk_id(other, b);
    g_assert_true(memcmp(a, b, 16) == 0);
    view_unref(other);
    view_unref(ro);
}

static void
test_read_write(struct fixture *f, gconstpointer data)
{
    uint8_t buf[8192], want[8192];
    struct view_stats st;

    g_assert_cmpint(view_pread(f->view, buf, sizeof(buf), 4096), ==, 0);
    for (size_t i = 0; i < sizeof(buf); i++)
        g_assert_cmpuint(buf[i], ==, pattern(4096 + i));
    memset(want, 0xab, sizeof(want));
    g_assert_cmpint(view_pwrite(f->view, want, 1000, 5000, 0), ==, 0);
    g_assert_cmpint(view_pwrite(f->view, want, 512, 0, VIEW_FUA), ==, 0);
    g_assert_cmpint(view_pread(f->view, buf, sizeof(buf), 4096), ==, 0);
    for (size_t i = 0; i < sizeof(buf); i++) {
        uint64_t off = 4096 + i;
        uint8_t exp = (off >= 5000 && off < 6000) ? 0xab : pattern(off);
        g_assert_cmpuint(buf[i], ==, exp);
    }
    g_assert_cmpint(view_flush(f->view), ==, 0);
    /* out of range, and overflowing ranges */
    g_assert_cmpint(view_pread(f->view, buf, 2, DISK_SIZE - 1), ==, -EINVAL);
    g_assert_cmpint(view_pwrite(f->view, buf, 1, DISK_SIZE, 0), ==, -EINVAL);
    g_assert_cmpint(view_zero(f->view, UINT64_MAX - 10, 20, 0), ==, -EINVAL);
    view_get_stats(f->view, &st);
    g_assert_cmpuint(st.read_ops, ==, 3);
    g_assert_cmpuint(st.read_bytes, ==, 2 * sizeof(buf));
    g_assert_cmpuint(st.write_ops, ==, 3);
    g_assert_cmpuint(st.write_bytes, ==, 1512);
    g_assert_cmpuint(st.zero_ops, ==, 1);
    g_assert_cmpuint(st.flush_ops, ==, 1);
    g_assert_cmpuint(st.errors, ==, 3);
}

static void
test_zero(struct fixture *f, gconstpointer data)
{
    uint8_t buf[3 * GRANULE];
    struct view_stats st;

    g_assert_cmpint(view_zero(f->view, GRANULE - 100, 2 * GRANULE, 0), ==, 0);
    g_assert_cmpint(view_pread(f->view, buf, sizeof(buf), 0), ==, 0);
    for (size_t i = 0; i < sizeof(buf); i++) {
        bool zero = i >= GRANULE - 100 && i < 3 * GRANULE - 100;
        g_assert_cmpuint(buf[i], ==, zero ? 0 : pattern(i));
    }
    g_assert_cmpint(view_zero(f->view, 0, GRANULE, VIEW_FUA | VIEW_NO_UNMAP), ==, 0);
    view_get_stats(f->view, &st);
    g_assert_cmpuint(st.zero_ops, ==, 2);
    g_assert_cmpuint(st.zero_bytes, ==, 3 * GRANULE);
}

static void
test_read_only(struct fixture *f, gconstpointer data)
{
    struct view *ro = view_new_base(f->base, "lab", 3);
    uint8_t buf[100];
    size_t mis = 0;

    g_assert_true(view_is_read_only(ro));
    g_assert_null(view_get_client(ro));
    g_assert_null(view_get_overlay(ro));
    g_assert_cmpuint(view_get_size(ro), ==, DISK_SIZE);
    g_assert_cmpuint(view_get_generation(ro), ==, 3);
    g_assert_cmpint(view_pread(ro, buf, sizeof(buf), 12345), ==, 0);
    for (size_t i = 0; i < sizeof(buf); i++)
        g_assert_cmpuint(buf[i], ==, pattern(12345 + i));
    g_assert_cmpint(view_pwrite(ro, buf, sizeof(buf), 0, 0), ==, -EROFS);
    g_assert_cmpint(view_zero(ro, 0, 512, 0), ==, -EROFS);
    g_assert_cmpint(view_compare_and_write(ro, buf, buf, 10, 0, 0, &mis), ==, -EROFS);
    g_assert_cmpint(view_flush(ro), ==, 0);
    g_assert_cmpint(view_freeze(ro), ==, 0);
    view_thaw(ro);
    view_unref(ro);
}

static void
test_caw(struct fixture *f, gconstpointer data)
{
    uint8_t cmp[512], new_data[512], buf[512];
    size_t mis = 12345;

    g_assert_cmpint(view_pread(f->view, cmp, sizeof(cmp), 512), ==, 0);
    memset(new_data, 0x5a, sizeof(new_data));
    g_assert_cmpint(view_compare_and_write(f->view, cmp, new_data, 512, 512, 0, &mis), ==, 0);
    g_assert_cmpint(view_pread(f->view, buf, sizeof(buf), 512), ==, 0);
    g_assert_cmpmem(buf, 512, new_data, 512);
    /* now cmp is stale: miscompare at byte 0, nothing written */
    memcpy(buf, new_data, sizeof(buf));
    buf[77] ^= 1;
    g_assert_cmpint(view_compare_and_write(f->view, buf, cmp, 512, 512, 0, &mis), ==, -EILSEQ);
    g_assert_cmpuint(mis, ==, 77);
    g_assert_cmpint(view_pread(f->view, buf, sizeof(buf), 512), ==, 0);
    g_assert_cmpmem(buf, 512, new_data, 512);
    g_assert_cmpint(view_compare_and_write(f->view, buf, buf, 512, DISK_SIZE, 0, &mis), ==,
                    -EINVAL);
}

/* Threads increment a counter in block 0 with COMPARE AND WRITE only; if a
 * CAW could interleave with another, two would succeed from the same old
 * value and the counter would end below the number of successes. Other
 * threads write elsewhere at the same time. */
#define CAW_THREADS 4
#define CAW_SUCCESSES 200

static gpointer
caw_thread(gpointer data)
{
    struct view *view = data;
    int done = 0;

    while (done < CAW_SUCCESSES) {
        uint64_t cur, next;
        uint8_t a[512] = {0}, b[512] = {0};
        size_t mis;

        g_assert_cmpint(view_pread(view, a, sizeof(a), 0), ==, 0);
        memcpy(&cur, a, sizeof(cur));
        next = cur + 1;
        memcpy(b, &next, sizeof(next));
        int rc = view_compare_and_write(view, a, b, sizeof(a), 0, 0, &mis);
        g_assert_true(rc == 0 || rc == -EILSEQ);
        if (rc == 0)
            done++;
    }
    return NULL;
}

static gpointer
writer_thread(gpointer data)
{
    struct view *view = data;
    uint8_t buf[4096];

    memset(buf, 0xcc, sizeof(buf));
    for (int i = 0; i < 300; i++)
        g_assert_cmpint(view_pwrite(view, buf, sizeof(buf), 65536 + (i % 16) * 4096, 0), ==, 0);
    return NULL;
}

static void
test_caw_atomic(struct fixture *f, gconstpointer data)
{
    GThread *t[CAW_THREADS + 2];
    uint8_t zero[512] = {0};
    uint8_t buf[512];
    uint64_t total;

    g_assert_cmpint(view_pwrite(f->view, zero, sizeof(zero), 0, 0), ==, 0);
    for (int i = 0; i < CAW_THREADS; i++)
        t[i] = g_thread_new("caw", caw_thread, f->view);
    for (int i = 0; i < 2; i++)
        t[CAW_THREADS + i] = g_thread_new("writer", writer_thread, f->view);
    for (int i = 0; i < CAW_THREADS + 2; i++)
        g_thread_join(t[i]);
    g_assert_cmpint(view_pread(f->view, buf, sizeof(buf), 0), ==, 0);
    memcpy(&total, buf, sizeof(total));
    g_assert_cmpuint(total, ==, CAW_THREADS * CAW_SUCCESSES);
}

struct frozen_reader {
    struct view *view;
    gint done;
};

static gpointer
frozen_reader_thread(gpointer data)
{
    struct frozen_reader *r = data;
    uint8_t buf[512];

    g_assert_cmpint(view_pread(r->view, buf, sizeof(buf), 0), ==, 0);
    g_atomic_int_set(&r->done, 1);
    return NULL;
}

static void
test_freeze_swap(struct fixture *f, gconstpointer data)
{
    struct frozen_reader r = {f->view, 0};
    struct ov_overlay *old = NULL, *detached;
    uint8_t buf[512], ones[512];
    GThread *t;

    memset(ones, 1, sizeof(ones));
    g_assert_cmpint(view_pwrite(f->view, ones, sizeof(ones), 0, 0), ==, 0);
    g_assert_cmpint(view_freeze(f->view), ==, 0);
    /* I/O waits while frozen */
    t = g_thread_new("reader", frozen_reader_thread, &r);
    g_usleep(100 * 1000);
    g_assert_cmpint(g_atomic_int_get(&r.done), ==, 0);
    view_swap_overlay(f->view, new_overlay(f), &old);
    g_assert_nonnull(old);
    g_assert_true(view_get_overlay(f->view) != old);
    view_thaw(f->view);
    g_thread_join(t);
    g_assert_cmpint(r.done, ==, 1);
    /* the new overlay is empty: the base shows again; the old one kept the write */
    g_assert_cmpint(view_pread(f->view, buf, sizeof(buf), 0), ==, 0);
    g_assert_cmpuint(buf[0], ==, pattern(0));
    g_assert_cmpint(ov_overlay_pread(old, buf, sizeof(buf), 0), ==, 0);
    g_assert_cmpmem(buf, sizeof(buf), ones, sizeof(ones));
    g_assert_true(ov_overlay_close(old, NULL));

    /* detached: I/O fails cleanly until a new overlay is swapped in */
    g_assert_cmpint(view_freeze(f->view), ==, 0);
    detached = view_detach_overlay(f->view);
    g_assert_nonnull(detached);
    g_assert_true(ov_overlay_close(detached, NULL));
    view_thaw(f->view);
    g_assert_cmpint(view_pread(f->view, buf, sizeof(buf), 0), ==, -EIO);
    g_assert_cmpint(view_pwrite(f->view, buf, sizeof(buf), 0, 0), ==, -EIO);
    g_assert_cmpint(view_flush(f->view), ==, -EIO);
    g_assert_cmpint(view_zero(f->view, 0, sizeof(buf), 0), ==, -EIO);
    g_assert_cmpint(view_compare_and_write(f->view, buf, buf, sizeof(buf), 0, 0, NULL), ==, -EIO);
    g_assert_cmpint(view_freeze(f->view), ==, 0);
    view_swap_overlay(f->view, new_overlay(f), &old);
    g_assert_null(old);
    view_thaw(f->view);
    g_assert_cmpint(view_pread(f->view, buf, sizeof(buf), 0), ==, 0);
    g_assert_cmpuint(buf[1], ==, pattern(1));
}

/* Readers that keep the gate shared back to back (several connections of
 * one client) must not starve a freeze, nor plain writers a COMPARE AND
 * WRITE: both locks prefer writers. */
struct busy {
    struct view *view;
    gint stop;
    bool write;
};

static gpointer
busy_thread(gpointer data)
{
    struct busy *b = data;
    uint8_t buf[4096];

    memset(buf, 3, sizeof(buf));
    while (!g_atomic_int_get(&b->stop)) {
        if (b->write)
            g_assert_cmpint(view_pwrite(b->view, buf, sizeof(buf), 8 * GRANULE, 0), ==, 0);
        else
            g_assert_cmpint(view_pread(b->view, buf, sizeof(buf), 8 * GRANULE), ==, 0);
    }
    return NULL;
}

static void
test_no_starvation(struct fixture *f, gconstpointer data)
{
    struct busy b = {f->view, 0, false};
    GThread *t[8];
    uint8_t cur[512], next[512];
    size_t mis;
    gint64 start;

    for (int i = 0; i < 8; i++) {
        b.write = i >= 4;
        t[i] = g_thread_new("busy", busy_thread, &b);
    }
    g_usleep(50 * 1000);
    start = g_get_monotonic_time();
    g_assert_cmpint(view_freeze(f->view), ==, 0);
    view_thaw(f->view);
    g_assert_cmpint(view_pread(f->view, cur, sizeof(cur), 0), ==, 0);
    memset(next, 9, sizeof(next));
    g_assert_cmpint(view_compare_and_write(f->view, cur, next, sizeof(cur), 0, 0, &mis), ==, 0);
    /* generous bound: without writer preference these never return */
    g_assert_cmpint(g_get_monotonic_time() - start, <, 5 * G_USEC_PER_SEC);
    g_atomic_int_set(&b.stop, 1);
    for (int i = 0; i < 8; i++)
        g_thread_join(t[i]);
}

struct extents {
    GString *log;
};

/* Read [offset, offset+len) through the segments of s into buf. */
static void
read_through_segments(const struct view_segments *s, uint8_t *buf, uint64_t len)
{
    uint64_t done = 0;

    for (unsigned i = 0; i < s->n; i++) {
        const struct view_segment *seg = &s->seg[i];
        if (seg->mem != NULL)
            memcpy(buf + done, seg->mem, seg->len);
        else if (seg->fd < 0)
            memset(buf + done, 0, seg->len);
        else
            g_assert_cmpint(pread(seg->fd, buf + done, seg->len, (off_t)seg->file_offset), ==,
                            (ssize_t)seg->len);
        done += seg->len;
    }
    g_assert_cmpuint(done, ==, len);
}

/* Zero-copy reads: segments describe the same bytes as view_pread (base,
 * overlay data, zeros), their descriptors outlive a swap of the overlay
 * (the old bytes stay readable), and the fallbacks are reported. */
static void
test_read_segments(struct fixture *f, gconstpointer data)
{
    enum { LEN = 256 * 1024 };
    g_autofree uint8_t *want = g_malloc(LEN), *got = g_malloc(LEN), *ones = g_malloc(LEN);
    struct view_segments s, s2;
    struct ov_overlay *old = NULL;
    struct view_stats st;
    uint64_t off = DISK_SIZE - LEN; /* ends in the base's hole */

    memset(ones, 1, LEN);
    g_assert_cmpint(view_pwrite(f->view, ones, 10000, off + 5000, 0), ==, 0);
    g_assert_cmpint(view_zero(f->view, off + 3 * GRANULE, 4 * GRANULE, 0), ==, 0);
    g_assert_cmpint(view_pread(f->view, want, LEN, off), ==, 0);
    g_assert_cmpint(view_read_segments(f->view, off, LEN, &s), ==, 0);
    g_assert_cmpuint(s.n, >=, 4); /* base, data, zeros, data, base (+ hole) */
    /* base bytes come from the base's mapping, overlay bytes as a file */
    g_assert_cmpint(s.seg[0].fd, ==, -1);
    g_assert_nonnull(s.seg[0].mem);
    g_assert_nonnull(s.seg[0].mem_ref);
    g_assert_cmpint(s.seg[1].fd, >=, 0);
    g_assert_null(s.seg[1].mem);
    read_through_segments(&s, got, LEN);
    g_assert_cmpmem(got, LEN, want, LEN);

    /* a swap (online reset) while the reply would still be in flight */
    g_assert_cmpint(view_freeze(f->view), ==, 0);
    view_swap_overlay(f->view, new_overlay(f), &old);
    view_thaw(f->view);
    g_assert_true(ov_overlay_close(old, NULL));
    read_through_segments(&s, got, LEN);
    g_assert_cmpmem(got, LEN, want, LEN);
    view_segments_clear(&s);
    g_assert_cmpuint(s.n, ==, 0);
    /* the new overlay is empty: one base segment */
    g_assert_cmpint(view_read_segments(f->view, 0, LEN, &s2), ==, 0);
    g_assert_cmpuint(s2.n, ==, 1);
    read_through_segments(&s2, got, LEN);
    for (size_t i = 0; i < LEN; i++)
        g_assert_cmpuint(got[i], ==, pattern(i));
    view_segments_clear(&s2);

    /* more than VIEW_MAX_SEGMENTS runs: the caller is told to copy */
    for (uint64_t g = 0; g < 2 * VIEW_MAX_SEGMENTS; g += 2)
        g_assert_cmpint(view_zero(f->view, g * GRANULE, GRANULE, 0), ==, 0);
    g_assert_cmpint(view_read_segments(f->view, 0, LEN, &s2), ==, -E2BIG);
    g_assert_cmpuint(s2.n, ==, 0);
    g_assert_cmpint(view_read_segments(f->view, DISK_SIZE, 1, &s2), ==, -EINVAL);
    g_assert_cmpint(view_read_segments(f->view, 0, 0, &s2), ==, 0);
    g_assert_cmpuint(s2.n, ==, 0);
    view_get_stats(f->view, &st);
    g_assert_cmpuint(st.errors, ==, 1); /* only the bad range */
}

/* An image view has no overlay: one segment of the base file. */
static void
test_read_segments_image(struct fixture *f, gconstpointer data)
{
    struct view *img = view_new_base(f->base, "lab", 3);
    struct view_segments s;
    uint8_t buf[8192];

    g_assert_cmpint(view_read_segments(img, 100, sizeof(buf), &s), ==, 0);
    g_assert_cmpuint(s.n, ==, 1);
    read_through_segments(&s, buf, sizeof(buf));
    for (size_t i = 0; i < sizeof(buf); i++)
        g_assert_cmpuint(buf[i], ==, pattern(100 + i));
    view_segments_clear(&s);
    view_unref(img);
}

/* view_map_read: one read-only mapping shows the same bytes as view_pread
 * (base, overlay data, overlay zeros, the base's hole), at page-aligned and
 * unaligned offsets, and keeps showing them after a swap; ranges it cannot
 * map (too many pieces, a piece boundary inside a page, out of range) are
 * refused without counting an error, so the caller's view_pread decides. */
static void
test_map_read(struct fixture *f, gconstpointer data)
{
    enum { LEN = 256 * 1024 };
    g_autofree uint8_t *want = g_malloc(LEN), *ones = g_malloc(LEN);
    uint64_t off = DISK_SIZE - LEN; /* ends in the base's hole */
    struct ov_overlay *old = NULL;
    struct view_stats st0, st;
    struct view_map m, m2;

    memset(ones, 1, LEN);
    g_assert_cmpint(view_pwrite(f->view, ones, 10000, off + 5000, 0), ==, 0);
    g_assert_cmpint(view_zero(f->view, off + 3 * GRANULE, 4 * GRANULE, 0), ==, 0);
    g_assert_cmpint(view_pread(f->view, want, LEN, off), ==, 0);
    view_get_stats(f->view, &st0);
    g_assert_true(view_map_read(f->view, off, LEN, 0, &m));
    g_assert_nonnull(m.addr);
    g_assert_true(m.data == m.addr);
    g_assert_cmpuint(m.len, ==, LEN);
    g_assert_cmpmem(m.data, LEN, want, LEN);
    view_get_stats(f->view, &st);
    g_assert_cmpuint(st.read_ops, ==, st0.read_ops + 1);
    g_assert_cmpuint(st.read_bytes, ==, st0.read_bytes + LEN);

    /* unaligned start and end (512-byte blocks): same bytes */
    g_assert_true(view_map_read(f->view, off + 512, LEN - 1536, 0, &m2));
    g_assert_cmpuint((uintptr_t)m2.data % 4096, ==, 512);
    g_assert_cmpmem(m2.data, LEN - 1536, want + 512, LEN - 1536);
    view_map_release(&m2);
    g_assert_null(m2.addr);
    view_map_release(&m2); /* releasing an empty map is a no-op */

    /* an online reset while the reply would still be queued */
    g_assert_cmpint(view_freeze(f->view), ==, 0);
    view_swap_overlay(f->view, new_overlay(f), &old);
    view_thaw(f->view);
    g_assert_true(ov_overlay_close(old, NULL));
    g_assert_cmpmem(m.data, LEN, want, LEN);
    /* mixed_min: a range that needs its own mapping is refused below it,
     * one that lies in the base is not (the new overlay is empty) */
    g_assert_cmpint(view_pwrite(f->view, ones, 4096, off, 0), ==, 0);
    g_assert_false(view_map_read(f->view, off, LEN, LEN + 1, &m2));
    g_assert_null(m2.data);
    g_assert_true(view_map_read(f->view, off, LEN, LEN, &m2));
    g_assert_nonnull(m2.addr);
    g_assert_cmpuint(m2.data[4095], ==, 1);
    g_assert_cmpuint(m2.data[4096], ==, pattern(off + 4096));
    view_map_release(&m2);
    g_assert_true(view_map_read(f->view, 4096, 65536, SIZE_MAX, &m2));
    g_assert_null(m2.addr);
    g_assert_nonnull(m2.ref);
    for (size_t i = 0; i < 65536; i++)
        g_assert_cmpuint(m2.data[i], ==, pattern(4096 + i));
    view_map_release(&m2);
    view_map_release(&m);

    /* refusals: too many pieces, out of range, empty; none is an error */
    for (uint64_t g = 0; g < 2 * VIEW_MAX_SEGMENTS; g += 2)
        g_assert_cmpint(view_zero(f->view, g * GRANULE, GRANULE, 0), ==, 0);
    view_get_stats(f->view, &st0);
    g_assert_false(view_map_read(f->view, 0, LEN, 0, &m));
    g_assert_null(m.addr);
    g_assert_false(view_map_read(f->view, DISK_SIZE - 4096, 8192, 0, &m));
    g_assert_false(view_map_read(f->view, 0, 0, 0, &m));
    view_get_stats(f->view, &st);
    g_assert_cmpuint(st.errors, ==, st0.errors);
    g_assert_cmpuint(st.read_ops, ==, st0.read_ops);
}

/* An overlay with 512-byte granules can have a piece boundary inside a
 * page, which one mapping cannot show: refused, and view_pread still works. */
static void
test_map_read_small_granules(struct fixture *f, gconstpointer data)
{
    g_autofree char *path = g_strdup_printf("%s/small", f->dir);
    g_autoptr(GError) err = NULL;
    uint8_t ones[4096], buf[8192];
    struct ov_overlay *ov;
    struct view *v;
    struct view_map m;

    g_assert_true(ov_overlay_create(path, &f->id, 512, false, &err));
    ov = ov_overlay_open(path, f->base, 0, &err);
    g_assert_no_error(err);
    v = view_new_overlay(ov, "pc02", "lab");
    memset(ones, 1, sizeof(ones));
    g_assert_cmpint(view_pwrite(v, ones, 512, 512, 0), ==, 0);
    g_assert_false(view_map_read(v, 0, sizeof(buf), 0, &m));
    g_assert_cmpint(view_pread(v, buf, sizeof(buf), 0), ==, 0);
    g_assert_cmpuint(buf[511], ==, pattern(511));
    g_assert_cmpuint(buf[512], ==, 1);
    g_assert_cmpuint(buf[1024], ==, pattern(1024));
    /* a range whose pieces meet on a page boundary maps */
    g_assert_cmpint(view_pwrite(v, ones, sizeof(ones), 8192, 0), ==, 0);
    g_assert_true(view_map_read(v, 8192, sizeof(buf), 0, &m));
    g_assert_cmpint(view_pread(v, buf, sizeof(buf), 8192), ==, 0);
    g_assert_cmpuint(buf[0], ==, 1);
    g_assert_cmpuint(buf[4096], ==, pattern(8192 + 4096));
    g_assert_cmpmem(m.data, sizeof(buf), buf, sizeof(buf));
    view_map_release(&m);
    view_unref(v);
}

/* An image view maps its base file. */
static void
test_map_read_image(struct fixture *f, gconstpointer data)
{
    struct view *img = view_new_base(f->base, "lab", 3);
    struct view_map m;

    g_assert_true(view_map_read(img, 4096 + 100, 300000, 0, &m));
    g_assert_null(m.addr); /* a pointer into the base's own mapping */
    g_assert_true(m.ref == f->base);
    for (size_t i = 0; i < 300000; i++)
        g_assert_cmpuint(m.data[i], ==, pattern(4096 + 100 + i));
    view_map_release(&m);
    g_assert_null(m.ref);
    view_unref(img);
}

static bool
extent_cb(uint64_t offset, uint64_t length, enum view_extent_kind kind, void *user_data)
{
    static const char *const names[] = {"data", "zero", "base", "base-zero"};
    GString *log = user_data;

    g_string_append_printf(log, "%" G_GUINT64_FORMAT "+%" G_GUINT64_FORMAT ":%s ", offset, length,
                           names[kind]);
    return true;
}

static bool
extent_stop_cb(uint64_t offset, uint64_t length, enum view_extent_kind kind, void *user_data)
{
    int *n = user_data;

    (*n)++;
    return false;
}

static void
test_block_status(struct fixture *f, gconstpointer data)
{
    g_autoptr(GString) log = g_string_new(NULL);
    uint8_t buf[GRANULE];
    int n = 0;

    memset(buf, 9, sizeof(buf));
    g_assert_cmpint(view_pwrite(f->view, buf, GRANULE, GRANULE, 0), ==, 0);
    g_assert_cmpint(view_zero(f->view, 3 * GRANULE, GRANULE, 0), ==, 0);
    g_assert_cmpint(view_block_status(f->view, 0, 5 * GRANULE, false, extent_cb, log), ==, 0);
    g_assert_cmpstr(log->str, ==,
                    "0+4096:base 4096+4096:data 8192+4096:base 12288+4096:zero "
                    "16384+4096:base ");
    g_string_truncate(log, 0);
    g_assert_cmpint(
        view_block_status(f->view, DISK_SIZE - 2 * 65536, 2 * 65536, true, extent_cb, log), ==, 0);
    g_assert_cmpstr(log->str, ==, "917504+65536:base 983040+65536:base-zero ");
    g_assert_cmpint(view_block_status(f->view, 0, DISK_SIZE, false, extent_stop_cb, &n), ==, 0);
    g_assert_cmpint(n, ==, 1);
    g_assert_cmpint(view_block_status(f->view, 0, DISK_SIZE + 1, false, extent_cb, log), ==,
                    -EINVAL);
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
#define ADD(path, fn) g_test_add(path, struct fixture, NULL, setup, fn, teardown)
    ADD("/view/identity", test_identity);
    ADD("/view/read-write", test_read_write);
    ADD("/view/zero", test_zero);
    ADD("/view/read-only", test_read_only);
    ADD("/view/compare-and-write", test_caw);
    ADD("/view/compare-and-write-atomic", test_caw_atomic);
    ADD("/view/freeze-swap-thaw", test_freeze_swap);
    ADD("/view/no-starvation", test_no_starvation);
    ADD("/view/block-status", test_block_status);
    ADD("/view/read-segments", test_read_segments);
    ADD("/view/read-segments-image", test_read_segments_image);
    ADD("/view/map-read", test_map_read);
    ADD("/view/map-read-small-granules", test_map_read_small_granules);
    ADD("/view/map-read-image", test_map_read_image);
    return g_test_run();
}
