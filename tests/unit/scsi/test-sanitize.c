/* test-sanitize.c — SANITIZE (BLOCK ERASE, EXIT FAILURE MODE), the sanitize
 * states, and software write protect (control page SWP), against a real view. */
#include <string.h>

#include "sdev-int.h"
#include "scsi-fixture.h"

#define FX_TEST(path, fn) g_test_add(path, struct fx, NULL, fx_setup, fn, fx_teardown)
#define FX_TEST_RO(path, fn) g_test_add(path, struct fx, "ro", fx_setup, fn, fx_teardown)
#define FX_TEST_BIG(path, fn) g_test_add(path, struct fx, "big", fx_setup, fn, fx_teardown)

static void
sanitize_cdb(uint8_t *cdb, uint8_t b1, uint16_t plen)
{
    memset(cdb, 0, 16);
    cdb[0] = 0x48;
    cdb[1] = b1;
    fx_put_be16(cdb + 7, plen);
}

static void
write_fill(struct fx *f, uint64_t lba, uint16_t n, uint8_t fill)
{
    g_autofree uint8_t *buf = g_malloc((size_t)n * 512);
    uint8_t cdb[16];
    struct sdev_cmd cmd;

    memset(buf, fill, (size_t)n * 512);
    fx_cdb10(cdb, 0x2a, 0, (uint32_t)lba, n);
    g_assert_true(fx_run(f->a, &cmd, cdb, 10, buf, (uint32_t)n * 512));
    fx_assert_good(&cmd);
    sdev_cmd_clear(&cmd);
}

static void
assert_reads(struct fx *f, uint64_t lba, uint8_t fill)
{
    uint8_t cdb[16];
    struct sdev_cmd cmd;

    fx_cdb10(cdb, 0x28, 0, (uint32_t)lba, 8);
    g_assert_true(fx_run(f->a, &cmd, cdb, 10, NULL, 0));
    fx_assert_good(&cmd);
    g_assert_cmpuint(cmd.data_in_len, ==, 8 * 512);
    for (unsigned i = 0; i < 8 * 512; i++)
        g_assert_cmphex(cmd.data_in[i], ==, fill);
    sdev_cmd_clear(&cmd);
}

static void
test_block_erase(struct fx *f, gconstpointer d)
{
    uint8_t cdb[16];
    struct sdev_cmd cmd;

    /* overlay data at both ends; the base image has non-zero data at LBA 100 */
    g_assert_cmphex(fx_base_byte(100 * 512), !=, 0);
    write_fill(f, 0, 16, 'a');
    write_fill(f, FX_BLOCKS - 16, 16, 'a');

    sanitize_cdb(cdb, 0x02, 0);
    g_assert_true(fx_run(f->a, &cmd, cdb, 10, NULL, 0));
    fx_assert_good(&cmd);
    g_assert_cmpuint(cmd.xfer_len, ==, 0);
    sdev_cmd_clear(&cmd);

    /* overlay data and the base image under it read zeros */
    assert_reads(f, 0, 0);
    assert_reads(f, 100, 0);
    assert_reads(f, FX_BLOCKS - 8, 0);

    /* and the whole LU is one deallocated extent */
    uint8_t gls[16] = {0x9e, 0x12};
    fx_put_be32(gls + 10, 256);
    g_assert_true(fx_run(f->a, &cmd, gls, 16, NULL, 0));
    fx_assert_good(&cmd);
    g_assert_cmpuint(fx_be32(cmd.data_in), ==, 4 + 16);
    g_assert_cmpuint(fx_be64(cmd.data_in + 8), ==, 0);
    g_assert_cmpuint(fx_be32(cmd.data_in + 16), ==, FX_BLOCKS);
    g_assert_cmpuint(cmd.data_in[20] & 0x0f, ==, 1);
    sdev_cmd_clear(&cmd);

    /* IMMED and AUSE are accepted */
    sanitize_cdb(cdb, 0x80 | 0x20 | 0x02, 0);
    g_assert_true(fx_run(f->a, &cmd, cdb, 10, NULL, 0));
    fx_assert_good(&cmd);
}

/* On a 2 GiB disk BLOCK ERASE only changes granule states: it must not
 * write the disk's size in data (the test's own time bound would catch it). */
