/* ov-int.h — internals of the overlay library, shared by its .c files and
 * its unit tests. Not installed, not part of any contract. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <pthread.h>
#include <sys/uio.h>
#include <glib.h>

#include "format.h"
#include "overlay.h"

/* ---- header (header.c) ---- */

/* A decoded header, host byte order. */
struct ov_header {
    uint32_t version;
    uint64_t incompat, compat, autoclear;
    uint64_t size;
    uint32_t granule;
    uint64_t map_blocks;
    uint64_t data_offset;
    uint8_t overlay_uuid[OV_UUID_LEN];
    int64_t created;
    struct ov_base_id base;
};

/* Compute map_blocks/data_offset for a size and granule; false + error if
 * the combination is out of range. */
bool ov_layout_compute(uint64_t size, uint32_t granule, uint64_t *map_blocks, uint64_t *data_offset,
                       GError **error);
/* Fill a fresh header for base_id (new overlay uuid, created = now). */
bool ov_header_init(struct ov_header *h, const struct ov_base_id *base_id, uint32_t granule,
                    GError **error);
void ov_header_encode(const struct ov_header *h, uint8_t out[OV_HEADER_SIZE]);
/* Decode and verify one copy: magic, crc, version, incompatible features,
 * layout. OV_ERROR_CORRUPT or OV_ERROR_UNSUPPORTED on failure. */
bool ov_header_decode(const uint8_t in[OV_HEADER_SIZE], struct ov_header *h, GError **error);
/* Read both copies from fd and use the first valid one. *good gets a bit per
 * valid copy (bit 0 = copy 0). An unsupported copy fails the read. */
bool ov_header_read(int fd, struct ov_header *h, unsigned *good, GError **error);
/* Write both copies (copy 1 first, each followed by fdatasync). */
bool ov_header_write(int fd, const struct ov_header *h, GError **error);
bool ov_base_id_equal(const struct ov_base_id *a, const struct ov_base_id *b);

/* ---- map slots (map.c) ---- */

enum ov_slot_state {
    OV_SLOT_EMPTY,   /* every byte zero: never written */
    OV_SLOT_VALID,   /* checksum and contents good */
    OV_SLOT_INVALID, /* anything else: torn write or damage */
};

/* Granules of map block `block` that lie inside the disk. */
uint64_t ov_block_granules(const struct ov_header *h, uint64_t block);
/* Decode one 4 KiB slot. On VALID fills *seq and words (host order). On
 * INVALID, *why says what is wrong (static string). */
enum ov_slot_state ov_slot_decode(const uint8_t *slot, uint64_t block,
                                  const uint8_t uuid[OV_UUID_LEN], uint64_t valid_granules,
                                  uint64_t *seq, uint64_t *words, const char **why);
void ov_slot_encode(uint8_t *slot, uint64_t block, const uint8_t uuid[OV_UUID_LEN], uint64_t seq,
                    const uint64_t *words);
/* Which slot holds a block's state: 0 or 1; OV_SELECT_NONE when the block was
 * never completely written (all BASE); OV_SELECT_CORRUPT when both slots were
 * written and neither is valid. */
#define OV_SELECT_NONE (-1)
#define OV_SELECT_CORRUPT (-2)
int ov_slot_select(enum ov_slot_state a, uint64_t seq_a, enum ov_slot_state b, uint64_t seq_b);
static inline uint64_t
ov_slot_offset(uint64_t block, unsigned slot)
{
    return OV_MAP_OFFSET + block * OV_MAP_BLOCK_BYTES + (uint64_t)slot * OV_SLOT_SIZE;
}

/* ---- the open overlay ---- */

enum ov_fault_op {
    OV_FAULT_DATA_WRITE, /* pwrite into the data region */
    OV_FAULT_MAP_WRITE,  /* pwrite of a map slot */
    OV_FAULT_SYNC,       /* fdatasync */
    OV_FAULT_PUNCH,      /* fallocate(PUNCH_HOLE) */
};
/* Test hook, called before each write-side system call with its target
 * range: return 0 to let it run, or -errno to fail it without running it. */
