/* store.c — the image store: opening a store, the store lock, atomic file
 * helpers, and images with their generations (see store.h, docs/store.md).
 * Clients, reset, check and gc are in store-client.c; commit and generation
 * file copies in commit.c.
 *
 * Design notes:
 *  - Every file is replaced atomically: written as NAME.tmp-XXXXXX in the same
 *    directory, fsynced, renamed over NAME, and the directory fsynced. A reader
 *    therefore sees the old or the new file, never a mix, and needs no lock.
 *  - Directories that appear whole (a new image, a new client) are assembled
 *    in STORE/tmp/ and renamed into place with RENAME_NOREPLACE; directories
 *    that go away are first renamed into STORE/tmp/ and removed there. So
 *    images/ and clients/ only ever hold complete entries.
 *  - A generation exists iff gen/N.conf exists; N.raw is written and fsynced
 *    before N.conf, and N.conf is removed before N.raw.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "store-int.h"

bool
store_fail_errno(GError **error, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *what = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_set_error(error, OV_ERROR, ov_error_from_errno(err), "%s: %s", what, g_strerror(err));
    return false;
}

/* ------------------------------------------------------- fault injection */

static store_fault_fn fault_fn;
static void *fault_data;

void
store_set_fault_hook(store_fault_fn fn, void *user_data)
{
    fault_fn = fn;
    fault_data = user_data;
}

int
store_fault(const char *step)
{
    return fault_fn ? fault_fn(step, fault_data) : 0;
}

bool
store_overlay_create(const char *path, const struct ov_base_id *id, uint32_t granule, bool replace,
                     GError **error)
{
    int err = store_fault("overlay-create");
    if (err)
        return store_fail_errno(error, err, "cannot create overlay %s", path);
    return ov_overlay_create(path, id, granule, replace, error);
}

/* ---------------------------------------------------------------- locking */

int
store_lock(struct ov_store *store, bool exclusive, GError **error)
{
    int fd = open(store->lock_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        store_fail_errno(error, errno, "cannot open store lock %s", store->lock_path);
        return -1;
    }
    /* Every holder keeps the lock for a short multi-file change, so waiting
     * long means a stuck process: poll with backoff and give up with a
     * clear error instead of hanging ovctl (or a daemon thread) forever. */
    gint64 deadline = g_get_monotonic_time() + STORE_LOCK_TIMEOUT_S * G_USEC_PER_SEC;
    gulong pause = 1000;
    while (flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) < 0) {
        int err = errno;
        if (err == EINTR)
            continue;
        if (err == EWOULDBLOCK && g_get_monotonic_time() < deadline) {
            g_usleep(pause);
            pause = MIN(pause * 2, 50000);
            continue;
        }
        close(fd);
        if (err == EWOULDBLOCK)
            g_set_error(error, OV_ERROR, OV_ERROR_LOCKED,
                        "store %s is busy: its lock has been held for %d s (another ovctl or "
                        "ovgated is stuck?)",
                        store->dir, STORE_LOCK_TIMEOUT_S);
        else
            store_fail_errno(error, err, "cannot lock store %s", store->dir);
        return -1;
    }
    return fd;
}

void
store_unlock(int fd)
{
    if (fd >= 0)
        close(fd); /* closing the only descriptor releases the flock */
}

/* ------------------------------------------------------------------ files */

bool
store_fsync_dir(const char *dir, GError **error)
{
    int fault = store_fault("fsync-dir");
    if (fault)
        return store_fail_errno(error, fault, "cannot sync directory %s", dir);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return store_fail_errno(error, errno, "cannot open directory %s", dir);
    if (fsync(fd) < 0) {
        int err = errno;
        close(fd);
        return store_fail_errno(error, err, "cannot sync directory %s", dir);
    }
    close(fd);
    return true;
}

bool
store_fsync_parent(const char *path, GError **error)
{
    g_autofree char *dir = g_path_get_dirname(path);
    return store_fsync_dir(dir, error);
}

static bool
write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return false;
        }
        p += n;
        len -= (size_t)n;
    }
    return true;
}

