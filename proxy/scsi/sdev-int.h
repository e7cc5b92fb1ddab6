/* sdev-int.h — internals shared by the files of proxy/scsi (not for other modules).
 *
 * One command runs as: sdev_cmd_parse() (cdb.c) finds the descriptor for the
 * opcode (and service action), checks reserved bits against the descriptor's
 * CDB usage bitmap, reports a pending unit attention, calls the descriptor's
 * parse function (field checks, direction, transfer length), then checks
 * read-only media and reservations. sdev_cmd_exec() calls the descriptor's
 * exec function. Both kinds of handler return an enum sdev_sense reason;
 * sense.c turns a reason into status + sense bytes (the only such table).
 *
 * Locking: lu->lock guards reservations, registrations, unit attentions, the
 * nexus list and mode page state. It is never held across view I/O.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <pthread.h>
#include <glib.h>

#include "sdev.h"

/* Why a command ended. 0 = GOOD. Every reason has one row in sense.c. */
enum sdev_sense {
    SDEV_SENSE_OK = 0,
    SDEV_SENSE_RESERVATION_CONFLICT, /* status RESERVATION CONFLICT, no sense */
    SDEV_SENSE_UNIT_ATTENTION,       /* asc/ascq come from the nexus's queue */
    SDEV_SENSE_NO_SENSE,             /* REQUEST SENSE with nothing pending */
    SDEV_SENSE_INVALID_OPCODE,
    SDEV_SENSE_INVALID_FIELD_IN_CDB,
    SDEV_SENSE_INVALID_FIELD_IN_PARAM,
    SDEV_SENSE_PARAM_LIST_LENGTH,
    SDEV_SENSE_LBA_OUT_OF_RANGE,
    SDEV_SENSE_LUN_NOT_SUPPORTED,
    SDEV_SENSE_SAVING_NOT_SUPPORTED,
    SDEV_SENSE_INVALID_RELEASE_OF_PR,
    SDEV_SENSE_INSUFFICIENT_REG_RESOURCES,
    SDEV_SENSE_WRITE_PROTECTED,
    SDEV_SENSE_SPACE_ALLOC_FAILED,
    SDEV_SENSE_READ_ERROR,
    SDEV_SENSE_WRITE_ERROR,
    SDEV_SENSE_MISCOMPARE,
    SDEV_SENSE_INTERNAL_FAILURE,
    SDEV_SENSE_SANITIZE_IN_PROGRESS, /* NOT READY, sanitize running on this LU */
    SDEV_SENSE_SANITIZE_FAILED,      /* the last sanitize failed: medium unusable */
    SDEV_SENSE_TOO_MANY_TARGET_DESC, /* EXTENDED COPY parameter list checks */
    SDEV_SENSE_UNSUPPORTED_TARGET_DESC,
    SDEV_SENSE_TOO_MANY_SEGMENT_DESC,
    SDEV_SENSE_UNSUPPORTED_SEGMENT_DESC,
    SDEV_SENSE_COPY_TARGET_UNREACHABLE, /* COPY ABORTED: a CSCD that is not this LU */
    SDEV_SENSE_COPY_ABORTED,            /* COPY ABORTED: segment outside the CSCD */
    SDEV_SENSE_COUNT
};

/* SAM / SPC constants used in more than one file. */
#define SDEV_KEY_NO_SENSE 0x0
#define SDEV_KEY_NOT_READY 0x2
#define SDEV_KEY_MEDIUM_ERROR 0x3
#define SDEV_KEY_HARDWARE_ERROR 0x4
#define SDEV_KEY_ILLEGAL_REQUEST 0x5
#define SDEV_KEY_UNIT_ATTENTION 0x6
#define SDEV_KEY_DATA_PROTECT 0x7
#define SDEV_KEY_COPY_ABORTED 0xa
#define SDEV_KEY_MISCOMPARE 0xe

/* Unit attention additional sense codes (SPC-4 Annex D). */
#define SDEV_ASC_RESET 0x29
#define SDEV_ASCQ_POWER_ON_RESET 0x00
#define SDEV_ASCQ_POWER_ON 0x01
#define SDEV_ASCQ_DEVICE_RESET 0x03
#define SDEV_ASC_PARAMS_CHANGED 0x2a
#define SDEV_ASCQ_MODE_PARAMS_CHANGED 0x01
#define SDEV_ASCQ_RESERVATIONS_PREEMPTED 0x03
#define SDEV_ASCQ_RESERVATIONS_RELEASED 0x04
#define SDEV_ASCQ_REGISTRATIONS_PREEMPTED 0x05