static void
test_block_erase_big(struct fx *f, gconstpointer d)
{
    uint8_t cdb[16];
    struct sdev_cmd cmd;
    uint64_t blocks = FX_BIG_DISK_SIZE / 512;

    write_fill(f, blocks - 8, 8, 'z');
    gint64 t0 = g_get_monotonic_time();
    sanitize_cdb(cdb, 0x02, 0);
    g_assert_true(fx_run(f->a, &cmd, cdb, 10, NULL, 0));
    fx_assert_good(&cmd);
    g_test_message("BLOCK ERASE of 2 GiB: %" G_GINT64_FORMAT " ms",
                   (g_get_monotonic_time() - t0) / 1000);
    assert_reads(f, blocks - 8, 0);
    assert_reads(f, 64, 0);

    uint8_t gls[16] = {0x9e, 0x12};
    fx_put_be32(gls + 10, 256);
    g_assert_true(fx_run(f->a, &cmd, gls, 16, NULL, 0));
    fx_assert_good(&cmd);
    g_assert_cmpuint(fx_be32(cmd.data_in), ==, 4 + 16);
    g_assert_cmpuint(fx_be32(cmd.data_in + 16), ==, blocks);
    g_assert_cmpuint(cmd.data_in[20] & 0x0f, ==, 1);
    sdev_cmd_clear(&cmd);
}

static void
test_sanitize_fields(struct fx *f, gconstpointer d)
{
    uint8_t cdb[16];
    struct sdev_cmd cmd;

    /* BLOCK ERASE / EXIT FAILURE MODE take no parameter list */
    sanitize_cdb(cdb, 0x02, 8);
    g_assert_false(fx_run(f->a, &cmd, cdb, 10, "\0\0\0\0\0\0\0\0", 8));
    fx_assert_sense(&cmd, 0x5, 0x24, 0x00);
    fx_assert_field(&cmd, true, 7, -1);
    sanitize_cdb(cdb, 0x1f, 1);
    g_assert_false(fx_run(f->a, &cmd, cdb, 10, "", 1));
    fx_assert_field(&cmd, true, 7, -1);

    /* OVERWRITE, CRYPTOGRAPHIC ERASE and undefined service actions are refused */
    for (uint8_t sa = 0; sa < 0x1f; sa++) {
        if (sa == 0x02)
            continue;
        sanitize_cdb(cdb, sa, 0);
        g_assert_false(fx_run(f->a, &cmd, cdb, 10, NULL, 0));
        fx_assert_sense(&cmd, 0x5, 0x24, 0x00);
        fx_assert_field(&cmd, true, 1, 4);
    }

    /* reserved bit in byte 1 and reserved bytes 2..6 */
    sanitize_cdb(cdb, 0x40 | 0x02, 0);
    g_assert_false(fx_run(f->a, &cmd, cdb, 10, NULL, 0));
    fx_assert_field(&cmd, true, 1, 6);
    for (unsigned i = 2; i < 7; i++) {
        sanitize_cdb(cdb, 0x02, 0);
        cdb[i] = (uint8_t)i;
        g_assert_false(fx_run(f->a, &cmd, cdb, 10, NULL, 0));
        fx_assert_field(&cmd, true, i, g_bit_nth_msf(i, -1));
    }
}

/* REPORT SUPPORTED OPERATION CODES lists exactly the service actions offered. */
static void
test_sanitize_rsoc(struct fx *f, gconstpointer d)
{
    static const struct {
        uint8_t sa;
        bool supported;
    } cases[] = {{0x01, false}, {0x02, true}, {0x03, false}, {0x1f, true}};
    struct sdev_cmd cmd;

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        uint8_t q[16] = {0xa3, 0x0c, 0x02, 0x48, 0x00, cases[i].sa};
        fx_put_be32(q + 6, 64);
        g_assert_true(fx_run(f->a, &cmd, q, 12, NULL, 0));
        fx_assert_good(&cmd);
        g_assert_cmpuint(cmd.data_in[1] & 0x07, ==, cases[i].supported ? 3 : 1);
        if (cases[i].supported) {
            g_assert_cmpuint((cmd.data_in[2] << 8) | cmd.data_in[3], ==, 10);
            g_assert_cmphex(cmd.data_in[4], ==, 0x48);
            g_assert_cmphex(cmd.data_in[5], ==, 0xa0 | cases[i].sa);
        }
        sdev_cmd_clear(&cmd);
    }
    /* Block Device Characteristics: WABEREQ=01b, WACEREQ=00b */
    uint8_t inq[16] = {0x12, 0x01, 0xb1, 0x00, 64};
    g_assert_true(fx_run(f->a, &cmd, inq, 6, NULL, 0));
    g_assert_cmphex(cmd.data_in[7] & 0xf0, ==, 0x40);
    sdev_cmd_clear(&cmd);
}

