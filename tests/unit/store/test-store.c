/* test-store.c — the image store (overlay/store.h): images, generations,
 * clients, reset, commit and gc, including the failure paths (bad and
 * duplicate names, locked overlays, a copy that fails midway). Each test
 * works in its own temporary directory and removes it. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "base.h"
#include "fixture.h"
#include "store.h"

/* ------------------------------------------------------------- the tests */

static void
test_open(struct fixture *f, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *missing = g_build_filename(f->dir, "missing", NULL);
    g_assert_null(ov_store_open(missing, false, &error));
    g_assert_error(error, OV_ERROR, OV_ERROR_NOT_FOUND);
    g_clear_error(&error);

    /* a non-empty directory that is not a store is never taken over */
    g_autofree char *other = g_build_filename(f->dir, "other", NULL);
    g_autofree char *file = g_build_filename(other, "precious", NULL);
    g_assert_cmpint(g_mkdir(other, 0755), ==, 0);
    g_assert_true(g_file_set_contents(file, "data", -1, NULL));
    g_assert_null(ov_store_open(other, true, &error));
    g_assert_error(error, OV_ERROR, OV_ERROR_INVALID);
    g_clear_error(&error);
    g_assert_null(ov_store_open(other, false, &error));
    g_assert_error(error, OV_ERROR, OV_ERROR_NOT_FOUND);
    g_clear_error(&error);

    /* a newer store format is refused */
    g_autofree char *newer = g_build_filename(f->dir, "newer", NULL);
    g_autofree char *marker = g_build_filename(newer, "ovgate-store", NULL);
    g_assert_cmpint(g_mkdir(newer, 0755), ==, 0);
    g_assert_true(g_file_set_contents(marker, "[store]\nformat-version=2\n", -1, NULL));
    g_assert_null(ov_store_open(newer, false, &error));
    g_assert_error(error, OV_ERROR, OV_ERROR_UNSUPPORTED);
    g_clear_error(&error);

    /* reopening an existing store works; the socket path is inside it */
    struct ov_store *again = ov_store_open(f->store_dir, false, &error);
    g_assert_no_error(error);
    g_autofree char *sock = ov_store_control_socket_path(again);
    g_assert_true(g_str_has_prefix(sock, ov_store_get_dir(again)));
    g_assert_true(g_str_has_suffix(sock, "/ovgated.sock"));
    ov_store_close(again);
}

static void
test_names(void)
{
    const char *good[] = {"a", "lab", "Lab-2", "x.y_z", "0", NULL};
    const char *bad[] = {"", ".", "..", ".hidden", "-x", "_x", "a/b", "a b", "tmp\n", NULL};
    for (int i = 0; good[i]; i++)
        g_assert_true(ov_store_name_valid(good[i]));
    for (int i = 0; bad[i]; i++)
        g_assert_false(ov_store_name_valid(bad[i]));
    char longname[80];
    memset(longname, 'a', sizeof(longname));
    longname[63] = '\0';
    g_assert_true(ov_store_name_valid(longname));
    longname[63] = 'a';
    longname[64] = '\0';
    g_assert_false(ov_store_name_valid(longname));
    g_assert_false(ov_store_name_valid(NULL));
}

static void
test_image_create(struct fixture *f, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *raw = make_raw(f, "golden.raw", 8 * MiB);
    g_assert_true(ov_store_image_create_from_file(f->store, "lab", raw, &error));
    g_assert_no_error(error);
    g_assert_true(ov_store_image_create_empty(f->store, "empty", 4 * MiB, &error));

    struct ov_image_info *img = ov_store_image_get(f->store, "lab", &error);
    g_assert_no_error(error);
    g_assert_cmpuint(img->head, ==, 1);
    g_assert_cmpuint(img->size, ==, 8 * MiB);
    g_assert_false(img->auto_enroll);
    g_assert_cmpuint(img->generations->len, ==, 1);
    struct ov_generation_info *g = img->generations->pdata[0];
    g_assert_true(g_str_has_prefix(g->source, "file:"));
    g_autofree char *a = sha256_file(raw);
    g_autofree char *b = sha256_file(g->path);
    g_assert_cmpstr(a, ==, b);
    struct stat st;
    g_assert_cmpint(stat(g->path, &st), ==, 0);
    g_assert_cmpint(st.st_mode & 0777, ==, 0444);
    g_assert_cmpuint((uint64_t)st.st_blocks * 512, <, 2 * MiB); /* the hole stayed a hole */
    ov_image_info_free(img);

    g_autoptr(GPtrArray) list = ov_store_image_list(f->store, &error);
    g_assert_no_error(error);
    g_assert_cmpuint(list->len, ==, 2);
    g_assert_cmpstr(((struct ov_image_info *)list->pdata[0])->name, ==, "empty");
    g_assert_cmpstr(((struct ov_image_info *)list->pdata[1])->name, ==, "lab");

    g_assert_true(ov_store_image_set_auto_enroll(f->store, "lab", true, &error));
    img = ov_store_image_get(f->store, "lab", &error);
    g_assert_true(img->auto_enroll);
    ov_image_info_free(img);

    /* created with auto-enroll in one step */
    g_assert_true(ov_store_image_create(f->store, "auto", NULL, MiB, true, &error));
    g_assert_no_error(error);
    img = ov_store_image_get(f->store, "auto", &error);
    g_assert_true(img->auto_enroll);
    g_assert_cmpstr(((struct ov_generation_info *)img->generations->pdata[0])->source, ==, "empty");
    ov_image_info_free(img);
    g_assert_cmpuint(count_tmp(f), ==, 0);
}

