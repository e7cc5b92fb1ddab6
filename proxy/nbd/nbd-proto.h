/* nbd-proto.h — NBD wire constants and fixed-size wire structs.
 *
 * Values and layouts from the NBD protocol document (NetworkBlockDevice/nbd
 * doc/proto.md, "Values" and "Transmission" sections). Everything on the
 * wire is big-endian; byte order is converted only in codec.c.
 *
 * The names keep the specification's spelling (NBD_OPT_GO, NBD_CMD_READ).
 * This header is private to proxy/nbd and never included together with
 * <libnbd.h> (which uses LIBNBD_* names, so there would be no clash anyway).
 */
#pragma once

#include <stdint.h>
#include <glib.h>

/* Handshake magics (proto.md "Newstyle negotiation"). */
#define NBD_MAGIC_INIT_PASSWD 0x4e42444d41474943ULL /* "NBDMAGIC" */
#define NBD_MAGIC_IHAVEOPT 0x49484156454F5054ULL    /* "IHAVEOPT" */
#define NBD_MAGIC_REP 0x3e889045565a9ULL            /* option reply */

/* Handshake flags (server) and client flags. */
#define NBD_FLAG_FIXED_NEWSTYLE (1u << 0)
#define NBD_FLAG_NO_ZEROES (1u << 1)
#define NBD_FLAG_C_FIXED_NEWSTYLE (1u << 0)
#define NBD_FLAG_C_NO_ZEROES (1u << 1)

/* Option types. */
#define NBD_OPT_EXPORT_NAME 1u
#define NBD_OPT_ABORT 2u
#define NBD_OPT_LIST 3u
#define NBD_OPT_PEEK_EXPORT 4u
#define NBD_OPT_STARTTLS 5u
#define NBD_OPT_INFO 6u
#define NBD_OPT_GO 7u
#define NBD_OPT_STRUCTURED_REPLY 8u
#define NBD_OPT_LIST_META_CONTEXT 9u
#define NBD_OPT_SET_META_CONTEXT 10u
#define NBD_OPT_EXTENDED_HEADERS 11u

/* Option reply types; errors have bit 31 set. */
#define NBD_REP_ACK 1u
#define NBD_REP_SERVER 2u
#define NBD_REP_INFO 3u
#define NBD_REP_META_CONTEXT 4u
#define NBD_REP_ERR(n) ((1u << 31) | (n))
#define NBD_REP_ERR_UNSUP NBD_REP_ERR(1)
#define NBD_REP_ERR_POLICY NBD_REP_ERR(2)
#define NBD_REP_ERR_INVALID NBD_REP_ERR(3)
#define NBD_REP_ERR_PLATFORM NBD_REP_ERR(4)
#define NBD_REP_ERR_TLS_REQD NBD_REP_ERR(5)
#define NBD_REP_ERR_UNKNOWN NBD_REP_ERR(6)
#define NBD_REP_ERR_SHUTDOWN NBD_REP_ERR(7)
#define NBD_REP_ERR_BLOCK_SIZE_REQD NBD_REP_ERR(8)
#define NBD_REP_ERR_TOO_BIG NBD_REP_ERR(9)

/* NBD_REP_INFO types. */
#define NBD_INFO_EXPORT 0u
#define NBD_INFO_NAME 1u
#define NBD_INFO_DESCRIPTION 2u
#define NBD_INFO_BLOCK_SIZE 3u

/* Transmission flags (16 bits). */
#define NBD_FLAG_HAS_FLAGS (1u << 0)
#define NBD_FLAG_READ_ONLY (1u << 1)
#define NBD_FLAG_SEND_FLUSH (1u << 2)
#define NBD_FLAG_SEND_FUA (1u << 3)
#define NBD_FLAG_ROTATIONAL (1u << 4)
#define NBD_FLAG_SEND_TRIM (1u << 5)
#define NBD_FLAG_SEND_WRITE_ZEROES (1u << 6)
#define NBD_FLAG_SEND_DF (1u << 7)
#define NBD_FLAG_CAN_MULTI_CONN (1u << 8)
#define NBD_FLAG_SEND_RESIZE (1u << 9)
#define NBD_FLAG_SEND_CACHE (1u << 10)
#define NBD_FLAG_SEND_FAST_ZERO (1u << 11)

