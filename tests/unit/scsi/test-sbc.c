/* test-sbc.c — proxy/scsi block commands executed against a real view:
 * READ/WRITE (FUA, short data-out), VERIFY, WRITE AND VERIFY, COMPARE AND
 * WRITE, UNMAP, WRITE SAME, GET LBA STATUS, SYNCHRONIZE CACHE, READ CAPACITY. */
#include <string.h>

#include "scsi-fixture.h"

#define FX_TEST(path, fn) g_test_add(path, struct fx, NULL, fx_setup, fn, fx_teardown)

static void
write_blocks(struct fx *f, uint64_t lba, uint32_t n, uint8_t fill)
{
    g_autofree uint8_t *buf = g_malloc((size_t)n * 512);
    uint8_t cdb[16];
    struct sdev_cmd cmd;

    memset(buf, fill, (size_t)n * 512);
    fx_cdb16(cdb, 0x8a, 0, lba, n);
    g_assert_true(fx_run(f->a, &cmd, cdb, 16, buf, n * 512));
    fx_assert_good(&cmd);
}

/* Read n blocks at lba; caller frees. */
static uint8_t *
read_blocks(struct fx *f, uint64_t lba, uint32_t n)
{
    uint8_t cdb[16];
    struct sdev_cmd cmd;

    fx_cdb10(cdb, 0x28, 0, (uint32_t)lba, (uint16_t)n);
    g_assert_true(fx_run(f->a, &cmd, cdb, 10, NULL, 0));
    fx_assert_good(&cmd);
    g_assert_cmpuint(cmd.data_in_len, ==, n * 512);
    return g_steal_pointer(&cmd.data_in);
}

static void
assert_fill(const uint8_t *buf, size_t len, uint8_t fill)
{
    for (size_t i = 0; i < len; i++) {
        if (buf[i] != fill)
            g_error("byte %zu is %02x, expected %02x", i, buf[i], fill);
    }
}

/* GET LBA STATUS of one LBA: 0 mapped, 1 deallocated; *count = run length. */
static uint8_t
lba_status(struct fx *f, uint64_t lba, uint32_t *count)
{
    uint8_t cdb[16] = {0x9e, 0x12};
    struct sdev_cmd cmd;

    fx_put_be64(cdb + 2, lba);
    fx_put_be32(cdb + 10, 24);
    g_assert_true(fx_run(f->a, &cmd, cdb, 16, NULL, 0));
    fx_assert_good(&cmd);
    g_assert_cmpuint(cmd.data_in_len, ==, 24);
    g_assert_cmpuint(fx_be64(cmd.data_in + 8), ==, lba);
    *count = fx_be32(cmd.data_in + 16);
    uint8_t st = cmd.data_in[20] & 0x0f;
    sdev_cmd_clear(&cmd);
    return st;
}

static void
test_write_read(struct fx *f, gconstpointer d)
{
    write_blocks(f, 10, 3, 0xab);
    g_autofree uint8_t *buf = read_blocks(f, 9, 5);
    for (size_t i = 0; i < 512; i++)
        g_assert_cmpuint(buf[i], ==, fx_base_byte(9 * 512 + i));
    assert_fill(buf + 512, 3 * 512, 0xab);
    for (size_t i = 0; i < 512; i++)
        g_assert_cmpuint(buf[4 * 512 + i], ==, fx_base_byte(13 * 512 + i));
}

static void
test_write_fua_and_sizes(struct fx *f, gconstpointer d)
{
    uint8_t buf[4 * 512];
    uint8_t cdb[16] = {0};
    struct sdev_cmd cmd;

    memset(buf, 0x11, sizeof(buf));
    cdb[0] = 0x0a; /* WRITE(6) */
    cdb[3] = 20;
    cdb[4] = 1;
    g_assert_true(fx_run(f->a, &cmd, cdb, 6, buf, 512));
    fx_assert_good(&cmd);
    memset(cdb, 0, 16);
    cdb[0] = 0xaa; /* WRITE(12) with FUA */
    cdb[1] = 0x08;
    fx_put_be32(cdb + 2, 21);
    fx_put_be32(cdb + 6, 2);
    memset(buf, 0x22, sizeof(buf));
    g_assert_true(fx_run(f->a, &cmd, cdb, 12, buf, 1024));
    fx_assert_good(&cmd);
    g_autofree uint8_t *out = read_blocks(f, 20, 3);
    assert_fill(out, 512, 0x11);
    assert_fill(out + 512, 1024, 0x22);
}

