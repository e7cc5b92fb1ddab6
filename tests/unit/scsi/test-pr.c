/* test-pr.c — proxy/scsi reservations: PERSISTENT RESERVE IN/OUT (every
 * service action we offer, every type's access rules, unit attentions) and
 * SPC-2 RESERVE/RELEASE, with two nexuses on one LU. */
#include <string.h>

#include "scsi-fixture.h"

#define FX_TEST(path, fn) g_test_add(path, struct fx, NULL, fx_setup, fn, fx_teardown)

enum { REGISTER, RESERVE, RELEASE, CLEAR, PREEMPT, PREEMPT_ABORT, REGISTER_IGNORE };
enum { WE = 1, EA = 3, WE_RO = 5, EA_RO = 6, WE_AR = 7, EA_AR = 8 };

/* PERSISTENT RESERVE OUT; returns the status. */
static uint8_t
prout_flags(struct sdev_nexus *n, struct sdev_cmd *cmd, uint8_t sa, uint8_t type, uint64_t key,
            uint64_t sa_key, uint8_t flags)
{
    uint8_t cdb[16] = {0x5f, sa, type};
    uint8_t param[24] = {0};

    fx_put_be32(cdb + 5, 24);
    fx_put_be64(param, key);
    fx_put_be64(param + 8, sa_key);
    param[20] = flags;
    fx_run(n, cmd, cdb, 10, param, 24);
    return cmd->status;
}

static uint8_t
prout(struct sdev_nexus *n, uint8_t sa, uint8_t type, uint64_t key, uint64_t sa_key)
{
    struct sdev_cmd cmd;
    return prout_flags(n, &cmd, sa, type, key, sa_key, 0);
}

/* PERSISTENT RESERVE IN; data in cmd (caller clears). */
static void
prin(struct sdev_nexus *n, struct sdev_cmd *cmd, uint8_t sa)
{
    uint8_t cdb[16] = {0x5e, sa};

    fx_put_be16(cdb + 7, 1024);
    g_assert_true(fx_run(n, cmd, cdb, 10, NULL, 0));
    fx_assert_good(cmd);
}

static uint8_t
do_read(struct sdev_nexus *n)
{
    uint8_t cdb[16];
    struct sdev_cmd cmd;

    fx_cdb10(cdb, 0x28, 0, 0, 1);
    fx_run(n, &cmd, cdb, 10, NULL, 0);
    sdev_cmd_clear(&cmd);
    return cmd.status;
}

static uint8_t
do_write(struct sdev_nexus *n)
{
    uint8_t cdb[16], block[512] = {0};
    struct sdev_cmd cmd;

    fx_cdb10(cdb, 0x2a, 0, 0, 1);
    fx_run(n, &cmd, cdb, 10, block, 512);
    return cmd.status;
}

static uint8_t
run_simple(struct sdev_nexus *n, uint8_t op)
{
    uint8_t cdb[16] = {op};
    struct sdev_cmd cmd;

    if (op == 0x12 || op == 0x1a)
        cdb[4] = 64;
    if (op == 0x1a)
        cdb[2] = 0x3f;
    fx_run(n, &cmd, cdb, 10, NULL, 0);
    sdev_cmd_clear(&cmd);
    return cmd.status;
}

#define GOOD SDEV_STATUS_GOOD
#define CONFLICT SDEV_STATUS_RESERVATION_CONFLICT

static void
assert_ua(struct sdev_nexus *n, uint8_t asc, uint8_t ascq)
{
    uint8_t tur[16] = {0};
    struct sdev_cmd cmd;

    g_assert_false(fx_run(n, &cmd, tur, 6, NULL, 0));
    fx_assert_sense(&cmd, 0x6, asc, ascq);
}

