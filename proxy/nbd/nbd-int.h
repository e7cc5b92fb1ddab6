/* nbd-int.h — internals of the NBD server, shared by the files of proxy/nbd
 * and by its unit tests and fuzzers. Not for other modules (they use
 * nbdsrv.h).
 *
 * Files:
 *   codec.c        pure encode/parse helpers, limits, the errno -> NBD_E* map
 *   io.c           buffered reader and corked reply queue (plain or TLS)
 *   tls.c          GnuTLS credentials (X.509, PSK), STARTTLS, peer identity
 *   handshake.c    fixed newstyle greeting and option haggling
 *   meta.c         metadata contexts and extent collection (BLOCK_STATUS, holes)
 *   transmission.c the request loop and one handler per command
 *   exports.c      IMAGE and IMAGE/CLIENT exports over the registry
 *   nbdsrv.c       the server object, connection lifecycle, shutdown
 */
#pragma once

#include <pthread.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include <glib.h>

#include "nbd-proto.h"
#include "nbdsrv.h"
#include "cfg.h"
#include "view.h"
#include "rxpoll.h"

/* Setup errors (TLS credentials, configuration). */
#define NBDSRV_ERROR (nbdsrv_error_quark())
GQuark nbdsrv_error_quark(void);
enum nbdsrv_error_code {
    NBDSRV_ERROR_CONFIG, /* inconsistent TLS settings */
    NBDSRV_ERROR_TLS,    /* GnuTLS failed (message says which call) */
    NBDSRV_ERROR_DENIED, /* peer's credentials refused */
};

/* ---- limits (docs/nbd.md "Limits") ---- */

#define NBDSRV_MAX_PAYLOAD (32u * 1024 * 1024) /* NBD_INFO_BLOCK_SIZE maximum */
#define NBDSRV_STRING_MAX 4096u                /* proto.md: strings MUST be <= 4096 bytes */
#define NBDSRV_OPT_MAX_LEN (64u * 1024)        /* larger options: NBD_REP_ERR_TOO_BIG */
#define NBDSRV_OPT_DRAIN_MAX (1024u * 1024)    /* larger than this: hard disconnect */
#define NBDSRV_MAX_OPTIONS 4096u               /* per connection, then hard disconnect */
#define NBDSRV_MAX_QUERIES 128u                /* meta context queries per option */
#define NBDSRV_MAX_EXTENTS 1024u               /* descriptors per BLOCK_STATUS chunk */
#define NBDSRV_RBUF_SIZE (256u * 1024)         /* receive buffer */
#define NBDSRV_OQ_FLUSH_BYTES (256u * 1024)    /* send queued replies beyond this */
#define NBDSRV_HOLE_MIN_READ (64u * 1024)      /* reads this large look for holes */
#define NBDSRV_HANDSHAKE_TIMEOUT_MS 60000u     /* a silent peer in negotiation is dropped */

/* ---- metadata contexts (meta.c) ---- */

enum nbdsrv_meta {
    NBDSRV_META_BASE_ALLOCATION = 1u << 0, /* "base:allocation", context id 1 */
    NBDSRV_META_OVGATE_OVERLAY = 1u << 1,  /* "ovgate:overlay", context id 2 */
};
#define NBDSRV_META_ALL (NBDSRV_META_BASE_ALLOCATION | NBDSRV_META_OVGATE_OVERLAY)
#define NBDSRV_META_COUNT 2

/* Name and wire id of context bit i (0 or 1). */
const char *nbdsrv_meta_name(unsigned index);
uint32_t nbdsrv_meta_id(unsigned index);
/* Contexts a query selects. list_mode allows the bare namespace ("base:")
 * as a wildcard, as NBD_OPT_LIST_META_CONTEXT does; SET needs full names. */
unsigned nbdsrv_meta_match(const char *query, size_t len, bool list_mode);

/* ---- codec.c: wire parsing and encoding (pure, no I/O) ---- */

/* 0 if the string is valid on the wire (<= 4096 bytes, no NUL, UTF-8),
 * else NBD_REP_ERR_INVALID. */
