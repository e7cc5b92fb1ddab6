/* sanitize.c — SANITIZE (SBC-4 §5.30, §4.11): BLOCK ERASE and EXIT FAILURE
 * MODE, and the sanitize state the rest of the device checks.
 *
 * BLOCK ERASE is the thin device's method: every logical block of the
 * client's disk is deallocated (view_zero of the whole range, which only
 * changes granule states in the overlay map, so it is cheap even for a large
 * disk) and then flushed, so the erase is durable when the command completes.
 * Afterwards every block reads zeros (LBPRZ=1) and GET LBA STATUS reports the
 * whole LU deallocated; reads succeed (Block Device Characteristics VPD
 * WABEREQ=01b). What is erased is what this LU is: the client's view. The
 * golden image underneath is shared by other clients and stays untouched;
 * bytes the overlay file held may remain on the host's storage until the
 * store reuses them — the gateway sanitizes the disk it serves, not the
 * host's media.
 *
 * Not offered:
 *   OVERWRITE            meant for media that must be rewritten in place
 *                        (SBC-4 lists it beside BLOCK ERASE for devices that
 *                        cannot erase); on a thin LU it would turn a sparse
 *                        disk into a fully allocated one to reach the state
 *                        BLOCK ERASE gives for free.
 *   CRYPTOGRAPHIC ERASE  the overlay stores plain data; there is no media
 *                        encryption key to change (WACEREQ=00b).
 * Both answer INVALID FIELD IN CDB like any service action we do not offer.
 *
 * The command runs synchronously in the caller's thread; IMMED=1 is accepted
 * and status simply comes when the erase is done (a BLOCK ERASE of the map is
 * quick). While it runs, lu->sanitizing makes other commands of every nexus
 * fail with NOT READY / SANITIZE IN PROGRESS (except INQUIRY, REPORT LUNS and
 * REQUEST SENSE, SBC-4 §4.11.2). If it fails, the LU enters sanitize failure
 * mode: medium access commands get MEDIUM ERROR / SANITIZE COMMAND FAILED
 * until a SANITIZE succeeds or, if the failed one had AUSE=1, EXIT FAILURE
 * MODE is sent.
 */
#include "sdev-int.h"
#include "log.h"

#define SDEV_SA_OVERWRITE 0x01
#define SDEV_SA_BLOCK_ERASE 0x02
#define SDEV_SA_CRYPTO_ERASE 0x03
#define SDEV_SA_EXIT_FAILURE_MODE 0x1f

enum sdev_sense
sdev_sanitize_check(struct sdev_req *req)
{
    struct sdev_lu *lu = req->lu;
    uint32_t flags = req->op->flags;
    enum sdev_sense r = SDEV_SENSE_OK;

    sdev_lu_lock(lu);
    if (lu->sanitizing && !(flags & SDEV_OPF_SAN_PASS))
        r = SDEV_SENSE_SANITIZE_IN_PROGRESS;
    else if (lu->sanitize_failed && !(flags & SDEV_OPF_SANITIZE) &&
             (flags & (SDEV_OPF_PR_READ | SDEV_OPF_PR_WRITE)))
        r = SDEV_SENSE_SANITIZE_FAILED; /* SBC-4 §4.11.3: medium access commands */
    sdev_lu_unlock(lu);
    return r;
}

enum sdev_sense
sdev_sbc_sanitize_parse(struct sdev_req *req)
{
    struct sdev_cmd *cmd = req->cmd;

    /* BLOCK ERASE and EXIT FAILURE MODE take no parameter list. */
    if (sdev_be16(cmd->cdb + 7) != 0)
        return sdev_bad_cdb(req, 7, -1);
    cmd->dir = SDEV_DIR_NONE;
    cmd->xfer_len = 0;
    return SDEV_SENSE_OK;
}

static enum sdev_sense
sdev_sanitize_exit_failure_mode(struct sdev_req *req)
{
    struct sdev_lu *lu = req->lu;
    enum sdev_sense r = SDEV_SENSE_OK;

    sdev_lu_lock(lu);
    if (lu->sanitize_failed && !lu->sanitize_ause)
        r = sdev_bad_cdb(req, 1, 4); /* AUSE=0: only a successful SANITIZE clears it */
    else
        lu->sanitize_failed = false;
    sdev_lu_unlock(lu);
    return r;
}

static enum sdev_sense
sdev_sanitize_block_erase(struct sdev_req *req)
{
    struct sdev_lu *lu = req->lu;
    bool ause = req->cmd->cdb[1] & 0x20;
    int rc;

    sdev_lu_lock(lu);
    if (lu->sanitizing) { /* another nexus started one after our parse */
        sdev_lu_unlock(lu);
        return SDEV_SENSE_SANITIZE_IN_PROGRESS;
    }
    lu->sanitizing = true;
    sdev_lu_unlock(lu);

    rc = view_zero(lu->view, 0, view_get_size(lu->view), 0);
    if (rc == 0)
        rc = view_flush(lu->view);

    sdev_lu_lock(lu);
    lu->sanitizing = false;
    lu->sanitize_failed = rc < 0;
    lu->sanitize_ause = ause;
    sdev_lu_unlock(lu);
    if (rc < 0) {
        LOG_RATELIMITED(G_LOG_LEVEL_WARNING, 10, 5, "SANITIZE BLOCK ERASE failed: %s",
                        g_strerror(-rc));
        return SDEV_SENSE_SANITIZE_FAILED;
    }
    return SDEV_SENSE_OK;
}

enum sdev_sense
sdev_sbc_sanitize_exec(struct sdev_req *req)
{
    switch (req->cmd->cdb[1] & 0x1f) {
    case SDEV_SA_BLOCK_ERASE:
        return sdev_sanitize_block_erase(req);
    case SDEV_SA_EXIT_FAILURE_MODE:
        return sdev_sanitize_exit_failure_mode(req);
    default: /* the descriptor table offers no other service action */
        return sdev_bad_cdb(req, 1, 4);
    }
}
