/* test-store-faults.c — every step of every store change fails in turn.
 *
 * The store's fault hook (store-int.h) makes the k-th fallible step (a
 * temporary, a write, a copy, a rename, a directory sync, an overlay
 * creation) fail with EIO, for k = 1, 2, ... until the operation runs
 * through without reaching k. After each injected failure the store must be
 * in the old state or (when only a sync after the commit point failed) the
 * new one — never in between — and after gc no temporary may be left.
 * When it is in the old state the same operation must then succeed. */
#include <errno.h>
#include <string.h>

#include <glib.h>

#include "fixture.h"
#include "store-int.h"

enum state { STATE_OLD, STATE_NEW, STATE_BROKEN };

struct scenario {
    const char *name;
    void (*setup)(struct fixture *f);
    bool (*op)(struct fixture *f, GError **error);
    enum state (*state)(struct fixture *f);
};

struct faults {
    int fail_at;
    int calls;
    char step[32];
};

static int
fault_hook(const char *step, void *user_data)
{
    struct faults *fl = user_data;
    if (++fl->calls != fl->fail_at)
        return 0;
    g_strlcpy(fl->step, step, sizeof(fl->step));
    return EIO;
}

/* Checksums taken by the setups (one scenario runs at a time). */
static char *sum_a, *sum_b, *sum_raw;

static void
forget_sums(void)
{
    g_clear_pointer(&sum_a, g_free);
    g_clear_pointer(&sum_b, g_free);
    g_clear_pointer(&sum_raw, g_free);
}

static uint32_t
client_gen(struct fixture *f, const char *client)
{
    struct ov_client_info *c = ov_store_client_get(f->store, client, NULL);
    uint32_t gen = c ? c->generation : 0;
    ov_client_info_free(c);
    return gen;
}

static bool
client_is(struct fixture *f, const char *client, uint32_t gen, const char *sum)
{
    g_autofree char *now = sha256_client(f, client);
    return client_gen(f, client) == gen && !strcmp(now, sum);
}

/* ------------------------------------------------------------- commit */

static void
commit_setup(struct fixture *f)
{
    g_autofree char *raw = make_raw(f, "golden.raw", 4 * MiB);
    g_assert_true(ov_store_image_create_from_file(f->store, "lab", raw, NULL));
    g_assert_true(ov_store_client_add(f->store, "a", "lab", NULL, NULL, NULL));
    g_assert_true(ov_store_client_add(f->store, "b", "lab", NULL, NULL, NULL));
    client_write(f, "a", 8192, 4096, 0xaa);
    client_zero(f, "a", 0, 4096);
    client_write(f, "b", 0, 4096, 0xbb);
    forget_sums();
    sum_a = sha256_client(f, "a");
    sum_b = sha256_client(f, "b");
}

static bool
commit_op(struct fixture *f, GError **error)
{
    uint32_t gen = 0;
    return ov_store_client_commit(f->store, "a", NULL, &gen, error);
}

static enum state
commit_state(struct fixture *f)
{
    struct ov_image_info *img = ov_store_image_get(f->store, "lab", NULL);
    enum state st = STATE_BROKEN;
    if (!img || !client_is(f, "b", 1, sum_b)) {
        st = STATE_BROKEN;
    } else if (img->head == 1 && img->generations->len == 1) {
        st = client_is(f, "a", 1, sum_a) ? STATE_OLD : STATE_BROKEN;
    } else if (img->head == 2 && img->generations->len == 2) {
        struct ov_generation_info *g2 = img->generations->pdata[1];
        g_autofree char *gen2 = sha256_file(g2->path);
        struct ov_overlay_info oi;
        overlay_info(f, "a", &oi);
        st = !strcmp(gen2, sum_a) && client_is(f, "a", 2, sum_a) && oi.data_granules == 0 &&
                     oi.zero_granules == 0
                 ? STATE_NEW
                 : STATE_BROKEN;
    }
    ov_image_info_free(img);
    return st;
}

/* ------------------------------------------------------- image create */

static void
image_setup(struct fixture *f)
{
    g_autofree char *raw = make_raw(f, "golden.raw", 2 * MiB);
    forget_sums();
    sum_raw = sha256_file(raw);
}

static bool
image_op(struct fixture *f, GError **error)
{
    g_autofree char *raw = g_build_filename(f->dir, "golden.raw", NULL);
    return ov_store_image_create(f->store, "img", raw, 0, true, error);
}

static enum state
image_state(struct fixture *f)
{
    g_autoptr(GError) error = NULL;
    struct ov_image_info *img = ov_store_image_get(f->store, "img", &error);
    if (!img) {
        g_autofree char *dir = g_build_filename(f->store_dir, "images", NULL);
        return g_error_matches(error, OV_ERROR, OV_ERROR_NOT_FOUND) && count_entries(dir) == 0
                   ? STATE_OLD
                   : STATE_BROKEN;
    }
    struct ov_generation_info *g = img->generations->pdata[0];
    g_autofree char *sum = sha256_file(g->path);
    enum state st =
        img->head == 1 && img->auto_enroll && !strcmp(sum, sum_raw) ? STATE_NEW : STATE_BROKEN;
    ov_image_info_free(img);
    return st;
}

/* --------------------------------------------------------- client add */

static void
client_setup(struct fixture *f)
{
    g_assert_true(ov_store_image_create_empty(f->store, "lab", MiB, NULL));
}

static bool
client_op(struct fixture *f, GError **error)
{
    const char *iqns[] = {"iqn.2026-11.org.example:c", NULL};
    return ov_store_client_add(f->store, "c", "lab", iqns, NULL, error);
}

