/* reg.c — the client registry's table of open disks: attach, detach, kick
 * and status (reg.h; states in reg-int.h). Store lookups, online
 * reset/commit and the base cache are in reg-ops.c.
 *
 * Locking: reg->lock guards the disk table and every disk's state and
 * attach list. It is never held across disk I/O (opening or closing an
 * overlay, store calls) or kick callbacks; the transient disk states make
 * others wait on reg->changed instead.
 */
#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "reg-int.h"

GQuark
reg_error_quark(void)
{
    return g_quark_from_static_string("ovgate-reg-error-quark");
}

void
reg_lock(struct reg *reg)
{
    pthread_mutex_lock(&reg->lock);
}

void
reg_unlock(struct reg *reg)
{
    pthread_mutex_unlock(&reg->lock);
}

void
reg_broadcast(struct reg *reg)
{
    pthread_cond_broadcast(&reg->changed);
}

void
reg_wait(struct reg *reg)
{
    pthread_cond_wait(&reg->changed, &reg->lock);
}

bool
reg_wait_until(struct reg *reg, gint64 deadline)
{
    struct timespec ts = {
        .tv_sec = deadline / G_USEC_PER_SEC,
        .tv_nsec = (deadline % G_USEC_PER_SEC) * 1000,
    };

    /* g_get_monotonic_time() is CLOCK_MONOTONIC in microseconds on Linux,
     * the clock reg->changed was created with. */
    return pthread_cond_timedwait(&reg->changed, &reg->lock, &ts) != ETIMEDOUT;
}

struct reg *
reg_new(struct ov_store *store, struct cfg *cfg)
{
    struct reg *reg = g_new0(struct reg, 1);

    pthread_condattr_t attr;

    pthread_mutex_init(&reg->lock, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&reg->changed, &attr);
    pthread_condattr_destroy(&attr);
    pthread_mutex_init(&reg->enroll_lock, NULL);
    reg->store = store;
    reg->cfg = cfg_ref(cfg);
    reg->disks = g_hash_table_new(g_str_hash, g_str_equal);
    reg->bases = reg_bases_new();
    ov_store_set_base_opener(store, reg_bases_open, reg->bases, (GDestroyNotify)reg_bases_free);
    return reg;
}

static void
reg_disk_free(struct reg_disk *disk)
{
    g_free(disk->key);
    g_free(disk->client);
    g_free(disk->image);
    g_ptr_array_unref(disk->attaches);
    g_free(disk);
}

void
reg_free(struct reg *reg)
{
    GHashTableIter it;
    gpointer value;

    if (reg == NULL)
        return;
    /* Front ends have stopped, so every disk is OPEN with no attach left
     * only if someone leaked one; close them anyway (final flush). */
    g_hash_table_iter_init(&it, reg->disks);
    while (g_hash_table_iter_next(&it, NULL, &value)) {
        struct reg_disk *disk = value;
        g_warning("disk %s still had %u session(s) at exit", disk->key, disk->attaches->len);
        sdev_lu_unref(disk->lu);
        view_unref(disk->view);
        reg_disk_free(disk);
    }
    g_hash_table_unref(reg->disks);
    cfg_unref(reg->cfg);
    pthread_mutex_destroy(&reg->lock);
    pthread_cond_destroy(&reg->changed);
    pthread_mutex_destroy(&reg->enroll_lock);
    g_free(reg);
}

void
reg_set_cfg(struct reg *reg, struct cfg *cfg)
{
    struct cfg *old;

    cfg_ref(cfg);
    reg_lock(reg);
    old = reg->cfg;
    reg->cfg = cfg;
    reg_unlock(reg);
    cfg_unref(old);
}

struct cfg *
reg_get_cfg(struct reg *reg)
{
    struct cfg *cfg;

    reg_lock(reg);
    cfg = cfg_ref(reg->cfg);
    reg_unlock(reg);
    return cfg;
}

struct ov_store *
reg_get_store(struct reg *reg)
{
    return reg->store;
}

struct reg_disk *
reg_disk_new(const char *key, const char *client, const char *image, enum reg_disk_state state)
{
    struct reg_disk *disk = g_new0(struct reg_disk, 1);

    disk->key = g_strdup(key);
    disk->client = g_strdup(client);
    disk->image = g_strdup(image);
    disk->state = state;
    disk->attaches = g_ptr_array_new();
    return disk;
}

void
reg_disk_remove(struct reg *reg, struct reg_disk *disk)
{
    g_hash_table_remove(reg->disks, disk->key);
    reg_disk_free(disk);
    reg_broadcast(reg);
}

