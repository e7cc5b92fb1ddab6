/* store-int.h — shared between the store's files (store.c, store-client.c,
 * commit.c); never installed, never included outside overlay/.
 *
 * Layout and locking: docs/store.md. In short: every multi-file change holds
 * the store lock (flock LOCK_EX on STORE/lock); single-file readers need no
 * lock because every file is replaced by rename. Work that takes long (copying
 * a generation) happens outside the lock in STORE/tmp/, in entries that their
 * creator keeps flocked so that gc can tell live temporaries from debris.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>

#include "store.h"

#define STORE_FORMAT_VERSION 1
#define STORE_MARKER "ovgate-store"
#define STORE_LOCK "lock"
#define STORE_IMAGES "images"
#define STORE_CLIENTS "clients"
#define STORE_TMP "tmp"
#define STORE_IMAGE_CONF "image.conf"
#define STORE_CLIENT_CONF "client.conf"
#define STORE_OVERLAY "overlay.ovl"
#define STORE_GEN_DIR "gen"
#define STORE_LOCK_TIMEOUT_S 60

struct ov_store {
    char *dir; /* absolute, canonical */
    char *images_dir;
    char *clients_dir;
    char *tmp_dir;
    char *lock_path;
    ov_store_base_opener opener;
    void *opener_data;
    GDestroyNotify opener_destroy;
};

/* A temporary entry in STORE/tmp: its creator holds an flock on fd until it
 * is renamed into place or removed (gc removes only unlocked entries). */
struct store_tmp {
    char *path;
    int fd; /* the file itself, or the directory (O_RDONLY) */
};

/* --- fault injection (store.c), for tests --- */
/* Called at each step of a change that can fail (temporary, write, copy,
 * rename, directory sync, overlay creation) with the step's name; a non-zero
 * return is the errno that step then fails with. Process-global; set it only
 * while no store call runs. tests/unit/store uses it to fail every step of
 * each operation in turn and check that nothing is left half-done. */
typedef int (*store_fault_fn)(const char *step, void *user_data);
void store_set_fault_hook(store_fault_fn fn, void *user_data);
/* 0, or the errno the hook injects for step. */
int store_fault(const char *step);
/* ov_overlay_create behind the fault hook. */
bool store_overlay_create(const char *path, const struct ov_base_id *id, uint32_t granule,
                          bool replace, GError **error);

/* --- errors --- */
/* Set error from errno err: "<formatted>: <strerror>", code from
 * ov_error_from_errno. Always returns false. */
bool store_fail_errno(GError **error, int err, const char *fmt, ...) G_GNUC_PRINTF(3, 4);

/* --- locking (store.c) --- */
/* Take the store lock, waiting up to STORE_LOCK_TIMEOUT_S (then
 * OV_ERROR_LOCKED). Returns an fd to pass to store_unlock, or -1. */
int store_lock(struct ov_store *store, bool exclusive, GError **error);
void store_unlock(int fd);

/* --- files (store.c) --- */
bool store_fsync_dir(const char *dir, GError **error);
bool store_fsync_parent(const char *path, GError **error);
/* Write data to path atomically (temp in the same dir, fsync, rename, fsync dir). */
bool store_write_atomic(const char *path, const void *data, size_t len, int mode, GError **error);
bool store_keyfile_write(const char *path, GKeyFile *kf, GError **error);
/* Caller frees with g_key_file_unref. */
GKeyFile *store_keyfile_read(const char *path, GError **error);
/* rm -rf; ENOENT is fine. */
bool store_remove_tree(const char *path, GError **error);

/* Reads one named entry of a listing; NULL + OV_ERROR_NOT_FOUND when it
 * vanished meanwhile (skipped), NULL + any other error fails the listing. */
typedef void *(*store_read_fn)(struct ov_store *store, const char *name, GError **error);
/* Every validly named entry of dir read with read_fn, sorted by name. The
 * items are structs whose first member is their `char *name` (ov_image_info,
 * ov_client_info); the array frees them with free_fn. */
GPtrArray *store_list_dir(struct ov_store *store, const char *dir, store_read_fn read_fn,
                          GDestroyNotify free_fn, GError **error);
/* rename from STORE/tmp without replacing an existing target (renameat2
 * RENAME_NOREPLACE), then fsync the target's directory (and, best effort,
 * STORE/tmp). Caller holds the store lock. */
bool store_rename_noreplace(const char *from, const char *to, GError **error);

/* Create a flocked temporary file / directory in STORE/tmp. held: the caller
 * already holds the store lock (flock locks of one process conflict with each
 * other, so taking it again would deadlock). */
bool store_tmp_file(struct ov_store *store, const char *prefix, bool held, struct store_tmp *tmp,
                    GError **error);
bool store_tmp_dir(struct ov_store *store, const char *prefix, bool held, struct store_tmp *tmp,
                   GError **error);
/* Move path (file or directory) into STORE/tmp under a fresh name, caller
 * holding the store lock; on success *grave is the new path (caller removes
 * it with store_remove_tree after unlocking, and frees it). */
bool store_bury(struct ov_store *store, const char *path, char **grave, GError **error);
/* Remove the entry if it still exists and release it. Accepts a zeroed tmp. */
void store_tmp_discard(struct store_tmp *tmp);
/* Release without removing (after it was renamed into place). */
void store_tmp_release(struct store_tmp *tmp);

/* --- paths (store.c); caller frees --- */
char *store_image_dir(struct ov_store *store, const char *image);
char *store_gen_path(struct ov_store *store, const char *image, uint32_t gen, const char *ext);
char *store_client_dir(struct ov_store *store, const char *client);
char *store_overlay_path(struct ov_store *store, const char *client);

/* --- images (store.c) --- */
/* Read image.conf's fields without listing generations. */
bool store_image_read_conf(struct ov_store *store, const char *name, uint32_t *head,
                           bool *auto_enroll, gint64 *created, GError **error);
bool store_image_write_conf(struct ov_store *store, const char *dir, uint32_t head,
                            bool auto_enroll, gint64 created, GError **error);
/* Write gen/N.conf in the image directory dir. */
bool store_gen_write_conf(const char *image_dir, uint32_t gen, const uint8_t uuid[OV_UUID_LEN],
                          uint64_t size, gint64 created, const char *source, GError **error);
/* The generation's info; NULL + OV_ERROR_NOT_FOUND if it does not exist. */
struct ov_generation_info *store_gen_get(struct ov_store *store, const char *image, uint32_t gen,
                                         GError **error);
void store_base_id_set(struct ov_base_id *id, const char *image,
                       const struct ov_generation_info *gen);
/* Open the base of generation gen through the opener. */
struct ov_base *store_open_base_locked(struct ov_store *store, const char *image, uint32_t gen,
                                       GError **error);

/* --- clients (store-client.c) --- */
/* *client = name of one client of image (caller frees), or NULL if none. */
bool store_image_first_client(struct ov_store *store, const char *image, char **client,
                              GError **error);
/* Open the client's overlay without taking the store lock (caller holds it). */
struct ov_overlay *store_client_open_overlay_locked(struct ov_store *store, const char *name,
                                                    unsigned flags, GError **error);

/* --- generation files (commit.c) --- */
/* Fill dst_fd (empty, opened O_RDWR) with the bytes of src_fd (size bytes):
 * FICLONE when possible, else copy_file_range over data extents only (holes
 * stay holes), else read/write skipping all-zero blocks. */
bool store_copy_fd(int src_fd, int dst_fd, uint64_t size, GError **error);
