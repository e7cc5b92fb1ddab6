/* iscsi-int.h — internals of the iSCSI target shared by the files of
 * proxy/iscsi/ (not for other modules: they use iscsit.h).
 *
 * Objects and who owns them:
 *   struct iscsit_target  one per daemon: portals, session table, live
 *                         connections, all under target->lock.
 *   struct iscsit_sess    one iSCSI session (TSIH, ISID, negotiated
 *                         parameters, CmdSN window, the SCSI nexus and the
 *                         registry attachment). MaxConnections is 1, so a
 *                         session has exactly one connection and is owned by
 *                         that connection's thread; the target table only
 *                         borrows it (for reinstatement).
 *   struct iscsit_conn    one TCP connection, owned by the thread running
 *                         iscsit_conn_run(): receive machine, reply queue,
 *                         tasks waiting for Data-Out.
 *   struct iscsit_task    one SCSI command between its SCSI Command PDU and
 *                         the end of its Data-Out (only write commands wait).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>
#include <glib.h>

#include "iscsit.h"
#include "keys.h"
#include "pdu.h"
#include "reg.h"
#include "rx.h"
#include "rxpoll.h"
#include "sdev.h"

#define ISCSIT_CMDSN_WINDOW 128u /* MaxCmdSN = ExpCmdSN + window - 1 - waiting tasks */
#define ISCSIT_MAX_TASKS (2u * ISCSIT_CMDSN_WINDOW) /* waiting writes; then TASK SET FULL */
#define ISCSIT_MAX_HELD_BYTES (4u << 20)            /* data of commands held behind a CmdSN gap */
#define ISCSIT_MAX_TASK_DATA (64u << 20)            /* largest write we buffer for one command */
#define ISCSIT_TX_FLUSH_BYTES (4u << 20)            /* send queued replies beyond this much */
#define ISCSIT_MAX_SOLICITED (64u << 20)            /* R2T'd or held write bytes, per connection */
#define ISCSIT_LOGIN_TIMEOUT_S 30
#define ISCSIT_REINSTATE_WAIT_MS 10000

struct iscsit_portal {
    char *addr_port; /* "127.0.0.1:3260", "[::1]:3260", "0.0.0.0:3260" */
    uint16_t tpgt;
};

struct iscsit_target {
    struct reg *reg;
    GMutex lock;
    GCond cond;          /* a session left the table */
    GPtrArray *portals;  /* struct iscsit_portal * */
    GPtrArray *sessions; /* struct iscsit_sess *, borrowed */
    GPtrArray *conns;    /* struct iscsit_conn *, borrowed; for shutdown */
    uint16_t next_tsih;
    bool shutting_down;
};

/* Session states (RFC 7143 §8.3, target side, MaxConnections = 1):
 *
 *   FREE ──login_finish()──► LOGGED_IN ──conn ends / logout / kick / reinstated──► ENDED
 *                               │                                                    ▲
 *                               └──iscsit_sess_reinstate() by a new login (same ─────┘
 *                                  InitiatorName + ISID, TSIH 0): the old connection
 *                                  is shut down and the new login waits for ENDED.
 *
 * FREE: negotiating, not in the table. LOGGED_IN: in the table with a TSIH;
 * a normal session has a nexus and an attachment. ENDED: out of the table.
 */
enum iscsit_sess_state {
    ISCSIT_SESS_FREE,
    ISCSIT_SESS_LOGGED_IN,
    ISCSIT_SESS_ENDED,
};

struct iscsit_sess {
    struct iscsit_target *tgt;
    enum iscsit_sess_state state;
    uint16_t tsih;
    uint64_t isid;
    struct iscsit_params params; /* negotiated (names owned here) */
    char *image;                 /* normal sessions */
    char *client;
    struct reg_attach *attach;
    struct sdev_nexus *nexus;
    struct iscsit_conn *conn; /* the one connection */
    uint32_t exp_cmdsn;
    uint32_t max_cmdsn;
};

bool iscsit_sess_check_invariants(const struct iscsit_sess *sess);

/* Connection states (RFC 7143 §8.1.4, target side, simplified for ERL 0):
 *
 *   XPT_UP ──first Login PDU──► IN_LOGIN ──final Login Response (T=1, NSG=3)──► LOGGED_IN
 *      │                          │ login failed / timeout                          │
 *      │                          ▼                                                 │ Logout,
 *      └────────EOF/error───► CLEANUP ◄─────── error / EOF / kick / cold reset ─────┤ cold reset
 *                                 ▲                                                 ▼
 *                                 └──────── Logout Response sent ─────────────── IN_LOGOUT
 *
 * Transitions: iscsit_login_run (XPT_UP→IN_LOGIN→LOGGED_IN/CLEANUP),
 * iscsit_conn_serve (LOGGED_IN→IN_LOGOUT/CLEANUP), iscsit_conn_run (→CLEANUP).
 */
