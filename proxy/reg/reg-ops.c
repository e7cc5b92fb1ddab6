/* reg-ops.c — the registry's store side: target names, initiator lookup and
 * auto-enrolment, online reset and commit, rescan, and the base cache that
 * gives every view of one generation the same struct ov_base.
 *
 * Online reset / commit (DESIGN rules 3 and 4): the client's view is frozen
 * (in-flight I/O drained, overlay flushed, new I/O held back), the store
 * replaces the overlay file under its lock, the new overlay is swapped into
 * the same view and the view is thawed. Sessions keep running. A commit is
 * invisible to the client (the new generation is exactly base + overlay); a
 * reset changes the disk under it, so every nexus gets a unit attention.
 */
#include <errno.h>
#include <string.h>

#include "base.h"
#include "log.h"
#include "reg-int.h"

/* SPC-4 Annex D: 28h/00h NOT READY TO READY CHANGE, MEDIUM MAY HAVE CHANGED;
 * 2Ah/09h CAPACITY DATA HAS CHANGED. */
#define REG_ASC_MEDIUM_CHANGED 0x28
#define REG_ASCQ_MEDIUM_CHANGED 0x00
#define REG_ASC_CAPACITY_CHANGED 0x2a
#define REG_ASCQ_CAPACITY_CHANGED 0x09

/* --- base cache --- */

struct reg_bases *
reg_bases_new(void)
{
    struct reg_bases *b = g_new0(struct reg_bases, 1);

    pthread_mutex_init(&b->lock, NULL);
    b->cache =
        g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify)ov_base_unref);
    return b;
}

void
reg_bases_free(struct reg_bases *b)
{
    if (b == NULL)
        return;
    g_hash_table_unref(b->cache);
    pthread_mutex_destroy(&b->lock);
    g_free(b);
}

struct ov_base *
reg_bases_open(const struct ov_image_info *image, const struct ov_generation_info *gen,
               void *user_data, GError **error)
{
    struct reg_bases *b = user_data;
    g_autofree char *key = g_strdup_printf("%s:%u", image->name, gen->generation);
    struct ov_base *base;
    struct ov_base_id id = {0};

    pthread_mutex_lock(&b->lock);
    base = g_hash_table_lookup(b->cache, key);
    /* An image removed and created again reuses generation numbers: only a
     * base of the very same generation (UUID) may be shared. */
    if (base != NULL && base->has_id && memcmp(base->id.uuid, gen->uuid, sizeof(id.uuid)) == 0) {
        ov_base_ref(base);
        pthread_mutex_unlock(&b->lock);
        return base;
    }
    base = base_file_open(gen->path, error);
    if (base == NULL) {
        pthread_mutex_unlock(&b->lock);
        return NULL;
    }
    g_strlcpy(id.image, image->name, sizeof(id.image));
    id.generation = gen->generation;
    id.size = gen->size;
    memcpy(id.uuid, gen->uuid, sizeof(id.uuid));
    ov_base_set_id(base, &id);
    g_hash_table_replace(b->cache, g_steal_pointer(&key), ov_base_ref(base));
    pthread_mutex_unlock(&b->lock);
    return base;
}

static gboolean
reg_base_unused(gpointer key, gpointer value, gpointer data)
{
    struct ov_base *base = value;

    return g_atomic_int_get(&base->refcount) == 1;
}

void
reg_bases_prune(struct reg_bases *b)
{
    pthread_mutex_lock(&b->lock);
    g_hash_table_foreach_remove(b->cache, reg_base_unused, NULL);
    pthread_mutex_unlock(&b->lock);
}

/* --- names --- */

char *
reg_target_name(struct reg *reg, const char *image)
{
    struct cfg *cfg = reg_get_cfg(reg);
    char *name = g_strdup_printf("%s:%s", cfg->iqn_prefix, image);

    cfg_unref(cfg);
    return name;
}

char *
reg_image_from_target_full(struct reg *reg, const char *target_name, GError **error)
{
    struct cfg *cfg = reg_get_cfg(reg);
    size_t plen = strlen(cfg->iqn_prefix);
    struct ov_image_info *info;
    GError *local = NULL;
    char *image = NULL;

    /* RFC 7143 §4.2.7.1: iSCSI names compare case-insensitively after
     * stringprep folding; the prefix is lower case by construction. */
    if (g_ascii_strncasecmp(target_name, cfg->iqn_prefix, plen) != 0 || target_name[plen] != ':') {
        g_set_error(error, REG_ERROR, REG_ERROR_UNKNOWN_TARGET,
                    "%s is not a target name of this gateway (%s:IMAGE)", target_name,
                    cfg->iqn_prefix);
        cfg_unref(cfg);
        return NULL;
    }
    cfg_unref(cfg);
    info = ov_store_image_get(reg->store, target_name + plen + 1, &local);
    if (info == NULL) {
        reg_lookup_error(error, local, REG_ERROR_UNKNOWN_TARGET, "target %s", target_name);
        return NULL;
    }
    image = g_strdup(info->name);
    ov_image_info_free(info);
    return image;
}

