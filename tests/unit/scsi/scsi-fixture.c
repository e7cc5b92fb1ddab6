/* scsi-fixture.c — see scsi-fixture.h. */
#include <string.h>
#include <unistd.h>
#include <glib/gstdio.h>

#include "base.h"
#include "scsi-fixture.h"

uint8_t
fx_base_byte(uint64_t off)
{
    if (off >= FX_DATA_SIZE)
        return 0;
    return (uint8_t)((off * 13 + 5) & 0xff) | 1; /* never zero inside the data part */
}

void
fx_setup(struct fx *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;
    g_autofree uint8_t *buf = g_malloc(FX_DATA_SIZE);
    g_autofree char *raw = NULL;
    g_autofree char *ovpath = NULL;
    struct ov_base_id id = {0};

    f->dir = g_dir_make_tmp("test-scsi-XXXXXX", &err);
    g_assert_no_error(err);
    raw = g_build_filename(f->dir, "base.raw", NULL);
    for (uint64_t i = 0; i < FX_DATA_SIZE; i++)
        buf[i] = fx_base_byte(i);
    g_assert_true(g_file_set_contents(raw, (const char *)buf, FX_DATA_SIZE, &err));
    uint64_t size = g_strcmp0(data, "big") == 0 ? FX_BIG_DISK_SIZE : FX_DISK_SIZE;
    g_assert_cmpint(truncate(raw, (off_t)size), ==, 0);
    f->base = base_file_open(raw, &err);
    g_assert_no_error(err);
    g_strlcpy(id.image, "lab", sizeof(id.image));
    id.generation = 1;
    id.size = size;
    ov_uuid_generate(id.uuid);
    ov_base_set_id(f->base, &id);

    if (g_strcmp0(data, "ro") == 0) {
        f->view = view_new_base(f->base, "lab", 1);
    } else {
        ovpath = g_build_filename(f->dir, "pc01.ov", NULL);
        g_assert_true(ov_overlay_create(ovpath, &id, FX_GRANULE, false, &err));
        struct ov_overlay *ov = ov_overlay_open(ovpath, f->base, 0, &err);
        g_assert_no_error(err);
        f->view = view_new_overlay(ov, "pc01", "lab");
    }
    struct sdev_lu_params params = {.serial = "SN-pc01"};
    f->lu = sdev_lu_new(f->view, &params);
    f->a = sdev_nexus_new(f->lu, "iqn.2024-01.test:a,i,0x230000000001", "iqn.2024-01.tgt:lab,t,0x1",
                          1);
    f->b = sdev_nexus_new(f->lu, "iqn.2024-01.test:b,i,0x230000000002", "iqn.2024-01.tgt:lab,t,0x1",
                          1);
    fx_clear_ua(f->a);
    fx_clear_ua(f->b);
}

void
fx_teardown(struct fx *f, gconstpointer data)
{
    sdev_nexus_free(f->a);
    sdev_nexus_free(f->b);
    sdev_lu_unref(f->lu);
    view_unref(f->view);
    ov_base_unref(f->base);

    GDir *d = g_dir_open(f->dir, 0, NULL);
    const char *name;
    while (d && (name = g_dir_read_name(d)) != NULL) {
        g_autofree char *p = g_build_filename(f->dir, name, NULL);
        g_unlink(p);
    }
    if (d)
        g_dir_close(d);
    g_rmdir(f->dir);
    g_free(f->dir);
}

bool
fx_run(struct sdev_nexus *n, struct sdev_cmd *cmd, const uint8_t *cdb, size_t cdb_len,
       const void *data_out, uint32_t data_out_len)
{
    memset(cmd, 0, sizeof(*cmd));
    memcpy(cmd->cdb, cdb, cdb_len);
    cmd->cdb_len = cdb_len < 16 ? 16 : cdb_len;
    cmd->expected_len = data_out_len;
    if (!sdev_cmd_parse(n, cmd))
        return false;
    cmd->data_out = data_out;
    cmd->data_out_len = data_out_len;
    sdev_cmd_exec(n, cmd);
    g_assert_cmpuint(cmd->data_in_len, <=, cmd->xfer_len);
    return true;
}

