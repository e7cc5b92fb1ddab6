/* test-cdb.c — proxy/scsi parse layer: the descriptor table (every opcode,
 * reserved bits, field checks with field pointers), unit attentions, the
 * sense table and errno mapping, answers for a missing LUN. */
#include <errno.h>
#include <string.h>

#include "sdev-int.h"
#include "scsi-fixture.h"

#define FX_TEST(path, fn) g_test_add(path, struct fx, NULL, fx_setup, fn, fx_teardown)
#define FX_TEST_RO(path, fn) g_test_add(path, struct fx, "ro", fx_setup, fn, fx_teardown)

static void
test_unknown_opcode(struct fx *f, gconstpointer d)
{
    uint8_t cdb[16] = {0x02};
    struct sdev_cmd cmd;

    g_assert_false(fx_run(f->a, &cmd, cdb, 6, NULL, 0));
    fx_assert_sense(&cmd, 0x5, 0x20, 0x00);
    g_assert_cmpint(cmd.dir, ==, SDEV_DIR_NONE);
}

static void
test_unknown_service_action(struct fx *f, gconstpointer d)
{
    uint8_t cdb[16] = {0x5e, 0x04};
    struct sdev_cmd cmd;

    g_assert_false(fx_run(f->a, &cmd, cdb, 10, NULL, 0));
    fx_assert_sense(&cmd, 0x5, 0x24, 0x00);
    fx_assert_field(&cmd, true, 1, 4);
}

struct reserved_ctx {
    struct fx *f;
    unsigned checked;
};

/* Every supported command: a CDB with only the opcode (and service action)
 * must never be INVALID COMMAND OPERATION CODE, and any bit outside the
 * command's CDB usage bitmap must give INVALID FIELD IN CDB pointing at it. */
static bool
check_reserved_bits(uint8_t opcode, uint8_t sa, bool has_sa, const struct sdev_op *op,
                    void *user_data)
{
    struct reserved_ctx *ctx = user_data;
    uint8_t cdb[16] = {0};
    struct sdev_cmd cmd;

    cdb[0] = opcode;
    if (has_sa)
        cdb[1] = sa;
    fx_run(ctx->f->a, &cmd, cdb, op->cdb_len, NULL, 0);
    sdev_cmd_clear(&cmd);
    if (cmd.status == SDEV_STATUS_CHECK_CONDITION)
        g_assert_false(cmd.sense[2] == 0x5 && cmd.sense[12] == 0x20);
    g_assert_cmphex(op->usage[0], ==, opcode);

    for (unsigned i = 1; i < op->cdb_len; i++) {
        uint8_t allowed = op->usage[i] | (i == 1 && has_sa ? 0x1f : 0);
        for (int bit = 7; bit >= 0; bit--) {
            if (allowed & (1u << bit))
                continue;
            uint8_t bad[16];
            memcpy(bad, cdb, 16);
            bad[i] |= (uint8_t)(1u << bit);
            g_assert_false(fx_run(ctx->f->a, &cmd, bad, op->cdb_len, NULL, 0));
            fx_assert_sense(&cmd, 0x5, 0x24, 0x00);
            fx_assert_field(&cmd, true, i, bit);
            ctx->checked++;
        }
    }
    return true;
}

static void
test_reserved_bits(struct fx *f, gconstpointer d)
{
    struct reserved_ctx ctx = {f, 0};

    sdev_op_foreach(check_reserved_bits, &ctx);
    g_assert_cmpuint(ctx.checked, >, 300);
}