static void
test_sanitize_in_progress(struct fx *f, gconstpointer d)
{
    uint8_t cdb[16];
    struct sdev_cmd cmd;

    /* What another nexus sees while a BLOCK ERASE runs (SBC-4 §4.11.2). */
    sdev_lu_lock(f->lu);
    f->lu->sanitizing = true;
    sdev_lu_unlock(f->lu);
    uint8_t tur[16] = {0};
    g_assert_false(fx_run(f->b, &cmd, tur, 6, NULL, 0));
    fx_assert_sense(&cmd, 0x2, 0x04, 0x1b);
    fx_cdb16(cdb, 0x88, 0, 0, 1);
    g_assert_false(fx_run(f->b, &cmd, cdb, 16, NULL, 0));
    fx_assert_sense(&cmd, 0x2, 0x04, 0x1b);
    sanitize_cdb(cdb, 0x02, 0);
    g_assert_false(fx_run(f->b, &cmd, cdb, 10, NULL, 0));
    fx_assert_sense(&cmd, 0x2, 0x04, 0x1b);
    uint8_t inq[16] = {0x12, 0, 0, 0, 36};
    g_assert_true(fx_run(f->b, &cmd, inq, 6, NULL, 0));
    fx_assert_good(&cmd);
    sdev_cmd_clear(&cmd);
    uint8_t rs[16] = {0x03, 0, 0, 0, 18};
    g_assert_true(fx_run(f->b, &cmd, rs, 6, NULL, 0));
    fx_assert_good(&cmd);
    g_assert_cmphex(cmd.data_in[2] & 0x0f, ==, 0x2);
    g_assert_cmphex(cmd.data_in[12], ==, 0x04);
    g_assert_cmphex(cmd.data_in[13], ==, 0x1b);
    sdev_cmd_clear(&cmd);
    sdev_lu_lock(f->lu);
    f->lu->sanitizing = false;
    sdev_lu_unlock(f->lu);
    g_assert_true(fx_run(f->b, &cmd, tur, 6, NULL, 0));
    fx_assert_good(&cmd);
}

static void
test_sanitize_failure_mode(struct fx *f, gconstpointer d)
{
    uint8_t cdb[16];
    struct sdev_cmd cmd;

    /* Not in failure mode: EXIT FAILURE MODE has nothing to do. */
    sanitize_cdb(cdb, 0x1f, 0);
    g_assert_true(fx_run(f->a, &cmd, cdb, 10, NULL, 0));
    fx_assert_good(&cmd);

    /* A failed sanitize with AUSE=0: medium access fails, EXIT FAILURE MODE
     * is refused, a successful SANITIZE clears it. */
    sdev_lu_lock(f->lu);
    f->lu->sanitize_failed = true;
    f->lu->sanitize_ause = false;
    sdev_lu_unlock(f->lu);
    fx_cdb10(cdb, 0x28, 0, 0, 1);
    g_assert_false(fx_run(f->a, &cmd, cdb, 10, NULL, 0));
    fx_assert_sense(&cmd, 0x3, 0x31, 0x03);
    uint8_t tur[16] = {0};
    g_assert_true(fx_run(f->a, &cmd, tur, 6, NULL, 0));
    fx_assert_good(&cmd);
    sanitize_cdb(cdb, 0x1f, 0);
    g_assert_true(fx_run(f->a, &cmd, cdb, 10, NULL, 0));
    fx_assert_sense(&cmd, 0x5, 0x24, 0x00);
    sanitize_cdb(cdb, 0x02, 0);
    g_assert_true(fx_run(f->a, &cmd, cdb, 10, NULL, 0));
    fx_assert_good(&cmd);
    assert_reads(f, 0, 0);

    /* AUSE=1: EXIT FAILURE MODE leaves failure mode. */
    sdev_lu_lock(f->lu);
    f->lu->sanitize_failed = true;
    f->lu->sanitize_ause = true;
    sdev_lu_unlock(f->lu);
    sanitize_cdb(cdb, 0x1f, 0);
    g_assert_true(fx_run(f->a, &cmd, cdb, 10, NULL, 0));
    fx_assert_good(&cmd);
    assert_reads(f, 0, 0);
}

static void
test_sanitize_conflicts(struct fx *f, gconstpointer d)
{
    uint8_t cdb[16];
    struct sdev_cmd cmd;

    /* RESERVE(6) by another nexus */
    write_fill(f, 0, 8, 'x');
    uint8_t reserve[16] = {0x16};
    g_assert_true(fx_run(f->b, &cmd, reserve, 6, NULL, 0));
    fx_assert_good(&cmd);
    sanitize_cdb(cdb, 0x02, 0);
    g_assert_false(fx_run(f->a, &cmd, cdb, 10, NULL, 0));
    g_assert_cmphex(cmd.status, ==, SDEV_STATUS_RESERVATION_CONFLICT);
    uint8_t release[16] = {0x17};
    g_assert_true(fx_run(f->b, &cmd, release, 6, NULL, 0));
    fx_assert_good(&cmd);
    assert_reads(f, 0, 'x');
}