enum iscsit_conn_state {
    ISCSIT_CONN_XPT_UP,
    ISCSIT_CONN_IN_LOGIN,
    ISCSIT_CONN_LOGGED_IN,
    ISCSIT_CONN_IN_LOGOUT,
    ISCSIT_CONN_CLEANUP,
};

/* Reply queue: PDUs waiting for one writev (batching, docs/concurrency.md). */
struct iscsit_tx {
    GArray *iov;      /* struct iovec */
    GPtrArray *owned; /* buffers freed after the queue is sent */
    GArray *maps;     /* struct view_map: unmapped after the queue is sent */
    size_t bytes;
};

struct iscsit_r2t {
    uint32_t ttt;
    uint32_t offset;  /* buffer offset of this sequence */
    uint32_t len;     /* desired data transfer length */
    uint32_t got;     /* bytes received so far, in order */
    uint32_t data_sn; /* next expected DataSN */
    uint32_t r2tsn;
};

struct iscsit_task {
    struct iscsit_conn *conn; /* set while the task waits in conn->tasks */
    uint64_t seq;             /* arrival order: older writes get R2Ts first */
    uint32_t itt;
    uint32_t cmdsn;
    uint64_t lun_raw;
    bool lun_ok;   /* LUN 0: goes to sdev; others: sdev_cmd_exec_no_lun */
    bool parse_ok; /* sdev accepted the CDB: data goes to the device */
    struct sdev_cmd cmd;
    uint32_t edtl; /* Expected Data Transfer Length */
    uint32_t want; /* bytes of Data-Out we need (<= edtl) */
    uint8_t *buf;  /* data-out received so far (owned), grows to want */
    uint32_t buf_cap;
    uint32_t received;  /* bytes received (unsolicited + solicited), in order */
    uint32_t unsol_len; /* bytes the initiator sends without R2T */
    uint32_t unsol_data_sn;
    bool unsol_done;
    uint32_t next_r2t_off; /* first byte not yet asked for by an R2T */
    uint32_t r2tsn;        /* next R2TSN */
    GArray *r2ts;          /* struct iscsit_r2t, outstanding */
};

struct iscsit_conn {
    struct iscsit_target *tgt;
    GMutex fd_lock; /* fd against shutdown from other threads */
    int fd;
    char *peer;
    char *local;       /* our address:port on this connection, for SendTargets */
    gint64 started_us; /* accepted (monotonic): the login must end 30 s later */
    bool rx_drained;   /* the last read did not fill the buffer: socket empty then */
    struct net_rxpoll rxpoll; /* busy-polling before blocking receives */
    int rcvtimeo_ms;   /* SO_RCVTIMEO in force (0 = none) */
    enum iscsit_conn_state state;
    uint16_t cid;
    struct iscsit_sess *sess;
    struct iscsit_rx rx;
    struct iscsit_tx tx;
    uint32_t stat_sn;
    /* tasks waiting for Data-Out, by ITT */
    GHashTable *tasks;
    /* commands ahead of ExpCmdSN, by CmdSN (struct held_pdu *, conn.c) */
    GHashTable *held;
    /* CmdSNs to consider received without running them (aborted before
     * they ran, RFC 7143 §11.5.1 b); all within [ExpCmdSN, MaxCmdSN] */
    GHashTable *skipped;
    uint32_t next_ttt;
    uint32_t solicited; /* bytes asked for by outstanding R2Ts, not yet received */
    uint64_t buffered;  /* Data-Out bytes held by waiting tasks */
    uint64_t task_seq;
    /* NOP-In pings (cfg nop_interval_s / nop_timeout_s) */
    int nop_interval_s;
    int nop_timeout_s;
    gint64 last_rx_us;
    bool nop_outstanding;
    uint32_t nop_ttt;
    gint64 nop_sent_us;
    /* Text Request/Response continuation (RFC 7143 §11.10, §11.11) */
    GString *text_in; /* request text of C-bit PDUs so far */
    uint32_t text_in_itt;
    GString *text_out; /* response not yet sent */
    size_t text_out_off;
    uint32_t text_out_itt;
    uint32_t text_out_ttt;
    bool closing; /* send what is queued, then end */
    bool failed;  /* socket error: end without sending */
};

bool iscsit_conn_check_invariants(const struct iscsit_conn *conn);

/* ---- tx.c: reply queue ---- */
void iscsit_tx_init(struct iscsit_tx *tx);
void iscsit_tx_clear(struct iscsit_tx *tx);
/* Queue one PDU: the BHS is copied; data (len bytes) is borrowed until the
 * queue is sent, and owned (may be NULL or data itself) is freed then.
 * Adds padding and digests as negotiated. */
void iscsit_tx_pdu(struct iscsit_conn *conn, const struct iscsit_bhs *bhs, const void *data,
                   uint32_t len, void *owned);
/* Send everything queued; false on a socket error (conn->failed set). */
bool iscsit_tx_flush(struct iscsit_conn *conn);
/* The queue takes *map (Data-In PDUs queued before the next flush point into
 * it) and releases it after sending or when cleared. */
void iscsit_tx_own_map(struct iscsit_conn *conn, const struct view_map *map);