static void
test_register(struct fx *f, gconstpointer d)
{
    struct sdev_cmd cmd;

    g_assert_cmphex(prout(f->a, REGISTER, 0, 0, 0xa), ==, GOOD);
    g_assert_cmphex(prout(f->b, REGISTER, 0, 0, 0xb), ==, GOOD);
    prin(f->a, &cmd, 0x00);
    g_assert_cmpuint(fx_be32(cmd.data_in), ==, 2);      /* PRGENERATION */
    g_assert_cmpuint(fx_be32(cmd.data_in + 4), ==, 16); /* two keys */
    g_assert_cmphex(fx_be64(cmd.data_in + 8), ==, 0xa);
    g_assert_cmphex(fx_be64(cmd.data_in + 16), ==, 0xb);
    sdev_cmd_clear(&cmd);

    /* a registered nexus must give its current key */
    g_assert_cmphex(prout(f->a, REGISTER, 0, 0, 0xc), ==, CONFLICT);
    g_assert_cmphex(prout(f->a, REGISTER, 0, 0xa, 0xc), ==, GOOD);
    g_assert_cmphex(prout(f->a, REGISTER_IGNORE, 0, 0x999, 0xd), ==, GOOD);
    /* an unregistered nexus must give key 0 */
    struct sdev_nexus *c = sdev_nexus_new(f->lu, "iqn.2024-01.test:c,i,0x1", NULL, 0);
    fx_clear_ua(c);
    g_assert_cmphex(prout(c, REGISTER, 0, 0x5, 0x6), ==, CONFLICT);
    g_assert_cmphex(prout(c, REGISTER, 0, 0, 0), ==, GOOD); /* no-op */
    sdev_nexus_free(c);
    /* unregister */
    g_assert_cmphex(prout(f->a, REGISTER, 0, 0xd, 0), ==, GOOD);
    prin(f->a, &cmd, 0x00);
    g_assert_cmpuint(fx_be32(cmd.data_in + 4), ==, 8);
    g_assert_cmphex(fx_be64(cmd.data_in + 8), ==, 0xb);
    sdev_cmd_clear(&cmd);
}

static void
test_write_exclusive(struct fx *f, gconstpointer d)
{
    struct sdev_cmd cmd;

    g_assert_cmphex(prout(f->a, REGISTER, 0, 0, 0xa), ==, GOOD);
    g_assert_cmphex(prout(f->a, RESERVE, WE, 0xa, 0), ==, GOOD);
    g_assert_cmphex(prout(f->a, RESERVE, WE, 0xa, 0), ==, GOOD); /* again: GOOD */
    g_assert_cmphex(prout(f->a, RESERVE, EA, 0xa, 0), ==, CONFLICT);
    prin(f->b, &cmd, 0x01);
    g_assert_cmpuint(fx_be32(cmd.data_in + 4), ==, 16);
    g_assert_cmphex(fx_be64(cmd.data_in + 8), ==, 0xa);
    g_assert_cmpuint(cmd.data_in[8 + 13], ==, WE);
    sdev_cmd_clear(&cmd);

    g_assert_cmphex(do_read(f->b), ==, GOOD);
    g_assert_cmphex(do_write(f->b), ==, CONFLICT);
    g_assert_cmphex(run_simple(f->b, 0x00), ==, GOOD);     /* TEST UNIT READY */
    g_assert_cmphex(run_simple(f->b, 0x12), ==, GOOD);     /* INQUIRY */
    g_assert_cmphex(run_simple(f->b, 0x1a), ==, CONFLICT); /* MODE SENSE: registrants only */
    g_assert_cmphex(do_write(f->a), ==, GOOD);
    /* a registered non-holder still may not write */
    g_assert_cmphex(prout(f->b, REGISTER, 0, 0, 0xb), ==, GOOD);
    g_assert_cmphex(do_write(f->b), ==, CONFLICT);
    g_assert_cmphex(run_simple(f->b, 0x1a), ==, GOOD);
}

static void
test_exclusive_access(struct fx *f, gconstpointer d)
{
    g_assert_cmphex(prout(f->a, REGISTER, 0, 0, 0xa), ==, GOOD);
    g_assert_cmphex(prout(f->a, RESERVE, EA, 0xa, 0), ==, GOOD);
    g_assert_cmphex(do_read(f->b), ==, CONFLICT);
    g_assert_cmphex(do_write(f->b), ==, CONFLICT);
    g_assert_cmphex(do_read(f->a), ==, GOOD);
    g_assert_cmphex(prout(f->b, RESERVE, EA, 0, 0), ==, CONFLICT); /* not registered */
}