char *
reg_image_from_target(struct reg *reg, const char *target_name)
{
    return reg_image_from_target_full(reg, target_name, NULL);
}

char **
reg_list_images(struct reg *reg)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GPtrArray) list = ov_store_image_list(reg->store, &err);
    GStrvBuilder *b = g_strv_builder_new();
    char **out;

    if (list == NULL)
        g_warning("listing images: %s", err->message);
    for (guint i = 0; list != NULL && i < list->len; i++) {
        const struct ov_image_info *info = g_ptr_array_index(list, i);
        g_strv_builder_add(b, info->name);
    }
    out = g_strv_builder_end(b);
    g_strv_builder_unref(b);
    return out;
}

/* --- initiators --- */

static bool
reg_auto_enroll_allowed(struct reg *reg, const struct ov_image_info *info)
{
    struct cfg *cfg = reg_get_cfg(reg);
    const struct cfg_image *ci = cfg_get_image(cfg, info->name);
    bool allowed = info->auto_enroll;

    if (ci != NULL && ci->auto_enroll >= 0)
        allowed = ci->auto_enroll != 0; /* the config file overrides the store */
    cfg_unref(cfg);
    return allowed;
}

/* A client name for an auto-enrolled initiator: the IQN with characters a
 * store name cannot hold replaced by '_', cut to fit, and made unique with a
 * hash of the IQN if needed. */
static char *
reg_enroll_name(struct reg *reg, const char *iqn, GError **error)
{
    g_autofree char *hash = g_compute_checksum_for_string(G_CHECKSUM_SHA256, iqn, -1);
    GString *s = g_string_new(NULL);
    struct ov_client_info *other;
    GError *local = NULL;
    const char *p;

    for (p = iqn; *p && s->len < OV_CLIENT_NAME_MAX; p++) {
        char c = *p;
        bool ok = g_ascii_isalnum(c) || ((c == '.' || c == '_' || c == '-') && s->len > 0);
        g_string_append_c(s, ok ? c : '_');
    }
    if (s->len == 0)
        g_string_append_c(s, 'c');
    else if (!g_ascii_isalnum(s->str[0]))
        s->str[0] = 'c';
    other = ov_store_client_get(reg->store, s->str, &local);
    if (other == NULL && !g_error_matches(local, OV_ERROR, OV_ERROR_NOT_FOUND)) {
        /* Cannot tell whether the name is taken: do not guess. */
        reg_lookup_error(error, local, REG_ERROR_FAILED, "auto-enrolment of %s", iqn);
        g_string_free(s, TRUE);
        return NULL;
    }
    g_clear_error(&local);
    if (*p != '\0' || other != NULL) {
        g_string_truncate(s, OV_CLIENT_NAME_MAX - 9);
        g_string_append_printf(s, "-%.8s", hash);
    }
    ov_client_info_free(other);
    return g_string_free(s, FALSE);
}

static char *
reg_enroll(struct reg *reg, const char *image, const char *iqn, GError **error)
{
    const char *iqns[] = {iqn, NULL};
    struct ov_client_info *info;
    GError *local = NULL;
    char *name;

    pthread_mutex_lock(&reg->enroll_lock);
    /* Another login of the same initiator may have enrolled it meanwhile. */
    info = ov_store_client_find_by_iqn(reg->store, iqn, &local);
    if (info != NULL) {
        name = g_strdup(info->name);
        ov_client_info_free(info);
        pthread_mutex_unlock(&reg->enroll_lock);
        return name;
    }
    if (!g_error_matches(local, OV_ERROR, OV_ERROR_NOT_FOUND)) {
        pthread_mutex_unlock(&reg->enroll_lock);
        reg_lookup_error(error, local, REG_ERROR_FAILED, "auto-enrolment of %s", iqn);
        return NULL;
    }
    g_clear_error(&local);
    name = reg_enroll_name(reg, iqn, error);
    if (name == NULL) {
        pthread_mutex_unlock(&reg->enroll_lock);
        return NULL;
    }
    if (!ov_store_client_add(reg->store, name, image, iqns, NULL, &local)) {
        pthread_mutex_unlock(&reg->enroll_lock);
        reg_propagate_store_error(error, local, "auto-enrolment");
        g_free(name);
        return NULL;
    }
    pthread_mutex_unlock(&reg->enroll_lock);
    g_message("auto-enrolled initiator %s as client %s of image %s", iqn, name, image);
    return name;
}