static void
test_read10_lba_out_of_range(struct fx *f, gconstpointer d)
{
    uint8_t cdb[16];
    struct sdev_cmd cmd;

    fx_cdb10(cdb, 0x28, 0, FX_BLOCKS - 1, 2);
    g_assert_false(fx_run(f->a, &cmd, cdb, 10, NULL, 0));
    fx_assert_sense(&cmd, 0x5, 0x21, 0x00);
    fx_cdb10(cdb, 0x28, 0, FX_BLOCKS + 1, 0);
    g_assert_false(fx_run(f->a, &cmd, cdb, 10, NULL, 0));
    fx_assert_sense(&cmd, 0x5, 0x21, 0x00);
    /* 0 blocks at the end of the medium is fine */
    fx_cdb10(cdb, 0x28, 0, FX_BLOCKS, 0);
    g_assert_true(fx_run(f->a, &cmd, cdb, 10, NULL, 0));
    fx_assert_good(&cmd);
    g_assert_cmpuint(cmd.xfer_len, ==, 0);
}

static void
test_read16_lba_wraps(struct fx *f, gconstpointer d)
{
    uint8_t cdb[16];
    struct sdev_cmd cmd;

    fx_cdb16(cdb, 0x88, 0, UINT64_MAX, 2);
    g_assert_false(fx_run(f->a, &cmd, cdb, 16, NULL, 0));
    fx_assert_sense(&cmd, 0x5, 0x21, 0x00);
}

static void
test_read10_rdprotect(struct fx *f, gconstpointer d)
{
    uint8_t cdb[16];
    struct sdev_cmd cmd;

    fx_cdb10(cdb, 0x28, 0x20, 0, 1);
    g_assert_false(fx_run(f->a, &cmd, cdb, 10, NULL, 0));
    fx_assert_sense(&cmd, 0x5, 0x24, 0x00);
    fx_assert_field(&cmd, true, 1, 7);
}

static void
test_read12_too_long(struct fx *f, gconstpointer d)
{
    uint8_t cdb[16] = {0xa8};
    struct sdev_cmd cmd;

    fx_put_be32(cdb + 6, (32u << 20) / 512 + 1); /* one block over MAXIMUM TRANSFER LENGTH */
    g_assert_false(fx_run(f->a, &cmd, cdb, 12, NULL, 0));
    fx_assert_sense(&cmd, 0x5, 0x24, 0x00);
    fx_assert_field(&cmd, true, 6, -1);
}

static void
test_read6_zero_is_256(struct fx *f, gconstpointer d)
{
    uint8_t cdb[16] = {0x08, 0x00, 0x00, 0x10, 0x00};
    struct sdev_cmd cmd;

    g_assert_true(fx_run(f->a, &cmd, cdb, 6, NULL, 0));
    fx_assert_good(&cmd);
    g_assert_cmpint(cmd.dir, ==, SDEV_DIR_READ);
    g_assert_cmpuint(cmd.xfer_len, ==, 256 * 512);
    g_assert_cmpuint(cmd.data_in_len, ==, 256 * 512);
    for (uint32_t i = 0; i < cmd.data_in_len; i++)
        g_assert_cmpuint(cmd.data_in[i], ==, fx_base_byte(16 * 512 + i));
    sdev_cmd_clear(&cmd);
}

static void
test_write16_direction(struct fx *f, gconstpointer d)
{
    uint8_t cdb[16];
    struct sdev_cmd cmd = {0};

    fx_cdb16(cdb, 0x8a, 0x08, 100, 3);
    memcpy(cmd.cdb, cdb, 16);
    cmd.cdb_len = 16;
    g_assert_true(sdev_cmd_parse(f->a, &cmd));
    g_assert_cmpint(cmd.dir, ==, SDEV_DIR_WRITE);
    g_assert_cmpuint(cmd.xfer_len, ==, 3 * 512);
    sdev_cmd_clear(&cmd);
}