static void
test_registrants_only(struct fx *f, gconstpointer d)
{
    struct sdev_cmd cmd;

    g_assert_cmphex(prout(f->a, REGISTER, 0, 0, 0xa), ==, GOOD);
    g_assert_cmphex(prout(f->a, RESERVE, EA_RO, 0xa, 0), ==, GOOD);
    g_assert_cmphex(do_read(f->b), ==, CONFLICT);
    g_assert_cmphex(prout(f->b, REGISTER, 0, 0, 0xb), ==, GOOD);
    g_assert_cmphex(do_read(f->b), ==, GOOD);
    g_assert_cmphex(do_write(f->b), ==, GOOD);
    /* the holder unregisters: the reservation ends and registrants are told */
    g_assert_cmphex(prout(f->a, REGISTER, 0, 0xa, 0), ==, GOOD);
    assert_ua(f->b, 0x2a, 0x04);
    prin(f->b, &cmd, 0x01);
    g_assert_cmpuint(fx_be32(cmd.data_in + 4), ==, 0);
    sdev_cmd_clear(&cmd);
}

static void
test_all_registrants(struct fx *f, gconstpointer d)
{
    struct sdev_cmd cmd;

    g_assert_cmphex(prout(f->a, REGISTER, 0, 0, 0xa), ==, GOOD);
    g_assert_cmphex(prout(f->b, REGISTER, 0, 0, 0xb), ==, GOOD);
    g_assert_cmphex(prout(f->a, RESERVE, WE_AR, 0xa, 0), ==, GOOD);
    g_assert_cmphex(prout(f->b, RESERVE, WE_AR, 0xb, 0), ==, GOOD); /* also a holder */
    g_assert_cmphex(do_write(f->b), ==, GOOD);
    prin(f->a, &cmd, 0x01);
    g_assert_cmphex(fx_be64(cmd.data_in + 8), ==, 0); /* key 0 for all-registrants */
    g_assert_cmpuint(cmd.data_in[8 + 13], ==, WE_AR);
    sdev_cmd_clear(&cmd);
    /* the reservation lasts until the last registrant goes */
    g_assert_cmphex(prout(f->a, REGISTER, 0, 0xa, 0), ==, GOOD);
    prin(f->a, &cmd, 0x01);
    g_assert_cmpuint(fx_be32(cmd.data_in + 4), ==, 16);
    sdev_cmd_clear(&cmd);
    g_assert_cmphex(do_write(f->a), ==, CONFLICT);
    g_assert_cmphex(prout(f->b, REGISTER, 0, 0xb, 0), ==, GOOD);
    prin(f->a, &cmd, 0x01);
    g_assert_cmpuint(fx_be32(cmd.data_in + 4), ==, 0);
    sdev_cmd_clear(&cmd);
    g_assert_cmphex(do_write(f->a), ==, GOOD);
}

static void
test_release(struct fx *f, gconstpointer d)
{
    struct sdev_cmd cmd;

    g_assert_cmphex(prout(f->a, REGISTER, 0, 0, 0xa), ==, GOOD);
    g_assert_cmphex(prout(f->b, REGISTER, 0, 0, 0xb), ==, GOOD);
    g_assert_cmphex(prout(f->a, RESERVE, WE_RO, 0xa, 0), ==, GOOD);
    /* a non-holder's RELEASE is GOOD and changes nothing */
    g_assert_cmphex(prout(f->b, RELEASE, WE_RO, 0xb, 0), ==, GOOD);
    g_assert_cmphex(do_write(f->b), ==, GOOD); /* registrant of a RO type */
    /* wrong key: conflict; wrong type: INVALID RELEASE OF PERSISTENT RESERVATION */
    g_assert_cmphex(prout(f->a, RELEASE, WE_RO, 0xb, 0), ==, CONFLICT);
    prout_flags(f->a, &cmd, RELEASE, WE, 0xa, 0, 0);
    fx_assert_sense(&cmd, 0x5, 0x26, 0x04);
    g_assert_cmphex(prout(f->a, RELEASE, WE_RO, 0xa, 0), ==, GOOD);
    assert_ua(f->b, 0x2a, 0x04); /* RESERVATIONS RELEASED */
    prin(f->a, &cmd, 0x01);
    g_assert_cmpuint(fx_be32(cmd.data_in + 4), ==, 0);
    sdev_cmd_clear(&cmd);
}