bool
store_write_atomic(const char *path, const void *data, size_t len, int mode, GError **error)
{
    g_autofree char *tmp = g_strdup_printf("%s.tmp-XXXXXX", path);
    int fd = g_mkstemp_full(tmp, O_RDWR | O_CLOEXEC, mode);
    if (fd < 0)
        return store_fail_errno(error, errno, "cannot create %s", tmp);
    int fault = store_fault("write");
    if (fault || !write_all(fd, data, len) || fsync(fd) < 0) {
        int err = fault ? fault : errno;
        close(fd);
        unlink(tmp);
        return store_fail_errno(error, err, "cannot write %s", path);
    }
    if (close(fd) < 0 || rename(tmp, path) < 0) {
        int err = errno;
        unlink(tmp);
        return store_fail_errno(error, err, "cannot replace %s", path);
    }
    return store_fsync_parent(path, error);
}

bool
store_keyfile_write(const char *path, GKeyFile *kf, GError **error)
{
    gsize len = 0;
    g_autofree char *data = g_key_file_to_data(kf, &len, NULL);
    return store_write_atomic(path, data, len, 0644, error);
}

GKeyFile *
store_keyfile_read(const char *path, GError **error)
{
    g_autoptr(GKeyFile) kf = g_key_file_new();
    g_autoptr(GError) local = NULL;
    if (!g_key_file_load_from_file(kf, path, G_KEY_FILE_NONE, &local)) {
        if (g_error_matches(local, G_FILE_ERROR, G_FILE_ERROR_NOENT))
            g_set_error(error, OV_ERROR, OV_ERROR_NOT_FOUND, "%s does not exist", path);
        else if (local->domain == G_FILE_ERROR)
            g_set_error(error, OV_ERROR, OV_ERROR_FAILED, "cannot read %s: %s", path,
                        local->message);
        else
            g_set_error(error, OV_ERROR, OV_ERROR_CORRUPT, "%s is damaged: %s", path,
                        local->message);
        return NULL;
    }
    return g_steal_pointer(&kf);
}

bool
store_remove_tree(const char *path, GError **error)
{
    struct stat st;
    if (lstat(path, &st) < 0) {
        if (errno == ENOENT)
            return true;
        return store_fail_errno(error, errno, "cannot inspect %s", path);
    }
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (!d) {
            if (errno == ENOENT)
                return true;
            return store_fail_errno(error, errno, "cannot open %s", path);
        }
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                continue;
            g_autofree char *child = g_build_filename(path, de->d_name, NULL);
            if (!store_remove_tree(child, error)) {
                closedir(d);
                return false;
            }
        }
        closedir(d);
        if (rmdir(path) < 0 && errno != ENOENT)
            return store_fail_errno(error, errno, "cannot remove %s", path);
    } else if (unlink(path) < 0 && errno != ENOENT) {
        return store_fail_errno(error, errno, "cannot remove %s", path);
    }
    return true;
}

/* 0 or -1 with errno (EEXIST when to exists). */
static int
rename_noreplace(const char *from, const char *to)
{
    int r = renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE);
    if (r < 0 && (errno == EINVAL || errno == ENOSYS)) {
        /* A filesystem without RENAME_NOREPLACE: every caller holds the
         * store lock, so checking first and renaming is just as safe. */
        if (access(to, F_OK) == 0)
            errno = EEXIST;
        else
            r = rename(from, to);
    }
    return r;
}

bool
store_rename_noreplace(const char *from, const char *to, GError **error)
{
    int fault = store_fault("rename");
    if (fault || rename_noreplace(from, to) < 0) {
        int err = fault ? fault : errno;
        if (err == EEXIST) {
            g_set_error(error, OV_ERROR, OV_ERROR_EXISTS, "%s already exists", to);
            return false;
        }
        return store_fail_errno(error, err, "cannot rename %s to %s", from, to);
    }
    if (!store_fsync_parent(to, error))
        return false;
    /* The source is always in STORE/tmp: should the kernel forget that it
     * left there, gc removes the resurrected (unlocked) entry. Best effort. */
    store_fsync_parent(from, NULL);
    return true;
}

/* Create and flock a temporary entry under the store lock (shared), so that a
 * concurrent gc, which holds it exclusively, never sees it unlocked. */