/* Transmission magics. */
#define NBD_REQUEST_MAGIC 0x25609513u
#define NBD_SIMPLE_REPLY_MAGIC 0x67446698u
#define NBD_STRUCTURED_REPLY_MAGIC 0x668e33efu

/* Commands. */
#define NBD_CMD_READ 0u
#define NBD_CMD_WRITE 1u
#define NBD_CMD_DISC 2u
#define NBD_CMD_FLUSH 3u
#define NBD_CMD_TRIM 4u
#define NBD_CMD_CACHE 5u
#define NBD_CMD_WRITE_ZEROES 6u
#define NBD_CMD_BLOCK_STATUS 7u

/* Command flags. */
#define NBD_CMD_FLAG_FUA (1u << 0)
#define NBD_CMD_FLAG_NO_HOLE (1u << 1)
#define NBD_CMD_FLAG_DF (1u << 2)
#define NBD_CMD_FLAG_REQ_ONE (1u << 3)
#define NBD_CMD_FLAG_FAST_ZERO (1u << 4)

/* Structured reply flags and chunk types. */
#define NBD_REPLY_FLAG_DONE (1u << 0)
#define NBD_REPLY_TYPE_NONE 0u
#define NBD_REPLY_TYPE_OFFSET_DATA 1u
#define NBD_REPLY_TYPE_OFFSET_HOLE 2u
#define NBD_REPLY_TYPE_BLOCK_STATUS 5u
#define NBD_REPLY_TYPE_ERROR 32769u
#define NBD_REPLY_TYPE_ERROR_OFFSET 32770u

/* Error values (proto.md "Error values"); not the host's errno numbers. */
#define NBD_SUCCESS 0u
#define NBD_EPERM 1u
#define NBD_EIO 5u
#define NBD_ENOMEM 12u
#define NBD_EINVAL 22u
#define NBD_ENOSPC 28u
#define NBD_EOVERFLOW 75u
#define NBD_ENOTSUP 95u
#define NBD_ESHUTDOWN 108u

/* base:allocation flags. */
#define NBD_STATE_HOLE (1u << 0)
#define NBD_STATE_ZERO (1u << 1)

/* Our own metadata context "ovgate:overlay" (docs/nbd.md): where each
 * extent of a client's disk comes from. Clear flags = the base image. */
#define OVGATE_STATE_OVERLAY (1u << 0) /* written by this client (data or zeros) */
#define OVGATE_STATE_ZERO (1u << 1)    /* discarded/zeroed by this client: reads zeros */

/* Wire sizes. */
#define NBD_OPT_HDR_LEN 16u     /* magic 8, option 4, length 4 */
#define NBD_OPT_REP_HDR_LEN 20u /* magic 8, option 4, type 4, length 4 */
#define NBD_REQUEST_LEN 28u     /* magic 4, flags 2, type 2, handle 8, offset 8, length 4 */
#define NBD_SIMPLE_REPLY_LEN 16u
#define NBD_CHUNK_HDR_LEN 20u /* magic 4, flags 2, type 2, handle 8, length 4 */

/* The request header as it is on the wire (all fields big-endian). */
struct nbd_wire_request {
    uint32_t magic;
    uint16_t flags;
    uint16_t type;
    uint64_t handle;
    uint64_t offset;
    uint32_t length;
} __attribute__((packed));
G_STATIC_ASSERT(sizeof(struct nbd_wire_request) == NBD_REQUEST_LEN);

struct nbd_wire_simple_reply {
    uint32_t magic;
    uint32_t error;
    uint64_t handle;
} __attribute__((packed));
G_STATIC_ASSERT(sizeof(struct nbd_wire_simple_reply) == NBD_SIMPLE_REPLY_LEN);

struct nbd_wire_chunk {
    uint32_t magic;
    uint16_t flags;
    uint16_t type;
    uint64_t handle;
    uint32_t length;
} __attribute__((packed));
G_STATIC_ASSERT(sizeof(struct nbd_wire_chunk) == NBD_CHUNK_HDR_LEN);

struct nbd_wire_opt_reply {
    uint64_t magic;
    uint32_t option;
    uint32_t type;
    uint32_t length;
} __attribute__((packed));
G_STATIC_ASSERT(sizeof(struct nbd_wire_opt_reply) == NBD_OPT_REP_HDR_LEN);