static void
test_preempt(struct fx *f, gconstpointer d)
{
    struct sdev_cmd cmd;

    g_assert_cmphex(prout(f->a, REGISTER, 0, 0, 0xa), ==, GOOD);
    g_assert_cmphex(prout(f->b, REGISTER, 0, 0, 0xb), ==, GOOD);
    g_assert_cmphex(prout(f->a, RESERVE, EA, 0xa, 0), ==, GOOD);
    g_assert_cmphex(prout(f->b, PREEMPT, EA, 0xb, 0x77), ==, CONFLICT); /* no such key */
    g_assert_cmphex(prout(f->b, PREEMPT_ABORT, WE, 0xb, 0xa), ==, GOOD);
    assert_ua(f->a, 0x2a, 0x05); /* REGISTRATIONS PREEMPTED */
    prin(f->b, &cmd, 0x01);
    g_assert_cmphex(fx_be64(cmd.data_in + 8), ==, 0xb);
    g_assert_cmpuint(cmd.data_in[8 + 13], ==, WE);
    sdev_cmd_clear(&cmd);
    prin(f->b, &cmd, 0x00);
    g_assert_cmpuint(fx_be32(cmd.data_in + 4), ==, 8);
    sdev_cmd_clear(&cmd);
    g_assert_cmphex(do_write(f->a), ==, CONFLICT);
    g_assert_cmphex(do_read(f->a), ==, GOOD);
    /* without a reservation, PREEMPT with key 0 is an invalid parameter */
    g_assert_cmphex(prout(f->b, RELEASE, WE, 0xb, 0), ==, GOOD);
    prout_flags(f->b, &cmd, PREEMPT, WE, 0xb, 0, 0);
    fx_assert_sense(&cmd, 0x5, 0x26, 0x00);
}

static void
test_clear(struct fx *f, gconstpointer d)
{
    struct sdev_cmd cmd;

    g_assert_cmphex(prout(f->a, REGISTER, 0, 0, 0xa), ==, GOOD);
    g_assert_cmphex(prout(f->b, REGISTER, 0, 0, 0xb), ==, GOOD);
    g_assert_cmphex(prout(f->a, RESERVE, WE, 0xa, 0), ==, GOOD);
    g_assert_cmphex(prout(f->b, CLEAR, 0, 0xa, 0), ==, CONFLICT); /* not its key */
    g_assert_cmphex(prout(f->b, CLEAR, 0, 0xb, 0), ==, GOOD);
    assert_ua(f->a, 0x2a, 0x03); /* RESERVATIONS PREEMPTED */
    prin(f->a, &cmd, 0x00);
    g_assert_cmpuint(fx_be32(cmd.data_in), ==, 3);
    g_assert_cmpuint(fx_be32(cmd.data_in + 4), ==, 0);
    sdev_cmd_clear(&cmd);
    g_assert_cmphex(do_write(f->a), ==, GOOD);
}

