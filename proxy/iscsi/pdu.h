/* pdu.h — iSCSI PDU wire format (RFC 7143 §11): the Basic Header Segment,
 * opcodes, flag bits, and the codec helpers of pdu.c.
 *
 * The BHS is kept as the 48 raw bytes from the wire; every multi-byte field
 * is read and written only through the iscsit_bhs_get/set helpers below,
 * so byte order is converted in one place (pdu.c).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <glib.h>

#define ISCSIT_BHS_LEN 48
#define ISCSIT_DIGEST_LEN 4
#define ISCSIT_RSVD_TAG 0xffffffffu
/* DataSegmentLength is 24 bits (RFC 7143 §11.2.1.5). */
#define ISCSIT_DSL_MAX 0xffffffu
/* TotalAHSLength is in 4-byte words, one byte (RFC 7143 §11.2.1.4). */
#define ISCSIT_AHS_MAX (255u * 4u)

/* Opcodes (RFC 7143 §11.2.1.2). */
enum iscsit_op {
    /* initiator to target */
    ISCSIT_OP_NOP_OUT = 0x00,
    ISCSIT_OP_SCSI_CMD = 0x01,
    ISCSIT_OP_TMF_REQ = 0x02,
    ISCSIT_OP_LOGIN_REQ = 0x03,
    ISCSIT_OP_TEXT_REQ = 0x04,
    ISCSIT_OP_DATA_OUT = 0x05,
    ISCSIT_OP_LOGOUT_REQ = 0x06,
    ISCSIT_OP_SNACK_REQ = 0x10,
    /* target to initiator */
    ISCSIT_OP_NOP_IN = 0x20,
    ISCSIT_OP_SCSI_RSP = 0x21,
    ISCSIT_OP_TMF_RSP = 0x22,
    ISCSIT_OP_LOGIN_RSP = 0x23,
    ISCSIT_OP_TEXT_RSP = 0x24,
    ISCSIT_OP_DATA_IN = 0x25,
    ISCSIT_OP_LOGOUT_RSP = 0x26,
    ISCSIT_OP_R2T = 0x31,
    ISCSIT_OP_ASYNC = 0x32,
    ISCSIT_OP_REJECT = 0x3f,
};
#define ISCSIT_OP_MASK 0x3f
#define ISCSIT_OP_IMMEDIATE 0x40 /* byte 0, I bit */

/* Byte 1 flags. */
#define ISCSIT_FLAG_FINAL 0x80
#define ISCSIT_FLAG_CONT 0x40 /* Text/Login C bit */
#define ISCSIT_CMD_READ 0x40  /* SCSI Command R */
#define ISCSIT_CMD_WRITE 0x20 /* SCSI Command W */
#define ISCSIT_CMD_ATTR_MASK 0x07
#define ISCSIT_DATAIN_ACK 0x40     /* Data-In A */
#define ISCSIT_RSP_BIDI_OVER 0x10  /* o */
#define ISCSIT_RSP_BIDI_UNDER 0x08 /* u */
#define ISCSIT_RSP_OVER 0x04       /* O, SCSI Response and Data-In */
#define ISCSIT_RSP_UNDER 0x02      /* U */
#define ISCSIT_DATAIN_STATUS 0x01  /* Data-In S */
#define ISCSIT_LOGIN_TRANSIT 0x80  /* T */
#define ISCSIT_LOGIN_CSG(b) (((b) >> 2) & 3)
#define ISCSIT_LOGIN_NSG(b) ((b)&3)

/* Login stages (RFC 7143 §11.12.3). */
enum iscsit_stage {
    ISCSIT_STAGE_SECURITY = 0,
    ISCSIT_STAGE_OPERATIONAL = 1,
    ISCSIT_STAGE_FULL_FEATURE = 3,
};

