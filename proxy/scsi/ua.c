/* ua.c — unit attention conditions per I_T nexus (SAM-5 §5.14, SPC-4 §5.14).
 *
 * Each nexus keeps a small FIFO of pending (ASC, ASCQ) pairs. A command other
 * than INQUIRY, REPORT LUNS and REQUEST SENSE that arrives while one is
 * pending ends in CHECK CONDITION / UNIT ATTENTION and consumes the oldest;
 * REQUEST SENSE returns and consumes it. A reset-class condition (ASC 29h)
 * supersedes everything queued before it: after a reset the older conditions
 * are stale. Duplicates are not queued twice. When the queue is full the
 * newest condition replaces the last entry, so the initiator still learns that
 * something changed (SPC-4 allows losing conditions on overflow).
 *
 * Every function here runs with lu->lock held.
 */
#include "sdev-int.h"

void
sdev_ua_raise_locked(struct sdev_nexus *nexus, uint8_t asc, uint8_t ascq)
{
    if (asc == SDEV_ASC_RESET)
        nexus->n_ua = 0;
    for (unsigned i = 0; i < nexus->n_ua; i++) {
        if (nexus->ua_asc[i] == asc && nexus->ua_ascq[i] == ascq)
            return;
    }
    if (nexus->n_ua == SDEV_UA_MAX)
        nexus->n_ua--;
    nexus->ua_asc[nexus->n_ua] = asc;
    nexus->ua_ascq[nexus->n_ua] = ascq;
    nexus->n_ua++;
}

void
sdev_ua_raise_all_locked(struct sdev_lu *lu, const struct sdev_nexus *except, uint8_t asc,
                         uint8_t ascq)
{
    for (guint i = 0; i < lu->nexuses->len; i++) {
        struct sdev_nexus *n = g_ptr_array_index(lu->nexuses, i);
        if (n != except)
            sdev_ua_raise_locked(n, asc, ascq);
    }
}

bool
sdev_ua_take_locked(struct sdev_nexus *nexus, uint8_t *asc, uint8_t *ascq)
{
    if (nexus->n_ua == 0)
        return false;
    *asc = nexus->ua_asc[0];
    *ascq = nexus->ua_ascq[0];
    nexus->n_ua--;
    memmove(nexus->ua_asc, nexus->ua_asc + 1, nexus->n_ua);
    memmove(nexus->ua_ascq, nexus->ua_ascq + 1, nexus->n_ua);
    return true;
}

void
sdev_ua_raise_reg_locked(struct sdev_lu *lu, const struct sdev_pr_reg *reg, uint8_t asc,
                         uint8_t ascq)
{
    for (guint i = 0; i < lu->nexuses->len; i++) {
        struct sdev_nexus *n = g_ptr_array_index(lu->nexuses, i);
        if (g_strcmp0(n->initiator_port, reg->initiator_port) == 0 &&
            g_strcmp0(n->target_port, reg->target_port) == 0 && n->rel_tpid == reg->rel_tpid)
            sdev_ua_raise_locked(n, asc, ascq);
    }
}

void
sdev_lu_raise_ua_all(struct sdev_lu *lu, uint8_t asc, uint8_t ascq)
{
    sdev_lu_lock(lu);
    sdev_ua_raise_all_locked(lu, NULL, asc, ascq);
    sdev_lu_unlock(lu);
}
