/* store-image.c — images and their generations in the store (see store.h,
 * docs/store.md).
 *
 * An image directory images/NAME holds image.conf (head generation,
 * auto-enroll, created) and gen/N.raw + gen/N.conf per generation. A new
 * image is assembled whole in STORE/tmp/ (the copy of generation 1 may take
 * minutes and is done without the store lock) and then renamed into images/
 * under the lock with RENAME_NOREPLACE: it appears complete or not at all.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "store-int.h"

static bool
check_name(const char *what, const char *name, GError **error)
{
    if (ov_store_name_valid(name))
        return true;
    g_set_error(error, OV_ERROR, OV_ERROR_INVALID,
                "invalid %s name '%s' (use 1-63 of A-Z a-z 0-9 . _ -, starting with a "
                "letter or digit)",
                what, name ? name : "");
    return false;
}

static bool
image_missing(struct ov_store *store, const char *name, GError **error)
{
    g_autofree char *conf = g_build_filename(store->images_dir, name, STORE_IMAGE_CONF, NULL);
    if (g_file_test(conf, G_FILE_TEST_EXISTS))
        return true;
    g_set_error(error, OV_ERROR, OV_ERROR_NOT_FOUND, "no image named '%s'", name);
    return false;
}

/* ------------------------------------------------------------ conf files */

bool
store_image_read_conf(struct ov_store *store, const char *name, uint32_t *head, bool *auto_enroll,
                      gint64 *created, GError **error)
{
    if (!check_name("image", name, error) || !image_missing(store, name, error))
        return false;
    g_autofree char *path = g_build_filename(store->images_dir, name, STORE_IMAGE_CONF, NULL);
    g_autoptr(GKeyFile) kf = store_keyfile_read(path, error);
    if (!kf)
        return false;
    g_autoptr(GError) local = NULL;
    guint64 h = g_key_file_get_uint64(kf, "image", "head", &local);
    if (local || h == 0 || h > UINT32_MAX) {
        g_set_error(error, OV_ERROR, OV_ERROR_CORRUPT, "%s: bad head generation", path);
        return false;
    }
    *head = (uint32_t)h;
    *auto_enroll = g_key_file_get_boolean(kf, "image", "auto-enroll", NULL);
    *created = g_key_file_get_int64(kf, "image", "created", NULL);
    return true;
}

bool
store_image_write_conf(struct ov_store *store, const char *dir, uint32_t head, bool auto_enroll,
                       gint64 created, GError **error)
{
    g_autoptr(GKeyFile) kf = g_key_file_new();
    g_key_file_set_uint64(kf, "image", "head", head);
    g_key_file_set_boolean(kf, "image", "auto-enroll", auto_enroll);
    g_key_file_set_int64(kf, "image", "created", created);
    g_autofree char *path = g_build_filename(dir, STORE_IMAGE_CONF, NULL);
    return store_keyfile_write(path, kf, error);
}

bool
store_gen_write_conf(const char *image_dir, uint32_t gen, const uint8_t uuid[OV_UUID_LEN],
                     uint64_t size, gint64 created, const char *source, GError **error)
{
    char text[37];
    ov_uuid_format(uuid, text);
    g_autoptr(GKeyFile) kf = g_key_file_new();
    g_key_file_set_string(kf, "generation", "uuid", text);
    g_key_file_set_uint64(kf, "generation", "size", size);
    g_key_file_set_int64(kf, "generation", "created", created);
    g_key_file_set_string(kf, "generation", "source", source);
    g_autofree char *file = g_strdup_printf("%" PRIu32 ".conf", gen);
    g_autofree char *path = g_build_filename(image_dir, STORE_GEN_DIR, file, NULL);
    return store_keyfile_write(path, kf, error);
}

