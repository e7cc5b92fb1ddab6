/* sense.c — the only reason -> (key, ASC, ASCQ) table and the only errno ->
 * reason mapping of ovgate's SCSI layer, plus the sense data builders.
 *
 * Sense data formats (SPC-4 §4.5): fixed format (response code 70h) is the
 * default; descriptor format (72h) when the control mode page's D_SENSE bit is
 * set or REQUEST SENSE asks for DESC. Both carry the INFORMATION field when a
 * handler set one (miscompare offsets) and the sense-key specific field
 * pointer (SKSV, C/D, BPV, bit pointer, field pointer) for ILLEGAL REQUEST.
 */
#include <errno.h>

#include "sdev-int.h"

struct sdev_sense_row {
    uint8_t key, asc, ascq;
    const char *name;
};

/* SPC-4 Annex D (ASC/ASCQ) and SBC-3 §4.18 (thin provisioning). */
static const struct sdev_sense_row sdev_sense_table[SDEV_SENSE_COUNT] = {
    [SDEV_SENSE_OK] = {SDEV_KEY_NO_SENSE, 0x00, 0x00, "GOOD"},
    [SDEV_SENSE_RESERVATION_CONFLICT] = {SDEV_KEY_NO_SENSE, 0x00, 0x00, "RESERVATION CONFLICT"},
    [SDEV_SENSE_UNIT_ATTENTION] = {SDEV_KEY_UNIT_ATTENTION, 0x00, 0x00, "UNIT ATTENTION"},
    [SDEV_SENSE_NO_SENSE] = {SDEV_KEY_NO_SENSE, 0x00, 0x00, "NO ADDITIONAL SENSE INFORMATION"},
    [SDEV_SENSE_INVALID_OPCODE] = {SDEV_KEY_ILLEGAL_REQUEST, 0x20, 0x00,
                                   "INVALID COMMAND OPERATION CODE"},
    [SDEV_SENSE_INVALID_FIELD_IN_CDB] = {SDEV_KEY_ILLEGAL_REQUEST, 0x24, 0x00,
                                         "INVALID FIELD IN CDB"},
    [SDEV_SENSE_INVALID_FIELD_IN_PARAM] = {SDEV_KEY_ILLEGAL_REQUEST, 0x26, 0x00,
                                           "INVALID FIELD IN PARAMETER LIST"},
    [SDEV_SENSE_PARAM_LIST_LENGTH] = {SDEV_KEY_ILLEGAL_REQUEST, 0x1a, 0x00,
                                      "PARAMETER LIST LENGTH ERROR"},
    [SDEV_SENSE_LBA_OUT_OF_RANGE] = {SDEV_KEY_ILLEGAL_REQUEST, 0x21, 0x00,
                                     "LOGICAL BLOCK ADDRESS OUT OF RANGE"},
    [SDEV_SENSE_LUN_NOT_SUPPORTED] = {SDEV_KEY_ILLEGAL_REQUEST, 0x25, 0x00,
                                      "LOGICAL UNIT NOT SUPPORTED"},
    [SDEV_SENSE_SAVING_NOT_SUPPORTED] = {SDEV_KEY_ILLEGAL_REQUEST, 0x39, 0x00,
                                         "SAVING PARAMETERS NOT SUPPORTED"},
    [SDEV_SENSE_INVALID_RELEASE_OF_PR] = {SDEV_KEY_ILLEGAL_REQUEST, 0x26, 0x04,
                                          "INVALID RELEASE OF PERSISTENT RESERVATION"},
    [SDEV_SENSE_INSUFFICIENT_REG_RESOURCES] = {SDEV_KEY_ILLEGAL_REQUEST, 0x55, 0x04,
                                               "INSUFFICIENT REGISTRATION RESOURCES"},
    [SDEV_SENSE_WRITE_PROTECTED] = {SDEV_KEY_DATA_PROTECT, 0x27, 0x00, "WRITE PROTECTED"},
    [SDEV_SENSE_SPACE_ALLOC_FAILED] = {SDEV_KEY_DATA_PROTECT, 0x27, 0x07,
                                       "SPACE ALLOCATION FAILED WRITE PROTECT"},
    [SDEV_SENSE_READ_ERROR] = {SDEV_KEY_MEDIUM_ERROR, 0x11, 0x00, "UNRECOVERED READ ERROR"},
    [SDEV_SENSE_WRITE_ERROR] = {SDEV_KEY_MEDIUM_ERROR, 0x0c, 0x00, "WRITE ERROR"},
    [SDEV_SENSE_MISCOMPARE] = {SDEV_KEY_MISCOMPARE, 0x1d, 0x00,
                               "MISCOMPARE DURING VERIFY OPERATION"},
    [SDEV_SENSE_INTERNAL_FAILURE] = {SDEV_KEY_HARDWARE_ERROR, 0x44, 0x00,
                                     "INTERNAL TARGET FAILURE"},
    [SDEV_SENSE_SANITIZE_IN_PROGRESS] = {SDEV_KEY_NOT_READY, 0x04, 0x1b,
                                         "LOGICAL UNIT NOT READY, SANITIZE IN PROGRESS"},
    [SDEV_SENSE_SANITIZE_FAILED] = {SDEV_KEY_MEDIUM_ERROR, 0x31, 0x03, "SANITIZE COMMAND FAILED"},
    [SDEV_SENSE_TOO_MANY_TARGET_DESC] = {SDEV_KEY_ILLEGAL_REQUEST, 0x26, 0x06,
                                         "TOO MANY TARGET DESCRIPTORS"},
    [SDEV_SENSE_UNSUPPORTED_TARGET_DESC] = {SDEV_KEY_ILLEGAL_REQUEST, 0x26, 0x07,
                                            "UNSUPPORTED TARGET DESCRIPTOR TYPE CODE"},
    [SDEV_SENSE_TOO_MANY_SEGMENT_DESC] = {SDEV_KEY_ILLEGAL_REQUEST, 0x26, 0x08,
                                          "TOO MANY SEGMENT DESCRIPTORS"},
    [SDEV_SENSE_UNSUPPORTED_SEGMENT_DESC] = {SDEV_KEY_ILLEGAL_REQUEST, 0x26, 0x09,
                                             "UNSUPPORTED SEGMENT DESCRIPTOR TYPE CODE"},
    [SDEV_SENSE_COPY_TARGET_UNREACHABLE] = {SDEV_KEY_COPY_ABORTED, 0x0d, 0x02,
                                            "COPY TARGET DEVICE NOT REACHABLE"},
    [SDEV_SENSE_COPY_ABORTED] = {SDEV_KEY_COPY_ABORTED, 0x00, 0x00, "COPY ABORTED"},
};

