/* store.h — the image store: images with numbered immutable generations,
 * clients, and one overlay per client. Used by ovctl (offline operations) and
 * by ovgated's registry (lookups, online reset/commit). Layout and locking
 * are specified in docs/store.md.
 *
 * Every change is atomic: new files are written under a temporary name,
 * fsynced and renamed into place; multi-file changes hold the store lock
 * (flock on STORE/lock) so that two ovctl runs, or ovctl and the daemon, never
 * interleave. A failed call leaves the store as it was.
 *
 * Bases: the store never opens image bytes itself. It asks the base opener
 * (ov_store_set_base_opener) for a struct ov_base for a generation, so the
 * same store code serves local files and, later, proxied upstream images.
 * The default opener (when none is set) fails with OV_ERROR_UNSUPPORTED.
 *
 * All functions return bool / pointer with GError (domain OV_ERROR).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>

#include "overlay.h"

#ifdef __cplusplus
extern "C" {
#endif

struct ov_store;

#define OV_CLIENT_NAME_MAX 63

struct ov_generation_info {
    uint32_t generation;
    uint64_t size;
    uint8_t uuid[OV_UUID_LEN];
    gint64 created;     /* unix seconds */
    char *source;       /* "file:PATH", "empty", "commit:CLIENT" */
    char *path;         /* absolute path of the generation's raw file */
    uint64_t file_bytes; /* space used on disk */
};

struct ov_image_info {
    char *name;
    uint32_t head;       /* newest published generation */
    uint64_t size;       /* virtual size of the head generation */
    bool auto_enroll;    /* unknown initiators become clients on first login */
    GPtrArray *generations; /* struct ov_generation_info *, ascending */
};

struct ov_client_info {
    char *name;
    char *image;
    uint32_t generation;  /* the generation its overlay sits on */
    char **iqns;          /* NULL-terminated, may be empty */
    char **macs;          /* NULL-terminated, lower-case aa:bb:..., may be empty */
    char *overlay_path;   /* absolute */
    gint64 created;
};

/* Free functions accept NULL. */
OV_PUBLIC void ov_generation_info_free(struct ov_generation_info *info);
OV_PUBLIC void ov_image_info_free(struct ov_image_info *info);
OV_PUBLIC void ov_client_info_free(struct ov_client_info *info);

/* Open a store. With create, an absent or empty directory is initialised.
 * Fails with OV_ERROR_NOT_FOUND if dir is missing and create is false.
 * Caller frees with ov_store_close. */
OV_PUBLIC struct ov_store *ov_store_open(const char *dir, bool create, GError **error);
OV_PUBLIC void ov_store_close(struct ov_store *store);
OV_PUBLIC const char *ov_store_get_dir(struct ov_store *store);

/* Opens a base for a generation. Return a new reference or NULL + error. */
typedef struct ov_base *(*ov_store_base_opener)(const struct ov_image_info *image,
                                                const struct ov_generation_info *gen,
                                                void *user_data, GError **error);
OV_PUBLIC void ov_store_set_base_opener(struct ov_store *store, ov_store_base_opener fn,
                                        void *user_data, GDestroyNotify destroy);

/* Names: images and clients are [A-Za-z0-9][A-Za-z0-9._-]{0,62}. */
OV_PUBLIC bool ov_store_name_valid(const char *name);

/* --- images --- */

/* Generation 1 from a raw file: reflink (FICLONE) when the filesystem allows,
 * copy_file_range otherwise. size is taken from the file. */
OV_PUBLIC bool ov_store_image_create_from_file(struct ov_store *store, const char *name,
                                               const char *raw_path, GError **error);
/* Generation 1 as an empty (all-zero, sparse) disk of size bytes
 * (a multiple of 512, > 0). */
OV_PUBLIC bool ov_store_image_create_empty(struct ov_store *store, const char *name,
                                           uint64_t size, GError **error);
/* Either of the two above in one atomic step with the image's settings:
 * from raw_path, or (raw_path NULL) an empty disk of size bytes. */
OV_PUBLIC bool ov_store_image_create(struct ov_store *store, const char *name,
                                     const char *raw_path, uint64_t size, bool auto_enroll,
                                     GError **error);
