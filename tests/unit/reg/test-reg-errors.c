/* test-reg-errors.c — how the registry classifies failed lookups (scale
 * finding S1): a name that does not exist is REG_ERROR_UNKNOWN_TARGET /
 * REG_ERROR_UNKNOWN_INITIATOR; a store that cannot be read right now (out of
 * file descriptors, a damaged conf file) is REG_ERROR_FAILED with the real
 * message, enrols nobody, and reg_error_is_out_of_resources() tells a
 * shortage apart. Descriptor exhaustion is real: the soft RLIMIT_NOFILE is
 * lowered to the lowest free descriptor for the duration of the lookups. */
#include <errno.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <glib/gstdio.h>

#include "reg.h"

#define DISK_SIZE (1024 * 1024)
#define IQN1 "iqn.2026-11.test:pc01"
#define IQN_NEW "iqn.2026-11.test:newcomer"

struct fixture {
    char *dir;
    struct ov_store *store;
    struct cfg *cfg;
    struct reg *reg;
    char *target;
};

static void
setup(struct fixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;
    const char *iqns[] = {IQN1, NULL};

    f->dir = g_dir_make_tmp("test-reg-errors-XXXXXX", &err);
    g_assert_no_error(err);
    f->store = ov_store_open(f->dir, true, &err);
    g_assert_no_error(err);
    g_assert_true(ov_store_image_create_empty(f->store, "lab", DISK_SIZE, &err));
    g_assert_true(ov_store_image_set_auto_enroll(f->store, "lab", true, &err));
    g_assert_true(ov_store_client_add(f->store, "pc01", "lab", iqns, NULL, &err));
    g_assert_no_error(err);
    f->cfg = cfg_load(NULL, NULL);
    f->reg = reg_new(f->store, f->cfg);
    f->target = reg_target_name(f->reg, "lab");
}

static void
teardown(struct fixture *f, gconstpointer data)
{
    g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", f->dir);

    g_free(f->target);
    reg_free(f->reg);
    cfg_unref(f->cfg);
    ov_store_close(f->store);
    g_assert_cmpint(system(cmd), ==, 0);
    g_free(f->dir);
}

static struct reg_attach_params
params(void)
{
    struct reg_attach_params p = {REG_PROTO_NBD, "127.0.0.1:1234", IQN1, NULL, NULL};
    return p;
}

/* No descriptor can be opened until fd_pressure_end. */
static struct rlimit
fd_pressure_begin(void)
{
    struct rlimit old, low;
    int lowest = dup(0);

    g_assert_cmpint(lowest, >=, 0);
    close(lowest);
    g_assert_cmpint(getrlimit(RLIMIT_NOFILE, &old), ==, 0);
    low = old;
    low.rlim_cur = (rlim_t)lowest;
    g_assert_cmpint(setrlimit(RLIMIT_NOFILE, &low), ==, 0);
    g_assert_cmpint(dup(0), ==, -1);
    g_assert_cmpint(errno, ==, EMFILE);
    return old;
}

static void
fd_pressure_end(const struct rlimit *old)
{
    g_assert_cmpint(setrlimit(RLIMIT_NOFILE, old), ==, 0);
}

static void
assert_failed(GError *err, bool shortage)
{
    g_assert_error(err, REG_ERROR, REG_ERROR_FAILED);
    g_assert_cmpint(reg_error_is_out_of_resources(err), ==, shortage);
}

static void
test_unknown_names(struct fixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *prefix = g_strndup(f->target, strrchr(f->target, ':') - f->target);
    g_autofree char *nosuch = g_strconcat(prefix, ":nosuch", NULL);
    g_autofree char *badname = g_strconcat(prefix, ":bad name", NULL);
    g_autofree char *image = NULL;

    g_assert_null(reg_image_from_target_full(f->reg, nosuch, &err));
    g_assert_error(err, REG_ERROR, REG_ERROR_UNKNOWN_TARGET);
    g_assert_false(reg_error_is_out_of_resources(err));
    g_clear_error(&err);
    g_assert_null(reg_image_from_target_full(f->reg, badname, &err));
    g_assert_error(err, REG_ERROR, REG_ERROR_UNKNOWN_TARGET);
    g_clear_error(&err);
    g_assert_null(reg_image_from_target_full(f->reg, "iqn.2000-01.com.example:lab", &err));
    g_assert_error(err, REG_ERROR, REG_ERROR_UNKNOWN_TARGET);
    g_clear_error(&err);
    g_assert_null(reg_attach_client(f->reg, "nobody", &(struct reg_attach_params){0}, &err));
    g_assert_error(err, REG_ERROR, REG_ERROR_UNKNOWN_INITIATOR);
    g_clear_error(&err);
    g_assert_null(reg_attach_client(f->reg, "bad name", &(struct reg_attach_params){0}, &err));
    g_assert_error(err, REG_ERROR, REG_ERROR_UNKNOWN_INITIATOR);
    g_clear_error(&err);
    g_assert_null(reg_attach_image(f->reg, "nosuch", &(struct reg_attach_params){0}, &err));
    g_assert_error(err, REG_ERROR, REG_ERROR_UNKNOWN_TARGET);
    g_clear_error(&err);
    image = reg_image_from_target_full(f->reg, f->target, &err);
    g_assert_no_error(err);
    g_assert_cmpstr(image, ==, "lab");
}