char *
reg_resolve_initiator(struct reg *reg, const char *image, const char *initiator_name,
                      GError **error)
{
    GError *local = NULL;
    struct ov_client_info *client;
    struct ov_image_info *info;
    char *name = NULL;

    /* Front ends validate names, but this is the registry's own door: an
     * empty name would build an empty (unterminated) client name below. */
    if (initiator_name == NULL || initiator_name[0] == '\0' ||
        !g_utf8_validate(initiator_name, -1, NULL)) {
        g_set_error(error, REG_ERROR, REG_ERROR_UNKNOWN_INITIATOR,
                    "an initiator name must be non-empty UTF-8");
        return NULL;
    }
    client = ov_store_client_find_by_iqn(reg->store, initiator_name, &local);
    if (client != NULL) {
        if (!g_str_equal(client->image, image)) {
            g_set_error(error, REG_ERROR, REG_ERROR_UNKNOWN_INITIATOR,
                        "initiator %s is client %s of image %s, not of %s", initiator_name,
                        client->name, client->image, image);
        } else {
            name = g_strdup(client->name);
        }
        ov_client_info_free(client);
        return name;
    }
    if (!g_error_matches(local, OV_ERROR, OV_ERROR_NOT_FOUND)) {
        /* Scale finding S1: a store we cannot read right now must not make
         * a registered client "unknown", nor start an auto-enrolment. */
        reg_lookup_error(error, local, REG_ERROR_FAILED, "looking up initiator %s", initiator_name);
        return NULL;
    }
    g_clear_error(&local);
    info = ov_store_image_get(reg->store, image, &local);
    if (info == NULL) {
        reg_lookup_error(error, local, REG_ERROR_UNKNOWN_TARGET, "image %s", image);
        return NULL;
    }
    if (reg_auto_enroll_allowed(reg, info))
        name = reg_enroll(reg, info->name, initiator_name, error);
    else
        g_set_error(error, REG_ERROR, REG_ERROR_UNKNOWN_INITIATOR,
                    "initiator %s is not a client of image %s (and auto-enrolment is off)",
                    initiator_name, image);
    ov_image_info_free(info);
    return name;
}

bool
reg_initiator_may_access(struct reg *reg, const char *image, const char *initiator_name)
{
    struct ov_client_info *client;
    struct ov_image_info *info;
    GError *local = NULL;
    bool ok;

    client = ov_store_client_find_by_iqn(reg->store, initiator_name, &local);
    if (client != NULL) {
        ok = g_str_equal(client->image, image);
        ov_client_info_free(client);
        return ok;
    }
    if (!g_error_matches(local, OV_ERROR, OV_ERROR_NOT_FOUND)) {
        /* Unknown is the safe answer for a filter; the lookup logs why. */
        reg_lookup_error(NULL, local, REG_ERROR_FAILED, "looking up initiator %s", initiator_name);
        return false;
    }
    g_clear_error(&local);
    info = ov_store_image_get(reg->store, image, &local);
    if (info == NULL) {
        reg_lookup_error(NULL, local, REG_ERROR_UNKNOWN_TARGET, "image %s", image);
        return false;
    }
    ok = reg_auto_enroll_allowed(reg, info);
    ov_image_info_free(info);
    return ok;
}

/* --- reset / commit --- */

enum reg_op { REG_OP_RESET, REG_OP_COMMIT };

static bool
reg_store_op(struct reg *reg, enum reg_op op, const char *client, struct ov_overlay *ov,
             uint32_t *new_generation, GError **error)
{
    GError *local = NULL;
    bool ok;

    if (op == REG_OP_RESET)
        ok = ov_store_client_reset(reg->store, client, false, &local);
    else
        ok = ov_store_client_commit(reg->store, client, ov, new_generation, &local);
    if (!ok)
        reg_propagate_store_error(error, local, client);
    return ok;
}