static void
test_writesame_zero_blocks(struct fx *f, gconstpointer d)
{
    uint8_t cdb[16];
    uint8_t block[512] = {0};
    struct sdev_cmd cmd;

    /* WSNZ=0: 0 blocks runs to the end of the medium */
    fx_cdb10(cdb, 0x41, 0, FX_BLOCKS - 100, 0);
    g_assert_true(fx_run(f->a, &cmd, cdb, 10, block, 512));
    fx_assert_good(&cmd);
    g_assert_cmpuint(cmd.nblocks, ==, 100);
    /* past the end the LBA is what is wrong */
    fx_cdb10(cdb, 0x41, 0, FX_BLOCKS + 1, 0);
    g_assert_false(fx_run(f->a, &cmd, cdb, 10, block, 512));
    fx_assert_sense(&cmd, 0x5, 0x21, 0x00);
    /* the data-out must be exactly one block */
    fx_cdb10(cdb, 0x41, 0, 0, 1);
    g_assert_false(fx_run(f->a, &cmd, cdb, 10, block, 256));
    fx_assert_sense(&cmd, 0x5, 0x24, 0x00);
    /* ANCHOR is not supported */
    fx_cdb16(cdb, 0x93, 0x10, 0, 1);
    g_assert_false(fx_run(f->a, &cmd, cdb, 16, block, 512));
    fx_assert_field(&cmd, true, 1, 4);
}

/* MAXIMUM WRITE SAME LENGTH (512 MiB) on a 2 GiB disk, explicit or implied
 * by 0 blocks; and the Block Limits maximum transfer length. */
static void
test_big_disk_limits(struct fx *f, gconstpointer d)
{
    uint8_t cdb[16];
    uint8_t block[512] = {0};
    struct sdev_cmd cmd;
    uint32_t max_ws = (512u << 20) / 512;

    fx_cdb16(cdb, 0x93, 0x08, 0, max_ws + 1);
    g_assert_false(fx_run(f->a, &cmd, cdb, 16, block, 512));
    fx_assert_field(&cmd, true, 10, -1);
    fx_cdb16(cdb, 0x93, 0x08, 0, 0); /* to the end: 4M blocks */
    g_assert_false(fx_run(f->a, &cmd, cdb, 16, block, 512));
    fx_assert_field(&cmd, true, 10, -1);
    fx_cdb16(cdb, 0x93, 0x08, FX_BIG_DISK_SIZE / 512 - max_ws, 0); /* exactly the maximum */
    g_assert_true(fx_run(f->a, &cmd, cdb, 16, block, 512));
    fx_assert_good(&cmd);
    fx_cdb16(cdb, 0x88, 0, 0, (32u << 20) / 512 + 1);
    g_assert_false(fx_run(f->a, &cmd, cdb, 16, NULL, 0));
    fx_assert_field(&cmd, true, 10, -1);
}

static void
test_compare_and_write_too_long(struct fx *f, gconstpointer d)
{
    uint8_t cdb[16] = {0x89};
    struct sdev_cmd cmd;

    cdb[13] = SDEV_MAX_CAW_BLOCKS + 1;
    g_assert_false(fx_run(f->a, &cmd, cdb, 16, NULL, 0));
    fx_assert_field(&cmd, true, 13, -1);
}

static void
test_verify_bytchk_reserved(struct fx *f, gconstpointer d)
{
    uint8_t cdb[16];
    struct sdev_cmd cmd;

    fx_cdb10(cdb, 0x2f, 0x04, 0, 1); /* BYTCHK 10b */
    g_assert_false(fx_run(f->a, &cmd, cdb, 10, NULL, 0));
    fx_assert_field(&cmd, true, 1, 2);
    fx_cdb10(cdb, 0x2f, 0x06, 0, 4); /* BYTCHK 11b: one block of data-out */
    memset(&cmd, 0, sizeof(cmd));
    memcpy(cmd.cdb, cdb, 16);
    cmd.cdb_len = 16;
    g_assert_true(sdev_cmd_parse(f->a, &cmd));
    g_assert_cmpuint(cmd.xfer_len, ==, 512);
    g_assert_cmpint(cmd.dir, ==, SDEV_DIR_WRITE);
}

