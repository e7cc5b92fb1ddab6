/* test-reg.c — proxy/reg on a real store in a temporary directory: target
 * names, initiator resolution and auto-enrolment (store flag and config
 * override), shared disks, protocol exclusivity, kick with wait, online and
 * offline reset/commit (with the unit attention a reset raises), rescan. */
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <glib/gstdio.h>

#include "reg.h"
#include "reg-int.h" /* white-box: hold a disk in OPENING */

#define DISK_SIZE (1024 * 1024)
#define IQN1 "iqn.2026-11.test:pc01"

struct fixture {
    char *dir;
    struct ov_store *store;
    struct cfg *cfg;
    struct reg *reg;
};

struct kick_rec {
    gint count;
    char *reason;
    struct reg_attach *attach; /* detached by a helper thread when set */
    GThread *detacher;
};

static void
setup(struct fixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;
    const char *iqns[] = {IQN1, NULL};

    f->dir = g_dir_make_tmp("test-reg-XXXXXX", &err);
    g_assert_no_error(err);
    f->store = ov_store_open(f->dir, true, &err);
    g_assert_no_error(err);
    g_assert_true(ov_store_image_create_empty(f->store, "lab", DISK_SIZE, &err));
    g_assert_true(ov_store_image_create_empty(f->store, "other", DISK_SIZE, &err));
    g_assert_true(ov_store_client_add(f->store, "pc01", "lab", iqns, NULL, &err));
    g_assert_no_error(err);
    f->cfg = cfg_load(NULL, NULL);
    f->reg = reg_new(f->store, f->cfg);
}

static void
teardown(struct fixture *f, gconstpointer data)
{
    g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", f->dir);

    reg_free(f->reg);
    cfg_unref(f->cfg);
    ov_store_close(f->store);
    g_assert_cmpint(system(cmd), ==, 0);
    g_free(f->dir);
}

static struct reg_attach_params
params(enum reg_protocol proto, reg_kick_fn kick, void *data)
{
    struct reg_attach_params p = {proto, "127.0.0.1:1234", IQN1, kick, data};
    return p;
}

static void
test_names(struct fixture *f, gconstpointer data)
{
    g_autofree char *t = reg_target_name(f->reg, "lab");
    g_autofree char *img = NULL;
    g_auto(GStrv) images = reg_list_images(f->reg);

    g_assert_cmpstr(t, ==, CFG_DEFAULT_IQN_PREFIX ":lab");
    img = reg_image_from_target(f->reg, t);
    g_assert_cmpstr(img, ==, "lab");
    g_free(img);
    img = reg_image_from_target(f->reg, "IQN.2026-11.ORG.OVGATE:lab");
    g_assert_cmpstr(img, ==, "lab");
    g_assert_null(reg_image_from_target(f->reg, CFG_DEFAULT_IQN_PREFIX ":nosuch"));
    g_assert_null(reg_image_from_target(f->reg, "iqn.2000-01.com.example:lab"));
    g_assert_null(reg_image_from_target(f->reg, CFG_DEFAULT_IQN_PREFIX "lab"));
    g_assert_cmpuint(g_strv_length(images), ==, 2);
    g_assert_cmpstr(images[0], ==, "lab");
    g_assert_cmpstr(images[1], ==, "other");
}

static void
test_resolve(struct fixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *name = reg_resolve_initiator(f->reg, "lab", IQN1, &err);

    g_assert_no_error(err);
    g_assert_cmpstr(name, ==, "pc01");
    g_assert_null(reg_resolve_initiator(f->reg, "other", IQN1, &err));
    g_assert_error(err, REG_ERROR, REG_ERROR_UNKNOWN_INITIATOR);
    g_clear_error(&err);
    g_assert_null(reg_resolve_initiator(f->reg, "lab", "iqn.2026-11.test:stranger", &err));
    g_assert_error(err, REG_ERROR, REG_ERROR_UNKNOWN_INITIATOR);
    g_assert_nonnull(strstr(err->message, "auto-enrolment is off"));
    g_clear_error(&err);
    g_assert_null(reg_resolve_initiator(f->reg, "nosuch", "iqn.2026-11.test:x", &err));
    g_assert_error(err, REG_ERROR, REG_ERROR_UNKNOWN_TARGET);
}

