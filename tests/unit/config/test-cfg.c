/* test-cfg.c — proxy/config: defaults, a complete valid file, and every kind
 * of bad input, each with the FILE:[group]:key place in its message. */
#include <string.h>
#include <unistd.h>
#include <glib/gstdio.h>

#include "cfg.h"

/* Write text to a temporary file, load it; the file is removed again. */
static struct cfg *
load_text(const char *text, GError **error)
{
    g_autofree char *path = NULL;
    int fd = g_file_open_tmp("test-cfg-XXXXXX.conf", &path, NULL);
    struct cfg *cfg;

    g_assert_cmpint(fd, >=, 0);
    close(fd);
    g_assert_true(g_file_set_contents(path, text, -1, NULL));
    cfg = cfg_load(path, error);
    g_unlink(path);
    return cfg;
}

/* The text must be refused with a message containing every needle. */
static void
assert_refused(const char *text, const char *needle1, const char *needle2)
{
    g_autoptr(GError) err = NULL;
    struct cfg *cfg = load_text(text, &err);

    g_assert_null(cfg);
    g_assert_error(err, CFG_ERROR, CFG_ERROR_INVALID);
    if (strstr(err->message, needle1) == NULL ||
        (needle2 != NULL && strstr(err->message, needle2) == NULL))
        g_error("message '%s' lacks '%s' / '%s'", err->message, needle1, needle2 ? needle2 : "");
}

static void
test_defaults(void)
{
    g_autoptr(GError) err = NULL;
    struct cfg *cfg = cfg_load(NULL, &err);
    const struct cfg_listen *l;

    g_assert_no_error(err);
    g_assert_cmpuint(cfg->listen_iscsi->len, ==, 1);
    l = g_ptr_array_index(cfg->listen_iscsi, 0);
    g_assert_cmpstr(l->host, ==, "");
    g_assert_cmpuint(l->port, ==, CFG_DEFAULT_ISCSI_PORT);
    g_assert_cmpuint(cfg->listen_nbd->len, ==, 0);
    g_assert_cmpstr(cfg->iqn_prefix, ==, CFG_DEFAULT_IQN_PREFIX);
    g_assert_null(cfg->control_socket);
    g_assert_false(cfg->require_chap);
    g_assert_cmpint(cfg->nop_interval_s, ==, 5);
    g_assert_cmpint(cfg->nop_timeout_s, ==, 30);
    g_assert_cmpint(cfg->busy_poll_us, ==, 50);
    g_assert_cmpstr(cfg->log_level, ==, "message");
    g_assert_null(cfg_get_image(cfg, "lab"));
    g_assert_null(cfg_get_client(cfg, "pc01"));
    g_assert_true(cfg_ref(cfg) == cfg);
    cfg_unref(cfg);
    cfg_unref(cfg);
}

static const char full_config[] = "# every key once\n"
                                  "[ovgated]\n"
                                  "listen-iscsi=0.0.0.0:3260;[::1]:3261\n"
                                  "listen-nbd=127.0.0.1\n"
                                  "control-socket=/run/ovgate/ctl.sock\n"
                                  "iqn-prefix=iqn.2026-01.org.example:lab\n"
                                  "target-alias=Lab gateway\n"
                                  "require-chap=true\n"
                                  "nop-interval=0\n"
                                  "nop-timeout=60\n"
                                  "busy-poll-us=0\n"
                                  "log-level=debug\n"
                                  "tls-cert=/etc/ovgate/cert.pem\n"
                                  "tls-key=/etc/ovgate/key.pem\n"
                                  "tls-ca=/etc/ovgate/ca.pem\n"
                                  "tls-psk-file=/etc/ovgate/psk\n"
                                  "nbd-require-tls=true\n"
                                  "[image lab]\n"
                                  "auto-enroll=false\n"
                                  "[image kiosk]\n"
                                  "[client pc01]\n"
                                  "chap-user=pc01\n"
                                  "chap-secret=0123456789ab\n"
                                  "mutual-chap-user=gateway\n"
                                  "mutual-chap-secret=ba9876543210\n"
                                  "nbd-tls-identity=pc01\n"
                                  "nbd-replace-stale=true\n";