uint32_t nbdsrv_check_string(const uint8_t *p, size_t len);

/* NBD_OPT_INFO / NBD_OPT_GO payload: name, then requested info types. */
struct nbdsrv_info_req {
    char *name; /* NUL-terminated copy; caller frees with g_free */
    uint16_t n_info;
    const uint8_t *info; /* n_info big-endian 16-bit types, borrowed */
};
/* 0 or an NBD_REP_ERR_* code (payload malformed). */
uint32_t nbdsrv_parse_info_req(const uint8_t *p, size_t len, struct nbdsrv_info_req *out);

/* NBD_OPT_{LIST,SET}_META_CONTEXT payload. */
struct nbdsrv_meta_req {
    char *name; /* export name; caller frees */
    uint32_t n_queries;
    const uint8_t *query[NBDSRV_MAX_QUERIES];
    uint32_t query_len[NBDSRV_MAX_QUERIES];
};
uint32_t nbdsrv_parse_meta_req(const uint8_t *p, size_t len, struct nbdsrv_meta_req *out);

/* A parsed request header (host byte order). */
struct nbdsrv_request {
    uint16_t flags;
    uint16_t type;
    uint64_t handle;
    uint64_t offset;
    uint32_t length;
};
/* false if the magic is wrong (the stream is lost: hard disconnect). */
bool nbdsrv_parse_request(const uint8_t hdr[NBD_REQUEST_LEN], struct nbdsrv_request *out);

/* What a connection negotiated, as far as request checks need it. */
struct nbdsrv_neg {
    uint64_t size;
    uint16_t tflags; /* transmission flags sent to the client */
    bool structured;
    unsigned meta; /* selected contexts (enum nbdsrv_meta) */
};
/* Validate a request against the export and negotiation: flags allowed for
 * the command, length and range. Returns NBD_SUCCESS or the NBD error to
 * answer with (proto.md "Error values"). Never touches the disk. */
uint32_t nbdsrv_request_check(const struct nbdsrv_request *req, const struct nbdsrv_neg *neg);

/* The one errno -> NBD error mapping (err may be negative). */
uint32_t nbdsrv_errno_to_nbd(int err);
const char *nbdsrv_cmd_name(uint16_t type);
const char *nbdsrv_opt_name(uint32_t opt);

/* Encoders write big-endian into out (exactly the wire length). */
void nbdsrv_encode_opt_reply(uint8_t out[NBD_OPT_REP_HDR_LEN], uint32_t opt, uint32_t type,
                             uint32_t len);
void nbdsrv_encode_simple_reply(uint8_t out[NBD_SIMPLE_REPLY_LEN], uint32_t error, uint64_t handle);
void nbdsrv_encode_chunk(uint8_t out[NBD_CHUNK_HDR_LEN], uint16_t flags, uint16_t type,
                         uint64_t handle, uint32_t len);
void nbdsrv_put_be16(uint8_t *p, uint16_t v);
void nbdsrv_put_be32(uint8_t *p, uint32_t v);
void nbdsrv_put_be64(uint8_t *p, uint64_t v);
uint16_t nbdsrv_get_be16(const uint8_t *p);
uint32_t nbdsrv_get_be32(const uint8_t *p);
uint64_t nbdsrv_get_be64(const uint8_t *p);

/* ---- io.c: buffered reader, reply queue ---- */

struct nbdsrv_oseg {
    const uint8_t *ext; /* external bytes, or NULL: bytes at off in obuf */
    size_t off;
    size_t len;
    void *owned; /* g_free()d once sent (or dropped) */
    int file_fd; /* >= 0: the bytes are len bytes of this file at file_off
                  * (mapped at send time, or sent with sendfile; closed once
                  * sent or dropped) */
    uint64_t file_off;
    void *map; /* the mapping ext points into, unmapped once sent or dropped */
    size_t map_len;
    struct ov_base *base_ref; /* ext lies in this base's mapping: unref once sent or dropped */
};

