/* ov-base.h — the base-source interface of the overlay library.
 *
 * A base is the read-only golden image generation an overlay sits on. The
 * overlay library reads absent granules through this interface and knows
 * nothing else about where the bytes come from: a local raw file
 * (proxy/base/file.c), an upstream NBD export or iSCSI LUN (later), or a
 * shared read cache in front of one of those.
 *
 * Rules for implementations:
 *  - pread is called concurrently from many threads; it must be thread-safe.
 *  - pread returns 0 after filling exactly len bytes, or -errno. Reads
 *    beyond size are never issued by the library.
 *  - block_status is optional (NULL = "everything is data").
 *  - fd is a read-only descriptor of a local file holding the bytes at the
 *    same offsets, or -1. When >= 0, the library may pread it directly
 *    (one page-cache copy shared by every client) and commit may use it for
 *    copy_file_range / FICLONE.
 *  - A base is refcounted: ov_base_ref / ov_base_unref. The last unref calls
 *    ops->destroy, which frees the implementation's struct (and closes fd);
 *    ov_base_unref then frees the description copy made by ov_base_init.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define OV_PUBLIC __attribute__((visibility("default")))

#define OV_UUID_LEN 16
#define OV_IMAGE_NAME_MAX 63 /* bytes, without the NUL */

/* Identity of the base generation an overlay sits on. An overlay opens only
 * against a base whose identity matches exactly. (Declared here so that a
 * base source can carry its identity; overlay.h re-exports it.) */
struct ov_base_id {
    char image[OV_IMAGE_NAME_MAX + 1];
    uint32_t generation;
    uint64_t size;
    uint8_t uuid[OV_UUID_LEN]; /* random per generation, set when it is published */
};

struct ov_base;

/* Extent kinds reported by a base's block_status. */
enum ov_base_extent {
    OV_BASE_DATA = 0, /* bytes as stored */
    OV_BASE_ZERO = 1, /* reads as zeros (a hole in a sparse file) */
};

/* Called once per extent, in order; return false to stop early. */
typedef bool (*ov_base_extent_fn)(uint64_t offset, uint64_t length, enum ov_base_extent kind,
                                  void *user_data);

struct ov_base_ops {
    const char *name; /* "file", "nbd", "iscsi", "cache" */
    int (*pread)(struct ov_base *base, void *buf, size_t len, uint64_t offset);
    /* Optional: extents covering [offset, offset+length). 0 or -errno. */
    int (*block_status)(struct ov_base *base, uint64_t offset, uint64_t length,
                        ov_base_extent_fn fn, void *user_data);
    /* Optional: hint that [offset, offset+len) will be read soon. */
    void (*prefetch)(struct ov_base *base, uint64_t offset, uint64_t len);
    void (*destroy)(struct ov_base *base);
};

struct ov_base {
    const struct ov_base_ops *ops;
    uint64_t size;     /* bytes; fixed for the life of the base */
    int fd;            /* local file descriptor with the same bytes, or -1 */
    char *description; /* for logs, e.g. "file:/var/lib/ovgate/images/lab/gen/3.raw" */
    volatile int refcount;
    /* Identity of the generation these bytes belong to, when known (set by
     * whoever opened the base for a store generation, ov_base_set_id).
     * ov_overlay_open compares the full identity when has_id, else the size. */
    bool has_id;
    struct ov_base_id id;
    /* Whole-file read-only mapping of fd, made by ov_base_map on first use
     * (NULL until then), unmapped by the last unref. */
    void *map;
    bool map_failed;
};

/* Initialise the common fields of a freshly allocated base (refcount 1).
 * Takes a copy of description. */
OV_PUBLIC void ov_base_init(struct ov_base *base, const struct ov_base_ops *ops, uint64_t size,
                            int fd, const char *description);
/* Record which generation the base holds (copied). */
OV_PUBLIC void ov_base_set_id(struct ov_base *base, const struct ov_base_id *id);
OV_PUBLIC struct ov_base *ov_base_ref(struct ov_base *base);
/* Accepts NULL. */
OV_PUBLIC void ov_base_unref(struct ov_base *base);

/* The whole local file (fd >= 0) as one read-only shared mapping, made once
 * and kept until the last unref, or NULL (no local file, or mapping failed).
 * For zero-copy sends of base bytes: a generation never changes and is never
 * truncated while served, so the mapping stays valid; hand its bytes to
 * send calls only (a disk read error while touching them is SIGBUS in user
 * code, an error code in the kernel). Thread-safe. */
OV_PUBLIC const uint8_t *ov_base_map(struct ov_base *base);
/* Convenience wrappers that dispatch through ops. */
OV_PUBLIC int ov_base_pread(struct ov_base *base, void *buf, size_t len, uint64_t offset);
/* Falls back to one OV_BASE_DATA extent when the base has no block_status. */
OV_PUBLIC int ov_base_block_status(struct ov_base *base, uint64_t offset, uint64_t length,
                                   ov_base_extent_fn fn, void *user_data);

#ifdef __cplusplus
}
#endif