/* iSCSI EDTL smaller than the CDB's transfer length: only whole blocks that
 * arrived are written, the rest is left alone. */
static void
test_write_short_data(struct fx *f, gconstpointer d)
{
    uint8_t buf[2 * 512];
    uint8_t cdb[16];
    struct sdev_cmd cmd;

    write_blocks(f, 30, 2, 'a');
    memset(buf, 'b', sizeof(buf));
    fx_cdb10(cdb, 0x2a, 0, 30, 2);
    g_assert_true(fx_run(f->a, &cmd, cdb, 10, buf, 512 + 200));
    fx_assert_good(&cmd);
    g_autofree uint8_t *out = read_blocks(f, 30, 2);
    assert_fill(out, 512, 'b');
    assert_fill(out + 512, 512, 'a');
    /* no data at all: GOOD, nothing written */
    g_assert_true(fx_run(f->a, &cmd, cdb, 10, NULL, 0));
    fx_assert_good(&cmd);
}

static void
test_verify(struct fx *f, gconstpointer d)
{
    uint8_t buf[4 * 512];
    uint8_t cdb[16];
    struct sdev_cmd cmd;

    write_blocks(f, 40, 4, 0x5a);
    memset(buf, 0x5a, sizeof(buf));
    fx_cdb10(cdb, 0x2f, 0x02, 40, 4); /* BYTCHK=01b */
    g_assert_true(fx_run(f->a, &cmd, cdb, 10, buf, sizeof(buf)));
    fx_assert_good(&cmd);
    buf[3 * 512 + 7] = 0;
    g_assert_true(fx_run(f->a, &cmd, cdb, 10, buf, sizeof(buf)));
    fx_assert_sense(&cmd, 0xe, 0x1d, 0x00);
    g_assert_true(cmd.sense[0] & 0x80); /* VALID: INFORMATION holds the offset */
    g_assert_cmpuint(fx_be32(cmd.sense + 3), ==, 3 * 512 + 7);
    /* BYTCHK=11b: one block compared with each */
    fx_cdb16(cdb, 0x8f, 0x06, 40, 4);
    g_assert_true(fx_run(f->a, &cmd, cdb, 16, buf, 512));
    fx_assert_good(&cmd);
    buf[100] = 1;
    g_assert_true(fx_run(f->a, &cmd, cdb, 16, buf, 512));
    fx_assert_sense(&cmd, 0xe, 0x1d, 0x00);
    g_assert_cmpuint(fx_be32(cmd.sense + 3), ==, 100);
    /* BYTCHK=0: medium verification only */
    fx_cdb10(cdb, 0x2f, 0x00, 0, 64);
    g_assert_true(fx_run(f->a, &cmd, cdb, 10, NULL, 0));
    fx_assert_good(&cmd);
    g_assert_cmpint(cmd.dir, ==, SDEV_DIR_NONE);
}

static void
test_write_and_verify(struct fx *f, gconstpointer d)
{
    uint8_t buf[2 * 512];
    uint8_t cdb[16] = {0xae, 0x02};
    struct sdev_cmd cmd;

    memset(buf, 0x77, sizeof(buf));
    fx_put_be32(cdb + 2, 50);
    fx_put_be32(cdb + 6, 2);
    g_assert_true(fx_run(f->a, &cmd, cdb, 12, buf, sizeof(buf)));
    fx_assert_good(&cmd);
    g_autofree uint8_t *out = read_blocks(f, 50, 2);
    assert_fill(out, sizeof(buf), 0x77);
}