static void
test_inquiry_page_without_evpd(struct fx *f, gconstpointer d)
{
    uint8_t cdb[16] = {0x12, 0x00, 0x80, 0x00, 0xff};
    struct sdev_cmd cmd;

    g_assert_false(fx_run(f->a, &cmd, cdb, 6, NULL, 0));
    fx_assert_field(&cmd, true, 2, -1);
    cdb[1] = 0x01;
    cdb[2] = 0x99; /* unknown VPD page */
    fx_run(f->a, &cmd, cdb, 6, NULL, 0);
    fx_assert_sense(&cmd, 0x5, 0x24, 0x00);
    fx_assert_field(&cmd, true, 2, -1);
    g_assert_null(cmd.data_in);
}

static void
test_prevent_allow(struct fx *f, gconstpointer d)
{
    uint8_t cdb[16] = {0x1e};
    struct sdev_cmd cmd;

    g_assert_true(fx_run(f->a, &cmd, cdb, 6, NULL, 0));
    fx_assert_good(&cmd);
    cdb[4] = 0x01; /* PREVENT: the medium is not removable */
    g_assert_false(fx_run(f->a, &cmd, cdb, 6, NULL, 0));
    fx_assert_field(&cmd, true, 4, 1);
}

static void
test_mode_sense_saved_and_bad_page(struct fx *f, gconstpointer d)
{
    uint8_t cdb[16] = {0x1a, 0x00, 0xc8, 0x00, 0xff}; /* PC=11b */
    struct sdev_cmd cmd;

    g_assert_false(fx_run(f->a, &cmd, cdb, 6, NULL, 0));
    fx_assert_sense(&cmd, 0x5, 0x39, 0x00);
    cdb[2] = 0x05; /* no such page */
    g_assert_false(fx_run(f->a, &cmd, cdb, 6, NULL, 0));
    fx_assert_field(&cmd, true, 2, 5);
    cdb[2] = 0x08;
    cdb[3] = 0x01; /* subpage */
    g_assert_false(fx_run(f->a, &cmd, cdb, 6, NULL, 0));
    fx_assert_field(&cmd, true, 3, -1);
    uint8_t sel[16] = {0x15, 0x11, 0, 0, 0}; /* SP=1 */
    g_assert_false(fx_run(f->a, &cmd, sel, 6, NULL, 0));
    fx_assert_sense(&cmd, 0x5, 0x39, 0x00);
}

static void
test_prout_parse(struct fx *f, gconstpointer d)
{
    uint8_t cdb[16] = {0x5f, 0x01, 0x01};
    struct sdev_cmd cmd;

    fx_put_be32(cdb + 5, 23);
    g_assert_false(fx_run(f->a, &cmd, cdb, 10, NULL, 0));
    fx_assert_sense(&cmd, 0x5, 0x1a, 0x00);
    fx_put_be32(cdb + 5, 24);
    cdb[2] = 0x02; /* type 2 is obsolete */
    g_assert_false(fx_run(f->a, &cmd, cdb, 10, NULL, 0));
    fx_assert_field(&cmd, true, 2, 3);
    cdb[2] = 0x11; /* scope 1 */
    g_assert_false(fx_run(f->a, &cmd, cdb, 10, NULL, 0));
    fx_assert_field(&cmd, true, 2, 7);
}

static void
test_rsoc_options(struct fx *f, gconstpointer d)
{
    uint8_t cdb[16] = {0xa3, 0x0c, 0x01, 0x9e};
    struct sdev_cmd cmd;

    fx_put_be32(cdb + 6, 512);
    g_assert_false(fx_run(f->a, &cmd, cdb, 12, NULL, 0)); /* 9Eh has service actions */
    fx_assert_sense(&cmd, 0x5, 0x24, 0x00);
    cdb[2] = 0x02;
    cdb[3] = 0x28; /* READ(10) has none */
    g_assert_false(fx_run(f->a, &cmd, cdb, 12, NULL, 0));
    fx_assert_sense(&cmd, 0x5, 0x24, 0x00);
    cdb[2] = 0x05;
    g_assert_false(fx_run(f->a, &cmd, cdb, 12, NULL, 0));
    fx_assert_field(&cmd, true, 2, 2);
}

