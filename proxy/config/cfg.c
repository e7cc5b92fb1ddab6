/* cfg.c — ovgated's configuration file (docs/config.md): a GLib key file
 * read into the plain structs of cfg.h and validated completely before the
 * daemon sees it. Every error names the place as FILE:[group]:key so an admin
 * can fix it without reading code. Nothing here touches the store or the
 * network: names are checked by their syntax only.
 *
 * The loaded struct is immutable; SIGHUP builds a new one (cfg_load) and the
 * registry swaps it in, holders of the old one keep it alive by reference.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"

GQuark
cfg_error_quark(void)
{
    return g_quark_from_static_string("ovgate-cfg-error-quark");
}

#define CFG_MAIN_GROUP "ovgated"
/* RFC 7143 §9.2.1: CHAP secrets should be at least 12 bytes (96 bits);
 * initiators (open-iscsi, libiscsi) accept up to 256 bytes. */
#define CFG_CHAP_SECRET_MIN 12
#define CFG_CHAP_SECRET_MAX 255
#define CFG_CHAP_USER_MAX 255
#define CFG_ALIAS_MAX 255
/* RFC 7143 §4.2.7.1: an iSCSI name is at most 223 bytes; keep room for
 * ":IMAGE" (63 bytes) after the prefix. */
#define CFG_IQN_PREFIX_MAX (223 - 64)

static const char *const cfg_main_keys[] = {
    "listen-iscsi",
    "listen-nbd",
    "control-socket",
    "iqn-prefix",
    "target-alias",
    "require-chap",
    "nop-interval",
    "nop-timeout",
    "busy-poll-us",
    "log-level",
    "tls-cert",
    "tls-key",
    "tls-ca",
    "tls-psk-file",
    "nbd-require-tls",
    "discovery-chap-user",
    "discovery-chap-secret",
    "discovery-mutual-chap-user",
    "discovery-mutual-chap-secret",
    NULL,
};
static const char *const cfg_image_keys[] = {"auto-enroll", NULL};
static const char *const cfg_client_keys[] = {
    "chap-user",
    "chap-secret",
    "mutual-chap-user",
    "mutual-chap-secret",
    "nbd-tls-identity",
    "nbd-replace-stale",
    NULL,
};
static const char *const cfg_log_levels[] = {"error", "warning", "message", "info", "debug", NULL};

/* Parsing context: the file name for messages and the key file. */
struct cfg_parse {
    const char *file;
    GKeyFile *kf;
};

static void
cfg_image_free(struct cfg_image *img)
{
    if (img == NULL)
        return;
    g_free(img->name);
    g_free(img);
}

static void
cfg_client_free(struct cfg_client *c)
{
    if (c == NULL)
        return;
    g_free(c->name);
    g_free(c->chap_user);
    if (c->chap_secret != NULL)
        memset(c->chap_secret, 0, strlen(c->chap_secret));
    g_free(c->chap_secret);
    g_free(c->mutual_chap_user);
    if (c->mutual_chap_secret != NULL)
        memset(c->mutual_chap_secret, 0, strlen(c->mutual_chap_secret));
    g_free(c->mutual_chap_secret);
    g_free(c->nbd_tls_identity);
    g_free(c);
}

void
cfg_listen_free(struct cfg_listen *l)
{
    if (l == NULL)
        return;
    g_free(l->host);
    g_free(l);
}

static struct cfg *
cfg_new_defaults(void)
{
    struct cfg *cfg = g_new0(struct cfg, 1);
    struct cfg_listen *any = g_new0(struct cfg_listen, 1);

    cfg->refcount = 1;
    cfg->listen_iscsi = g_ptr_array_new_with_free_func((GDestroyNotify)cfg_listen_free);
    cfg->listen_nbd = g_ptr_array_new_with_free_func((GDestroyNotify)cfg_listen_free);
    any->host = g_strdup("");
    any->port = CFG_DEFAULT_ISCSI_PORT;
    g_ptr_array_add(cfg->listen_iscsi, any);
    cfg->iqn_prefix = g_strdup(CFG_DEFAULT_IQN_PREFIX);
    cfg->nop_interval_s = 5;
    cfg->busy_poll_us = CFG_DEFAULT_BUSY_POLL_US;
    cfg->nop_timeout_s = 30;
    cfg->log_level = g_strdup("message");
    cfg->images =
        g_hash_table_new_full(g_str_hash, g_str_equal, NULL, (GDestroyNotify)cfg_image_free);
    cfg->clients =
        g_hash_table_new_full(g_str_hash, g_str_equal, NULL, (GDestroyNotify)cfg_client_free);
    return cfg;
}

