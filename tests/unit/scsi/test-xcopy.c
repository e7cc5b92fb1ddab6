/* test-xcopy.c — EXTENDED COPY (LID1) and RECEIVE COPY RESULTS against a
 * real view: parameter list checks, copies within the LU, held results. */
#include <string.h>

#include "scsi-fixture.h"

#define FX_TEST(path, fn) g_test_add(path, struct fx, NULL, fx_setup, fn, fx_teardown)

#define HDR 16
#define CSCD 32
#define SEG 28

/* A parameter list being built: header, CSCD descriptors, segments. */
struct xlist {
    uint8_t buf[1024];
    unsigned n_cscd, n_seg;
    uint32_t len;
};

/* The LU's NAA designator from VPD page 83h (its first descriptor). */
static void
lu_naa(struct fx *f, uint8_t desig[20])
{
    uint8_t inq[16] = {0x12, 0x01, 0x83, 0x00, 255};
    struct sdev_cmd cmd;

    g_assert_true(fx_run(f->a, &cmd, inq, 6, NULL, 0));
    fx_assert_good(&cmd);
    g_assert_cmphex(cmd.data_in[5] & 0x0f, ==, 3); /* NAA */
    g_assert_cmpuint(cmd.data_in[7], ==, 16);
    memcpy(desig, cmd.data_in + 4, 20);
    sdev_cmd_clear(&cmd);
}

static void
xlist_init(struct xlist *x, uint8_t list_id, uint8_t usage)
{
    memset(x, 0, sizeof(*x));
    x->buf[0] = list_id;
    x->buf[1] = (uint8_t)(usage << 3);
}

/* Identification CSCD descriptor naming desig (our LU unless changed). */
static uint8_t *
xlist_cscd(struct xlist *x, const uint8_t desig[20])
{
    uint8_t *d = x->buf + HDR + CSCD * x->n_cscd++;
    d[0] = 0xe4;
    memcpy(d + 4, desig, 20);
    d[30] = 512 >> 8; /* DISK BLOCK LENGTH (24 bits at 29) */
    return d;
}

/* Segments follow the CSCD list, so add every CSCD first. */
static uint8_t *
xlist_seg(struct xlist *x, uint16_t src, uint16_t dst, uint16_t n, uint64_t slba, uint64_t dlba)
{
    uint8_t *d = x->buf + HDR + CSCD * x->n_cscd + SEG * x->n_seg++;
    d[0] = 0x02;
    fx_put_be16(d + 2, SEG - 4);
    fx_put_be16(d + 4, src);
    fx_put_be16(d + 6, dst);
    fx_put_be16(d + 10, n);
    fx_put_be64(d + 12, slba);
    fx_put_be64(d + 20, dlba);
    return d;
}

static void
xlist_finish(struct xlist *x)
{
    fx_put_be16(x->buf + 2, (uint16_t)(CSCD * x->n_cscd));
    fx_put_be32(x->buf + 8, SEG * x->n_seg);
    x->len = HDR + CSCD * x->n_cscd + SEG * x->n_seg;
}

/* Run EXTENDED COPY with plen bytes of x; returns the parse result. */
static bool
xcopy(struct sdev_nexus *n, struct sdev_cmd *cmd, const struct xlist *x, uint32_t plen)
{
    uint8_t cdb[16] = {0x83, 0x00};
    fx_put_be32(cdb + 10, plen);
    return fx_run(n, cmd, cdb, 16, plen ? x->buf : NULL, plen);
}

static void
write_fill(struct fx *f, uint64_t lba, uint16_t n, uint8_t fill)
{
    g_autofree uint8_t *buf = g_malloc((size_t)n * 512);
    uint8_t cdb[16];
    struct sdev_cmd cmd;

    memset(buf, fill, (size_t)n * 512);
    fx_cdb16(cdb, 0x8a, 0, lba, n);
    g_assert_true(fx_run(f->a, &cmd, cdb, 16, buf, (uint32_t)n * 512));
    fx_assert_good(&cmd);
}