static void
test_read_only_write(struct fx *f, gconstpointer d)
{
    uint8_t cdb[16];
    uint8_t buf[512] = {1};
    struct sdev_cmd cmd;

    fx_cdb10(cdb, 0x2a, 0, 0, 1);
    g_assert_false(fx_run(f->a, &cmd, cdb, 10, buf, 512));
    fx_assert_sense(&cmd, 0x7, 0x27, 0x00);
    uint8_t unmap[16] = {0x42};
    fx_put_be16(unmap + 7, 24);
    g_assert_false(fx_run(f->a, &cmd, unmap, 10, NULL, 0));
    fx_assert_sense(&cmd, 0x7, 0x27, 0x00);
    /* reads work */
    fx_cdb10(cdb, 0x28, 0, 0, 1);
    g_assert_true(fx_run(f->a, &cmd, cdb, 10, NULL, 0));
    fx_assert_good(&cmd);
    g_assert_cmpuint(cmd.data_in[5], ==, fx_base_byte(5));
    sdev_cmd_clear(&cmd);
}

static void
test_ua_new_nexus(struct fx *f, gconstpointer d)
{
    struct sdev_nexus *c = sdev_nexus_new(f->lu, "iqn.2024-01.test:c,i,0x1", NULL, 0);
    uint8_t tur[16] = {0};
    uint8_t inq[16] = {0x12, 0, 0, 0, 96};
    struct sdev_cmd cmd;

    /* INQUIRY passes a pending unit attention without clearing it */
    g_assert_true(fx_run(c, &cmd, inq, 6, NULL, 0));
    fx_assert_good(&cmd);
    sdev_cmd_clear(&cmd);
    g_assert_false(fx_run(c, &cmd, tur, 6, NULL, 0));
    fx_assert_sense(&cmd, 0x6, 0x29, 0x00);
    g_assert_true(fx_run(c, &cmd, tur, 6, NULL, 0));
    fx_assert_good(&cmd);
    /* an unknown opcode still reports the unit attention first */
    sdev_lu_raise_ua_all(f->lu, 0x2a, 0x09);
    uint8_t bad[16] = {0xff};
    g_assert_false(fx_run(c, &cmd, bad, 6, NULL, 0));
    fx_assert_sense(&cmd, 0x6, 0x2a, 0x09);
    g_assert_false(fx_run(c, &cmd, bad, 6, NULL, 0));
    fx_assert_sense(&cmd, 0x5, 0x20, 0x00);
    sdev_nexus_free(c);
}

static void
test_request_sense_clears_ua(struct fx *f, gconstpointer d)
{
    uint8_t rs[16] = {0x03, 0, 0, 0, 252};
    uint8_t tur[16] = {0};
    struct sdev_cmd cmd;

    sdev_lu_raise_ua_all(f->lu, 0x2a, 0x09); /* CAPACITY DATA HAS CHANGED */
    g_assert_true(fx_run(f->a, &cmd, rs, 6, NULL, 0));
    fx_assert_good(&cmd);
    g_assert_cmpuint(cmd.data_in_len, ==, 18);
    g_assert_cmphex(cmd.data_in[0], ==, 0x70);
    g_assert_cmphex(cmd.data_in[2], ==, 0x06);
    g_assert_cmphex(cmd.data_in[12], ==, 0x2a);
    g_assert_cmphex(cmd.data_in[13], ==, 0x09);
    sdev_cmd_clear(&cmd);
    g_assert_true(fx_run(f->a, &cmd, tur, 6, NULL, 0));
    fx_assert_good(&cmd);
    /* nothing pending: NO SENSE; DESC=1 gives descriptor format */
    rs[1] = 0x01;
    g_assert_true(fx_run(f->a, &cmd, rs, 6, NULL, 0));
    g_assert_cmpuint(cmd.data_in_len, ==, 8);
    g_assert_cmphex(cmd.data_in[0], ==, 0x72);
    g_assert_cmphex(cmd.data_in[1], ==, 0x00);
    sdev_cmd_clear(&cmd);
    /* the other nexus still has its own copy */
    g_assert_false(fx_run(f->b, &cmd, tur, 6, NULL, 0));
    fx_assert_sense(&cmd, 0x6, 0x2a, 0x09);
}

