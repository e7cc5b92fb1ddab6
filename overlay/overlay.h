/* overlay.h — public face of the ovgate overlay library.
 *
 * An overlay is one client's sparse copy-on-write file on top of one
 * immutable base image generation (see ov-base.h and docs/overlay-format.md).
 * Every granule (default 4 KiB) of the virtual disk is in one of three states:
 *   BASE  — absent from the overlay: reads come from the base;
 *   DATA  — present: reads come from the overlay file;
 *   ZERO  — present as zeros (after discard / write-zeroes): reads are zeros,
 *           the overlay holds no space for it (hole punched).
 *
 * Error style: setup calls (create/open/close/info) return bool or a pointer
 * and set a GError in OV_ERROR. Data-path calls (pread/pwrite/zero/flush/
 * block_status) return 0 or -errno and never allocate a GError.
 *
 * Threading: an open overlay may be used from many threads at once. Reads,
 * writes and zeroes may run concurrently; concurrent writes to overlapping
 * ranges land in some order (as on a disk). Flush waits for nothing but makes
 * durable every write that completed before it was called.
 *
 * Durability: a write is durable once a later ov_overlay_flush() returns 0, or
 * when written with OV_FUA. A crash may lose writes that were not flushed; it
 * never leaves torn metadata or a map that points at unwritten data.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <glib.h>

#include "ov-base.h"

#ifdef __cplusplus
extern "C" {
#endif

#define OV_ERROR (ov_error_quark())
OV_PUBLIC GQuark ov_error_quark(void);

enum ov_error_code {
    OV_ERROR_FAILED,      /* generic I/O or system error (message says which) */
    OV_ERROR_CORRUPT,     /* bad magic, checksum, or inconsistent metadata */
    OV_ERROR_UNSUPPORTED, /* newer format version or unknown incompatible feature */
    OV_ERROR_WRONG_BASE,  /* overlay belongs to another base (name/gen/size/uuid) */
    OV_ERROR_LOCKED,      /* another writer holds the overlay */
    OV_ERROR_INVALID,     /* bad argument (size, granule, name) */
    OV_ERROR_NOT_FOUND,   /* store object does not exist */
    OV_ERROR_EXISTS,      /* store object already exists */
    OV_ERROR_NO_SPACE,    /* ENOSPC / EDQUOT on the store */
};

#define OV_DEFAULT_GRANULE 4096u
#define OV_MIN_GRANULE 512u
#define OV_MAX_GRANULE (1u << 20)
/* OV_UUID_LEN, OV_IMAGE_NAME_MAX and struct ov_base_id (the identity of the
 * base generation an overlay sits on) are declared in ov-base.h. */

/* Parse / format a UUID as 36-character text. */
OV_PUBLIC bool ov_uuid_parse(const char *text, uint8_t uuid[OV_UUID_LEN]);
OV_PUBLIC void ov_uuid_format(const uint8_t uuid[OV_UUID_LEN], char out[37]);
OV_PUBLIC void ov_uuid_generate(uint8_t uuid[OV_UUID_LEN]);

struct ov_overlay;

enum ov_open_flags {
    OV_OPEN_READ_ONLY = 1u << 0, /* no writes; takes a shared lock, not exclusive */
    OV_OPEN_NO_LOCK = 1u << 1,   /* inspect without locking (ovctl info on a busy overlay) */
};

/* Create a new empty overlay at path for the given base identity. The file is
 * written under a temporary name, fsynced and renamed into place, so path
 * either does not exist or holds a complete overlay. Fails with OV_ERROR_EXISTS
 * if path exists and replace is false; with replace=true the old file is
 * atomically replaced (the caller must hold its lock or know it is unused). */
OV_PUBLIC bool ov_overlay_create(const char *path, const struct ov_base_id *base_id,
                                 uint32_t granule, bool replace, GError **error);

/* Open an overlay. base must match the identity recorded in the overlay
 * (OV_ERROR_WRONG_BASE otherwise); the overlay takes its own reference to it.
 * Unless OV_OPEN_NO_LOCK, a writer takes an exclusive lock (OV_ERROR_LOCKED if
 * held elsewhere, also by another process). Caller frees with ov_overlay_close. */
OV_PUBLIC struct ov_overlay *ov_overlay_open(const char *path, struct ov_base *base,
                                             unsigned flags, GError **error);

/* Read the recorded base identity of an overlay file without opening a base. */
OV_PUBLIC bool ov_overlay_read_base_id(const char *path, struct ov_base_id *out, GError **error);

/* Flush, release the lock and free. Accepts NULL. Returns false (with error)
 * if the final flush failed; the overlay is freed either way. */
OV_PUBLIC bool ov_overlay_close(struct ov_overlay *ov, GError **error);

enum ov_io_flags {
    OV_FUA = 1u << 0, /* durable when the call returns */
};