/* Each block i of [lba, lba + n) is filled with byte fill + i (mod 256). */
static void
write_ramp(struct fx *f, uint64_t lba, uint16_t n, uint8_t fill)
{
    g_autofree uint8_t *buf = g_malloc((size_t)n * 512);
    uint8_t cdb[16];
    struct sdev_cmd cmd;

    for (size_t i = 0; i < (size_t)n * 512; i++)
        buf[i] = (uint8_t)(fill + i / 512);
    fx_cdb16(cdb, 0x8a, 0, lba, n);
    g_assert_true(fx_run(f->a, &cmd, cdb, 16, buf, (uint32_t)n * 512));
    fx_assert_good(&cmd);
}

static void
assert_blocks(struct fx *f, uint64_t lba, uint16_t n, uint8_t fill, bool ramp)
{
    uint8_t cdb[16];
    struct sdev_cmd cmd;

    fx_cdb16(cdb, 0x88, 0, lba, n);
    g_assert_true(fx_run(f->a, &cmd, cdb, 16, NULL, 0));
    fx_assert_good(&cmd);
    for (size_t i = 0; i < (size_t)n * 512; i++) {
        uint8_t want = (uint8_t)(ramp ? fill + i / 512 : fill);
        if (cmd.data_in[i] != want)
            g_error("LBA %" G_GUINT64_FORMAT " byte %zu: %02x, expected %02x", lba + i / 512,
                    i % 512, cmd.data_in[i], want);
    }
    sdev_cmd_clear(&cmd);
}

static void
test_xcopy_simple(struct fx *f, gconstpointer d)
{
    uint8_t naa[20];
    struct xlist x;
    struct sdev_cmd cmd;

    lu_naa(f, naa);
    write_fill(f, 0, 2048, 'A');
    xlist_init(&x, 1, 2); /* LIST ID USAGE 10b: nothing held */
    xlist_cscd(&x, naa);
    xlist_seg(&x, 0, 0, 2048, 0, FX_BLOCKS - 2048);
    xlist_finish(&x);
    g_assert_true(xcopy(f->a, &cmd, &x, x.len));
    fx_assert_good(&cmd);
    assert_blocks(f, FX_BLOCKS - 2048, 2048, 'A', false);

    /* two CSCDs naming the same LU, two segments, 0 blocks is a no-op */
    xlist_init(&x, 2, 2);
    xlist_cscd(&x, naa);
    xlist_cscd(&x, naa);
    write_ramp(f, 100, 8, 0x10);
    xlist_seg(&x, 0, 1, 8, 100, 5000);
    xlist_seg(&x, 1, 0, 0, 0, 0);
    xlist_finish(&x);
    g_assert_true(xcopy(f->a, &cmd, &x, x.len));
    fx_assert_good(&cmd);
    assert_blocks(f, 5000, 8, 0x10, true);

    /* PARAMETER LIST LENGTH 0: nothing to do */
    g_assert_true(xcopy(f->a, &cmd, &x, 0));
    fx_assert_good(&cmd);
}

static void
test_xcopy_overlap(struct fx *f, gconstpointer d)
{
    uint8_t naa[20];
    struct xlist x;
    struct sdev_cmd cmd;

    lu_naa(f, naa);
    /* Overlapping segments longer than the 1 MiB copy buffer: the source
     * must be read before it is overwritten, in both directions. */
    write_ramp(f, 1000, 4096, 0x40);
    xlist_init(&x, 0, 3);
    xlist_cscd(&x, naa);
    xlist_seg(&x, 0, 0, 4096, 1000, 1004);
    xlist_finish(&x);
    g_assert_true(xcopy(f->a, &cmd, &x, x.len));
    fx_assert_good(&cmd);
    assert_blocks(f, 1000, 4, 0x40, true);
    assert_blocks(f, 1004, 4096, 0x40, true);

    write_ramp(f, 20000, 4096, 0x80);
    xlist_init(&x, 0, 3);
    xlist_cscd(&x, naa);
    xlist_seg(&x, 0, 0, 4096, 20000, 19996);
    xlist_finish(&x);
    g_assert_true(xcopy(f->a, &cmd, &x, x.len));
    fx_assert_good(&cmd);
    assert_blocks(f, 19996, 4096, 0x80, true);
    assert_blocks(f, 24092, 4, (uint8_t)(0x80 + 4092), true);
}

