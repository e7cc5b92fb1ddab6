/* test-store-stress.c — the store under concurrent commands, checked by
 * content: several threads, each with its own store handle (as separate
 * ovctl processes and ovgated would have), run random writes, offline
 * commits, resets, gc and client look-ups on clients of two shared images.
 *
 * Thread t owns client t (the only one that writes, commits or resets it)
 * and keeps a reference of its disk, so that after every step the client's
 * overlay must open on a generation that still exists and read exactly the
 * reference: gc never removes a generation a client sits on (or the head),
 * a commit publishes the client's disk byte for byte as the new head, and a
 * reset puts the client on the head of the moment. Everything else (gc,
 * other threads' commits moving the head, look-ups) runs concurrently.
 * At the end gc leaves no temporary and check finds every overlay clean.
 * Seeded: OVT_SEED=N reproduces the choices (not the interleaving). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <glib.h>

#include "fixture.h"
#include "overlay.h"

#define THREADS 4
#define STEPS 40
#define DISK MiB

struct actor {
    const char *store_dir;
    unsigned index;
    guint32 seed;
    char name[16];
    uint8_t *ref;
    unsigned commits, resets, gcs;
};

static struct ov_store *
open_store(const char *dir)
{
    g_autoptr(GError) error = NULL;
    struct ov_store *store = ov_store_open(dir, false, &error);

    g_assert_no_error(error);
    ov_store_set_base_opener(store, file_opener, NULL, NULL);
    return store;
}

static struct ov_overlay *
open_client(struct ov_store *store, const char *name)
{
    g_autoptr(GError) error = NULL;
    struct ov_overlay *ov = ov_store_client_open_overlay(store, name, 0, &error);

    if (!ov)
        g_error("client %s cannot be opened: %s", name, error->message);
    return ov;
}

/* The client reads its reference. */
static void
check_client(struct ov_store *store, struct actor *a, const char *after)
{
    struct ov_overlay *ov = open_client(store, a->name);
    g_autofree uint8_t *buf = g_malloc(DISK);

    g_assert_cmpint(ov_overlay_pread(ov, buf, DISK, 0), ==, 0);
    if (memcmp(buf, a->ref, DISK) != 0)
        g_error("client %s does not read what it should after %s", a->name, after);
    g_assert_true(ov_overlay_close(ov, NULL));
}

/* The bytes of the generation the client sits on now. */
static void
load_generation(struct ov_store *store, struct actor *a)
{
    g_autoptr(GError) error = NULL;
    struct ov_client_info *c = ov_store_client_get(store, a->name, &error);
    g_autofree char *path = NULL;
    g_autofree char *data = NULL;
    gsize n = 0;

    g_assert_no_error(error);
    g_assert_cmpuint(c->generation, >, 0);
    path = g_strdup_printf("%s/images/%s/gen/%u.raw", a->store_dir, c->image, c->generation);
    g_assert_true(g_file_get_contents(path, &data, &n, NULL));
    g_assert_cmpuint(n, ==, DISK);
    memcpy(a->ref, data, DISK);
    ov_client_info_free(c);
}