/* ---- conn.c: connection loop, dispatch, common replies ---- */
/* Fill the receive buffer: non-blocking first; flushes replies and blocks
 * (with timeout_ms, -1 = none) only when nothing is buffered. Returns bytes
 * read, 0 on EOF/timeout (conn->failed tells), -1 on error. */
ssize_t iscsit_conn_fill(struct iscsit_conn *conn, int timeout_ms, bool *timed_out);
/* Next complete PDU or a receive error (blocking); timeout_ms bounds each
 * read (-1 = none): the receive timeout stays the same from call to call,
 * so it costs no system call on the hot path. */
enum iscsit_rx_result iscsit_conn_recv(struct iscsit_conn *conn, struct iscsit_pdu *pdu,
                                       int timeout_ms, bool *timed_out);
/* The same, but the whole call ends at deadline_us (monotonic) however the
 * PDU trickles in: for the login, which must not hold a thread for ever. */
enum iscsit_rx_result iscsit_conn_recv_until(struct iscsit_conn *conn, struct iscsit_pdu *pdu,
                                             gint64 deadline_us, bool *timed_out);
/* Queue a Reject (RFC 7143 §11.17) carrying the rejected header. */
void iscsit_tx_reject(struct iscsit_conn *conn, const struct iscsit_bhs *bad, uint8_t reason);
/* Fill StatSN/ExpCmdSN/MaxCmdSN of a response; advance StatSN if asked. */
void iscsit_conn_set_sn(struct iscsit_conn *conn, struct iscsit_bhs *rsp, bool advance);
void iscsit_conn_shutdown(struct iscsit_conn *conn);
/* Open the CmdSN window as far as waiting tasks allow (never moves MaxCmdSN back). */
void iscsit_conn_update_window(struct iscsit_conn *conn);
/* ABORT TASK and friends for commands held ahead of ExpCmdSN: drop the held
 * SCSI commands with this ITT (itt NULL: any) on this LUN (lun_raw NULL:
 * any) and consider their CmdSNs received. Returns how many were dropped. */
unsigned iscsit_conn_drop_held(struct iscsit_conn *conn, const uint32_t *itt,
                               const uint64_t *lun_raw);
/* Consider cmdsn (not yet received, inside the window) received: the
 * command is not run when it arrives (RFC 7143 §11.5.1 b). */
void iscsit_conn_skip_cmdsn(struct iscsit_conn *conn, uint32_t cmdsn);

/* ---- login.c ---- */
/* Run the login phase on a fresh connection; first_too_long: the first
 * Login Request's data segment was over 8192 bytes (only its BHS is valid).
 * true: the connection is in full feature phase with conn->sess set;
 * false: end it. */
bool iscsit_login_run(struct iscsit_conn *conn, const struct iscsit_pdu *first,
                      bool first_too_long);

/* ---- session.c: session table ---- */
struct iscsit_sess *iscsit_sess_new(struct iscsit_target *tgt);
/* End the session: detach from the disk, free the nexus, leave the table. */
void iscsit_sess_free(struct iscsit_sess *sess);
/* Enter the table with a fresh TSIH, ending an older session of the same
 * initiator port (reinstatement, RFC 7143 §6.3.5). false if the target is
 * shutting down or the old one did not end in time. */
bool iscsit_sess_register(struct iscsit_sess *sess);
/* Kick callback for the registry. */
void iscsit_sess_kick(void *user_data, const char *reason);

/* ---- text.c: Text Request, SendTargets ---- */
void iscsit_rx_text(struct iscsit_conn *conn, const struct iscsit_pdu *pdu);
/* SendTargets answer for value ("All", a target name, or "" for the
 * session's own target) appended to out. */
void iscsit_send_targets(struct iscsit_conn *conn, const char *value, GString *out);

/* ---- cmd.c: SCSI Command, Data-Out, R2T, Data-In, SCSI Response ---- */
void iscsit_rx_scsi_cmd(struct iscsit_conn *conn, const struct iscsit_pdu *pdu);
void iscsit_rx_data_out(struct iscsit_conn *conn, const struct iscsit_pdu *pdu);
void iscsit_task_free(struct iscsit_task *task);
/* Send R2Ts for waiting writes while the connection's budget of solicited
 * bytes (ISCSIT_MAX_SOLICITED) allows. */
void iscsit_cmd_solicit(struct iscsit_conn *conn);

/* ---- tmf.c ---- */
void iscsit_rx_tmf(struct iscsit_conn *conn, const struct iscsit_pdu *pdu);

/* ---- chap.c ---- */
/* CHAP response (RFC 1994 §4.1): MD5(id || secret || challenge), 16 bytes into out. */
void iscsit_chap_response(uint8_t id, const uint8_t *secret, size_t secret_len,
                          const uint8_t *challenge, size_t challenge_len, uint8_t out[16]);
/* "0x" + lowercase hex. Caller frees with g_free. */
char *iscsit_hex_encode(const uint8_t *data, size_t len);