static bool
tmp_create(struct ov_store *store, const char *prefix, bool dir, bool held, struct store_tmp *tmp,
           GError **error)
{
    memset(tmp, 0, sizeof(*tmp));
    tmp->fd = -1;
    int fault = store_fault("tmp");
    if (fault)
        return store_fail_errno(error, fault, "cannot create a temporary entry in %s",
                                store->tmp_dir);
    int lock = held ? -1 : store_lock(store, false, error);
    if (!held && lock < 0)
        return false;
    char *path = g_strdup_printf("%s/%s-XXXXXX", store->tmp_dir, prefix);
    int fd;
    if (dir) {
        fd = g_mkdtemp_full(path, 0755) ? open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    } else {
        fd = g_mkstemp_full(path, O_RDWR | O_CLOEXEC, 0644);
    }
    if (fd < 0) {
        int err = errno;
        if (dir)
            rmdir(path);
        store_unlock(lock);
        store_fail_errno(error, err, "cannot create a temporary entry in %s", store->tmp_dir);
        g_free(path);
        return false;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int err = errno;
        close(fd);
        store_remove_tree(path, NULL);
        store_unlock(lock);
        store_fail_errno(error, err, "cannot lock %s", path);
        g_free(path);
        return false;
    }
    store_unlock(lock);
    tmp->path = path;
    tmp->fd = fd;
    return true;
}

bool
store_tmp_file(struct ov_store *store, const char *prefix, bool held, struct store_tmp *tmp,
               GError **error)
{
    return tmp_create(store, prefix, false, held, tmp, error);
}

bool
store_tmp_dir(struct ov_store *store, const char *prefix, bool held, struct store_tmp *tmp,
              GError **error)
{
    return tmp_create(store, prefix, true, held, tmp, error);
}

bool
store_bury(struct ov_store *store, const char *path, char **grave, GError **error)
{
    int err = store_fault("rename");
    if (err)
        return store_fail_errno(error, err, "cannot remove %s", path);
    for (int attempt = 0; attempt < 16; attempt++) {
        g_autofree char *name =
            g_strdup_printf("%s/removed-%08" PRIx32, store->tmp_dir, g_random_int());
        if (rename_noreplace(path, name) == 0) {
            if (!store_fsync_parent(path, error))
                return false; /* already buried: gc finishes the removal */
            *grave = g_steal_pointer(&name);
            return true;
        }
        if (errno != EEXIST)
            return store_fail_errno(error, errno, "cannot remove %s", path);
    }
    g_set_error(error, OV_ERROR, OV_ERROR_FAILED, "cannot find a free name in %s", store->tmp_dir);
    return false;
}

void
store_tmp_discard(struct store_tmp *tmp)
{
    if (tmp->path)
        store_remove_tree(tmp->path, NULL);
    store_tmp_release(tmp);
}

void
store_tmp_release(struct store_tmp *tmp)
{
    if (tmp->fd >= 0)
        close(tmp->fd);
    tmp->fd = -1;
    g_clear_pointer(&tmp->path, g_free);
}

/* ------------------------------------------------------------------ paths */

char *
store_image_dir(struct ov_store *store, const char *image)
{
    return g_build_filename(store->images_dir, image, NULL);
}

char *
store_gen_path(struct ov_store *store, const char *image, uint32_t gen, const char *ext)
{
    g_autofree char *file = g_strdup_printf("%" PRIu32 ".%s", gen, ext);
    return g_build_filename(store->images_dir, image, STORE_GEN_DIR, file, NULL);
}

char *
store_client_dir(struct ov_store *store, const char *client)
{
    return g_build_filename(store->clients_dir, client, NULL);
}

char *
store_overlay_path(struct ov_store *store, const char *client)
{
    return g_build_filename(store->clients_dir, client, STORE_OVERLAY, NULL);
}

/* ------------------------------------------------------------------ store */

bool
ov_store_name_valid(const char *name)
{
    if (!name || !g_ascii_isalnum(name[0]))
        return false;
    size_t len = strlen(name);
    if (len > OV_CLIENT_NAME_MAX || len > OV_IMAGE_NAME_MAX)
        return false;
    for (size_t i = 1; i < len; i++) {
        char c = name[i];
        if (!g_ascii_isalnum(c) && c != '.' && c != '_' && c != '-')
            return false;
    }
    return true;
}