struct cfg *
cfg_ref(struct cfg *cfg)
{
    g_atomic_int_inc(&cfg->refcount);
    return cfg;
}

/* Wipe a secret before freeing it. */
static void
cfg_secret_free(char *secret)
{
    if (secret != NULL)
        memset(secret, 0, strlen(secret));
    g_free(secret);
}

void
cfg_unref(struct cfg *cfg)
{
    if (cfg == NULL || !g_atomic_int_dec_and_test(&cfg->refcount))
        return;
    g_free(cfg->store_dir);
    g_ptr_array_unref(cfg->listen_iscsi);
    g_ptr_array_unref(cfg->listen_nbd);
    g_free(cfg->control_socket);
    g_free(cfg->iqn_prefix);
    g_free(cfg->target_alias);
    cfg_secret_free(cfg->discovery_chap_secret);
    cfg_secret_free(cfg->discovery_mutual_chap_secret);
    g_free(cfg->discovery_chap_user);
    g_free(cfg->discovery_mutual_chap_user);
    g_free(cfg->log_level);
    g_free(cfg->tls_cert);
    g_free(cfg->tls_key);
    g_free(cfg->tls_ca);
    g_free(cfg->tls_psk_file);
    g_hash_table_unref(cfg->images);
    g_hash_table_unref(cfg->clients);
    g_free(cfg);
}

/* Same rule as ov_store_name_valid (store.h); config stays free of the store. */
static bool
cfg_name_valid(const char *name)
{
    size_t len = strlen(name);

    if (len == 0 || len > 63 || !g_ascii_isalnum(name[0]))
        return false;
    for (size_t i = 1; i < len; i++) {
        char c = name[i];
        if (!g_ascii_isalnum(c) && c != '.' && c != '_' && c != '-')
            return false;
    }
    return true;
}

static bool
cfg_port_parse(const char *text, uint16_t *out)
{
    guint64 v;

    if (text[0] == '\0' || strlen(text) > 5)
        return false;
    for (const char *p = text; *p; p++)
        if (!g_ascii_isdigit(*p))
            return false;
    v = g_ascii_strtoull(text, NULL, 10);
    if (v > 65535)
        return false;
    *out = (uint16_t)v;
    return true;
}

static bool
cfg_host_valid(const char *host, bool bracketed)
{
    for (const char *p = host; *p; p++) {
        char c = *p;
        if (g_ascii_isalnum(c) || c == '.' || c == '-' || c == '_' || c == ':' || c == '%')
            continue;
        return false;
    }
    if (!bracketed && strchr(host, ':') != NULL)
        return false;
    return true;
}

bool
cfg_parse_listen(const char *text, uint16_t default_port, struct cfg_listen *out, GError **error)
{
    g_autofree char *host = NULL;
    const char *port_text = NULL;
    uint16_t port = default_port;
    const char *colon;
    bool bracketed = false;

    if (text == NULL || text[0] == '\0') {
        g_set_error(error, CFG_ERROR, CFG_ERROR_INVALID, "empty listen address");
        return false;
    }
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (close == NULL || close == text + 1) {
            g_set_error(error, CFG_ERROR, CFG_ERROR_INVALID, "'%s': expected [IPv6-ADDRESS]:PORT",
                        text);
            return false;
        }
        host = g_strndup(text + 1, (gsize)(close - text - 1));
        bracketed = true;
        if (close[1] == ':')
            port_text = close + 2;
        else if (close[1] != '\0') {
            g_set_error(error, CFG_ERROR, CFG_ERROR_INVALID, "'%s': unexpected text after ']'",
                        text);
            return false;
        }
    } else if ((colon = strchr(text, ':')) != NULL && strchr(colon + 1, ':') != NULL) {
        /* Several colons and no brackets: a bare IPv6 address, default port. */
        host = g_strdup(text);
        bracketed = true;
    } else if (colon != NULL) {
        host = g_strndup(text, (gsize)(colon - text));
        port_text = colon + 1;
    } else {
        host = g_strdup(text);
    }
    if (port_text != NULL && !cfg_port_parse(port_text, &port)) {
        g_set_error(error, CFG_ERROR, CFG_ERROR_INVALID,
                    "'%s': port must be a number from 0 to 65535", text);
        return false;
    }
    if (g_str_equal(host, "*"))
        host[0] = '\0';
    if (!cfg_host_valid(host, bracketed)) {
        g_set_error(error, CFG_ERROR, CFG_ERROR_INVALID, "'%s': invalid host name or address",
                    text);
        return false;
    }
    out->host = g_steal_pointer(&host);
    out->port = port;
    return true;
}

