/* test-spc.c — proxy/scsi primary commands: INQUIRY and VPD pages, MODE
 * SENSE / MODE SELECT, REPORT LUNS, REPORT SUPPORTED OPERATION CODES, REPORT
 * SUPPORTED TASK MANAGEMENT FUNCTIONS, START STOP UNIT, task management. */
#include <string.h>

#include "scsi-fixture.h"

#define FX_TEST(path, fn) g_test_add(path, struct fx, NULL, fx_setup, fn, fx_teardown)
#define FX_TEST_RO(path, fn) g_test_add(path, struct fx, "ro", fx_setup, fn, fx_teardown)

static void
inquiry(struct sdev_nexus *n, struct sdev_cmd *cmd, bool evpd, uint8_t page, uint16_t alloc)
{
    uint8_t cdb[16] = {0x12, evpd ? 0x01 : 0x00, page};

    fx_put_be16(cdb + 3, alloc);
    g_assert_true(fx_run(n, cmd, cdb, 6, NULL, 0));
    fx_assert_good(cmd);
}

/* Find a designator of (association, type) in a device identification page. */
static const uint8_t *
find_designator(const uint8_t *page, size_t len, uint8_t assoc, uint8_t type)
{
    for (size_t off = 4; off + 4 <= len; off += 4 + page[off + 3]) {
        const uint8_t *d = page + off;
        if (((d[1] >> 4) & 3) == assoc && (d[1] & 0x0f) == type)
            return d;
    }
    return NULL;
}

static const uint8_t *
must_find(const uint8_t *page, size_t len, uint8_t assoc, uint8_t type)
{
    const uint8_t *d = find_designator(page, len, assoc, type);
    if (!d)
        g_error("no designator association %u type %u", assoc, type);
    return d;
}

static void
test_inquiry_standard(struct fx *f, gconstpointer d)
{
    struct sdev_cmd cmd;

    inquiry(f->a, &cmd, false, 0, 255);
    g_assert_cmpuint(cmd.data_in_len, ==, 96);
    g_assert_cmphex(cmd.data_in[0], ==, 0x00);
    g_assert_cmphex(cmd.data_in[2], ==, 0x06); /* SPC-4 */
    g_assert_cmphex(cmd.data_in[3], ==, 0x12); /* HISUP, format 2 */
    g_assert_cmpuint(cmd.data_in[4], ==, 91);
    g_assert_cmphex(cmd.data_in[5] & 0x30, ==, 0x00); /* TPGS 0 */
    g_assert_cmphex(cmd.data_in[7], ==, 0x02);        /* CMDQUE */
    g_assert_cmpmem(cmd.data_in + 8, 8, "OVGATE  ", 8);
    sdev_cmd_clear(&cmd);
    inquiry(f->a, &cmd, false, 0, 5);
    g_assert_cmpuint(cmd.data_in_len, ==, 5);
    sdev_cmd_clear(&cmd);
}

static void
test_inquiry_vpd(struct fx *f, gconstpointer d)
{
    struct sdev_cmd cmd;
    static const uint8_t pages[] = {0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2};

    inquiry(f->a, &cmd, true, 0x00, 255);
    g_assert_cmpuint(cmd.data_in[3], ==, sizeof(pages));
    g_assert_cmpmem(cmd.data_in + 4, sizeof(pages), pages, sizeof(pages));
    sdev_cmd_clear(&cmd);

    inquiry(f->a, &cmd, true, 0x80, 255);
    g_assert_cmpuint(cmd.data_in[3], ==, 7);
    g_assert_cmpmem(cmd.data_in + 4, 7, "SN-pc01", 7);
    sdev_cmd_clear(&cmd);

    /* B0: block limits */
    inquiry(f->a, &cmd, true, 0xb0, 255);
    g_assert_cmpuint(cmd.data_in_len, ==, 64);
    g_assert_cmphex(cmd.data_in[4] & 1, ==, 0);                          /* WSNZ */
    g_assert_cmpuint((cmd.data_in[6] << 8) | cmd.data_in[7], ==, FX_GRANULE / 512); /* OTLG */
    g_assert_cmpuint(fx_be32(cmd.data_in + 8), ==, (32u << 20) / 512);   /* max transfer */
    g_assert_cmpuint(fx_be32(cmd.data_in + 24), ==, 256);                /* max unmap descriptors */
    g_assert_cmpuint(fx_be32(cmd.data_in + 28), ==, FX_GRANULE / 512);   /* unmap granularity */
    g_assert_cmpuint(fx_be64(cmd.data_in + 36), ==, (512u << 20) / 512); /* max write same */
    sdev_cmd_clear(&cmd);

    /* B1: non-rotating */
    inquiry(f->a, &cmd, true, 0xb1, 255);
    g_assert_cmpuint((cmd.data_in[4] << 8) | cmd.data_in[5], ==, 1);
    sdev_cmd_clear(&cmd);

    /* B2: LBPU, LBPWS, LBPWS10, LBPRZ=1, thin */
    inquiry(f->a, &cmd, true, 0xb2, 255);
    g_assert_cmphex(cmd.data_in[5] & 0xe0, ==, 0xe0);
    g_assert_cmphex((cmd.data_in[5] >> 2) & 7, ==, 1);
    g_assert_cmphex(cmd.data_in[6] & 7, ==, 2);
    sdev_cmd_clear(&cmd);
}