/* Limits reported in the Block Limits VPD page and enforced by parse. */
#define SDEV_MAX_XFER_BYTES (32u << 20) /* READ/WRITE/VERIFY per command */
#define SDEV_OPT_XFER_BYTES (1u << 20)
#define SDEV_MAX_UNMAP_BYTES (512ull << 20) /* per UNMAP / WRITE SAME command */
#define SDEV_MAX_UNMAP_DESCRIPTORS 256u
#define SDEV_MAX_CAW_BLOCKS 128u /* COMPARE AND WRITE */
#define SDEV_UA_MAX 8            /* queued unit attentions per nexus */
#define SDEV_PR_MAX_REGISTRANTS 256u
#define SDEV_COPY_HELD 8u /* EXTENDED COPY results kept per nexus */

/* Descriptor flags (enum sdev_op_flags). */
enum sdev_op_flags {
    SDEV_OPF_UA_PASS = 1u << 0,    /* runs with a unit attention pending (SPC-4 §5.14) */
    SDEV_OPF_WRITES = 1u << 1,     /* changes the medium: DATA PROTECT on read-only views */
    SDEV_OPF_PR_ALLOW = 1u << 2,   /* allowed under any persistent reservation */
    SDEV_OPF_PR_REGONLY = 1u << 3, /* allowed for registrants of another's reservation */
    SDEV_OPF_PR_READ = 1u << 4,    /* read class of SPC-4 table 62 / SBC-3 table 13 */
    SDEV_OPF_PR_WRITE = 1u << 5,   /* write class */
    SDEV_OPF_SPC2_ALLOW = 1u << 6, /* allowed under another nexus's RESERVE(6/10) */
    SDEV_OPF_PR_SELF = 1u << 7,    /* does its own reservation checks (PR OUT, RESERVE) */
    SDEV_OPF_SANITIZE = 1u << 8,   /* SANITIZE itself: runs in sanitize failure mode */
    SDEV_OPF_SAN_PASS = 1u << 9,   /* runs while a sanitize is in progress (SBC-4 §4.11) */
};

/* Private per-command flags kept in cmd->flags between parse and exec. */
enum sdev_cmd_flags {
    SDEV_CF_FUA = 1u << 0,
    SDEV_CF_UNMAP = 1u << 1,
    SDEV_CF_NDOB = 1u << 2,
    SDEV_CF_BYTCHK_SHIFT = 3, /* two bits: VERIFY / WRITE AND VERIFY BYTCHK */
    SDEV_CF_BYTCHK_MASK = 3u << 3,
    SDEV_CF_LONG_LBA = 1u << 5, /* MODE SENSE(10) LLBAA */
    SDEV_CF_DBD = 1u << 6,
    SDEV_CF_TEN = 1u << 7,   /* the 10-byte variant of MODE SENSE/SELECT */
    SDEV_CF_PARAM_SHIFT = 8, /* 8 bits of handler-specific parameter */
};

struct sdev_req;
typedef enum sdev_sense (*sdev_handler_fn)(struct sdev_req *req);

/* One command's descriptor: the table in cdb.c is indexed by opcode, and for
 * opcodes with service actions, by service action in a second table. */
struct sdev_op {
    const char *name;
    uint8_t cdb_len;
    uint8_t usage[16]; /* CDB usage bitmap (SPC-4 §6.35.3); byte 0 is the opcode */
    uint32_t flags;    /* enum sdev_op_flags */
    sdev_handler_fn parse;
    sdev_handler_fn exec;
    const struct sdev_op *sa_ops; /* non-NULL: dispatch on byte 1 bits 4..0 */
};

/* Registration of one I_T nexus (by name: it outlives the nexus object). */
struct sdev_pr_reg {
    char *initiator_port;
    char *target_port;
    uint16_t rel_tpid;
    uint64_t key;
};

struct sdev_lu {
    gint refcount;
    struct view *view;
    uint32_t block_size;
    uint32_t block_shift;
    char vendor[9];
    char product[17];
    char revision[5];
    char *serial;
    uint8_t disk_id[16];

    /* A pthread mutex rather than GMutex: GLib's futex-based GMutex is
     * invisible to ThreadSanitizer, which CI runs on the threaded paths. */
    pthread_mutex_t lock;
    GPtrArray *nexuses; /* struct sdev_nexus *, borrowed */
    /* mode page state (shared by every nexus) */
    bool wce;
    bool d_sense;
    bool swp; /* control page SWP: software write protect (SPC-4 §7.5.8) */
    /* sanitize state (SBC-4 §4.11): running now; last one failed (and its AUSE) */
    bool sanitizing;
    bool sanitize_failed;
    bool sanitize_ause;
    /* SPC-2 RESERVE(6/10) holder, or NULL */
    struct sdev_nexus *spc2_holder;
    /* persistent reservations (SPC-4 §5.13) */
    GPtrArray *registrants; /* struct sdev_pr_reg *, owned */
    uint32_t pr_generation;
    uint8_t pr_type;               /* 0 = no reservation */
    struct sdev_pr_reg *pr_holder; /* for all-registrants types: any one registrant */
};