/* --- key-file helpers: every error names FILE:[group]:key --- */

static void G_GNUC_PRINTF(5, 6)
    cfg_key_error(GError **error, const struct cfg_parse *p, const char *group, const char *key,
                  const char *fmt, ...)
{
    va_list ap;
    g_autofree char *msg = NULL;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_set_error(error, CFG_ERROR, CFG_ERROR_INVALID, "%s:[%s]:%s: %s", p->file, group, key, msg);
}

static bool
cfg_check_keys(const struct cfg_parse *p, const char *group, const char *const *allowed,
               GError **error)
{
    g_auto(GStrv) keys = g_key_file_get_keys(p->kf, group, NULL, NULL);

    for (size_t i = 0; keys != NULL && keys[i] != NULL; i++) {
        if (!g_strv_contains(allowed, keys[i])) {
            cfg_key_error(error, p, group, keys[i], "unknown key");
            return false;
        }
    }
    return true;
}

/* String value, or NULL when absent. Empty strings are refused unless
 * allow_empty. */
static bool
cfg_get_string(const struct cfg_parse *p, const char *group, const char *key, bool allow_empty,
               char **out, GError **error)
{
    g_autoptr(GError) local = NULL;
    g_autofree char *v = NULL;

    if (!g_key_file_has_key(p->kf, group, key, NULL))
        return true;
    v = g_key_file_get_string(p->kf, group, key, &local);
    if (v == NULL) {
        cfg_key_error(error, p, group, key, "%s", local->message);
        return false;
    }
    if (!allow_empty && v[0] == '\0') {
        cfg_key_error(error, p, group, key, "value must not be empty");
        return false;
    }
    if (!g_utf8_validate(v, -1, NULL)) {
        cfg_key_error(error, p, group, key, "value is not valid UTF-8");
        return false;
    }
    g_free(*out);
    *out = g_steal_pointer(&v);
    return true;
}

static bool
cfg_get_bool(const struct cfg_parse *p, const char *group, const char *key, int *out,
             GError **error)
{
    g_autoptr(GError) local = NULL;
    gboolean v;

    if (!g_key_file_has_key(p->kf, group, key, NULL))
        return true;
    v = g_key_file_get_boolean(p->kf, group, key, &local);
    if (local != NULL) {
        g_autofree char *raw = g_key_file_get_value(p->kf, group, key, NULL);
        cfg_key_error(error, p, group, key, "'%s' is not a boolean (use true or false)",
                      raw != NULL ? raw : "");
        return false;
    }
    *out = v ? 1 : 0;
    return true;
}

static bool
cfg_get_int(const struct cfg_parse *p, const char *group, const char *key, int min, int max,
            int *out, GError **error)
{
    g_autofree char *raw = NULL;
    char *end = NULL;
    gint64 v;

    if (!g_key_file_has_key(p->kf, group, key, NULL))
        return true;
    raw = g_key_file_get_value(p->kf, group, key, NULL);
    g_strstrip(raw);
    errno = 0;
    v = g_ascii_strtoll(raw, &end, 10);
    if (raw[0] == '\0' || *end != '\0' || errno != 0 || v < min || v > max) {
        cfg_key_error(error, p, group, key, "'%s' is not a whole number from %d to %d", raw, min,
                      max);
        return false;
    }
    *out = (int)v;
    return true;
}