static void
test_xcopy_list_checks(struct fx *f, gconstpointer d)
{
    uint8_t naa[20];
    struct xlist x;
    struct sdev_cmd cmd;

    lu_naa(f, naa);
    xlist_init(&x, 1, 0);
    xlist_cscd(&x, naa);
    xlist_seg(&x, 0, 0, 8, 0, 8);
    xlist_finish(&x);

    /* lists cut short inside a descriptor, or shorter than the header */
    g_assert_true(xcopy(f->a, &cmd, &x, HDR + CSCD - 1));
    fx_assert_sense(&cmd, 0x5, 0x1a, 0x00);
    g_assert_true(xcopy(f->a, &cmd, &x, x.len - 1));
    fx_assert_sense(&cmd, 0x5, 0x1a, 0x00);
    g_assert_true(xcopy(f->a, &cmd, &x, 8));
    fx_assert_sense(&cmd, 0x5, 0x1a, 0x00);
    /* longer than any list within the limits */
    g_assert_false(xcopy(f->a, &cmd, &x, 4096));
    fx_assert_sense(&cmd, 0x5, 0x1a, 0x00);

    /* LIST ID USAGE 01b is reserved; 11b needs LIST IDENTIFIER 0 */
    x.buf[1] = 1 << 3;
    g_assert_true(xcopy(f->a, &cmd, &x, x.len));
    fx_assert_sense(&cmd, 0x5, 0x26, 0x00);
    fx_assert_field(&cmd, false, 1, 4);
    x.buf[1] = 3 << 3;
    g_assert_true(xcopy(f->a, &cmd, &x, x.len));
    fx_assert_sense(&cmd, 0x5, 0x26, 0x00);
    fx_assert_field(&cmd, false, 0, -1);
    x.buf[1] = 0;

    /* inline data is not supported */
    fx_put_be32(x.buf + 12, 4);
    g_assert_true(xcopy(f->a, &cmd, &x, x.len + 4));
    fx_assert_sense(&cmd, 0x5, 0x26, 0x00);
    fx_put_be32(x.buf + 12, 0);

    /* too many CSCD descriptors, too many segments, list too long */
    xlist_init(&x, 1, 0);
    for (int i = 0; i < 3; i++)
        xlist_cscd(&x, naa);
    xlist_seg(&x, 0, 0, 8, 0, 8);
    xlist_finish(&x);
    g_assert_true(xcopy(f->a, &cmd, &x, x.len));
    fx_assert_sense(&cmd, 0x5, 0x26, 0x06);
    xlist_init(&x, 1, 0);
    xlist_cscd(&x, naa);
    for (int i = 0; i < 17; i++)
        xlist_seg(&x, 0, 0, 8, 0, 8);
    xlist_finish(&x);
    g_assert_true(xcopy(f->a, &cmd, &x, x.len));
    fx_assert_sense(&cmd, 0x5, 0x26, 0x08);
    xlist_init(&x, 1, 0);
    for (int i = 0; i < 3; i++)
        xlist_cscd(&x, naa);
    for (int i = 0; i < 17; i++)
        xlist_seg(&x, 0, 0, 8, 0, 8);
    xlist_finish(&x);
    g_assert_false(xcopy(f->a, &cmd, &x, x.len)); /* refused before the data */
    fx_assert_sense(&cmd, 0x5, 0x1a, 0x00);
}