static void
test_compare_and_write(struct fx *f, gconstpointer d)
{
    uint8_t buf[2 * 2 * 512];
    uint8_t cdb[16] = {0x89};
    struct sdev_cmd cmd;

    write_blocks(f, 60, 2, 0x01);
    fx_put_be64(cdb + 2, 60);
    cdb[13] = 2;
    memset(buf, 0x01, 1024);
    memset(buf + 1024, 0x02, 1024);
    g_assert_true(fx_run(f->a, &cmd, cdb, 16, buf, sizeof(buf)));
    fx_assert_good(&cmd);
    g_assert_cmpuint(cmd.xfer_len, ==, 2048);
    g_autofree uint8_t *out = read_blocks(f, 60, 2);
    assert_fill(out, 1024, 0x02);
    /* the medium now holds 0x02: comparing with 0x01 miscompares at 0 */
    g_assert_true(fx_run(f->a, &cmd, cdb, 16, buf, sizeof(buf)));
    fx_assert_sense(&cmd, 0xe, 0x1d, 0x00);
    g_assert_cmpuint(fx_be32(cmd.sense + 3), ==, 0);
    memset(buf, 0x02, 1024);
    buf[700] = 9;
    g_assert_true(fx_run(f->a, &cmd, cdb, 16, buf, sizeof(buf)));
    fx_assert_sense(&cmd, 0xe, 0x1d, 0x00);
    g_assert_cmpuint(fx_be32(cmd.sense + 3), ==, 700);
    g_free(out);
    out = read_blocks(f, 60, 2);
    assert_fill(out, 1024, 0x02); /* a miscompare writes nothing */
    /* the transport's length must be exactly both halves */
    g_assert_false(fx_run(f->a, &cmd, cdb, 16, buf, 3 * 512));
    fx_assert_sense(&cmd, 0x5, 0x24, 0x00);
    fx_assert_field(&cmd, true, 13, -1);
    cdb[13] = 0; /* 0 blocks with data attached (a 256-block count wrapped) */
    g_assert_false(fx_run(f->a, &cmd, cdb, 16, buf, sizeof(buf)));
    fx_assert_field(&cmd, true, 13, -1);
}

static void
unmap(struct fx *f, struct sdev_cmd *cmd, const uint64_t *lba, const uint32_t *n, unsigned count,
      uint16_t param_len)
{
    uint8_t param[8 + 16 * 300] = {0};
    uint8_t cdb[16] = {0x42};

    fx_put_be16(param, (uint16_t)(6 + 16 * count));
    fx_put_be16(param + 2, (uint16_t)(16 * count));
    for (unsigned i = 0; i < count; i++) {
        fx_put_be64(param + 8 + 16 * i, lba[i]);
        fx_put_be32(param + 8 + 16 * i + 8, n[i]);
    }
    if (param_len == 0xffff)
        param_len = (uint16_t)(8 + 16 * count);
    fx_put_be16(cdb + 7, param_len);
    fx_run(f->a, cmd, cdb, 10, param, param_len);
}

static void
test_unmap(struct fx *f, gconstpointer d)
{
    struct sdev_cmd cmd;
    uint64_t lba[2] = {8, 100};
    uint32_t n[2] = {16, 3};
    uint32_t count;

    write_blocks(f, 0, 128, 0xee);
    g_assert_cmpuint(lba_status(f, 8, &count), ==, 0);
    unmap(f, &cmd, lba, n, 2, 0xffff);
    fx_assert_good(&cmd);
    g_autofree uint8_t *out = read_blocks(f, 0, 128);
    assert_fill(out, 8 * 512, 0xee);
    assert_fill(out + 8 * 512, 16 * 512, 0);
    assert_fill(out + 24 * 512, 76 * 512, 0xee);
    assert_fill(out + 100 * 512, 3 * 512, 0); /* unaligned tail of a granule: still zeros */
    assert_fill(out + 103 * 512, 25 * 512, 0xee);
    /* whole granules are deallocated (LBPRZ: they read zeros) */
    g_assert_cmpuint(lba_status(f, 8, &count), ==, 1);
    g_assert_cmpuint(count, ==, 16);

    /* nothing is unmapped when any descriptor is out of range */
    uint64_t bad_lba[2] = {0, FX_BLOCKS - 1};
    uint32_t bad_n[2] = {8, 2};
    unmap(f, &cmd, bad_lba, bad_n, 2, 0xffff);
    fx_assert_sense(&cmd, 0x5, 0x21, 0x00);
    g_free(out);
    out = read_blocks(f, 0, 8);
    assert_fill(out, 8 * 512, 0xee);

    /* parameter list length 0: nothing; 1..7: error */
    unmap(f, &cmd, lba, n, 1, 0);
    fx_assert_good(&cmd);
    unmap(f, &cmd, lba, n, 1, 7);
    fx_assert_sense(&cmd, 0x5, 0x1a, 0x00);
    /* block descriptor data length beyond the list */
    unmap(f, &cmd, lba, n, 2, 8 + 16);
    fx_assert_sense(&cmd, 0x5, 0x1a, 0x00);
}