static bool
cfg_get_listen_list(const struct cfg_parse *p, const char *key, uint16_t default_port,
                    GPtrArray *out, GError **error)
{
    g_autoptr(GError) local = NULL;
    g_auto(GStrv) items = NULL;
    gsize n = 0;

    if (!g_key_file_has_key(p->kf, CFG_MAIN_GROUP, key, NULL))
        return true;
    items = g_key_file_get_string_list(p->kf, CFG_MAIN_GROUP, key, &n, &local);
    if (items == NULL && local != NULL) {
        cfg_key_error(error, p, CFG_MAIN_GROUP, key, "%s", local->message);
        return false;
    }
    g_ptr_array_set_size(out, 0);
    for (gsize i = 0; i < n; i++) {
        struct cfg_listen l = {0};
        g_autoptr(GError) perr = NULL;
        char *item = g_strstrip(items[i]);

        if (item[0] == '\0')
            continue;
        if (!cfg_parse_listen(item, default_port, &l, &perr)) {
            cfg_key_error(error, p, CFG_MAIN_GROUP, key, "%s", perr->message);
            return false;
        }
        g_ptr_array_add(out, g_memdup2(&l, sizeof(l)));
    }
    return true;
}

/* --- groups --- */

static bool
cfg_iqn_prefix_valid(const char *s)
{
    size_t len = strlen(s);

    /* RFC 7143 §4.2.7: iSCSI names are lower-case after stringprep; the
     * "iqn." form is "iqn.YYYY-MM.reversed.domain[:anything]". */
    if (len < 12 || len > CFG_IQN_PREFIX_MAX || !g_str_has_prefix(s, "iqn."))
        return false;
    if (!g_ascii_isdigit(s[4]) || !g_ascii_isdigit(s[5]) || !g_ascii_isdigit(s[6]) ||
        !g_ascii_isdigit(s[7]) || s[8] != '-' || !g_ascii_isdigit(s[9]) ||
        !g_ascii_isdigit(s[10]) || s[11] != '.')
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!(g_ascii_islower(c) || g_ascii_isdigit(c) || c == '.' || c == '-' || c == ':'))
            return false;
    }
    return s[len - 1] != ':' && s[len - 1] != '.';
}

static bool
cfg_load_tls(const struct cfg_parse *p, struct cfg *cfg, GError **error)
{
    const char *g = CFG_MAIN_GROUP;
    int req = cfg->nbd_require_tls;

    if (!cfg_get_string(p, g, "tls-cert", false, &cfg->tls_cert, error) ||
        !cfg_get_string(p, g, "tls-key", false, &cfg->tls_key, error) ||
        !cfg_get_string(p, g, "tls-ca", false, &cfg->tls_ca, error) ||
        !cfg_get_string(p, g, "tls-psk-file", false, &cfg->tls_psk_file, error) ||
        !cfg_get_bool(p, g, "nbd-require-tls", &req, error))
        return false;
    cfg->nbd_require_tls = req;
    if ((cfg->tls_cert == NULL) != (cfg->tls_key == NULL)) {
        cfg_key_error(error, p, g, cfg->tls_cert == NULL ? "tls-cert" : "tls-key",
                      "tls-cert and tls-key must be given together");
        return false;
    }
    if (cfg->tls_ca != NULL && cfg->tls_cert == NULL) {
        cfg_key_error(error, p, g, "tls-ca", "tls-ca needs tls-cert and tls-key");
        return false;
    }
    if (cfg->nbd_require_tls && cfg->tls_cert == NULL && cfg->tls_psk_file == NULL) {
        cfg_key_error(error, p, g, "nbd-require-tls",
                      "TLS required but neither tls-cert/tls-key nor tls-psk-file is set");
        return false;
    }
    return true;
}

static bool
cfg_check_chap_pair(const struct cfg_parse *p, const char *group, const char *user_key,
                    const char *user, const char *secret_key, const char *secret, GError **error)
{
    if ((user == NULL) != (secret == NULL)) {
        cfg_key_error(error, p, group, user == NULL ? user_key : secret_key,
                      "%s and %s must be given together", user_key, secret_key);
        return false;
    }
    if (user == NULL)
        return true;
    if (strlen(user) > CFG_CHAP_USER_MAX) {
        cfg_key_error(error, p, group, user_key, "longer than %d bytes", CFG_CHAP_USER_MAX);
        return false;
    }
    if (strlen(secret) < CFG_CHAP_SECRET_MIN) {
        cfg_key_error(error, p, group, secret_key,
                      "CHAP secret is %zu bytes; at least %d are required (RFC 7143 §9.2.1)",
                      strlen(secret), CFG_CHAP_SECRET_MIN);
        return false;
    }
    if (strlen(secret) > CFG_CHAP_SECRET_MAX) {
        cfg_key_error(error, p, group, secret_key, "CHAP secret longer than %d bytes",
                      CFG_CHAP_SECRET_MAX);
        return false;
    }
    return true;
}