struct nbdsrv_io {
    int fd;
    void *tls; /* gnutls_session_t once STARTTLS succeeded, else NULL */
    uint8_t *rbuf;
    size_t rcap, rpos, rlen; /* buffered bytes are rbuf[rpos, rlen) */
    GByteArray *obuf;        /* small reply bytes (headers, option replies) */
    GArray *oq;              /* struct nbdsrv_oseg, in send order */
    size_t oq_bytes;
    unsigned batch; /* requests answered since the last send (transmission counts) */
    uint64_t rx_bytes, tx_bytes;
    struct net_rxpoll rxpoll; /* busy-polling before blocking receives */
    uint8_t *tls_pre; /* raw bytes received before STARTTLS took over */
    size_t tls_pre_len, tls_pre_pos;
};

void nbdsrv_io_init(struct nbdsrv_io *io, int fd);
void nbdsrv_io_clear(struct nbdsrv_io *io); /* frees buffers; does not close fd */
static inline size_t
nbdsrv_io_avail(const struct nbdsrv_io *io)
{
    return io->rlen - io->rpos;
}
static inline const uint8_t *
nbdsrv_io_peek(const struct nbdsrv_io *io)
{
    return io->rbuf + io->rpos;
}
static inline void
nbdsrv_io_consume(struct nbdsrv_io *io, size_t n)
{
    io->rpos += n;
}
/* Make at least n (<= rcap) bytes available, sending queued replies before
 * blocking. 0, -ECONNRESET on end of stream, or -errno. */
int nbdsrv_io_want(struct nbdsrv_io *io, size_t n);
/* Read exactly len bytes into buf (large reads bypass the buffer). */
int nbdsrv_io_read(struct nbdsrv_io *io, void *buf, size_t len);
/* Read and drop len bytes. */
int nbdsrv_io_skip(struct nbdsrv_io *io, uint64_t len);
/* Append n bytes to the reply queue; returns where to write them (valid
 * until the next put/flush). */
uint8_t *nbdsrv_io_put(struct nbdsrv_io *io, size_t n);
/* Queue len external bytes; owned (may be NULL) is g_free()d after sending. */
void nbdsrv_io_put_ext(struct nbdsrv_io *io, const void *p, size_t len, void *owned);
/* Queue len bytes of file fd at file_off, sent without a copy in this
 * thread (plain sockets; over TLS they are read into memory). Takes fd: it
 * is closed once sent or dropped. */
void nbdsrv_io_put_file(struct nbdsrv_io *io, int fd, uint64_t file_off, size_t len);
/* Queue len bytes at p inside a base's whole-file mapping (ov_base_map),
 * sent from there without a copy in this thread. Takes ref (the reference
 * that keeps the mapping alive): dropped once sent or dropped. */
void nbdsrv_io_put_base(struct nbdsrv_io *io, const uint8_t *p, size_t len, struct ov_base *ref);
/* Send everything queued. 0 or -errno. */
int nbdsrv_io_flush(struct nbdsrv_io *io);
/* Drop queued output (connection is going away). */
void nbdsrv_io_discard(struct nbdsrv_io *io);

/* ---- tls.c ---- */

struct nbdsrv_tls;
/* NULL with no error when cfg names no credentials. Refcounted: connections
 * keep the credentials they started with across a reload. */
struct nbdsrv_tls *nbdsrv_tls_new(const struct cfg *cfg, GError **error);
struct nbdsrv_tls *nbdsrv_tls_ref(struct nbdsrv_tls *tls); /* accepts NULL */
void nbdsrv_tls_unref(struct nbdsrv_tls *tls);             /* accepts NULL */
/* Whether two configurations name the same TLS credential files. */
bool nbdsrv_tls_same_files(const struct cfg *a, const struct cfg *b);
/* Run the server side of the TLS handshake on io->fd (after NBD_REP_ACK to
 * STARTTLS was sent). On success io->tls is set and *identity_out is the
 * PSK identity or the verified client certificate's DN (or NULL if the
 * client presented none). false = the session must end. */
bool nbdsrv_tls_start(struct nbdsrv_tls *tls, struct nbdsrv_io *io, char **identity_out,
                      GError **error);
