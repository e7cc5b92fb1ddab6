/* map.c — the granule map: on-disk map slots (codec and A/B selection) and
 * the in-memory map the data path reads without locks.
 *
 * On disk, map block b describes granules [b*16128, (b+1)*16128) with 2 bits
 * each, and is stored in two 4 KiB slots. A slot is EMPTY (all zero bytes:
 * never written, typically a hole), VALID (magic, block index, overlay uuid,
 * CRC-32C and contents check out) or INVALID (anything else). The block's
 * state is the VALID slot with the higher sequence. Because a flush always
 * writes the slot that does not hold the current state (journal.c), a torn
 * slot write can only ever damage the older copy. "No VALID slot, at least
 * one EMPTY" means the block's first write never completed: all BASE. "Both
 * slots written, neither VALID" cannot result from a crash: the block is
 * corrupt and I/O to its range fails with -EIO until ovctl check repairs it.
 *
 * In memory, blocks[b] is NULL until the first granule of the block leaves
 * BASE (so an untouched 1 TiB disk costs only the pointer table), then an
 * array of OV_MAP_WORDS uint64_t. Words are read with acquire loads and
 * changed with compare-and-swap so a reader never sees an intermediate
 * state (e.g. BASE while a granule goes DATA -> ZERO).
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <glib.h>

#include "ov-int.h"

#define WORD_LOW_BITS UINT64_C(0x5555555555555555)

uint64_t
ov_block_granules(const struct ov_header *h, uint64_t block)
{
    uint64_t granules = (h->size + h->granule - 1) / h->granule;
    uint64_t first = block * OV_MAP_GRANULES;

    if (first >= granules)
        return 0;
    return MIN((uint64_t)OV_MAP_GRANULES, granules - first);
}

static uint32_t
slot_crc(const uint8_t *slot)
{
    uint32_t crc = ov_crc32c(0, slot, G_STRUCT_OFFSET(struct ov_disk_slot_header, crc));
    return ov_crc32c(crc, slot + OV_SLOT_HEADER_SIZE, OV_SLOT_SIZE - OV_SLOT_HEADER_SIZE);
}

static bool
all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

enum ov_slot_state
ov_slot_decode(const uint8_t *slot, uint64_t block, const uint8_t uuid[OV_UUID_LEN],
               uint64_t valid_granules, uint64_t *seq, uint64_t *words, const char **why)
{
    struct ov_disk_slot_header sh;
    const char *dummy;

    if (!why)
        why = &dummy;
    *why = NULL;
    if (all_zero(slot, OV_SLOT_SIZE))
        return OV_SLOT_EMPTY;
    memcpy(&sh, slot, sizeof(sh));
    if (memcmp(sh.magic, OV_MAP_SLOT_MAGIC, 8) != 0) {
        *why = "bad magic";
        return OV_SLOT_INVALID;
    }
    if (GUINT32_FROM_LE(sh.crc) != slot_crc(slot)) {
        *why = "checksum mismatch";
        return OV_SLOT_INVALID;
    }
    if (GUINT32_FROM_LE(sh.block_index) != block) {
        *why = "belongs to another map block";
        return OV_SLOT_INVALID;
    }
    if (memcmp(sh.overlay_uuid, uuid, OV_UUID_LEN) != 0) {
        *why = "belongs to another overlay";
        return OV_SLOT_INVALID;
    }
    if (GUINT64_FROM_LE(sh.sequence) == 0) {
        *why = "sequence 0";
        return OV_SLOT_INVALID;
    }
    for (unsigned w = 0; w < OV_MAP_WORDS; w++) {
        uint64_t v;
        uint64_t first = (uint64_t)w * 32;

        memcpy(&v, slot + OV_SLOT_HEADER_SIZE + w * 8, 8);
        v = GUINT64_FROM_LE(v);
        /* 3 (both bits set) is not a state. */
        if (v & (v >> 1) & WORD_LOW_BITS) {
            *why = "invalid granule state";
            return OV_SLOT_INVALID;
        }
        /* Granules past the end of the disk must be BASE. */
        if (first + 32 > valid_granules) {
            uint64_t keep = first >= valid_granules ? 0 : valid_granules - first;
            uint64_t mask = keep >= 32 ? ~UINT64_C(0) : (UINT64_C(1) << (2 * keep)) - 1;
            if (v & ~mask) {
                *why = "granules beyond the end of the disk";
                return OV_SLOT_INVALID;
            }
        }
        if (words)
            words[w] = v;
    }
    *seq = GUINT64_FROM_LE(sh.sequence);
    return OV_SLOT_VALID;
}

