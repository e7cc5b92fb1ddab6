/* fixture.c — shared by the store's unit tests: a fresh store in its own
 * temporary directory per test (removed afterwards), and helpers that act on
 * clients' disks the way a connected machine would. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "base.h"
#include "fixture.h"

struct ov_base *
file_opener(const struct ov_image_info *image, const struct ov_generation_info *gen,
            void *user_data, GError **error)
{
    return base_file_open(gen->path, error);
}

void
rm_rf(const char *path)
{
    GDir *d = g_dir_open(path, 0, NULL);
    if (d) {
        const char *name;
        while ((name = g_dir_read_name(d)) != NULL) {
            g_autofree char *child = g_build_filename(path, name, NULL);
            rm_rf(child);
        }
        g_dir_close(d);
        g_rmdir(path);
    } else {
        g_unlink(path);
    }
}

void
fixture_setup(struct fixture *f, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    f->dir = g_dir_make_tmp("test-store-XXXXXX", &error);
    g_assert_no_error(error);
    f->store_dir = g_build_filename(f->dir, "store", NULL);
    f->store = ov_store_open(f->store_dir, true, &error);
    g_assert_no_error(error);
    ov_store_set_base_opener(f->store, file_opener, NULL, NULL);
}

void
fixture_teardown(struct fixture *f, gconstpointer data)
{
    ov_store_close(f->store);
    rm_rf(f->dir);
    g_free(f->store_dir);
    g_free(f->dir);
}

char *
sha256_file(const char *path)
{
    g_autofree char *contents = NULL;
    gsize len = 0;
    g_assert_true(g_file_get_contents(path, &contents, &len, NULL));
    return g_compute_checksum_for_data(G_CHECKSUM_SHA256, (const guchar *)contents, len);
}

/* Checksum of a client's merged disk (base + overlay). */
char *
sha256_client(struct fixture *f, const char *client)
{
    g_autoptr(GError) error = NULL;
    struct ov_overlay *ov =
        ov_store_client_open_overlay(f->store, client, OV_OPEN_READ_ONLY | OV_OPEN_NO_LOCK, &error);
    g_assert_no_error(error);
    struct ov_overlay_info oi;
    ov_overlay_get_info(ov, &oi);
    g_autofree uint8_t *buf = g_malloc(oi.size);
    g_assert_cmpint(ov_overlay_pread(ov, buf, oi.size, 0), ==, 0);
    ov_overlay_close(ov, NULL);
    return g_compute_checksum_for_data(G_CHECKSUM_SHA256, buf, oi.size);
}

void
client_write(struct fixture *f, const char *client, uint64_t off, size_t len, int byte)
{
    g_autoptr(GError) error = NULL;
    struct ov_overlay *ov = ov_store_client_open_overlay(f->store, client, 0, &error);
    g_assert_no_error(error);
    g_autofree uint8_t *buf = g_malloc(len);
    memset(buf, byte, len);
    g_assert_cmpint(ov_overlay_pwrite(ov, buf, len, off, 0), ==, 0);
    g_assert_true(ov_overlay_close(ov, &error));
}

void
client_zero(struct fixture *f, const char *client, uint64_t off, uint64_t len)
{
    g_autoptr(GError) error = NULL;
    struct ov_overlay *ov = ov_store_client_open_overlay(f->store, client, 0, &error);
    g_assert_no_error(error);
    g_assert_cmpint(ov_overlay_zero(ov, off, len, 0), ==, 0);
    g_assert_true(ov_overlay_close(ov, &error));
}

void
overlay_info(struct fixture *f, const char *client, struct ov_overlay_info *oi)
{
    g_autoptr(GError) error = NULL;
    struct ov_overlay *ov =
        ov_store_client_open_overlay(f->store, client, OV_OPEN_READ_ONLY | OV_OPEN_NO_LOCK, &error);
    g_assert_no_error(error);
    ov_overlay_get_info(ov, oi);
    ov_overlay_close(ov, NULL);
}

/* A raw file: 1 MiB of pattern, then a hole, total size bytes. */
char *
make_raw(struct fixture *f, const char *name, uint64_t size)
{
    char *path = g_build_filename(f->dir, name, NULL);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    g_assert_cmpint(fd, >=, 0);
    g_autofree uint8_t *buf = g_malloc(MiB);
    for (unsigned i = 0; i < MiB; i++)
        buf[i] = (uint8_t)(i * 7 + 3);
    g_assert_cmpint(write(fd, buf, MiB), ==, MiB);
    g_assert_cmpint(ftruncate(fd, (off_t)size), ==, 0);
    close(fd);
    return path;
}

unsigned
count_entries(const char *dir)
{
    GDir *d = g_dir_open(dir, 0, NULL);
    g_assert_nonnull(d);
    unsigned n = 0;
    while (g_dir_read_name(d))
        n++;
    g_dir_close(d);
    return n;
}

unsigned
count_tmp(struct fixture *f)
{
    g_autofree char *tmp = g_build_filename(f->store_dir, "tmp", NULL);
    return count_entries(tmp);
}
