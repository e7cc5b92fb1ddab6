/* util.c — small helpers of the overlay library: the OV_ERROR domain and
 * errno mapping, CRC-32C, UUIDs.
 *
 * CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) is the checksum of
 * the overlay header and map slots and of iSCSI digests (RFC 7143 §13.1). It
 * runs on the SSE4.2 crc32 instruction when the CPU has it and on a
 * slice-by-8 table otherwise; both give the same result (unit-tested).
 */
#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <glib.h>

#include "ov-int.h"

GQuark
ov_error_quark(void)
{
    return g_quark_from_static_string("ov-error-quark");
}

enum ov_error_code
ov_error_from_errno(int err)
{
    if (err < 0)
        err = -err;
    switch (err) {
    case ENOSPC:
    case EDQUOT:
        return OV_ERROR_NO_SPACE;
    case ENOENT:
        return OV_ERROR_NOT_FOUND;
    case EEXIST:
        return OV_ERROR_EXISTS;
    case EAGAIN:
    case EACCES:
        return OV_ERROR_LOCKED;
    case EINVAL:
        return OV_ERROR_INVALID;
    default:
        return OV_ERROR_FAILED;
    }
}

void
ov_set_error_errno(GError **error, int err, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *msg = NULL;

    if (err < 0)
        err = -err;
    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    /* EACCES from open() is a permission problem, not a lock. */
    g_set_error(error, OV_ERROR, err == EACCES ? OV_ERROR_FAILED : ov_error_from_errno(err),
                "%s: %s", msg, g_strerror(err));
}

/* ---- CRC-32C ---- */

static uint32_t crc_table[8][256];
static gsize crc_table_once;

static void
crc_table_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
}

static uint32_t
crc32c_soft(uint32_t crc, const uint8_t *p, size_t len)
{
    while (len >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        v = GUINT64_FROM_LE(v) ^ crc;
        crc = crc_table[7][v & 0xff] ^ crc_table[6][(v >> 8) & 0xff] ^
              crc_table[5][(v >> 16) & 0xff] ^ crc_table[4][(v >> 24) & 0xff] ^
              crc_table[3][(v >> 32) & 0xff] ^ crc_table[2][(v >> 40) & 0xff] ^
              crc_table[1][(v >> 48) & 0xff] ^ crc_table[0][v >> 56];
        p += 8;
        len -= 8;
    }
    while (len--)
        crc = (crc >> 8) ^ crc_table[0][(crc ^ *p++) & 0xff];
    return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t
crc32c_sse42(uint32_t crc, const uint8_t *p, size_t len)
{
    uint64_t c = crc;

    while (len >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = __builtin_ia32_crc32di(c, v);
        p += 8;
        len -= 8;
    }
    crc = (uint32_t)c;
    while (len--)
        crc = __builtin_ia32_crc32qi(crc, *p++);
    return crc;
}
#endif

/* Exposed for the unit test that compares both implementations. */
uint32_t ov_crc32c_soft(uint32_t crc, const void *data, size_t len);
uint32_t
ov_crc32c_soft(uint32_t crc, const void *data, size_t len)
{
    if (g_once_init_enter(&crc_table_once)) {
        crc_table_init();
        g_once_init_leave(&crc_table_once, 1);
    }
    return ~crc32c_soft(~crc, data, len);
}

uint32_t
ov_crc32c(uint32_t crc, const void *data, size_t len)
{
#if defined(__x86_64__)
    static int have_sse42 = -1;
    int h = __atomic_load_n(&have_sse42, __ATOMIC_RELAXED);

    if (h < 0) {
        __builtin_cpu_init();
        h = __builtin_cpu_supports("sse4.2") ? 1 : 0;
        __atomic_store_n(&have_sse42, h, __ATOMIC_RELAXED);
    }
    if (h)
        return ~crc32c_sse42(~crc, data, len);
#endif
    return ov_crc32c_soft(crc, data, len);
}

/* ---- UUIDs ---- */

void
ov_uuid_generate(uint8_t uuid[OV_UUID_LEN])
{
    /* RFC 9562 version 4: random with the version and variant bits set. */
    for (int i = 0; i < OV_UUID_LEN; i += 4) {
        guint32 r = g_random_int();
        memcpy(uuid + i, &r, 4);
    }
    uuid[6] = (uint8_t)((uuid[6] & 0x0f) | 0x40);
    uuid[8] = (uint8_t)((uuid[8] & 0x3f) | 0x80);
}

void
ov_uuid_format(const uint8_t uuid[OV_UUID_LEN], char out[37])
{
    static const char hex[] = "0123456789abcdef";
    char *o = out;

    for (int i = 0; i < OV_UUID_LEN; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *o++ = '-';
        *o++ = hex[uuid[i] >> 4];
        *o++ = hex[uuid[i] & 15];
    }
    *o = '\0';
}

bool
ov_uuid_parse(const char *text, uint8_t uuid[OV_UUID_LEN])
{
    uint8_t tmp[OV_UUID_LEN];

    if (!text || strlen(text) != 36)
        return false;
    for (int i = 0, pos = 0; i < OV_UUID_LEN; i++) {
        if (pos == 8 || pos == 13 || pos == 18 || pos == 23) {
            if (text[pos] != '-')
                return false;
            pos++;
        }
        int hi = g_ascii_xdigit_value(text[pos]);
        int lo = g_ascii_xdigit_value(text[pos + 1]);
        if (hi < 0 || lo < 0)
            return false;
        tmp[i] = (uint8_t)(hi << 4 | lo);
        pos += 2;
    }
    memcpy(uuid, tmp, OV_UUID_LEN);
    return true;
}