static void
test_out_of_fds(struct fixture *f, gconstpointer data)
{
    struct reg_attach_params p = params();
    GError *e[7] = {NULL};
    struct rlimit old;
    struct reg_attach *a, *ai;
    char *r[3];
    bool may;

    /* Nothing between begin and end may allocate a descriptor, so only
     * plain calls here; the checks follow once the limit is back. */
    old = fd_pressure_begin();
    r[0] = reg_image_from_target_full(f->reg, f->target, &e[0]);
    r[1] = reg_resolve_initiator(f->reg, "lab", IQN1, &e[1]);
    r[2] = reg_resolve_initiator(f->reg, "lab", IQN_NEW, &e[2]);
    a = reg_attach_client(f->reg, "pc01", &p, &e[3]);
    ai = reg_attach_image(f->reg, "lab", &p, &e[4]);
    may = reg_initiator_may_access(f->reg, "lab", IQN1);
    fd_pressure_end(&old);

    g_assert_null(r[0]);
    g_assert_null(r[1]);
    g_assert_null(r[2]);
    g_assert_null(a);
    g_assert_null(ai);
    g_assert_false(may);
    for (int i = 0; i < 5; i++) {
        g_test_message("lookup %d: %s", i, e[i]->message);
        assert_failed(e[i], true);
        g_assert_nonnull(strstr(e[i]->message, g_strerror(EMFILE)));
        g_error_free(e[i]);
    }

    /* The newcomer was not enrolled under pressure (auto-enrolment is on):
     * the registry did not take a failed lookup for "unknown". */
    struct ov_client_info *info = ov_store_client_find_by_iqn(f->store, IQN_NEW, &e[5]);
    g_assert_null(info);
    g_assert_error(e[5], OV_ERROR, OV_ERROR_NOT_FOUND);
    g_error_free(e[5]);

    /* Pressure gone: the same lookups succeed. */
    r[0] = reg_image_from_target_full(f->reg, f->target, &e[6]);
    g_assert_no_error(e[6]);
    g_assert_cmpstr(r[0], ==, "lab");
    r[1] = reg_resolve_initiator(f->reg, "lab", IQN1, &e[6]);
    g_assert_no_error(e[6]);
    g_assert_cmpstr(r[1], ==, "pc01");
    a = reg_attach_client(f->reg, "pc01", &p, &e[6]);
    g_assert_no_error(e[6]);
    g_assert_nonnull(a);
    reg_detach(a);
    g_assert_true(reg_initiator_may_access(f->reg, "lab", IQN1));
    g_free(r[0]);
    g_free(r[1]);
}

static void
write_garbage(const char *path)
{
    g_autoptr(GError) err = NULL;

    g_assert_true(g_file_set_contents(path, "this is [not a key file\n", -1, &err));
}

static void
test_damaged_conf(struct fixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *image_conf = g_build_filename(f->dir, "images", "lab", "image.conf", NULL);
    g_autofree char *client_conf = g_build_filename(f->dir, "clients", "pc01", "client.conf", NULL);

    g_assert_true(g_file_test(image_conf, G_FILE_TEST_EXISTS));
    g_assert_true(g_file_test(client_conf, G_FILE_TEST_EXISTS));

    /* A damaged client file: the initiator is neither "unknown" nor enrolled. */
    write_garbage(client_conf);
    g_assert_null(reg_resolve_initiator(f->reg, "lab", IQN1, &err));
    assert_failed(err, false);
    g_clear_error(&err);
    g_assert_null(reg_resolve_initiator(f->reg, "lab", IQN_NEW, &err));
    assert_failed(err, false);
    g_clear_error(&err);
    g_assert_null(reg_attach_client(f->reg, "pc01", &(struct reg_attach_params){0}, &err));
    assert_failed(err, false);
    g_clear_error(&err);

    /* A damaged image file: the target exists, the store cannot say more. */
    write_garbage(image_conf);
    g_assert_null(reg_image_from_target_full(f->reg, f->target, &err));
    assert_failed(err, false);
    g_clear_error(&err);
    g_assert_null(reg_image_from_target(f->reg, f->target));
}

static void
test_shortage_predicate(void)
{
    g_autoptr(GError) nomem =
        g_error_new(REG_ERROR, REG_ERROR_FAILED, "cannot read x: %s", g_strerror(ENOMEM));
    g_autoptr(GError) nfile =
        g_error_new(REG_ERROR, REG_ERROR_FAILED, "cannot read x: %s", g_strerror(ENFILE));
    g_autoptr(GError) eio =
        g_error_new(REG_ERROR, REG_ERROR_FAILED, "cannot read x: %s", g_strerror(EIO));
    g_autoptr(GError) unknown =
        g_error_new(REG_ERROR, REG_ERROR_UNKNOWN_TARGET, "x: %s", g_strerror(EMFILE));

    g_assert_true(reg_error_is_out_of_resources(nomem));
    g_assert_true(reg_error_is_out_of_resources(nfile));
    g_assert_false(reg_error_is_out_of_resources(eio));
    g_assert_false(reg_error_is_out_of_resources(unknown));
    g_assert_false(reg_error_is_out_of_resources(NULL));
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    /* These tests provoke the registry's warnings on purpose (rate-limited,
     * so how many appear is not fixed): log them, do not abort on them. */
    g_log_set_always_fatal(G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL);
#define ADD(path, fn) g_test_add(path, struct fixture, NULL, setup, fn, teardown)
    ADD("/reg/errors/unknown-names", test_unknown_names);
    ADD("/reg/errors/out-of-fds", test_out_of_fds);
    ADD("/reg/errors/damaged-conf", test_damaged_conf);
#undef ADD
    g_test_add_func("/reg/errors/shortage-predicate", test_shortage_predicate);
    return g_test_run();
}