void
ov_slot_encode(uint8_t *slot, uint64_t block, const uint8_t uuid[OV_UUID_LEN], uint64_t seq,
               const uint64_t *words)
{
    struct ov_disk_slot_header sh;

    memset(&sh, 0, sizeof(sh));
    memcpy(sh.magic, OV_MAP_SLOT_MAGIC, 8);
    sh.block_index = GUINT32_TO_LE((uint32_t)block);
    sh.sequence = GUINT64_TO_LE(seq);
    memcpy(sh.overlay_uuid, uuid, OV_UUID_LEN);
    memcpy(slot, &sh, sizeof(sh));
    for (unsigned w = 0; w < OV_MAP_WORDS; w++) {
        uint64_t v = GUINT64_TO_LE(words[w]);
        memcpy(slot + OV_SLOT_HEADER_SIZE + w * 8, &v, 8);
    }
    sh.crc = GUINT32_TO_LE(slot_crc(slot));
    memcpy(slot + G_STRUCT_OFFSET(struct ov_disk_slot_header, crc), &sh.crc, 4);
}

int
ov_slot_select(enum ov_slot_state a, uint64_t seq_a, enum ov_slot_state b, uint64_t seq_b)
{
    if (a == OV_SLOT_VALID && b == OV_SLOT_VALID)
        return seq_b > seq_a ? 1 : 0;
    if (a == OV_SLOT_VALID)
        return 0;
    if (b == OV_SLOT_VALID)
        return 1;
    if (a == OV_SLOT_EMPTY || b == OV_SLOT_EMPTY)
        return OV_SELECT_NONE;
    return OV_SELECT_CORRUPT;
}

/* ---- in-memory map ---- */

bool
ov_map_alloc(struct ov_overlay *ov)
{
    uint64_t n = ov->hdr.map_blocks;

    ov->blocks = g_try_new0(uint64_t *, n);
    ov->bad = g_try_new0(uint8_t, n);
    ov->dirty = g_try_new0(int, n);
    ov->seq = g_try_new0(uint64_t, n);
    ov->cur_slot = g_try_new0(uint8_t, n);
    ov->dirty_list = g_array_new(FALSE, FALSE, sizeof(uint32_t));
    return ov->blocks && ov->bad && ov->dirty && ov->seq && ov->cur_slot;
}

void
ov_map_free(struct ov_overlay *ov)
{
    if (ov->blocks)
        for (uint64_t b = 0; b < ov->hdr.map_blocks; b++)
            g_free(ov->blocks[b]);
    g_clear_pointer(&ov->blocks, g_free);
    g_clear_pointer(&ov->bad, g_free);
    g_clear_pointer(&ov->dirty, g_free);
    g_clear_pointer(&ov->seq, g_free);
    g_clear_pointer(&ov->cur_slot, g_free);
    if (ov->dirty_list)
        g_array_unref(g_steal_pointer(&ov->dirty_list));
}

static void
load_block(struct ov_overlay *ov, uint64_t b, const uint8_t *buf)
{
    uint64_t seq[2] = {0, 0};
    uint64_t words[2][OV_MAP_WORDS];
    enum ov_slot_state st[2];
    uint64_t valid = ov_block_granules(&ov->hdr, b);
    int pick;

    for (unsigned s = 0; s < 2; s++)
        st[s] = ov_slot_decode(buf + s * OV_SLOT_SIZE, b, ov->hdr.overlay_uuid, valid, &seq[s],
                               words[s], NULL);
    pick = ov_slot_select(st[0], seq[0], st[1], seq[1]);
    if (pick == OV_SELECT_CORRUPT) {
        ov->bad[b] = 1;
        __atomic_store_n(&ov->corrupt, 1, __ATOMIC_RELAXED);
        g_warning("overlay %s: map block %" G_GUINT64_FORMAT " has no valid copy; I/O to "
                  "bytes %" G_GUINT64_FORMAT "..%" G_GUINT64_FORMAT " fails until "
                  "'ovctl check --repair'",
                  ov->path, b, b * OV_MAP_GRANULES * ov->hdr.granule,
                  MIN((b + 1) * OV_MAP_GRANULES * ov->hdr.granule, ov->hdr.size) - 1);
        return;
    }
    if (pick == OV_SELECT_NONE) {
        /* Never completely written. A torn first write leaves one slot
         * INVALID: the next flush writes slot 0 first, which is either that
         * torn slot or an EMPTY one; both are free to overwrite. */
        ov->seq[b] = 0;
        ov->cur_slot[b] = 1;
        return;
    }
    ov->seq[b] = seq[pick];
    ov->cur_slot[b] = (uint8_t)pick;
    if (!all_zero((const uint8_t *)words[pick], sizeof(words[pick]))) {
        ov->blocks[b] = g_new(uint64_t, OV_MAP_WORDS);
        memcpy(ov->blocks[b], words[pick], sizeof(words[pick]));
    }
}

