/* test-nbd-conn.c — the NBD server's handshake and transmission driven end
 * to end over a socketpair against in-memory disks (nbd-memdisk.c):
 * libnbd as the well-behaved client, raw bytes for malformed peers. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <libnbd.h>

#include "nbd-memdisk.h"

#define DISK_SIZE (1024u * 1024)

struct env {
    struct cfg *cfg;
    struct nbdt_exports *exports;
    struct nbdsrv *srv;
    char *tmpdir;
    char *psk_file;
};

static struct env *
env_new(bool psk, bool require_tls)
{
    struct env *e = g_new0(struct env, 1);
    g_autoptr(GError) error = NULL;

    e->cfg = cfg_load(NULL, &error);
    g_assert_no_error(error);
    e->tmpdir = g_dir_make_tmp("nbd-test-XXXXXX", &error);
    g_assert_no_error(error);
    if (psk) {
        e->psk_file = g_build_filename(e->tmpdir, "keys.psk", NULL);
        g_assert_true(g_file_set_contents(e->psk_file,
                                          "# test keys\nalice:00112233445566778899aabbccddeeff\n"
                                          "bob:ffeeddccbbaa99887766554433221100\n",
                                          -1, NULL));
        e->cfg->tls_psk_file = g_strdup(e->psk_file);
    }
    e->cfg->nbd_require_tls = require_tls;
    e->exports = nbdt_exports_new(DISK_SIZE);
    e->srv = nbdsrv_new_with_exports(e->cfg, &nbdt_export_ops, e->exports, &error);
    g_assert_no_error(error);
    return e;
}

static void
env_free(struct env *e)
{
    nbdsrv_free(e->srv);
    nbdt_exports_free(e->exports);
    cfg_unref(e->cfg);
    if (e->psk_file)
        g_unlink(e->psk_file);
    g_rmdir(e->tmpdir);
    g_free(e->psk_file);
    g_free(e->tmpdir);
    g_free(e);
}

struct serve_args {
    struct nbdsrv *srv;
    int fd;
};

static gpointer
serve(gpointer p)
{
    struct serve_args *a = p;

    nbdsrv_conn_run(a->srv, a->fd, "unit-test");
    g_free(a);
    return NULL;
}

/* Start serving one end of a socketpair; returns the client end. */
static int
start_conn(struct env *e, GThread **thread)
{
    int sv[2];

    g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), ==, 0);
    struct serve_args *a = g_new(struct serve_args, 1);
    a->srv = e->srv;
    a->fd = sv[0];
    *thread = g_thread_new("nbd-conn", serve, a);
    return sv[1];
}

/* ---- libnbd client ---- */

struct client {
    struct nbd_handle *h;
    GThread *thread;
};

static void
client_open(struct env *e, struct client *c, const char *export, bool structured)
{
    c->h = nbd_create();
    g_assert_nonnull(c->h);
    nbd_set_strict_mode(c->h, 0); /* let bad requests reach the server */
    nbd_set_full_info(c->h, true);
    nbd_set_request_structured_replies(c->h, structured);
    if (structured) {
        nbd_add_meta_context(c->h, "base:allocation");
        nbd_add_meta_context(c->h, "ovgate:overlay");
    }
    nbd_set_export_name(c->h, export);
    int fd = start_conn(e, &c->thread);
    if (nbd_connect_socket(c->h, fd) == -1)
        g_error("connect %s: %s", export, nbd_get_error());
}

static void
client_close(struct client *c)
{
    nbd_shutdown(c->h, 0);
    nbd_close(c->h);
    g_thread_join(c->thread);
}

static void
test_info(void)
{
    struct env *e = env_new(false, false);
    struct client c;

    client_open(e, &c, "img/c1", true);
    g_assert_cmpint(nbd_get_size(c.h), ==, DISK_SIZE);
    g_assert_cmpint(nbd_is_read_only(c.h), ==, 0);
    g_assert_cmpint(nbd_can_flush(c.h), ==, 1);
    g_assert_cmpint(nbd_can_fua(c.h), ==, 1);
    g_assert_cmpint(nbd_can_trim(c.h), ==, 1);
    g_assert_cmpint(nbd_can_zero(c.h), ==, 1);
    g_assert_cmpint(nbd_can_fast_zero(c.h), ==, 1);
    g_assert_cmpint(nbd_can_cache(c.h), ==, 1);
    g_assert_cmpint(nbd_can_df(c.h), ==, 1);
    g_assert_cmpint(nbd_can_multi_conn(c.h), ==, 0);
    g_assert_cmpint(nbd_can_meta_context(c.h, "base:allocation"), ==, 1);
    g_assert_cmpint(nbd_can_meta_context(c.h, "ovgate:overlay"), ==, 1);
    g_assert_cmpint(nbd_get_block_size(c.h, LIBNBD_SIZE_MINIMUM), ==, 1);
    g_assert_cmpint(nbd_get_block_size(c.h, LIBNBD_SIZE_PREFERRED), ==, NBDT_GRANULE);
    g_assert_cmpint(nbd_get_block_size(c.h, LIBNBD_SIZE_MAXIMUM), ==, NBDSRV_MAX_PAYLOAD);
    g_autofree char *desc = nbd_get_export_description(c.h);
    g_assert_cmpstr(desc, ==, "test disk img/c1");
    g_autofree char *name = nbd_get_canonical_export_name(c.h);
    g_assert_cmpstr(name, ==, "img/c1");
    client_close(&c);

    client_open(e, &c, "img", false);
    g_assert_cmpint(nbd_is_read_only(c.h), ==, 1);
    g_assert_cmpint(nbd_can_multi_conn(c.h), ==, 1);
    g_assert_cmpint(nbd_can_trim(c.h), ==, 0);
    g_assert_cmpint(nbd_can_df(c.h), ==, 0);
    client_close(&c);
    env_free(e);
}

static void
fill_pattern(uint8_t *buf, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(i * 31 + seed + i / 511);
}