/* Login status class/detail (RFC 7143 §11.13.5), as one 16-bit value. */
enum iscsit_login_status {
    ISCSIT_LOGIN_OK = 0x0000,
    ISCSIT_LOGIN_INITIATOR_ERROR = 0x0200,
    ISCSIT_LOGIN_AUTH_FAILED = 0x0201,
    ISCSIT_LOGIN_AUTHZ_FAILED = 0x0202,
    ISCSIT_LOGIN_NOT_FOUND = 0x0203,
    ISCSIT_LOGIN_TARGET_REMOVED = 0x0204,
    ISCSIT_LOGIN_UNSUPPORTED_VERSION = 0x0205,
    ISCSIT_LOGIN_TOO_MANY_CONNS = 0x0206,
    ISCSIT_LOGIN_MISSING_PARAM = 0x0207,
    ISCSIT_LOGIN_CANT_INCLUDE = 0x0208,
    ISCSIT_LOGIN_SESSION_TYPE = 0x0209,
    ISCSIT_LOGIN_NO_SESSION = 0x020a,
    ISCSIT_LOGIN_INVALID_REQUEST = 0x020b,
    ISCSIT_LOGIN_TARGET_ERROR = 0x0300,
    ISCSIT_LOGIN_SERVICE_UNAVAILABLE = 0x0301,
    ISCSIT_LOGIN_OUT_OF_RESOURCES = 0x0302,
};

/* Reject reasons (RFC 7143 §11.17.1). */
enum iscsit_reject_reason {
    ISCSIT_REJECT_DATA_DIGEST = 0x02,
    ISCSIT_REJECT_SNACK = 0x03,
    ISCSIT_REJECT_PROTOCOL = 0x04,
    ISCSIT_REJECT_CMD_NOT_SUPPORTED = 0x05,
    ISCSIT_REJECT_IMMEDIATE = 0x06,
    ISCSIT_REJECT_TASK_IN_PROGRESS = 0x07,
    ISCSIT_REJECT_INVALID_DATA_ACK = 0x08,
    ISCSIT_REJECT_INVALID_FIELD = 0x09,
    ISCSIT_REJECT_OUT_OF_RESOURCES = 0x0a,
    ISCSIT_REJECT_NEGOTIATION_RESET = 0x0b,
    ISCSIT_REJECT_WAITING_LOGOUT = 0x0c,
};

/* Task management functions and responses (RFC 7143 §11.5.1, §11.6.1). */
enum iscsit_tmf_fn {
    ISCSIT_TMF_ABORT_TASK = 1,
    ISCSIT_TMF_ABORT_TASK_SET = 2,
    ISCSIT_TMF_CLEAR_ACA = 3,
    ISCSIT_TMF_CLEAR_TASK_SET = 4,
    ISCSIT_TMF_LUN_RESET = 5,
    ISCSIT_TMF_TARGET_WARM_RESET = 6,
    ISCSIT_TMF_TARGET_COLD_RESET = 7,
    ISCSIT_TMF_TASK_REASSIGN = 8,
};
enum iscsit_tmf_rsp {
    ISCSIT_TMF_RSP_COMPLETE = 0,
    ISCSIT_TMF_RSP_NO_TASK = 1,
    ISCSIT_TMF_RSP_NO_LUN = 2,
    ISCSIT_TMF_RSP_ALLEGIANT = 3,
    ISCSIT_TMF_RSP_NO_REASSIGN = 4,
    ISCSIT_TMF_RSP_NOT_SUPPORTED = 5,
    ISCSIT_TMF_RSP_AUTH_FAILED = 6,
    ISCSIT_TMF_RSP_REJECTED = 255,
};

/* Logout reasons and responses (RFC 7143 §11.14.1, §11.15.1). */
enum iscsit_logout_reason {
    ISCSIT_LOGOUT_CLOSE_SESSION = 0,
    ISCSIT_LOGOUT_CLOSE_CONN = 1,
    ISCSIT_LOGOUT_REMOVE_FOR_RECOVERY = 2,
};
enum iscsit_logout_rsp {
    ISCSIT_LOGOUT_RSP_OK = 0,
    ISCSIT_LOGOUT_RSP_NO_CID = 1,
    ISCSIT_LOGOUT_RSP_NO_RECOVERY = 2,
    ISCSIT_LOGOUT_RSP_CLEANUP_FAILED = 3,
};

/* AHS types (RFC 7143 §11.2.2.1). */
#define ISCSIT_AHS_EXT_CDB 1
#define ISCSIT_AHS_BIDI_READ_LEN 2

/* The raw 48-byte Basic Header Segment. */
struct iscsit_bhs {
    uint8_t b[ISCSIT_BHS_LEN];
};
G_STATIC_ASSERT(sizeof(struct iscsit_bhs) == ISCSIT_BHS_LEN);

