/* journal.c — flush: how map changes reach the disk, and in which order.
 *
 * There is no separate journal: the map blocks are double-buffered (two
 * slots per block, map.c) and the data lives at its final place. A flush is:
 *   (a) snapshot: take the list of blocks dirtied since the last flush; for
 *       each, clear its dirty flag, then copy its words;
 *   (b) fdatasync(): every byte those snapshots call DATA is now durable
 *       (the bytes were written before the map said DATA, io.c I1);
 *   (c) write each snapshot, with sequence = current + 1, into the slot that
 *       does NOT hold the block's current state;
 *   (d) fdatasync(): the new slots are durable; only now does each block's
 *       current slot flip.
 * Cost: one fdatasync plus, when metadata changed, one 4 KiB write per dirty
 * map block and a second fdatasync. Nothing is proportional to disk size.
 *
 * On-disk invariants (numbered as in docs/overlay-format.md):
 *  F1. A valid map slot never says DATA for a granule whose bytes were not
 *      durable before the slot was written (steps a-b-c, io.c I1).
 *  F2. A block's words are copied after its dirty flag is cleared, and a
 *      writer sets the flag after changing the words, so a change is either
 *      in this snapshot or leaves the block dirty for the next flush.
 *  F3. The slot holding a block's last durable state is never written: a
 *      torn or failed slot write damages only the older copy, and open picks
 *      the valid slot with the higher sequence.
 *  F4. cur_slot/seq advance only after (d) succeeded, so after a failed
 *      flush the next one rewrites the same (not yet valid) slot again.
 *  F5. A failed fdatasync is sticky: the kernel may have dropped the dirty
 *      pages it could not write, so no later flush may claim they are
 *      durable. Every later flush fails with the same error (ENOSPC stays
 *      ENOSPC, so clients see "out of space", not silent loss).
 */
#include <errno.h>
#include <string.h>
#include <glib.h>

#include "ov-int.h"

struct snapshot {
    uint32_t block;
    uint8_t slot[OV_SLOT_SIZE];
};

static GArray *
steal_dirty_list(struct ov_overlay *ov)
{
    GArray *list;

    pthread_mutex_lock(&ov->dirty_lock);
    list = ov->dirty_list;
    ov->dirty_list = g_array_new(FALSE, FALSE, sizeof(uint32_t));
    pthread_mutex_unlock(&ov->dirty_lock);
    return list;
}

/* Step (a) for one block: F2. */
static void
take_snapshot(struct ov_overlay *ov, struct snapshot *s, uint32_t b)
{
    uint64_t words[OV_MAP_WORDS];
    uint64_t *w;

    __atomic_store_n(&ov->dirty[b], 0, __ATOMIC_SEQ_CST);
    w = __atomic_load_n(&ov->blocks[b], __ATOMIC_ACQUIRE);
    for (unsigned i = 0; i < OV_MAP_WORDS; i++)
        words[i] = w ? __atomic_load_n(&w[i], __ATOMIC_ACQUIRE) : 0;
    s->block = b;
    ov_slot_encode(s->slot, b, ov->hdr.overlay_uuid, ov->seq[b] + 1, words);
}

static unsigned
next_slot(struct ov_overlay *ov, uint32_t b)
{
    return ov->seq[b] == 0 ? 0 : 1u - ov->cur_slot[b];
}

static void
redirty(struct ov_overlay *ov, struct snapshot *snaps, guint n)
{
    for (guint i = 0; i < n; i++)
        ov_map_mark_dirty(ov, snaps[i].block);
}

static int
flush_locked(struct ov_overlay *ov)
{
    g_autoptr(GArray) list = NULL;
    g_autofree struct snapshot *snaps = NULL;
    int r = __atomic_load_n(&ov->sticky_error, __ATOMIC_ACQUIRE);

    if (r < 0)
        return r;
    list = steal_dirty_list(ov);
    if (list->len > 0) {
        snaps = g_new(struct snapshot, list->len);
        for (guint i = 0; i < list->len; i++)
            take_snapshot(ov, &snaps[i], g_array_index(list, uint32_t, i)); /* (a) */
    }
    r = ov_sys_sync(ov); /* (b) */
    if (r < 0) {
        __atomic_store_n(&ov->sticky_error, r, __ATOMIC_RELEASE); /* F5 */
        redirty(ov, snaps, list->len);
        return r;
    }
    if (list->len == 0)
        return 0;
    for (guint i = 0; i < list->len; i++) { /* (c), F3 */
        uint32_t b = snaps[i].block;
        r = ov_sys_pwrite(ov, OV_FAULT_MAP_WRITE, snaps[i].slot, OV_SLOT_SIZE,
                          ov_slot_offset(b, next_slot(ov, b)));
        if (r < 0) {
            redirty(ov, snaps, list->len); /* F4: nothing advances */
            return r;
        }
    }
    r = ov_sys_sync(ov); /* (d) */
    if (r < 0) {
        __atomic_store_n(&ov->sticky_error, r, __ATOMIC_RELEASE);
        redirty(ov, snaps, list->len);
        return r;
    }
    for (guint i = 0; i < list->len; i++) { /* F4 */
        uint32_t b = snaps[i].block;
        ov->cur_slot[b] = (uint8_t)next_slot(ov, b);
        ov->seq[b]++;
    }
    return 0;
}

int
ov_overlay_flush(struct ov_overlay *ov)
{
    int r;

    if (ov->read_only)
        return 0;
    pthread_mutex_lock(&ov->flush_lock);
    r = flush_locked(ov);
    pthread_mutex_unlock(&ov->flush_lock);
    return r;
}
