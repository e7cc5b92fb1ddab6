/* chap.c — CHAP computations for iSCSI login (RFC 7143 §12.1.3, RFC 1994).
 *
 * The response to a challenge is MD5(identifier || secret || challenge)
 * (RFC 1994 §4.1, algorithm 5 = MD5 in RFC 7143 §12.1.3). MD5 comes from
 * GLib's GChecksum. The exchange itself (which keys when) is in login.c.
 */
#include <string.h>

#include "iscsi-int.h"

void
iscsit_chap_response(uint8_t id, const uint8_t *secret, size_t secret_len, const uint8_t *challenge,
                     size_t challenge_len, uint8_t out[16])
{
    g_autoptr(GChecksum) md5 = g_checksum_new(G_CHECKSUM_MD5);
    gsize len = 16;

    g_checksum_update(md5, &id, 1);
    g_checksum_update(md5, secret, (gssize)secret_len);
    g_checksum_update(md5, challenge, (gssize)challenge_len);
    g_checksum_get_digest(md5, out, &len);
    g_assert(len == 16);
}

char *
iscsit_hex_encode(const uint8_t *data, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    char *s = g_malloc(2 + 2 * len + 1);

    s[0] = '0';
    s[1] = 'x';
    for (size_t i = 0; i < len; i++) {
        s[2 + 2 * i] = hex[data[i] >> 4];
        s[3 + 2 * i] = hex[data[i] & 15];
    }
    s[2 + 2 * len] = '\0';
    return s;
}