static void
test_inquiry_device_id(struct fx *f, gconstpointer d)
{
    struct sdev_cmd cmd, cmd2;

    inquiry(f->a, &cmd, true, 0x83, 1024);
    const uint8_t *naa = must_find(cmd.data_in, cmd.data_in_len, 0, 3);
    g_assert_cmpuint(naa[3], ==, 16);
    g_assert_cmphex(naa[4] >> 4, ==, 6);
    uint8_t oui0 = (uint8_t)((naa[4] << 4) | (naa[5] >> 4));
    g_assert_cmphex(oui0 & 0x03, ==, 0x02); /* locally administered, not multicast */
    const uint8_t *t10 = must_find(cmd.data_in, cmd.data_in_len, 0, 1);
    g_assert_cmpmem(t10 + 4, 8, "OVGATE  ", 8);
    const uint8_t *rtp = must_find(cmd.data_in, cmd.data_in_len, 1, 4);
    g_assert_cmpuint(rtp[7], ==, 1);
    const uint8_t *name = must_find(cmd.data_in, cmd.data_in_len, 1, 8);
    g_assert_cmpstr((const char *)name + 4, ==, "iqn.2024-01.tgt:lab,t,0x1");
    const uint8_t *dev = must_find(cmd.data_in, cmd.data_in_len, 2, 8);
    g_assert_cmpstr((const char *)dev + 4, ==, "iqn.2024-01.tgt:lab");
    g_assert_cmpuint(dev[3] % 4, ==, 0);

    /* the same disk gives the same NAA to another LU object (restart) */
    struct sdev_lu *lu2 = sdev_lu_new(f->view, NULL);
    struct sdev_nexus *n2 = sdev_nexus_new(lu2, "iqn.x,i,0x1", NULL, 0);
    inquiry(n2, &cmd2, true, 0x83, 1024);
    const uint8_t *naa2 = must_find(cmd2.data_in, cmd2.data_in_len, 0, 3);
    g_assert_cmpmem(naa + 4, 16, naa2 + 4, 16);
    g_assert_null(find_designator(cmd2.data_in, cmd2.data_in_len, 1, 4));
    sdev_cmd_clear(&cmd2);
    sdev_nexus_free(n2);
    sdev_lu_unref(lu2);
    sdev_cmd_clear(&cmd);
}

static void
mode_sense(struct sdev_nexus *n, struct sdev_cmd *cmd, bool ten, uint8_t b1, uint8_t page,
           uint16_t alloc)
{
    uint8_t cdb[16] = {ten ? 0x5a : 0x1a, b1, page};

    if (ten)
        fx_put_be16(cdb + 7, alloc);
    else
        cdb[4] = (uint8_t)alloc;
    g_assert_true(fx_run(n, cmd, cdb, ten ? 10 : 6, NULL, 0));
    fx_assert_good(cmd);
}

/* Offset of page code in mode parameter data, or 0. */
static size_t
find_page(const uint8_t *buf, size_t len, size_t start, uint8_t page)
{
    for (size_t off = start; off + 2 <= len; off += 2 + buf[off + 1]) {
        if ((buf[off] & 0x3f) == page)
            return off;
    }
    return 0;
}

