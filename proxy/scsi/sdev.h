/* sdev.h — transport-free SCSI block device (SPC-4 / SBC-3) over a view.
 *
 * scsi/ never sees a PDU; iscsi/ never builds sense bytes. The transport
 * hands a CDB and buffers to sdev and copies back status, sense and data.
 *
 *   struct sdev_lu     one logical unit = one client disk, shared by every
 *                      I_T nexus (initiator port) that uses that client. Holds
 *                      the view, reservation state (RESERVE/RELEASE and
 *                      PERSISTENT RESERVE), mode page settings, and pending
 *                      unit attentions per nexus. Refcounted; thread-safe.
 *   struct sdev_nexus  one I_T nexus: initiator port (e.g.
 *                      "iqn.1993-08.org.debian:01:abc,i,0x23d000000001")
 *                      bound to an LU. Owned by the transport session.
 *
 * Command flow (per SCSI command):
 *   1. sdev_cmd_parse()   validates the CDB, tells the transport the data
 *                         direction and the transfer length the CDB asks for.
 *                         A failed parse leaves status/sense set; the transport
 *                         then answers without transferring data (for writes
 *                         it still must consume/skip unsolicited data).
 *   2. the transport collects data-out (writes) into cmd->data_out.
 *   3. sdev_cmd_exec()    does the work, fills data_in/data_in_len, status,
 *                         sense. May block on I/O (call from a connection or
 *                         worker thread, never from a main loop).
 * Residuals (expected vs. actual transfer length) are the transport's job.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <glib.h>

#include "view.h"

#define SDEV_SENSE_MAX 252 /* fixed-format sense is 18 bytes; room for descriptors */
#define SDEV_CDB_MAX 32

/* SAM status codes. */
enum sdev_status {
    SDEV_STATUS_GOOD = 0x00,
    SDEV_STATUS_CHECK_CONDITION = 0x02,
    SDEV_STATUS_CONDITION_MET = 0x04,
    SDEV_STATUS_BUSY = 0x08,
    SDEV_STATUS_RESERVATION_CONFLICT = 0x18,
    SDEV_STATUS_TASK_SET_FULL = 0x28,
    SDEV_STATUS_ACA_ACTIVE = 0x30,
    SDEV_STATUS_TASK_ABORTED = 0x40,
};

enum sdev_dir {
    SDEV_DIR_NONE = 0,
    SDEV_DIR_READ,  /* data-in: device to initiator */
    SDEV_DIR_WRITE, /* data-out: initiator to device */
};

/* SAM task attributes (as in the iSCSI ATTR field). */
enum sdev_task_attr {
    SDEV_TASK_UNTAGGED = 0,
    SDEV_TASK_SIMPLE = 1,
    SDEV_TASK_ORDERED = 2,
    SDEV_TASK_HEAD_OF_QUEUE = 3,
    SDEV_TASK_ACA = 4,
};

struct sdev_cmd {
    /* in */
    uint8_t cdb[SDEV_CDB_MAX];
    size_t cdb_len;
    uint64_t lun;                  /* SAM LUN value as a plain number (0 for LUN 0) */
    enum sdev_task_attr task_attr;
    uint32_t expected_len;         /* transport's expected data transfer length */

    /* set by sdev_cmd_parse */
    enum sdev_dir dir;
    uint32_t xfer_len;             /* bytes the CDB asks to move */

    /* data-out, filled by the transport before exec (owned by the transport) */
    const uint8_t *data_out;
    uint32_t data_out_len;

    /* data-in: sdev allocates with g_malloc (size <= max(xfer_len, alloc len)),
     * the transport frees with g_free after sending. data_in_len bytes valid.
     * Exception: when data_in_map.data is set, data_in points into that
     * read-only mapping (view_map_read), which is released with
     * view_map_release instead; sdev only does this when the transport set
     * data_in_map_ok, and only for large reads (VIEW_ZC_BASE_MIN, VIEW_ZC_FILE_MIN).
     * Such data must only be handed to send calls (view.h). */
    uint8_t *data_in;
    uint32_t data_in_len;
    bool data_in_map_ok; /* in: the transport can send from a mapping */
    struct view_map data_in_map;

