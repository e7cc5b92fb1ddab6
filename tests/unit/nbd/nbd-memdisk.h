/* nbd-memdisk.h — an in-memory disk with overlay semantics and an export
 * table, so the NBD server's handshake and transmission code can be driven
 * end to end (by libnbd, raw sockets or a fuzzer) without a store.
 *
 * Each 4 KiB granule is in one of the view's extent states: base data, base
 * hole (reads zeros), overlay data, overlay zero — enough to check block
 * status, OFFSET_HOLE reads and trim/zero semantics like the real view.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>

#include "nbd-int.h"

#define NBDT_GRANULE 4096u

struct nbdt_disk {
    GMutex lock;
    uint8_t *data;
    uint8_t *state; /* enum view_extent_kind per granule */
    uint64_t size;
    bool read_only;
    bool fast_zero;
    bool quirky; /* block status: an empty extent first, the last one overshoots */
    unsigned flushes;
};

/* size must be a multiple of NBDT_GRANULE. Base content: byte i of the disk
 * is (i * 7 + i / 4096) & 0xff, except granules [hole_first, hole_last]
 * which are base holes (zeros). */
struct nbdt_disk *nbdt_disk_new(uint64_t size, uint64_t hole_first, uint64_t hole_last);
void nbdt_disk_free(struct nbdt_disk *d);
uint8_t nbdt_base_byte(uint64_t i);

/* Exports of a test server:
 *   "img"       read-only view of the base (multi-conn)
 *   "img/c1"    read-write overlay disk (fast zero)
 *   "img/slow"  read-write, zeroing is not fast (FAST_ZERO -> ENOTSUP)
 *   "img/tls"   read-write, only for TLS identity "alice"
 * all over their own nbdt_disk of the given size. */
struct nbdt_exports {
    struct nbdt_disk *img, *c1, *slow, *tls;
};
struct nbdt_exports *nbdt_exports_new(uint64_t size);
void nbdt_exports_free(struct nbdt_exports *e);
extern const struct nbdsrv_export_ops nbdt_export_ops;