static void
test_read_write(gconstpointer structured_p)
{
    bool structured = GPOINTER_TO_INT(structured_p);
    struct env *e = env_new(false, false);
    struct client c;
    g_autofree uint8_t *w = g_malloc(300000), *r = g_malloc(DISK_SIZE);

    client_open(e, &c, "img/c1", structured);
    /* base content comes through, holes read as zeros */
    g_assert_cmpint(nbd_pread(c.h, r, DISK_SIZE, 0, 0), ==, 0);
    g_assert_cmpmem(r, DISK_SIZE, e->exports->c1->data, DISK_SIZE);
    g_assert_cmpuint(r[5 * NBDT_GRANULE + 17], ==, 0);
    g_assert_cmpuint(r[100], ==, nbdt_base_byte(100));

    fill_pattern(w, 300000, 3);
    g_assert_cmpint(nbd_pwrite(c.h, w, 300000, 12345, 0), ==, 0);
    g_assert_cmpint(nbd_pwrite(c.h, w, 1000, 700000, LIBNBD_CMD_FLAG_FUA), ==, 0);
    g_assert_cmpint(nbd_flush(c.h, 0), ==, 0);
    g_assert_cmpint(nbd_pread(c.h, r, 300000, 12345, 0), ==, 0);
    g_assert_cmpmem(r, 300000, w, 300000);
    g_assert_cmpint(nbd_pread(c.h, r, 1000, 700000, 0), ==, 0);
    g_assert_cmpmem(r, 1000, w, 1000);
    g_assert_cmpuint(e->exports->c1->flushes, >=, 2);
    /* an unaligned read across written and base bytes */
    g_assert_cmpint(nbd_pread(c.h, r, 777, 12000, 0), ==, 0);
    g_assert_cmpmem(r, 777, e->exports->c1->data + 12000, 777);
    g_assert_cmpint(nbd_cache(c.h, 65536, 0, 0), ==, 0);
    client_close(&c);
    env_free(e);
}

static void
test_errors(void)
{
    struct env *e = env_new(false, false);
    struct client c;
    uint8_t buf[4096] = {0};

    client_open(e, &c, "img", true);
    g_assert_cmpint(nbd_pwrite(c.h, buf, 4096, 0, 0), ==, -1);
    g_assert_cmpint(nbd_get_errno(), ==, EPERM);
    g_assert_cmpint(nbd_trim(c.h, 4096, 0, 0), ==, -1);
    g_assert_cmpint(nbd_get_errno(), ==, EPERM);
    g_assert_cmpint(nbd_pread(c.h, buf, 4096, DISK_SIZE - 100, 0), ==, -1);
    g_assert_cmpint(nbd_get_errno(), ==, EINVAL);
    /* the connection is still usable */
    g_assert_cmpint(nbd_pread(c.h, buf, 4096, 0, 0), ==, 0);
    g_assert_cmpuint(buf[1], ==, nbdt_base_byte(1));
    client_close(&c);

    client_open(e, &c, "img/c1", false);
    g_assert_cmpint(nbd_pwrite(c.h, buf, 4096, DISK_SIZE - 100, 0), ==, -1);
    g_assert_cmpint(nbd_get_errno(), ==, ENOSPC);
    g_assert_cmpint(nbd_pread(c.h, buf, 0, 0, 0), ==, -1);
    g_assert_cmpint(nbd_get_errno(), ==, EINVAL);
    g_assert_cmpint(nbd_pread(c.h, buf, 4096, 4096, 0), ==, 0);
    client_close(&c);

    /* unknown export: NBD_REP_ERR_UNKNOWN, the client gives up */
    struct nbd_handle *h = nbd_create();
    GThread *t;
    nbd_set_export_name(h, "nope");
    g_assert_cmpint(nbd_connect_socket(h, start_conn(e, &t)), ==, -1);
    nbd_close(h);
    g_thread_join(t);
    env_free(e);
}

struct extents {
    char *ctx[4];
    uint32_t entries[4][64];
    size_t n[4];
    int count;
};

static int
extent_cb(void *user_data, const char *metacontext, uint64_t offset, uint32_t *entries,
          size_t nr_entries, int *error)
{
    struct extents *x = user_data;

    g_assert_cmpint(x->count, <, 4);
    x->ctx[x->count] = g_strdup(metacontext);
    x->n[x->count] = MIN(nr_entries, (size_t)64);
    memcpy(x->entries[x->count], entries, x->n[x->count] * sizeof(uint32_t));
    x->count++;
    return 0;
}

static const uint32_t *
extents_of(struct extents *x, const char *ctx, size_t *n)
{
    for (int i = 0; i < x->count; i++) {
        if (strcmp(x->ctx[i], ctx) == 0) {
            *n = x->n[i];
            return x->entries[i];
        }
    }
    g_error("no extents for %s", ctx);
}

static void
extents_clear(struct extents *x)
{
    for (int i = 0; i < x->count; i++)
        g_free(x->ctx[i]);
    memset(x, 0, sizeof(*x));
}