static void
test_full(void)
{
    g_autoptr(GError) err = NULL;
    struct cfg *cfg = load_text(full_config, &err);
    const struct cfg_listen *l;
    const struct cfg_client *c;

    g_assert_no_error(err);
    g_assert_cmpuint(cfg->listen_iscsi->len, ==, 2);
    l = g_ptr_array_index(cfg->listen_iscsi, 0);
    g_assert_cmpstr(l->host, ==, "0.0.0.0");
    g_assert_cmpuint(l->port, ==, 3260);
    l = g_ptr_array_index(cfg->listen_iscsi, 1);
    g_assert_cmpstr(l->host, ==, "::1");
    g_assert_cmpuint(l->port, ==, 3261);
    g_assert_cmpuint(cfg->listen_nbd->len, ==, 1);
    l = g_ptr_array_index(cfg->listen_nbd, 0);
    g_assert_cmpstr(l->host, ==, "127.0.0.1");
    g_assert_cmpuint(l->port, ==, CFG_DEFAULT_NBD_PORT);
    g_assert_cmpstr(cfg->control_socket, ==, "/run/ovgate/ctl.sock");
    g_assert_cmpstr(cfg->iqn_prefix, ==, "iqn.2026-01.org.example:lab");
    g_assert_cmpstr(cfg->target_alias, ==, "Lab gateway");
    g_assert_true(cfg->require_chap);
    g_assert_cmpint(cfg->nop_interval_s, ==, 0);
    g_assert_cmpint(cfg->busy_poll_us, ==, 0);
    g_assert_cmpint(cfg->nop_timeout_s, ==, 60);
    g_assert_cmpstr(cfg->log_level, ==, "debug");
    g_assert_cmpstr(cfg->tls_ca, ==, "/etc/ovgate/ca.pem");
    g_assert_cmpstr(cfg->tls_psk_file, ==, "/etc/ovgate/psk");
    g_assert_true(cfg->nbd_require_tls);
    g_assert_cmpint(cfg_get_image(cfg, "lab")->auto_enroll, ==, 0);
    g_assert_cmpint(cfg_get_image(cfg, "kiosk")->auto_enroll, ==, -1);
    c = cfg_get_client(cfg, "pc01");
    g_assert_nonnull(c);
    g_assert_cmpstr(c->chap_user, ==, "pc01");
    g_assert_cmpstr(c->chap_secret, ==, "0123456789ab");
    g_assert_cmpstr(c->mutual_chap_user, ==, "gateway");
    g_assert_cmpstr(c->mutual_chap_secret, ==, "ba9876543210");
    g_assert_cmpstr(c->nbd_tls_identity, ==, "pc01");
    g_assert_true(c->nbd_replace_stale);
    cfg_unref(cfg);
}

static void
test_empty_listen_disables(void)
{
    g_autoptr(GError) err = NULL;
    struct cfg *cfg = load_text("[ovgated]\nlisten-iscsi=\nlisten-nbd=:0\n", &err);

    g_assert_no_error(err);
    g_assert_cmpuint(cfg->listen_iscsi->len, ==, 0);
    g_assert_cmpuint(cfg->listen_nbd->len, ==, 1);
    g_assert_cmpuint(((struct cfg_listen *)g_ptr_array_index(cfg->listen_nbd, 0))->port, ==, 0);
    cfg_unref(cfg);
}

/* The shipped example must stay loadable. */
static void
test_example(void)
{
    g_autofree char *path =
        g_build_filename(OVGATE_SOURCE_ROOT, "contrib", "ovgated.conf.example", NULL);
    g_autoptr(GError) err = NULL;
    struct cfg *cfg = cfg_load(path, &err);

    g_assert_no_error(err);
    g_assert_cmpuint(cfg->listen_iscsi->len, ==, 2);
    g_assert_cmpint(cfg_get_image(cfg, "lab")->auto_enroll, ==, 1);
    g_assert_nonnull(cfg_get_client(cfg, "pc01"));
    cfg_unref(cfg);
}

static void
test_missing_file(void)
{
    g_autoptr(GError) err = NULL;

    g_assert_null(cfg_load("/nonexistent/ovgated.conf", &err));
    g_assert_error(err, CFG_ERROR, CFG_ERROR_IO);
    g_assert_nonnull(strstr(err->message, "/nonexistent/ovgated.conf"));
}

static void
test_syntax_error(void)
{
    g_autoptr(GError) err = NULL;

    g_assert_null(load_text("[ovgated\nlog-level=debug\n", &err));
    g_assert_error(err, CFG_ERROR, CFG_ERROR_INVALID);
    g_clear_error(&err);
    g_assert_null(load_text("just text\n", &err));
    g_assert_error(err, CFG_ERROR, CFG_ERROR_INVALID);
}