typedef int (*ov_fault_fn)(void *user_data, enum ov_fault_op op, int fd, uint64_t offset,
                           uint64_t len);

#define OV_STRIPES 256u
#define OV_STRIPE_SHIFT 6u /* one stripe lock per 64 consecutive granules */

struct ov_overlay {
    char *path;
    int fd;
    bool read_only;
    struct ov_base *base;
    struct ov_header hdr;
    unsigned granule_shift;
    uint64_t n_granules;
    uint8_t *zero_buf; /* granule bytes of zeros */

    /* Map: blocks[b] is NULL (all BASE) or OV_MAP_WORDS words, read and
     * updated with atomics. bad[b] is set at open and never changes. */
    uint64_t **blocks;
    uint8_t *bad;
    int *dirty;                 /* atomic: block changed since its last snapshot */
    pthread_mutex_t dirty_lock; /* protects dirty_list */
    GArray *dirty_list;         /* uint32_t block indexes whose dirty went 0 -> 1 */

    pthread_mutex_t flush_lock; /* serialises flushes; protects seq, cur_slot */
    uint64_t *seq;              /* sequence of the current slot, 0 = never written */
    uint8_t *cur_slot;          /* slot holding seq */
    int sticky_error;           /* atomic: a failed fdatasync poisons later flushes */
    int corrupt;                /* atomic bool */

    /* pthread mutexes rather than GMutex: GLib's futex-based GMutex is
     * invisible to ThreadSanitizer, which CI runs on the threaded paths. */
    pthread_mutex_t stripes[OV_STRIPES];

    ov_fault_fn fault_fn;
    void *fault_data;
};

/* map.c: in-memory map */
bool ov_map_alloc(struct ov_overlay *ov);
void ov_map_free(struct ov_overlay *ov);
/* Load every map block from ov->fd (holes skipped). Corrupt blocks are
 * flagged, not fatal. false + error only for I/O errors. */
bool ov_map_load(struct ov_overlay *ov, GError **error);
enum ov_gstate ov_map_get(struct ov_overlay *ov, uint64_t g);
/* State of granule g and the end (exclusive, <= g_end) of its run. */
enum ov_gstate ov_map_run(struct ov_overlay *ov, uint64_t g, uint64_t g_end, uint64_t *run_end);
/* Set [g0, g1) to st and mark the touched blocks dirty. Never fails. */
void ov_map_set_range(struct ov_overlay *ov, uint64_t g0, uint64_t g1, enum ov_gstate st);
void ov_map_mark_dirty(struct ov_overlay *ov, uint64_t block);
void ov_map_count(struct ov_overlay *ov, uint64_t *data, uint64_t *zero);
/* Count DATA/ZERO granules in a word array. */
void ov_words_count(const uint64_t *words, size_t n, uint64_t *data, uint64_t *zero);

/* sys.c: system calls on the overlay file, through the fault hook.
 * All return 0 or -errno; EDQUOT is reported as -ENOSPC. */
int ov_sys_pwritev(struct ov_overlay *ov, enum ov_fault_op op, struct iovec *iov, int iovcnt,
                   uint64_t offset);
int ov_sys_pwrite(struct ov_overlay *ov, enum ov_fault_op op, const void *buf, size_t len,
                  uint64_t offset);
int ov_sys_sync(struct ov_overlay *ov);
int ov_sys_punch(struct ov_overlay *ov, uint64_t offset, uint64_t len);
/* pread exactly len bytes; past end of file: zeros if zero_eof, else -EIO. */
int ov_sys_pread(int fd, void *buf, size_t len, uint64_t offset, bool zero_eof);

/* Install a test hook (NULL to remove). Tests only. */
void ov_overlay_set_fault_hook(struct ov_overlay *ov, ov_fault_fn fn, void *user_data);

/* io.c */
void ov_stripes_lock(struct ov_overlay *ov, uint64_t g0, uint64_t g1);
void ov_stripes_unlock(struct ov_overlay *ov, uint64_t g0, uint64_t g1);

/* util.c */
void ov_set_error_errno(GError **error, int err, const char *fmt, ...) G_GNUC_PRINTF(3, 4);