struct sdev_nexus {
    struct sdev_lu *lu; /* holds a reference */
    char *initiator_port;
    char *target_port; /* may be NULL */
    uint16_t rel_tpid;
    /* pending unit attentions, oldest first (lu->lock) */
    uint8_t ua_asc[SDEV_UA_MAX];
    uint8_t ua_ascq[SDEV_UA_MAX];
    unsigned n_ua;
    /* EXTENDED COPY results held for RECEIVE COPY RESULTS (lu->lock) */
    struct sdev_copy_result {
        bool valid;
        uint8_t list_id;
        uint8_t status; /* COPY MANAGER STATUS: 01h ok, 02h with errors */
        uint16_t segments;
        uint64_t bytes;
    } copy_held[SDEV_COPY_HELD];
    unsigned copy_next;
};

/* What a handler needs, and where it leaves sense details. */
struct sdev_req {
    struct sdev_lu *lu;
    struct sdev_nexus *nexus; /* NULL for sdev_cmd_exec_no_lun */
    struct sdev_cmd *cmd;
    const struct sdev_op *op;
    /* sense-key specific field pointer (SPC-4 §4.5.2.4.2) */
    bool field_valid;
    bool field_in_cdb;
    int8_t field_bit; /* -1: whole byte */
    uint16_t field_byte;
    /* INFORMATION field */
    bool info_valid;
    uint64_t info;
    /* unit attention to report */
    uint8_t ua_asc, ua_ascq;
};

static inline void
sdev_lu_lock(struct sdev_lu *lu)
{
    pthread_mutex_lock(&lu->lock);
}
static inline void
sdev_lu_unlock(struct sdev_lu *lu)
{
    pthread_mutex_unlock(&lu->lock);
}

/* ---- big-endian helpers (CDBs and parameter data are big-endian) ---- */
static inline uint16_t
sdev_be16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}
static inline uint32_t
sdev_be24(const uint8_t *p)
{
    return ((uint32_t)p[0] << 16) | ((uint32_t)p[1] << 8) | p[2];
}
static inline uint32_t
sdev_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline uint64_t
sdev_be64(const uint8_t *p)
{
    return ((uint64_t)sdev_be32(p) << 32) | sdev_be32(p + 4);
}
static inline void
sdev_put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
static inline void
sdev_put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}
static inline void
sdev_put_be64(uint8_t *p, uint64_t v)
{
    sdev_put_be32(p, (uint32_t)(v >> 32));
    sdev_put_be32(p + 4, (uint32_t)v);
}

/* ---- cdb.c ---- */
/* Descriptor for cdb, or NULL. *sa_valid tells whether cdb[1] selects a service action. */
const struct sdev_op *sdev_op_lookup(uint8_t opcode, uint8_t sa, bool *has_sa);
/* Iterate over every supported (opcode, service action): fn returns false to stop. */
typedef bool (*sdev_op_iter_fn)(uint8_t opcode, uint8_t sa, bool has_sa, const struct sdev_op *op,
                                void *user_data);
void sdev_op_foreach(sdev_op_iter_fn fn, void *user_data);

/* ---- sense.c ---- */
/* Mark an invalid field; return the reason to give. bit = -1 for a whole byte. */
enum sdev_sense sdev_bad_cdb(struct sdev_req *req, unsigned byte, int bit);
enum sdev_sense sdev_bad_param(struct sdev_req *req, unsigned byte, int bit);
/* The one errno -> reason mapping (write = the failed call was a write). */
enum sdev_sense sdev_sense_from_errno(int err, bool write);
/* Set status and sense of req->cmd for reason (fixed or descriptor format). */
void sdev_sense_apply(struct sdev_req *req, enum sdev_sense reason, bool desc_format);
/* Build sense bytes for (key, asc, ascq) into buf (>= SDEV_SENSE_MAX); returns length. */
uint32_t sdev_sense_build(uint8_t *buf, bool desc_format, uint8_t key, uint8_t asc, uint8_t ascq,
                          const struct sdev_req *details);
/* Key / ASC / ASCQ of a reason (for tests and REQUEST SENSE). */
void sdev_sense_lookup(enum sdev_sense reason, uint8_t *key, uint8_t *asc, uint8_t *ascq);
const char *sdev_sense_name(enum sdev_sense reason);

/* ---- ua.c (callers hold lu->lock) ---- */
void sdev_ua_raise_locked(struct sdev_nexus *nexus, uint8_t asc, uint8_t ascq);
void sdev_ua_raise_all_locked(struct sdev_lu *lu, const struct sdev_nexus *except, uint8_t asc,
                              uint8_t ascq);