static void
test_unknown(void)
{
    assert_refused("[ovgated]\nlisten=1\n", "[ovgated]:listen", "unknown key");
    assert_refused("[gateway]\n", "[gateway]", "unknown group");
    assert_refused("[image lab]\nauto-enrol=true\n", "[image lab]:auto-enrol", "unknown key");
    assert_refused("[client pc01]\nsecret=x\n", "[client pc01]:secret", "unknown key");
    assert_refused("[ovgated]\nlog-level[de]=debug\n", "log-level[de]", "unknown key");
}

/* GKeyFile silently merges a repeated group and lets the last of a repeated
 * key win: a second [client pc01] with another chap-secret would change a
 * secret without a word. Both are refused, naming the place. */
static void
test_duplicates(void)
{
    assert_refused("[ovgated]\nlog-level=info\nlog-level=debug\n", "[ovgated]:log-level",
                   "more than once");
    assert_refused("[client pc01]\nchap-user=u\nchap-secret=abcdefghijkl\n"
                   "chap-secret=mnopqrstuvwx\n",
                   "[client pc01]:chap-secret", "more than once");
    assert_refused("[client pc01]\nchap-user=u\nchap-secret=abcdefghijkl\n"
                   "[image lab]\nauto-enroll=true\n"
                   "[client pc01]\nchap-secret=mnopqrstuvwx\n",
                   "[client pc01]", "more than once");
    assert_refused("[ovgated]\n[ovgated]\nlog-level=info\n", "[ovgated]", "more than once");
    /* one address and port twice cannot be bound twice */
    assert_refused("[ovgated]\nlisten-iscsi=0.0.0.0:3260;0.0.0.0:3260\n", "listen-iscsi",
                   "more than once");
    assert_refused("[ovgated]\nlisten-iscsi=127.0.0.1:4000\nlisten-nbd=127.0.0.1:4000\n",
                   "listen-nbd", "more than once");
    assert_refused("[ovgated]\nlisten-nbd=[::1]:10809;::1\n", "listen-nbd", "more than once");
    /* the same name in different groups is fine; so are several port-0
     * listeners and one port on two addresses */
    {
        g_autoptr(GError) err2 = NULL;
        struct cfg *cfg2 = load_text("[ovgated]\nlisten-iscsi=127.0.0.1:0;127.0.0.1:0;"
                                     "127.0.0.1:3260;[::1]:3260\nlisten-nbd=127.0.0.1:0\n",
                                     &err2);
        g_assert_no_error(err2);
        cfg_unref(cfg2);
    }
    {
        g_autoptr(GError) err = NULL;
        struct cfg *cfg = load_text("[image lab]\nauto-enroll=true\n[image pc01]\n"
                                    "auto-enroll=false\n[client pc01]\nchap-user=u\n"
                                    "chap-secret=abcdefghijkl\n",
                                    &err);
        g_assert_no_error(err);
        cfg_unref(cfg);
    }
}

static void
test_bad_values(void)
{
    assert_refused("[ovgated]\nrequire-chap=yes please\n", "[ovgated]:require-chap",
                   "not a boolean");
    assert_refused("[ovgated]\nnop-interval=five\n", "[ovgated]:nop-interval", "whole number");
    assert_refused("[ovgated]\nnop-interval=-1\n", "nop-interval", "0 to 3600");
    assert_refused("[ovgated]\nnop-timeout=0\n", "nop-timeout", "1 to 3600");
    assert_refused("[ovgated]\nbusy-poll-us=1001\n", "[ovgated]:busy-poll-us", "0 to 1000");
    assert_refused("[ovgated]\nbusy-poll-us=-5\n", "busy-poll-us", "0 to 1000");
    assert_refused("[ovgated]\nnop-timeout=99999999999999999999\n", "nop-timeout", NULL);
    assert_refused("[ovgated]\nlog-level=verbose\n", "[ovgated]:log-level", "verbose");
    assert_refused("[ovgated]\nlisten-iscsi=1.2.3.4:99999\n", "[ovgated]:listen-iscsi", "port");
    assert_refused("[ovgated]\nlisten-nbd=[::1\n", "[ovgated]:listen-nbd", "IPv6");
    assert_refused("[ovgated]\nlisten-nbd=host name:1\n", "listen-nbd", "invalid host");
    assert_refused("[ovgated]\niqn-prefix=iqn.lab\n", "[ovgated]:iqn-prefix", "RFC 7143");
    assert_refused("[ovgated]\niqn-prefix=iqn.2026-01.Org.Example\n", "iqn-prefix", NULL);
    assert_refused("[ovgated]\ncontrol-socket=\n", "[ovgated]:control-socket", "empty");
    assert_refused("[ovgated]\ntls-cert=/c.pem\n", "tls-key", "together");
    assert_refused("[ovgated]\ntls-ca=/ca.pem\n", "tls-ca", "needs tls-cert");
    assert_refused("[ovgated]\nnbd-require-tls=true\n", "nbd-require-tls", "neither");
    assert_refused("[image bad/name]\n", "[image bad/name]", "not a valid image name");
    assert_refused("[image ]\n", "[image ]", "not a valid image name");
    assert_refused("[client -x]\n", "[client -x]", "not a valid client name");
    assert_refused("[image lab]\nauto-enroll=maybe\n", "[image lab]:auto-enroll", "boolean");
}