/* One CHAP setting: one-way pair, optional mutual pair; key names are
 * prefix + "chap-user" etc. */
static bool
cfg_check_chap(const struct cfg_parse *p, const char *group, const char *prefix, const char *user,
               const char *secret, const char *muser, const char *msecret, GError **error)
{
    g_autofree char *user_key = g_strconcat(prefix, "chap-user", NULL);
    g_autofree char *secret_key = g_strconcat(prefix, "chap-secret", NULL);
    g_autofree char *muser_key = g_strconcat(prefix, "mutual-chap-user", NULL);
    g_autofree char *msecret_key = g_strconcat(prefix, "mutual-chap-secret", NULL);

    if (!cfg_check_chap_pair(p, group, user_key, user, secret_key, secret, error) ||
        !cfg_check_chap_pair(p, group, muser_key, muser, msecret_key, msecret, error))
        return false;
    if (muser != NULL && user == NULL) {
        cfg_key_error(error, p, group, muser_key, "mutual CHAP needs one-way CHAP (%s, %s) too",
                      user_key, secret_key);
        return false;
    }
    /* RFC 7143 §9.2.1: a secret used to authenticate the initiator must not
     * also authenticate the target (reflection attack). */
    if (msecret != NULL && g_str_equal(secret, msecret)) {
        cfg_key_error(error, p, group, msecret_key, "must differ from %s (RFC 7143 §9.2.1)",
                      secret_key);
        return false;
    }
    return true;
}

/* The same address and port twice (in one list, or for both protocols)
 * cannot be bound twice: say so here, where --check-config sees it, rather
 * than as "address in use" at start, which reads like another program.
 * Port 0 (any free port) may repeat. */
static bool
cfg_check_listen_dups(const struct cfg_parse *p, const struct cfg *cfg, GError **error)
{
    const GPtrArray *lists[] = {cfg->listen_iscsi, cfg->listen_nbd};
    const char *keys[] = {"listen-iscsi", "listen-nbd"};
    g_autoptr(GHashTable) seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);

    for (int k = 0; k < 2; k++) {
        for (guint i = 0; i < lists[k]->len; i++) {
            const struct cfg_listen *l = g_ptr_array_index(lists[k], i);
            char *id;

            if (l->port == 0)
                continue;
            id = g_strdup_printf("[%s]:%u", l->host, (unsigned)l->port);
            if (!g_hash_table_add(seen, id)) {
                cfg_key_error(error, p, CFG_MAIN_GROUP, keys[k],
                              "%s port %u is listed more than once", l->host[0] ? l->host : "*",
                              (unsigned)l->port);
                return false;
            }
        }
    }
    return true;
}