/* Caller frees with ov_image_info_free. */
OV_PUBLIC struct ov_image_info *ov_store_image_get(struct ov_store *store, const char *name,
                                                   GError **error);
/* Array of struct ov_image_info * (free func set), sorted by name. */
OV_PUBLIC GPtrArray *ov_store_image_list(struct ov_store *store, GError **error);
OV_PUBLIC bool ov_store_image_set_auto_enroll(struct ov_store *store, const char *name,
                                              bool enabled, GError **error);
/* Removes an image with no clients (OV_ERROR_EXISTS-like refusal otherwise). */
OV_PUBLIC bool ov_store_image_remove(struct ov_store *store, const char *name, GError **error);
/* Open the base of one generation through the base opener. */
OV_PUBLIC struct ov_base *ov_store_open_base(struct ov_store *store, const char *image,
                                             uint32_t generation, GError **error);

/* --- clients --- */

/* Add a client on the image's head generation with an empty overlay. iqns and
 * macs may be NULL. An IQN or MAC may belong to one client only. */
OV_PUBLIC bool ov_store_client_add(struct ov_store *store, const char *name, const char *image,
                                   const char *const *iqns, const char *const *macs,
                                   GError **error);
/* Refused with OV_ERROR_LOCKED while the overlay is held by a writer. */
OV_PUBLIC bool ov_store_client_remove(struct ov_store *store, const char *name, GError **error);
OV_PUBLIC struct ov_client_info *ov_store_client_get(struct ov_store *store, const char *name,
                                                     GError **error);
/* NULL with OV_ERROR_NOT_FOUND when no client has that initiator name. */
OV_PUBLIC struct ov_client_info *ov_store_client_find_by_iqn(struct ov_store *store,
                                                             const char *iqn, GError **error);
OV_PUBLIC GPtrArray *ov_store_client_list(struct ov_store *store, GError **error);

/* Whether a writer (ovgated serving the client) holds the client's overlay.
 * Only tests the lock (F_OFD_GETLK), never takes it, so it cannot get in
 * the way of the daemon attaching the client at the same moment. */
OV_PUBLIC bool ov_store_client_connected(struct ov_store *store, const char *name,
                                         bool *connected, GError **error);

/* Open the client's overlay (on its recorded generation) with the given
 * ov_open_flags. Caller closes with ov_overlay_close. */
OV_PUBLIC struct ov_overlay *ov_store_client_open_overlay(struct ov_store *store,
                                                          const char *name, unsigned flags,
                                                          GError **error);

/* Reset: replace the client's overlay with an empty one on the image's head
 * generation (or on its current generation when keep_generation). Refused
 * with OV_ERROR_LOCKED while a writer holds the overlay. Atomic. */
OV_PUBLIC bool ov_store_client_reset(struct ov_store *store, const char *name,
                                     bool keep_generation, GError **error);

/* Commit: publish base + the client's overlay as a new generation of its
 * image (the new head), then move the client onto it with an empty overlay.
 * Other clients are untouched. If ov is non-NULL it is the caller's open
 * (locked) overlay of that client, already quiesced and flushed — the daemon's
 * online path; otherwise the store opens and locks the overlay itself.
 * On success *new_generation is set. */
OV_PUBLIC bool ov_store_client_commit(struct ov_store *store, const char *name,
                                      struct ov_overlay *ov, uint32_t *new_generation,
                                      GError **error);

/* Check (and with repair, fix) a client's overlay; see ov_overlay_check. */
OV_PUBLIC bool ov_store_client_check(struct ov_store *store, const char *name, bool repair,
                                     GString *report, bool *clean, GError **error);

/* Remove generations that are not an image head and on which no overlay
 * sits. Appends one line per removed generation to report. */
OV_PUBLIC bool ov_store_gc(struct ov_store *store, GString *report, GError **error);

/* Path of the daemon's control socket inside the store (caller frees). */
OV_PUBLIC char *ov_store_control_socket_path(struct ov_store *store);

#ifdef __cplusplus
}
#endif