/* Close the TLS session (bye) and free it. */
void nbdsrv_tls_end(struct nbdsrv_io *io);

/* ---- exports ---- */

/* How transmission reaches a disk: the view in the daemon, a memory disk in
 * unit tests and fuzzers. Every call returns 0 or -errno. */
struct nbdsrv_disk_ops {
    int (*pread)(void *disk, void *buf, size_t len, uint64_t offset);
    int (*pwrite)(void *disk, const void *buf, size_t len, uint64_t offset, unsigned vflags);
    int (*zero)(void *disk, uint64_t offset, uint64_t len, unsigned vflags);
    int (*flush)(void *disk);
    int (*block_status)(void *disk, uint64_t offset, uint64_t len, bool base_detail,
                        view_extent_fn fn, void *user_data);
    /* Optional (NULL: always pread): as view_read_segments, for zero-copy
     * replies to large reads on plain sockets. */
    int (*read_segments)(void *disk, uint64_t offset, uint64_t len, struct view_segments *out);
};

struct nbdsrv_export {
    char *name;        /* as the client spelled it */
    char *description; /* human-readable, for NBD_INFO_DESCRIPTION / LIST */
    uint64_t size;
    uint32_t granule; /* preferred block size */
    bool read_only;
    bool multi_conn; /* NBD_FLAG_CAN_MULTI_CONN holds (docs/nbd.md) */
    bool fast_zero;  /* WRITE_ZEROES is a metadata update, never a data write */
    const struct nbdsrv_disk_ops *ops;
    void *disk;
    void *priv; /* the export provider's */
};

struct nbdsrv_conn;

/* Export provider: the registry in the daemon (exports.c), a table in tests. */
struct nbdsrv_export_ops {
    /* Resolve name. With for_go, take the export for transmission (attach,
     * claim the writer slot); otherwise only to describe it (NBD_OPT_INFO,
     * meta context checks). Returns 0 and *out, or an NBD_REP_ERR_* code and
     * a message (caller frees). */
    uint32_t (*open)(struct nbdsrv *srv, struct nbdsrv_conn *conn, const char *name, bool for_go,
                     struct nbdsrv_export **out, char **msg);
    void (*close)(struct nbdsrv *srv, struct nbdsrv_conn *conn, struct nbdsrv_export *exp);
    /* NBD_OPT_LIST: array of char* pairs (name, description), NULL-free. */
    GPtrArray *(*list)(struct nbdsrv *srv, struct nbdsrv_conn *conn);
};

extern const struct nbdsrv_export_ops nbdsrv_reg_exports;
void nbdsrv_export_free(struct nbdsrv_export *exp);

/* ---- server and connection ---- */

struct nbdsrv {
    struct reg *reg;                            /* NULL in tests */
    struct cfg *cfg;                            /* used when get_cfg is NULL */
    struct cfg *(*get_cfg)(struct nbdsrv *srv); /* current config (new reference) */
    const struct nbdsrv_export_ops *exports;
    void *exports_data;
    struct nbdsrv_tls *tls; /* current credentials; NULL: no TLS */
    struct cfg *tls_cfg;    /* the configuration tls was loaded from */
    /* pthread, not GMutex/GCond, so that ThreadSanitizer sees them
     * (docs/concurrency.md); cond runs on CLOCK_MONOTONIC. */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    GHashTable *conns;   /* struct nbdsrv_conn * set */
    GHashTable *writers; /* client name -> struct nbdsrv_conn * */
    bool shutting_down;
    uint64_t next_id;
    unsigned handshake_timeout_ms; /* whole negotiation; NBDSRV_HANDSHAKE_TIMEOUT_MS */
};

/* srv->lock held to the end of a scope:
 *   NBDSRV_LOCKED(srv);  ...  (unlocked when the scope is left) */
pthread_mutex_t *nbdsrv_lock(struct nbdsrv *srv);
void nbdsrv_unlockp(pthread_mutex_t **lockp);
#define NBDSRV_LOCKED(srv)                                                                         \
    G_GNUC_UNUSED pthread_mutex_t *nbdsrv_locked_ __attribute__((cleanup(nbdsrv_unlockp))) =       \
        nbdsrv_lock(srv)