static void
test_auto_enroll(struct fixture *f, gconstpointer data)
{
    const char *iqn = "iqn.1993-08.org.debian:01:abcdef";
    g_autoptr(GError) err = NULL;
    g_autofree char *name = NULL, *again = NULL, *path = NULL, *long_iqn = NULL;
    g_autofree char *long_name = NULL;
    struct ov_client_info *info;
    struct cfg *cfg;
    int fd;

    g_assert_true(ov_store_image_set_auto_enroll(f->store, "lab", true, &err));
    name = reg_resolve_initiator(f->reg, "lab", iqn, &err);
    g_assert_no_error(err);
    g_assert_true(ov_store_name_valid(name));
    info = ov_store_client_find_by_iqn(f->store, iqn, &err);
    g_assert_no_error(err);
    g_assert_cmpstr(info->name, ==, name);
    g_assert_cmpstr(info->image, ==, "lab");
    ov_client_info_free(info);
    again = reg_resolve_initiator(f->reg, "lab", iqn, &err);
    g_assert_cmpstr(again, ==, name);
    /* an IQN longer than a client name still gets a valid, unique name */
    long_iqn = g_strdup_printf("iqn.2026-11.test:%0100d", 7);
    long_name = reg_resolve_initiator(f->reg, "lab", long_iqn, &err);
    g_assert_no_error(err);
    g_assert_true(ov_store_name_valid(long_name));

    /* an empty initiator name is refused, never enrolled (the name built
     * from it would be empty) */
    g_assert_null(reg_resolve_initiator(f->reg, "lab", "", &err));
    g_assert_error(err, REG_ERROR, REG_ERROR_UNKNOWN_INITIATOR);
    g_clear_error(&err);

    /* the config file overrides the store's flag */
    fd = g_file_open_tmp("test-reg-XXXXXX.conf", &path, NULL);
    close(fd);
    g_assert_true(g_file_set_contents(path, "[image lab]\nauto-enroll=false\n", -1, NULL));
    cfg = cfg_load(path, &err);
    g_assert_no_error(err);
    g_unlink(path);
    reg_set_cfg(f->reg, cfg);
    cfg_unref(cfg);
    g_assert_null(reg_resolve_initiator(f->reg, "lab", "iqn.2026-11.test:late", &err));
    g_assert_error(err, REG_ERROR, REG_ERROR_UNKNOWN_INITIATOR);
    cfg = reg_get_cfg(f->reg);
    g_assert_cmpint(cfg_get_image(cfg, "lab")->auto_enroll, ==, 0);
    cfg_unref(cfg);
}

/* Several logins of one unknown initiator at once (iSCSI initiators retry
 * and open sessions in parallel; names differ only in case, which RFC 3722
 * folds): exactly one client is enrolled and every login gets its name. */
struct enroll_race {
    struct reg *reg;
    const char *iqn;
    char *name;
    gint *go;
};

static gpointer
enroll_race_thread(gpointer data)
{
    struct enroll_race *r = data;

    while (!g_atomic_int_get(r->go))
        g_thread_yield();
    r->name = reg_resolve_initiator(r->reg, "lab", r->iqn, NULL);
    return NULL;
}

static void
test_auto_enroll_race(struct fixture *f, gconstpointer data)
{
    static const char *const iqns[] = {"iqn.2026-11.test:race01", "IQN.2026-11.TEST:RACE01",
                                       "iqn.2026-11.test:Race01", "iqn.2026-11.test:race01"};
    struct enroll_race r[8];
    GThread *t[8];
    g_autoptr(GPtrArray) clients = NULL;
    g_autoptr(GError) err = NULL;
    gint go = 0;
    guint n = 0;

    g_assert_true(ov_store_image_set_auto_enroll(f->store, "lab", true, &err));
    for (int i = 0; i < 8; i++) {
        r[i] = (struct enroll_race){f->reg, iqns[i % 4], NULL, &go};
        t[i] = g_thread_new("enroll", enroll_race_thread, &r[i]);
    }
    g_atomic_int_set(&go, 1);
    for (int i = 0; i < 8; i++)
        g_thread_join(t[i]);
    for (int i = 0; i < 8; i++) {
        g_assert_nonnull(r[i].name);
        g_assert_cmpstr(r[i].name, ==, r[0].name);
    }
    clients = ov_store_client_list(f->store, &err);
    g_assert_no_error(err);
    for (guint i = 0; i < clients->len; i++) {
        const struct ov_client_info *c = g_ptr_array_index(clients, i);
        n += g_str_equal(c->name, "pc01") ? 0 : 1;
    }
    g_assert_cmpuint(n, ==, 1);
    for (int i = 0; i < 8; i++)
        g_free(r[i].name);
}