/* Nobody attached: hold attaches back (BUSY) and let the store do it. */
static bool
reg_op_offline(struct reg *reg, enum reg_op op, const char *client, uint32_t *new_generation,
               GError **error)
{
    struct reg_disk *disk = reg_disk_new(client, client, NULL, REG_DISK_BUSY);
    bool ok;

    g_hash_table_insert(reg->disks, disk->key, disk);
    reg_unlock(reg);
    ok = reg_store_op(reg, op, client, NULL, new_generation, error);
    if (ok && op == REG_OP_RESET)
        g_message("client %s reset (not connected)", client);
    else if (ok)
        g_message("client %s committed as generation %u (not connected)", client, *new_generation);
    reg_lock(reg);
    reg_disk_remove(reg, disk);
    return ok;
}

/* Frozen: the store replaces the overlay, the view gets the new one. A
 * reset must close our overlay first (the store refuses a locked one); if it
 * then fails, the old overlay is reopened. */
static bool
reg_op_frozen(struct reg *reg, enum reg_op op, struct reg_disk *disk, uint32_t *new_generation,
              GError **error)
{
    const char *client = disk->client;
    struct ov_overlay *ov;
    GError *local = NULL;
    bool ok;

    if (op == REG_OP_COMMIT) {
        ok = reg_store_op(reg, op, client, view_get_overlay(disk->view), new_generation, error);
    } else {
        if (!ov_overlay_close(view_detach_overlay(disk->view), &local)) {
            /* Frozen already flushed it; a close error loses nothing more. */
            g_warning("closing %s before reset: %s", client, local->message);
            g_clear_error(&local);
        }
        ok = reg_store_op(reg, op, client, NULL, NULL, error);
    }
    if (!ok && op == REG_OP_COMMIT)
        return false; /* the view still has its overlay */
    ov = ov_store_client_open_overlay(reg->store, client, 0, &local);
    if (ov == NULL) {
        g_critical("client %s: cannot open its overlay after %s: %s; its I/O fails until "
                   "it reconnects",
                   client, op == REG_OP_RESET ? "reset" : "commit", local->message);
        if (op == REG_OP_COMMIT) {
            /* The store has moved the client onto the new generation and
             * replaced its overlay file: the overlay the view still holds
             * is an orphan, and a write into it would be lost at the next
             * open. Drop it (its content is in the new generation), so the
             * view fails I/O and the caller ends the sessions. */
            GError *cerr = NULL;
            if (!ov_overlay_close(view_detach_overlay(disk->view), &cerr)) {
                g_warning("closing the replaced overlay of %s: %s", client, cerr->message);
                g_error_free(cerr);
            }
            g_prefix_error(&local, "committed as generation %u, but ",
                           new_generation != NULL ? *new_generation : 0);
        }
        if (ok)
            reg_propagate_store_error(error, local, client);
        else
            g_error_free(local);
        return false;
    }
    view_swap_overlay(disk->view, ov, NULL);
    return ok;
}

static bool
reg_op_online(struct reg *reg, enum reg_op op, struct reg_disk *disk, uint32_t *new_generation,
              GError **error)
{
    struct view *view = view_ref(disk->view);
    struct sdev_lu *lu = sdev_lu_ref(disk->lu);
    uint64_t old_size = view_get_size(view);
    uint32_t old_gen = disk->generation;
    bool ok, broken = false;
    int rc;

    disk->op_running = true;
    reg_unlock(reg);
    rc = view_freeze(view);
    if (rc < 0) {
        view_thaw(view);
        g_set_error(error, REG_ERROR, REG_ERROR_FAILED, "%s: flush before %s failed: %s",
                    disk->client, op == REG_OP_RESET ? "reset" : "commit", g_strerror(-rc));
        ok = false;
    } else {
        ok = reg_op_frozen(reg, op, disk, new_generation, error);
        broken = view_get_overlay(view) == NULL;
        view_thaw(view);
    }
    if (ok && op == REG_OP_RESET) {
        bool resized = view_get_size(view) != old_size;
        sdev_lu_raise_ua_all(lu, resized ? REG_ASC_CAPACITY_CHANGED : REG_ASC_MEDIUM_CHANGED,
                             resized ? REG_ASCQ_CAPACITY_CHANGED : REG_ASCQ_MEDIUM_CHANGED);
    }
    reg_lock(reg);
    disk->generation = view_get_generation(view);
    if (ok)
        g_message("client %s %s online (generation %u -> %u)", disk->client,
                  op == REG_OP_RESET ? "reset" : "committed", old_gen, disk->generation);
    /* The view lost its overlay and could not get one back: end the
     * sessions, so that the disk closes and a new login opens it afresh. */
    if (broken)
        reg_disk_kick_locked(reg, disk, "its disk could not be reopened", NULL);
    /* Our references go before op_running is cleared: a last detach waiting
     * for the operation then drops the final reference itself, so the
     * overlay is closed (its lock released) before the disk leaves the table
     * and a new attach opens it again. Dropped after op_running, a fast
     * re-login found the old overlay still locked by us (BUSY). The disk
     * holds its own references while OPEN, so these are never the last and
     * close nothing under the lock. */
    sdev_lu_unref(lu);
    view_unref(view);
    /* Once op_running is clear a detach may free disk: no use after this. */
    disk->op_running = false;
    reg_broadcast(reg);
    return ok;
}