/* Wait on srv->cond (srv->lock held) until deadline, g_get_monotonic_time()
 * scale; false on timeout. */
bool nbdsrv_cond_wait_until(struct nbdsrv *srv, gint64 deadline);

/* Handshake states (handshake.c):
 *
 *   GREETING --send magics, read client flags--> OPTIONS
 *   OPTIONS --NBD_OPT_STARTTLS (ACK + TLS handshake)--> OPTIONS (state reset)
 *   OPTIONS --NBD_OPT_GO ok / NBD_OPT_EXPORT_NAME ok--> TRANSMISSION
 *   OPTIONS --NBD_OPT_ABORT, bad magic, I/O error, refusal--> CLOSED
 *   TRANSMISSION --NBD_CMD_DISC, I/O error, kick--> CLOSED
 *
 * nbdsrv_handshake() makes every transition out of GREETING and OPTIONS;
 * nbdsrv_transmission() leaves TRANSMISSION. */
enum nbdsrv_state {
    NBDSRV_STATE_GREETING,
    NBDSRV_STATE_OPTIONS,
    NBDSRV_STATE_TRANSMISSION,
    NBDSRV_STATE_CLOSED,
};

struct nbdsrv_conn {
    struct nbdsrv *srv;
    uint64_t id;
    char *peer;
    struct cfg *cfg;        /* reference for the connection's lifetime */
    struct nbdsrv_tls *tls; /* credentials for this connection (ref), NULL: NOTLS */
    struct nbdsrv_io io;
    enum nbdsrv_state state;
    /* negotiated in OPTIONS */
    bool no_zeroes;
    bool structured;
    bool tls_active;
    char *tls_identity; /* PSK identity or client certificate DN */
    unsigned meta;      /* selected contexts */
    char *meta_export;  /* ... for this export name */
    unsigned n_options;
    /* TRANSMISSION */
    struct nbdsrv_export *exp;
    struct nbdsrv_neg neg;
    volatile gint kicked;
    volatile gint closing; /* past transmission: only unwinding is left */
    char *writer_client;   /* set while holding srv->writers[client] */
};

/* Checks what the state promises (used in assert()). */
bool nbdsrv_conn_check_invariants(const struct nbdsrv_conn *conn);

/* A server without a registry, exports from ops (tests, fuzzers). cfg gives
 * the TLS settings (referenced). */
struct nbdsrv *nbdsrv_new_with_exports(struct cfg *cfg, const struct nbdsrv_export_ops *ops,
                                       void *ops_data, GError **error);
/* Current configuration (new reference; caller cfg_unrefs). */
struct cfg *nbdsrv_get_cfg(struct nbdsrv *srv);
bool nbdsrv_is_shutting_down(struct nbdsrv *srv);

/* handshake.c: true when an export is open and transmission may start. */
bool nbdsrv_handshake(struct nbdsrv_conn *conn);
/* transmission.c: serve requests until disconnect. */
void nbdsrv_transmission(struct nbdsrv_conn *conn);
/* Transmission flags for an export given what was negotiated. */
uint16_t nbdsrv_export_tflags(const struct nbdsrv_export *exp, bool structured);

/* meta.c: collect extents of [offset, offset+len) for the selected
 * contexts and queue one NBD_REPLY_TYPE_BLOCK_STATUS chunk per context.
 * Returns 0 or -errno (nothing queued then). */
int nbdsrv_meta_reply(struct nbdsrv_conn *conn, const struct nbdsrv_request *req);

/* Zero/data runs of a read range for OFFSET_HOLE replies. */
struct nbdsrv_run {
    uint64_t offset;
    uint32_t len;
    bool zero;
};
/* Fills runs (at most max) covering [offset, offset+len); the last run
 * absorbs the rest when max is reached. Returns the count, or -errno. */
int nbdsrv_read_runs(const struct nbdsrv_export *exp, uint64_t offset, uint32_t len,
                     struct nbdsrv_run *runs, int max);