static void
test_block_status(void)
{
    struct env *e = env_new(false, false);
    struct client c;
    struct extents x = {0};
    size_t n;
    const uint32_t *ent;
    uint8_t buf[8192];

    client_open(e, &c, "img/c1", true);
    /* fresh: base data [0,16K), base hole [16K,32K), base data to 64K */
    g_assert_cmpint(nbd_block_status(c.h, 65536, 0,
                                     (nbd_extent_callback){.callback = extent_cb, .user_data = &x},
                                     0),
                    ==, 0);
    ent = extents_of(&x, "base:allocation", &n);
    g_assert_cmpuint(n, ==, 6);
    g_assert_cmpuint(ent[0], ==, 16384);
    g_assert_cmpuint(ent[1], ==, 0);
    g_assert_cmpuint(ent[2], ==, 16384);
    g_assert_cmpuint(ent[3], ==, NBD_STATE_HOLE | NBD_STATE_ZERO);
    g_assert_cmpuint(ent[4], ==, 32768);
    ent = extents_of(&x, "ovgate:overlay", &n);
    g_assert_cmpuint(n, ==, 2);
    g_assert_cmpuint(ent[0], ==, 65536);
    g_assert_cmpuint(ent[1], ==, 0);
    extents_clear(&x);

    /* write 8K at 0, trim 8K at 8K: overlay data, then overlay zero */
    memset(buf, 0xaa, sizeof(buf));
    g_assert_cmpint(nbd_pwrite(c.h, buf, 8192, 0, 0), ==, 0);
    g_assert_cmpint(nbd_trim(c.h, 8192, 8192, 0), ==, 0);
    g_assert_cmpint(nbd_pread(c.h, buf, 8192, 8192, 0), ==, 0);
    for (size_t i = 0; i < sizeof(buf); i++)
        g_assert_cmpuint(buf[i], ==, 0);
    g_assert_cmpint(nbd_block_status(c.h, 20480, 0,
                                     (nbd_extent_callback){.callback = extent_cb, .user_data = &x},
                                     0),
                    ==, 0);
    ent = extents_of(&x, "ovgate:overlay", &n);
    g_assert_cmpuint(n, ==, 6);
    g_assert_cmpuint(ent[0], ==, 8192);
    g_assert_cmpuint(ent[1], ==, OVGATE_STATE_OVERLAY);
    g_assert_cmpuint(ent[2], ==, 8192);
    g_assert_cmpuint(ent[3], ==, OVGATE_STATE_OVERLAY | OVGATE_STATE_ZERO);
    g_assert_cmpuint(ent[4], ==, 4096);
    g_assert_cmpuint(ent[5], ==, 0);
    ent = extents_of(&x, "base:allocation", &n);
    g_assert_cmpuint(ent[0], ==, 8192);
    g_assert_cmpuint(ent[1], ==, 0);
    g_assert_cmpuint(ent[2], ==, 12288); /* trimmed 8K + base hole 4K merge */
    g_assert_cmpuint(ent[3], ==, NBD_STATE_HOLE | NBD_STATE_ZERO);
    extents_clear(&x);

    /* REQ_ONE: one descriptor per context, never longer than asked */
    g_assert_cmpint(nbd_block_status(c.h, 65536, 4096,
                                     (nbd_extent_callback){.callback = extent_cb, .user_data = &x},
                                     LIBNBD_CMD_FLAG_REQ_ONE),
                    ==, 0);
    g_assert_cmpint(x.count, ==, 2);
    ent = extents_of(&x, "base:allocation", &n);
    g_assert_cmpuint(n, ==, 2);
    g_assert_cmpuint(ent[0], ==, 4096);
    ent = extents_of(&x, "ovgate:overlay", &n);
    g_assert_cmpuint(n, ==, 2);
    g_assert_cmpuint(ent[0], ==, 4096);
    extents_clear(&x);

    /* past the end: EINVAL */
    g_assert_cmpint(nbd_block_status(c.h, 8192, DISK_SIZE - 4096,
                                     (nbd_extent_callback){.callback = extent_cb, .user_data = &x},
                                     0),
                    ==, -1);
    g_assert_cmpint(nbd_get_errno(), ==, EINVAL);
    extents_clear(&x);
    client_close(&c);
    env_free(e);
}

static void
test_write_zeroes(void)
{
    struct env *e = env_new(false, false);
    struct client c;
    g_autofree uint8_t *buf = g_malloc(65536);

    client_open(e, &c, "img/c1", true);
    g_assert_cmpint(nbd_zero(c.h, 100, 65536 - 100, LIBNBD_CMD_FLAG_NO_HOLE), ==, 0);
    g_assert_cmpint(nbd_zero(c.h, 200000, 4096, LIBNBD_CMD_FLAG_FAST_ZERO | LIBNBD_CMD_FLAG_FUA),
                    ==, 0);
    g_assert_cmpint(nbd_pread(c.h, buf, 65536, 4096, 0), ==, 0);
    for (size_t i = 0; i < 65536; i++)
        g_assert_cmpuint(buf[i], ==, 0);
    g_assert_cmpint(nbd_zero(c.h, 4096, DISK_SIZE, 0), ==, -1);
    g_assert_cmpint(nbd_get_errno(), ==, ENOSPC);
    client_close(&c);

    /* an export where zeroing is slow fails FAST_ZERO at once */
    client_open(e, &c, "img/slow", true);
    g_assert_cmpint(nbd_zero(c.h, 65536, 0, LIBNBD_CMD_FLAG_FAST_ZERO), ==, -1);
    g_assert_cmpint(nbd_get_errno(), ==, ENOTSUP);
    g_assert_cmpuint(e->exports->slow->data[1], ==, nbdt_base_byte(1));
    g_assert_cmpint(nbd_zero(c.h, 65536, 0, 0), ==, 0);
    g_assert_cmpuint(e->exports->slow->data[1], ==, 0);
    client_close(&c);
    env_free(e);
}

struct chunks {
    int data, hole;
    uint64_t covered;
};

static int
chunk_cb(void *user_data, const void *subbuf, size_t count, uint64_t offset, unsigned status,
         int *error)
{
    struct chunks *k = user_data;
    const uint8_t *p = subbuf;

    if (status == LIBNBD_READ_DATA)
        k->data++;
    else if (status == LIBNBD_READ_HOLE)
        k->hole++;
    for (size_t i = 0; status == LIBNBD_READ_HOLE && i < count; i++)
        g_assert_cmpuint(p[i], ==, 0);
    k->covered += count;
    return 0;
}

static void
test_read_holes(void)
{
    struct env *e = env_new(false, false);
    struct client c;
    g_autofree uint8_t *buf = g_malloc(131072);
    struct chunks k = {0};

    client_open(e, &c, "img", true);
    /* [0,128K) holds the base hole [16K,32K): one hole chunk, data around */
    g_assert_cmpint(
        nbd_pread_structured(c.h, buf, 131072, 0,
                             (nbd_chunk_callback){.callback = chunk_cb, .user_data = &k}, 0),
        ==, 0);
    g_assert_cmpint(k.hole, ==, 1);
    g_assert_cmpint(k.data, ==, 2);
    g_assert_cmpuint(k.covered, ==, 131072);
    g_assert_cmpmem(buf, 131072, e->exports->img->data, 131072);
    /* DF: a single content chunk */
    memset(&k, 0, sizeof(k));
    g_assert_cmpint(
        nbd_pread_structured(c.h, buf, 131072, 0,
                             (nbd_chunk_callback){.callback = chunk_cb, .user_data = &k},
                             LIBNBD_CMD_FLAG_DF),
        ==, 0);
    g_assert_cmpint(k.data, ==, 1);
    g_assert_cmpint(k.hole, ==, 0);
    g_assert_cmpmem(buf, 131072, e->exports->img->data, 131072);
    client_close(&c);
    env_free(e);
}

