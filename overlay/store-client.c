/* store-client.c — clients and their overlays in the store: add, remove,
 * lookups, reset, check and gc (see store.h, docs/store.md).
 *
 * A client directory clients/NAME holds client.conf (image, initiator names,
 * MAC addresses, created) and overlay.ovl. Which generation a client sits on
 * is recorded only in the overlay's header (one source of truth), read with
 * ov_overlay_read_base_id.
 *
 * "Is the client connected?" is answered by the overlay lock: whoever serves
 * a client holds its overlay open as a writer (exclusive lock). Remove, reset
 * and check hold the overlay with a shared (read-only) lock for the length of
 * the change, so a writer can neither be present nor appear meanwhile; the
 * daemon opens overlays through ov_store_client_open_overlay, which takes the
 * store lock shared, so it also never opens a file that is being replaced.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include <glib.h>

#include "store-int.h"

#define CLIENT_GROUP "client"
#define ISCSI_NAME_MAX 223 /* RFC 7143 §4.2.7.1: at most 223 bytes */

static bool
client_check_name(const char *name, GError **error)
{
    if (ov_store_name_valid(name))
        return true;
    g_set_error(error, OV_ERROR, OV_ERROR_INVALID,
                "invalid client name '%s' (use 1-63 of A-Z a-z 0-9 . _ -, starting with a "
                "letter or digit)",
                name ? name : "");
    return false;
}

static bool
all_hex(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (!g_ascii_isxdigit(s[i]))
            return false;
    }
    return s[len] == '\0';
}

/* iSCSI names (RFC 7143 §4.2.7.2 "iSCSI Name Structure"): "iqn." yyyy-mm "."
 * reversed domain [":" anything], "eui." + 16 hex digits, "naa." + 16 or 32
 * hex digits. Names are compared case-insensitively (stringprep folds case,
 * RFC 3722), so they are stored in lower case. Returns the normalised name
 * or NULL with an error. */
static char *
iqn_normalise(const char *iqn, GError **error)
{
    g_autofree char *low = g_ascii_strdown(iqn, -1);
    size_t len = strlen(low);
    bool ok = len > 4 && len <= ISCSI_NAME_MAX;
    if (ok && g_str_has_prefix(low, "iqn.")) {
        const char *p = low + 4;
        ok = strlen(p) > 8 && g_ascii_isdigit(p[0]) && g_ascii_isdigit(p[1]) &&
             g_ascii_isdigit(p[2]) && g_ascii_isdigit(p[3]) && p[4] == '-' &&
             g_ascii_isdigit(p[5]) && g_ascii_isdigit(p[6]) && p[7] == '.' && g_ascii_isalnum(p[8]);
        for (const char *c = p; ok && *c; c++)
            ok = g_ascii_isalnum(*c) || *c == '.' || *c == '-' || *c == ':';
        int month = ok ? (p[5] - '0') * 10 + (p[6] - '0') : 0;
        ok = ok && month >= 1 && month <= 12;
    } else if (ok && g_str_has_prefix(low, "eui.")) {
        ok = all_hex(low + 4, 16);
    } else if (ok && g_str_has_prefix(low, "naa.")) {
        ok = all_hex(low + 4, 16) || all_hex(low + 4, 32);
    } else {
        ok = false;
    }
    if (!ok) {
        g_set_error(error, OV_ERROR, OV_ERROR_INVALID,
                    "invalid iSCSI initiator name '%s' (expected iqn.YYYY-MM.domain[:id], "
                    "eui.<16 hex> or naa.<16|32 hex>)",
                    iqn);
        return NULL;
    }
    return g_steal_pointer(&low);
}

