/* test-base-file.c — the local-file base source (proxy/base/file.c):
 * pread, extents from SEEK_DATA/SEEK_HOLE, prefetch, errors, refcounting. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <glib.h>

#include "ov-test-util.h"

struct ext {
    uint64_t off, len;
    enum ov_base_extent kind;
};

static bool
collect(uint64_t offset, uint64_t length, enum ov_base_extent kind, void *user_data)
{
    struct ext e = {offset, length, kind};
    g_array_append_val((GArray *)user_data, e);
    return true;
}

static void
test_extents(void)
{
    char *dir = ovt_tmpdir_new();
    g_autofree char *path = ovt_make_sparse_base(dir, "sparse.raw", 8 << 20);
    g_autoptr(GError) error = NULL;
    g_autoptr(GArray) ex = g_array_new(FALSE, FALSE, sizeof(struct ext));
    uint8_t buf[4096], data[1 << 16];
    struct ov_base *base;
    struct ext *e;
    uint64_t total = 0;
    int fd;

    memset(data, 0xee, sizeof(data));
    fd = open(path, O_WRONLY);
    g_assert_cmpint(pwrite(fd, data, sizeof(data), 3 << 20), ==, sizeof(data));
    close(fd);

    base = base_file_open(path, &error);
    g_assert_no_error(error);
    g_assert_cmpuint(base->size, ==, 8 << 20);
    g_assert_cmpint(base->fd, >=, 0);
    g_assert_cmpstr(base->ops->name, ==, "file");
    g_assert_true(g_str_has_prefix(base->description, "file:"));

    g_assert_cmpint(ov_base_pread(base, buf, 16, (3 << 20) + 100), ==, 0);
    g_assert_cmpint(buf[0], ==, 0xee);
    g_assert_cmpint(ov_base_pread(base, buf, 16, 0), ==, 0);
    g_assert_cmpint(buf[0], ==, 0);
    g_assert_cmpint(ov_base_pread(base, buf, 16, (8 << 20) - 8), ==, -EINVAL);

    g_assert_cmpint(ov_base_block_status(base, 0, base->size, collect, ex), ==, 0);
    e = (struct ext *)ex->data;
    for (guint i = 0; i < ex->len; i++) {
        g_assert_cmpuint(e[i].off, ==, total); /* contiguous, in order */
        total += e[i].len;
    }
    g_assert_cmpuint(total, ==, base->size);
    /* The written 64 KiB are DATA (the filesystem may round to its block
     * size), the start and the end are holes. */
    g_assert_cmpint(e[0].kind, ==, OV_BASE_ZERO);
    g_assert_cmpint(e[ex->len - 1].kind, ==, OV_BASE_ZERO);
    for (guint i = 0; i < ex->len; i++)
        if (e[i].off <= (3u << 20) && e[i].off + e[i].len > (3u << 20))
            g_assert_cmpint(e[i].kind, ==, OV_BASE_DATA);

    /* A sub-range is clipped. */
    g_array_set_size(ex, 0);
    g_assert_cmpint(ov_base_block_status(base, (3 << 20) + 10, 100, collect, ex), ==, 0);
    g_assert_cmpuint(ex->len, ==, 1);
    g_assert_cmpuint(g_array_index(ex, struct ext, 0).len, ==, 100);

    base->ops->prefetch(base, 0, 1 << 20);
    g_assert_true(ov_base_ref(base) == base);
    ov_base_unref(base);
    ov_base_unref(base);
    ov_base_unref(NULL);
    ovt_tmpdir_free(dir);
}

static void
test_errors(void)
{
    char *dir = ovt_tmpdir_new();
    g_autofree char *empty = ovt_make_sparse_base(dir, "empty.raw", 0);
    g_autoptr(GError) error = NULL;

    g_assert_null(base_file_open("/nonexistent/base.raw", &error));
    g_assert_error(error, G_FILE_ERROR, G_FILE_ERROR_NOENT);
    g_clear_error(&error);
    g_assert_null(base_file_open(dir, &error));
    g_assert_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL);
    g_clear_error(&error);
    g_assert_null(base_file_open(empty, &error));
    g_assert_nonnull(strstr(error->message, "empty"));
    ovt_tmpdir_free(dir);
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/base/file/extents", test_extents);
    g_test_add_func("/base/file/errors", test_errors);
    return g_test_run();
}