static void
test_attach_shared(struct fixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;
    struct reg_attach_params p = params(REG_PROTO_ISCSI, NULL, NULL);
    struct reg_attach *a = reg_attach_client(f->reg, "pc01", &p, &err);
    struct reg_attach *b = reg_attach_client(f->reg, "pc01", &p, &err);
    struct reg_attach_params pn = params(REG_PROTO_NBD, NULL, NULL);
    g_autoptr(GPtrArray) st = NULL;
    struct ov_overlay *ov;

    g_assert_no_error(err);
    g_assert_true(reg_attach_get_view(a) == reg_attach_get_view(b));
    g_assert_true(reg_attach_get_lu(a) == reg_attach_get_lu(b));
    g_assert_cmpstr(reg_attach_get_client(a), ==, "pc01");
    g_assert_false(view_is_read_only(reg_attach_get_view(a)));
    /* DESIGN rule 1: no second writer over the other protocol */
    g_assert_null(reg_attach_client(f->reg, "pc01", &pn, &err));
    g_assert_error(err, REG_ERROR, REG_ERROR_BUSY);
    g_clear_error(&err);
    /* the overlay is locked while attached */
    g_assert_null(ov_store_client_open_overlay(f->store, "pc01", 0, &err));
    g_assert_error(err, OV_ERROR, OV_ERROR_LOCKED);
    g_clear_error(&err);
    st = reg_get_status(f->reg);
    g_assert_cmpuint(st->len, ==, 2);
    g_assert_cmpstr(((struct reg_session_status *)st->pdata[0])->client, ==, "pc01");
    g_assert_cmpstr(((struct reg_session_status *)st->pdata[0])->initiator, ==, IQN1);
    reg_detach(a);
    reg_detach(b);
    reg_detach(NULL);
    /* closed: the store may open it again */
    ov = ov_store_client_open_overlay(f->store, "pc01", 0, &err);
    g_assert_no_error(err);
    ov_overlay_close(ov, NULL);
    g_assert_null(reg_attach_client(f->reg, "nobody", &p, &err));
    g_assert_error(err, REG_ERROR, REG_ERROR_UNKNOWN_INITIATOR);
}

static void
test_attach_image(struct fixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;
    struct reg_attach_params p = params(REG_PROTO_NBD, NULL, NULL);
    struct reg_attach *a = reg_attach_image(f->reg, "lab", &p, &err);
    struct reg_attach *b = reg_attach_image(f->reg, "lab", &p, &err);
    uint8_t buf[512];

    g_assert_no_error(err);
    g_assert_true(reg_attach_get_view(a) == reg_attach_get_view(b));
    g_assert_true(view_is_read_only(reg_attach_get_view(a)));
    g_assert_null(reg_attach_get_client(a));
    g_assert_nonnull(reg_attach_get_lu(a));
    g_assert_cmpuint(view_get_generation(reg_attach_get_view(a)), ==, 1);
    g_assert_cmpint(view_pread(reg_attach_get_view(a), buf, sizeof(buf), 0), ==, 0);
    g_assert_cmpint(view_pwrite(reg_attach_get_view(a), buf, sizeof(buf), 0, 0), ==, -EROFS);
    reg_detach(a);
    reg_detach(b);
    g_assert_null(reg_attach_image(f->reg, "nosuch", &p, &err));
    g_assert_error(err, REG_ERROR, REG_ERROR_UNKNOWN_TARGET);
}

/* An image removed and created again (same name, generation 1) must not be
 * served from the old generation's cached base. */
static void
test_image_recreated(struct fixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;
    struct reg_attach_params p = params(REG_PROTO_NBD, NULL, NULL);
    g_autofree char *raw = g_build_filename(f->dir, "new.raw", NULL);
    g_autofree uint8_t *bytes = g_malloc(DISK_SIZE);
    struct reg_attach *a = reg_attach_image(f->reg, "other", &p, &err);
    uint8_t buf[512];

    g_assert_no_error(err);
    reg_detach(a);
    g_assert_true(ov_store_image_remove(f->store, "other", &err));
    memset(bytes, 0x77, DISK_SIZE);
    g_assert_true(g_file_set_contents(raw, (const char *)bytes, DISK_SIZE, &err));
    g_assert_true(ov_store_image_create_from_file(f->store, "other", raw, &err));
    g_assert_no_error(err);
    a = reg_attach_image(f->reg, "other", &p, &err);
    g_assert_no_error(err);
    g_assert_cmpint(view_pread(reg_attach_get_view(a), buf, sizeof(buf), 0), ==, 0);
    g_assert_cmpuint(buf[0], ==, 0x77);
    g_assert_cmpuint(buf[511], ==, 0x77);
    reg_detach(a);
}