static gpointer
actor_main(gpointer data)
{
    struct actor *a = data;
    struct ov_store *store = open_store(a->store_dir);
    g_autoptr(GRand) r = g_rand_new_with_seed(a->seed);
    g_autofree uint8_t *buf = g_malloc(DISK);

    for (unsigned step = 0; step < STEPS; step++) {
        unsigned op = (unsigned)g_rand_int_range(r, 0, 100);
        g_autoptr(GError) error = NULL;

        if (op < 45) { /* the client writes (the daemon serving it) */
            struct ov_overlay *ov = open_client(store, a->name);
            uint64_t off = (uint64_t)g_rand_int_range(r, 0, DISK - 1);
            size_t len = (size_t)g_rand_int_range(r, 1, (gint32)MIN(DISK - off, 200000) + 1);
            for (size_t i = 0; i < len; i++)
                buf[i] = (uint8_t)g_rand_int(r);
            if (g_rand_int_range(r, 0, 4) == 0) {
                g_assert_cmpint(ov_overlay_zero(ov, off, len, 0), ==, 0);
                memset(a->ref + off, 0, len);
            } else {
                g_assert_cmpint(ov_overlay_pwrite(ov, buf, len, off, 0), ==, 0);
                memcpy(a->ref + off, buf, len);
            }
            g_assert_true(ov_overlay_close(ov, NULL));
            check_client(store, a, "a write");
        } else if (op < 65) {
            uint32_t gen = 0;
            if (!ov_store_client_commit(store, a->name, NULL, &gen, &error))
                g_error("commit of %s: %s", a->name, error->message);
            a->commits++;
            /* The new generation is the client's disk, and it sits on it. */
            load_generation(store, a);
            check_client(store, a, "a commit");
        } else if (op < 80) {
            if (!ov_store_client_reset(store, a->name, false, &error))
                g_error("reset of %s: %s", a->name, error->message);
            a->resets++;
            load_generation(store, a);
            check_client(store, a, "a reset");
        } else if (op < 90) {
            g_autoptr(GString) report = g_string_new(NULL);
            if (!ov_store_gc(store, report, &error))
                g_error("gc: %s", error->message);
            a->gcs++;
            check_client(store, a, "gc");
        } else {
            g_autoptr(GPtrArray) clients = ov_store_client_list(store, &error);
            g_autoptr(GPtrArray) images = ov_store_image_list(store, &error);
            g_assert_no_error(error);
            g_assert_cmpuint(clients->len, ==, THREADS);
            g_assert_cmpuint(images->len, ==, 2);
        }
    }
    ov_store_close(store);
    return NULL;
}

static void
test_stress(struct fixture *f, gconstpointer data)
{
    const char *env = g_getenv("OVT_SEED");
    guint32 seed = env ? (guint32)strtoul(env, NULL, 10) : g_random_int();
    g_autoptr(GRand) r = g_rand_new_with_seed(seed);
    g_autoptr(GError) error = NULL;
    g_autofree char *raw = make_raw(f, "src.raw", DISK);
    struct actor actors[THREADS];
    GThread *threads[THREADS];
    g_autoptr(GString) report = g_string_new(NULL);

    printf("# seed %u (rerun with OVT_SEED=%u)\n", seed, seed);
    g_assert_true(ov_store_image_create_from_file(f->store, "alpha", raw, &error));
    g_assert_no_error(error);
    g_assert_true(ov_store_image_create_empty(f->store, "beta", DISK, &error));
    g_assert_no_error(error);
    for (unsigned t = 0; t < THREADS; t++) {
        struct actor *a = &actors[t];
        *a = (struct actor){.store_dir = f->store_dir, .index = t, .seed = g_rand_int(r)};
        g_snprintf(a->name, sizeof(a->name), "pc%u", t);
        g_assert_true(
            ov_store_client_add(f->store, a->name, t % 2 ? "beta" : "alpha", NULL, NULL, &error));
        g_assert_no_error(error);
        a->ref = g_malloc(DISK);
        load_generation(f->store, a);
    }
    for (unsigned t = 0; t < THREADS; t++)
        threads[t] = g_thread_new("actor", actor_main, &actors[t]);
    for (unsigned t = 0; t < THREADS; t++)
        g_thread_join(threads[t]);

    g_assert_true(ov_store_gc(f->store, report, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(count_tmp(f), ==, 0);
    for (unsigned t = 0; t < THREADS; t++) {
        struct actor *a = &actors[t];
        bool clean = false;
        g_string_truncate(report, 0);
        check_client(f->store, a, "the run");
        g_assert_true(ov_store_client_check(f->store, a->name, false, report, &clean, &error));
        g_assert_no_error(error);
        g_assert_true(clean);
        g_test_message("%s: %u commits, %u resets, %u gc", a->name, a->commits, a->resets, a->gcs);
        g_free(a->ref);
    }
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add("/store/stress/concurrent-commands", struct fixture, NULL, fixture_setup,
               test_stress, fixture_teardown);
    return g_test_run();
}
