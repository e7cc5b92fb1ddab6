/*
 * scale-client — many concurrent iSCSI and NBD sessions against one ovgated.
 *
 * Proves the concurrency model of docs/concurrency.md from the outside: N
 * sessions (default 48 iSCSI + 16 NBD), each a different client of the same
 * image, are logged in at the same time; then every session writes blocks
 * tagged with its own number, flushes, reads everything back and checks that
 * it sees its own writes and the base image elsewhere — never another
 * session's data.
 *
 * One thread per session (bounded by --iscsi + --nbd, at most
 * SCALE_MAX_SESSIONS), each driving its own libiscsi context or libnbd handle
 * through the libraries' asynchronous APIs with up to --qd commands in
 * flight. The threads meet at a barrier after each phase, so every phase runs
 * with all sessions at once and the main thread times it.
 *
 * Layout of the disk (4 KiB blocks, HALF = blocks / 2):
 *   shared set:   block (k * SCALE_P1 + 11) mod HALF, k < --shared;
 *                 written by every session with its own tag
 *   private set:  HALF + ((i * PRIV + k) * SCALE_P2 + 5) mod HALF for session
 *                 i, k < --private; written by session i only; the private
 *                 sets of two other sessions and of a "session N" that does
 *                 not exist must still read as the base image.
 * Every block's content is a function of (owner, block): the owner is the
 * session number, or SCALE_OWNER_BASE for the base image that --make-base
 * writes, so a mismatch names whose data was seen.
 *
 * Exit status: 0 all sessions verified, 1 a session failed (each failure is
 * printed as a TAP comment), 2 bad usage or the --timeout watchdog fired.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <glib.h>
#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>
#include <libnbd.h>

#define SCALE_BLOCK 4096u
#define SCALE_MAX_SESSIONS 1024u
#define SCALE_OWNER_BASE 0xffffffffu
#define SCALE_MAGIC "OVSCALE1"
#define SCALE_P1 7919u
#define SCALE_P2 104729u

enum scale_proto {
    SCALE_ISCSI,
    SCALE_NBD,
};

/* Phases, in order; each ends at a barrier where the main thread times it. */
enum scale_phase {
    SCALE_PHASE_CONNECT,
    SCALE_PHASE_WRITE,
    SCALE_PHASE_FLUSH,
    SCALE_PHASE_VERIFY,
    SCALE_PHASE_HOLD,
    SCALE_PHASE_DISCONNECT,
    SCALE_PHASE_COUNT,
};

/* clang-format off */
static const char *const scale_phase_names[SCALE_PHASE_COUNT] = {
    [SCALE_PHASE_CONNECT] = "connect",
    [SCALE_PHASE_WRITE] = "write",
    [SCALE_PHASE_FLUSH] = "flush",
    [SCALE_PHASE_VERIFY] = "verify",
    [SCALE_PHASE_HOLD] = "hold",
    [SCALE_PHASE_DISCONNECT] = "disconnect",
};
/* clang-format on */

struct scale_opts {
    char *host;
    int iscsi_port;
    int nbd_port;
    char *target;
    char *image;
    char *client_prefix;
    char *iqn_prefix;
    int n_iscsi;
    int n_nbd;
    int n_readers;
    int disk_mib;
    int shared;
    int priv;
    int qd;
    int timeout;
    int hold_timeout;
    char *ready_file;
    char *go_file;
    char *mark_file;
    char *victims;
    char *make_base;
    gboolean verify_only;
    int name_shift;
    int rounds;
};

struct scale_sess {
    unsigned index;
    unsigned total; /* writing sessions in the run, for the layout */
    bool reader;    /* --readers: the read-only image export, sees only the base */
    enum scale_proto proto;
    char name[64];
    struct iscsi_context *iscsi;
    struct nbd_handle *nbd;
    uint32_t lb_size; /* iSCSI logical block size */
    unsigned inflight;
    enum scale_phase phase; /* the phase this thread is in */
    uint32_t round;         /* the round this thread writes or verifies */
    unsigned long ops[SCALE_PHASE_COUNT];
    bool failed;
    bool victim;  /* --victims: its session may be ended from outside */
    bool foreign; /* it read another session's data */
    char err[320];
};

/* One command in flight; owns the data buffer until the command completes. */
struct scale_io {
    struct scale_sess *s;
    uint64_t block;
    uint32_t owner; /* the owner and round written, or expected by a read */
    uint32_t round;
    bool is_read;
    uint8_t buf[SCALE_BLOCK];
};

static struct scale_opts scale_o = {
    .host = NULL,
    .n_iscsi = 48,
    .n_nbd = 16,
    .disk_mib = 64,
    .shared = 32,
    .priv = 16,
    .qd = 8,
    .rounds = 2,
    .timeout = 100,
    .hold_timeout = 60,
};
static pthread_barrier_t scale_barrier;
static volatile sig_atomic_t scale_cur_phase;
static uint64_t scale_half; /* HALF in the layout above */