bool
ov_map_load(struct ov_overlay *ov, GError **error)
{
    uint64_t end = OV_MAP_OFFSET + ov->hdr.map_blocks * OV_MAP_BLOCK_BYTES;
    g_autofree uint8_t *buf = g_malloc(OV_MAP_BLOCK_BYTES);
    uint64_t pos = OV_MAP_OFFSET;

    while (pos < end) {
        /* Skip holes: an unwritten block is all BASE, and an untouched map
         * region should cost nothing to open. */
        off_t data = lseek(ov->fd, (off_t)pos, SEEK_DATA);
        off_t hole;

        if (data < 0) {
            if (errno == ENXIO)
                break;
            data = (off_t)pos; /* no SEEK_DATA support: read everything */
            hole = (off_t)end;
        } else {
            hole = lseek(ov->fd, data, SEEK_HOLE);
            if (hole < 0)
                hole = (off_t)end;
        }
        if ((uint64_t)data >= end)
            break;
        uint64_t b0 = ((uint64_t)data - OV_MAP_OFFSET) / OV_MAP_BLOCK_BYTES;
        uint64_t b1 = (MIN((uint64_t)hole, end) - OV_MAP_OFFSET + OV_MAP_BLOCK_BYTES - 1) /
                      OV_MAP_BLOCK_BYTES;
        for (uint64_t b = b0; b < b1; b++) {
            int r = ov_sys_pread(ov->fd, buf, OV_MAP_BLOCK_BYTES, ov_slot_offset(b, 0), true);
            if (r < 0) {
                ov_set_error_errno(error, r, "reading map block %" G_GUINT64_FORMAT, b);
                return false;
            }
            load_block(ov, b, buf);
        }
        pos = OV_MAP_OFFSET + b1 * OV_MAP_BLOCK_BYTES;
    }
    return true;
}

static inline uint64_t *
block_words(struct ov_overlay *ov, uint64_t b)
{
    return __atomic_load_n(&ov->blocks[b], __ATOMIC_ACQUIRE);
}

enum ov_gstate
ov_map_get(struct ov_overlay *ov, uint64_t g)
{
    uint64_t b = g / OV_MAP_GRANULES, i = g % OV_MAP_GRANULES;
    uint64_t *w;

    if (ov->bad[b])
        return OV_G_BAD;
    w = block_words(ov, b);
    if (!w)
        return OV_G_BASE;
    return (enum ov_gstate)((__atomic_load_n(&w[i / 32], __ATOMIC_ACQUIRE) >> (2 * (i % 32))) & 3);
}

enum ov_gstate
ov_map_run(struct ov_overlay *ov, uint64_t g, uint64_t g_end, uint64_t *run_end)
{
    uint64_t b = g / OV_MAP_GRANULES;
    uint64_t block_end = MIN((b + 1) * OV_MAP_GRANULES, g_end);
    enum ov_gstate st;
    uint64_t *w;

    /* A run may continue into following blocks: walk block by block. */
    if (ov->bad[b]) {
        st = OV_G_BAD;
    } else if (!(w = block_words(ov, b))) {
        st = OV_G_BASE;
    } else {
        uint64_t i = g % OV_MAP_GRANULES;
        uint64_t i_end = block_end - b * OV_MAP_GRANULES;
        uint64_t word = __atomic_load_n(&w[i / 32], __ATOMIC_ACQUIRE);
        uint64_t same;

        st = (enum ov_gstate)((word >> (2 * (i % 32))) & 3);
        same = st * WORD_LOW_BITS; /* a word with every granule in state st */
        while (++i < i_end) {
            if (i % 32 == 0) {
                word = __atomic_load_n(&w[i / 32], __ATOMIC_ACQUIRE);
                if (word == same && i + 32 <= i_end) {
                    i += 31;
                    continue;
                }
            }
            if (((word >> (2 * (i % 32))) & 3) != st) {
                *run_end = b * OV_MAP_GRANULES + i;
                return st;
            }
        }
    }
    *run_end = block_end;
    while (*run_end < g_end) {
        uint64_t next_end;
        if (ov_map_run(ov, *run_end, MIN(*run_end + OV_MAP_GRANULES, g_end), &next_end) != st)
            break;
        *run_end = next_end;
        if (next_end % OV_MAP_GRANULES != 0)
            break;
    }
    return st;
}