static void
test_mode_sense(struct fx *f, gconstpointer d)
{
    struct sdev_cmd cmd;

    mode_sense(f->a, &cmd, false, 0x00, 0x3f, 255);
    g_assert_cmpuint(cmd.data_in[0] + 1u, ==, cmd.data_in_len);
    g_assert_cmphex(cmd.data_in[2], ==, 0x10); /* DPOFUA, not WP */
    g_assert_cmpuint(cmd.data_in[3], ==, 8);
    g_assert_cmpuint(fx_be32(cmd.data_in + 4), ==, FX_BLOCKS);
    g_assert_cmpuint(fx_be32(cmd.data_in + 8) & 0xffffff, ==, 512);
    size_t caching = find_page(cmd.data_in, cmd.data_in_len, 12, 0x08);
    g_assert_cmpuint(caching, >, 0);
    g_assert_cmphex(cmd.data_in[caching + 2] & 0x04, ==, 0x04); /* WCE */
    size_t control = find_page(cmd.data_in, cmd.data_in_len, 12, 0x0a);
    g_assert_cmpuint(control, >, 0);
    g_assert_cmphex(cmd.data_in[control + 2] & 0x04, ==, 0x00); /* D_SENSE */
    g_assert_cmpuint(find_page(cmd.data_in, cmd.data_in_len, 12, 0x01), >, 0);
    g_assert_cmpuint(find_page(cmd.data_in, cmd.data_in_len, 12, 0x1c), >, 0);
    sdev_cmd_clear(&cmd);

    /* MODE SENSE(10), long LBA, DBD off, caching only */
    mode_sense(f->a, &cmd, true, 0x10, 0x08, 512);
    g_assert_cmpuint(cmd.data_in_len, ==, 8 + 16 + 20);
    g_assert_cmphex(cmd.data_in[4] & 1, ==, 1);
    g_assert_cmpuint((cmd.data_in[6] << 8) | cmd.data_in[7], ==, 16);
    g_assert_cmpuint(fx_be64(cmd.data_in + 8), ==, FX_BLOCKS);
    g_assert_cmphex(cmd.data_in[24], ==, 0x08);
    sdev_cmd_clear(&cmd);

    /* changeable values: WCE only in caching */
    mode_sense(f->a, &cmd, false, 0x08, 0x48, 255);
    g_assert_cmpuint(cmd.data_in[3], ==, 0); /* DBD */
    g_assert_cmphex(cmd.data_in[4], ==, 0x08);
    g_assert_cmphex(cmd.data_in[6], ==, 0x04);
    sdev_cmd_clear(&cmd);
}

static void
test_mode_sense_read_only(struct fx *f, gconstpointer d)
{
    struct sdev_cmd cmd;

    mode_sense(f->a, &cmd, false, 0x08, 0x3f, 255);
    g_assert_cmphex(cmd.data_in[2] & 0x80, ==, 0x80); /* WP */
    sdev_cmd_clear(&cmd);
}

static void
test_mode_select(struct fx *f, gconstpointer d)
{
    struct sdev_cmd cmd;
    uint8_t sel[16] = {0x15, 0x10};
    uint8_t param[4 + 20];

    /* read the caching page back, clear WCE, write it */
    mode_sense(f->a, &cmd, false, 0x08, 0x08, 255);
    g_assert_cmpuint(cmd.data_in_len, ==, 4 + 20);
    memcpy(param, cmd.data_in, sizeof(param));
    sdev_cmd_clear(&cmd);
    param[0] = 0;
    param[4 + 2] &= (uint8_t)~0x04;
    sel[4] = sizeof(param);
    g_assert_true(fx_run(f->a, &cmd, sel, 6, param, sizeof(param)));
    fx_assert_good(&cmd);
    mode_sense(f->a, &cmd, false, 0x08, 0x08, 255);
    g_assert_cmphex(cmd.data_in[4 + 2] & 0x04, ==, 0x00);
    sdev_cmd_clear(&cmd);
    /* the other nexus is told: MODE PARAMETERS CHANGED */
    uint8_t tur[16] = {0};
    g_assert_false(fx_run(f->b, &cmd, tur, 6, NULL, 0));
    fx_assert_sense(&cmd, 0x6, 0x2a, 0x01);
    /* writes still work (write-through now) */
    uint8_t cdb[16], block[512] = {3};
    fx_cdb10(cdb, 0x2a, 0, 0, 1);
    g_assert_true(fx_run(f->a, &cmd, cdb, 10, block, 512));
    fx_assert_good(&cmd);

    /* a bit that is not changeable: INVALID FIELD IN PARAMETER LIST at it */
    param[4 + 2] |= 0x01; /* RCD */
    g_assert_true(fx_run(f->a, &cmd, sel, 6, param, sizeof(param)));
    fx_assert_sense(&cmd, 0x5, 0x26, 0x00);
    fx_assert_field(&cmd, false, 6, 0);
    /* a wrong page length */
    param[4 + 2] &= (uint8_t)~0x01;
    param[4 + 1] = 0x10;
    fx_run(f->a, &cmd, sel, 6, param, sizeof(param));
    fx_assert_field(&cmd, false, 5, -1);
}