/* Wait until the disk under key is absent or OPEN without an operation. */
void
reg_wait_stable(struct reg *reg, const char *key)
{
    for (;;) {
        struct reg_disk *disk = g_hash_table_lookup(reg->disks, key);
        if (disk == NULL || (disk->state == REG_DISK_OPEN && !disk->op_running))
            return;
        reg_wait(reg);
    }
}

void
reg_propagate_store_error(GError **dest, GError *src, const char *what)
{
    int code = REG_ERROR_FAILED;

    if (src->domain == OV_ERROR && src->code == OV_ERROR_LOCKED)
        code = REG_ERROR_BUSY;
    else if (src->domain == OV_ERROR && src->code == OV_ERROR_NOT_FOUND)
        code = REG_ERROR_UNKNOWN_INITIATOR;
    g_set_error(dest, REG_ERROR, code, "%s: %s", what, src->message);
    g_error_free(src);
}

void
reg_lookup_error(GError **dest, GError *src, int unknown_code, const char *fmt, ...)
{
    g_autofree char *what = NULL;
    va_list ap;

    va_start(ap, fmt);
    what = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    if (g_error_matches(src, OV_ERROR, OV_ERROR_NOT_FOUND) ||
        g_error_matches(src, OV_ERROR, OV_ERROR_INVALID)) {
        g_set_error(dest, REG_ERROR, unknown_code, "%s: %s", what, src->message);
    } else {
        /* Scale finding S1: a store the daemon cannot read right now
         * (EMFILE, EIO, ...) says nothing about whether the name exists. */
        LOG_RATELIMITED(G_LOG_LEVEL_WARNING, 10, 5, "store lookup failed: %s: %s", what,
                        src->message);
        g_set_error(dest, REG_ERROR, REG_ERROR_FAILED, "%s: %s", what, src->message);
    }
    g_error_free(src);
}

bool
reg_error_is_out_of_resources(const GError *error)
{
    static const int shortages[] = {EMFILE, ENFILE, ENOMEM, ENOBUFS};

    if (!g_error_matches(error, REG_ERROR, REG_ERROR_FAILED))
        return false;
    /* The store's GErrors carry the errno only as g_strerror() text (theirs
     * and GLib's file errors alike), so that text is what we look for. */
    for (size_t i = 0; i < G_N_ELEMENTS(shortages); i++) {
        if (strstr(error->message, g_strerror(shortages[i])) != NULL)
            return true;
    }
    return false;
}

/* --- open / close a disk --- */

static struct sdev_lu *
reg_lu_new(struct view *view)
{
    struct sdev_lu_params p = {0};
    uint8_t id[16];
    char serial[33];

    view_get_disk_id(view, id);
    for (int i = 0; i < 16; i++)
        g_snprintf(serial + 2 * i, 3, "%02x", id[i]);
    p.vendor = "OVGATE";
    p.product = "ovgate disk";
    p.serial = serial;
    p.block_size = 512;
    return sdev_lu_new(view, &p);
}

/* Opening runs without the lock; the disk sits in OPENING meanwhile. */
static bool
reg_disk_open(struct reg *reg, struct reg_disk *disk, GError **error)
{
    GError *local = NULL;
    struct view *view;

    if (disk->client != NULL) {
        struct ov_overlay *ov = ov_store_client_open_overlay(reg->store, disk->client, 0, &local);
        if (ov == NULL) {
            reg_propagate_store_error(error, local, disk->client);
            return false;
        }
        view = view_new_overlay(ov, disk->client, disk->image);
    } else {
        struct ov_base *base =
            ov_store_open_base(reg->store, disk->image, disk->generation, &local);
        if (base == NULL) {
            reg_propagate_store_error(error, local, disk->image);
            return false;
        }
        view = view_new_base(base, disk->image, disk->generation);
        ov_base_unref(base);
    }
    disk->view = view;
    disk->lu = reg_lu_new(view);
    disk->generation = view_get_generation(view);
    return true;
}

static struct reg_attach *
reg_attach_new(struct reg *reg, struct reg_disk *disk, const struct reg_attach_params *params)
{
    struct reg_attach *a = g_new0(struct reg_attach, 1);

    a->reg = reg;
    a->disk = disk;
    a->protocol = params->protocol;
    a->peer = g_strdup(params->peer);
    a->initiator = g_strdup(params->initiator);
    a->kick = params->kick;
    a->kick_data = params->kick_data;
    a->since = g_get_real_time() / G_USEC_PER_SEC;
    a->serial = ++reg->next_serial;
    g_ptr_array_add(disk->attaches, a);
    return a;
}