/* Field offsets shared by most PDUs (RFC 7143 §11.2). */
enum iscsit_bhs_off {
    ISCSIT_OFF_OPCODE = 0,
    ISCSIT_OFF_FLAGS = 1,
    ISCSIT_OFF_AHSLEN = 4,
    ISCSIT_OFF_DSL = 5,
    ISCSIT_OFF_LUN = 8,
    ISCSIT_OFF_ITT = 16,
    ISCSIT_OFF_TTT = 20,       /* also RTT (TMF), EDTL (SCSI Command), CID (login/logout) */
    ISCSIT_OFF_CMDSN = 24,     /* StatSN in target PDUs */
    ISCSIT_OFF_EXPSTATSN = 28, /* ExpCmdSN in target PDUs */
    ISCSIT_OFF_MAXCMDSN = 32,  /* CDB starts here in a SCSI Command */
    ISCSIT_OFF_DATASN = 36,    /* also R2TSN, ExpDataSN, status class/detail (login) */
    ISCSIT_OFF_BUFOFF = 40,
    ISCSIT_OFF_RESIDUAL = 44, /* also DesiredDataTransferLength (R2T) */
};

static inline uint8_t
iscsit_bhs_opcode(const struct iscsit_bhs *h)
{
    return h->b[0] & ISCSIT_OP_MASK;
}

static inline bool
iscsit_bhs_immediate(const struct iscsit_bhs *h)
{
    return (h->b[0] & ISCSIT_OP_IMMEDIATE) != 0;
}

uint32_t iscsit_bhs_get32(const struct iscsit_bhs *h, size_t off);
void iscsit_bhs_set32(struct iscsit_bhs *h, size_t off, uint32_t v);
uint16_t iscsit_bhs_get16(const struct iscsit_bhs *h, size_t off);
void iscsit_bhs_set16(struct iscsit_bhs *h, size_t off, uint16_t v);
/* Total AHS length in bytes (TotalAHSLength * 4). */
uint32_t iscsit_bhs_ahs_len(const struct iscsit_bhs *h);
uint32_t iscsit_bhs_dsl(const struct iscsit_bhs *h);
void iscsit_bhs_set_dsl(struct iscsit_bhs *h, uint32_t len);
/* The 8-byte LUN field as a 64-bit big-endian number. */
uint64_t iscsit_bhs_get_lun(const struct iscsit_bhs *h);
void iscsit_bhs_set_lun(struct iscsit_bhs *h, uint64_t lun);
/* SAM-5 §4.7 single-level LUN decode: peripheral (00b) or flat (01b)
 * addressing of the first level, remaining levels zero. Returns false for
 * any other structure (the caller answers as for a nonexistent LUN). */
bool iscsit_lun_decode(uint64_t raw, uint64_t *lun);
/* ISID (6 bytes) as a 48-bit number, for the initiator port name. */
uint64_t iscsit_bhs_get_isid(const struct iscsit_bhs *h);
void iscsit_bhs_set_isid(struct iscsit_bhs *h, uint64_t isid);

/* Bytes of padding after a data segment of len bytes (RFC 7143 §11.2.3). */
static inline uint32_t
iscsit_pad4(uint32_t len)
{
    return (4 - (len & 3)) & 3;
}

/* Serial number arithmetic (RFC 1982, 32 bits): a < b. */
static inline bool
iscsit_sn_lt(uint32_t a, uint32_t b)
{
    return a != b && (uint32_t)(b - a) < 0x80000000u;
}

static inline bool
iscsit_sn_le(uint32_t a, uint32_t b)
{
    return a == b || iscsit_sn_lt(a, b);
}

/* The CDB of a SCSI Command: 16 bytes from the BHS, the rest from an
 * extended CDB AHS (RFC 7143 §11.2.2.3); a bidirectional read length AHS
 * (§11.2.2.4) is allowed and skipped. false on any malformed or unknown AHS
 * or a CDB longer than cdb_max (>= 16). */
bool iscsit_pdu_cdb(const struct iscsit_bhs *h, const uint8_t *ahs, uint32_t ahs_len, uint8_t *cdb,
                    size_t cdb_max, size_t *cdb_len);

/* Name of an opcode for logs ("SCSI Command", "unknown"). */
const char *iscsit_op_name(uint8_t op);