struct ov_generation_info *
store_gen_get(struct ov_store *store, const char *image, uint32_t gen, GError **error)
{
    g_autofree char *conf = store_gen_path(store, image, gen, "conf");
    g_autoptr(GError) local = NULL;
    g_autoptr(GKeyFile) kf = store_keyfile_read(conf, &local);
    if (!kf) {
        if (g_error_matches(local, OV_ERROR, OV_ERROR_NOT_FOUND))
            g_set_error(error, OV_ERROR, OV_ERROR_NOT_FOUND,
                        "image '%s' has no generation %" PRIu32, image, gen);
        else
            g_propagate_error(error, g_steal_pointer(&local));
        return NULL;
    }
    struct ov_generation_info *info = g_new0(struct ov_generation_info, 1);
    info->generation = gen;
    g_autofree char *uuid = g_key_file_get_string(kf, "generation", "uuid", NULL);
    info->size = g_key_file_get_uint64(kf, "generation", "size", &local);
    if (!uuid || !ov_uuid_parse(uuid, info->uuid) || local || info->size == 0) {
        g_set_error(error, OV_ERROR, OV_ERROR_CORRUPT, "%s: bad uuid or size", conf);
        ov_generation_info_free(info);
        return NULL;
    }
    info->created = g_key_file_get_int64(kf, "generation", "created", NULL);
    info->source = g_key_file_get_string(kf, "generation", "source", NULL);
    if (!info->source)
        info->source = g_strdup("unknown");
    info->path = store_gen_path(store, image, gen, "raw");
    struct stat st;
    if (stat(info->path, &st) == 0)
        info->file_bytes = (uint64_t)st.st_blocks * 512u;
    return info;
}

void
store_base_id_set(struct ov_base_id *id, const char *image, const struct ov_generation_info *gen)
{
    memset(id, 0, sizeof(*id));
    g_strlcpy(id->image, image, sizeof(id->image));
    id->generation = gen->generation;
    id->size = gen->size;
    memcpy(id->uuid, gen->uuid, OV_UUID_LEN);
}

/* Parse "N.conf" strictly (decimal, no sign, no leading zero). */
static bool
parse_gen_conf_name(const char *file, uint32_t *gen)
{
    if (!g_str_has_suffix(file, ".conf") || file[0] < '1' || file[0] > '9')
        return false;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(file, &end, 10);
    if (errno || v == 0 || v > UINT32_MAX || strcmp(end, ".conf") != 0)
        return false;
    *gen = (uint32_t)v;
    return true;
}

static int
gen_cmp(gconstpointer a, gconstpointer b)
{
    const struct ov_generation_info *ga = *(struct ov_generation_info *const *)a;
    const struct ov_generation_info *gb = *(struct ov_generation_info *const *)b;
    return ga->generation < gb->generation ? -1 : ga->generation > gb->generation;
}

struct ov_image_info *
ov_store_image_get(struct ov_store *store, const char *name, GError **error)
{
    uint32_t head;
    bool auto_enroll;
    gint64 created;
    if (!store_image_read_conf(store, name, &head, &auto_enroll, &created, error))
        return NULL;
    g_autofree char *gen_dir = g_build_filename(store->images_dir, name, STORE_GEN_DIR, NULL);
    g_autoptr(GError) local = NULL;
    GDir *d = g_dir_open(gen_dir, 0, &local);
    if (!d) {
        g_set_error(error, OV_ERROR, OV_ERROR_FAILED, "cannot list %s: %s", gen_dir,
                    local->message);
        return NULL;
    }
    struct ov_image_info *info = g_new0(struct ov_image_info, 1);
    info->name = g_strdup(name);
    info->head = head;
    info->auto_enroll = auto_enroll;
    info->generations = g_ptr_array_new_with_free_func((GDestroyNotify)ov_generation_info_free);
    const char *file;
    bool ok = true;
    while (ok && (file = g_dir_read_name(d)) != NULL) {
        uint32_t gen;
        if (!parse_gen_conf_name(file, &gen))
            continue;
        struct ov_generation_info *g = store_gen_get(store, name, gen, error);
        if (g)
            g_ptr_array_add(info->generations, g);
        ok = g != NULL;
    }
    g_dir_close(d);
    g_ptr_array_sort(info->generations, gen_cmp);
    for (guint i = 0; ok && i < info->generations->len; i++) {
        struct ov_generation_info *g = info->generations->pdata[i];
        if (g->generation == head)
            info->size = g->size;
    }
    if (ok && info->size == 0) {
        g_set_error(error, OV_ERROR, OV_ERROR_CORRUPT,
                    "image '%s': head generation %" PRIu32 " is missing", name, head);
        ok = false;
    }
    if (!ok) {
        ov_image_info_free(info);
        return NULL;
    }
    return info;
}

static void *
image_read_any(struct ov_store *store, const char *name, GError **error)
{
    return ov_store_image_get(store, name, error);
}

GPtrArray *
ov_store_image_list(struct ov_store *store, GError **error)
{
    return store_list_dir(store, store->images_dir, image_read_any,
                          (GDestroyNotify)ov_image_info_free, error);
}

/* --------------------------------------------------------------- create */