bool sdev_ua_take_locked(struct sdev_nexus *nexus, uint8_t *asc, uint8_t *ascq);
/* Raise for every connected nexus of a registrant (by name). */
void sdev_ua_raise_reg_locked(struct sdev_lu *lu, const struct sdev_pr_reg *reg, uint8_t asc,
                              uint8_t ascq);

/* ---- pr.c ---- */
/* Reservation conflict check before a command runs (takes lu->lock). */
enum sdev_sense sdev_pr_check(struct sdev_req *req);
/* lu->lock held: drop SPC-2 reservation of nexus, if any (nexus loss, reset). */
void sdev_pr_nexus_gone_locked(struct sdev_lu *lu, struct sdev_nexus *nexus);
void sdev_pr_free_all(struct sdev_lu *lu);

/* ---- common request helpers (cdb.c) ---- */
uint64_t sdev_lu_nblocks(struct sdev_lu *lu);
/* LBA + count inside the medium? */
enum sdev_sense sdev_check_range(struct sdev_req *req, uint64_t lba, uint64_t count);
/* Allocate data-in of len bytes (zeroed); data_in_len = min(len, limit). */
uint8_t *sdev_data_in(struct sdev_req *req, size_t len, uint32_t limit);
/* Parameter data of a data-out command: at most want bytes, clipped by what arrived. */
uint32_t sdev_data_out_len(const struct sdev_req *req, uint32_t want);
bool sdev_lu_desc_sense(struct sdev_lu *lu);
/* Read-only view, or software write protect (control page SWP) set. */
bool sdev_lu_write_protected(struct sdev_lu *lu);
/* sanitize.c: refuse a command while a sanitize runs or after one failed
 * (takes lu->lock). */
enum sdev_sense sdev_sanitize_check(struct sdev_req *req);

/* ---- handlers: parse (p) and exec (x) ---- */
#define SDEV_HANDLERS(name)                                                                        \
    enum sdev_sense sdev_##name##_parse(struct sdev_req *req);                                     \
    enum sdev_sense sdev_##name##_exec(struct sdev_req *req)

/* sbc.c */
SDEV_HANDLERS(sbc_read);
SDEV_HANDLERS(sbc_write);
SDEV_HANDLERS(sbc_verify);
SDEV_HANDLERS(sbc_write_verify);
SDEV_HANDLERS(sbc_compare_and_write);
SDEV_HANDLERS(sbc_sync_cache);
SDEV_HANDLERS(sbc_prefetch);
SDEV_HANDLERS(sbc_orwrite);
SDEV_HANDLERS(sbc_read_defect_data);
SDEV_HANDLERS(sbc_read_capacity10);
SDEV_HANDLERS(sbc_read_capacity16);
/* lbp.c */
SDEV_HANDLERS(sbc_write_same);
SDEV_HANDLERS(sbc_unmap);
SDEV_HANDLERS(sbc_get_lba_status);
/* spc.c */
SDEV_HANDLERS(spc_test_unit_ready);
SDEV_HANDLERS(spc_inquiry);
SDEV_HANDLERS(spc_request_sense);
SDEV_HANDLERS(spc_report_luns);
SDEV_HANDLERS(spc_start_stop_unit);
SDEV_HANDLERS(spc_prevent_allow);
SDEV_HANDLERS(spc_report_opcodes);
SDEV_HANDLERS(spc_report_tmfs);
/* mode.c */
SDEV_HANDLERS(spc_mode_sense);
SDEV_HANDLERS(spc_mode_select);
/* sanitize.c */
SDEV_HANDLERS(sbc_sanitize);
/* xcopy.c */
SDEV_HANDLERS(spc_extended_copy);
SDEV_HANDLERS(spc_receive_copy_results);
/* pr.c */
SDEV_HANDLERS(spc_reserve);
SDEV_HANDLERS(spc_release);
SDEV_HANDLERS(spc_pr_in);
SDEV_HANDLERS(spc_pr_out);

/* vpd.c: does the designator (association, type, value) name this LU as its
 * device identification page does (NAA or T10 vendor ID)? */
bool sdev_vpd_names_lu(const struct sdev_lu *lu, uint8_t assoc, uint8_t type, const uint8_t *value,
                       size_t len);
/* vpd.c: build VPD page into a new buffer; returns reason, sets out and len. */
enum sdev_sense sdev_vpd_build(struct sdev_req *req, uint8_t page, uint8_t **out, size_t *len);
/* spc.c: standard INQUIRY data (also for an unsupported LUN: pq = 3). */
size_t sdev_inquiry_std(struct sdev_lu *lu, uint8_t *buf, size_t cap, bool no_lun);
