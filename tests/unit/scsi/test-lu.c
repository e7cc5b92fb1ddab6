/* test-lu.c — proxy/scsi logical unit lifetime and concurrency: several
 * nexuses of one LU issuing commands from their own threads (as iSCSI
 * connection threads do) while unit attentions are raised underneath. Meant
 * to be run under TSan / ASan as well. */
#include <string.h>

#include "scsi-fixture.h"

#define FX_TEST(path, fn) g_test_add(path, struct fx, NULL, fx_setup, fn, fx_teardown)
#define N_THREADS 4
#define ROUNDS 150

struct worker {
    struct fx *f;
    unsigned id;
    unsigned unit_attentions;
    bool ok;
};

/* Run a command, repeating it while it ends in a unit attention. */
static void
run_retry(struct worker *w, struct sdev_nexus *n, struct sdev_cmd *cmd, const uint8_t *cdb,
          const void *data, uint32_t len)
{
    for (;;) {
        fx_run(n, cmd, cdb, 16, data, len);
        if (cmd->status != SDEV_STATUS_CHECK_CONDITION || (cmd->sense[2] & 0x0f) != 0x6)
            return;
        w->unit_attentions++;
    }
}

static gpointer
worker_main(gpointer data)
{
    struct worker *w = data;
    g_autofree char *name = g_strdup_printf("iqn.2024-01.test:w%u,i,0x%u", w->id, w->id + 1);
    struct sdev_nexus *n = sdev_nexus_new(w->f->lu, name, NULL, 0);
    uint8_t buf[8 * 512];
    uint8_t cdb[16];
    struct sdev_cmd cmd;

    w->ok = true;
    for (unsigned i = 0; i < ROUNDS && w->ok; i++) {
        uint64_t lba = (uint64_t)w->id * 64 + (i % 8) * 8;
        memset(buf, (int)(w->id * 31 + i), sizeof(buf));
        fx_cdb16(cdb, 0x8a, 0, lba, 8);
        run_retry(w, n, &cmd, cdb, buf, sizeof(buf));
        w->ok = cmd.status == SDEV_STATUS_GOOD;
        fx_cdb16(cdb, 0x88, 0, lba, 8);
        run_retry(w, n, &cmd, cdb, NULL, 0);
        w->ok = w->ok && cmd.status == SDEV_STATUS_GOOD && cmd.data_in_len == sizeof(buf) &&
                memcmp(cmd.data_in, buf, sizeof(buf)) == 0;
        sdev_cmd_clear(&cmd);
        if (i % 10 == 0) {
            /* register, then unregister (PERSISTENT RESERVE OUT) */
            uint8_t param[24] = {0};
            uint8_t pr[16] = {0x5f, 0x00};
            fx_put_be32(pr + 5, 24);
            fx_put_be64(param + 8, w->id + 1);
            run_retry(w, n, &cmd, pr, param, 24);
            w->ok = w->ok && cmd.status == SDEV_STATUS_GOOD;
            fx_put_be64(param, w->id + 1);
            fx_put_be64(param + 8, 0);
            run_retry(w, n, &cmd, pr, param, 24);
            w->ok = w->ok && cmd.status == SDEV_STATUS_GOOD;
        }
        if (i % 25 == 0) {
            uint8_t ms[16] = {0x1a, 0x00, 0x3f, 0x00, 0xff};
            run_retry(w, n, &cmd, ms, NULL, 0);
            w->ok = w->ok && cmd.status == SDEV_STATUS_GOOD;
            sdev_cmd_clear(&cmd);
        }
    }
    sdev_nexus_free(n);
    return NULL;
}

static void
test_concurrent_nexuses(struct fx *f, gconstpointer d)
{
    struct worker w[N_THREADS];
    GThread *t[N_THREADS];

    for (unsigned i = 0; i < N_THREADS; i++) {
        w[i] = (struct worker){.f = f, .id = i};
        t[i] = g_thread_new("nexus", worker_main, &w[i]);
    }
    for (int i = 0; i < 20; i++) {
        sdev_lu_raise_ua_all(f->lu, 0x2a, 0x09);
        g_usleep(1000);
    }
    for (unsigned i = 0; i < N_THREADS; i++) {
        g_thread_join(t[i]);
        g_assert_true(w[i].ok);
        g_assert_cmpuint(w[i].unit_attentions, >=, 1); /* at least POWER ON */
    }
}