/* MAC: six hex octets separated by ':' or '-'; stored as aa:bb:cc:dd:ee:ff. */
static char *
mac_normalise(const char *mac, GError **error)
{
    bool ok = strlen(mac) == 17;
    for (int i = 0; ok && i < 17; i++) {
        if (i % 3 == 2)
            ok = mac[i] == mac[2] && (mac[i] == ':' || mac[i] == '-');
        else
            ok = g_ascii_isxdigit(mac[i]);
    }
    if (!ok) {
        g_set_error(error, OV_ERROR, OV_ERROR_INVALID,
                    "invalid MAC address '%s' (expected aa:bb:cc:dd:ee:ff)", mac);
        return NULL;
    }
    char *out = g_ascii_strdown(mac, -1);
    g_strdelimit(out, "-", ':');
    return out;
}

/* Normalise a NULL-terminated list; duplicates within it are refused. */
static char **
normalise_list(const char *const *in, char *(*norm)(const char *, GError **), const char *what,
               GError **error)
{
    g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func(g_free);
    for (size_t i = 0; in && in[i]; i++) {
        char *n = norm(in[i], error);
        if (!n)
            return NULL;
        for (guint j = 0; j < out->len; j++) {
            if (!strcmp(out->pdata[j], n)) {
                g_set_error(error, OV_ERROR, OV_ERROR_INVALID, "%s '%s' is given twice", what,
                            in[i]);
                g_free(n);
                return NULL;
            }
        }
        g_ptr_array_add(out, n);
    }
    g_ptr_array_add(out, NULL);
    return (char **)g_ptr_array_free(g_steal_pointer(&out), false);
}

/* ---------------------------------------------------------------- lookups */

static struct ov_client_info *
client_read(struct ov_store *store, const char *name, GError **error)
{
    if (!client_check_name(name, error))
        return NULL;
    g_autofree char *dir = store_client_dir(store, name);
    g_autofree char *conf = g_build_filename(dir, STORE_CLIENT_CONF, NULL);
    g_autoptr(GError) local = NULL;
    g_autoptr(GKeyFile) kf = store_keyfile_read(conf, &local);
    if (!kf) {
        if (g_error_matches(local, OV_ERROR, OV_ERROR_NOT_FOUND))
            g_set_error(error, OV_ERROR, OV_ERROR_NOT_FOUND, "no client named '%s'", name);
        else
            g_propagate_error(error, g_steal_pointer(&local));
        return NULL;
    }
    struct ov_client_info *info = g_new0(struct ov_client_info, 1);
    info->name = g_strdup(name);
    info->image = g_key_file_get_string(kf, CLIENT_GROUP, "image", NULL);
    info->iqns = g_key_file_get_string_list(kf, CLIENT_GROUP, "iqns", NULL, NULL);
    info->macs = g_key_file_get_string_list(kf, CLIENT_GROUP, "macs", NULL, NULL);
    info->created = g_key_file_get_int64(kf, CLIENT_GROUP, "created", NULL);
    info->overlay_path = g_build_filename(dir, STORE_OVERLAY, NULL);
    if (!info->iqns)
        info->iqns = g_new0(char *, 1);
    if (!info->macs)
        info->macs = g_new0(char *, 1);
    if (!info->image || !ov_store_name_valid(info->image)) {
        g_set_error(error, OV_ERROR, OV_ERROR_CORRUPT, "%s: missing or bad image name", conf);
        ov_client_info_free(info);
        return NULL;
    }
    /* 0 when the overlay header cannot be read: ovctl check tells why. */
    struct ov_base_id id;
    if (ov_overlay_read_base_id(info->overlay_path, &id, NULL))
        info->generation = id.generation;
    return info;
}

struct ov_client_info *
ov_store_client_get(struct ov_store *store, const char *name, GError **error)
{
    return client_read(store, name, error);
}

static void *
client_read_any(struct ov_store *store, const char *name, GError **error)
{
    return client_read(store, name, error);
}

GPtrArray *
ov_store_client_list(struct ov_store *store, GError **error)
{
    return store_list_dir(store, store->clients_dir, client_read_any,
                          (GDestroyNotify)ov_client_info_free, error);
}