/* Data path: 0 or -errno. offset/len may have any byte alignment; the range
 * must lie inside the virtual size (-EINVAL otherwise; callers check first). */
OV_PUBLIC int ov_overlay_pread(struct ov_overlay *ov, void *buf, size_t len, uint64_t offset);
OV_PUBLIC int ov_overlay_pwrite(struct ov_overlay *ov, const void *buf, size_t len,
                                uint64_t offset, unsigned flags);
/* Make the range read as zeros. Whole granules become ZERO (space released);
 * partial granules at the edges are written with zeros (unless they are ZERO
 * already). Serves discard/UNMAP, TRIM, WRITE SAME with UNMAP and
 * WRITE_ZEROES alike: a discarded range must read as zeros, never as the
 * base's old bytes. */
OV_PUBLIC int ov_overlay_zero(struct ov_overlay *ov, uint64_t offset, uint64_t len,
                              unsigned flags);
/* Make every write completed before this call durable. Cost is proportional
 * to the metadata dirtied since the last flush, not to the disk size. */
OV_PUBLIC int ov_overlay_flush(struct ov_overlay *ov);

enum ov_extent_kind {
    OV_EXTENT_BASE = 0, /* absent: comes from the base */
    OV_EXTENT_DATA = 1, /* overlay data */
    OV_EXTENT_ZERO = 2, /* overlay zeros (discarded / zeroed) */
};

/* Called once per maximal run of one kind, in order; return false to stop. */
typedef bool (*ov_extent_fn)(uint64_t offset, uint64_t length, enum ov_extent_kind kind,
                             void *user_data);

/* Report the overlay's view of [offset, offset+length), granule-exact (the
 * first and last extents are clipped to the range). 0 or -errno. */
OV_PUBLIC int ov_overlay_block_status(struct ov_overlay *ov, uint64_t offset, uint64_t length,
                                      ov_extent_fn fn, void *user_data);

/* Where the bytes of a range live, for zero-copy senders (which map the
 * files or sendfile them): a file and an offset in it, or zeros (fd == -1). */
struct ov_segment {
    int fd; /* borrowed: valid while the overlay (and its base) stay open */
    uint64_t file_offset;
    uint64_t len;
};

/* Describe [offset, offset+len) as the current map has it: BASE runs as the
 * base's file (ov_base.fd), DATA runs as the overlay file at its data
 * offset, ZERO runs as zeros. Fills at most max segments in order and
 * returns how many (0 for len 0), or -E2BIG (more are needed), -ENOTSUP (a
 * BASE run whose base has no local file: read with ov_overlay_pread), -EIO
 * (corrupt map), -EINVAL (range). Like ov_overlay_pread it takes no lock:
 * a write racing with the call may or may not be seen, and the bytes are
 * read from the files only when the caller reads them. */
OV_PUBLIC int ov_overlay_read_segments(struct ov_overlay *ov, uint64_t offset, uint64_t len,
                                       struct ov_segment *segs, unsigned max);

struct ov_overlay_info {
    uint64_t size;    /* virtual size in bytes (= base size) */
    uint32_t granule; /* bytes */
    uint32_t format_version;
    struct ov_base_id base;
    uint64_t data_granules; /* granules in DATA state */
    uint64_t zero_granules; /* granules in ZERO state */
    uint64_t file_bytes;    /* space the overlay file occupies on disk (st_blocks * 512) */
    bool corrupt;           /* an I/O found corrupt metadata; repair with ovctl check */
};

OV_PUBLIC void ov_overlay_get_info(struct ov_overlay *ov, struct ov_overlay_info *info);
OV_PUBLIC struct ov_base *ov_overlay_get_base(struct ov_overlay *ov); /* borrowed */
OV_PUBLIC const char *ov_overlay_get_path(struct ov_overlay *ov);     /* borrowed */

/* Verify an overlay file (header, every map block, map vs file size).
 * With repair, rewrite damaged map blocks from the surviving copy, or mark
 * granules whose state cannot be trusted as BASE and report them. Each
 * finding and action is appended to report (one line each). Returns false
 * with an error only if the file cannot be checked at all; *clean tells
 * whether nothing was wrong. The overlay must not be open elsewhere. */
OV_PUBLIC bool ov_overlay_check(const char *path, bool repair, GString *report, bool *clean,
                                GError **error);

/* CRC-32C (Castagnoli), as used by the overlay format and iSCSI digests.
 * Uses SSE4.2 when the CPU has it. Start with crc = 0. */
OV_PUBLIC uint32_t ov_crc32c(uint32_t crc, const void *data, size_t len);

/* Map errno to an OV_ERROR code (ENOSPC/EDQUOT -> NO_SPACE, ...). */
OV_PUBLIC enum ov_error_code ov_error_from_errno(int err);

#ifdef __cplusplus
}
#endif
