/* cfg.h — ovgated's configuration: the GLib key file (docs/config.md) merged
 * with command-line overrides, validated into plain structs. Nothing else in
 * the daemon parses files. A cfg is immutable once loaded; SIGHUP loads a new
 * one and swaps it in (holders keep their reference to the old one).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>

#define CFG_ERROR (cfg_error_quark())
GQuark cfg_error_quark(void);
enum cfg_error_code { CFG_ERROR_INVALID, CFG_ERROR_IO };

#define CFG_DEFAULT_IQN_PREFIX "iqn.2026-11.org.ovgate"
#define CFG_DEFAULT_ISCSI_PORT 3260
#define CFG_DEFAULT_NBD_PORT 10809
/* busy-poll-us: receive polling window, microseconds (proxy/net/rxpoll.h) */
#define CFG_DEFAULT_BUSY_POLL_US 50
#define CFG_BUSY_POLL_MAX_US 1000

struct cfg_listen {
    char *host; /* numeric address or name; "" = any */
    uint16_t port;
};

/* Per-image options ([image NAME] groups). */
struct cfg_image {
    char *name;
    int auto_enroll; /* -1 = not set here (store flag decides), 0/1 */
};

/* Per-client options ([client NAME] groups): iSCSI CHAP secrets, NBD binding. */
struct cfg_client {
    char *name;
    char *chap_user;          /* one-way CHAP: initiator authenticates to us */
    char *chap_secret;
    char *mutual_chap_user;   /* mutual CHAP: we authenticate to the initiator */
    char *mutual_chap_secret;
    char *nbd_tls_identity;   /* PSK identity or X.509 DN required for IMAGE/CLIENT over NBD */
    bool nbd_replace_stale;   /* a new NBD connection replaces this client's old one */
};

struct cfg {
    char *store_dir;
    GPtrArray *listen_iscsi; /* struct cfg_listen * */
    GPtrArray *listen_nbd;   /* struct cfg_listen *; empty = NBD off */
    char *control_socket;    /* NULL = STORE/ovgated.sock */
    char *iqn_prefix;
    char *target_alias;      /* TargetAlias; NULL = none */
    bool require_chap;       /* refuse iSCSI logins without CHAP (default false) */
    /* CHAP for iSCSI discovery sessions (NULL = discovery is not authenticated) */
    char *discovery_chap_user, *discovery_chap_secret;
    char *discovery_mutual_chap_user, *discovery_mutual_chap_secret;
    int nop_interval_s;      /* NOP-In ping of idle initiators; 0 = off (default 5) */
    int nop_timeout_s;       /* drop the connection after no answer (default 30) */
    int busy_poll_us;        /* receive polling window, 0..1000 (default 50; docs/concurrency.md) */
    char *log_level;         /* "error".."debug" */
    /* NBD TLS */
    char *tls_cert, *tls_key, *tls_ca; /* X.509 PEM files */
    char *tls_psk_file;                /* "identity:hexkey" lines (nbdkit/qemu format) */
    bool nbd_require_tls;
    GHashTable *images;  /* name -> struct cfg_image * */
    GHashTable *clients; /* name -> struct cfg_client * */
    volatile int refcount;
};

/* Load path (NULL = built-in defaults only). Caller frees with cfg_unref. */
struct cfg *cfg_load(const char *path, GError **error);
struct cfg *cfg_ref(struct cfg *cfg);
void cfg_unref(struct cfg *cfg);
/* Parse "ADDR:PORT", "[v6]:PORT", ":PORT" or "ADDR" (default_port). */
bool cfg_parse_listen(const char *text, uint16_t default_port, struct cfg_listen *out,
                      GError **error);
void cfg_listen_free(struct cfg_listen *l);
/* NULL when the config has no such group. Borrowed. */
const struct cfg_image *cfg_get_image(const struct cfg *cfg, const char *name);
const struct cfg_client *cfg_get_client(const struct cfg *cfg, const char *name);