static bool
reg_client_op(struct reg *reg, enum reg_op op, const char *client, bool idle_only,
              uint32_t *new_generation, GError **error)
{
    struct reg_disk *disk;
    bool ok;

    if (!ov_store_name_valid(client)) {
        g_set_error(error, REG_ERROR, REG_ERROR_UNKNOWN_INITIATOR, "'%s' is not a client name",
                    client);
        return false;
    }
    reg_lock(reg);
    reg_wait_stable(reg, client);
    disk = g_hash_table_lookup(reg->disks, client);
    if (idle_only && disk != NULL && disk->attaches->len > 0) {
        struct reg_attach *a = g_ptr_array_index(disk->attaches, 0);
        g_set_error(error, REG_ERROR, REG_ERROR_BUSY,
                    "client %s has %u session(s) (from %s); end them first or use force", client,
                    disk->attaches->len, a->peer ? a->peer : "?");
        ok = false;
    } else if (disk == NULL)
        ok = reg_op_offline(reg, op, client, new_generation, error);
    else
        ok = reg_op_online(reg, op, disk, new_generation, error);
    reg_unlock(reg);
    return ok;
}

bool
reg_reset_client(struct reg *reg, const char *client, GError **error)
{
    return reg_client_op(reg, REG_OP_RESET, client, false, NULL, error);
}

bool
reg_reset_client_idle(struct reg *reg, const char *client, GError **error)
{
    return reg_client_op(reg, REG_OP_RESET, client, true, NULL, error);
}

bool
reg_commit_client(struct reg *reg, const char *client, uint32_t *new_generation, GError **error)
{
    uint32_t gen = 0;
    bool ok = reg_client_op(reg, REG_OP_COMMIT, client, false, &gen, error);

    if (ok && new_generation != NULL)
        *new_generation = gen;
    return ok;
}

/* --- rescan --- */

void
reg_rescan(struct reg *reg)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GPtrArray) clients = ov_store_client_list(reg->store, &err);
    g_autoptr(GHashTable) names = g_hash_table_new(g_str_hash, g_str_equal);
    g_autoptr(GPtrArray) gone = g_ptr_array_new_with_free_func(g_free);
    GHashTableIter it;
    gpointer value;

    if (clients == NULL) {
        /* A store we cannot read now ends nobody's session. */
        LOG_RATELIMITED(G_LOG_LEVEL_WARNING, 60, 1, "rescan: %s", err->message);
        return;
    }
    for (guint i = 0; i < clients->len; i++) {
        const struct ov_client_info *c = g_ptr_array_index(clients, i);
        g_hash_table_add(names, c->name);
    }
    reg_lock(reg);
    g_hash_table_iter_init(&it, reg->disks);
    while (g_hash_table_iter_next(&it, NULL, &value)) {
        struct reg_disk *disk = value;
        if (disk->client != NULL && disk->state == REG_DISK_OPEN &&
            !g_hash_table_contains(names, disk->client))
            g_ptr_array_add(gone, g_strdup(disk->client));
    }
    reg_unlock(reg);
    for (guint i = 0; i < gone->len; i++) {
        const char *name = g_ptr_array_index(gone, i);
        g_autoptr(GError) gerr = NULL;
        struct ov_client_info *again = ov_store_client_get(reg->store, name, &gerr);

        /* Ask once more by name: a listing taken while the store was
         * replacing the entry must not end a live client's session. */
        if (again != NULL || !g_error_matches(gerr, OV_ERROR, OV_ERROR_NOT_FOUND)) {
            ov_client_info_free(again);
            continue;
        }
        reg_kick_client(reg, name, "client removed from the store", false, 0);
    }
    reg_bases_prune(reg->bases);
}
