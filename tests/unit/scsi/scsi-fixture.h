/* scsi-fixture.h — shared setup for the proxy/scsi unit tests: a real view
 * (overlay library + file base on a temp dir), one LU and two nexuses, and
 * helpers to run a CDB through parse + exec and check the outcome. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>

#include "sdev.h"

#define FX_DISK_SIZE (64u << 20)          /* 131072 blocks of 512 */
#define FX_DATA_SIZE ((4u << 20) - 65536) /* the base has data here, a hole after */
#define FX_BIG_DISK_SIZE (2ull << 30)     /* sparse; fx_setup with data "big" */
#define FX_GRANULE 4096u
#define FX_BLOCKS (FX_DISK_SIZE / 512)

struct fx {
    char *dir;
    struct ov_base *base;
    struct view *view;
    struct sdev_lu *lu;
    struct sdev_nexus *a; /* "iqn.2024-01.test:a,i,0x230000000001" */
    struct sdev_nexus *b; /* "iqn.2024-01.test:b,i,0x230000000002" */
};

/* Byte of the base image at offset off (zero in the hole after FX_DATA_SIZE). */
uint8_t fx_base_byte(uint64_t off);

/* data NULL: read-write overlay view; "ro": read-only image view; "big": a
 * read-write view of FX_BIG_DISK_SIZE (the base's data part is the same).
 * Unit attentions from nexus creation are already consumed. */
void fx_setup(struct fx *f, gconstpointer data);
void fx_teardown(struct fx *f, gconstpointer data);

/* Parse + (if it passed) exec. The cmd is cleared first; the caller calls
 * sdev_cmd_clear when done with data_in. Returns the parse result. */
bool fx_run(struct sdev_nexus *n, struct sdev_cmd *cmd, const uint8_t *cdb, size_t cdb_len,
            const void *data_out, uint32_t data_out_len);

/* Assert CHECK CONDITION with (key, asc, ascq) in fixed or descriptor sense. */
void fx_assert_sense(const struct sdev_cmd *cmd, uint8_t key, uint8_t asc, uint8_t ascq);
/* Assert the sense-key specific field pointer of fixed-format sense. */
void fx_assert_field(const struct sdev_cmd *cmd, bool in_cdb, unsigned byte, int bit);
void fx_assert_good(const struct sdev_cmd *cmd);
/* Run TEST UNIT READY until no unit attention is pending on n. */
void fx_clear_ua(struct sdev_nexus *n);

/* CDB builders. */
void fx_cdb10(uint8_t *cdb, uint8_t op, uint8_t b1, uint32_t lba, uint16_t n);
void fx_cdb16(uint8_t *cdb, uint8_t op, uint8_t b1, uint64_t lba, uint32_t n);
void fx_put_be16(uint8_t *p, uint16_t v);
void fx_put_be32(uint8_t *p, uint32_t v);
void fx_put_be64(uint8_t *p, uint64_t v);
uint32_t fx_be32(const uint8_t *p);
uint64_t fx_be64(const uint8_t *p);