/* Fill fd (generation 1) from src_fd, or make it a sparse file of size when
 * src_fd < 0. */
static bool
fill_gen1(int fd, int src_fd, uint64_t size, GError **error)
{
    if (src_fd >= 0) {
        if (!store_copy_fd(src_fd, fd, size, error))
            return false;
    } else if (ftruncate(fd, (off_t)size) < 0) {
        return store_fail_errno(error, errno, "cannot size the new generation");
    }
    if (fsync(fd) < 0)
        return store_fail_errno(error, errno, "cannot sync the new generation");
    if (fchmod(fd, 0444) < 0)
        return store_fail_errno(error, errno, "cannot make the new generation read-only");
    return true;
}

static bool
image_create(struct ov_store *store, const char *name, int src_fd, uint64_t size,
             const char *source, bool auto_enroll, GError **error)
{
    if (!check_name("image", name, error))
        return false;
    g_autofree char *final = store_image_dir(store, name);
    if (g_file_test(final, G_FILE_TEST_EXISTS)) {
        g_set_error(error, OV_ERROR, OV_ERROR_EXISTS, "image '%s' already exists", name);
        return false;
    }
    struct store_tmp tmp;
    if (!store_tmp_dir(store, "image", false, &tmp, error))
        return false;
    g_autofree char *gen_dir = g_build_filename(tmp.path, STORE_GEN_DIR, NULL);
    g_autofree char *raw = g_build_filename(gen_dir, "1.raw", NULL);
    uint8_t uuid[OV_UUID_LEN];
    ov_uuid_generate(uuid);
    gint64 now = g_get_real_time() / G_USEC_PER_SEC;
    bool ok = true;
    int fd = -1;
    if (g_mkdir(gen_dir, 0755) < 0)
        ok = store_fail_errno(error, errno, "cannot create %s", gen_dir);
    if (ok && (fd = open(raw, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644)) < 0)
        ok = store_fail_errno(error, errno, "cannot create %s", raw);
    ok = ok && fill_gen1(fd, src_fd, size, error);
    if (fd >= 0 && close(fd) < 0 && ok)
        ok = store_fail_errno(error, errno, "cannot write %s", raw);
    ok = ok && store_fsync_dir(gen_dir, error) &&
         store_gen_write_conf(tmp.path, 1, uuid, size, now, source, error) &&
         store_image_write_conf(store, tmp.path, 1, auto_enroll, now, error) &&
         store_fsync_dir(tmp.path, error);
    if (ok) {
        int lock = store_lock(store, true, error);
        ok = lock >= 0 && store_rename_noreplace(tmp.path, final, error);
        store_unlock(lock);
        if (!ok && error && *error && (*error)->code == OV_ERROR_EXISTS) {
            g_clear_error(error);
            g_set_error(error, OV_ERROR, OV_ERROR_EXISTS, "image '%s' already exists", name);
        }
    }
    if (ok)
        store_tmp_release(&tmp);
    else
        store_tmp_discard(&tmp);
    return ok;
}

static bool
create_from_file(struct ov_store *store, const char *name, const char *raw_path, bool auto_enroll,
                 GError **error)
{
    if (!check_name("image", name, error))
        return false;
    int fd = open(raw_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return store_fail_errno(error, errno, "cannot open %s", raw_path);
    struct stat st;
    off_t end = 0;
    bool ok = true;
    if (fstat(fd, &st) < 0) {
        ok = store_fail_errno(error, errno, "cannot inspect %s", raw_path);
    } else if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
        g_set_error(error, OV_ERROR, OV_ERROR_INVALID,
                    "%s is neither a regular file nor a block device", raw_path);
        ok = false;
    } else if ((end = lseek(fd, 0, SEEK_END)) < 0) {
        ok = store_fail_errno(error, errno, "cannot size %s", raw_path);
    } else if (end == 0 || end % 512 != 0) {
        g_set_error(error, OV_ERROR, OV_ERROR_INVALID,
                    "%s: size %lld is not a positive multiple of 512 bytes", raw_path,
                    (long long)end);
        ok = false;
    }
    if (ok) {
        g_autofree char *abs = g_canonicalize_filename(raw_path, NULL);
        g_autofree char *source = g_strconcat("file:", abs, NULL);
        ok = image_create(store, name, fd, (uint64_t)end, source, auto_enroll, error);
    }
    close(fd);
    return ok;
}