static void
test_sanitize_read_only(struct fx *f, gconstpointer d)
{
    uint8_t cdb[16];
    struct sdev_cmd cmd;

    sanitize_cdb(cdb, 0x02, 0);
    g_assert_false(fx_run(f->a, &cmd, cdb, 10, NULL, 0));
    fx_assert_sense(&cmd, 0x7, 0x27, 0x00);
}

/* MODE SELECT of the control page with SWP=1 from nexus b. */
static void
set_swp(struct fx *f, bool on)
{
    uint8_t ms[16] = {0x1a, 0x08, 0x0a, 0x00, 255};
    struct sdev_cmd cmd;
    uint8_t param[4 + 12];

    g_assert_true(fx_run(f->b, &cmd, ms, 6, NULL, 0));
    fx_assert_good(&cmd);
    g_assert_cmpuint(cmd.data_in_len, ==, 16);
    memcpy(param, cmd.data_in, sizeof(param));
    sdev_cmd_clear(&cmd);
    param[0] = 0;
    param[2] = 0;
    param[4 + 4] = on ? 0x08 : 0x00;
    uint8_t sel[16] = {0x15, 0x10, 0, 0, sizeof(param)};
    g_assert_true(fx_run(f->b, &cmd, sel, 6, param, sizeof(param)));
    fx_assert_good(&cmd);
}

static void
test_swp(struct fx *f, gconstpointer d)
{
    uint8_t cdb[16];
    struct sdev_cmd cmd;

    /* SWP is changeable */
    uint8_t ch[16] = {0x1a, 0x08, 0x40 | 0x0a, 0x00, 255};
    g_assert_true(fx_run(f->a, &cmd, ch, 6, NULL, 0));
    g_assert_cmphex(cmd.data_in[4 + 4] & 0x08, ==, 0x08);
    sdev_cmd_clear(&cmd);

    write_fill(f, 0, 8, 'w');
    set_swp(f, true);
    fx_clear_ua(f->a); /* MODE PARAMETERS CHANGED */

    /* WP in the mode parameter header, SWP in the page */
    uint8_t ms[16] = {0x1a, 0x08, 0x0a, 0x00, 255};
    g_assert_true(fx_run(f->a, &cmd, ms, 6, NULL, 0));
    g_assert_cmphex(cmd.data_in[2] & 0x80, ==, 0x80);
    g_assert_cmphex(cmd.data_in[4 + 4] & 0x08, ==, 0x08);
    sdev_cmd_clear(&cmd);

    /* writes of every kind are refused; reads work */
    fx_cdb10(cdb, 0x2a, 0, 0, 1);
    g_assert_false(fx_run(f->a, &cmd, cdb, 10, NULL, 0));
    fx_assert_sense(&cmd, 0x7, 0x27, 0x00);
    sanitize_cdb(cdb, 0x02, 0);
    g_assert_false(fx_run(f->a, &cmd, cdb, 10, NULL, 0));
    fx_assert_sense(&cmd, 0x7, 0x27, 0x00);
    fx_cdb16(cdb, 0x93, 0x09, 0, 8); /* WRITE SAME(16) UNMAP NDOB */
    g_assert_false(fx_run(f->a, &cmd, cdb, 16, NULL, 0));
    fx_assert_sense(&cmd, 0x7, 0x27, 0x00);
    assert_reads(f, 0, 'w');

    /* SWP=0 again: writable */
    set_swp(f, false);
    fx_clear_ua(f->a);
    write_fill(f, 0, 8, 'v');
    assert_reads(f, 0, 'v');

    /* a LOGICAL UNIT RESET restores the default SWP=0 */
    set_swp(f, true);
    g_assert_cmpint(sdev_tmf(f->a, SDEV_TMF_LUN_RESET), ==, 0);
    fx_clear_ua(f->a);
    write_fill(f, 0, 8, 'u');
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    FX_TEST("/scsi/sanitize/block-erase", test_block_erase);
    FX_TEST_BIG("/scsi/sanitize/block-erase-big", test_block_erase_big);
    FX_TEST("/scsi/sanitize/fields", test_sanitize_fields);
    FX_TEST("/scsi/sanitize/rsoc-and-vpd", test_sanitize_rsoc);
    FX_TEST("/scsi/sanitize/in-progress", test_sanitize_in_progress);
    FX_TEST("/scsi/sanitize/failure-mode", test_sanitize_failure_mode);
    FX_TEST("/scsi/sanitize/reservation-conflict", test_sanitize_conflicts);
    FX_TEST_RO("/scsi/sanitize/read-only", test_sanitize_read_only);
    FX_TEST("/scsi/spc/software-write-protect", test_swp);
    return g_test_run();
}
