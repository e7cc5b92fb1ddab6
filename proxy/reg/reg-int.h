/* reg-int.h — the registry's private state, shared by reg.c (table, attach,
 * kick, status) and reg-ops.c (store lookups, reset/commit, rescan, bases).
 *
 * A disk (one client's read-write disk, or one read-only image generation)
 * moves through these states, all under reg->lock:
 *
 *     (absent) --attach--> OPENING --opened--> OPEN --last detach--> CLOSING --> (absent)
 *        |                    \--failed-------------------------------------> (absent)
 *        \--offline reset/commit--> BUSY --done--> (absent)
 *
 * OPENING, CLOSING and BUSY are transient: the work (opening or closing the
 * overlay, or the store operation) runs without the lock, and anyone who
 * meets the disk in such a state waits on reg->changed. An OPEN disk may
 * additionally have op_running set while an online reset/commit has it
 * frozen; a second operation then waits.
 */
#pragma once

#include <pthread.h>

#include "reg.h"

enum reg_disk_state {
    REG_DISK_OPENING,
    REG_DISK_OPEN,
    REG_DISK_CLOSING,
    REG_DISK_BUSY,
};

struct reg_disk {
    char *key;    /* client name, or "@IMAGE:GEN" for an image view */
    char *client; /* NULL for image views */
    char *image;
    uint32_t generation; /* updated on swap */
    enum reg_disk_state state;
    bool op_running;
    struct view *view;
    struct sdev_lu *lu;
    GPtrArray *attaches; /* struct reg_attach *, not owned */
};

struct reg_attach {
    struct reg *reg;
    struct reg_disk *disk;
    enum reg_protocol protocol;
    char *peer;
    char *initiator;
    reg_kick_fn kick;
    void *kick_data;
    gint64 since;
    int kicking;     /* kick callbacks in progress; detach waits for 0 */
    uint64_t serial; /* unique per attach: a kicked session is recognised by it */
};

/* The base cache: one ov_base per generation, shared by every view. Owned by
 * the store (passed as the base opener's user_data with its destroy). */
struct reg_bases {
    pthread_mutex_t lock;
    GHashTable *cache; /* "IMAGE:GEN" -> struct ov_base * (one reference) */
};

struct reg {
    pthread_mutex_t lock;
    pthread_cond_t changed; /* on CLOCK_MONOTONIC, like g_get_monotonic_time() */
    struct ov_store *store;
    struct cfg *cfg;
    GHashTable *disks; /* key -> struct reg_disk * */
    struct reg_bases *bases;
    pthread_mutex_t enroll_lock; /* serialises auto-enrolment */
    uint64_t next_serial;
};

/* reg-ops.c */
struct reg_bases *reg_bases_new(void);
void reg_bases_free(struct reg_bases *bases);
struct ov_base *reg_bases_open(const struct ov_image_info *image,
                               const struct ov_generation_info *gen, void *user_data,
                               GError **error);
/* Drop cached bases nobody else references. */
void reg_bases_prune(struct reg_bases *bases);

/* Locks are pthread ones, not GMutex/GCond: GLib implements those on raw
 * futexes, which ThreadSanitizer cannot see (docs/concurrency.md). */
void reg_lock(struct reg *reg);
void reg_unlock(struct reg *reg);
void reg_broadcast(struct reg *reg);
void reg_wait(struct reg *reg);
/* Wait until deadline (g_get_monotonic_time() scale); false on timeout. */
bool reg_wait_until(struct reg *reg, gint64 deadline);

/* reg.c, for reg-ops.c; all with reg->lock held unless said otherwise. */
void reg_wait_stable(struct reg *reg, const char *key);
void reg_disk_remove(struct reg *reg, struct reg_disk *disk);
struct reg_disk *reg_disk_new(const char *key, const char *client, const char *image,
                              enum reg_disk_state state);
/* Kick every attach of disk; called and returns with reg->lock held (drops
 * it while the callbacks run). Returns how many were kicked; their serials
 * are appended to kicked (if not NULL). */
int reg_disk_kick_locked(struct reg *reg, struct reg_disk *disk, const char *reason,
                         GArray *kicked);
/* Map the store error of a lookup by name: OV_ERROR_NOT_FOUND and
 * OV_ERROR_INVALID (a name that cannot exist) become unknown_code, anything
 * else REG_ERROR_FAILED, logged at warning (rate-limited). The message is
 * fmt's text, ": ", src's message. Takes ownership of src. */
void reg_lookup_error(GError **dest, GError *src, int unknown_code, const char *fmt, ...)
    G_GNUC_PRINTF(4, 5);
/* Map a store error to a registry error. Takes ownership of src. */
void reg_propagate_store_error(GError **dest, GError *src, const char *what);