static gpointer
detacher_thread(gpointer data)
{
    struct kick_rec *k = data;

    g_usleep(50 * 1000);
    reg_detach(k->attach);
    return NULL;
}

static void
kick_cb(void *user_data, const char *reason)
{
    struct kick_rec *k = user_data;

    g_free(k->reason);
    k->reason = g_strdup(reason);
    g_atomic_int_inc(&k->count);
    /* like a front end: only start ending the session (here: another thread
     * detaches shortly after) */
    if (k->attach != NULL)
        k->detacher = g_thread_new("detach", detacher_thread, k);
}

/* A kicked initiator that logs straight back in: the kick is complete once
 * the old session detached; it must not wait for a disk close that never
 * comes. */
struct reconnect {
    struct reg *reg;
    struct reg_attach *old;
    struct reg_attach *fresh;
    GThread *thread;
};

static gpointer
reconnect_thread(gpointer data)
{
    struct reconnect *r = data;
    struct reg_attach_params p = params(REG_PROTO_ISCSI, NULL, NULL);

    r->fresh = reg_attach_client(r->reg, "pc01", &p, NULL);
    g_usleep(20 * 1000);
    reg_detach(r->old);
    return NULL;
}

static void
reconnect_kick_cb(void *user_data, const char *reason)
{
    struct reconnect *r = user_data;

    r->thread = g_thread_new("reconnect", reconnect_thread, r);
}

static void
test_kick_reconnect(struct fixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;
    struct reconnect r = {f->reg, NULL, NULL, NULL};
    struct reg_attach_params p = params(REG_PROTO_ISCSI, reconnect_kick_cb, &r);
    gint64 start;

    r.old = reg_attach_client(f->reg, "pc01", &p, &err);
    g_assert_no_error(err);
    start = g_get_monotonic_time();
    g_assert_cmpint(reg_kick_client(f->reg, "pc01", "test", true, 5000), ==, 1);
    g_assert_cmpint(g_get_monotonic_time() - start, <, 3 * G_USEC_PER_SEC);
    g_thread_join(r.thread);
    g_assert_nonnull(r.fresh);
    g_assert_nonnull(reg_attach_get_view(r.fresh));
    reg_detach(r.fresh);
}

static void
test_kick(struct fixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;
    struct kick_rec k = {0};
    struct reg_attach_params p = params(REG_PROTO_NBD, kick_cb, &k);
    struct ov_overlay *ov;

    g_assert_cmpint(reg_kick_client(f->reg, "pc01", "nobody there", true, 1000), ==, 0);
    k.attach = reg_attach_client(f->reg, "pc01", &p, &err);
    g_assert_no_error(err);
    g_assert_cmpint(reg_kick_client(f->reg, "pc01", "test kick", true, 5000), ==, 1);
    g_assert_cmpint(k.count, ==, 1);
    g_assert_cmpstr(k.reason, ==, "test kick");
    g_thread_join(k.detacher);
    /* waited until the disk closed */
    ov = ov_store_client_open_overlay(f->store, "pc01", 0, &err);
    g_assert_no_error(err);
    ov_overlay_close(ov, NULL);
    g_free(k.reason);
}

/* A kick that meets a session in the middle of its attach (the disk still
 * OPENING) must end it too: "kick" and "reset --force" promise that no
 * session of the client survives, and a login that was opening the overlay
 * at that moment is a session. The attach is held in OPENING by holding the
 * base cache's lock, which opening the overlay needs. */
struct midattach {
    struct reg *reg;
    struct kick_rec *k;
    struct reg_attach *attach;
    int kicked;
};

static gpointer
midattach_attach_thread(gpointer data)
{
    struct midattach *m = data;
    struct reg_attach_params p = params(REG_PROTO_ISCSI, kick_cb, m->k);

    m->attach = reg_attach_client(m->reg, "pc01", &p, NULL);
    return NULL;
}

static gpointer
midattach_kick_thread(gpointer data)
{
    struct midattach *m = data;

    m->kicked = reg_kick_client(m->reg, "pc01", "kicked mid-attach", false, 0);
    return NULL;
}