static void
test_image_errors(struct fixture *f, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_assert_true(ov_store_image_create_empty(f->store, "lab", MiB, &error));
    g_assert_false(ov_store_image_create_empty(f->store, "lab", MiB, &error));
    g_assert_error(error, OV_ERROR, OV_ERROR_EXISTS);
    g_clear_error(&error);
    g_assert_false(ov_store_image_create_empty(f->store, "../x", MiB, &error));
    g_assert_error(error, OV_ERROR, OV_ERROR_INVALID);
    g_clear_error(&error);
    g_assert_false(ov_store_image_create_empty(f->store, "x", 1000, &error));
    g_assert_error(error, OV_ERROR, OV_ERROR_INVALID);
    g_clear_error(&error);
    g_assert_false(ov_store_image_create_empty(f->store, "x", 0, &error));
    g_assert_error(error, OV_ERROR, OV_ERROR_INVALID);
    g_clear_error(&error);
    g_autofree char *missing = g_build_filename(f->dir, "missing.raw", NULL);
    g_assert_false(ov_store_image_create_from_file(f->store, "x", missing, &error));
    g_assert_error(error, OV_ERROR, OV_ERROR_NOT_FOUND);
    g_clear_error(&error);
    g_autofree char *odd = g_build_filename(f->dir, "odd.raw", NULL);
    g_assert_true(g_file_set_contents(odd, "abc", 3, NULL));
    g_assert_false(ov_store_image_create_from_file(f->store, "x", odd, &error));
    g_assert_error(error, OV_ERROR, OV_ERROR_INVALID);
    g_clear_error(&error);
    g_assert_null(ov_store_image_get(f->store, "nope", &error));
    g_assert_error(error, OV_ERROR, OV_ERROR_NOT_FOUND);
    g_clear_error(&error);
    g_assert_false(ov_store_image_set_auto_enroll(f->store, "nope", true, &error));
    g_assert_error(error, OV_ERROR, OV_ERROR_NOT_FOUND);
    g_clear_error(&error);
    g_assert_false(ov_store_image_remove(f->store, "nope", &error));
    g_assert_error(error, OV_ERROR, OV_ERROR_NOT_FOUND);
    g_clear_error(&error);

    /* an image with a client cannot be removed; without one it can */
    g_assert_true(ov_store_client_add(f->store, "pc", "lab", NULL, NULL, &error));
    g_assert_false(ov_store_image_remove(f->store, "lab", &error));
    g_assert_error(error, OV_ERROR, OV_ERROR_EXISTS);
    g_clear_error(&error);
    g_assert_true(ov_store_client_remove(f->store, "pc", &error));
    g_assert_true(ov_store_image_remove(f->store, "lab", &error));
    g_assert_no_error(error);
    g_autofree char *images = g_build_filename(f->store_dir, "images", NULL);
    g_assert_cmpuint(count_entries(images), ==, 0);
    g_assert_cmpuint(count_tmp(f), ==, 0);
}

/* A copy that fails midway (the file size limit stands in for a full disk)
 * leaves no image and no temporary behind. */