struct ov_client_info *
ov_store_client_find_by_iqn(struct ov_store *store, const char *iqn, GError **error)
{
    g_autofree char *low = g_ascii_strdown(iqn, -1);
    g_autoptr(GPtrArray) list = ov_store_client_list(store, error);
    if (!list)
        return NULL;
    for (guint i = 0; i < list->len; i++) {
        struct ov_client_info *c = list->pdata[i];
        if (g_strv_contains((const char *const *)c->iqns, low))
            return g_ptr_array_steal_index(list, i);
    }
    g_set_error(error, OV_ERROR, OV_ERROR_NOT_FOUND, "no client has initiator name '%s'", iqn);
    return NULL;
}

bool
store_image_first_client(struct ov_store *store, const char *image, char **client, GError **error)
{
    *client = NULL;
    g_autoptr(GPtrArray) list = ov_store_client_list(store, error);
    if (!list)
        return false;
    for (guint i = 0; i < list->len && !*client; i++) {
        struct ov_client_info *c = list->pdata[i];
        if (!strcmp(c->image, image))
            *client = g_strdup(c->name);
    }
    return true;
}

/* -------------------------------------------------------------------- add */

/* Refuse IQNs / MACs that already belong to another client. */
static bool
check_unique(struct ov_store *store, char **iqns, char **macs, GError **error)
{
    g_autoptr(GPtrArray) list = ov_store_client_list(store, error);
    if (!list)
        return false;
    for (guint i = 0; i < list->len; i++) {
        struct ov_client_info *c = list->pdata[i];
        for (char **p = iqns; *p; p++) {
            if (g_strv_contains((const char *const *)c->iqns, *p)) {
                g_set_error(error, OV_ERROR, OV_ERROR_EXISTS,
                            "initiator name '%s' already belongs to client '%s'", *p, c->name);
                return false;
            }
        }
        for (char **p = macs; *p; p++) {
            if (g_strv_contains((const char *const *)c->macs, *p)) {
                g_set_error(error, OV_ERROR, OV_ERROR_EXISTS,
                            "MAC address %s already belongs to client '%s'", *p, c->name);
                return false;
            }
        }
    }
    return true;
}

static bool
client_build(struct ov_store *store, const char *dir, const char *image, char **iqns, char **macs,
             const struct ov_base_id *id, GError **error)
{
    g_autoptr(GKeyFile) kf = g_key_file_new();
    g_key_file_set_string(kf, CLIENT_GROUP, "image", image);
    g_key_file_set_string_list(kf, CLIENT_GROUP, "iqns", (const char *const *)iqns,
                               g_strv_length(iqns));
    g_key_file_set_string_list(kf, CLIENT_GROUP, "macs", (const char *const *)macs,
                               g_strv_length(macs));
    g_key_file_set_int64(kf, CLIENT_GROUP, "created", g_get_real_time() / G_USEC_PER_SEC);
    g_autofree char *conf = g_build_filename(dir, STORE_CLIENT_CONF, NULL);
    g_autofree char *ovl = g_build_filename(dir, STORE_OVERLAY, NULL);
    return store_keyfile_write(conf, kf, error) &&
           store_overlay_create(ovl, id, OV_DEFAULT_GRANULE, false, error);
}

