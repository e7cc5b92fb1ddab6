/* ov-test-util.c — see ov-test-util.h. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <glib.h>
#include <glib/gstdio.h>

#include "ov-test-util.h"

char *
ovt_tmpdir_new(void)
{
    g_autoptr(GError) error = NULL;
    char *dir = g_dir_make_tmp("ovgate-test-XXXXXX", &error);

    g_assert_no_error(error);
    return dir;
}

void
ovt_tmpdir_free(char *dir)
{
    g_autoptr(GDir) d = NULL;
    const char *name;

    if (!dir)
        return;
    d = g_dir_open(dir, 0, NULL);
    while (d && (name = g_dir_read_name(d))) {
        g_autofree char *p = g_build_filename(dir, name, NULL);
        g_unlink(p);
    }
    g_rmdir(dir);
    g_free(dir);
}

char *
ovt_make_base(const char *dir, const char *name, uint64_t size, guint32 seed)
{
    char *path = g_build_filename(dir, name, NULL);
    g_autoptr(GRand) rand = g_rand_new_with_seed(seed);
    g_autofree uint8_t *buf = g_malloc(1 << 16);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

    g_assert_cmpint(fd, >=, 0);
    for (uint64_t off = 0; off < size; off += 1 << 16) {
        size_t n = (size_t)MIN((uint64_t)1 << 16, size - off);
        for (size_t i = 0; i < n; i += 4) {
            guint32 r = g_rand_int(rand);
            memcpy(buf + i, &r, MIN((size_t)4, n - i));
        }
        g_assert_cmpint(pwrite(fd, buf, n, (off_t)off), ==, (ssize_t)n);
    }
    close(fd);
    return path;
}

void
ovt_base_id(struct ov_base_id *id, uint64_t size, uint32_t gen)
{
    memset(id, 0, sizeof(*id));
    g_strlcpy(id->image, "lab", sizeof(id->image));
    id->generation = gen;
    id->size = size;
    for (int i = 0; i < OV_UUID_LEN; i++)
        id->uuid[i] = (uint8_t)(0x10 * gen + i);
}

struct ov_base *
ovt_open_base(const char *path, uint32_t gen)
{
    g_autoptr(GError) error = NULL;
    struct ov_base *base = base_file_open(path, &error);
    struct ov_base_id id;

    g_assert_no_error(error);
    ovt_base_id(&id, base->size, gen);
    ov_base_set_id(base, &id);
    return base;
}

char *
ovt_make_sparse_base(const char *dir, const char *name, uint64_t size)
{
    char *path = g_build_filename(dir, name, NULL);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(ftruncate(fd, (off_t)size), ==, 0);
    close(fd);
    return path;
}

char *
ovt_make_overlay(const char *dir, const char *name, uint64_t size, uint32_t gen, uint32_t granule)
{
    char *path = g_build_filename(dir, name, NULL);
    struct ov_base_id id;
    g_autoptr(GError) error = NULL;

    ovt_base_id(&id, size, gen);
    g_assert_true(ov_overlay_create(path, &id, granule, true, &error));
    g_assert_no_error(error);
    return path;
}