static void
test_unmap_limits(struct fx *f, gconstpointer d)
{
    static uint64_t lba[300];
    static uint32_t n[300];
    struct sdev_cmd cmd;

    for (int i = 0; i < 300; i++) {
        lba[i] = (uint64_t)i * 8;
        n[i] = 1;
    }
    unmap(f, &cmd, lba, n, 257, 0xffff); /* MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT is 256 */
    fx_assert_sense(&cmd, 0x5, 0x26, 0x00);
    fx_assert_field(&cmd, false, 2, -1);
    unmap(f, &cmd, lba, n, 256, 0xffff);
    fx_assert_good(&cmd);
}

static void
test_write_same(struct fx *f, gconstpointer d)
{
    uint8_t block[512];
    uint8_t cdb[16];
    struct sdev_cmd cmd;
    uint32_t count;

    for (int i = 0; i < 512; i++)
        block[i] = (uint8_t)i;
    fx_cdb10(cdb, 0x41, 0, 200, 10);
    g_assert_true(fx_run(f->a, &cmd, cdb, 10, block, 512));
    fx_assert_good(&cmd);
    g_autofree uint8_t *out = read_blocks(f, 200, 10);
    for (int b = 0; b < 10; b++)
        g_assert_cmpmem(out + b * 512, 512, block, 512);

    /* zeros with UNMAP: deallocated granules */
    memset(block, 0, sizeof(block));
    fx_cdb16(cdb, 0x93, 0x08, 256, 64);
    g_assert_true(fx_run(f->a, &cmd, cdb, 16, block, 512));
    fx_assert_good(&cmd);
    g_assert_cmpuint(lba_status(f, 256, &count), ==, 1);
    g_assert_cmpuint(count, ==, 64);
    g_free(out);
    out = read_blocks(f, 256, 64);
    assert_fill(out, 64 * 512, 0);

    /* UNMAP with a non-zero pattern: deallocated all the same, reads zeros */
    uint8_t ff[512];
    memset(ff, 0xff, sizeof(ff));
    write_blocks(f, 320, 8, 0x12);
    fx_cdb10(cdb, 0x41, 0x08, 320, 8);
    g_assert_true(fx_run(f->a, &cmd, cdb, 10, ff, 512));
    fx_assert_good(&cmd);
    g_assert_cmpuint(lba_status(f, 320, &count), ==, 1);
    g_free(out);
    out = read_blocks(f, 320, 8);
    assert_fill(out, 8 * 512, 0);

    /* zeros without UNMAP: the blocks read zeros (the view may keep them
     * thin: it passes VIEW_NO_UNMAP down and LBPRZ makes both equivalent) */
    write_blocks(f, 512, 16, 0x44);
    fx_cdb16(cdb, 0x93, 0x00, 512, 16);
    g_assert_true(fx_run(f->a, &cmd, cdb, 16, block, 512));
    fx_assert_good(&cmd);
    g_free(out);
    out = read_blocks(f, 512, 16);
    assert_fill(out, 16 * 512, 0);

    /* NDOB: no data-out, zeros */
    write_blocks(f, 600, 8, 0x33);
    fx_cdb16(cdb, 0x93, 0x09, 600, 8);
    g_assert_true(fx_run(f->a, &cmd, cdb, 16, NULL, 0));
    fx_assert_good(&cmd);
    g_assert_cmpuint(cmd.xfer_len, ==, 0);
    g_free(out);
    out = read_blocks(f, 600, 8);
    assert_fill(out, 8 * 512, 0);
}