static void
test_capabilities_and_unsupported(struct fx *f, gconstpointer d)
{
    struct sdev_cmd cmd;

    prin(f->a, &cmd, 0x02);
    g_assert_cmpuint(cmd.data_in_len, ==, 8);
    g_assert_cmpuint((cmd.data_in[0] << 8) | cmd.data_in[1], ==, 8);
    g_assert_cmphex(cmd.data_in[2] & 0x0d, ==, 0);    /* SIP_C ATP_C PTPL_C all 0 */
    g_assert_cmphex(cmd.data_in[3] & 0x81, ==, 0x80); /* TMV, PTPL_A=0 */
    g_assert_cmphex(cmd.data_in[4], ==, 0xea);
    g_assert_cmphex(cmd.data_in[5], ==, 0x01);
    sdev_cmd_clear(&cmd);

    prout_flags(f->a, &cmd, REGISTER, 0, 0, 0xa, 0x01); /* APTPL */
    fx_assert_sense(&cmd, 0x5, 0x26, 0x00);
    fx_assert_field(&cmd, false, 20, 0);
    prout_flags(f->a, &cmd, REGISTER, 0, 0, 0xa, 0x08); /* SPEC_I_PT */
    fx_assert_field(&cmd, false, 20, 3);
    prout_flags(f->a, &cmd, REGISTER, 0, 0, 0xa, 0x04); /* ALL_TG_PT */
    fx_assert_field(&cmd, false, 20, 2);
    uint8_t move[16] = {0x5f, 0x07};
    fx_put_be32(move + 5, 24);
    g_assert_false(fx_run(f->a, &cmd, move, 10, NULL, 0)); /* REGISTER AND MOVE */
    fx_assert_field(&cmd, true, 1, 4);
}

static void
test_full_status(struct fx *f, gconstpointer d)
{
    struct sdev_cmd cmd;

    g_assert_cmphex(prout(f->a, REGISTER, 0, 0, 0xa), ==, GOOD);
    g_assert_cmphex(prout(f->b, REGISTER, 0, 0, 0xb), ==, GOOD);
    g_assert_cmphex(prout(f->b, RESERVE, EA_RO, 0xb, 0), ==, GOOD);
    prin(f->a, &cmd, 0x03);
    uint32_t len = fx_be32(cmd.data_in + 4);
    g_assert_cmpuint(len + 8, ==, cmd.data_in_len);
    const uint8_t *p = cmd.data_in + 8;
    unsigned holders = 0, n = 0;
    while (p < cmd.data_in + cmd.data_in_len) {
        uint32_t add = fx_be32(p + 20);
        g_assert_cmphex(p[24], ==, 0x45); /* iSCSI TransportID with ISID */
        g_assert_cmpuint(add % 4, ==, 0);
        g_assert_nonnull(g_strstr_len((const char *)p + 28, add - 4, ",i,0x"));
        if (p[12] & 1) {
            holders++;
            g_assert_cmphex(fx_be64(p), ==, 0xb);
            g_assert_cmpuint(p[13], ==, EA_RO);
        }
        g_assert_cmpuint((p[18] << 8) | p[19], ==, 1);
        p += 24 + add;
        n++;
    }
    g_assert_cmpuint(n, ==, 2);
    g_assert_cmpuint(holders, ==, 1);
    sdev_cmd_clear(&cmd);
}

static void
test_survives_nexus_loss(struct fx *f, gconstpointer d)
{
    struct sdev_cmd cmd;

    g_assert_cmphex(prout(f->a, REGISTER, 0, 0, 0xa), ==, GOOD);
    g_assert_cmphex(prout(f->a, RESERVE, EA, 0xa, 0), ==, GOOD);
    sdev_nexus_free(f->a);
    /* the initiator logs in again with the same ISID: the same I_T nexus */
    f->a = sdev_nexus_new(f->lu, "iqn.2024-01.test:a,i,0x230000000001", "iqn.2024-01.tgt:lab,t,0x1",
                          1);
    fx_clear_ua(f->a);
    g_assert_cmphex(do_write(f->a), ==, GOOD);
    g_assert_cmphex(do_read(f->b), ==, CONFLICT);
    prin(f->b, &cmd, 0x00);
    g_assert_cmphex(fx_be64(cmd.data_in + 8), ==, 0xa);
    sdev_cmd_clear(&cmd);
}

/* A write parsed before another nexus reserved the LU, whose data-out
 * arrives after, is checked again when it executes. */