void
sdev_sense_lookup(enum sdev_sense reason, uint8_t *key, uint8_t *asc, uint8_t *ascq)
{
    if ((unsigned)reason >= SDEV_SENSE_COUNT)
        reason = SDEV_SENSE_INTERNAL_FAILURE;
    *key = sdev_sense_table[reason].key;
    *asc = sdev_sense_table[reason].asc;
    *ascq = sdev_sense_table[reason].ascq;
}

const char *
sdev_sense_name(enum sdev_sense reason)
{
    if ((unsigned)reason >= SDEV_SENSE_COUNT)
        return "?";
    return sdev_sense_table[reason].name;
}

/* The one errno -> reason mapping. The view returns -ENOSPC/-EDQUOT when the
 * overlay store is full (thin provisioning: SBC-3 §4.7.3.7), -EROFS for image
 * views, -EIO for I/O errors or a corrupt overlay, -EINVAL for a range the
 * view refuses (the disk shrank underneath us). */
enum sdev_sense
sdev_sense_from_errno(int err, bool write)
{
    switch (err) {
    case 0:
        return SDEV_SENSE_OK;
    case -ENOSPC:
    case -EDQUOT:
        return SDEV_SENSE_SPACE_ALLOC_FAILED;
    case -EROFS:
    case -EPERM:
        return SDEV_SENSE_WRITE_PROTECTED;
    case -EIO:
        return write ? SDEV_SENSE_WRITE_ERROR : SDEV_SENSE_READ_ERROR;
    case -EINVAL:
        return SDEV_SENSE_LBA_OUT_OF_RANGE;
    default:
        return SDEV_SENSE_INTERNAL_FAILURE;
    }
}