void
fx_assert_sense(const struct sdev_cmd *cmd, uint8_t key, uint8_t asc, uint8_t ascq)
{
    g_assert_cmphex(cmd->status, ==, SDEV_STATUS_CHECK_CONDITION);
    g_assert_cmpuint(cmd->sense_len, >=, 8);
    if ((cmd->sense[0] & 0x7f) == 0x72) {
        g_assert_cmphex(cmd->sense[1], ==, key);
        g_assert_cmphex(cmd->sense[2], ==, asc);
        g_assert_cmphex(cmd->sense[3], ==, ascq);
    } else {
        g_assert_cmphex(cmd->sense[0] & 0x7f, ==, 0x70);
        g_assert_cmpuint(cmd->sense_len, ==, 18);
        g_assert_cmphex(cmd->sense[2] & 0x0f, ==, key);
        g_assert_cmphex(cmd->sense[12], ==, asc);
        g_assert_cmphex(cmd->sense[13], ==, ascq);
    }
}

void
fx_assert_field(const struct sdev_cmd *cmd, bool in_cdb, unsigned byte, int bit)
{
    g_assert_cmphex(cmd->sense[0] & 0x7f, ==, 0x70);
    uint8_t sks = cmd->sense[15];
    g_assert_true(sks & 0x80);
    g_assert_cmpint(!!(sks & 0x40), ==, in_cdb);
    if (bit >= 0) {
        g_assert_true(sks & 0x08);
        g_assert_cmpint(sks & 7, ==, bit);
    } else {
        g_assert_false(sks & 0x08);
    }
    g_assert_cmpuint((cmd->sense[16] << 8) | cmd->sense[17], ==, byte);
}

void
fx_assert_good(const struct sdev_cmd *cmd)
{
    if (cmd->status != SDEV_STATUS_GOOD && cmd->sense_len >= 14)
        g_test_message("sense key %x asc %02x ascq %02x", cmd->sense[2] & 0xf, cmd->sense[12],
                       cmd->sense[13]);
    g_assert_cmphex(cmd->status, ==, SDEV_STATUS_GOOD);
    g_assert_cmpuint(cmd->sense_len, ==, 0);
}

void
fx_clear_ua(struct sdev_nexus *n)
{
    uint8_t tur[6] = {0};
    struct sdev_cmd cmd;

    for (int i = 0; i < 16; i++) {
        fx_run(n, &cmd, tur, 6, NULL, 0);
        sdev_cmd_clear(&cmd);
        if (cmd.status == SDEV_STATUS_GOOD)
            return;
    }
    g_assert_not_reached();
}

void
fx_put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

void
fx_put_be32(uint8_t *p, uint32_t v)
{
    fx_put_be16(p, (uint16_t)(v >> 16));
    fx_put_be16(p + 2, (uint16_t)v);
}

void
fx_put_be64(uint8_t *p, uint64_t v)
{
    fx_put_be32(p, (uint32_t)(v >> 32));
    fx_put_be32(p + 4, (uint32_t)v);
}

uint32_t
fx_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

uint64_t
fx_be64(const uint8_t *p)
{
    return ((uint64_t)fx_be32(p) << 32) | fx_be32(p + 4);
}

void
fx_cdb10(uint8_t *cdb, uint8_t op, uint8_t b1, uint32_t lba, uint16_t n)
{
    memset(cdb, 0, 16);
    cdb[0] = op;
    cdb[1] = b1;
    fx_put_be32(cdb + 2, lba);
    fx_put_be16(cdb + 7, n);
}

void
fx_cdb16(uint8_t *cdb, uint8_t op, uint8_t b1, uint64_t lba, uint32_t n)
{
    memset(cdb, 0, 16);
    cdb[0] = op;
    cdb[1] = b1;
    fx_put_be64(cdb + 2, lba);
    fx_put_be32(cdb + 10, n);
}