static void
test_get_lba_status(struct fx *f, gconstpointer d)
{
    uint8_t cdb[16] = {0x9e, 0x12};
    struct sdev_cmd cmd;
    uint32_t count;

    /* base data is mapped; the base's hole is deallocated (reads zeros) */
    g_assert_cmpuint(lba_status(f, 0, &count), ==, 0);
    g_assert_cmpuint(count, ==, FX_DATA_SIZE / 512);
    g_assert_cmpuint(lba_status(f, FX_DATA_SIZE / 512, &count), ==, 1);
    g_assert_cmpuint(count, ==, FX_BLOCKS - FX_DATA_SIZE / 512);

    fx_put_be64(cdb + 2, FX_BLOCKS);
    fx_put_be32(cdb + 10, 64);
    g_assert_false(fx_run(f->a, &cmd, cdb, 16, NULL, 0));
    fx_assert_sense(&cmd, 0x5, 0x21, 0x00);

    /* several descriptors in one answer, the first at the starting LBA */
    uint64_t lba[1] = {16};
    uint32_t n[1] = {8};
    unmap(f, &cmd, lba, n, 1, 0xffff);
    fx_assert_good(&cmd);
    fx_put_be64(cdb + 2, 4);
    fx_put_be32(cdb + 10, 8 + 3 * 16);
    g_assert_true(fx_run(f->a, &cmd, cdb, 16, NULL, 0));
    fx_assert_good(&cmd);
    g_assert_cmpuint(cmd.data_in_len, ==, 8 + 3 * 16);
    const uint8_t *p = cmd.data_in + 8;
    g_assert_cmpuint(fx_be64(p), ==, 4);
    g_assert_cmpuint(fx_be32(p + 8), ==, 12);
    g_assert_cmpuint(p[12], ==, 0);
    g_assert_cmpuint(fx_be64(p + 16), ==, 16);
    g_assert_cmpuint(fx_be32(p + 24), ==, 8);
    g_assert_cmpuint(p[28], ==, 1);
    g_assert_cmpuint(fx_be64(p + 32), ==, 24);
    g_assert_cmpuint(p[44], ==, 0);
    sdev_cmd_clear(&cmd);
}

static void
test_sync_cache(struct fx *f, gconstpointer d)
{
    uint8_t cdb[16];
    struct sdev_cmd cmd;

    write_blocks(f, 0, 1, 0x42);
    fx_cdb10(cdb, 0x35, 0x02, 0, 0);
    g_assert_true(fx_run(f->a, &cmd, cdb, 10, NULL, 0));
    fx_assert_good(&cmd);
    fx_cdb16(cdb, 0x91, 0, FX_BLOCKS, 1);
    g_assert_false(fx_run(f->a, &cmd, cdb, 16, NULL, 0));
    fx_assert_sense(&cmd, 0x5, 0x21, 0x00);
}

static void
test_orwrite(struct fx *f, gconstpointer d)
{
    uint8_t buf[3 * 512];
    uint8_t cdb[16];
    struct sdev_cmd cmd;

    write_blocks(f, 70, 3, 0x0f);
    memset(buf, 0x30, sizeof(buf));
    buf[512 + 9] = 0x80;
    fx_cdb16(cdb, 0x8b, 0x08, 70, 3);
    g_assert_true(fx_run(f->a, &cmd, cdb, 16, buf, sizeof(buf)));
    fx_assert_good(&cmd);
    g_autofree uint8_t *out = read_blocks(f, 70, 3);
    for (size_t i = 0; i < sizeof(buf); i++)
        g_assert_cmphex(out[i], ==, i == 512 + 9 ? 0x8f : 0x3f);
    fx_cdb16(cdb, 0x8b, 0x20, 70, 1); /* ORPROTECT */
    g_assert_false(fx_run(f->a, &cmd, cdb, 16, buf, 512));
    fx_assert_field(&cmd, true, 1, 7);
    fx_cdb16(cdb, 0x8b, 0, FX_BLOCKS - 1, 2);
    g_assert_false(fx_run(f->a, &cmd, cdb, 16, buf, 1024));
    fx_assert_sense(&cmd, 0x5, 0x21, 0x00);
}

static void
test_read_defect_data(struct fx *f, gconstpointer d)
{
    uint8_t rdd10[16] = {0x37, 0, 0x18 | 0x03};
    uint8_t rdd12[16] = {0xb7, 0x08 | 0x05};
    struct sdev_cmd cmd;

    fx_put_be16(rdd10 + 7, 32);
    g_assert_true(fx_run(f->a, &cmd, rdd10, 10, NULL, 0));
    fx_assert_good(&cmd);
    g_assert_cmpuint(cmd.data_in_len, ==, 4);
    g_assert_cmphex(cmd.data_in[1], ==, 0x1b);
    g_assert_cmpuint((cmd.data_in[2] << 8) | cmd.data_in[3], ==, 0);
    sdev_cmd_clear(&cmd);
    fx_put_be32(rdd12 + 6, 32);
    g_assert_true(fx_run(f->a, &cmd, rdd12, 12, NULL, 0));
    fx_assert_good(&cmd);
    g_assert_cmpuint(cmd.data_in_len, ==, 8);
    g_assert_cmphex(cmd.data_in[1], ==, 0x0d);
    g_assert_cmpuint(fx_be32(cmd.data_in + 4), ==, 0);
    sdev_cmd_clear(&cmd);
    rdd10[2] = 0x07; /* reserved format */
    g_assert_false(fx_run(f->a, &cmd, rdd10, 10, NULL, 0));
    fx_assert_field(&cmd, true, 2, 2);
}

