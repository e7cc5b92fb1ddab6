/* tls.c — TLS for NBD (proto.md "TLS support"): GnuTLS credentials loaded
 * once from the configuration (X.509 certificate + key, optional CA for
 * client certificates, and/or a PSK file), the server side of the handshake
 * after NBD_OPT_STARTTLS, and the peer identity that exports are bound to.
 *
 * Identity: with PSK it is the PSK identity (user name); with X.509 it is
 * the RFC 4514 DN of a client certificate that verified against tls_ca. A
 * client certificate that does not verify ends the handshake; no client
 * certificate at all gives no identity (the client may still use exports
 * that are not bound to one).
 *
 * Credentials are read when the server starts and again for the first new
 * connection after a configuration reload (SIGHUP) that names other files;
 * if they fail to load, the old ones stay in force. Connections keep the
 * credentials they started with (refcounted).
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "nbd-int.h"
#include "log.h"

#define TLS_PRIORITY "NORMAL:+ECDHE-PSK:+DHE-PSK:+PSK"
#define TLS_HANDSHAKE_TIMEOUT_MS 30000

struct nbdsrv_tls {
    gint refcount;
    gnutls_certificate_credentials_t x509; /* NULL: no certificate */
    bool request_client_cert;
    gnutls_psk_server_credentials_t psk; /* NULL: no PSK */
    GHashTable *psk_keys;                /* identity -> GBytes key */
    gnutls_priority_t priority;
};

static gboolean
tls_set_error(GError **error, int rc, const char *what, const char *path)
{
    g_set_error(error, NBDSRV_ERROR, NBDSRV_ERROR_TLS, "TLS: %s %s: %s", what, path ? path : "",
                gnutls_strerror(rc));
    return FALSE;
}

/* "identity:hexkey" per line (the format of psktool, nbdkit and qemu);
 * blank lines and lines starting with '#' are skipped. */
static bool
tls_load_psk_file(struct nbdsrv_tls *tls, const char *path, GError **error)
{
    g_autofree char *text = NULL;

    if (!g_file_get_contents(path, &text, NULL, error)) {
        g_prefix_error(error, "TLS PSK file: ");
        return false;
    }
    tls->psk_keys =
        g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify)g_bytes_unref);
    g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
    for (int i = 0; lines[i]; i++) {
        char *line = g_strstrip(lines[i]);
        if (*line == 0 || *line == '#')
            continue;
        char *colon = strchr(line, ':');
        size_t hexlen = colon ? strlen(colon + 1) : 0;
        if (!colon || colon == line || hexlen == 0 || hexlen % 2 != 0) {
            g_set_error(error, NBDSRV_ERROR, NBDSRV_ERROR_CONFIG,
                        "TLS PSK file %s line %d: expected identity:hexkey", path, i + 1);
            return false;
        }
        GByteArray *key = g_byte_array_sized_new((guint)(hexlen / 2));
        for (size_t j = 0; j < hexlen; j += 2) {
            int hi = g_ascii_xdigit_value(colon[1 + j]), lo = g_ascii_xdigit_value(colon[2 + j]);
            if (hi < 0 || lo < 0) {
                g_byte_array_unref(key);
                g_set_error(error, NBDSRV_ERROR, NBDSRV_ERROR_CONFIG,
                            "TLS PSK file %s line %d: key is not hexadecimal", path, i + 1);
                return false;
            }
            uint8_t b = (uint8_t)(hi << 4 | lo);
            g_byte_array_append(key, &b, 1);
        }
        g_hash_table_replace(tls->psk_keys, g_strndup(line, (gsize)(colon - line)),
                             g_byte_array_free_to_bytes(key));
    }
    if (g_hash_table_size(tls->psk_keys) == 0) {
        g_set_error(error, NBDSRV_ERROR, NBDSRV_ERROR_CONFIG, "TLS PSK file %s has no keys", path);
        return false;
    }
    return true;
}

static int
tls_psk_lookup(gnutls_session_t session, const char *username, gnutls_datum_t *key)
{
    struct nbdsrv_tls *tls = gnutls_session_get_ptr(session);
    GBytes *k = g_hash_table_lookup(tls->psk_keys, username);
    gsize len;

    if (!k) {
        LOG_RATELIMITED(G_LOG_LEVEL_MESSAGE, 10, 5, "TLS: unknown PSK identity '%s'", username);
        return -1;
    }
    const void *data = g_bytes_get_data(k, &len);
    key->data = gnutls_malloc(len);
    if (!key->data)
        return -1;
    memcpy(key->data, data, len);
    key->size = (unsigned)len;
    return 0;
}