static void
test_xcopy_descriptors(struct fx *f, gconstpointer d)
{
    uint8_t naa[20], other[20];
    struct xlist x;
    struct sdev_cmd cmd;
    uint8_t *p;

    lu_naa(f, naa);
    write_fill(f, 0, 8, 'S');

    /* unsupported CSCD type (FC N_Port_Name) and segment type (stream) */
    xlist_init(&x, 1, 0);
    xlist_cscd(&x, naa)[0] = 0xe0;
    xlist_seg(&x, 0, 0, 8, 0, 8);
    xlist_finish(&x);
    g_assert_true(xcopy(f->a, &cmd, &x, x.len));
    fx_assert_sense(&cmd, 0x5, 0x26, 0x07);
    xlist_init(&x, 1, 0);
    xlist_cscd(&x, naa);
    xlist_seg(&x, 0, 0, 8, 0, 8)[0] = 0x03;
    xlist_finish(&x);
    g_assert_true(xcopy(f->a, &cmd, &x, x.len));
    fx_assert_sense(&cmd, 0x5, 0x26, 0x09);

    /* a non-block device type, a wrong block length */
    static const struct {
        unsigned byte;
        uint8_t value;
        int bit;
    } bad[] = {{1, 0x01, 4}, {30, 0x10, -1}};
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        xlist_init(&x, 1, 0);
        p = xlist_cscd(&x, naa);
        p[bad[i].byte] = bad[i].value;
        xlist_seg(&x, 0, 0, 8, 0, 8);
        xlist_finish(&x);
        g_assert_true(xcopy(f->a, &cmd, &x, x.len));
        fx_assert_sense(&cmd, 0x5, 0x26, 0x00);
        fx_assert_field(&cmd, false, HDR + (bad[i].byte == 30 ? 29 : 1), bad[i].bit);
    }

    /* another device's designator, the NUL bit, an index past the list:
     * COPY ABORTED / COPY TARGET DEVICE NOT REACHABLE, nothing copied */
    memcpy(other, naa, sizeof(other));
    other[19] ^= 0xff;
    for (int c = 0; c < 3; c++) {
        xlist_init(&x, 1, 0);
        p = xlist_cscd(&x, c == 0 ? other : naa);
        if (c == 1)
            p[1] |= 0x20;
        xlist_seg(&x, 0, c == 2 ? 1 : 0, 8, 0, 8);
        xlist_finish(&x);
        g_assert_true(xcopy(f->a, &cmd, &x, x.len));
        fx_assert_sense(&cmd, 0xa, 0x0d, 0x02);
    }
    /* LU ID TYPE is ignored (SPC-4: the designator names the LU) */
    xlist_init(&x, 1, 0);
    xlist_cscd(&x, naa)[1] = 0xc0;
    xlist_seg(&x, 0, 0, 8, 0, 8);
    xlist_finish(&x);
    g_assert_true(xcopy(f->a, &cmd, &x, x.len));
    fx_assert_good(&cmd);

    /* an unused CSCD naming another device is fine */
    xlist_init(&x, 1, 0);
    xlist_cscd(&x, naa);
    xlist_cscd(&x, other);
    xlist_seg(&x, 0, 0, 8, 0, 8);
    xlist_finish(&x);
    g_assert_true(xcopy(f->a, &cmd, &x, x.len));
    fx_assert_good(&cmd);

    /* a segment past the end of the LU: COPY ABORTED before anything moved */
    write_fill(f, 16, 8, 'T');
    xlist_init(&x, 1, 0);
    xlist_cscd(&x, naa);
    xlist_seg(&x, 0, 0, 8, 0, 16);
    xlist_seg(&x, 0, 0, 2048, 0, FX_BLOCKS - 1);
    xlist_finish(&x);
    g_assert_true(xcopy(f->a, &cmd, &x, x.len));
    fx_assert_sense(&cmd, 0xa, 0x00, 0x00);
    assert_blocks(f, 16, 8, 'T', false);
}

static void
rcr(struct sdev_nexus *n, struct sdev_cmd *cmd, uint8_t sa, uint8_t list_id)
{
    uint8_t cdb[16] = {0x84, sa, list_id};
    fx_put_be32(cdb + 10, 1024);
    g_assert_true(fx_run(n, cmd, cdb, 16, NULL, 0));
}