static void
test_prefetch(struct fx *f, gconstpointer d)
{
    uint8_t cdb[16];
    struct sdev_cmd cmd;

    fx_cdb10(cdb, 0x34, 0x02, 0, 128);
    g_assert_true(fx_run(f->a, &cmd, cdb, 10, NULL, 0));
    fx_assert_good(&cmd);
    g_assert_cmpint(cmd.dir, ==, SDEV_DIR_NONE);
    fx_cdb16(cdb, 0x90, 0, FX_BLOCKS - 1, 2);
    g_assert_false(fx_run(f->a, &cmd, cdb, 16, NULL, 0));
    fx_assert_sense(&cmd, 0x5, 0x21, 0x00);
}

static void
test_read_capacity(struct fx *f, gconstpointer d)
{
    uint8_t rc10[16] = {0x25};
    uint8_t rc16[16] = {0x9e, 0x10};
    struct sdev_cmd cmd;

    g_assert_true(fx_run(f->a, &cmd, rc10, 10, NULL, 0));
    fx_assert_good(&cmd);
    g_assert_cmpuint(fx_be32(cmd.data_in), ==, FX_BLOCKS - 1);
    g_assert_cmpuint(fx_be32(cmd.data_in + 4), ==, 512);
    sdev_cmd_clear(&cmd);
    rc10[5] = 1; /* LBA without PMI */
    g_assert_false(fx_run(f->a, &cmd, rc10, 10, NULL, 0));
    fx_assert_field(&cmd, true, 2, -1);

    fx_put_be32(rc16 + 10, 32);
    g_assert_true(fx_run(f->a, &cmd, rc16, 16, NULL, 0));
    fx_assert_good(&cmd);
    g_assert_cmpuint(cmd.data_in_len, ==, 32);
    g_assert_cmpuint(fx_be64(cmd.data_in), ==, FX_BLOCKS - 1);
    g_assert_cmpuint(fx_be32(cmd.data_in + 8), ==, 512);
    /* One logical block per physical block: the overlay does 512-byte I/O at
     * any alignment; the granule is a VPD B0h hint only (test-spc). */
    g_assert_cmpuint(cmd.data_in[13] & 0x0f, ==, 0);
    g_assert_cmphex(cmd.data_in[14] & 0xc0, ==, 0xc0); /* LBPME, LBPRZ */
    sdev_cmd_clear(&cmd);
    fx_put_be32(rc16 + 10, 12); /* allocation length truncates */
    g_assert_true(fx_run(f->a, &cmd, rc16, 16, NULL, 0));
    g_assert_cmpuint(cmd.data_in_len, ==, 12);
    sdev_cmd_clear(&cmd);
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    FX_TEST("/scsi/sbc/write-read", test_write_read);
    FX_TEST("/scsi/sbc/write-fua-and-sizes", test_write_fua_and_sizes);
    FX_TEST("/scsi/sbc/write-short-data", test_write_short_data);
    FX_TEST("/scsi/sbc/verify", test_verify);
    FX_TEST("/scsi/sbc/write-and-verify", test_write_and_verify);
    FX_TEST("/scsi/sbc/compare-and-write", test_compare_and_write);
    FX_TEST("/scsi/sbc/unmap", test_unmap);
    FX_TEST("/scsi/sbc/unmap-limits", test_unmap_limits);
    FX_TEST("/scsi/sbc/write-same", test_write_same);
    FX_TEST("/scsi/sbc/get-lba-status", test_get_lba_status);
    FX_TEST("/scsi/sbc/sync-cache", test_sync_cache);
    FX_TEST("/scsi/sbc/orwrite", test_orwrite);
    FX_TEST("/scsi/sbc/read-defect-data", test_read_defect_data);
    FX_TEST("/scsi/sbc/prefetch", test_prefetch);
    FX_TEST("/scsi/sbc/read-capacity", test_read_capacity);
    return g_test_run();
}
