/* store-gc.c — garbage collection of the store (see store.h, docs/store.md).
 *
 * Under the store lock (exclusive), gc removes:
 *  - generations that are not their image's head and on which no client's
 *    overlay sits (the overlay header is the source of truth: each overlay's
 *    base identity is read with ov_overlay_read_base_id). If any overlay of
 *    an image cannot be read, no generation of that image is removed: gc
 *    never guesses.
 *  - N.raw files without N.conf (a publish or removal interrupted by a crash)
 *    and stale NAME.tmp-XXXXXX files of atomic writes in image and client
 *    directories (those are only written under the store lock, which gc holds);
 *  - entries of STORE/tmp whose creator is gone (their flock is free).
 * Removal order for a generation: N.conf first (the generation stops
 * existing), then N.raw.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include <glib.h>

#include "store-int.h"

struct gc_use {
    GHashTable *used;       /* "image/gen" -> NULL */
    GHashTable *unreadable; /* image -> NULL: some overlay of it cannot be read */
};

static int
strcmp_indirect(gconstpointer a, gconstpointer b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Entry names of dir, sorted (so that reports come in a stable order), or
 * NULL with an error. */
static GPtrArray *
list_sorted(const char *dir, GError **error)
{
    GDir *d = g_dir_open(dir, 0, NULL);
    if (!d) {
        store_fail_errno(error, errno, "cannot list %s", dir);
        return NULL;
    }
    GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
    const char *name;
    while ((name = g_dir_read_name(d)) != NULL)
        g_ptr_array_add(names, g_strdup(name));
    g_dir_close(d);
    g_ptr_array_sort(names, strcmp_indirect);
    return names;
}

/* Remove stale NAME.tmp-XXXXXX files of atomic writes in dir (in image and
 * client directories those are only written under the store lock, which gc
 * holds) and, with orphans, N.raw files without N.conf. */
static bool
gc_sweep_dir(const char *dir, bool orphans, GString *report, GError **error)
{
    g_autoptr(GPtrArray) names = list_sorted(dir, error);
    if (!names)
        return false;
    bool ok = true;
    for (guint i = 0; ok && i < names->len; i++) {
        const char *file = names->pdata[i];
        g_autofree char *path = g_build_filename(dir, file, NULL);
        bool stale = strstr(file, ".tmp-") != NULL;
        if (!stale && orphans && g_str_has_suffix(file, ".raw")) {
            g_autofree char *base = g_strndup(file, strlen(file) - 4);
            g_autofree char *conf = g_strdup_printf("%s/%s.conf", dir, base);
            stale = !g_file_test(conf, G_FILE_TEST_EXISTS);
        }
        if (!stale || !g_file_test(path, G_FILE_TEST_IS_REGULAR))
            continue;
        if (unlink(path) < 0 && errno != ENOENT)
            ok = store_fail_errno(error, errno, "cannot remove %s", path);
        else
            g_string_append_printf(report, "removed leftover file %s\n", path);
    }
    return ok;
}

static bool
gc_collect_use(struct ov_store *store, struct gc_use *use, GString *report, GError **error)
{
    g_autoptr(GPtrArray) clients = ov_store_client_list(store, error);
    if (!clients)
        return false;
    for (guint i = 0; i < clients->len; i++) {
        struct ov_client_info *c = clients->pdata[i];
        g_autofree char *dir = store_client_dir(store, c->name);
        if (!gc_sweep_dir(dir, false, report, error))
            return false;
        struct ov_base_id id;
        g_autoptr(GError) local = NULL;
        if (ov_overlay_read_base_id(c->overlay_path, &id, &local)) {
            g_hash_table_add(use->used, g_strdup_printf("%s/%" PRIu32, id.image, id.generation));
        } else {
            g_string_append_printf(report,
                                   "kept every generation of image '%s': client '%s' has an "
                                   "unreadable overlay (%s)\n",
                                   c->image, c->name, local->message);
            g_hash_table_add(use->unreadable, g_strdup(c->image));
        }
    }
    return true;
}

static bool
gc_remove_generation(struct ov_store *store, const char *image, struct ov_generation_info *g,
                     GString *report, GError **error)
{
    g_autofree char *conf = store_gen_path(store, image, g->generation, "conf");
    if (unlink(conf) < 0)
        return store_fail_errno(error, errno, "cannot remove %s", conf);
    if (!store_fsync_parent(conf, error))
        return false;
    if (unlink(g->path) < 0 && errno != ENOENT)
        return store_fail_errno(error, errno, "cannot remove %s", g->path);
    g_string_append_printf(report,
                           "removed image '%s' generation %" PRIu32 " (%" PRIu64 " bytes)\n", image,
                           g->generation, g->file_bytes);
    return true;
}

static bool
gc_sweep_image(struct ov_store *store, const char *image, GString *report, GError **error)
{
    g_autofree char *dir = store_image_dir(store, image);
    g_autofree char *gen_dir = g_build_filename(dir, STORE_GEN_DIR, NULL);
    return gc_sweep_dir(dir, false, report, error) && gc_sweep_dir(gen_dir, true, report, error);
}

static bool
gc_images(struct ov_store *store, struct gc_use *use, GString *report, GError **error)
{
    g_autoptr(GPtrArray) images = ov_store_image_list(store, error);
    if (!images)
        return false;
    for (guint i = 0; i < images->len; i++) {
        struct ov_image_info *img = images->pdata[i];
        if (!gc_sweep_image(store, img->name, report, error))
            return false;
        if (g_hash_table_contains(use->unreadable, img->name))
            continue;
        for (guint j = 0; j < img->generations->len; j++) {
            struct ov_generation_info *g = img->generations->pdata[j];
            g_autofree char *key = g_strdup_printf("%s/%" PRIu32, img->name, g->generation);
            if (g->generation == img->head || g_hash_table_contains(use->used, key))
                continue;
            if (!gc_remove_generation(store, img->name, g, report, error))
                return false;
        }
    }
    return true;
}

/* Entries of STORE/tmp that nobody holds are debris of an interrupted
 * command (or a removal finished by whoever gets there first). */
static bool
gc_tmp(struct ov_store *store, GString *report, GError **error)
{
    g_autoptr(GPtrArray) names = list_sorted(store->tmp_dir, error);
    if (!names)
        return false;
    bool ok = true;
    for (guint i = 0; ok && i < names->len; i++) {
        g_autofree char *path = g_build_filename(store->tmp_dir, names->pdata[i], NULL);
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
            continue; /* gone meanwhile */
        bool free_lock = flock(fd, LOCK_EX | LOCK_NB) == 0;
        if (free_lock) {
            ok = store_remove_tree(path, error);
            if (ok)
                g_string_append_printf(report, "removed leftover temporary %s\n", path);
        }
        close(fd);
    }
    return ok;
}

bool
ov_store_gc(struct ov_store *store, GString *report, GError **error)
{
    int lock = store_lock(store, true, error);
    if (lock < 0)
        return false;
    struct gc_use use = {
        .used = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL),
        .unreadable = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL),
    };
    bool ok = gc_collect_use(store, &use, report, error) && gc_images(store, &use, report, error) &&
              gc_tmp(store, report, error);
    g_hash_table_unref(use.used);
    g_hash_table_unref(use.unreadable);
    store_unlock(lock);
    return ok;
}