static enum reg_disk_state
disk_state(struct reg *reg, const char *key, bool *present)
{
    enum reg_disk_state st = REG_DISK_OPEN;
    struct reg_disk *disk;

    pthread_mutex_lock(&reg->lock);
    disk = g_hash_table_lookup(reg->disks, key);
    *present = disk != NULL;
    if (disk != NULL)
        st = disk->state;
    pthread_mutex_unlock(&reg->lock);
    return st;
}

static void
test_kick_mid_attach(struct fixture *f, gconstpointer data)
{
    struct kick_rec k = {0};
    struct midattach m = {f->reg, &k, NULL, -1};
    GThread *at, *kt;
    bool present = false;

    pthread_mutex_lock(&f->reg->bases->lock);
    at = g_thread_new("attach", midattach_attach_thread, &m);
    while (disk_state(f->reg, "pc01", &present) != REG_DISK_OPENING || !present)
        g_usleep(1000);
    kt = g_thread_new("kick", midattach_kick_thread, &m);
    g_usleep(50 * 1000); /* let the kick meet the OPENING disk */
    pthread_mutex_unlock(&f->reg->bases->lock);
    g_thread_join(at);
    g_thread_join(kt);
    g_assert_nonnull(m.attach);
    g_assert_cmpint(m.kicked, ==, 1);
    g_assert_cmpint(k.count, ==, 1);
    reg_detach(m.attach);
    g_free(k.reason);
}

/* A reset that must not touch a connected client (ovctl reset without
 * --force) is decided in the registry, under its lock: a session that was
 * in the middle of its attach when the reset came is seen and the reset
 * refused, instead of replacing the disk under a client that just logged in
 * (an NBD client would not even get a unit attention). */
struct idle_reset {
    struct reg *reg;
    bool ok;
    GError *err;
};

static gpointer
idle_reset_thread(gpointer data)
{
    struct idle_reset *r = data;

    r->ok = reg_reset_client_idle(r->reg, "pc01", &r->err);
    return NULL;
}

static void
test_reset_idle(struct fixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;
    struct kick_rec k = {0};
    struct midattach m = {f->reg, &k, NULL, -1};
    struct idle_reset r = {f->reg, false, NULL};
    GThread *at, *rt;
    bool present = false;

    /* nobody attached: it resets */
    g_assert_true(reg_reset_client_idle(f->reg, "pc01", &err));
    g_assert_no_error(err);
    /* a session mid-attach: refused, and the session keeps its disk */
    pthread_mutex_lock(&f->reg->bases->lock);
    at = g_thread_new("attach", midattach_attach_thread, &m);
    while (disk_state(f->reg, "pc01", &present) != REG_DISK_OPENING || !present)
        g_usleep(1000);
    rt = g_thread_new("reset", idle_reset_thread, &r);
    g_usleep(50 * 1000);
    pthread_mutex_unlock(&f->reg->bases->lock);
    g_thread_join(at);
    g_thread_join(rt);
    g_assert_nonnull(m.attach);
    g_assert_false(r.ok);
    g_assert_error(r.err, REG_ERROR, REG_ERROR_BUSY);
    g_clear_error(&r.err);
    reg_detach(m.attach);
}

/* The last session detaching while an online commit runs, and the client
 * logging straight back in: the new attach must find the old overlay closed
 * (its lock released), never BUSY because the commit still held a
 * reference to the old view after letting the detach go. Many rounds, since
 * the window is short. */
struct commit_race {
    struct reg *reg;
    gint go;
};

static gpointer
commit_race_thread(gpointer data)
{
    struct commit_race *c = data;

    while (!g_atomic_int_get(&c->go))
        g_thread_yield();
    g_assert_true(reg_commit_client(c->reg, "pc01", NULL, NULL));
    return NULL;
}

static void
test_detach_during_op(struct fixture *f, gconstpointer data)
{
    struct reg_attach_params p = params(REG_PROTO_ISCSI, NULL, NULL);

    for (int round = 0; round < 40; round++) {
        g_autoptr(GError) err = NULL;
        struct commit_race c = {f->reg, 0};
        struct reg_attach *a = reg_attach_client(f->reg, "pc01", &p, &err);
        uint8_t buf[4096];
        GThread *t;

        g_assert_no_error(err);
        memset(buf, round, sizeof(buf));
        g_assert_cmpint(view_pwrite(reg_attach_get_view(a), buf, sizeof(buf), 0, 0), ==, 0);
        t = g_thread_new("commit", commit_race_thread, &c);
        g_atomic_int_set(&c.go, 1);
        g_usleep(round % 4 * 100);
        reg_detach(a);
        a = reg_attach_client(f->reg, "pc01", &p, &err);
        g_assert_no_error(err);
        reg_detach(a);
        g_thread_join(t);
    }
}