static bool
cfg_load_main(const struct cfg_parse *p, struct cfg *cfg, GError **error)
{
    const char *g = CFG_MAIN_GROUP;
    int require_chap = cfg->require_chap;

    if (!g_key_file_has_group(p->kf, g))
        return true;
    if (!cfg_check_keys(p, g, cfg_main_keys, error) ||
        !cfg_get_listen_list(p, "listen-iscsi", CFG_DEFAULT_ISCSI_PORT, cfg->listen_iscsi, error) ||
        !cfg_get_listen_list(p, "listen-nbd", CFG_DEFAULT_NBD_PORT, cfg->listen_nbd, error) ||
        !cfg_check_listen_dups(p, cfg, error) ||
        !cfg_get_string(p, g, "control-socket", false, &cfg->control_socket, error) ||
        !cfg_get_string(p, g, "iqn-prefix", false, &cfg->iqn_prefix, error) ||
        !cfg_get_string(p, g, "target-alias", false, &cfg->target_alias, error) ||
        !cfg_get_bool(p, g, "require-chap", &require_chap, error) ||
        !cfg_get_int(p, g, "nop-interval", 0, 3600, &cfg->nop_interval_s, error) ||
        !cfg_get_int(p, g, "nop-timeout", 1, 3600, &cfg->nop_timeout_s, error) ||
        !cfg_get_int(p, g, "busy-poll-us", 0, CFG_BUSY_POLL_MAX_US, &cfg->busy_poll_us, error) ||
        !cfg_get_string(p, g, "log-level", false, &cfg->log_level, error) ||
        !cfg_get_string(p, g, "discovery-chap-user", false, &cfg->discovery_chap_user, error) ||
        !cfg_get_string(p, g, "discovery-chap-secret", false, &cfg->discovery_chap_secret, error) ||
        !cfg_get_string(p, g, "discovery-mutual-chap-user", false, &cfg->discovery_mutual_chap_user,
                        error) ||
        !cfg_get_string(p, g, "discovery-mutual-chap-secret", false,
                        &cfg->discovery_mutual_chap_secret, error) ||
        !cfg_check_chap(p, g, "discovery-", cfg->discovery_chap_user, cfg->discovery_chap_secret,
                        cfg->discovery_mutual_chap_user, cfg->discovery_mutual_chap_secret,
                        error) ||
        !cfg_load_tls(p, cfg, error))
        return false;
    cfg->require_chap = require_chap;
    if (!cfg_iqn_prefix_valid(cfg->iqn_prefix)) {
        cfg_key_error(error, p, g, "iqn-prefix",
                      "'%s' is not an iSCSI qualified name prefix like "
                      "iqn.2026-11.org.example (lower case, RFC 7143 §4.2.7)",
                      cfg->iqn_prefix);
        return false;
    }
    if (cfg->target_alias != NULL && strlen(cfg->target_alias) > CFG_ALIAS_MAX) {
        cfg_key_error(error, p, g, "target-alias", "longer than %d bytes", CFG_ALIAS_MAX);
        return false;
    }
    if (!g_strv_contains(cfg_log_levels, cfg->log_level)) {
        cfg_key_error(error, p, g, "log-level",
                      "'%s' is not one of error, warning, message, info, debug", cfg->log_level);
        return false;
    }
    return true;
}

static bool
cfg_load_image(const struct cfg_parse *p, struct cfg *cfg, const char *group, const char *name,
               GError **error)
{
    struct cfg_image *img = g_new0(struct cfg_image, 1);

    img->name = g_strdup(name);
    img->auto_enroll = -1;
    g_hash_table_replace(cfg->images, img->name, img);
    return cfg_check_keys(p, group, cfg_image_keys, error) &&
           cfg_get_bool(p, group, "auto-enroll", &img->auto_enroll, error);
}

static bool
cfg_load_client(const struct cfg_parse *p, struct cfg *cfg, const char *group, const char *name,
                GError **error)
{
    struct cfg_client *c = g_new0(struct cfg_client, 1);
    int replace = 0;

    c->name = g_strdup(name);
    g_hash_table_replace(cfg->clients, c->name, c);
    if (!cfg_check_keys(p, group, cfg_client_keys, error) ||
        !cfg_get_string(p, group, "chap-user", false, &c->chap_user, error) ||
        !cfg_get_string(p, group, "chap-secret", false, &c->chap_secret, error) ||
        !cfg_get_string(p, group, "mutual-chap-user", false, &c->mutual_chap_user, error) ||
        !cfg_get_string(p, group, "mutual-chap-secret", false, &c->mutual_chap_secret, error) ||
        !cfg_get_string(p, group, "nbd-tls-identity", false, &c->nbd_tls_identity, error) ||
        !cfg_get_bool(p, group, "nbd-replace-stale", &replace, error))
        return false;
    c->nbd_replace_stale = replace;
    return cfg_check_chap(p, group, "", c->chap_user, c->chap_secret, c->mutual_chap_user,
                          c->mutual_chap_secret, error);
}