static void
test_image_create_fails_midway(struct fixture *f, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *raw = make_raw(f, "big.raw", 4 * MiB);
    int fd = open(raw, O_WRONLY);
    g_autofree uint8_t *junk = g_malloc(MiB);
    memset(junk, 0x5a, MiB);
    for (int i = 1; i < 4; i++)
        g_assert_cmpint(pwrite(fd, junk, MiB, (off_t)i * MiB), ==, MiB);
    close(fd);

    struct rlimit old, lim = {.rlim_cur = MiB, .rlim_max = RLIM_INFINITY};
    g_assert_cmpint(getrlimit(RLIMIT_FSIZE, &old), ==, 0);
    lim.rlim_max = old.rlim_max;
    signal(SIGXFSZ, SIG_IGN);
    g_assert_cmpint(setrlimit(RLIMIT_FSIZE, &lim), ==, 0);
    bool ok = ov_store_image_create_from_file(f->store, "big", raw, &error);
    bool ok2 = ov_store_image_create_empty(f->store, "big2", 4 * MiB, NULL);
    g_assert_cmpint(setrlimit(RLIMIT_FSIZE, &old), ==, 0);
    g_assert_false(ok);
    g_assert_nonnull(error);
    g_test_message("create failed as expected: %s", error->message);
    g_clear_error(&error);
    g_assert_false(ok2);

    g_assert_null(ov_store_image_get(f->store, "big", &error));
    g_assert_error(error, OV_ERROR, OV_ERROR_NOT_FOUND);
    g_autofree char *images = g_build_filename(f->store_dir, "images", NULL);
    g_assert_cmpuint(count_entries(images), ==, 0);
    g_assert_cmpuint(count_tmp(f), ==, 0);
}

static void
test_client_add(struct fixture *f, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_assert_true(ov_store_image_create_empty(f->store, "lab", 2 * MiB, &error));
    const char *iqns[] = {"iqn.2026-11.org.Example:PC1", "eui.0123456789ABCDEF", NULL};
    const char *macs[] = {"52-54-00-AA-BB-01", NULL};
    g_assert_true(ov_store_client_add(f->store, "pc1", "lab", iqns, macs, &error));
    g_assert_no_error(error);

    struct ov_client_info *c = ov_store_client_get(f->store, "pc1", &error);
    g_assert_no_error(error);
    g_assert_cmpstr(c->image, ==, "lab");
    g_assert_cmpuint(c->generation, ==, 1);
    g_assert_cmpstr(c->iqns[0], ==, "iqn.2026-11.org.example:pc1");
    g_assert_cmpstr(c->iqns[1], ==, "eui.0123456789abcdef");
    g_assert_null(c->iqns[2]);
    g_assert_cmpstr(c->macs[0], ==, "52:54:00:aa:bb:01");
    g_assert_true(g_file_test(c->overlay_path, G_FILE_TEST_IS_REGULAR));
    ov_client_info_free(c);

    c = ov_store_client_find_by_iqn(f->store, "IQN.2026-11.ORG.EXAMPLE:pc1", &error);
    g_assert_no_error(error);
    g_assert_cmpstr(c->name, ==, "pc1");
    ov_client_info_free(c);
    g_assert_null(ov_store_client_find_by_iqn(f->store, "iqn.2026-11.org.example:x", &error));
    g_assert_error(error, OV_ERROR, OV_ERROR_NOT_FOUND);
    g_clear_error(&error);

    /* duplicates: name, IQN (any case), MAC (any notation) */
    struct {
        const char *name, *image, *iqn, *mac;
        int code;
    } bad[] = {
        {"pc1", "lab", NULL, NULL, OV_ERROR_EXISTS},
        {"pc2", "lab", "IQN.2026-11.org.example:pc1", NULL, OV_ERROR_EXISTS},
        {"pc2", "lab", NULL, "52:54:00:aa:bb:01", OV_ERROR_EXISTS},
        {"pc2", "nope", NULL, NULL, OV_ERROR_NOT_FOUND},
        {"bad name", "lab", NULL, NULL, OV_ERROR_INVALID},
        {"pc2", "lab", "iqn.2026-11", NULL, OV_ERROR_INVALID},
        {"pc2", "lab", "iqn.2026-00.org.example", NULL, OV_ERROR_INVALID},
        {"pc2", "lab", "iqn.2026-11.org.example:a b", NULL, OV_ERROR_INVALID},
        {"pc2", "lab", "eui.0123", NULL, OV_ERROR_INVALID},
        {"pc2", "lab", "naa.0123456789abcdeg", NULL, OV_ERROR_INVALID},
        {"pc2", "lab", "pc2", NULL, OV_ERROR_INVALID},
        {"pc2", "lab", NULL, "52:54:00:aa:bb", OV_ERROR_INVALID},
        {"pc2", "lab", NULL, "52:54-00:aa:bb:01", OV_ERROR_INVALID},
        {"pc2", "lab", NULL, "g2:54:00:aa:bb:01", OV_ERROR_INVALID},
    };
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        const char *one_iqn[] = {bad[i].iqn, NULL};
        const char *one_mac[] = {bad[i].mac, NULL};
        g_assert_false(ov_store_client_add(f->store, bad[i].name, bad[i].image,
                                           bad[i].iqn ? one_iqn : NULL, bad[i].mac ? one_mac : NULL,
                                           &error));
        g_assert_error(error, OV_ERROR, bad[i].code);
        g_clear_error(&error);
    }
    const char *twice[] = {"naa.0123456789abcdef", "NAA.0123456789ABCDEF", NULL};
    g_assert_false(ov_store_client_add(f->store, "pc2", "lab", twice, NULL, &error));
    g_assert_error(error, OV_ERROR, OV_ERROR_INVALID);
    g_clear_error(&error);

    g_autoptr(GPtrArray) list = ov_store_client_list(f->store, &error);
    g_assert_cmpuint(list->len, ==, 1);
    g_assert_cmpuint(count_tmp(f), ==, 0);

    g_assert_null(ov_store_client_get(f->store, "pc2", &error));
    g_assert_error(error, OV_ERROR, OV_ERROR_NOT_FOUND);
    g_clear_error(&error);
    g_assert_false(ov_store_client_remove(f->store, "pc2", &error));
    g_assert_error(error, OV_ERROR, OV_ERROR_NOT_FOUND);
}