/* Large reads go out zero-copy (memdisk read_segments + sendfile): many in
 * flight at once so that file segments and headers share one flush; a
 * read of more than VIEW_MAX_SEGMENTS runs falls back to the copy path. */
static void
test_read_zero_copy(gconstpointer structured_p)
{
    struct env *e = env_new(false, false);
    struct client c;
    enum { N = 8, LEN = 300000 }; /* above VIEW_ZC_FILE_MIN */
    g_autofree uint8_t *buf = g_malloc((size_t)N * LEN);
    int64_t cookie[N];

    client_open(e, &c, "img/c1", GPOINTER_TO_INT(structured_p) != 0);
    /* every other granule of [256K, 512K) zeroed: 32 zero runs */
    for (uint64_t g = 64; g < 128; g += 2)
        g_assert_cmpint(nbd_zero(c.h, NBDT_GRANULE, g * NBDT_GRANULE, 0), ==, 0);
    for (int i = 0; i < N; i++) {
        cookie[i] = nbd_aio_pread(c.h, buf + (size_t)i * LEN, LEN, (uint64_t)i * 99999,
                                  NBD_NULL_COMPLETION, 0);
        g_assert_cmpint(cookie[i], >, 0);
    }
    for (int i = 0; i < N; i++) {
        while (nbd_aio_command_completed(c.h, (uint64_t)cookie[i]) == 0)
            g_assert_cmpint(nbd_poll(c.h, -1), >=, 0);
        g_assert_cmpmem(buf + (size_t)i * LEN, LEN, e->exports->c1->data + (size_t)i * 99999, LEN);
    }
    g_assert_cmpint(nbd_pread(c.h, buf, 262144, 262144, 0), ==, 0);
    g_assert_cmpmem(buf, 262144, e->exports->c1->data + 262144, 262144);
    client_close(&c);
    env_free(e);
}

static gpointer
io_flush_thread(gpointer io)
{
    return GINT_TO_POINTER(nbdsrv_io_flush(io));
}

/* The reply queue on its own: file segments between memory segments come
 * out in order with the right bytes (from an unaligned file offset), and a
 * dropped queue closes the descriptors it owns. */
static void
test_io_file_segments(void)
{
    enum { FLEN = 300000, OFF = 4097, LEN = 250000 };
    g_autofree uint8_t *content = g_malloc(FLEN);
    g_autofree uint8_t *got = g_malloc(LEN + 16);
    struct nbdsrv_io io;
    int sv[2], mfd = memfd_create("io-test", MFD_CLOEXEC);
    size_t have = 0;

    g_assert_cmpint(mfd, >=, 0);
    for (size_t i = 0; i < FLEN; i++)
        content[i] = (uint8_t)(i * 13 + i / 1000);
    g_assert_cmpint(pwrite(mfd, content, FLEN, 0), ==, FLEN);
    g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), ==, 0);
    nbdsrv_io_init(&io, sv[0]);
    memcpy(nbdsrv_io_put(&io, 3), "HDR", 3);
    nbdsrv_io_put_file(&io, dup(mfd), OFF, LEN);
    memcpy(nbdsrv_io_put(&io, 4), "TAIL", 4);
    /* the peer reads while we send: the socket buffer is smaller */
    GThread *t = g_thread_new("io-send", io_flush_thread, &io);
    while (have < LEN + 7) {
        ssize_t r = read(sv[1], got + have, LEN + 16 - have);
        g_assert_cmpint(r, >, 0);
        have += (size_t)r;
    }
    g_assert_cmpint(GPOINTER_TO_INT(g_thread_join(t)), ==, 0);
    g_assert_cmpuint(have, ==, LEN + 7);
    g_assert_cmpmem(got, 3, "HDR", 3);
    g_assert_cmpmem(got + 3, LEN, content + OFF, LEN);
    g_assert_cmpmem(got + 3 + LEN, 4, "TAIL", 4);

    int fd = dup(mfd);
    nbdsrv_io_put_file(&io, fd, 0, 10);
    nbdsrv_io_discard(&io);
    g_assert_cmpint(fcntl(fd, F_GETFD), ==, -1);
    nbdsrv_io_clear(&io);
    close(sv[0]);
    close(sv[1]);
    close(mfd);
}

static int
list_cb(void *user_data, const char *name, const char *description)
{
    GPtrArray *names = user_data;

    g_ptr_array_add(names, g_strdup_printf("%s=%s", name, description));
    return 0;
}

static int
context_cb(void *user_data, const char *name)
{
    g_ptr_array_add(user_data, g_strdup(name));
    return 0;
}

static void
test_options(void)
{
    struct env *e = env_new(false, false);
    struct nbd_handle *h = nbd_create();
    g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
    GThread *t;

    nbd_set_opt_mode(h, true);
    g_assert_cmpint(nbd_connect_socket(h, start_conn(e, &t)), ==, 0);
    g_assert_cmpint(nbd_opt_list(h, (nbd_list_callback){.callback = list_cb, .user_data = names}),
                    ==, 1);
    g_assert_cmpstr(names->pdata[0], ==, "img=test image");
    g_ptr_array_set_size(names, 0);
    nbd_set_export_name(h, "img/c1");
    g_assert_cmpint(nbd_opt_list_meta_context(
                        h, (nbd_context_callback){.callback = context_cb, .user_data = names}),
                    ==, 2);
    g_assert_cmpstr(names->pdata[0], ==, "base:allocation");
    g_assert_cmpstr(names->pdata[1], ==, "ovgate:overlay");
    g_assert_cmpint(nbd_opt_info(h), ==, 0);
    g_assert_cmpint(nbd_get_size(h), ==, DISK_SIZE);
    nbd_set_export_name(h, "missing");
    g_assert_cmpint(nbd_opt_info(h), ==, -1);
    nbd_set_export_name(h, "img");
    g_assert_cmpint(nbd_opt_go(h), ==, 0);
    g_assert_cmpint(nbd_is_read_only(h), ==, 1);
    nbd_shutdown(h, 0);
    nbd_close(h);
    g_thread_join(t);
    env_free(e);
}