bool
ov_store_image_create(struct ov_store *store, const char *name, const char *raw_path, uint64_t size,
                      bool auto_enroll, GError **error)
{
    if (raw_path)
        return create_from_file(store, name, raw_path, auto_enroll, error);
    if (size == 0 || size % 512 != 0 || size > (uint64_t)INT64_MAX) {
        g_set_error(error, OV_ERROR, OV_ERROR_INVALID,
                    "image size %" PRIu64 " is not a positive multiple of 512 bytes", size);
        return false;
    }
    return image_create(store, name, -1, size, "empty", auto_enroll, error);
}

bool
ov_store_image_create_from_file(struct ov_store *store, const char *name, const char *raw_path,
                                GError **error)
{
    return ov_store_image_create(store, name, raw_path, 0, false, error);
}

bool
ov_store_image_create_empty(struct ov_store *store, const char *name, uint64_t size, GError **error)
{
    return ov_store_image_create(store, name, NULL, size, false, error);
}

/* ---------------------------------------------------------- set, remove */

bool
ov_store_image_set_auto_enroll(struct ov_store *store, const char *name, bool enabled,
                               GError **error)
{
    int lock = store_lock(store, true, error);
    if (lock < 0)
        return false;
    uint32_t head;
    bool old;
    gint64 created;
    g_autofree char *dir = store_image_dir(store, name);
    bool ok = store_image_read_conf(store, name, &head, &old, &created, error) &&
              (old == enabled || store_image_write_conf(store, dir, head, enabled, created, error));
    store_unlock(lock);
    return ok;
}

bool
ov_store_image_remove(struct ov_store *store, const char *name, GError **error)
{
    int lock = store_lock(store, true, error);
    if (lock < 0)
        return false;
    uint32_t head;
    bool ae;
    gint64 created;
    g_autofree char *user = NULL;
    bool ok = store_image_read_conf(store, name, &head, &ae, &created, error) &&
              store_image_first_client(store, name, &user, error);
    if (ok && user) {
        g_set_error(error, OV_ERROR, OV_ERROR_EXISTS,
                    "image '%s' still has clients (e.g. '%s'); remove them first", name, user);
        ok = false;
    }
    g_autofree char *dir = store_image_dir(store, name);
    g_autofree char *grave = NULL;
    ok = ok && store_bury(store, dir, &grave, error);
    store_unlock(lock);
    if (grave)
        store_remove_tree(grave, NULL);
    return ok;
}

struct ov_base *
store_open_base_locked(struct ov_store *store, const char *image, uint32_t gen, GError **error)
{
    struct ov_image_info *info = ov_store_image_get(store, image, error);
    if (!info)
        return NULL;
    struct ov_generation_info *g = NULL;
    for (guint i = 0; i < info->generations->len; i++) {
        struct ov_generation_info *cand = info->generations->pdata[i];
        if (cand->generation == gen)
            g = cand;
    }
    struct ov_base *base = NULL;
    if (!g) {
        g_set_error(error, OV_ERROR, OV_ERROR_NOT_FOUND, "image '%s' has no generation %" PRIu32,
                    image, gen);
    } else if (!store->opener) {
        g_set_error(error, OV_ERROR, OV_ERROR_UNSUPPORTED, "no base opener is set for store %s",
                    store->dir);
    } else {
        base = store->opener(info, g, store->opener_data, error);
        struct ov_base_id id;
        store_base_id_set(&id, image, g);
        if (base && !base->has_id)
            ov_base_set_id(base, &id);
        if (base && base->has_id &&
            (base->id.generation != gen || strcmp(base->id.image, image) != 0 ||
             memcmp(base->id.uuid, g->uuid, OV_UUID_LEN) != 0)) {
            g_set_error(error, OV_ERROR, OV_ERROR_WRONG_BASE,
                        "image '%s' generation %" PRIu32 ": the base opener returned another "
                        "generation's base",
                        image, gen);
            g_clear_pointer(&base, ov_base_unref);
        } else if (base && base->size != g->size) {
            g_set_error(error, OV_ERROR, OV_ERROR_CORRUPT,
                        "image '%s' generation %" PRIu32 ": base has %" PRIu64
                        " bytes, expected %" PRIu64,
                        image, gen, base->size, g->size);
            g_clear_pointer(&base, ov_base_unref);
        }
    }
    ov_image_info_free(info);
    return base;
}

struct ov_base *
ov_store_open_base(struct ov_store *store, const char *image, uint32_t generation, GError **error)
{
    return store_open_base_locked(store, image, generation, error);
}