    /* out */
    uint8_t status;                /* enum sdev_status */
    uint8_t sense[SDEV_SENSE_MAX];
    uint32_t sense_len;

    /* private to sdev between parse and exec */
    const void *desc;
    uint64_t lba;
    uint32_t nblocks;
    uint32_t flags;
};

struct sdev_lu;
struct sdev_nexus;

struct sdev_lu_params {
    const char *vendor;   /* INQUIRY vendor (8 chars), default "OVGATE" */
    const char *product;  /* INQUIRY product (16), default "ovgate disk" */
    const char *revision; /* 4 chars, default from the project version */
    const char *serial;   /* unit serial (VPD 0x80) */
    uint32_t block_size;  /* logical block size, 512 or 4096; default 512 */
};

/* Takes a reference to view. Caller frees with sdev_lu_unref. */
struct sdev_lu *sdev_lu_new(struct view *view, const struct sdev_lu_params *params);
struct sdev_lu *sdev_lu_ref(struct sdev_lu *lu);
void sdev_lu_unref(struct sdev_lu *lu); /* accepts NULL */
struct view *sdev_lu_get_view(struct sdev_lu *lu); /* borrowed */

/* Establish a unit attention for every nexus (e.g. after the disk was reset
 * or committed underneath: CAPACITY DATA HAS CHANGED / media changed). */
void sdev_lu_raise_ua_all(struct sdev_lu *lu, uint8_t asc, uint8_t ascq);

/* initiator_port: SCSI initiator port name (iSCSI: "IQN,i,0xISID"). A new
 * nexus starts with a POWER ON/RESET unit attention pending.
 * Caller frees with sdev_nexus_free (drops registrations only per SPC rules:
 * persistent reservations survive the nexus). */
struct sdev_nexus *sdev_nexus_new(struct sdev_lu *lu, const char *initiator_port,
                                  const char *target_port, uint16_t rel_target_port_id);
void sdev_nexus_free(struct sdev_nexus *nexus); /* accepts NULL */
struct sdev_lu *sdev_nexus_get_lu(struct sdev_nexus *nexus); /* borrowed */

/* Returns true when the command may proceed to data transfer + exec. */
bool sdev_cmd_parse(struct sdev_nexus *nexus, struct sdev_cmd *cmd);
void sdev_cmd_exec(struct sdev_nexus *nexus, struct sdev_cmd *cmd);
/* Release what parse/exec allocated (data_in). Accepts a cmd that was only parsed. */
void sdev_cmd_clear(struct sdev_cmd *cmd);
/* Release data_in (buffer or mapping) and empty it. */
void sdev_cmd_release_data_in(struct sdev_cmd *cmd);

/* A command for a LUN that does not exist: fills status/sense
 * (LOGICAL UNIT NOT SUPPORTED), or for INQUIRY / REPORT LUNS / REQUEST SENSE
 * answers as SPC requires for an unsupported LUN. */
void sdev_cmd_exec_no_lun(struct sdev_cmd *cmd);

/* Task management (SAM-5 §7). Commands run synchronously, so there is never a
 * task in progress inside sdev when these are called; they update
 * reservations and unit attentions as the standard requires. */
enum sdev_tmf {
    SDEV_TMF_ABORT_TASK_SET,
    SDEV_TMF_CLEAR_TASK_SET,
    SDEV_TMF_LUN_RESET,
    SDEV_TMF_TARGET_WARM_RESET,
    SDEV_TMF_TARGET_COLD_RESET,
    SDEV_TMF_CLEAR_ACA,
};
/* Returns an iSCSI/SAM TMF response code: 0 = function complete. */
int sdev_tmf(struct sdev_nexus *nexus, enum sdev_tmf fn);

/* Fill fixed-format sense for (key, asc, ascq) with CHECK CONDITION. */
void sdev_cmd_set_sense(struct sdev_cmd *cmd, uint8_t key, uint8_t asc, uint8_t ascq);