static void
test_tls_psk(void)
{
    struct env *e = env_new(true, true);
    struct client c;
    uint8_t buf[512];

    /* alice over TLS may use img/tls */
    c.h = nbd_create();
    nbd_set_tls(c.h, LIBNBD_TLS_REQUIRE);
    nbd_set_tls_username(c.h, "alice");
    g_assert_cmpint(nbd_set_tls_psk_file(c.h, e->psk_file), ==, 0);
    nbd_set_export_name(c.h, "img/tls");
    if (nbd_connect_socket(c.h, start_conn(e, &c.thread)) == -1)
        g_error("TLS connect: %s", nbd_get_error());
    g_assert_cmpint(nbd_get_tls_negotiated(c.h), ==, 1);
    g_assert_cmpint(nbd_pwrite(c.h, "tls!", 4, 0, 0), ==, 0);
    g_assert_cmpint(nbd_pread(c.h, buf, 512, 0, 0), ==, 0);
    g_assert_cmpmem(buf, 4, "tls!", 4);
    client_close(&c);

    /* bob has a valid key but is not bound to img/tls */
    c.h = nbd_create();
    nbd_set_tls(c.h, LIBNBD_TLS_REQUIRE);
    nbd_set_tls_username(c.h, "bob");
    g_assert_cmpint(nbd_set_tls_psk_file(c.h, e->psk_file), ==, 0);
    nbd_set_export_name(c.h, "img/tls");
    g_assert_cmpint(nbd_connect_socket(c.h, start_conn(e, &c.thread)), ==, -1);
    nbd_close(c.h);
    g_thread_join(c.thread);

    /* no TLS at all while the server requires it: refused */
    c.h = nbd_create();
    nbd_set_tls(c.h, LIBNBD_TLS_DISABLE);
    nbd_set_export_name(c.h, "img");
    g_assert_cmpint(nbd_connect_socket(c.h, start_conn(e, &c.thread)), ==, -1);
    nbd_close(c.h);
    g_thread_join(c.thread);
    env_free(e);
}

/* ---- raw peers ---- */

static void
raw_send(int fd, const void *p, size_t len)
{
    const uint8_t *b = p;
    while (len > 0) {
        ssize_t r = send(fd, b, len, MSG_NOSIGNAL);
        g_assert_cmpint(r, >, 0);
        b += r;
        len -= (size_t)r;
    }
}

/* Read exactly len bytes (5 s bound); false at end of stream. */
static bool
raw_recv(int fd, void *p, size_t len)
{
    uint8_t *b = p;
    while (len > 0) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        g_assert_cmpint(poll(&pfd, 1, 5000), ==, 1);
        ssize_t r = recv(fd, b, len, 0);
        if (r <= 0)
            return false;
        b += r;
        len -= (size_t)r;
    }
    return true;
}

static bool
raw_at_eof(int fd)
{
    uint8_t b;
    return !raw_recv(fd, &b, 1);
}