static bool
store_check_marker(const char *dir, const char *marker, GError **error)
{
    g_autoptr(GKeyFile) kf = store_keyfile_read(marker, error);
    if (!kf) {
        g_prefix_error(error, "%s is not a usable ovgate store: ", dir);
        return false;
    }
    g_autoptr(GError) local = NULL;
    guint64 version = g_key_file_get_uint64(kf, "store", "format-version", &local);
    if (local) {
        g_set_error(error, OV_ERROR, OV_ERROR_CORRUPT, "%s: no store format version", marker);
        return false;
    }
    if (version != STORE_FORMAT_VERSION) {
        g_set_error(error, OV_ERROR, OV_ERROR_UNSUPPORTED,
                    "%s has store format version %" G_GUINT64_FORMAT
                    "; this ovgate supports version %d",
                    dir, (guint64)version, STORE_FORMAT_VERSION);
        return false;
    }
    return true;
}

static bool
dir_is_empty(const char *dir, GError **error)
{
    GDir *d = g_dir_open(dir, 0, NULL);
    if (!d)
        return store_fail_errno(error, errno, "cannot read %s", dir);
    bool empty = g_dir_read_name(d) == NULL;
    g_dir_close(d);
    if (!empty)
        g_set_error(error, OV_ERROR, OV_ERROR_INVALID, "%s is not empty and is not an ovgate store",
                    dir);
    return empty;
}

/* Initialise an empty directory: the marker is written last, so a store
 * whose initialisation was interrupted is still "empty of a marker" and the
 * next init finishes it. */