static void
test_lu_refs(struct fx *f, gconstpointer d)
{
    /* A nexus keeps its LU alive after the owner's reference is gone. */
    struct sdev_lu *lu = sdev_lu_new(f->view, NULL);
    struct sdev_nexus *n = sdev_nexus_new(lu, "iqn.2024-01.test:r,i,0x1", NULL, 0);
    g_assert_true(sdev_nexus_get_lu(n) == lu);
    g_assert_true(sdev_lu_get_view(lu) == f->view);
    sdev_lu_unref(sdev_lu_ref(lu));
    sdev_lu_unref(lu);
    fx_clear_ua(n);
    sdev_nexus_free(n);
    sdev_lu_unref(NULL);
    sdev_nexus_free(NULL);

    /* 4096-byte logical blocks */
    struct sdev_lu_params p = {.block_size = 4096, .vendor = "ACME\x01", .product = "x"};
    lu = sdev_lu_new(f->view, &p);
    n = sdev_nexus_new(lu, "iqn.2024-01.test:r,i,0x1", NULL, 0);
    fx_clear_ua(n);
    uint8_t rc16[16] = {0x9e, 0x10};
    struct sdev_cmd cmd;
    fx_put_be32(rc16 + 10, 32);
    g_assert_true(fx_run(n, &cmd, rc16, 16, NULL, 0));
    fx_assert_good(&cmd);
    g_assert_cmpuint(fx_be64(cmd.data_in), ==, FX_DISK_SIZE / 4096 - 1);
    g_assert_cmpuint(fx_be32(cmd.data_in + 8), ==, 4096);
    g_assert_cmpuint(cmd.data_in[13] & 0x0f, ==, 0);
    sdev_cmd_clear(&cmd);
    uint8_t inq[16] = {0x12, 0, 0, 0, 36};
    g_assert_true(fx_run(n, &cmd, inq, 6, NULL, 0));
    g_assert_cmpmem(cmd.data_in + 8, 8, "ACME_   ", 8); /* non-printable replaced */
    sdev_cmd_clear(&cmd);

    /* data path in 4 KiB blocks: write, read back, unmap, status */
    g_autofree uint8_t *block = g_malloc(4096);
    uint8_t cdb[16];
    memset(block, 0x5c, 4096);
    fx_cdb10(cdb, 0x2a, 0, 3, 1);
    g_assert_true(fx_run(n, &cmd, cdb, 10, block, 4096));
    fx_assert_good(&cmd);
    fx_cdb10(cdb, 0x28, 0, 3, 1);
    g_assert_true(fx_run(n, &cmd, cdb, 10, NULL, 0));
    g_assert_cmpuint(cmd.xfer_len, ==, 4096);
    g_assert_cmpmem(cmd.data_in, cmd.data_in_len, block, 4096);
    sdev_cmd_clear(&cmd);
    uint8_t param[24] = {0, 22, 0, 16};
    uint8_t unmap[16] = {0x42};
    fx_put_be64(param + 8, 3);
    fx_put_be32(param + 16, 1);
    fx_put_be16(unmap + 7, 24);
    g_assert_true(fx_run(n, &cmd, unmap, 10, param, 24));
    fx_assert_good(&cmd);
    uint8_t gls[16] = {0x9e, 0x12};
    fx_put_be64(gls + 2, 3);
    fx_put_be32(gls + 10, 24);
    g_assert_true(fx_run(n, &cmd, gls, 16, NULL, 0));
    fx_assert_good(&cmd);
    g_assert_cmpuint(fx_be64(cmd.data_in + 8), ==, 3);
    g_assert_cmpuint(fx_be32(cmd.data_in + 16), ==, 1);
    g_assert_cmpuint(cmd.data_in[20], ==, 1); /* deallocated */
    sdev_cmd_clear(&cmd);
    sdev_nexus_free(n);
    sdev_lu_unref(lu);
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    FX_TEST("/scsi/lu/concurrent-nexuses", test_concurrent_nexuses);
    FX_TEST("/scsi/lu/refs-and-params", test_lu_refs);
    return g_test_run();
}
