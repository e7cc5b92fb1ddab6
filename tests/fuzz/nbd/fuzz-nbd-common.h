/* fuzz-nbd-common.h — shared by the NBD fuzz harnesses: one test server
 * over in-memory disks (tests/unit/nbd/nbd-memdisk.c) and a way to push a
 * byte stream through one whole connection of it. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "nbd-memdisk.h"

/* The server, created on first use (TLS with a PSK key, not required). */
struct nbdsrv *fuzz_nbd_server(void);
/* Serve one connection whose client sends prefix then data, then closes
 * its sending side; everything the server sends is read and dropped. */
void fuzz_nbd_run(const uint8_t *prefix, size_t prefix_len, const uint8_t *data, size_t len);