static bool
store_init_dir(struct ov_store *store, const char *marker, GError **error)
{
    const char *subdirs[] = {store->images_dir, store->clients_dir, store->tmp_dir};
    for (size_t i = 0; i < G_N_ELEMENTS(subdirs); i++) {
        if (g_mkdir(subdirs[i], 0755) < 0 && errno != EEXIST)
            return store_fail_errno(error, errno, "cannot create %s", subdirs[i]);
    }
    int fd = open(store->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return store_fail_errno(error, errno, "cannot create %s", store->lock_path);
    close(fd);
    if (!store_fsync_dir(store->dir, error))
        return false;
    g_autoptr(GKeyFile) kf = g_key_file_new();
    g_key_file_set_comment(kf, NULL, NULL, " ovgate image store (docs/store.md)", NULL);
    g_key_file_set_uint64(kf, "store", "format-version", STORE_FORMAT_VERSION);
    g_key_file_set_int64(kf, "store", "created", g_get_real_time() / G_USEC_PER_SEC);
    return store_keyfile_write(marker, kf, error);
}

struct ov_store *
ov_store_open(const char *dir, bool create, GError **error)
{
    g_return_val_if_fail(dir != NULL, NULL);
    g_autofree char *abs = g_canonicalize_filename(dir, NULL);
    g_autofree char *marker = g_build_filename(abs, STORE_MARKER, NULL);
    struct stat st;

    if (stat(abs, &st) < 0) {
        if (errno != ENOENT)
            return store_fail_errno(error, errno, "cannot open store %s", abs), NULL;
        if (!create) {
            g_set_error(error, OV_ERROR, OV_ERROR_NOT_FOUND,
                        "store %s does not exist (create it with ovctl init)", abs);
            return NULL;
        }
        if (g_mkdir_with_parents(abs, 0755) < 0)
            return store_fail_errno(error, errno, "cannot create store %s", abs), NULL;
    } else if (!S_ISDIR(st.st_mode)) {
        g_set_error(error, OV_ERROR, OV_ERROR_INVALID, "store %s is not a directory", abs);
        return NULL;
    }

    struct ov_store *store = g_new0(struct ov_store, 1);
    store->dir = g_steal_pointer(&abs);
    store->images_dir = g_build_filename(store->dir, STORE_IMAGES, NULL);
    store->clients_dir = g_build_filename(store->dir, STORE_CLIENTS, NULL);
    store->tmp_dir = g_build_filename(store->dir, STORE_TMP, NULL);
    store->lock_path = g_build_filename(store->dir, STORE_LOCK, NULL);

    bool ok;
    if (g_file_test(marker, G_FILE_TEST_EXISTS)) {
        ok = store_check_marker(store->dir, marker, error);
    } else if (!create) {
        g_set_error(error, OV_ERROR, OV_ERROR_NOT_FOUND,
                    "%s is not an ovgate store (create it with ovctl init)", store->dir);
        ok = false;
    } else {
        /* An interrupted init leaves only our own subdirectories and lock. */
        bool partial = g_file_test(store->images_dir, G_FILE_TEST_IS_DIR) &&
                       g_file_test(store->lock_path, G_FILE_TEST_EXISTS);
        ok = (partial || dir_is_empty(store->dir, error)) && store_init_dir(store, marker, error);
    }
    if (!ok) {
        ov_store_close(store);
        return NULL;
    }
    return store;
}

void
ov_store_close(struct ov_store *store)
{
    if (!store)
        return;
    if (store->opener_destroy)
        store->opener_destroy(store->opener_data);
    g_free(store->dir);
    g_free(store->images_dir);
    g_free(store->clients_dir);
    g_free(store->tmp_dir);
    g_free(store->lock_path);
    g_free(store);
}

const char *
ov_store_get_dir(struct ov_store *store)
{
    return store->dir;
}

char *
ov_store_control_socket_path(struct ov_store *store)
{
    return g_build_filename(store->dir, "ovgated.sock", NULL);
}

void
ov_store_set_base_opener(struct ov_store *store, ov_store_base_opener fn, void *user_data,
                         GDestroyNotify destroy)
{
    if (store->opener_destroy)
        store->opener_destroy(store->opener_data);
    store->opener = fn;
    store->opener_data = user_data;
    store->opener_destroy = destroy;
}

/* ------------------------------------------------------------ info frees */

void
ov_generation_info_free(struct ov_generation_info *info)
{
    if (!info)
        return;
    g_free(info->source);
    g_free(info->path);
    g_free(info);
}

void
ov_image_info_free(struct ov_image_info *info)
{
    if (!info)
        return;
    g_free(info->name);
    if (info->generations)
        g_ptr_array_unref(info->generations);
    g_free(info);
}

void
ov_client_info_free(struct ov_client_info *info)
{
    if (!info)
        return;
    g_free(info->name);
    g_free(info->image);
    g_strfreev(info->iqns);
    g_strfreev(info->macs);
    g_free(info->overlay_path);
    g_free(info);
}

G_STATIC_ASSERT(offsetof(struct ov_image_info, name) == 0);
G_STATIC_ASSERT(offsetof(struct ov_client_info, name) == 0);

static int
store_name_cmp(gconstpointer a, gconstpointer b)
{
    /* Both listed types start with `char *name`. */
    const char *const *na = *(const char *const *const *)a;
    const char *const *nb = *(const char *const *const *)b;
    return strcmp(*na, *nb);
}

GPtrArray *
store_list_dir(struct ov_store *store, const char *dir, store_read_fn read_fn,
               GDestroyNotify free_fn, GError **error)
{
    g_autoptr(GError) local = NULL;
    GDir *d = g_dir_open(dir, 0, &local);
    if (!d) {
        g_set_error(error, OV_ERROR, OV_ERROR_FAILED, "cannot list %s: %s", dir, local->message);
        return NULL;
    }
    GPtrArray *list = g_ptr_array_new_with_free_func(free_fn);
    const char *name;
    while ((name = g_dir_read_name(d)) != NULL) {
        if (!ov_store_name_valid(name))
            continue; /* not ours */
        g_autoptr(GError) one = NULL;
        void *info = read_fn(store, name, &one);
        if (info) {
            g_ptr_array_add(list, info);
        } else if (!g_error_matches(one, OV_ERROR, OV_ERROR_NOT_FOUND)) {
            /* removed meanwhile is fine; damaged is not */
            g_propagate_error(error, g_steal_pointer(&one));
            g_dir_close(d);
            g_ptr_array_unref(list);
            return NULL;
        }
    }
    g_dir_close(d);
    g_ptr_array_sort(list, store_name_cmp);
    return list;
}