/* While a writer (ovgated) holds a client's overlay, nothing offline may
 * replace or remove it. */
static void
test_locked(struct fixture *f, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_assert_true(ov_store_image_create_empty(f->store, "lab", 2 * MiB, &error));
    g_assert_true(ov_store_client_add(f->store, "pc1", "lab", NULL, NULL, &error));
    client_write(f, "pc1", 0, 4096, 0x11);
    bool connected = true;
    g_assert_true(ov_store_client_connected(f->store, "pc1", &connected, &error));
    g_assert_false(connected);
    struct ov_overlay *ov = ov_store_client_open_overlay(f->store, "pc1", 0, &error);
    g_assert_no_error(error);
    g_assert_true(ov_store_client_connected(f->store, "pc1", &connected, &error));
    g_assert_true(connected);
    g_assert_false(ov_store_client_connected(f->store, "nope", &connected, &error));
    g_assert_error(error, OV_ERROR, OV_ERROR_NOT_FOUND);
    g_clear_error(&error);

    g_assert_null(ov_store_client_open_overlay(f->store, "pc1", 0, &error));
    g_assert_error(error, OV_ERROR, OV_ERROR_LOCKED);
    g_clear_error(&error);
    g_assert_false(ov_store_client_reset(f->store, "pc1", false, &error));
    g_assert_error(error, OV_ERROR, OV_ERROR_LOCKED);
    g_clear_error(&error);
    g_assert_false(ov_store_client_remove(f->store, "pc1", &error));
    g_assert_error(error, OV_ERROR, OV_ERROR_LOCKED);
    g_clear_error(&error);
    uint32_t gen = 0;
    g_assert_false(ov_store_client_commit(f->store, "pc1", NULL, &gen, &error));
    g_assert_error(error, OV_ERROR, OV_ERROR_LOCKED);
    g_clear_error(&error);
    g_autoptr(GString) report = g_string_new(NULL);
    bool clean = false;
    g_assert_false(ov_store_client_check(f->store, "pc1", false, report, &clean, &error));
    g_assert_error(error, OV_ERROR, OV_ERROR_LOCKED);
    g_clear_error(&error);

    /* nothing changed: still generation 1 with its data, no generation 2 */
    struct ov_overlay_info oi;
    ov_overlay_get_info(ov, &oi);
    g_assert_cmpuint(oi.data_granules, ==, 1);
    struct ov_image_info *img = ov_store_image_get(f->store, "lab", &error);
    g_assert_cmpuint(img->generations->len, ==, 1);
    ov_image_info_free(img);
    g_assert_true(ov_overlay_close(ov, &error));

    g_assert_true(ov_store_client_check(f->store, "pc1", false, report, &clean, &error));
    g_assert_no_error(error);
    g_assert_true(clean);
    g_assert_true(ov_store_client_remove(f->store, "pc1", &error));
    g_assert_cmpuint(count_tmp(f), ==, 0);
}

/* Commit of A: A's disk becomes generation 2 and A sits on it with an empty
 * overlay; B stays on generation 1 with its data; generation 1's file is
 * unchanged; gc keeps generation 1 while B sits on it and removes it after
 * B is reset. */
