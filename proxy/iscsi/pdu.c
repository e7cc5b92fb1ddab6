/* pdu.c — byte-order codec for the iSCSI Basic Header Segment.
 *
 * All iSCSI header fields are big-endian (RFC 7143 §11.1, "network byte
 * order"). This is the only file that converts them; everything else reads
 * and writes fields through these helpers.
 */
#include <string.h>

#include "pdu.h"

uint32_t
iscsit_bhs_get32(const struct iscsit_bhs *h, size_t off)
{
    g_assert(off + 4 <= ISCSIT_BHS_LEN);
    return (uint32_t)h->b[off] << 24 | (uint32_t)h->b[off + 1] << 16 |
           (uint32_t)h->b[off + 2] << 8 | h->b[off + 3];
}

void
iscsit_bhs_set32(struct iscsit_bhs *h, size_t off, uint32_t v)
{
    g_assert(off + 4 <= ISCSIT_BHS_LEN);
    h->b[off] = v >> 24;
    h->b[off + 1] = v >> 16;
    h->b[off + 2] = v >> 8;
    h->b[off + 3] = v;
}

uint16_t
iscsit_bhs_get16(const struct iscsit_bhs *h, size_t off)
{
    g_assert(off + 2 <= ISCSIT_BHS_LEN);
    return (uint16_t)(h->b[off] << 8 | h->b[off + 1]);
}

void
iscsit_bhs_set16(struct iscsit_bhs *h, size_t off, uint16_t v)
{
    g_assert(off + 2 <= ISCSIT_BHS_LEN);
    h->b[off] = v >> 8;
    h->b[off + 1] = v;
}

uint32_t
iscsit_bhs_ahs_len(const struct iscsit_bhs *h)
{
    return (uint32_t)h->b[ISCSIT_OFF_AHSLEN] * 4;
}

uint32_t
iscsit_bhs_dsl(const struct iscsit_bhs *h)
{
    return (uint32_t)h->b[5] << 16 | (uint32_t)h->b[6] << 8 | h->b[7];
}

void
iscsit_bhs_set_dsl(struct iscsit_bhs *h, uint32_t len)
{
    g_assert(len <= ISCSIT_DSL_MAX);
    h->b[5] = len >> 16;
    h->b[6] = len >> 8;
    h->b[7] = len;
}

uint64_t
iscsit_bhs_get_lun(const struct iscsit_bhs *h)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++)
        v = v << 8 | h->b[ISCSIT_OFF_LUN + i];
    return v;
}

void
iscsit_bhs_set_lun(struct iscsit_bhs *h, uint64_t lun)
{
    for (int i = 7; i >= 0; i--) {
        h->b[ISCSIT_OFF_LUN + i] = lun & 0xff;
        lun >>= 8;
    }
}

bool
iscsit_lun_decode(uint64_t raw, uint64_t *lun)
{
    unsigned method = (unsigned)(raw >> 62);

    if ((raw & 0x0000ffffffffffffull) != 0)
        return false; /* a second level: we only have a single level of LUNs */
    if (method == 0) {
        /* Peripheral device addressing: bus identifier must be 0 for a LU. */
        if ((raw >> 56) & 0x3f)
            return false;
        *lun = (raw >> 48) & 0xff;
        return true;
    }
    if (method == 1) {
        *lun = (raw >> 48) & 0x3fff; /* flat space addressing */
        return true;
    }
    return false;
}

uint64_t
iscsit_bhs_get_isid(const struct iscsit_bhs *h)
{
    uint64_t v = 0;

    for (int i = 0; i < 6; i++)
        v = v << 8 | h->b[8 + i];
    return v;
}

void
iscsit_bhs_set_isid(struct iscsit_bhs *h, uint64_t isid)
{
    for (int i = 5; i >= 0; i--) {
        h->b[8 + i] = isid & 0xff;
        isid >>= 8;
    }
}

bool
iscsit_pdu_cdb(const struct iscsit_bhs *h, const uint8_t *ahs, uint32_t ahs_len, uint8_t *cdb,
               size_t cdb_max, size_t *cdb_len)
{
    uint32_t off = 0;

    g_assert(cdb_max >= 16);
    memcpy(cdb, h->b + 32, 16);
    *cdb_len = 16;
    if (ahs_len % 4 != 0)
        return false;
    while (off < ahs_len) {
        /* AHSLength counts the AHS-specific bytes after AHSLength and
         * AHSType; each AHS is padded to a multiple of 4 bytes. */
        uint16_t alen = (uint16_t)(ahs[off] << 8 | ahs[off + 1]);
        uint8_t type = ahs[off + 2];
        uint32_t size = (3u + alen + 3u) & ~3u;

        if (size > ahs_len - off)
            return false;
        if (type == ISCSIT_AHS_EXT_CDB) {
            /* a reserved byte, then CDB bytes 16 and up; only one such AHS */
            if (alen < 2 || *cdb_len != 16 || 16 + (size_t)alen - 1 > cdb_max)
                return false;
            memcpy(cdb + 16, ahs + off + 4, alen - 1u);
            *cdb_len = 16 + (size_t)alen - 1;
        } else if (type != ISCSIT_AHS_BIDI_READ_LEN || alen != 5) {
            return false;
        }
        off += size;
    }
    return true;
}

const char *
iscsit_op_name(uint8_t op)
{
    static const char *const names[ISCSIT_OP_MASK + 1] = {
        [ISCSIT_OP_NOP_OUT] = "NOP-Out",
        [ISCSIT_OP_SCSI_CMD] = "SCSI Command",
        [ISCSIT_OP_TMF_REQ] = "Task Management Function Request",
        [ISCSIT_OP_LOGIN_REQ] = "Login Request",
        [ISCSIT_OP_TEXT_REQ] = "Text Request",
        [ISCSIT_OP_DATA_OUT] = "SCSI Data-Out",
        [ISCSIT_OP_LOGOUT_REQ] = "Logout Request",
        [ISCSIT_OP_SNACK_REQ] = "SNACK Request",
        [ISCSIT_OP_NOP_IN] = "NOP-In",
        [ISCSIT_OP_SCSI_RSP] = "SCSI Response",
        [ISCSIT_OP_TMF_RSP] = "Task Management Function Response",
        [ISCSIT_OP_LOGIN_RSP] = "Login Response",
        [ISCSIT_OP_TEXT_RSP] = "Text Response",
        [ISCSIT_OP_DATA_IN] = "SCSI Data-In",
        [ISCSIT_OP_LOGOUT_RSP] = "Logout Response",
        [ISCSIT_OP_R2T] = "Ready To Transfer",
        [ISCSIT_OP_ASYNC] = "Asynchronous Message",
        [ISCSIT_OP_REJECT] = "Reject",
    };
    op &= ISCSIT_OP_MASK;
    return names[op] ? names[op] : "unknown";
}