static void
test_sense_errno_map(void)
{
    static const struct {
        int err;
        bool write;
        enum sdev_sense reason;
        uint8_t key, asc, ascq;
    } rows[] = {
        {-ENOSPC, true, SDEV_SENSE_SPACE_ALLOC_FAILED, 0x7, 0x27, 0x07},
        {-EDQUOT, true, SDEV_SENSE_SPACE_ALLOC_FAILED, 0x7, 0x27, 0x07},
        {-EIO, false, SDEV_SENSE_READ_ERROR, 0x3, 0x11, 0x00},
        {-EIO, true, SDEV_SENSE_WRITE_ERROR, 0x3, 0x0c, 0x00},
        {-EROFS, true, SDEV_SENSE_WRITE_PROTECTED, 0x7, 0x27, 0x00},
        {-ENOMEM, false, SDEV_SENSE_INTERNAL_FAILURE, 0x4, 0x44, 0x00},
    };
    for (size_t i = 0; i < G_N_ELEMENTS(rows); i++) {
        uint8_t key, asc, ascq;
        enum sdev_sense r = sdev_sense_from_errno(rows[i].err, rows[i].write);
        g_assert_cmpint(r, ==, rows[i].reason);
        sdev_sense_lookup(r, &key, &asc, &ascq);
        g_assert_cmphex(key, ==, rows[i].key);
        g_assert_cmphex(asc, ==, rows[i].asc);
        g_assert_cmphex(ascq, ==, rows[i].ascq);
    }
    g_assert_cmpint(sdev_sense_from_errno(0, true), ==, SDEV_SENSE_OK);
    /* every reason has a row */
    for (int r = 1; r < SDEV_SENSE_COUNT; r++)
        g_assert_cmpstr(sdev_sense_name(r), !=, "?");
}

static void
test_sense_formats(void)
{
    struct sdev_req d = {0};
    uint8_t buf[SDEV_SENSE_MAX];

    d.info_valid = true;
    d.info = 0x1234;
    d.field_valid = true;
    d.field_in_cdb = false;
    d.field_byte = 20;
    d.field_bit = 3;
    g_assert_cmpuint(sdev_sense_build(buf, false, 0xe, 0x1d, 0x00, &d), ==, 18);
    g_assert_cmphex(buf[0], ==, 0xf0); /* VALID | 70h */
    g_assert_cmphex(fx_be32(buf + 3), ==, 0x1234);
    g_assert_cmphex(buf[15], ==, 0x80 | 0x08 | 3);
    g_assert_cmpuint(buf[17], ==, 20);
    g_assert_cmpuint(sdev_sense_build(buf, true, 0xe, 0x1d, 0x00, &d), ==, 8 + 12 + 8);
    g_assert_cmphex(buf[0], ==, 0x72);
    g_assert_cmpuint(buf[7], ==, 20);
    g_assert_cmphex(buf[8], ==, 0x00); /* information descriptor */
    g_assert_cmphex(buf[10], ==, 0x80);
    g_assert_cmphex(fx_be64(buf + 12), ==, 0x1234);
    g_assert_cmphex(buf[20], ==, 0x02); /* sense key specific descriptor */
    g_assert_cmphex(buf[24], ==, 0x80 | 0x08 | 3);
}