bool
ov_store_client_add(struct ov_store *store, const char *name, const char *image,
                    const char *const *iqns, const char *const *macs, GError **error)
{
    if (!client_check_name(name, error))
        return false;
    g_auto(GStrv) niqns = normalise_list(iqns, iqn_normalise, "initiator name", error);
    if (!niqns)
        return false;
    g_auto(GStrv) nmacs = normalise_list(macs, mac_normalise, "MAC address", error);
    if (!nmacs)
        return false;

    int lock = store_lock(store, true, error);
    if (lock < 0)
        return false;
    g_autofree char *final = store_client_dir(store, name);
    struct ov_image_info *img = NULL;
    struct store_tmp tmp = {.fd = -1};
    bool ok = true;
    if (g_file_test(final, G_FILE_TEST_EXISTS)) {
        g_set_error(error, OV_ERROR, OV_ERROR_EXISTS, "client '%s' already exists", name);
        ok = false;
    }
    ok = ok && (img = ov_store_image_get(store, image, error)) != NULL &&
         check_unique(store, niqns, nmacs, error) &&
         store_tmp_dir(store, "client", true, &tmp, error);
    if (ok) {
        struct ov_base_id id;
        for (guint i = 0; i < img->generations->len; i++) {
            struct ov_generation_info *g = img->generations->pdata[i];
            if (g->generation == img->head)
                store_base_id_set(&id, image, g);
        }
        ok = client_build(store, tmp.path, image, niqns, nmacs, &id, error) &&
             store_fsync_dir(tmp.path, error) && store_rename_noreplace(tmp.path, final, error);
    }
    if (ok)
        store_tmp_release(&tmp);
    else
        store_tmp_discard(&tmp);
    store_unlock(lock);
    ov_image_info_free(img);
    return ok;
}

/* ------------------------------------------------------ overlays, holding */

struct ov_overlay *
store_client_open_overlay_locked(struct ov_store *store, const char *name, unsigned flags,
                                 GError **error)
{
    struct ov_client_info *c = client_read(store, name, error);
    if (!c)
        return NULL;
    struct ov_base_id id;
    struct ov_overlay *ov = NULL;
    if (!ov_overlay_read_base_id(c->overlay_path, &id, error)) {
        g_prefix_error(error, "client '%s': ", name);
    } else if (strcmp(id.image, c->image) != 0) {
        g_set_error(error, OV_ERROR, OV_ERROR_WRONG_BASE,
                    "client '%s' belongs to image '%s' but its overlay sits on image '%s'", name,
                    c->image, id.image);
    } else {
        struct ov_base *base = store_open_base_locked(store, id.image, id.generation, error);
        if (base) {
            ov = ov_overlay_open(c->overlay_path, base, flags, error);
            ov_base_unref(base);
        }
        if (!ov)
            g_prefix_error(error, "client '%s': ", name);
    }
    ov_client_info_free(c);
    return ov;
}

struct ov_overlay *
ov_store_client_open_overlay(struct ov_store *store, const char *name, unsigned flags,
                             GError **error)
{
    int lock = store_lock(store, false, error);
    if (lock < 0)
        return NULL;
    struct ov_overlay *ov = store_client_open_overlay_locked(store, name, flags, error);
    store_unlock(lock);
    return ov;
}

/* Hold the client's overlay file with a shared OFD lock while it is replaced
 * or removed (caller holds the store lock). The overlay library's writers
 * hold an exclusive OFD lock on the whole file for as long as the overlay is
 * open (overlay/overlay.c), so a writer makes this fail with OV_ERROR_LOCKED,
 * and none can appear while it is held. The lock needs no parsing of the
 * file: a damaged overlay can still be reset or removed. Returns the fd to
 * close, or -1. A missing overlay file (a client from an interrupted add
 * cannot exist, but a hand-made one could) yields -2: nothing to hold. */
static int
client_hold(const struct ov_client_info *c, GError **error)
{
    int fd = open(c->overlay_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return -2;
        store_fail_errno(error, errno, "cannot open overlay %s", c->overlay_path);
        return -1;
    }
    struct flock fl = {.l_type = F_RDLCK, .l_whence = SEEK_SET};
    if (fcntl(fd, F_OFD_SETLK, &fl) == 0)
        return fd;
    int err = errno;
    close(fd);
    if (err == EAGAIN || err == EACCES)
        g_set_error(error, OV_ERROR, OV_ERROR_LOCKED,
                    "client '%s' is connected (its overlay is held by a writer)", c->name);
    else
        store_fail_errno(error, err, "cannot lock overlay %s", c->overlay_path);
    return -1;
}