static void
test_commit_gc(struct fixture *f, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *raw = make_raw(f, "golden.raw", 4 * MiB);
    g_assert_true(ov_store_image_create_from_file(f->store, "lab", raw, &error));
    g_assert_true(ov_store_client_add(f->store, "a", "lab", NULL, NULL, &error));
    g_assert_true(ov_store_client_add(f->store, "b", "lab", NULL, NULL, &error));
    client_write(f, "a", 4096, 8192, 0xa1);
    client_zero(f, "a", 0, 4096);
    client_zero(f, "a", 2 * MiB, MiB);
    client_write(f, "a", 3 * MiB + 100, 50, 0xa2);
    client_write(f, "b", 0, 4096, 0xb1);

    struct ov_image_info *img = ov_store_image_get(f->store, "lab", &error);
    g_autofree char *gen1_path =
        g_strdup(((struct ov_generation_info *)img->generations->pdata[0])->path);
    ov_image_info_free(img);
    g_autofree char *gen1_before = sha256_file(gen1_path);
    g_autofree char *a_disk = sha256_client(f, "a");
    g_autofree char *b_disk = sha256_client(f, "b");

    uint32_t gen = 0;
    g_assert_true(ov_store_client_commit(f->store, "a", NULL, &gen, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(gen, ==, 2);

    img = ov_store_image_get(f->store, "lab", &error);
    g_assert_cmpuint(img->head, ==, 2);
    g_assert_cmpuint(img->generations->len, ==, 2);
    struct ov_generation_info *g1 = img->generations->pdata[0];
    struct ov_generation_info *g2 = img->generations->pdata[1];
    g_assert_cmpstr(g2->source, ==, "commit:a");
    g_assert_cmpmem(g1->uuid, OV_UUID_LEN, g1->uuid, OV_UUID_LEN);
    g_assert_true(memcmp(g1->uuid, g2->uuid, OV_UUID_LEN) != 0);
    g_autofree char *gen2 = sha256_file(g2->path);
    g_assert_cmpstr(gen2, ==, a_disk);
    struct stat st;
    g_assert_cmpint(stat(g2->path, &st), ==, 0);
    g_assert_cmpint(st.st_mode & 0777, ==, 0444);
    /* the base's hole and a's zeroed ranges hold no space in generation 2 */
    g_assert_cmpuint((uint64_t)st.st_blocks * 512, <, 2 * MiB);
    ov_image_info_free(img);

    g_autofree char *gen1_after = sha256_file(gen1_path);
    g_assert_cmpstr(gen1_before, ==, gen1_after);

    struct ov_overlay_info oi;
    overlay_info(f, "a", &oi);
    g_assert_cmpuint(oi.base.generation, ==, 2);
    g_assert_cmpuint(oi.data_granules, ==, 0);
    g_assert_cmpuint(oi.zero_granules, ==, 0);
    g_autofree char *a_after = sha256_client(f, "a");
    g_assert_cmpstr(a_after, ==, a_disk);

    overlay_info(f, "b", &oi);
    g_assert_cmpuint(oi.base.generation, ==, 1);
    g_assert_cmpuint(oi.data_granules, ==, 1);
    g_autofree char *b_after = sha256_client(f, "b");
    g_assert_cmpstr(b_after, ==, b_disk);

    /* gc: generation 1 stays while b sits on it */
    g_autoptr(GString) report = g_string_new(NULL);
    g_assert_true(ov_store_gc(f->store, report, &error));
    g_assert_cmpstr(report->str, ==, "");
    g_assert_true(g_file_test(gen1_path, G_FILE_TEST_EXISTS));

    g_assert_true(ov_store_client_reset(f->store, "b", false, &error));
    struct ov_client_info *c = ov_store_client_get(f->store, "b", &error);
    g_assert_cmpuint(c->generation, ==, 2);
    ov_client_info_free(c);
    g_assert_true(ov_store_gc(f->store, report, &error));
    g_assert_no_error(error);
    g_assert_nonnull(strstr(report->str, "generation 1"));
    g_assert_false(g_file_test(gen1_path, G_FILE_TEST_EXISTS));
    img = ov_store_image_get(f->store, "lab", &error);
    g_assert_cmpuint(img->generations->len, ==, 1);
    ov_image_info_free(img);
    g_assert_null(ov_store_open_base(f->store, "lab", 1, &error));
    g_assert_error(error, OV_ERROR, OV_ERROR_NOT_FOUND);
    g_assert_cmpuint(count_tmp(f), ==, 0);
}

/* The daemon's path: the caller holds the overlay open (locked, quiesced)
 * and hands it in; afterwards it reopens the client's new overlay. */
static void
test_commit_online(struct fixture *f, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_assert_true(ov_store_image_create_empty(f->store, "lab", 2 * MiB, &error));
    g_assert_true(ov_store_client_add(f->store, "a", "lab", NULL, NULL, &error));
    g_assert_true(ov_store_client_add(f->store, "b", "lab", NULL, NULL, &error));
    client_write(f, "a", 8192, 4096, 0x33);
    g_autofree char *a_disk = sha256_client(f, "a");

    struct ov_overlay *ov = ov_store_client_open_overlay(f->store, "a", 0, &error);
    g_assert_no_error(error);
    uint32_t gen = 0;
    /* someone else's overlay is refused */
    struct ov_overlay *other = ov_store_client_open_overlay(f->store, "b", 0, &error);
    g_assert_false(ov_store_client_commit(f->store, "a", other, &gen, &error));
    g_assert_error(error, OV_ERROR, OV_ERROR_INVALID);
    g_clear_error(&error);
    ov_overlay_close(other, NULL);

    g_assert_true(ov_store_client_commit(f->store, "a", ov, &gen, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(gen, ==, 2);
    ov_overlay_close(ov, NULL);
    g_autofree char *a_after = sha256_client(f, "a");
    g_assert_cmpstr(a_after, ==, a_disk);

    /* a second commit of an unchanged disk makes generation 3, same bytes */
    g_assert_true(ov_store_client_commit(f->store, "a", NULL, &gen, &error));
    g_assert_cmpuint(gen, ==, 3);
    struct ov_image_info *img = ov_store_image_get(f->store, "lab", &error);
    g_autofree char *g2 =
        sha256_file(((struct ov_generation_info *)img->generations->pdata[1])->path);
    g_autofree char *g3 =
        sha256_file(((struct ov_generation_info *)img->generations->pdata[2])->path);
    g_assert_cmpstr(g2, ==, g3);
    ov_image_info_free(img);
}

static void
test_reset(struct fixture *f, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_assert_true(ov_store_image_create_empty(f->store, "lab", 2 * MiB, &error));
    g_assert_true(ov_store_client_add(f->store, "a", "lab", NULL, NULL, &error));
    g_assert_true(ov_store_client_add(f->store, "b", "lab", NULL, NULL, &error));
    client_write(f, "a", 0, 4096, 0x44);
    uint32_t gen;
    g_assert_true(ov_store_client_commit(f->store, "a", NULL, &gen, &error));
    client_write(f, "b", 0, 4096, 0x55);

    struct ov_overlay_info oi;
    /* keep_generation: empty overlay, still on generation 1 */
    g_assert_true(ov_store_client_reset(f->store, "b", true, &error));
    overlay_info(f, "b", &oi);
    g_assert_cmpuint(oi.base.generation, ==, 1);
    g_assert_cmpuint(oi.data_granules, ==, 0);
    /* a plain reset moves it to the head */
    client_write(f, "b", 0, 4096, 0x55);
    g_assert_true(ov_store_client_reset(f->store, "b", false, &error));
    overlay_info(f, "b", &oi);
    g_assert_cmpuint(oi.base.generation, ==, 2);
    g_assert_cmpuint(oi.data_granules, ==, 0);

    /* a damaged overlay can still be reset (that is how it is repaired) */
    struct ov_client_info *c = ov_store_client_get(f->store, "b", &error);
    g_assert_true(g_file_set_contents(c->overlay_path, "garbage", -1, NULL));
    ov_client_info_free(c);
    c = ov_store_client_get(f->store, "b", &error);
    g_assert_no_error(error);
    g_assert_cmpuint(c->generation, ==, 0);
    ov_client_info_free(c);
    g_assert_true(ov_store_client_reset(f->store, "b", false, &error));
    g_assert_no_error(error);
    overlay_info(f, "b", &oi);
    g_assert_cmpuint(oi.base.generation, ==, 2);

    /* so can one whose overlay file was deleted by hand; and it can be removed */
    c = ov_store_client_get(f->store, "b", &error);
    g_assert_cmpint(g_unlink(c->overlay_path), ==, 0);
    ov_client_info_free(c);
    g_assert_true(ov_store_client_reset(f->store, "b", false, &error));
    g_assert_no_error(error);
    overlay_info(f, "b", &oi);
    g_assert_cmpuint(oi.base.generation, ==, 2);
    c = ov_store_client_get(f->store, "b", &error);
    g_assert_cmpint(g_unlink(c->overlay_path), ==, 0);
    ov_client_info_free(c);
    g_assert_true(ov_store_client_remove(f->store, "b", &error));
    g_assert_no_error(error);

    g_assert_false(ov_store_client_reset(f->store, "nope", false, &error));
    g_assert_error(error, OV_ERROR, OV_ERROR_NOT_FOUND);
}

/* gc removes debris of interrupted commands, never live temporaries. */
static void
test_gc_debris(struct fixture *f, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_assert_true(ov_store_image_create_empty(f->store, "lab", MiB, &error));
    g_autofree char *dead = g_build_filename(f->store_dir, "tmp", "image-dead", NULL);
    g_autofree char *dead_file = g_build_filename(dead, "gen", NULL);
    g_assert_cmpint(g_mkdir(dead, 0755), ==, 0);
    g_assert_true(g_file_set_contents(dead_file, "x", 1, NULL));
    g_autofree char *live = g_build_filename(f->store_dir, "tmp", "commit-live", NULL);
    int fd = open(live, O_RDWR | O_CREAT, 0644);
    g_assert_cmpint(flock(fd, LOCK_EX), ==, 0);
    g_autofree char *orphan = g_build_filename(f->store_dir, "images", "lab", "gen", "5.raw", NULL);
    g_assert_true(g_file_set_contents(orphan, "", 0, NULL));

    g_autoptr(GString) report = g_string_new(NULL);
    g_assert_true(ov_store_gc(f->store, report, &error));
    g_assert_no_error(error);
    g_assert_false(g_file_test(dead, G_FILE_TEST_EXISTS));
    g_assert_false(g_file_test(orphan, G_FILE_TEST_EXISTS));
    g_assert_true(g_file_test(live, G_FILE_TEST_EXISTS));
    close(fd);
    g_string_truncate(report, 0);
    g_assert_true(ov_store_gc(f->store, report, &error));
    g_assert_false(g_file_test(live, G_FILE_TEST_EXISTS));
    struct ov_image_info *img = ov_store_image_get(f->store, "lab", &error);
    g_assert_no_error(error);
    g_assert_cmpuint(img->generations->len, ==, 1);
    ov_image_info_free(img);
}

static void
test_no_opener(struct fixture *f, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_assert_true(ov_store_image_create_empty(f->store, "lab", MiB, &error));
    ov_store_set_base_opener(f->store, NULL, NULL, NULL);
    g_assert_null(ov_store_open_base(f->store, "lab", 1, &error));
    g_assert_error(error, OV_ERROR, OV_ERROR_UNSUPPORTED);
}

/* A source on another filesystem (tmpfs): no reflink, no copy_file_range
 * (EXDEV), so the read/write path copies it, leaving all-zero chunks as
 * holes even where the source had written zeros. */
static void
test_image_create_cross_fs(struct fixture *f, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    struct stat shm, here;
    if (stat("/dev/shm", &shm) < 0 || stat(f->dir, &here) < 0 || shm.st_dev == here.st_dev ||
        access("/dev/shm", W_OK) < 0) {
        g_test_skip("no writable /dev/shm on another filesystem");
        return;
    }
    g_autofree char *raw = g_strdup("/dev/shm/test-store-XXXXXX");
    int fd = g_mkstemp(raw);
    g_assert_cmpint(fd, >=, 0);
    g_autofree uint8_t *buf = g_malloc0(4 * MiB);
    for (unsigned i = 0; i < MiB; i++)
        buf[i] = (uint8_t)(i * 13 + 1);
    g_assert_cmpint(write(fd, buf, 4 * MiB), ==, 4 * MiB); /* 3 MiB of written zeros */
    close(fd);
    bool ok = ov_store_image_create_from_file(f->store, "lab", raw, &error);
    g_autofree char *want = sha256_file(raw);
    g_unlink(raw);
    g_assert_no_error(error);
    g_assert_true(ok);
    struct ov_image_info *img = ov_store_image_get(f->store, "lab", &error);
    struct ov_generation_info *g = img->generations->pdata[0];
    g_autofree char *got = sha256_file(g->path);
    g_assert_cmpstr(got, ==, want);
    struct stat st;
    g_assert_cmpint(stat(g->path, &st), ==, 0);
    g_assert_cmpuint((uint64_t)st.st_size, ==, 4 * MiB);
    g_assert_cmpuint((uint64_t)st.st_blocks * 512, <, 2 * MiB);
    ov_image_info_free(img);
}

/* A base with no local file (fd -1, no block_status: like an upstream NBD
 * export): commit copies it through ov_base_pread. */
struct mem_base {
    struct ov_base base;
    uint8_t *bytes;
};

static int
mem_pread(struct ov_base *base, void *buf, size_t len, uint64_t offset)
{
    struct mem_base *m = (struct mem_base *)base;
    memcpy(buf, m->bytes + offset, len);
    return 0;
}

static void
mem_destroy(struct ov_base *base)
{
    struct mem_base *m = (struct mem_base *)base;
    g_free(m->bytes); /* the description is freed by ov_base_unref */
    g_free(m);
}

static const struct ov_base_ops mem_ops = {
    .name = "memory",
    .pread = mem_pread,
    .destroy = mem_destroy,
};

static struct ov_base *
mem_opener(const struct ov_image_info *image, const struct ov_generation_info *gen, void *user_data,
           GError **error)
{
    struct mem_base *m = g_new0(struct mem_base, 1);
    gsize len = 0;
    if (!g_file_get_contents(gen->path, (char **)&m->bytes, &len, error)) {
        g_free(m);
        return NULL;
    }
    g_assert_cmpuint(len, ==, gen->size);
    ov_base_init(&m->base, &mem_ops, gen->size, -1, "memory");
    return &m->base;
}

static void
test_commit_base_without_fd(struct fixture *f, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *raw = make_raw(f, "golden.raw", 4 * MiB);
    g_assert_true(ov_store_image_create_from_file(f->store, "lab", raw, &error));
    g_assert_true(ov_store_client_add(f->store, "a", "lab", NULL, NULL, &error));
    ov_store_set_base_opener(f->store, mem_opener, NULL, NULL);
    client_write(f, "a", 512 * 1024, 4096, 0x77);
    client_zero(f, "a", 0, 8192);
    g_autofree char *a_disk = sha256_client(f, "a");
    uint32_t gen = 0;
    g_assert_true(ov_store_client_commit(f->store, "a", NULL, &gen, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(gen, ==, 2);
    struct ov_image_info *img = ov_store_image_get(f->store, "lab", &error);
    struct ov_generation_info *g2 = img->generations->pdata[1];
    g_autofree char *got = sha256_file(g2->path);
    g_assert_cmpstr(got, ==, a_disk);
    struct stat st;
    g_assert_cmpint(stat(g2->path, &st), ==, 0);
    g_assert_cmpuint((uint64_t)st.st_blocks * 512, <, 2 * MiB); /* zeros stayed holes */
    ov_image_info_free(img);
}

/* Many threads (each with its own store handle, as separate ovctl runs
 * would be) add clients with the same IQN, and create the same image: the
 * store lock lets exactly one of each win. */
struct race {
    const char *dir;
    int index;
    bool client_ok;
    bool image_ok;
    int client_code;
    int image_code;
};

static gpointer
race_thread(gpointer data)
{
    struct race *r = data;
    g_autoptr(GError) error = NULL;
    struct ov_store *store = ov_store_open(r->dir, false, &error);
    g_assert_no_error(error);
    ov_store_set_base_opener(store, file_opener, NULL, NULL);
    g_autofree char *name = g_strdup_printf("pc%d", r->index);
    const char *iqns[] = {"iqn.2026-11.org.example:shared", NULL};
    r->client_ok = ov_store_client_add(store, name, "lab", iqns, NULL, &error);
    r->client_code = error ? error->code : -1;
    g_clear_error(&error);
    r->image_ok = ov_store_image_create_empty(store, "racy", MiB, &error);
    r->image_code = error ? error->code : -1;
    ov_store_close(store);
    return NULL;
}

static void
test_concurrent(struct fixture *f, gconstpointer data)
{
    g_autoptr(GError) error = NULL;
    g_assert_true(ov_store_image_create_empty(f->store, "lab", MiB, &error));
    struct race races[8];
    GThread *threads[G_N_ELEMENTS(races)];
    for (unsigned i = 0; i < G_N_ELEMENTS(races); i++) {
        races[i] = (struct race){.dir = f->store_dir, .index = (int)i};
        threads[i] = g_thread_new("race", race_thread, &races[i]);
    }
    unsigned clients = 0, images = 0;
    for (unsigned i = 0; i < G_N_ELEMENTS(races); i++) {
        g_thread_join(threads[i]);
        clients += races[i].client_ok;
        images += races[i].image_ok;
        if (!races[i].client_ok)
            g_assert_cmpint(races[i].client_code, ==, OV_ERROR_EXISTS);
        if (!races[i].image_ok)
            g_assert_cmpint(races[i].image_code, ==, OV_ERROR_EXISTS);
    }
    g_assert_cmpuint(clients, ==, 1);
    g_assert_cmpuint(images, ==, 1);
    g_autoptr(GPtrArray) list = ov_store_client_list(f->store, &error);
    g_assert_cmpuint(list->len, ==, 1);
    g_assert_cmpuint(count_tmp(f), ==, 0);
}

#define ADD(path, fn) g_test_add(path, struct fixture, NULL, fixture_setup, fn, fixture_teardown)

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    ADD("/store/open", test_open);
    g_test_add_func("/store/names", test_names);
    ADD("/store/image/create", test_image_create);
    ADD("/store/image/errors", test_image_errors);
    ADD("/store/image/create-fails-midway", test_image_create_fails_midway);
    ADD("/store/image/create-cross-fs", test_image_create_cross_fs);
    ADD("/store/client/add", test_client_add);
    ADD("/store/client/locked", test_locked);
    ADD("/store/commit/gc", test_commit_gc);
    ADD("/store/commit/online", test_commit_online);
    ADD("/store/commit/base-without-fd", test_commit_base_without_fd);
    ADD("/store/concurrent", test_concurrent);
    ADD("/store/reset", test_reset);
    ADD("/store/gc/debris", test_gc_debris);
    ADD("/store/base/no-opener", test_no_opener);
    return g_test_run();
}