static double
scale_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void scale_fail(struct scale_sess *s, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

/* Record the session's first failure; later ones are consequences. */
static void
scale_fail(struct scale_sess *s, const char *fmt, ...)
{
    if (s->failed)
        return;
    s->failed = true;
    /* Say where: "write 2: ..." (connect and disconnect have no round). */
    int n = s->phase == SCALE_PHASE_CONNECT || s->phase == SCALE_PHASE_DISCONNECT
                ? snprintf(s->err, sizeof(s->err), "%s: ", scale_phase_names[s->phase])
                : snprintf(s->err, sizeof(s->err), "%s %" PRIu32 ": ", scale_phase_names[s->phase],
                           s->round);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->err + n, sizeof(s->err) - (size_t)n, fmt, ap);
    va_end(ap);
}

/* ---- block content ---- */

static void
scale_put_le(uint8_t *p, uint64_t v, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t
scale_get_le(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* The 4 KiB that OWNER writes at BLOCK in ROUND (0 for the base image):
 * magic, owner, block, round, then filler that depends on all three
 * (xorshift64), so a block moved, mixed or stale is seen. */
static void
scale_fill(uint8_t *buf, uint32_t owner, uint32_t round, uint64_t block)
{
    memcpy(buf, SCALE_MAGIC, 8);
    scale_put_le(buf + 8, owner, 4);
    scale_put_le(buf + 12, block, 8);
    scale_put_le(buf + 20, round, 4);
    uint64_t x = ((uint64_t)owner + 1) * 0x9e3779b97f4a7c15ull ^
                 (block + 1) * 0xbf58476d1ce4e5b9ull ^ ((uint64_t)round << 40);
    for (unsigned off = 24; off < SCALE_BLOCK; off += 8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        scale_put_le(buf + off, x, 8);
    }
}

/* Compare a block read back with what OWNER wrote there in ROUND; on
 * mismatch say whose block it looks like. */
static void
scale_check(struct scale_sess *s, const uint8_t *got, uint32_t owner, uint32_t round,
            uint64_t block)
{
    uint8_t want[SCALE_BLOCK];
    scale_fill(want, owner, round, block);
    if (memcmp(got, want, SCALE_BLOCK) == 0)
        return;
    if (memcmp(got, SCALE_MAGIC, 8) != 0) {
        scale_fail(s, "block %" PRIu64 ": expected owner %" PRId64 ", read untagged data", block,
                   owner == SCALE_OWNER_BASE ? (int64_t)-1 : (int64_t)owner);
        return;
    }
    uint32_t saw = (uint32_t)scale_get_le(got + 8, 4);
    uint32_t saw_round = (uint32_t)scale_get_le(got + 20, 4);
    const char *what = ": CORRUPT";
    if (saw != SCALE_OWNER_BASE && saw != s->index) {
        what = ": ISOLATION BROKEN (another session's data)";
        s->foreign = true;
    } else if (saw == SCALE_OWNER_BASE && owner != SCALE_OWNER_BASE)
        what = ": WRITE LOST";
    else if (saw == owner && saw_round < round)
        what = ": STALE (an older round's write)";
    scale_fail(s,
               "block %" PRIu64 ": expected owner %" PRId64 " round %" PRIu32
               ", read owner %" PRId64 " round %" PRIu32 " block %" PRIu64
               " (owner -1 = base image)%s",
               block, owner == SCALE_OWNER_BASE ? (int64_t)-1 : (int64_t)owner, round,
               saw == SCALE_OWNER_BASE ? (int64_t)-1 : (int64_t)saw, saw_round,
               scale_get_le(got + 12, 8), what);
}

static uint64_t
scale_shared_block(unsigned k)
{
    return ((uint64_t)k * SCALE_P1 + 11) % scale_half;
}

static uint64_t
scale_private_block(unsigned sess, unsigned k)
{
    return scale_half + (((uint64_t)sess * (unsigned)scale_o.priv + k) * SCALE_P2 + 5) % scale_half;
}

/* ---- iSCSI: libiscsi's async API over one context per session ---- */

static void
scale_iscsi_done(struct iscsi_context *iscsi, int status, void *command_data, void *private_data)
{
    struct scale_io *io = private_data;
    struct scsi_task *task = command_data;
    struct scale_sess *s = io->s;

    s->inflight--;
    if (status != SCSI_STATUS_GOOD) {
        scale_fail(s, "%s of block %" PRIu64 " failed: status %d: %s",
                   io->is_read ? "READ(16)" : "WRITE(16)", io->block, status,
                   iscsi_get_error(iscsi));
    } else if (io->is_read) {
        if (task->datain.size != (int)SCALE_BLOCK)
            scale_fail(s, "READ(16) of block %" PRIu64 " returned %d bytes", io->block,
                       task->datain.size);
        else
            scale_check(s, task->datain.data, io->owner, io->round, io->block);
    }
    s->ops[s->phase]++;
    if (task)
        scsi_free_scsi_task(task);
    g_free(io);
}

/* Run the context's event loop until at most MAX commands are in flight. */
static void
scale_iscsi_drain(struct scale_sess *s, unsigned max)
{
    while (s->inflight > max && !s->failed) {
        struct pollfd pfd = {.fd = iscsi_get_fd(s->iscsi), .events = iscsi_which_events(s->iscsi)};
        int n = poll(&pfd, 1, 1000);
        if (n < 0 && errno != EINTR) {
            scale_fail(s, "poll: %s", g_strerror(errno));
            return;
        }
        if (iscsi_service(s->iscsi, n > 0 ? pfd.revents : 0) < 0) {
            scale_fail(s, "iscsi_service: %s", iscsi_get_error(s->iscsi));
            return;
        }
    }
}

static void
scale_iscsi_submit(struct scale_sess *s, struct scale_io *io, bool fua)
{
    uint64_t lba = io->block * SCALE_BLOCK / s->lb_size;
    struct scsi_task *t;
    if (io->is_read)
        t = iscsi_read16_task(s->iscsi, 0, lba, SCALE_BLOCK, (int)s->lb_size, 0, 0, 0, 0, 0,
                              scale_iscsi_done, io);
    else
        t = iscsi_write16_task(s->iscsi, 0, lba, io->buf, SCALE_BLOCK, (int)s->lb_size, 0, 0, fua,
                               0, 0, scale_iscsi_done, io);
    if (!t) {
        scale_fail(s, "cannot queue a command: %s", iscsi_get_error(s->iscsi));
        g_free(io);
        return;
    }
    s->inflight++;
}

static void
scale_iscsi_connect(struct scale_sess *s)
{
    g_autofree char *iqn = g_strdup_printf("%s:%s", scale_o.iqn_prefix, s->name);
    g_autofree char *portal = g_strdup_printf("%s:%d", scale_o.host, scale_o.iscsi_port);

    s->iscsi = iscsi_create_context(iqn);
    if (!s->iscsi) {
        scale_fail(s, "iscsi_create_context failed");
        return;
    }
    iscsi_set_targetname(s->iscsi, scale_o.target);
    iscsi_set_session_type(s->iscsi, ISCSI_SESSION_NORMAL);
    /* Half the sessions ask for CRC32C header digests. */
    iscsi_set_header_digest(s->iscsi,
                            s->index % 2 ? ISCSI_HEADER_DIGEST_CRC32C : ISCSI_HEADER_DIGEST_NONE);
    iscsi_set_noautoreconnect(s->iscsi, 1);
    iscsi_set_timeout(s->iscsi, 30);
    if (iscsi_full_connect_sync(s->iscsi, portal, 0) != 0) {
        scale_fail(s, "login as %s failed: %s", iqn, iscsi_get_error(s->iscsi));
        return;
    }
    struct scsi_task *t = iscsi_readcapacity16_sync(s->iscsi, 0);
    if (!t || t->status != SCSI_STATUS_GOOD) {
        scale_fail(s, "READ CAPACITY(16) failed: %s", iscsi_get_error(s->iscsi));
    } else {
        struct scsi_readcapacity16 *rc = scsi_datain_unmarshall(t);
        if (!rc || rc->block_length == 0 || SCALE_BLOCK % rc->block_length != 0)
            scale_fail(s, "READ CAPACITY(16): unusable block length");
        else if ((rc->returned_lba + 1) * rc->block_length != (uint64_t)scale_o.disk_mib << 20)
            scale_fail(s, "disk is %" PRIu64 " bytes, expected %d MiB",
                       (rc->returned_lba + 1) * rc->block_length, scale_o.disk_mib);
        else
            s->lb_size = rc->block_length;
    }
    if (t)
        scsi_free_scsi_task(t);
}

static void
scale_iscsi_flush(struct scale_sess *s)
{
    struct scsi_task *t = iscsi_synchronizecache10_sync(s->iscsi, 0, 0, 0, 0, 0);
    s->ops[s->phase]++;
    if (!t || t->status != SCSI_STATUS_GOOD)
        scale_fail(s, "SYNCHRONIZE CACHE(10) failed: %s", iscsi_get_error(s->iscsi));
    if (t)
        scsi_free_scsi_task(t);
}

/* ---- NBD: libnbd's aio API, one handle per session ---- */

static int
scale_nbd_done(void *user_data, int *error)
{
    struct scale_io *io = user_data;
    struct scale_sess *s = io->s;

    s->inflight--;
    s->ops[s->phase]++;
    if (*error)
        scale_fail(s, "NBD %s of block %" PRIu64 " failed: %s", io->is_read ? "read" : "write",
                   io->block, g_strerror(*error));
    else if (io->is_read)
        scale_check(s, io->buf, io->owner, io->round, io->block);
    return 1; /* retire the command */
}

static void
scale_nbd_drain(struct scale_sess *s, unsigned max)
{
    while (s->inflight > max && !s->failed) {
        if (nbd_poll(s->nbd, 1000) < 0) {
            scale_fail(s, "nbd_poll: %s", nbd_get_error());
            return;
        }
    }
}

static void
scale_nbd_submit(struct scale_sess *s, struct scale_io *io, bool fua)
{
    nbd_completion_callback cb = {.callback = scale_nbd_done, .user_data = io, .free = g_free};
    int64_t cookie;
    uint64_t off = io->block * SCALE_BLOCK;
    if (io->is_read)
        cookie = nbd_aio_pread(s->nbd, io->buf, SCALE_BLOCK, off, cb, 0);
    else
        cookie =
            nbd_aio_pwrite(s->nbd, io->buf, SCALE_BLOCK, off, cb, fua ? LIBNBD_CMD_FLAG_FUA : 0);
    if (cookie < 0) {
        /* libnbd calls .free even when it refuses the command. */
        scale_fail(s, "cannot queue an NBD command: %s", nbd_get_error());
        return;
    }
    s->inflight++;
}

static void
scale_nbd_connect(struct scale_sess *s)
{
    g_autofree char *export =
        s->reader ? g_strdup(scale_o.image) : g_strdup_printf("%s/%s", scale_o.image, s->name);
    g_autofree char *port = g_strdup_printf("%d", scale_o.nbd_port);

    s->nbd = nbd_create();
    if (!s->nbd) {
        scale_fail(s, "nbd_create: %s", nbd_get_error());
        return;
    }
    if (nbd_set_export_name(s->nbd, export) < 0 ||
        nbd_connect_tcp(s->nbd, scale_o.host, port) < 0) {
        scale_fail(s, "NBD connect to export %s failed: %s", export, nbd_get_error());
        return;
    }
    int64_t size = nbd_get_size(s->nbd);
    if (size != (int64_t)scale_o.disk_mib << 20)
        scale_fail(s, "export %s is %" PRId64 " bytes, expected %d MiB", export, size,
                   scale_o.disk_mib);
}

static void
scale_nbd_flush(struct scale_sess *s)
{
    s->ops[s->phase]++;
    if (nbd_flush(s->nbd, 0) < 0)
        scale_fail(s, "NBD flush failed: %s", nbd_get_error());
}

/* ---- one session ---- */

static void
scale_drain(struct scale_sess *s, unsigned max)
{
    if (s->proto == SCALE_ISCSI)
        scale_iscsi_drain(s, max);
    else
        scale_nbd_drain(s, max);
}

/* Queue one read (checked against OWNER's ROUND) or one write of BLOCK,
 * keeping at most --qd commands in flight. */
static void
scale_io(struct scale_sess *s, bool is_read, uint64_t block, uint32_t owner, uint32_t round,
         bool fua)
{
    if (s->failed)
        return;
    scale_drain(s, (unsigned)scale_o.qd - 1);
    if (s->failed)
        return;
    struct scale_io *io = g_new0(struct scale_io, 1);
    io->s = s;
    io->block = block;
    io->is_read = is_read;
    io->owner = owner;
    io->round = round;
    if (!is_read)
        scale_fill(io->buf, owner, round, block);
    if (s->proto == SCALE_ISCSI)
        scale_iscsi_submit(s, io, fua);
    else
        scale_nbd_submit(s, io, fua);
}

static void
scale_sess_write(struct scale_sess *s)
{
    unsigned n = 0;
    for (unsigned k = 0; k < (unsigned)scale_o.shared; k++, n++)
        scale_io(s, false, scale_shared_block(k), s->index, s->round, n % 4 == 3);
    for (unsigned k = 0; k < (unsigned)scale_o.priv; k++, n++)
        scale_io(s, false, scale_private_block(s->index, k), s->index, s->round, n % 4 == 3);
    scale_drain(s, 0);
}

/* A reader of the image export: the base everywhere, however much the
 * writers write to the same blocks of their own disks meanwhile. */
static void
scale_reader_verify(struct scale_sess *s)
{
    for (unsigned k = 0; k < (unsigned)scale_o.shared; k++)
        scale_io(s, true, scale_shared_block(k), SCALE_OWNER_BASE, 0, false);
    for (unsigned j = 0; j < 2; j++) {
        unsigned w = (s->index + j * (s->total / 2)) % s->total;
        for (unsigned k = 0; k < (unsigned)scale_o.priv; k++)
            scale_io(s, true, scale_private_block(w, k), SCALE_OWNER_BASE, 0, false);
    }
    scale_drain(s, 0);
}

static void
scale_sess_verify(struct scale_sess *s)
{
    if (s->reader) {
        scale_reader_verify(s);
        return;
    }
    unsigned others[3] = {(s->index + 1) % s->total, (s->index + s->total / 2) % s->total,
                          s->total /* a session that does not exist */};
    for (unsigned k = 0; k < (unsigned)scale_o.shared; k++)
        scale_io(s, true, scale_shared_block(k), s->index, s->round, false);
    for (unsigned k = 0; k < (unsigned)scale_o.priv; k++)
        scale_io(s, true, scale_private_block(s->index, k), s->index, s->round, false);
    for (unsigned j = 0; j < G_N_ELEMENTS(others); j++) {
        if (others[j] == s->index)
            continue;
        for (unsigned k = 0; k < (unsigned)scale_o.priv; k++)
            scale_io(s, true, scale_private_block(others[j], k), SCALE_OWNER_BASE, 0, false);
    }
    scale_drain(s, 0);
}

static void
scale_sess_close(struct scale_sess *s)
{
    if (s->iscsi) {
        if (!s->failed && iscsi_logout_sync(s->iscsi) != 0)
            scale_fail(s, "logout failed: %s", iscsi_get_error(s->iscsi));
        iscsi_destroy_context(s->iscsi);
        s->iscsi = NULL;
    }
    if (s->nbd) {
        if (!s->failed && nbd_shutdown(s->nbd, 0) < 0)
            scale_fail(s, "NBD disconnect failed: %s", nbd_get_error());
        nbd_close(s->nbd);
        s->nbd = NULL;
    }
}

/* Write-flush-verify rounds; one verify pass with --verify-only. */
static unsigned
scale_passes(void)
{
    return scale_o.verify_only ? 1 : (unsigned)scale_o.rounds;
}

static void *
scale_sess_main(void *arg)
{
    struct scale_sess *s = arg;

    if (s->proto == SCALE_ISCSI)
        scale_iscsi_connect(s);
    else
        scale_nbd_connect(s);
    pthread_barrier_wait(&scale_barrier); /* end of connect */
    for (unsigned r = 1; r <= scale_passes(); r++) {
        /* --verify-only checks what the last round of an earlier run wrote. */
        s->round = scale_o.verify_only ? (uint32_t)scale_o.rounds : r;
        if (!scale_o.verify_only) {
            s->phase = SCALE_PHASE_WRITE;
            if (s->reader)
                scale_reader_verify(s); /* reads while the others write */
            else
                scale_sess_write(s);
            pthread_barrier_wait(&scale_barrier); /* end of write */
            s->phase = SCALE_PHASE_FLUSH;
            if (!s->failed && !s->reader) {
                if (s->proto == SCALE_ISCSI)
                    scale_iscsi_flush(s);
                else
                    scale_nbd_flush(s);
            }
            pthread_barrier_wait(&scale_barrier); /* end of flush */
        }
        s->phase = SCALE_PHASE_VERIFY;
        scale_sess_verify(s);
        pthread_barrier_wait(&scale_barrier); /* end of verify */
    }
    pthread_barrier_wait(&scale_barrier); /* end of hold */
    s->phase = SCALE_PHASE_DISCONNECT;
    scale_sess_close(s);
    pthread_barrier_wait(&scale_barrier); /* end of disconnect */
    return NULL;
}

/* ---- main ---- */

static void
scale_watchdog(int sig)
{
    static const char msg[] = "Bail out! scale-client: timeout in phase ";
    const char *phase = scale_phase_names[scale_cur_phase];
    (void)!write(STDOUT_FILENO, msg, sizeof(msg) - 1);
    (void)!write(STDOUT_FILENO, phase, strlen(phase));
    (void)!write(STDOUT_FILENO, "\n", 1);
    _exit(2);
}

static bool
scale_make_base(const char *path)
{
    g_autofree uint8_t *buf = g_malloc(SCALE_BLOCK);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        fprintf(stderr, "scale-client: %s: %s\n", path, g_strerror(errno));
        return false;
    }
    uint64_t n = ((uint64_t)scale_o.disk_mib << 20) / SCALE_BLOCK;
    for (uint64_t b = 0; b < n; b++) {
        scale_fill(buf, SCALE_OWNER_BASE, 0, b);
        if (pwrite(fd, buf, SCALE_BLOCK, (off_t)(b * SCALE_BLOCK)) != (ssize_t)SCALE_BLOCK) {
            fprintf(stderr, "scale-client: writing %s: %s\n", path, g_strerror(errno));
            close(fd);
            return false;
        }
    }
    return close(fd) == 0;
}

/* Whether session I is named in --victims. */
static bool
scale_is_victim(unsigned i)
{
    if (!scale_o.victims)
        return false;
    g_auto(GStrv) list = g_strsplit(scale_o.victims, ",", -1);
    for (char **p = list; *p; p++) {
        guint64 v;
        if (g_ascii_string_to_unsigned(*p, 10, 0, SCALE_MAX_SESSIONS, &v, NULL) && v == i)
            return true;
    }
    return false;
}

/* Create --ready-file, then wait (bounded) for --go-file: the test looks at
 * the daemon while every session is still logged in. */
static bool
scale_hold(void)
{
    if (!scale_o.ready_file)
        return true;
    if (!g_file_set_contents(scale_o.ready_file, "ready\n", -1, NULL)) {
        printf("# cannot create %s\n", scale_o.ready_file);
        return false;
    }
    double end = scale_now() + scale_o.hold_timeout;
    while (scale_o.go_file && !g_file_test(scale_o.go_file, G_FILE_TEST_EXISTS)) {
        if (scale_now() > end) {
            printf("# %s did not appear within %d s\n", scale_o.go_file, scale_o.hold_timeout);
            return false;
        }
        g_usleep(20000);
    }
    return true;
}

static bool
scale_parse(int argc, char **argv)
{
    GOptionEntry entries[] = {
        {"host", 0, 0, G_OPTION_ARG_STRING, &scale_o.host, "Daemon address", "ADDR"},
        {"iscsi-port", 0, 0, G_OPTION_ARG_INT, &scale_o.iscsi_port, "iSCSI port", "PORT"},
        {"nbd-port", 0, 0, G_OPTION_ARG_INT, &scale_o.nbd_port, "NBD port", "PORT"},
        {"target", 0, 0, G_OPTION_ARG_STRING, &scale_o.target, "iSCSI target name", "IQN"},
        {"image", 0, 0, G_OPTION_ARG_STRING, &scale_o.image, "Image name", "NAME"},
        {"client-prefix", 0, 0, G_OPTION_ARG_STRING, &scale_o.client_prefix,
         "Clients are PREFIX000, PREFIX001, ...", "PREFIX"},
        {"iqn-prefix", 0, 0, G_OPTION_ARG_STRING, &scale_o.iqn_prefix,
         "Initiator names are IQN:CLIENT", "IQN"},
        {"iscsi", 0, 0, G_OPTION_ARG_INT, &scale_o.n_iscsi, "iSCSI sessions (48)", "N"},
        {"nbd", 0, 0, G_OPTION_ARG_INT, &scale_o.n_nbd, "NBD sessions (16)", "N"},
        {"readers", 0, 0, G_OPTION_ARG_INT, &scale_o.n_readers,
         "More NBD sessions on the read-only image export (0)", "N"},
        {"disk-mib", 0, 0, G_OPTION_ARG_INT, &scale_o.disk_mib, "Disk size (64)", "MIB"},
        {"shared", 0, 0, G_OPTION_ARG_INT, &scale_o.shared, "Blocks all sessions write (32)", "N"},
        {"private", 0, 0, G_OPTION_ARG_INT, &scale_o.priv, "Blocks per session (16)", "N"},
        {"qd", 0, 0, G_OPTION_ARG_INT, &scale_o.qd, "Commands in flight per session (8)", "N"},
        {"rounds", 0, 0, G_OPTION_ARG_INT, &scale_o.rounds,
         "Write-flush-verify rounds, each overwriting the last (2)", "N"},
        {"timeout", 0, 0, G_OPTION_ARG_INT, &scale_o.timeout, "Watchdog (100 s)", "S"},
        {"hold-timeout", 0, 0, G_OPTION_ARG_INT, &scale_o.hold_timeout, "Wait for --go-file", "S"},
        {"ready-file", 0, 0, G_OPTION_ARG_FILENAME, &scale_o.ready_file, "Create after verifying",
         "FILE"},
        {"mark-file", 0, 0, G_OPTION_ARG_FILENAME, &scale_o.mark_file,
         "Create once round 1 is verified", "FILE"},
        {"victims", 0, 0, G_OPTION_ARG_STRING, &scale_o.victims,
         "Sessions (indices, comma-separated) that may be ended from outside; they must "
         "still never read another session's data",
         "LIST"},
        {"go-file", 0, 0, G_OPTION_ARG_FILENAME, &scale_o.go_file, "Disconnect once it exists",
         "FILE"},
        {"verify-only", 0, 0, G_OPTION_ARG_NONE, &scale_o.verify_only,
         "Only read and verify what an earlier run wrote", NULL},
        {"name-shift", 0, 0, G_OPTION_ARG_INT, &scale_o.name_shift,
         "Session i uses the client K places on (same protocol): a self-test that the "
         "checks see foreign data",
         "K"},
        {"make-base", 0, 0, G_OPTION_ARG_FILENAME, &scale_o.make_base,
         "Write the base image to FILE and exit", "FILE"},
        {NULL, 0, 0, 0, NULL, NULL, NULL},
    };
    g_autoptr(GOptionContext) ctx = g_option_context_new("- concurrent sessions against ovgated");
    g_autoptr(GError) err = NULL;
    g_option_context_add_main_entries(ctx, entries, NULL);
    if (!g_option_context_parse(ctx, &argc, &argv, &err)) {
        fprintf(stderr, "scale-client: %s\n", err->message);
        return false;
    }
    if (scale_o.disk_mib < 1 || scale_o.disk_mib > 65536) {
        fprintf(stderr, "scale-client: --disk-mib must be 1..65536\n");
        return false;
    }
    if (scale_o.make_base)
        return true;
    unsigned total = (unsigned)scale_o.n_iscsi + (unsigned)scale_o.n_nbd;
    scale_half = ((uint64_t)scale_o.disk_mib << 20) / SCALE_BLOCK / 2;
    if (scale_o.n_iscsi < 0 || scale_o.n_nbd < 0 || total < 2 || scale_o.n_readers < 0 ||
        total + (unsigned)scale_o.n_readers > SCALE_MAX_SESSIONS || scale_o.shared < 1 ||
        scale_o.priv < 1 || scale_o.qd < 1 || scale_o.qd > 128 || scale_o.rounds < 1 ||
        scale_o.rounds > 1000 || scale_o.timeout < 1 || scale_o.hold_timeout < 1 ||
        scale_o.name_shift < 0) {
        fprintf(stderr, "scale-client: bad counts (2..%u sessions, qd 1..128)\n",
                SCALE_MAX_SESSIONS);
        return false;
    }
    if ((uint64_t)scale_o.shared > scale_half ||
        ((uint64_t)total + 1) * (uint64_t)scale_o.priv > scale_half || scale_half % SCALE_P1 == 0 ||
        scale_half % SCALE_P2 == 0) {
        fprintf(stderr, "scale-client: the blocks do not fit a %d MiB disk\n", scale_o.disk_mib);
        return false;
    }
    if (scale_o.victims) {
        g_auto(GStrv) list = g_strsplit(scale_o.victims, ",", -1);
        for (char **v = list; *v; v++) {
            if (!g_ascii_string_to_unsigned(*v, 10, 0, total - 1, NULL, NULL)) {
                fprintf(stderr, "scale-client: --victims: '%s' is not a session index below %u\n",
                        *v, total);
                return false;
            }
        }
    }
    if (!scale_o.host || !scale_o.image || !scale_o.client_prefix ||
        (scale_o.n_iscsi && (!scale_o.iscsi_port || !scale_o.target || !scale_o.iqn_prefix)) ||
        ((scale_o.n_nbd || scale_o.n_readers) && !scale_o.nbd_port)) {
        fprintf(stderr, "scale-client: --host, --image, --client-prefix and the ports, --target "
                        "and --iqn-prefix of the protocols used are required\n");
        return false;
    }
    return true;
}

static void
scale_report(enum scale_phase p, unsigned round, double secs, unsigned long ops)
{
    g_autofree char *name = NULL;
    if (p == SCALE_PHASE_WRITE || p == SCALE_PHASE_FLUSH || p == SCALE_PHASE_VERIFY)
        name = g_strdup_printf("%s %u", scale_phase_names[p], round);
    else
        name = g_strdup(scale_phase_names[p]);
    if (ops)
        printf("# phase %-10s %8.3f s  %6lu commands  %9.0f commands/s\n", name, secs, ops,
               secs > 0 ? (double)ops / secs : 0.0);
    else
        printf("# phase %-10s %8.3f s\n", name, secs);
}

/* Commands of phase P, summed over the sessions; only read once every
 * thread has passed the barrier that ends P. */
static unsigned long
scale_ops(const struct scale_sess *ss, unsigned n, enum scale_phase p)
{
    unsigned long sum = 0;
    for (unsigned i = 0; i < n; i++)
        sum += ss[i].ops[p];
    return sum;
}

int
main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (!scale_parse(argc, argv))
        return 2;
    if (scale_o.make_base)
        return scale_make_base(scale_o.make_base) ? 0 : 1;

    unsigned writers = (unsigned)scale_o.n_iscsi + (unsigned)scale_o.n_nbd;
    unsigned n = writers + (unsigned)scale_o.n_readers;
    g_autofree struct scale_sess *ss = g_new0(struct scale_sess, n);
    g_autofree pthread_t *tids = g_new0(pthread_t, n);
    signal(SIGALRM, scale_watchdog);
    signal(SIGPIPE, SIG_IGN);
    alarm((unsigned)scale_o.timeout);
    pthread_barrier_init(&scale_barrier, NULL, n + 1);

    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 512 * 1024);
    double t = scale_now(), t0 = t;
    for (unsigned i = 0; i < n; i++) {
        struct scale_sess *s = &ss[i];
        s->index = i;
        s->total = writers;
        s->proto = i < (unsigned)scale_o.n_iscsi ? SCALE_ISCSI : SCALE_NBD;
        s->victim = scale_is_victim(i);
        s->reader = i >= writers;
        if (s->reader) {
            snprintf(s->name, sizeof(s->name), "reader%u", i - writers);
        } else {
            unsigned first = s->proto == SCALE_ISCSI ? 0 : (unsigned)scale_o.n_iscsi;
            unsigned group =
                s->proto == SCALE_ISCSI ? (unsigned)scale_o.n_iscsi : (unsigned)scale_o.n_nbd;
            unsigned client = first + (i - first + (unsigned)scale_o.name_shift) % group;
            snprintf(s->name, sizeof(s->name), "%s%03u", scale_o.client_prefix, client);
        }
        int rc = pthread_create(&tids[i], &attr, scale_sess_main, s);
        if (rc != 0) {
            /* The barrier counts on every thread: nothing sane to unwind. */
            printf("Bail out! pthread_create: %s\n", g_strerror(rc));
            return 2;
        }
    }
    pthread_attr_destroy(&attr);
    printf(
        "# %u sessions: %d iSCSI, %d NBD, %d NBD readers of the image; %d shared + %d private "
        "blocks of 4 KiB each; %s %d\n",
        n, scale_o.n_iscsi, scale_o.n_nbd, scale_o.n_readers, scale_o.shared, scale_o.priv,
        scale_o.verify_only ? "verify only, round" : "write-flush-verify rounds:", scale_o.rounds);

    /* The phases in the order the threads go through them. */
    GArray *plan = g_array_new(FALSE, FALSE, sizeof(enum scale_phase));
    enum scale_phase step = SCALE_PHASE_CONNECT;
    g_array_append_val(plan, step);
    for (unsigned r = 1; r <= scale_passes(); r++) {
        enum scale_phase round[] = {SCALE_PHASE_WRITE, SCALE_PHASE_FLUSH, SCALE_PHASE_VERIFY};
        if (scale_o.verify_only)
            g_array_append_val(plan, round[2]);
        else
            g_array_append_vals(plan, round, G_N_ELEMENTS(round));
    }
    enum scale_phase tail[] = {SCALE_PHASE_HOLD, SCALE_PHASE_DISCONNECT};
    g_array_append_vals(plan, tail, G_N_ELEMENTS(tail));

    bool held = true;
    unsigned long done[SCALE_PHASE_COUNT] = {0};
    unsigned r = 1;
    for (guint i = 0; i < plan->len; i++) {
        enum scale_phase p = g_array_index(plan, enum scale_phase, i);
        scale_cur_phase = p;
        if (p == SCALE_PHASE_HOLD)
            held = scale_hold();
        pthread_barrier_wait(&scale_barrier);
        double now = scale_now();
        /* Every thread has finished phase P of this round and none starts
         * it again before the main thread reaches the next barrier. */
        unsigned long ops = scale_ops(ss, n, p);
        scale_report(p, r, now - t, ops - done[p]);
        done[p] = ops;
        if (p == SCALE_PHASE_VERIFY && r++ == 1 && scale_o.mark_file &&
            !g_file_set_contents(scale_o.mark_file, "round 1 verified\n", -1, NULL))
            printf("# cannot create %s\n", scale_o.mark_file);
        t = now;
    }
    g_array_free(plan, TRUE);
    for (unsigned i = 0; i < n; i++)
        pthread_join(tids[i], NULL);
    alarm(0);
    printf("# total %.3f s\n", scale_now() - t0);

    unsigned failed = 0, ended = 0;
    for (unsigned i = 0; i < n; i++) {
        const char *proto = ss[i].proto == SCALE_ISCSI ? "iSCSI"
                            : ss[i].reader             ? "NBD image export"
                                                       : "NBD";
        if (ss[i].victim && !ss[i].foreign) {
            ended += ss[i].failed;
            printf("# victim session %u (%s, %s): %s\n", i, ss[i].name, proto,
                   ss[i].failed ? ss[i].err : "ran to the end undisturbed");
        } else if (ss[i].failed) {
            failed++;
            printf("# session %u (%s, %s): %s\n", i, ss[i].name, proto, ss[i].err);
        }
    }
    if (scale_o.victims)
        printf("# %u victim session(s) were ended from outside\n", ended);
    pthread_barrier_destroy(&scale_barrier);
    if (failed)
        printf("# %u of %u sessions failed\n", failed, n);
    return failed || !held ? 1 : 0;
}