static void
test_receive_copy_results(struct fx *f, gconstpointer d)
{
    uint8_t naa[20];
    struct xlist x;
    struct sdev_cmd cmd;

    rcr(f->a, &cmd, 0x03, 0);
    fx_assert_good(&cmd);
    g_assert_cmpuint(cmd.data_in_len, ==, 46);
    g_assert_cmpuint(fx_be32(cmd.data_in), ==, 42);
    g_assert_cmpuint((cmd.data_in[8] << 8) | cmd.data_in[9], ==, 2);    /* CSCDs */
    g_assert_cmpuint((cmd.data_in[10] << 8) | cmd.data_in[11], ==, 16); /* segments */
    g_assert_cmpuint(fx_be32(cmd.data_in + 12), ==, 2 * CSCD + 16 * SEG);
    g_assert_cmpuint(fx_be32(cmd.data_in + 20), ==, 0); /* no inline data */
    g_assert_cmpuint(cmd.data_in[43], ==, 2);
    g_assert_cmphex(cmd.data_in[44], ==, 0x02);
    g_assert_cmphex(cmd.data_in[45], ==, 0xe4);
    sdev_cmd_clear(&cmd);

    /* no copy with list id 5 yet */
    rcr(f->a, &cmd, 0x00, 5);
    fx_assert_sense(&cmd, 0x5, 0x24, 0x00);
    fx_assert_field(&cmd, true, 2, -1);

    lu_naa(f, naa);
    xlist_init(&x, 5, 0);
    xlist_cscd(&x, naa);
    xlist_seg(&x, 0, 0, 2048, 0, 4096);
    xlist_seg(&x, 0, 0, 8, 0, 8192);
    xlist_finish(&x);
    g_assert_true(xcopy(f->a, &cmd, &x, x.len));
    fx_assert_good(&cmd);
    rcr(f->a, &cmd, 0x00, 5);
    fx_assert_good(&cmd);
    g_assert_cmpuint(cmd.data_in_len, ==, 12);
    g_assert_cmpuint(fx_be32(cmd.data_in), ==, 8);
    g_assert_cmphex(cmd.data_in[4], ==, 0x01); /* completed, no errors */
    g_assert_cmpuint((cmd.data_in[5] << 8) | cmd.data_in[6], ==, 2);
    g_assert_cmpuint(cmd.data_in[7], ==, 0); /* bytes */
    g_assert_cmpuint(fx_be32(cmd.data_in + 8), ==, (2048 + 8) * 512);
    sdev_cmd_clear(&cmd);

    /* results are per I_T nexus, and LIST ID USAGE 10b holds nothing */
    rcr(f->b, &cmd, 0x00, 5);
    fx_assert_sense(&cmd, 0x5, 0x24, 0x00);
    x.buf[0] = 6;
    x.buf[1] = 2 << 3;
    g_assert_true(xcopy(f->a, &cmd, &x, x.len));
    fx_assert_good(&cmd);
    rcr(f->a, &cmd, 0x00, 6);
    fx_assert_sense(&cmd, 0x5, 0x24, 0x00);

    /* RECEIVE DATA and FAILED SEGMENT DETAILS are not offered */
    uint8_t cdb[16] = {0x84, 0x01};
    g_assert_false(fx_run(f->a, &cmd, cdb, 16, NULL, 0));
    fx_assert_field(&cmd, true, 1, 4);
    cdb[1] = 0x04;
    g_assert_false(fx_run(f->a, &cmd, cdb, 16, NULL, 0));
    fx_assert_field(&cmd, true, 1, 4);
}

static void
test_xcopy_reservation(struct fx *f, gconstpointer d)
{
    uint8_t naa[20];
    struct xlist x;
    struct sdev_cmd cmd;

    lu_naa(f, naa);
    xlist_init(&x, 1, 0);
    xlist_cscd(&x, naa);
    xlist_seg(&x, 0, 0, 8, 0, 8);
    xlist_finish(&x);
    uint8_t reserve[16] = {0x16};
    g_assert_true(fx_run(f->b, &cmd, reserve, 6, NULL, 0));
    fx_assert_good(&cmd);
    g_assert_false(xcopy(f->a, &cmd, &x, x.len));
    g_assert_cmphex(cmd.status, ==, SDEV_STATUS_RESERVATION_CONFLICT);
    g_assert_true(xcopy(f->b, &cmd, &x, x.len));
    fx_assert_good(&cmd);
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    FX_TEST("/scsi/xcopy/simple", test_xcopy_simple);
    FX_TEST("/scsi/xcopy/overlap", test_xcopy_overlap);
    FX_TEST("/scsi/xcopy/list-checks", test_xcopy_list_checks);
    FX_TEST("/scsi/xcopy/descriptors", test_xcopy_descriptors);
    FX_TEST("/scsi/xcopy/receive-copy-results", test_receive_copy_results);
    FX_TEST("/scsi/xcopy/reservation", test_xcopy_reservation);
    return g_test_run();
}