static void
test_no_lun(void)
{
    struct sdev_cmd cmd = {0};

    cmd.cdb[0] = 0x12;
    cmd.cdb[4] = 36;
    cmd.cdb_len = 16;
    sdev_cmd_exec_no_lun(&cmd);
    g_assert_cmphex(cmd.status, ==, SDEV_STATUS_GOOD);
    g_assert_cmpuint(cmd.data_in_len, ==, 36);
    g_assert_cmphex(cmd.data_in[0], ==, 0x7f);
    sdev_cmd_clear(&cmd);

    memset(&cmd, 0, sizeof(cmd));
    cmd.cdb_len = 16; /* TEST UNIT READY */
    sdev_cmd_exec_no_lun(&cmd);
    fx_assert_sense(&cmd, 0x5, 0x25, 0x00);

    memset(&cmd, 0, sizeof(cmd));
    cmd.cdb[0] = 0x03;
    cmd.cdb[4] = 18;
    cmd.cdb_len = 16;
    sdev_cmd_exec_no_lun(&cmd);
    g_assert_cmphex(cmd.status, ==, SDEV_STATUS_GOOD);
    g_assert_cmphex(cmd.data_in[12], ==, 0x25);
    sdev_cmd_clear(&cmd);

    memset(&cmd, 0, sizeof(cmd));
    cmd.cdb[0] = 0xa0;
    cmd.cdb[9] = 16;
    cmd.cdb_len = 16;
    sdev_cmd_exec_no_lun(&cmd);
    g_assert_cmpuint(cmd.data_in_len, ==, 16);
    g_assert_cmpuint(fx_be32(cmd.data_in), ==, 8);
    sdev_cmd_clear(&cmd);
}

struct op_list {
    uint8_t opcode[128], sa[128], len[128];
    bool has_sa[128];
    unsigned n;
};

static bool
collect_op(uint8_t opcode, uint8_t sa, bool has_sa, const struct sdev_op *op, void *user_data)
{
    struct op_list *l = user_data;
    g_assert_cmpuint(l->n, <, 128);
    l->opcode[l->n] = opcode;
    l->sa[l->n] = sa;
    l->has_sa[l->n] = has_sa;
    l->len[l->n] = op->cdb_len;
    l->n++;
    return true;
}

/* Random CDBs (mostly small field values, so that many pass parse and run)
 * and random parameter data: every answer must be well formed, and nothing
 * may read or write out of bounds (run under ASan in CI). */