static enum state
client_state(struct fixture *f)
{
    g_autoptr(GError) error = NULL;
    struct ov_client_info *c = ov_store_client_get(f->store, "c", &error);
    if (!c) {
        g_autofree char *dir = g_build_filename(f->store_dir, "clients", NULL);
        return g_error_matches(error, OV_ERROR, OV_ERROR_NOT_FOUND) && count_entries(dir) == 0
                   ? STATE_OLD
                   : STATE_BROKEN;
    }
    ov_client_info_free(c);
    c = ov_store_client_find_by_iqn(f->store, "iqn.2026-11.org.example:c", NULL);
    bool ok = c && c->generation == 1;
    ov_client_info_free(c);
    struct ov_overlay_info oi;
    overlay_info(f, "c", &oi); /* asserts that it opens */
    return ok && oi.data_granules == 0 ? STATE_NEW : STATE_BROKEN;
}

/* ------------------------------------------------------ reset, remove */

static void
reset_setup(struct fixture *f)
{
    g_assert_true(ov_store_image_create_empty(f->store, "lab", MiB, NULL));
    g_assert_true(ov_store_client_add(f->store, "a", "lab", NULL, NULL, NULL));
    client_write(f, "a", 4096, 4096, 0x5a);
    forget_sums();
    sum_a = sha256_client(f, "a");
}

static bool
reset_op(struct fixture *f, GError **error)
{
    return ov_store_client_reset(f->store, "a", false, error);
}

static enum state
reset_state(struct fixture *f)
{
    struct ov_overlay_info oi;
    overlay_info(f, "a", &oi);
    if (client_is(f, "a", 1, sum_a) && oi.data_granules == 1)
        return STATE_OLD;
    return oi.data_granules == 0 && oi.base.generation == 1 ? STATE_NEW : STATE_BROKEN;
}

static bool
remove_op(struct fixture *f, GError **error)
{
    return ov_store_client_remove(f->store, "a", error);
}

static enum state
remove_state(struct fixture *f)
{
    g_autoptr(GError) error = NULL;
    struct ov_client_info *c = ov_store_client_get(f->store, "a", &error);
    ov_client_info_free(c);
    if (c)
        return client_is(f, "a", 1, sum_a) ? STATE_OLD : STATE_BROKEN;
    return g_error_matches(error, OV_ERROR, OV_ERROR_NOT_FOUND) ? STATE_NEW : STATE_BROKEN;
}

/* ----------------------------------------------------------------- gc */

static void
gc_setup(struct fixture *f)
{
    reset_setup(f);
    uint32_t gen;
    g_assert_true(ov_store_client_commit(f->store, "a", NULL, &gen, NULL));
}

static bool
gc_op(struct fixture *f, GError **error)
{
    g_autoptr(GString) report = g_string_new(NULL);
    return ov_store_gc(f->store, report, error);
}

static enum state
gc_state(struct fixture *f)
{
    struct ov_image_info *img = ov_store_image_get(f->store, "lab", NULL);
    enum state st = STATE_BROKEN;
    if (img && client_is(f, "a", 2, sum_a))
        st = img->generations->len == 2   ? STATE_OLD
             : img->generations->len == 1 ? STATE_NEW
                                          : STATE_BROKEN;
    ov_image_info_free(img);
    return st;
}

/* ------------------------------------------------------------- driver */

static void
run_scenario(gconstpointer data)
{
    const struct scenario *sc = data;
    int k;
    for (k = 1; k < 200; k++) {
        struct fixture f = {0};
        fixture_setup(&f, NULL);
        sc->setup(&f);
        struct faults fl = {.fail_at = k};
        g_autoptr(GError) error = NULL;
        store_set_fault_hook(fault_hook, &fl);
        bool ok = sc->op(&f, &error);
        store_set_fault_hook(NULL, NULL);
        bool injected = fl.calls >= k;
        enum state st = sc->state(&f);
        g_test_message("%s: failing step %d (%s): %s", sc->name, k,
                       injected ? fl.step : "none left", ok ? "succeeded" : error->message);
        g_assert_cmpint(st, !=, STATE_BROKEN);
        g_assert_true(ok || error != NULL);
        if (ok)
            g_assert_cmpint(st, ==, STATE_NEW);
        /* whatever a crash or failure left in STORE/tmp, gc clears it */
        g_autoptr(GString) report = g_string_new(NULL);
        if (sc->op != gc_op) {
            g_assert_true(ov_store_gc(f.store, report, NULL));
            g_assert_cmpint(sc->state(&f), ==, st);
        }
        g_assert_cmpuint(count_tmp(&f), ==, 0);
        if (!ok && st == STATE_OLD) { /* nothing changed: it works now */
            g_assert_true(sc->op(&f, NULL));
            g_assert_cmpint(sc->state(&f), ==, STATE_NEW);
        }
        fixture_teardown(&f, NULL);
        if (!injected)
            break;
    }
    g_assert_cmpint(k, >=, 2); /* the operation has fallible steps, and all ran */
    g_assert_cmpint(k, <, 200);
    forget_sums();
}

static const struct scenario scenarios[] = {
    {"commit", commit_setup, commit_op, commit_state},
    {"image-create", image_setup, image_op, image_state},
    {"client-add", client_setup, client_op, client_state},
    {"reset", reset_setup, reset_op, reset_state},
    {"client-remove", reset_setup, remove_op, remove_state},
    {"gc", gc_setup, gc_op, gc_state},
};

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    for (size_t i = 0; i < G_N_ELEMENTS(scenarios); i++) {
        g_autofree char *path = g_strdup_printf("/store/faults/%s", scenarios[i].name);
        g_test_add_data_func(path, &scenarios[i], run_scenario);
    }
    return g_test_run();
}
