/* format.h — the on-disk layout of an overlay file (docs/overlay-format.md).
 *
 * Every multi-byte integer on disk is little-endian. These packed structs are
 * the only place the layout is written down in code; their sizes are pinned by
 * G_STATIC_ASSERT, and the only byte-order conversions live in the codec
 * helpers of header.c (header) and map.c (map slots).
 *
 * File layout (all offsets in bytes):
 *   0       header copy 0 (512 bytes, rest of the 4 KiB page zero)
 *   4096    header copy 1 (identical to copy 0)
 *   8192    map region: block i has slot A at 8192 + i*8192 and
 *           slot B at 8192 + i*8192 + 4096 (4 KiB each)
 *   data_offset = align_up(8192 + map_blocks*8192, 1 MiB)
 *           data region: virtual byte v lives at data_offset + v
 */
#pragma once

#include <stdint.h>
#include <glib.h>

#define OV_HEADER_MAGIC "OVGATEOV"
#define OV_HEADER_SIZE 512u
#define OV_HEADER_COPY_STRIDE 4096u
#define OV_FORMAT_VERSION 1u

#define OV_MAP_OFFSET 8192u
#define OV_SLOT_SIZE 4096u
#define OV_MAP_BLOCK_BYTES (2u * OV_SLOT_SIZE) /* two slots per block */
#define OV_SLOT_HEADER_SIZE 64u
#define OV_MAP_WORDS ((OV_SLOT_SIZE - OV_SLOT_HEADER_SIZE) / 8u) /* 504 */
#define OV_MAP_GRANULES (OV_MAP_WORDS * 32u)                     /* 16128 per block */
#define OV_MAP_SLOT_MAGIC "OVMAPBLK"
#define OV_DATA_ALIGN (1u << 20)

/* Upper bound on the number of map blocks (and so on the in-memory block
 * table: 8 bytes per block); 2^22 blocks cover 252 TiB at 4 KiB granules. */
#define OV_MAX_MAP_BLOCKS (1u << 22)

/* Feature bits. v1 defines none; unknown incompatible bits refuse the open,
 * unknown compatible bits are ignored, unknown autoclear bits are cleared by
 * the first writer (see docs/overlay-format.md, "Feature bits"). */
#define OV_INCOMPAT_KNOWN 0ull
#define OV_COMPAT_KNOWN 0ull
#define OV_AUTOCLEAR_KNOWN 0ull

/* Granule states, 2 bits each in the map. 3 is invalid on disk. */
enum ov_gstate {
    OV_G_BASE = 0,
    OV_G_DATA = 1,
    OV_G_ZERO = 2,
    OV_G_BAD = 3, /* in memory only: the granule's map block is corrupt */
};

struct __attribute__((packed)) ov_disk_header {
    char magic[8];            /*   0 "OVGATEOV" */
    uint32_t version;         /*   8 OV_FORMAT_VERSION */
    uint32_t header_size;     /*  12 OV_HEADER_SIZE: bytes covered by crc */
    uint64_t incompat;        /*  16 */
    uint64_t compat;          /*  24 */
    uint64_t autoclear;       /*  32 */
    uint64_t virtual_size;    /*  40 bytes, = base size */
    uint32_t granule;         /*  48 power of two, 512 .. 1 MiB */
    uint32_t map_granules;    /*  52 granules per map block (OV_MAP_GRANULES) */
    uint64_t map_offset;      /*  56 OV_MAP_OFFSET */
    uint64_t map_blocks;      /*  64 ceil(granules / map_granules) */
    uint64_t data_offset;     /*  72 */
    uint8_t overlay_uuid[16]; /*  80 random, names this overlay file */
    int64_t created;          /*  96 unix seconds */
    char base_image[64];      /* 104 NUL-padded image name */
    uint32_t base_generation; /* 168 */
    uint32_t reserved0;       /* 172 zero */
    uint64_t base_size;       /* 176 */
    uint8_t base_uuid[16];    /* 184 */
    uint8_t reserved1[308];   /* 200 zero */
    uint32_t crc;             /* 508 CRC-32C of bytes 0..507 */
};
G_STATIC_ASSERT(sizeof(struct ov_disk_header) == OV_HEADER_SIZE);
G_STATIC_ASSERT(G_STRUCT_OFFSET(struct ov_disk_header, base_image) == 104);
G_STATIC_ASSERT(G_STRUCT_OFFSET(struct ov_disk_header, crc) == 508);

struct __attribute__((packed)) ov_disk_slot_header {
    char magic[8];            /*  0 "OVMAPBLK" */
    uint32_t block_index;     /*  8 */
    uint32_t reserved0;       /* 12 zero */
    uint64_t sequence;        /* 16 >= 1, grows by one per write of this block */
    uint8_t overlay_uuid[16]; /* 24 = header overlay_uuid */
    uint8_t reserved1[20];    /* 40 zero */
    uint32_t crc;             /* 60 CRC-32C of slot bytes 0..59 then 64..4095 */
};
G_STATIC_ASSERT(sizeof(struct ov_disk_slot_header) == OV_SLOT_HEADER_SIZE);
G_STATIC_ASSERT(OV_MAP_WORDS == 504);