static void
test_random_cdbs(struct fx *f, gconstpointer d)
{
    struct op_list ops = {0};
    uint8_t data[4096];
    unsigned good = 0, check = 0;

    sdev_op_foreach(collect_op, &ops);
    for (unsigned iter = 0; iter < 10000; iter++) {
        unsigned k = (unsigned)g_test_rand_int_range(0, (gint32)ops.n + 4);
        uint8_t cdb[16];
        struct sdev_cmd cmd;
        uint32_t len = (uint32_t)g_test_rand_int_range(0, sizeof(data) + 1);

        for (int i = 0; i < 16; i++)
            cdb[i] = (uint8_t)g_test_rand_int_range(0, 256);
        if (k < ops.n) {
            cdb[0] = ops.opcode[k];
            if (ops.has_sa[k])
                cdb[1] = (uint8_t)((cdb[1] & 0xe0) | ops.sa[k]);
            for (int i = 1; i < 16; i++) {
                if (g_test_rand_int_range(0, 10) < 8)
                    cdb[i] = i == 1 ? (cdb[i] & 0x1f) : 0;
            }
            if (g_test_rand_bit())
                cdb[ops.len[k] - 2] = (uint8_t)g_test_rand_int_range(0, 32);
        }
        for (uint32_t i = 0; i < len; i++)
            data[i] = g_test_rand_bit() ? 0 : (uint8_t)g_test_rand_int_range(0, 256);
        if (len >= 24 && g_test_rand_bit()) {
            data[20] = 0; /* plausible PR OUT / UNMAP headers now and then */
            data[0] = 0;
            data[1] = (uint8_t)(len > 255 ? 254 : len - 2);
        }
        fx_run(f->a, &cmd, cdb, 16, data, len);
        g_assert_cmpuint(cmd.sense_len, <=, SDEV_SENSE_MAX);
        g_assert_cmpuint(cmd.data_in_len, <=, cmd.xfer_len);
        if (cmd.data_in_len > 0)
            g_assert_nonnull(cmd.data_in);
        switch (cmd.status) {
        case SDEV_STATUS_GOOD:
            g_assert_cmpuint(cmd.sense_len, ==, 0);
            good++;
            break;
        case SDEV_STATUS_CHECK_CONDITION:
            g_assert_true(cmd.sense_len == 18 || (cmd.sense[0] & 0x7f) == 0x72);
            g_assert_cmpuint(cmd.data_in_len, ==, 0);
            check++;
            break;
        case SDEV_STATUS_RESERVATION_CONFLICT:
            break;
        default:
            g_assert_not_reached();
        }
        sdev_cmd_clear(&cmd);
    }
    g_test_message("%u GOOD, %u CHECK CONDITION", good, check);
    g_assert_cmpuint(good, >, 300);
    g_assert_cmpuint(check, >, 1000);
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    FX_TEST("/scsi/cdb/unknown-opcode", test_unknown_opcode);
    FX_TEST("/scsi/cdb/unknown-service-action", test_unknown_service_action);
    FX_TEST("/scsi/cdb/reserved-bits-every-opcode", test_reserved_bits);
    FX_TEST("/scsi/cdb/read10-lba-out-of-range", test_read10_lba_out_of_range);
    FX_TEST("/scsi/cdb/read16-lba-wraps", test_read16_lba_wraps);
    FX_TEST("/scsi/cdb/read10-rdprotect", test_read10_rdprotect);
    FX_TEST("/scsi/cdb/read12-too-long", test_read12_too_long);
    FX_TEST("/scsi/cdb/read6-zero-is-256", test_read6_zero_is_256);
    FX_TEST("/scsi/cdb/write16-direction", test_write16_direction);
    FX_TEST("/scsi/cdb/writesame-zero-blocks", test_writesame_zero_blocks);
    FX_TEST("/scsi/cdb/compare-and-write-too-long", test_compare_and_write_too_long);
    g_test_add("/scsi/cdb/big-disk-limits", struct fx, "big", fx_setup, test_big_disk_limits,
               fx_teardown);
    FX_TEST("/scsi/cdb/verify-bytchk", test_verify_bytchk_reserved);
    FX_TEST("/scsi/cdb/inquiry-page-without-evpd", test_inquiry_page_without_evpd);
    FX_TEST("/scsi/cdb/prevent-allow", test_prevent_allow);
    FX_TEST("/scsi/cdb/mode-sense-saved-and-bad-page", test_mode_sense_saved_and_bad_page);
    FX_TEST("/scsi/cdb/prout-parse", test_prout_parse);
    FX_TEST("/scsi/cdb/rsoc-options", test_rsoc_options);
    FX_TEST_RO("/scsi/cdb/read-only-write", test_read_only_write);
    FX_TEST("/scsi/ua/new-nexus", test_ua_new_nexus);
    FX_TEST("/scsi/ua/request-sense-clears", test_request_sense_clears_ua);
    FX_TEST("/scsi/cdb/random-cdbs", test_random_cdbs);
    g_test_add_func("/scsi/sense/errno-map", test_sense_errno_map);
    g_test_add_func("/scsi/sense/formats", test_sense_formats);
    g_test_add_func("/scsi/cdb/no-lun", test_no_lun);
    return g_test_run();
}