static int
raw_open(struct env *e, GThread **t, uint32_t cflags)
{
    int fd = start_conn(e, t);
    uint8_t greet[18], f[4];

    g_assert_true(raw_recv(fd, greet, 18));
    g_assert_cmphex(nbdsrv_get_be64(greet), ==, NBD_MAGIC_INIT_PASSWD);
    g_assert_cmphex(nbdsrv_get_be64(greet + 8), ==, NBD_MAGIC_IHAVEOPT);
    g_assert_cmphex(nbdsrv_get_be16(greet + 16), ==, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
    nbdsrv_put_be32(f, cflags);
    raw_send(fd, f, 4);
    return fd;
}

static void
raw_close(int fd, GThread *t)
{
    close(fd);
    g_thread_join(t);
}

static void
raw_option(int fd, uint32_t opt, const void *data, uint32_t len)
{
    uint8_t h[16];
    nbdsrv_put_be64(h, NBD_MAGIC_IHAVEOPT);
    nbdsrv_put_be32(h + 8, opt);
    nbdsrv_put_be32(h + 12, len);
    raw_send(fd, h, 16);
    if (len && data)
        raw_send(fd, data, len);
}

/* Reads one option reply; returns its type, payload in *data (g_free). */
static uint32_t
raw_reply(int fd, uint32_t opt, uint8_t **data, uint32_t *len)
{
    uint8_t h[20];
    g_assert_true(raw_recv(fd, h, 20));
    g_assert_cmphex(nbdsrv_get_be64(h), ==, NBD_MAGIC_REP);
    g_assert_cmpuint(nbdsrv_get_be32(h + 8), ==, opt);
    uint32_t l = nbdsrv_get_be32(h + 16);
    g_assert_cmpuint(l, <=, 65536);
    uint8_t *d = g_malloc(l + 1);
    g_assert_true(raw_recv(fd, d, l));
    d[l] = 0;
    if (data)
        *data = d;
    else
        g_free(d);
    if (len)
        *len = l;
    return nbdsrv_get_be32(h + 12);
}

static void
test_raw_handshake(void)
{
    struct env *e = env_new(false, false);
    GThread *t;
    int fd;

    /* unknown client flag: dropped */
    fd = raw_open(e, &t, NBD_FLAG_C_FIXED_NEWSTYLE | 0x100);
    g_assert_true(raw_at_eof(fd));
    raw_close(fd, t);
    /* not fixed newstyle: dropped */
    fd = raw_open(e, &t, 0);
    g_assert_true(raw_at_eof(fd));
    raw_close(fd, t);

    fd = raw_open(e, &t, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
    raw_option(fd, 99, "abc", 3);
    g_assert_cmphex(raw_reply(fd, 99, NULL, NULL), ==, NBD_REP_ERR_UNSUP);
    raw_option(fd, NBD_OPT_STARTTLS, NULL, 0); /* no TLS configured: POLICY */
    g_assert_cmphex(raw_reply(fd, NBD_OPT_STARTTLS, NULL, NULL), ==, NBD_REP_ERR_POLICY);
    raw_option(fd, NBD_OPT_LIST, "x", 1);
    g_assert_cmphex(raw_reply(fd, NBD_OPT_LIST, NULL, NULL), ==, NBD_REP_ERR_INVALID);
    uint8_t meta[12] = {0};
    raw_option(fd, NBD_OPT_LIST_META_CONTEXT, meta, 8); /* before structured replies */
    g_assert_cmphex(raw_reply(fd, NBD_OPT_LIST_META_CONTEXT, NULL, NULL), ==, NBD_REP_ERR_INVALID);
    /* too big to take: answered TOO_BIG after the data was skipped */
    g_autofree uint8_t *big = g_malloc0(NBDSRV_OPT_MAX_LEN + 1);
    raw_option(fd, NBD_OPT_GO, big, NBDSRV_OPT_MAX_LEN + 1);
    g_assert_cmphex(raw_reply(fd, NBD_OPT_GO, NULL, NULL), ==, NBD_REP_ERR_TOO_BIG);
    /* GO of an unknown export: UNKNOWN with a message */
    uint8_t go[4 + 4 + 2];
    nbdsrv_put_be32(go, 4);
    memcpy(go + 4, "nope", 4);
    nbdsrv_put_be16(go + 8, 0);
    raw_option(fd, NBD_OPT_GO, go, sizeof(go));
    uint8_t *msg;
    g_assert_cmphex(raw_reply(fd, NBD_OPT_GO, &msg, NULL), ==, NBD_REP_ERR_UNKNOWN);
    g_assert_nonnull(strstr((char *)msg, "nope"));
    g_free(msg);
    /* malformed GO (count disagrees with length) */
    nbdsrv_put_be16(go + 8, 3);
    raw_option(fd, NBD_OPT_GO, go, sizeof(go));
    g_assert_cmphex(raw_reply(fd, NBD_OPT_GO, NULL, NULL), ==, NBD_REP_ERR_INVALID);
    /* still a working session: LIST, then ABORT */
    raw_option(fd, NBD_OPT_LIST, NULL, 0);
    uint8_t *srv;
    uint32_t len;
    g_assert_cmphex(raw_reply(fd, NBD_OPT_LIST, &srv, &len), ==, NBD_REP_SERVER);
    g_assert_cmpuint(nbdsrv_get_be32(srv), ==, 3);
    g_assert_cmpmem(srv + 4, 3, "img", 3);
    g_free(srv);
    g_assert_cmphex(raw_reply(fd, NBD_OPT_LIST, NULL, NULL), ==, NBD_REP_ACK);
    raw_option(fd, NBD_OPT_ABORT, NULL, 0);
    g_assert_cmphex(raw_reply(fd, NBD_OPT_ABORT, NULL, NULL), ==, NBD_REP_ACK);
    g_assert_true(raw_at_eof(fd));
    raw_close(fd, t);

    /* an option longer than we would even drain: dropped */
    fd = raw_open(e, &t, NBD_FLAG_C_FIXED_NEWSTYLE);
    raw_option(fd, NBD_OPT_INFO, NULL, NBDSRV_OPT_DRAIN_MAX + 1);
    g_assert_true(raw_at_eof(fd));
    raw_close(fd, t);
    /* bad option magic: dropped */
    fd = raw_open(e, &t, NBD_FLAG_C_FIXED_NEWSTYLE);
    raw_send(fd, "IHAVEOPX\0\0\0\3\0\0\0\0", 16);
    g_assert_true(raw_at_eof(fd));
    raw_close(fd, t);
    /* EXPORT_NAME of an unknown export: dropped (no error reply exists) */
    fd = raw_open(e, &t, NBD_FLAG_C_FIXED_NEWSTYLE);
    raw_option(fd, NBD_OPT_EXPORT_NAME, "nope", 4);
    g_assert_true(raw_at_eof(fd));
    raw_close(fd, t);
    env_free(e);
}

static void
raw_request(int fd, uint16_t flags, uint16_t type, uint64_t handle, uint64_t off, uint32_t len)
{
    uint8_t h[NBD_REQUEST_LEN];
    nbdsrv_put_be32(h, NBD_REQUEST_MAGIC);
    nbdsrv_put_be16(h + 4, flags);
    nbdsrv_put_be16(h + 6, type);
    nbdsrv_put_be64(h + 8, handle);
    nbdsrv_put_be64(h + 16, off);
    nbdsrv_put_be32(h + 24, len);
    raw_send(fd, h, sizeof(h));
}

static uint32_t
raw_simple_reply(int fd, uint64_t handle)
{
    uint8_t r[NBD_SIMPLE_REPLY_LEN];
    g_assert_true(raw_recv(fd, r, sizeof(r)));
    g_assert_cmphex(nbdsrv_get_be32(r), ==, NBD_SIMPLE_REPLY_MAGIC);
    g_assert_cmphex(nbdsrv_get_be64(r + 8), ==, handle);
    return nbdsrv_get_be32(r + 4);
}

static void
test_raw_transmission(void)
{
    struct env *e = env_new(false, false);
    GThread *t;
    int fd = raw_open(e, &t, NBD_FLAG_C_FIXED_NEWSTYLE);
    uint8_t info[10 + 124];

    /* EXPORT_NAME without NO_ZEROES: size, flags, 124 zero bytes */
    raw_option(fd, NBD_OPT_EXPORT_NAME, "img/c1", 6);
    g_assert_true(raw_recv(fd, info, sizeof(info)));
    g_assert_cmpuint(nbdsrv_get_be64(info), ==, DISK_SIZE);
    g_assert_true(nbdsrv_get_be16(info + 8) & NBD_FLAG_SEND_TRIM);

    /* oversized write: its payload is consumed, EINVAL, and we go on */
    g_autofree uint8_t *big = g_malloc0(NBDSRV_MAX_PAYLOAD + 1);
    raw_request(fd, 0, NBD_CMD_WRITE, 1, 0, NBDSRV_MAX_PAYLOAD + 1);
    raw_send(fd, big, NBDSRV_MAX_PAYLOAD + 1);
    g_assert_cmpuint(raw_simple_reply(fd, 1), ==, NBD_EINVAL);
    /* write past the end: ENOSPC, payload consumed */
    raw_request(fd, 0, NBD_CMD_WRITE, 2, DISK_SIZE - 10, 100);
    raw_send(fd, big, 100);
    g_assert_cmpuint(raw_simple_reply(fd, 2), ==, NBD_ENOSPC);
    /* unknown command and unknown flag: EINVAL */
    raw_request(fd, 0, 42, 3, 0, 0);
    g_assert_cmpuint(raw_simple_reply(fd, 3), ==, NBD_EINVAL);
    raw_request(fd, 1u << 9, NBD_CMD_READ, 4, 0, 512);
    g_assert_cmpuint(raw_simple_reply(fd, 4), ==, NBD_EINVAL);
    /* block status without contexts: EINVAL */
    raw_request(fd, 0, NBD_CMD_BLOCK_STATUS, 5, 0, 512);
    g_assert_cmpuint(raw_simple_reply(fd, 5), ==, NBD_EINVAL);
    /* pipelined: a write and a read in one send, answered in order */
    raw_request(fd, NBD_CMD_FLAG_FUA, NBD_CMD_WRITE, 6, 8, 4);
    raw_send(fd, "wxyz", 4);
    raw_request(fd, 0, NBD_CMD_READ, 7, 8, 4);
    g_assert_cmpuint(raw_simple_reply(fd, 6), ==, 0);
    g_assert_cmpuint(raw_simple_reply(fd, 7), ==, 0);
    uint8_t got[4];
    g_assert_true(raw_recv(fd, got, 4));
    g_assert_cmpmem(got, 4, "wxyz", 4);
    /* bad request magic: dropped */
    raw_send(fd, "garbage-garbage-garbage-gar", NBD_REQUEST_LEN);
    g_assert_true(raw_at_eof(fd));
    raw_close(fd, t);
    env_free(e);
}

static GByteArray *
raw_meta_payload(const char *export, const char *query)
{
    GByteArray *b = g_byte_array_new();
    uint8_t n[4];

    nbdsrv_put_be32(n, (uint32_t)strlen(export));
    g_byte_array_append(b, n, 4);
    g_byte_array_append(b, (const uint8_t *)export, (guint)strlen(export));
    nbdsrv_put_be32(n, 1);
    g_byte_array_append(b, n, 4);
    nbdsrv_put_be32(n, (uint32_t)strlen(query));
    g_byte_array_append(b, n, 4);
    g_byte_array_append(b, (const uint8_t *)query, (guint)strlen(query));
    return b;
}

/* A failed NBD_OPT_SET_META_CONTEXT leaves no context selected. */
static void
test_raw_meta_reset(void)
{
    struct env *e = env_new(false, false);
    GThread *t;
    int fd = raw_open(e, &t, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
    g_autoptr(GByteArray) good = raw_meta_payload("img", "base:allocation");
    g_autoptr(GByteArray) bad = raw_meta_payload("nope", "base:allocation");
    uint8_t go[4 + 3 + 2], *data;
    uint32_t len;

    raw_option(fd, NBD_OPT_STRUCTURED_REPLY, NULL, 0);
    g_assert_cmphex(raw_reply(fd, NBD_OPT_STRUCTURED_REPLY, NULL, NULL), ==, NBD_REP_ACK);
    raw_option(fd, NBD_OPT_SET_META_CONTEXT, good->data, good->len);
    g_assert_cmphex(raw_reply(fd, NBD_OPT_SET_META_CONTEXT, &data, &len), ==, NBD_REP_META_CONTEXT);
    g_assert_cmpuint(nbdsrv_get_be32(data), ==, 1);
    g_free(data);
    g_assert_cmphex(raw_reply(fd, NBD_OPT_SET_META_CONTEXT, NULL, NULL), ==, NBD_REP_ACK);
    raw_option(fd, NBD_OPT_SET_META_CONTEXT, bad->data, bad->len);
    g_assert_cmphex(raw_reply(fd, NBD_OPT_SET_META_CONTEXT, NULL, NULL), ==, NBD_REP_ERR_UNKNOWN);
    nbdsrv_put_be32(go, 3);
    memcpy(go + 4, "img", 3);
    nbdsrv_put_be16(go + 7, 0);
    raw_option(fd, NBD_OPT_GO, go, sizeof(go));
    uint32_t type;
    while ((type = raw_reply(fd, NBD_OPT_GO, NULL, NULL)) == NBD_REP_INFO)
        ;
    g_assert_cmphex(type, ==, NBD_REP_ACK);
    raw_request(fd, 0, NBD_CMD_BLOCK_STATUS, 9, 0, 4096);
    uint8_t chunk[NBD_CHUNK_HDR_LEN + 6];
    g_assert_true(raw_recv(fd, chunk, sizeof(chunk)));
    g_assert_cmphex(nbdsrv_get_be32(chunk), ==, NBD_STRUCTURED_REPLY_MAGIC);
    g_assert_cmpuint(nbdsrv_get_be16(chunk + 6), ==, NBD_REPLY_TYPE_ERROR);
    g_assert_cmpuint(nbdsrv_get_be32(chunk + NBD_CHUNK_HDR_LEN), ==, NBD_EINVAL);
    raw_close(fd, t);
    env_free(e);
}

static void
test_raw_forced_tls(void)
{
    struct env *e = env_new(true, true);
    GThread *t;
    int fd = raw_open(e, &t, NBD_FLAG_C_FIXED_NEWSTYLE);

    raw_option(fd, NBD_OPT_LIST, NULL, 0);
    g_assert_cmphex(raw_reply(fd, NBD_OPT_LIST, NULL, NULL), ==, NBD_REP_ERR_TLS_REQD);
    raw_option(fd, NBD_OPT_STRUCTURED_REPLY, NULL, 0);
    g_assert_cmphex(raw_reply(fd, NBD_OPT_STRUCTURED_REPLY, NULL, NULL), ==, NBD_REP_ERR_TLS_REQD);
    raw_option(fd, NBD_OPT_EXPORT_NAME, "img", 3);
    g_assert_true(raw_at_eof(fd));
    raw_close(fd, t);

    /* STARTTLS acknowledged, then garbage instead of a ClientHello */
    fd = raw_open(e, &t, NBD_FLAG_C_FIXED_NEWSTYLE);
    raw_option(fd, NBD_OPT_STARTTLS, NULL, 0);
    g_assert_cmphex(raw_reply(fd, NBD_OPT_STARTTLS, NULL, NULL), ==, NBD_REP_ACK);
    raw_send(fd, "this is not TLS at all, sorry\n", 30);
    g_assert_true(raw_at_eof(fd));
    raw_close(fd, t);
    env_free(e);
}

/* A disk whose block status reports an empty extent and overshoots the
 * range: replies must still be exact (no empty descriptor or chunk, nothing
 * beyond the request). */
static void
test_quirky_extents(void)
{
    struct env *e = env_new(false, false);
    struct client c;
    struct extents x = {0};
    struct chunks k = {0};
    size_t n;
    g_autofree uint8_t *buf = g_malloc(98304);

    e->exports->img->quirky = true;
    client_open(e, &c, "img", true);
    g_assert_cmpint(nbd_block_status(c.h, 20000, 10000,
                                     (nbd_extent_callback){.callback = extent_cb, .user_data = &x},
                                     0),
                    ==, 0);
    const uint32_t *ent = extents_of(&x, "base:allocation", &n);
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i += 2) {
        g_assert_cmpuint(ent[i], >, 0);
        sum += ent[i];
    }
    g_assert_cmpuint(sum, ==, 20000);
    extents_clear(&x);
    g_assert_cmpint(
        nbd_pread_structured(c.h, buf, 98304, 1000,
                             (nbd_chunk_callback){.callback = chunk_cb, .user_data = &k}, 0),
        ==, 0);
    g_assert_cmpuint(k.covered, ==, 98304);
    g_assert_cmpmem(buf, 98304, e->exports->img->data + 1000, 98304);
    client_close(&c);
    env_free(e);
}

static void
test_handshake_timeout(void)
{
    struct env *e = env_new(false, false);
    GThread *t;

    e->srv->handshake_timeout_ms = 300;
    /* silent after the greeting: dropped */
    gint64 start = g_get_monotonic_time();
    int fd = raw_open(e, &t, NBD_FLAG_C_FIXED_NEWSTYLE);
    g_assert_true(raw_at_eof(fd));
    g_assert_cmpint(g_get_monotonic_time() - start, <, 4 * G_USEC_PER_SEC);
    raw_close(fd, t);

    /* transmission may idle longer than the negotiation limit */
    fd = raw_open(e, &t, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
    raw_option(fd, NBD_OPT_EXPORT_NAME, "img", 3);
    uint8_t info[10];
    g_assert_true(raw_recv(fd, info, sizeof(info)));
    g_usleep(700 * 1000);
    raw_request(fd, 0, NBD_CMD_READ, 1, 0, 8);
    g_assert_cmpuint(raw_simple_reply(fd, 1), ==, 0);
    uint8_t data[8];
    g_assert_true(raw_recv(fd, data, 8));
    g_assert_cmpuint(data[1], ==, nbdt_base_byte(1));
    raw_close(fd, t);
    env_free(e);
}

static void
test_shutdown(void)
{
    struct env *e = env_new(false, false);
    struct client c;
    uint8_t buf[512];

    client_open(e, &c, "img/c1", true);
    nbdsrv_shutdown(e->srv);
    g_thread_join(c.thread); /* the server side ends by itself */
    g_assert_cmpint(nbd_pread(c.h, buf, 512, 0, 0), ==, -1);
    nbd_close(c.h);
    env_free(e);
}

/* A connection accepted just before shutdown whose thread starts after
 * nbdsrv_shutdown() was never in the table that shutdown walked: it must
 * end at once, not sit in the negotiation until the handshake timeout (a
 * silent peer, e.g. a TCP health check, held the daemon's ordered shutdown
 * past its bound, so it exited without closing the disks). */
static void
test_conn_after_shutdown(void)
{
    struct env *e = env_new(false, false);
    GThread *t;
    uint8_t buf[64];
    gint64 start;
    int fd;

    e->srv->handshake_timeout_ms = 5000;
    nbdsrv_shutdown(e->srv);
    start = g_get_monotonic_time();
    fd = start_conn(e, &t);
    /* the peer says nothing; the server must hang up by itself */
    while (read(fd, buf, sizeof(buf)) > 0)
        ;
    g_assert_cmpint(g_get_monotonic_time() - start, <, 2 * G_USEC_PER_SEC);
    raw_close(fd, t);
    env_free(e);
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    signal(SIGPIPE, SIG_IGN); /* as the daemon: sendfile to a closed peer */
    g_test_add_func("/nbd/conn/info", test_info);
    g_test_add_data_func("/nbd/conn/read-write/structured", GINT_TO_POINTER(1), test_read_write);
    g_test_add_data_func("/nbd/conn/read-write/simple", GINT_TO_POINTER(0), test_read_write);
    g_test_add_func("/nbd/conn/errors", test_errors);
    g_test_add_func("/nbd/conn/block-status", test_block_status);
    g_test_add_func("/nbd/conn/write-zeroes", test_write_zeroes);
    g_test_add_func("/nbd/conn/read-holes", test_read_holes);
    g_test_add_data_func("/nbd/conn/read-zero-copy/structured", GINT_TO_POINTER(1),
                         test_read_zero_copy);
    g_test_add_data_func("/nbd/conn/read-zero-copy/simple", GINT_TO_POINTER(0),
                         test_read_zero_copy);
    g_test_add_func("/nbd/conn/io-file-segments", test_io_file_segments);
    g_test_add_func("/nbd/conn/options", test_options);
    g_test_add_func("/nbd/conn/tls-psk", test_tls_psk);
    g_test_add_func("/nbd/conn/raw-handshake", test_raw_handshake);
    g_test_add_func("/nbd/conn/raw-transmission", test_raw_transmission);
    g_test_add_func("/nbd/conn/raw-forced-tls", test_raw_forced_tls);
    g_test_add_func("/nbd/conn/raw-meta-reset", test_raw_meta_reset);
    g_test_add_func("/nbd/conn/shutdown", test_shutdown);
    g_test_add_func("/nbd/conn/after-shutdown", test_conn_after_shutdown);
    g_test_add_func("/nbd/conn/handshake-timeout", test_handshake_timeout);
    g_test_add_func("/nbd/conn/quirky-extents", test_quirky_extents);
    return g_test_run();
}