/* Attach to the disk under key, opening it first if needed. */
static struct reg_attach *
reg_attach_disk(struct reg *reg, const char *key, const char *client, const char *image,
                uint32_t generation, const struct reg_attach_params *params, GError **error)
{
    struct reg_disk *disk;
    struct reg_attach *a;

    reg_lock(reg);
    reg_wait_stable(reg, key);
    disk = g_hash_table_lookup(reg->disks, key);
    if (disk != NULL) {
        /* DESIGN rule 1: one writer per overlay. Sessions of one protocol
         * share it (iSCSI reinstatement and NBD replace-stale are decided by
         * the front ends); the other protocol is refused meanwhile. */
        if (client != NULL && disk->attaches->len > 0) {
            struct reg_attach *first = g_ptr_array_index(disk->attaches, 0);
            if (first->protocol != params->protocol) {
                g_set_error(error, REG_ERROR, REG_ERROR_BUSY, "client %s is in use over %s from %s",
                            client, first->protocol == REG_PROTO_NBD ? "NBD" : "iSCSI",
                            first->peer);
                reg_unlock(reg);
                return NULL;
            }
        }
        a = reg_attach_new(reg, disk, params);
        reg_unlock(reg);
        return a;
    }
    disk = reg_disk_new(key, client, image, REG_DISK_OPENING);
    disk->generation = generation;
    g_hash_table_insert(reg->disks, disk->key, disk);
    reg_unlock(reg);

    if (!reg_disk_open(reg, disk, error)) {
        reg_lock(reg);
        reg_disk_remove(reg, disk);
        reg_unlock(reg);
        return NULL;
    }
    reg_lock(reg);
    disk->state = REG_DISK_OPEN;
    a = reg_attach_new(reg, disk, params);
    reg_broadcast(reg);
    reg_unlock(reg);
    g_info("opened disk %s (image %s generation %u) for %s", key, image, disk->generation,
           params->peer ? params->peer : "?");
    return a;
}

struct reg_attach *
reg_attach_client(struct reg *reg, const char *client, const struct reg_attach_params *params,
                  GError **error)
{
    GError *local = NULL;
    struct ov_client_info *info;
    struct reg_attach *a;

    /* Each attach re-reads the store, so ovctl edits apply without a restart. */
    info = ov_store_client_get(reg->store, client, &local);
    if (info == NULL) {
        reg_lookup_error(error, local, REG_ERROR_UNKNOWN_INITIATOR, "client %s", client);
        return NULL;
    }
    a = reg_attach_disk(reg, client, client, info->image, info->generation, params, error);
    ov_client_info_free(info);
    return a;
}

struct reg_attach *
reg_attach_image(struct reg *reg, const char *image, const struct reg_attach_params *params,
                 GError **error)
{
    GError *local = NULL;
    struct ov_image_info *info = ov_store_image_get(reg->store, image, &local);
    g_autofree char *key = NULL;
    struct reg_attach *a;

    if (info == NULL) {
        reg_lookup_error(error, local, REG_ERROR_UNKNOWN_TARGET, "image %s", image);
        return NULL;
    }
    key = g_strdup_printf("@%s:%u", info->name, info->head);
    a = reg_attach_disk(reg, key, NULL, info->name, info->head, params, error);
    ov_image_info_free(info);
    return a;
}

void
reg_detach(struct reg_attach *a)
{
    struct reg *reg;
    struct reg_disk *disk;
    struct view *view = NULL;
    struct sdev_lu *lu = NULL;

    if (a == NULL)
        return;
    reg = a->reg;
    disk = a->disk;
    reg_lock(reg);
    while (a->kicking > 0)
        reg_wait(reg);
    g_ptr_array_remove(disk->attaches, a);
    reg_broadcast(reg); /* a kick may be waiting for this session */
    /* An operation in progress holds its own references and closes nothing. */
    while (disk->attaches->len == 0 && disk->op_running)
        reg_wait(reg);
    if (disk->attaches->len == 0 && disk->state == REG_DISK_OPEN) {
        disk->state = REG_DISK_CLOSING;
        view = disk->view;
        lu = disk->lu;
    }
    reg_unlock(reg);

    if (view != NULL) {
        /* The last reference of the view closes the overlay: final flush. */
        sdev_lu_unref(lu);
        view_unref(view);
        g_info("closed disk %s", disk->key);
        reg_lock(reg);
        reg_disk_remove(reg, disk);
        reg_unlock(reg);
    }
    g_free(a->peer);
    g_free(a->initiator);
    g_free(a);
}

struct view *
reg_attach_get_view(struct reg_attach *a)
{
    return a->disk->view;
}

struct sdev_lu *
reg_attach_get_lu(struct reg_attach *a)
{
    return a->disk->lu;
}