static bool
tls_load_x509(struct nbdsrv_tls *tls, const struct cfg *cfg, GError **error)
{
    int rc = gnutls_certificate_allocate_credentials(&tls->x509);
    if (rc < 0)
        return tls_set_error(error, rc, "allocating certificate credentials", NULL);
    rc = gnutls_certificate_set_x509_key_file(tls->x509, cfg->tls_cert, cfg->tls_key,
                                              GNUTLS_X509_FMT_PEM);
    if (rc < 0)
        return tls_set_error(error, rc, "loading certificate/key", cfg->tls_cert);
    if (cfg->tls_ca) {
        rc = gnutls_certificate_set_x509_trust_file(tls->x509, cfg->tls_ca, GNUTLS_X509_FMT_PEM);
        if (rc < 0)
            return tls_set_error(error, rc, "loading CA", cfg->tls_ca);
        if (rc == 0) {
            g_set_error(error, NBDSRV_ERROR, NBDSRV_ERROR_CONFIG,
                        "TLS: CA file %s holds no certificate", cfg->tls_ca);
            return false;
        }
        tls->request_client_cert = true;
    }
    gnutls_certificate_set_known_dh_params(tls->x509, GNUTLS_SEC_PARAM_MEDIUM);
    return true;
}

struct nbdsrv_tls *
nbdsrv_tls_new(const struct cfg *cfg, GError **error)
{
    bool want_x509 = cfg->tls_cert || cfg->tls_key;

    if (!want_x509 && !cfg->tls_psk_file)
        return NULL;
    if (want_x509 && (!cfg->tls_cert || !cfg->tls_key)) {
        g_set_error(error, NBDSRV_ERROR, NBDSRV_ERROR_CONFIG,
                    "TLS: tls_cert and tls_key must be given together");
        return NULL;
    }
    struct nbdsrv_tls *tls = g_new0(struct nbdsrv_tls, 1);
    tls->refcount = 1;
    if (want_x509 && !tls_load_x509(tls, cfg, error))
        goto fail;
    if (cfg->tls_psk_file) {
        if (!tls_load_psk_file(tls, cfg->tls_psk_file, error))
            goto fail;
        int rc = gnutls_psk_allocate_server_credentials(&tls->psk);
        if (rc < 0) {
            tls_set_error(error, rc, "allocating PSK credentials", NULL);
            goto fail;
        }
        gnutls_psk_set_server_credentials_function(tls->psk, tls_psk_lookup);
        gnutls_psk_set_server_known_dh_params(tls->psk, GNUTLS_SEC_PARAM_MEDIUM);
    }
    int rc = gnutls_priority_init(&tls->priority, TLS_PRIORITY, NULL);
    if (rc < 0) {
        tls_set_error(error, rc, "priority", TLS_PRIORITY);
        goto fail;
    }
    return tls;
fail:
    nbdsrv_tls_unref(tls);
    return NULL;
}

bool
nbdsrv_tls_check(const struct cfg *cfg, GError **error)
{
    GError *local = NULL;

    nbdsrv_tls_unref(nbdsrv_tls_new(cfg, &local));
    if (local != NULL) {
        g_propagate_error(error, local);
        return false;
    }
    return true;
}

struct nbdsrv_tls *
nbdsrv_tls_ref(struct nbdsrv_tls *tls)
{
    if (tls)
        g_atomic_int_inc(&tls->refcount);
    return tls;
}

bool
nbdsrv_tls_same_files(const struct cfg *a, const struct cfg *b)
{
    return g_strcmp0(a->tls_cert, b->tls_cert) == 0 && g_strcmp0(a->tls_key, b->tls_key) == 0 &&
           g_strcmp0(a->tls_ca, b->tls_ca) == 0 && g_strcmp0(a->tls_psk_file, b->tls_psk_file) == 0;
}

void
nbdsrv_tls_unref(struct nbdsrv_tls *tls)
{
    if (!tls || !g_atomic_int_dec_and_test(&tls->refcount))
        return;
    if (tls->x509)
        gnutls_certificate_free_credentials(tls->x509);
    if (tls->psk)
        gnutls_psk_free_server_credentials(tls->psk);
    if (tls->priority)
        gnutls_priority_deinit(tls->priority);
    if (tls->psk_keys)
        g_hash_table_unref(tls->psk_keys);
    g_free(tls);
}

/* Transport pull: bytes the NBD reader already buffered come first (a
 * client may send its ClientHello right behind NBD_OPT_STARTTLS). */
static ssize_t
tls_pull(gnutls_transport_ptr_t ptr, void *buf, size_t len)
{
    struct nbdsrv_io *io = ptr;
    size_t avail = io->tls_pre_len - io->tls_pre_pos;

    if (avail > 0) {
        size_t n = MIN(avail, len);
        memcpy(buf, io->tls_pre + io->tls_pre_pos, n);
        io->tls_pre_pos += n;
        if (io->tls_pre_pos == io->tls_pre_len) {
            g_clear_pointer(&io->tls_pre, g_free);
            io->tls_pre_len = io->tls_pre_pos = 0;
        }
        return (ssize_t)n;
    }
    ssize_t r;
    do
        r = recv(io->fd, buf, len, 0);
    while (r < 0 && errno == EINTR);
    return r;
}