/* TEST UNIT READY through a nexus; returns the sense ASC or 0 for GOOD. */
static int
tur_asc(struct sdev_nexus *nx)
{
    struct sdev_cmd cmd = {0};
    int asc = 0;

    cmd.cdb_len = 6;
    if (sdev_cmd_parse(nx, &cmd))
        sdev_cmd_exec(nx, &cmd);
    if (cmd.status == SDEV_STATUS_CHECK_CONDITION)
        asc = cmd.sense[12];
    sdev_cmd_clear(&cmd);
    return asc;
}

static void
test_online_reset(struct fixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;
    struct reg_attach_params p = params(REG_PROTO_ISCSI, NULL, NULL);
    struct reg_attach *a = reg_attach_client(f->reg, "pc01", &p, &err);
    struct view *v = reg_attach_get_view(a);
    struct sdev_nexus *nx = sdev_nexus_new(reg_attach_get_lu(a), IQN1 ",i,0x1", "tgt", 1);
    uint8_t buf[4096], zero[4096] = {0};

    g_assert_no_error(err);
    g_assert_cmpint(tur_asc(nx), ==, 0x29); /* POWER ON, RESET */
    g_assert_cmpint(tur_asc(nx), ==, 0);
    memset(buf, 0xee, sizeof(buf));
    g_assert_cmpint(view_pwrite(v, buf, sizeof(buf), 8192, 0), ==, 0);
    g_assert_true(reg_reset_client(f->reg, "pc01", &err));
    g_assert_no_error(err);
    /* same view, new empty overlay: the write is gone */
    g_assert_true(reg_attach_get_view(a) == v);
    g_assert_cmpint(view_pread(v, buf, sizeof(buf), 8192), ==, 0);
    g_assert_cmpmem(buf, sizeof(buf), zero, sizeof(zero));
    g_assert_cmpint(tur_asc(nx), ==, 0x28); /* MEDIUM MAY HAVE CHANGED */
    g_assert_cmpint(tur_asc(nx), ==, 0);
    /* and the disk still takes writes */
    g_assert_cmpint(view_pwrite(v, buf, sizeof(buf), 0, VIEW_FUA), ==, 0);
    sdev_nexus_free(nx);
    reg_detach(a);
}

static void
test_online_commit(struct fixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;
    struct reg_attach_params p = params(REG_PROTO_ISCSI, NULL, NULL);
    struct reg_attach *a = reg_attach_client(f->reg, "pc01", &p, &err);
    struct view *v = reg_attach_get_view(a);
    struct sdev_nexus *nx = sdev_nexus_new(reg_attach_get_lu(a), IQN1 ",i,0x1", "tgt", 1);
    uint8_t buf[4096], want[4096];
    struct ov_overlay_info info;
    struct ov_image_info *img;
    g_autoptr(GPtrArray) st = NULL;
    uint32_t gen = 0;

    g_assert_cmpint(tur_asc(nx), ==, 0x29);
    memset(want, 0x42, sizeof(want));
    g_assert_cmpint(view_pwrite(v, want, sizeof(want), 4096, 0), ==, 0);
    g_assert_true(reg_commit_client(f->reg, "pc01", &gen, &err));
    g_assert_no_error(err);
    g_assert_cmpuint(gen, ==, 2);
    g_assert_cmpuint(view_get_generation(v), ==, 2);
    /* invisible to the client: same bytes, no unit attention */
    g_assert_cmpint(view_pread(v, buf, sizeof(buf), 4096), ==, 0);
    g_assert_cmpmem(buf, sizeof(buf), want, sizeof(want));
    g_assert_cmpint(tur_asc(nx), ==, 0);
    st = reg_get_status(f->reg);
    g_assert_cmpuint(((struct reg_session_status *)st->pdata[0])->generation, ==, 2);
    g_assert_cmpint(view_freeze(v), ==, 0);
    ov_overlay_get_info(view_get_overlay(v), &info);
    view_thaw(v);
    g_assert_cmpuint(info.data_granules, ==, 0);
    img = ov_store_image_get(f->store, "lab", &err);
    g_assert_cmpuint(img->head, ==, 2);
    ov_image_info_free(img);
    sdev_nexus_free(nx);
    reg_detach(a);
}