static void
test_conflict_at_exec(struct fx *f, gconstpointer d)
{
    uint8_t block[512] = {7};
    struct sdev_cmd cmd = {0};

    fx_cdb10(cmd.cdb, 0x2a, 0, 0, 1);
    cmd.cdb_len = 16;
    cmd.expected_len = 512;
    g_assert_true(sdev_cmd_parse(f->b, &cmd));
    g_assert_cmphex(prout(f->a, REGISTER, 0, 0, 0xa), ==, GOOD);
    g_assert_cmphex(prout(f->a, RESERVE, EA, 0xa, 0), ==, GOOD);
    cmd.data_out = block;
    cmd.data_out_len = 512;
    sdev_cmd_exec(f->b, &cmd);
    g_assert_cmphex(cmd.status, ==, CONFLICT);
    g_assert_cmpuint(cmd.sense_len, ==, 0);
    sdev_cmd_clear(&cmd);
}

static void
reserve_release(struct sdev_nexus *n, struct sdev_cmd *cmd, uint8_t op)
{
    uint8_t cdb[16] = {op};
    fx_run(n, cmd, cdb, (op & 0xf0) == 0x50 ? 10 : 6, NULL, 0);
}

static void
test_spc2(struct fx *f, gconstpointer d)
{
    struct sdev_cmd cmd;

    reserve_release(f->a, &cmd, 0x16);
    fx_assert_good(&cmd);
    g_assert_cmphex(run_simple(f->b, 0x00), ==, CONFLICT);
    g_assert_cmphex(run_simple(f->b, 0x12), ==, GOOD);
    g_assert_cmphex(prout(f->b, REGISTER, 0, 0, 0xb), ==, CONFLICT);
    reserve_release(f->b, &cmd, 0x56);
    g_assert_cmphex(cmd.status, ==, CONFLICT);
    reserve_release(f->b, &cmd, 0x17); /* not the holder: GOOD, no effect */
    fx_assert_good(&cmd);
    g_assert_cmphex(do_read(f->b), ==, CONFLICT);
    g_assert_cmphex(do_write(f->a), ==, GOOD);
    reserve_release(f->a, &cmd, 0x57);
    fx_assert_good(&cmd);
    g_assert_cmphex(do_read(f->b), ==, GOOD);

    /* I_T nexus loss releases it */
    reserve_release(f->b, &cmd, 0x16);
    fx_assert_good(&cmd);
    sdev_nexus_free(f->b);
    f->b = NULL;
    g_assert_cmphex(do_read(f->a), ==, GOOD);

    /* with registrations, RESERVE from an unregistered nexus conflicts */
    g_assert_cmphex(prout(f->a, REGISTER, 0, 0, 0xa), ==, GOOD);
    struct sdev_nexus *c = sdev_nexus_new(f->lu, "iqn.2024-01.test:c,i,0x1", NULL, 0);
    fx_clear_ua(c);
    reserve_release(c, &cmd, 0x16);
    g_assert_cmphex(cmd.status, ==, CONFLICT);
    /* a persistent reservation holder gets GOOD with no effect */
    g_assert_cmphex(prout(f->a, RESERVE, WE, 0xa, 0), ==, GOOD);
    reserve_release(f->a, &cmd, 0x16);
    fx_assert_good(&cmd);
    g_assert_cmphex(do_read(c), ==, GOOD); /* still only WE */
    sdev_nexus_free(c);
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    FX_TEST("/scsi/pr/register", test_register);
    FX_TEST("/scsi/pr/write-exclusive", test_write_exclusive);
    FX_TEST("/scsi/pr/exclusive-access", test_exclusive_access);
    FX_TEST("/scsi/pr/registrants-only", test_registrants_only);
    FX_TEST("/scsi/pr/all-registrants", test_all_registrants);
    FX_TEST("/scsi/pr/release", test_release);
    FX_TEST("/scsi/pr/preempt", test_preempt);
    FX_TEST("/scsi/pr/clear", test_clear);
    FX_TEST("/scsi/pr/capabilities-and-unsupported", test_capabilities_and_unsupported);
    FX_TEST("/scsi/pr/read-full-status", test_full_status);
    FX_TEST("/scsi/pr/survives-nexus-loss", test_survives_nexus_loss);
    FX_TEST("/scsi/pr/spc2-reserve-release", test_spc2);
    FX_TEST("/scsi/pr/conflict-at-exec", test_conflict_at_exec);
    return g_test_run();
}