bool
ov_store_client_connected(struct ov_store *store, const char *name, bool *connected, GError **error)
{
    struct ov_client_info *c = client_read(store, name, error);
    if (!c)
        return false;
    bool ok = true;
    *connected = false;
    int fd = open(c->overlay_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno != ENOENT)
            ok = store_fail_errno(error, errno, "cannot open overlay %s", c->overlay_path);
    } else {
        struct flock fl = {.l_type = F_RDLCK, .l_whence = SEEK_SET};
        if (fcntl(fd, F_OFD_GETLK, &fl) < 0)
            ok = store_fail_errno(error, errno, "cannot test the lock of %s", c->overlay_path);
        else
            *connected = fl.l_type != F_UNLCK;
        close(fd);
    }
    ov_client_info_free(c);
    return ok;
}

static void
client_release(int fd)
{
    if (fd >= 0)
        close(fd);
}

/* ----------------------------------------------------------------- remove */

bool
ov_store_client_remove(struct ov_store *store, const char *name, GError **error)
{
    if (!client_check_name(name, error))
        return false;
    int lock = store_lock(store, true, error);
    if (lock < 0)
        return false;
    int held = -1;
    g_autofree char *dir = store_client_dir(store, name);
    g_autofree char *grave = NULL;
    struct ov_client_info *c = client_read(store, name, error);
    bool ok = c && (held = client_hold(c, error)) != -1 && store_bury(store, dir, &grave, error);
    client_release(held);
    store_unlock(lock);
    if (grave)
        store_remove_tree(grave, NULL);
    ov_client_info_free(c);
    return ok;
}

/* ------------------------------------------------------------------ reset */

bool
ov_store_client_reset(struct ov_store *store, const char *name, bool keep_generation,
                      GError **error)
{
    int lock = store_lock(store, true, error);
    if (lock < 0)
        return false;
    int held = -1;
    struct ov_image_info *img = NULL;
    struct ov_client_info *c = client_read(store, name, error);
    bool ok = c && (held = client_hold(c, error)) != -1 &&
              (img = ov_store_image_get(store, c->image, error)) != NULL;
    uint32_t target = 0;
    if (ok) {
        target = img->head;
        if (keep_generation && c->generation == 0) {
            g_set_error(error, OV_ERROR, OV_ERROR_CORRUPT,
                        "client '%s': the overlay's generation cannot be read", name);
            ok = false;
        } else if (keep_generation) {
            target = c->generation;
        }
    }
    struct ov_base_id id;
    bool found = false;
    for (guint i = 0; ok && i < img->generations->len; i++) {
        struct ov_generation_info *g = img->generations->pdata[i];
        if (g->generation == target) {
            store_base_id_set(&id, c->image, g);
            found = true;
        }
    }
    if (ok && !found) {
        g_set_error(error, OV_ERROR, OV_ERROR_NOT_FOUND, "image '%s' has no generation %" PRIu32,
                    c->image, target);
        ok = false;
    }
    ok = ok && store_overlay_create(c->overlay_path, &id, OV_DEFAULT_GRANULE, true, error);
    if (!ok && c && held != -1)
        g_prefix_error(error, "cannot reset client '%s': ", name);
    client_release(held);
    store_unlock(lock);
    ov_image_info_free(img);
    ov_client_info_free(c);
    return ok;
}

/* ------------------------------------------------------------------ check */

bool
ov_store_client_check(struct ov_store *store, const char *name, bool repair, GString *report,
                      bool *clean, GError **error)
{
    int lock = store_lock(store, true, error);
    if (lock < 0)
        return false;
    /* ov_overlay_check refuses an overlay held by a writer; the store lock
     * keeps ovgated (which opens overlays under it) from opening it meanwhile. */
    struct ov_client_info *c = client_read(store, name, error);
    bool ok = c && ov_overlay_check(c->overlay_path, repair, report, clean, error);
    store_unlock(lock);
    ov_client_info_free(c);
    return ok;
}