/* An online commit whose new overlay cannot be opened afterwards (out of
 * file descriptors, an I/O error): the store has already moved the client
 * onto the new generation and replaced its overlay file, so the old overlay
 * the view still held was an orphan. Writes after the commit went there and
 * were lost at the next reconnect. They must fail instead, the sessions
 * end, and what was written before the commit is in the new generation. */
static gint fail_gen2;

static struct ov_base *
failing_opener(const struct ov_image_info *image, const struct ov_generation_info *gen,
               void *user_data, GError **error)
{
    if (gen->generation == 2 && g_atomic_int_get(&fail_gen2)) {
        g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_MFILE,
                    "test: cannot open generation 2");
        return NULL;
    }
    return reg_bases_open(image, gen, user_data, error);
}

static void
test_commit_reopen_fails(struct fixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;
    struct kick_rec k = {0};
    struct reg_attach_params p = params(REG_PROTO_NBD, kick_cb, &k);
    struct reg_attach_params p2 = params(REG_PROTO_NBD, NULL, NULL);
    struct reg_attach *a;
    uint8_t want[4096], buf[4096], late[4096];
    struct view *v;

    /* our own base cache, so that the opener can be wrapped */
    f->reg->bases = reg_bases_new();
    ov_store_set_base_opener(f->store, failing_opener, f->reg->bases,
                             (GDestroyNotify)reg_bases_free);
    a = reg_attach_client(f->reg, "pc01", &p, &err);
    g_assert_no_error(err);
    v = reg_attach_get_view(a);
    memset(want, 0x5c, sizeof(want));
    g_assert_cmpint(view_pwrite(v, want, sizeof(want), 8192, 0), ==, 0);
    g_atomic_int_set(&fail_gen2, 1);
    g_test_expect_message("ovgate-reg", G_LOG_LEVEL_CRITICAL, "*cannot open its overlay*");
    g_assert_false(reg_commit_client(f->reg, "pc01", NULL, &err));
    g_test_assert_expected_messages();
    g_assert_nonnull(err);
    g_assert_nonnull(strstr(err->message, "generation 2"));
    g_clear_error(&err);
    /* the session was told to end, and nothing more is written anywhere */
    g_assert_cmpint(k.count, ==, 1);
    memset(late, 0x77, sizeof(late));
    g_assert_cmpint(view_pwrite(v, late, sizeof(late), 0, 0), ==, -EIO);
    reg_detach(a);
    g_atomic_int_set(&fail_gen2, 0);
    /* after reconnecting: on generation 2, with the data written before */
    a = reg_attach_client(f->reg, "pc01", &p2, &err);
    g_assert_no_error(err);
    g_assert_cmpuint(view_get_generation(reg_attach_get_view(a)), ==, 2);
    g_assert_cmpint(view_pread(reg_attach_get_view(a), buf, sizeof(buf), 8192), ==, 0);
    g_assert_cmpmem(buf, sizeof(buf), want, sizeof(want));
    reg_detach(a);
    g_free(k.reason);
}

/* Online commits while several connections of one client write and read
 * back without pause: freeze/swap/thaw must lose no acknowledged write and
 * show no torn state (a commit is invisible to the client). */
struct io_worker {
    struct view *view;
    int id;
    gint *stop;
    int rounds;
    int errors;
};

static gpointer
io_worker_thread(gpointer data)
{
    struct io_worker *w = data;
    uint8_t out[4096], in[4096];

    while (!g_atomic_int_get(w->stop)) {
        uint64_t off = (uint64_t)(w->id * 32 + w->rounds % 32) * 4096;
        memset(out, 0, sizeof(out));
        g_snprintf((char *)out, sizeof(out), "worker %d round %d", w->id, w->rounds);
        if (view_pwrite(w->view, out, sizeof(out), off, 0) != 0 ||
            view_pread(w->view, in, sizeof(in), off) != 0 || memcmp(in, out, sizeof(in)) != 0)
            w->errors++;
        if (w->rounds % 7 == 0 && view_flush(w->view) != 0)
            w->errors++;
        w->rounds++;
    }
    return NULL;
}