static bool
cfg_load_groups(const struct cfg_parse *p, struct cfg *cfg, GError **error)
{
    g_auto(GStrv) groups = g_key_file_get_groups(p->kf, NULL);

    if (!cfg_load_main(p, cfg, error))
        return false;
    for (size_t i = 0; groups[i] != NULL; i++) {
        const char *g = groups[i];
        const char *name = NULL;
        bool is_image = false;

        if (g_str_equal(g, CFG_MAIN_GROUP))
            continue;
        if (g_str_has_prefix(g, "image ")) {
            name = g + strlen("image ");
            is_image = true;
        } else if (g_str_has_prefix(g, "client ")) {
            name = g + strlen("client ");
        } else {
            g_set_error(error, CFG_ERROR, CFG_ERROR_INVALID,
                        "%s:[%s]: unknown group (expected [ovgated], [image NAME] or "
                        "[client NAME])",
                        p->file, g);
            return false;
        }
        if (!cfg_name_valid(name)) {
            g_set_error(error, CFG_ERROR, CFG_ERROR_INVALID,
                        "%s:[%s]: '%s' is not a valid %s name ([A-Za-z0-9][A-Za-z0-9._-]*, "
                        "at most 63 bytes)",
                        p->file, g, name, is_image ? "image" : "client");
            return false;
        }
        if (is_image ? !cfg_load_image(p, cfg, g, name, error)
                     : !cfg_load_client(p, cfg, g, name, error))
            return false;
    }
    return true;
}

/* GKeyFile merges a group that appears twice and lets the last of a key
 * given twice win, silently. In a file that holds CHAP secrets and ACL-like
 * settings that hides mistakes (a second [client NAME] block overriding the
 * first's secret), so both are refused here, from the text itself. Lines are
 * read the way GKeyFile reads them: leading blanks skipped, '#' comments,
 * "[group]" headers, "key=value" with blanks around the key ignored. */
static bool
cfg_check_duplicates(const char *path, const char *text, GError **error)
{
    g_autoptr(GHashTable) groups = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    g_autoptr(GHashTable) keys = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
    g_autofree char *group = NULL;

    for (size_t i = 0; lines[i] != NULL; i++) {
        char *line = g_strstrip(lines[i]);
        char *eq;

        if (line[0] == '\0' || line[0] == '#')
            continue;
        if (line[0] == '[') {
            char *end = strrchr(line, ']');
            if (end == NULL)
                continue; /* a syntax error: GKeyFile reports it */
            g_free(group);
            group = g_strndup(line + 1, (gsize)(end - line - 1));
            if (!g_hash_table_add(groups, g_strdup(group))) {
                g_set_error(error, CFG_ERROR, CFG_ERROR_INVALID,
                            "%s:%zu: [%s]: group given more than once (merge the two blocks)",
                            path, i + 1, group);
                return false;
            }
            continue;
        }
        eq = strchr(line, '=');
        if (group == NULL || eq == NULL)
            continue;
        *eq = '\0';
        g_strchomp(line);
        if (!g_hash_table_add(keys, g_strdup_printf("%s\n%s", group, line))) {
            g_set_error(error, CFG_ERROR, CFG_ERROR_INVALID,
                        "%s:%zu: [%s]:%s: key given more than once", path, i + 1, group, line);
            return false;
        }
    }
    return true;
}

struct cfg *
cfg_load(const char *path, GError **error)
{
    struct cfg *cfg = cfg_new_defaults();
    g_autoptr(GKeyFile) kf = NULL;
    g_autoptr(GError) local = NULL;
    g_autofree char *text = NULL;
    gsize len = 0;
    struct cfg_parse p;

    if (path == NULL)
        return cfg;
    kf = g_key_file_new();
    if (!g_file_get_contents(path, &text, &len, &local) ||
        !g_key_file_load_from_data(kf, text, len, G_KEY_FILE_KEEP_TRANSLATIONS, &local)) {
        bool io = local->domain == G_FILE_ERROR;
        g_set_error(error, CFG_ERROR, io ? CFG_ERROR_IO : CFG_ERROR_INVALID, "%s: %s", path,
                    local->message);
        cfg_unref(cfg);
        return NULL;
    }
    p.file = path;
    p.kf = kf;
    if (!cfg_check_duplicates(path, text, error) || !cfg_load_groups(&p, cfg, error)) {
        cfg_unref(cfg);
        return NULL;
    }
    return cfg;
}

const struct cfg_image *
cfg_get_image(const struct cfg *cfg, const char *name)
{
    return g_hash_table_lookup(cfg->images, name);
}

const struct cfg_client *
cfg_get_client(const struct cfg *cfg, const char *name)
{
    return g_hash_table_lookup(cfg->clients, name);
}