static void
test_mode_select_d_sense(struct fx *f, gconstpointer d)
{
    struct sdev_cmd cmd;
    uint8_t sel[16] = {0x55, 0x10};
    uint8_t param[8 + 12];

    mode_sense(f->a, &cmd, true, 0x08, 0x0a, 255);
    g_assert_cmpuint(cmd.data_in_len, ==, sizeof(param));
    memcpy(param, cmd.data_in, sizeof(param));
    sdev_cmd_clear(&cmd);
    param[0] = param[1] = 0;
    param[8 + 2] |= 0x04; /* D_SENSE */
    fx_put_be16(sel + 7, sizeof(param));
    g_assert_true(fx_run(f->a, &cmd, sel, 10, param, sizeof(param)));
    fx_assert_good(&cmd);
    /* errors now carry descriptor-format sense */
    uint8_t bad[16] = {0xff};
    g_assert_false(fx_run(f->a, &cmd, bad, 6, NULL, 0));
    g_assert_cmphex(cmd.sense[0], ==, 0x72);
    fx_assert_sense(&cmd, 0x5, 0x20, 0x00);
    /* a LUN reset restores the defaults */
    g_assert_cmpint(sdev_tmf(f->b, SDEV_TMF_LUN_RESET), ==, 0);
    fx_clear_ua(f->a);
    g_assert_false(fx_run(f->a, &cmd, bad, 6, NULL, 0));
    g_assert_cmphex(cmd.sense[0], ==, 0x70);
}

static void
test_report_luns(struct fx *f, gconstpointer d)
{
    uint8_t cdb[16] = {0xa0};
    struct sdev_cmd cmd;

    fx_put_be32(cdb + 6, 64);
    g_assert_true(fx_run(f->a, &cmd, cdb, 12, NULL, 0));
    fx_assert_good(&cmd);
    g_assert_cmpuint(cmd.data_in_len, ==, 16);
    g_assert_cmpuint(fx_be32(cmd.data_in), ==, 8);
    g_assert_cmpuint(fx_be64(cmd.data_in + 8), ==, 0);
    sdev_cmd_clear(&cmd);
    cdb[2] = 0x01; /* well-known LUs: none */
    g_assert_true(fx_run(f->a, &cmd, cdb, 12, NULL, 0));
    g_assert_cmpuint(fx_be32(cmd.data_in), ==, 0);
    sdev_cmd_clear(&cmd);
    cdb[2] = 0x03;
    g_assert_false(fx_run(f->a, &cmd, cdb, 12, NULL, 0));
    fx_assert_field(&cmd, true, 2, -1);
}

static void
test_rsoc(struct fx *f, gconstpointer d)
{
    uint8_t cdb[16] = {0xa3, 0x0c, 0x00};
    struct sdev_cmd all, one;
    unsigned n = 0;

    fx_put_be32(cdb + 6, 8192);
    g_assert_true(fx_run(f->a, &all, cdb, 12, NULL, 0));
    fx_assert_good(&all);
    uint32_t len = fx_be32(all.data_in);
    g_assert_cmpuint(len + 4, ==, all.data_in_len);
    g_assert_cmpuint(len % 8, ==, 0);
    for (uint32_t off = 4; off < all.data_in_len; off += 8, n++) {
        const uint8_t *d8 = all.data_in + off;
        bool servactv = d8[5] & 1;
        uint8_t q[16] = {0xa3, 0x0c, servactv ? 0x02 : 0x01, d8[0], d8[2], d8[3]};
        fx_put_be32(q + 6, 512);
        g_assert_true(fx_run(f->a, &one, q, 12, NULL, 0));
        fx_assert_good(&one);
        g_assert_cmphex(one.data_in[1] & 7, ==, 3); /* supported */
        uint16_t cdb_len = (uint16_t)((one.data_in[2] << 8) | one.data_in[3]);
        g_assert_cmpuint(cdb_len, ==, (d8[6] << 8) | d8[7]);
        g_assert_cmphex(one.data_in[4], ==, d8[0]); /* usage data starts with the opcode */
        if (servactv)
            g_assert_cmphex(one.data_in[5] & 0x1f, ==, d8[3]);
        sdev_cmd_clear(&one);
    }
    g_assert_cmpuint(n, >=, 40);
    sdev_cmd_clear(&all);

    /* an unsupported opcode is reported as such */
    uint8_t q[16] = {0xa3, 0x0c, 0x01, 0x04};
    fx_put_be32(q + 6, 512);
    g_assert_true(fx_run(f->a, &one, q, 12, NULL, 0));
    fx_assert_good(&one);
    g_assert_cmphex(one.data_in[1] & 7, ==, 1);
    sdev_cmd_clear(&one);

    /* RCTD adds a 12-byte timeouts descriptor to each */
    cdb[2] = 0x80;
    g_assert_true(fx_run(f->a, &all, cdb, 12, NULL, 0));
    g_assert_cmpuint(fx_be32(all.data_in), ==, n * 20);
    g_assert_cmphex(all.data_in[4 + 5] & 0x02, ==, 0x02);
    sdev_cmd_clear(&all);
}