static void
test_commit_under_io(struct fixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;
    struct reg_attach_params p = params(REG_PROTO_ISCSI, NULL, NULL);
    struct reg_attach *a[3];
    struct io_worker w[3];
    GThread *t[3];
    gint stop = 0;
    uint32_t gen = 0;

    for (int i = 0; i < 3; i++) {
        a[i] = reg_attach_client(f->reg, "pc01", &p, &err);
        g_assert_no_error(err);
        w[i] = (struct io_worker){reg_attach_get_view(a[i]), i, &stop, 0, 0};
        t[i] = g_thread_new("io", io_worker_thread, &w[i]);
    }
    for (int c = 0; c < 4; c++) {
        g_usleep(20 * 1000);
        g_assert_true(reg_commit_client(f->reg, "pc01", &gen, &err));
        g_assert_no_error(err);
    }
    g_atomic_int_set(&stop, 1);
    for (int i = 0; i < 3; i++) {
        g_thread_join(t[i]);
        g_assert_cmpint(w[i].errors, ==, 0);
        g_assert_cmpint(w[i].rounds, >, 0);
    }
    g_assert_cmpuint(gen, ==, 5);
    /* every worker's last round is on the disk after a reconnect */
    for (int i = 0; i < 3; i++)
        reg_detach(a[i]);
    a[0] = reg_attach_client(f->reg, "pc01", &p, &err);
    g_assert_no_error(err);
    for (int i = 0; i < 3; i++) {
        char want[64], got[4096];
        int r = w[i].rounds - 1;
        g_snprintf(want, sizeof(want), "worker %d round %d", i, r);
        g_assert_cmpint(view_pread(reg_attach_get_view(a[0]), got, sizeof(got),
                                   (uint64_t)(i * 32 + r % 32) * 4096),
                        ==, 0);
        g_assert_cmpstr(got, ==, want);
    }
    reg_detach(a[0]);
}

static void
test_offline_ops(struct fixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;
    uint32_t gen = 0;
    struct ov_client_info *c;

    g_assert_true(reg_commit_client(f->reg, "pc01", &gen, &err));
    g_assert_no_error(err);
    g_assert_cmpuint(gen, ==, 2);
    g_assert_true(reg_reset_client(f->reg, "pc01", &err));
    g_assert_no_error(err);
    c = ov_store_client_get(f->store, "pc01", &err);
    g_assert_cmpuint(c->generation, ==, 2);
    ov_client_info_free(c);
    g_assert_false(reg_reset_client(f->reg, "nobody", &err));
    g_assert_nonnull(err);
    g_clear_error(&err);
    g_assert_false(reg_reset_client(f->reg, "../etc", &err));
    g_assert_error(err, REG_ERROR, REG_ERROR_UNKNOWN_INITIATOR);
}

static void
test_rescan(struct fixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;
    struct kick_rec k = {0};
    struct reg_attach_params p = params(REG_PROTO_NBD, kick_cb, &k);
    struct reg_attach *a = reg_attach_client(f->reg, "pc01", &p, &err);
    g_autofree char *from = g_build_filename(f->dir, "clients", "pc01", NULL);
    g_autofree char *to = g_build_filename(f->dir, "pc01.moved", NULL);

    g_assert_no_error(err);
    reg_rescan(f->reg);
    g_assert_cmpint(k.count, ==, 0);
    g_assert_cmpint(g_rename(from, to), ==, 0);
    reg_rescan(f->reg);
    g_assert_cmpint(k.count, ==, 1);
    g_assert_nonnull(strstr(k.reason, "removed"));
    reg_detach(a);
    g_assert_cmpint(g_rename(to, from), ==, 0);
    g_free(k.reason);
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
#define ADD(path, fn) g_test_add(path, struct fixture, NULL, setup, fn, teardown)
    ADD("/reg/names", test_names);
    ADD("/reg/resolve", test_resolve);
    ADD("/reg/auto-enroll", test_auto_enroll);
    ADD("/reg/auto-enroll-race", test_auto_enroll_race);
    ADD("/reg/attach-shared", test_attach_shared);
    ADD("/reg/attach-image", test_attach_image);
    ADD("/reg/image-recreated", test_image_recreated);
    ADD("/reg/kick-wait", test_kick);
    ADD("/reg/kick-reconnect", test_kick_reconnect);
    ADD("/reg/kick-mid-attach", test_kick_mid_attach);
    ADD("/reg/detach-during-op", test_detach_during_op);
    ADD("/reg/reset-idle", test_reset_idle);
    ADD("/reg/online-reset", test_online_reset);
    ADD("/reg/online-commit", test_online_commit);
    ADD("/reg/commit-reopen-fails", test_commit_reopen_fails);
    ADD("/reg/commit-under-io", test_commit_under_io);
    ADD("/reg/offline-reset-commit", test_offline_ops);
    ADD("/reg/rescan", test_rescan);
    return g_test_run();
}