const char *
reg_attach_get_client(struct reg_attach *a)
{
    return a->disk->client;
}

/* --- kick --- */

int
reg_disk_kick_locked(struct reg *reg, struct reg_disk *disk, const char *reason, GArray *kicked)
{
    g_autoptr(GPtrArray) list = g_ptr_array_new();
    int n = 0;

    for (guint i = 0; i < disk->attaches->len; i++) {
        struct reg_attach *a = g_ptr_array_index(disk->attaches, i);
        if (a->kick != NULL) {
            a->kicking++;
            g_ptr_array_add(list, a);
            if (kicked != NULL)
                g_array_append_val(kicked, a->serial);
        }
    }
    reg_unlock(reg);
    for (guint i = 0; i < list->len; i++) {
        struct reg_attach *a = g_ptr_array_index(list, i);
        g_message("ending session of %s from %s: %s", disk->key, a->peer ? a->peer : "?", reason);
        a->kick(a->kick_data, reason);
        n++;
    }
    reg_lock(reg);
    for (guint i = 0; i < list->len; i++) {
        struct reg_attach *a = g_ptr_array_index(list, i);
        a->kicking--;
    }
    reg_broadcast(reg);
    return n;
}

/* Whether the kick is complete: every kicked session has detached, and the
 * disk is closed, or open again only for sessions that started since (an
 * initiator that logs straight back in). */
static bool
reg_kick_done(struct reg *reg, const char *client, GArray *kicked)
{
    struct reg_disk *disk = g_hash_table_lookup(reg->disks, client);

    if (disk == NULL)
        return true;
    if (disk->state != REG_DISK_OPEN)
        return false;
    for (guint i = 0; i < disk->attaches->len; i++) {
        struct reg_attach *a = g_ptr_array_index(disk->attaches, i);
        for (guint k = 0; k < kicked->len; k++)
            if (a->serial == g_array_index(kicked, uint64_t, k))
                return false;
    }
    return true;
}

int
reg_kick_client(struct reg *reg, const char *client, const char *reason, bool wait, int timeout_ms)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
    g_autoptr(GArray) kicked = g_array_new(FALSE, FALSE, sizeof(uint64_t));
    struct reg_disk *disk;
    int n = 0;

    reg_lock(reg);
    /* A session in the middle of its attach (disk OPENING) is a session
     * too: wait until it is attached and kick it with the others, or the
     * kick would miss it and it would run on after "kick" / "reset --force".
     * Opening is short (an overlay open); an online reset/commit is not
     * waited for (op_running), its sessions stay attached and are kicked. */
    while ((disk = g_hash_table_lookup(reg->disks, client)) != NULL &&
           disk->state == REG_DISK_OPENING)
        reg_wait(reg);
    if (disk != NULL && disk->state == REG_DISK_OPEN)
        n = reg_disk_kick_locked(reg, disk, reason, kicked);
    /* The disk pointer may be gone now; look it up again while waiting. */
    while (wait && n > 0 && !reg_kick_done(reg, client, kicked)) {
        if (!reg_wait_until(reg, deadline)) {
            g_warning("sessions of %s did not end within %d ms", client, timeout_ms);
            break;
        }
    }
    reg_unlock(reg);
    return n;
}

/* --- status --- */

static void
reg_session_status_free(struct reg_session_status *s)
{
    g_free(s->client);
    g_free(s->image);
    g_free(s->peer);
    g_free(s->initiator);
    g_free(s);
}

GPtrArray *
reg_get_status(struct reg *reg)
{
    GPtrArray *out = g_ptr_array_new_with_free_func((GDestroyNotify)reg_session_status_free);
    GHashTableIter it;
    gpointer value;

    reg_lock(reg);
    g_hash_table_iter_init(&it, reg->disks);
    while (g_hash_table_iter_next(&it, NULL, &value)) {
        struct reg_disk *disk = value;
        if (disk->state != REG_DISK_OPEN)
            continue;
        for (guint i = 0; i < disk->attaches->len; i++) {
            struct reg_attach *a = g_ptr_array_index(disk->attaches, i);
            struct reg_session_status *s = g_new0(struct reg_session_status, 1);
            s->client = g_strdup(disk->client);
            s->image = g_strdup(disk->image);
            s->generation = disk->generation;
            s->protocol = a->protocol;
            s->peer = g_strdup(a->peer);
            s->initiator = g_strdup(a->initiator);
            s->since = a->since;
            /* Counters are per disk (all its sessions together). */
            view_get_stats(disk->view, &s->stats);
            g_ptr_array_add(out, s);
        }
    }
    reg_unlock(reg);
    return out;
}