static void
test_rstmf_and_start_stop(struct fx *f, gconstpointer d)
{
    uint8_t cdb[16] = {0xa3, 0x0d};
    struct sdev_cmd cmd;

    fx_put_be32(cdb + 6, 16);
    g_assert_true(fx_run(f->a, &cmd, cdb, 12, NULL, 0));
    fx_assert_good(&cmd);
    g_assert_cmpuint(cmd.data_in_len, ==, 4);
    g_assert_cmphex(cmd.data_in[0] & 0x08, ==, 0x08); /* LURS */
    sdev_cmd_clear(&cmd);

    uint8_t ssu[16] = {0x1b, 0, 0, 0, 0x00}; /* stop: flushes */
    g_assert_true(fx_run(f->a, &cmd, ssu, 6, NULL, 0));
    fx_assert_good(&cmd);
    ssu[4] = 0x01; /* start */
    g_assert_true(fx_run(f->a, &cmd, ssu, 6, NULL, 0));
    fx_assert_good(&cmd);
    ssu[4] = 0x40; /* reserved power condition 4h */
    g_assert_false(fx_run(f->a, &cmd, ssu, 6, NULL, 0));
    fx_assert_field(&cmd, true, 4, 7);
}

static void
test_tmf_resets(struct fx *f, gconstpointer d)
{
    uint8_t tur[16] = {0};
    struct sdev_cmd cmd;

    g_assert_cmpint(sdev_tmf(f->a, SDEV_TMF_ABORT_TASK_SET), ==, 0);
    g_assert_cmpint(sdev_tmf(f->a, SDEV_TMF_CLEAR_TASK_SET), ==, 0);
    g_assert_true(fx_run(f->a, &cmd, tur, 6, NULL, 0));
    fx_assert_good(&cmd);
    g_assert_cmpint(sdev_tmf(f->a, SDEV_TMF_LUN_RESET), ==, 0);
    g_assert_false(fx_run(f->a, &cmd, tur, 6, NULL, 0));
    fx_assert_sense(&cmd, 0x6, 0x29, 0x03);
    g_assert_false(fx_run(f->b, &cmd, tur, 6, NULL, 0));
    fx_assert_sense(&cmd, 0x6, 0x29, 0x03);
    g_assert_cmpint(sdev_tmf(f->a, SDEV_TMF_TARGET_COLD_RESET), ==, 0);
    g_assert_false(fx_run(f->a, &cmd, tur, 6, NULL, 0));
    fx_assert_sense(&cmd, 0x6, 0x29, 0x01);
    g_assert_true(fx_run(f->a, &cmd, tur, 6, NULL, 0));
    fx_assert_good(&cmd);
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    FX_TEST("/scsi/spc/inquiry-standard", test_inquiry_standard);
    FX_TEST("/scsi/spc/inquiry-vpd", test_inquiry_vpd);
    FX_TEST("/scsi/spc/inquiry-device-id", test_inquiry_device_id);
    FX_TEST("/scsi/spc/mode-sense", test_mode_sense);
    FX_TEST_RO("/scsi/spc/mode-sense-read-only", test_mode_sense_read_only);
    FX_TEST("/scsi/spc/mode-select", test_mode_select);
    FX_TEST("/scsi/spc/mode-select-d-sense", test_mode_select_d_sense);
    FX_TEST("/scsi/spc/report-luns", test_report_luns);
    FX_TEST("/scsi/spc/report-supported-opcodes", test_rsoc);
    FX_TEST("/scsi/spc/rstmf-and-start-stop", test_rstmf_and_start_stop);
    FX_TEST("/scsi/tmf/resets", test_tmf_resets);
    return g_test_run();
}