static void
test_chap(void)
{
    assert_refused("[client pc01]\nchap-user=pc01\n", "[client pc01]:chap-secret", "together");
    assert_refused("[client pc01]\nchap-secret=0123456789ab\n", "[client pc01]:chap-user",
                   "together");
    assert_refused("[client pc01]\nchap-user=pc01\nchap-secret=short\n",
                   "[client pc01]:chap-secret", "at least 12");
    assert_refused("[client pc01]\nchap-user=pc01\nchap-secret=0123456789ab\n"
                   "mutual-chap-user=gw\nmutual-chap-secret=0123456789ab\n",
                   "[client pc01]:mutual-chap-secret", "must differ");
    assert_refused("[client pc01]\nmutual-chap-user=gw\nmutual-chap-secret=0123456789ab\n",
                   "[client pc01]:mutual-chap-user", "one-way");
    assert_refused("[client pc01]\nchap-user=pc01\nchap-secret=0123456789ab\n"
                   "mutual-chap-user=gw\nmutual-chap-secret=tiny\n",
                   "mutual-chap-secret", "at least 12");
    assert_refused("[client pc01]\nnbd-replace-stale=2\n", "nbd-replace-stale", "boolean");
}

static void
check_listen(const char *text, uint16_t defport, const char *host, uint16_t port)
{
    struct cfg_listen l = {0};
    g_autoptr(GError) err = NULL;

    g_assert_true(cfg_parse_listen(text, defport, &l, &err));
    g_assert_no_error(err);
    g_assert_cmpstr(l.host, ==, host);
    g_assert_cmpuint(l.port, ==, port);
    g_free(l.host);
}

static void
check_listen_bad(const char *text)
{
    struct cfg_listen l = {0};
    g_autoptr(GError) err = NULL;

    g_assert_false(cfg_parse_listen(text, 1, &l, &err));
    g_assert_error(err, CFG_ERROR, CFG_ERROR_INVALID);
    g_assert_null(l.host);
}

static void
test_parse_listen(void)
{
    check_listen("127.0.0.1:3260", 1, "127.0.0.1", 3260);
    check_listen("127.0.0.1", 10809, "127.0.0.1", 10809);
    check_listen(":0", 1, "", 0);
    check_listen("*:5", 1, "", 5);
    check_listen("[::1]:3260", 1, "::1", 3260);
    check_listen("[::]", 7, "::", 7);
    check_listen("fe80::1%eth0", 9, "fe80::1%eth0", 9);
    check_listen("gateway.example:65535", 1, "gateway.example", 65535);
    check_listen_bad("");
    check_listen_bad(NULL);
    check_listen_bad("1.2.3.4:");
    check_listen_bad("1.2.3.4:65536");
    check_listen_bad("1.2.3.4:+1");
    check_listen_bad("1.2.3.4:0x10");
    check_listen_bad("[]:1");
    check_listen_bad("[::1]x");
    check_listen_bad("a b:1");
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/config/defaults", test_defaults);
    g_test_add_func("/config/full", test_full);
    g_test_add_func("/config/empty-listen-disables", test_empty_listen_disables);
    g_test_add_func("/config/example", test_example);
    g_test_add_func("/config/missing-file", test_missing_file);
    g_test_add_func("/config/syntax-error", test_syntax_error);
    g_test_add_func("/config/unknown-group-or-key", test_unknown);
    g_test_add_func("/config/bad-values", test_bad_values);
    g_test_add_func("/config/duplicates", test_duplicates);
    g_test_add_func("/config/chap", test_chap);
    g_test_add_func("/config/parse-listen", test_parse_listen);
    return g_test_run();
}