static int
tls_pull_timeout(gnutls_transport_ptr_t ptr, unsigned int ms)
{
    struct nbdsrv_io *io = ptr;
    struct pollfd pfd = {.fd = io->fd, .events = POLLIN};

    if (io->tls_pre_len > io->tls_pre_pos)
        return 1;
    int r = poll(&pfd, 1, ms == GNUTLS_INDEFINITE_TIMEOUT ? -1 : (int)ms);
    return r < 0 ? -1 : r;
}

static ssize_t
tls_push(gnutls_transport_ptr_t ptr, const void *buf, size_t len)
{
    struct nbdsrv_io *io = ptr;
    ssize_t r;

    do
        r = send(io->fd, buf, len, MSG_NOSIGNAL);
    while (r < 0 && errno == EINTR);
    return r;
}

/* The verified DN of the client's certificate, NULL if it sent none. */
static bool
tls_peer_dn(gnutls_session_t s, char **dn_out, GError **error)
{
    unsigned n = 0, status = 0;
    const gnutls_datum_t *certs = gnutls_certificate_get_peers(s, &n);

    *dn_out = NULL;
    if (!certs || n == 0)
        return true;
    int rc = gnutls_certificate_verify_peers2(s, &status);
    if (rc < 0 || status != 0) {
        g_set_error(error, NBDSRV_ERROR, NBDSRV_ERROR_DENIED,
                    "TLS: client certificate does not verify (status 0x%x)", status);
        return false;
    }
    gnutls_x509_crt_t crt;
    gnutls_datum_t dn = {NULL, 0};
    if (gnutls_x509_crt_init(&crt) < 0)
        return tls_set_error(error, GNUTLS_E_MEMORY_ERROR, "certificate", NULL);
    rc = gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER);
    if (rc >= 0)
        rc = gnutls_x509_crt_get_dn3(crt, &dn, 0);
    gnutls_x509_crt_deinit(crt);
    if (rc < 0)
        return tls_set_error(error, rc, "reading client certificate DN", NULL);
    *dn_out = g_strndup((const char *)dn.data, dn.size);
    gnutls_free(dn.data);
    return true;
}

bool
nbdsrv_tls_start(struct nbdsrv_tls *tls, struct nbdsrv_io *io, char **identity_out, GError **error)
{
    gnutls_session_t s;
    int rc;

    *identity_out = NULL;
    rc = gnutls_init(&s, GNUTLS_SERVER);
    if (rc < 0)
        return tls_set_error(error, rc, "session", NULL);
    gnutls_session_set_ptr(s, tls);
    rc = gnutls_priority_set(s, tls->priority);
    if (rc >= 0 && tls->x509)
        rc = gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, tls->x509);
    if (rc >= 0 && tls->psk)
        rc = gnutls_credentials_set(s, GNUTLS_CRD_PSK, tls->psk);
    if (rc < 0) {
        gnutls_deinit(s);
        return tls_set_error(error, rc, "session setup", NULL);
    }
    if (tls->request_client_cert)
        gnutls_certificate_server_set_request(s, GNUTLS_CERT_REQUEST);
    /* From here on the receive buffer holds decrypted bytes only: move
     * what is buffered (raw TLS records) aside for tls_pull. */
    if (nbdsrv_io_avail(io) > 0) {
        io->tls_pre_len = nbdsrv_io_avail(io);
        io->tls_pre_pos = 0;
        io->tls_pre = g_memdup2(nbdsrv_io_peek(io), io->tls_pre_len);
    }
    io->rpos = io->rlen = 0;
    gnutls_transport_set_ptr(s, io);
    gnutls_transport_set_pull_function(s, tls_pull);
    gnutls_transport_set_pull_timeout_function(s, tls_pull_timeout);
    gnutls_transport_set_push_function(s, tls_push);
    gnutls_handshake_set_timeout(s, TLS_HANDSHAKE_TIMEOUT_MS);
    do
        rc = gnutls_handshake(s);
    while (rc < 0 && !gnutls_error_is_fatal(rc));
    if (rc < 0) {
        gnutls_deinit(s);
        return tls_set_error(error, rc, "handshake", NULL);
    }

    char *identity = NULL;
    if (gnutls_auth_get_type(s) == GNUTLS_CRD_PSK) {
        const char *user = gnutls_psk_server_get_username(s);
        identity = user ? g_strdup(user) : NULL;
    } else if (!tls_peer_dn(s, &identity, error)) {
        gnutls_bye(s, GNUTLS_SHUT_WR);
        gnutls_deinit(s);
        return false;
    }
    io->tls = s;
    *identity_out = identity;
    return true;
}

void
nbdsrv_tls_end(struct nbdsrv_io *io)
{
    if (!io->tls)
        return;
    gnutls_bye(io->tls, GNUTLS_SHUT_WR);
    gnutls_deinit(io->tls);
    io->tls = NULL;
    g_clear_pointer(&io->tls_pre, g_free);
    io->tls_pre_len = io->tls_pre_pos = 0;
}