enum sdev_sense
sdev_bad_cdb(struct sdev_req *req, unsigned byte, int bit)
{
    req->field_valid = true;
    req->field_in_cdb = true;
    req->field_byte = (uint16_t)byte;
    req->field_bit = (int8_t)bit;
    return SDEV_SENSE_INVALID_FIELD_IN_CDB;
}

enum sdev_sense
sdev_bad_param(struct sdev_req *req, unsigned byte, int bit)
{
    req->field_valid = true;
    req->field_in_cdb = false;
    req->field_byte = (uint16_t)byte;
    req->field_bit = (int8_t)bit;
    return SDEV_SENSE_INVALID_FIELD_IN_PARAM;
}

/* Sense-key specific bytes for a field pointer (SPC-4 §4.5.2.4.2). */
static void
sdev_sense_sks(const struct sdev_req *d, uint8_t sks[3])
{
    sks[0] = 0x80; /* SKSV */
    if (d->field_in_cdb)
        sks[0] |= 0x40; /* C/D */
    if (d->field_bit >= 0)
        sks[0] |= 0x08 | (uint8_t)(d->field_bit & 7); /* BPV + bit pointer */
    sdev_put_be16(sks + 1, d->field_byte);
}

uint32_t
sdev_sense_build(uint8_t *buf, bool desc_format, uint8_t key, uint8_t asc, uint8_t ascq,
                 const struct sdev_req *d)
{
    bool info = d && d->info_valid;
    bool field = d && d->field_valid;

    memset(buf, 0, 32);
    if (desc_format) {
        /* SPC-4 §4.5.2: 8-byte header + descriptors. */
        uint32_t len = 8;
        buf[0] = 0x72;
        buf[1] = key & 0x0f;
        buf[2] = asc;
        buf[3] = ascq;
        if (info) {
            uint8_t *p = buf + len; /* information descriptor, §4.5.2.2 */
            p[0] = 0x00;
            p[1] = 0x0a;
            p[2] = 0x80; /* VALID */
            sdev_put_be64(p + 4, d->info);
            len += 12;
        }
        if (field) {
            uint8_t *p = buf + len; /* sense key specific descriptor, §4.5.2.4 */
            p[0] = 0x02;
            p[1] = 0x06;
            sdev_sense_sks(d, p + 4);
            len += 8;
        }
        buf[7] = (uint8_t)(len - 8);
        return len;
    }
    /* Fixed format, SPC-4 §4.5.3: 18 bytes. */
    buf[0] = 0x70;
    buf[2] = key & 0x0f;
    if (info && d->info <= UINT32_MAX) {
        buf[0] |= 0x80; /* VALID */
        sdev_put_be32(buf + 3, (uint32_t)d->info);
    }
    buf[7] = 10;
    buf[12] = asc;
    buf[13] = ascq;
    if (field)
        sdev_sense_sks(d, buf + 15);
    return 18;
}

void
sdev_sense_apply(struct sdev_req *req, enum sdev_sense reason, bool desc_format)
{
    struct sdev_cmd *cmd = req->cmd;
    uint8_t key, asc, ascq;

    if (reason == SDEV_SENSE_OK) {
        cmd->status = SDEV_STATUS_GOOD;
        cmd->sense_len = 0;
        return;
    }
    if (reason == SDEV_SENSE_RESERVATION_CONFLICT) {
        cmd->status = SDEV_STATUS_RESERVATION_CONFLICT;
        cmd->sense_len = 0;
        return;
    }
    sdev_sense_lookup(reason, &key, &asc, &ascq);
    if (reason == SDEV_SENSE_UNIT_ATTENTION) {
        asc = req->ua_asc;
        ascq = req->ua_ascq;
    }
    cmd->status = SDEV_STATUS_CHECK_CONDITION;
    cmd->sense_len = sdev_sense_build(cmd->sense, desc_format, key, asc, ascq, req);
    /* A failed command returns no data. */
    g_clear_pointer(&cmd->data_in, g_free);
    cmd->data_in_len = 0;
}

void
sdev_cmd_set_sense(struct sdev_cmd *cmd, uint8_t key, uint8_t asc, uint8_t ascq)
{
    cmd->status = SDEV_STATUS_CHECK_CONDITION;
    cmd->sense_len = sdev_sense_build(cmd->sense, false, key, asc, ascq, NULL);
}