void
ov_map_mark_dirty(struct ov_overlay *ov, uint64_t b)
{
    /* Order: the caller's word updates happen before this exchange; the
     * flush clears the flag before it copies the words (journal.c, F2). */
    if (__atomic_exchange_n(&ov->dirty[b], 1, __ATOMIC_SEQ_CST) == 0) {
        uint32_t v = (uint32_t)b;
        pthread_mutex_lock(&ov->dirty_lock);
        g_array_append_val(ov->dirty_list, v);
        pthread_mutex_unlock(&ov->dirty_lock);
    }
}

static uint64_t *
block_words_alloc(struct ov_overlay *ov, uint64_t b)
{
    uint64_t *w = block_words(ov, b);
    uint64_t *expected = NULL;

    if (w)
        return w;
    w = g_new0(uint64_t, OV_MAP_WORDS);
    if (!__atomic_compare_exchange_n(&ov->blocks[b], &expected, w, false, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE)) {
        g_free(w);
        w = expected;
    }
    return w;
}

void
ov_map_set_range(struct ov_overlay *ov, uint64_t g0, uint64_t g1, enum ov_gstate st)
{
    while (g0 < g1) {
        uint64_t b = g0 / OV_MAP_GRANULES;
        uint64_t end = MIN(g1, (b + 1) * OV_MAP_GRANULES);
        uint64_t *w;
        bool changed = false;

        if (st == OV_G_BASE && !block_words(ov, b)) {
            g0 = end;
            continue;
        }
        w = block_words_alloc(ov, b);
        for (uint64_t i = g0 - b * OV_MAP_GRANULES; i < end - b * OV_MAP_GRANULES;) {
            unsigned first = (unsigned)(i % 32);
            unsigned n = (unsigned)MIN(32u - first, end - b * OV_MAP_GRANULES - i);
            uint64_t mask = (n == 32 ? ~UINT64_C(0) : ((UINT64_C(1) << (2 * n)) - 1))
                            << (2 * first);
            uint64_t want = (st * WORD_LOW_BITS) & mask;
            uint64_t old = __atomic_load_n(&w[i / 32], __ATOMIC_ACQUIRE);
            uint64_t neu;

            do {
                neu = (old & ~mask) | want;
                if (neu == old)
                    break;
            } while (!__atomic_compare_exchange_n(&w[i / 32], &old, neu, true, __ATOMIC_ACQ_REL,
                                                  __ATOMIC_ACQUIRE));
            changed |= neu != old;
            i += n;
        }
        if (changed)
            ov_map_mark_dirty(ov, b);
        g0 = end;
    }
}

void
ov_words_count(const uint64_t *words, size_t n, uint64_t *data, uint64_t *zero)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t v = words[i];
        *data += (uint64_t)__builtin_popcountll(v & ~(v >> 1) & WORD_LOW_BITS);
        *zero += (uint64_t)__builtin_popcountll((v >> 1) & ~v & WORD_LOW_BITS);
    }
}

void
ov_map_count(struct ov_overlay *ov, uint64_t *data, uint64_t *zero)
{
    *data = *zero = 0;
    for (uint64_t b = 0; b < ov->hdr.map_blocks; b++) {
        uint64_t *w = block_words(ov, b);
        uint64_t copy[OV_MAP_WORDS];

        if (!w)
            continue;
        for (unsigned i = 0; i < OV_MAP_WORDS; i++)
            copy[i] = __atomic_load_n(&w[i], __ATOMIC_RELAXED);
        ov_words_count(copy, OV_MAP_WORDS, data, zero);
    }
}
