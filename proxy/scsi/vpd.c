/* vpd.c — vital product data pages (SPC-4 §7.8, SBC-3 §6.5):
 *   00h supported pages, 80h unit serial number, 83h device identification,
 *   B0h block limits, B1h block device characteristics, B2h logical block
 *   provisioning.
 *
 * Device identification: the logical unit's name is an NAA 6 designator made
 * from view_get_disk_id(), which is stable across daemon restarts, resets and
 * commits (same client + image = same disk to the initiator, so multipath and
 * udev by-id links keep working). NAA 6 normally carries an IEEE OUI; we have
 * none, so the OUI bits carry a locally administered value (the IEEE U/L bit
 * set, multicast bit clear) derived from the disk id, and the 100 vendor
 * specific bits carry the rest of the id: unique per disk, never colliding
 * with a registered OUI.
 */
#include "sdev-int.h"

static const uint8_t sdev_vpd_pages[] = {0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2};

/* Start a VPD page: byte 0 device type, 1 page code, 2..3 page length. */
static uint8_t *
sdev_vpd_header(GByteArray *out, uint8_t page)
{
    uint8_t hdr[4] = {0x00, page, 0, 0};
    g_byte_array_append(out, hdr, 4);
    return out->data;
}

static void
sdev_vpd_finish(GByteArray *out)
{
    sdev_put_be16(out->data + 2, (uint16_t)(out->len - 4));
}

/* One designation descriptor (SPC-4 §7.8.6.1). */
static void
sdev_vpd_designator(GByteArray *out, uint8_t code_set, uint8_t assoc, uint8_t type,
                    const void *value, size_t len)
{
    uint8_t hdr[4];
    hdr[0] = code_set & 0x0f;                               /* protocol id 0, code set */
    hdr[1] = (uint8_t)(((assoc & 3) << 4) | (type & 0x0f)); /* PIV=0 */
    hdr[2] = 0;
    hdr[3] = (uint8_t)len;
    g_byte_array_append(out, hdr, 4);
    g_byte_array_append(out, value, (guint)len);
}

static void
sdev_vpd_naa6(const uint8_t id[16], uint8_t naa[16])
{
    /* NAA 6h (4 bits) | OUI (24 bits) | vendor specific (36 bits) |
     * vendor specific extension (64 bits). */
    uint8_t oui0 = (uint8_t)((id[0] & 0xfc) | 0x02); /* U/L=1 (local), I/G=0 */
    naa[0] = (uint8_t)(0x60 | (oui0 >> 4));
    naa[1] = (uint8_t)((oui0 << 4) | (id[1] >> 4));
    naa[2] = (uint8_t)((id[1] << 4) | (id[2] >> 4));
    naa[3] = (uint8_t)((id[2] << 4) | (id[3] & 0x0f));
    memcpy(naa + 4, id + 4, 12);
}

/* SCSI name string designator: UTF-8, NUL terminated, padded to a multiple
 * of 4 (SPC-4 §7.8.6.11). Names too long for a descriptor are left out. */
static void
sdev_vpd_name(GByteArray *out, uint8_t assoc, const char *name, size_t len)
{
    size_t padded = (len + 1 + 3) & ~(size_t)3;
    uint8_t buf[256] = {0};

    if (len == 0 || padded > 252)
        return;
    memcpy(buf, name, len);
    sdev_vpd_designator(out, 3, assoc, 8, buf, padded);
}

/* T10 vendor ID designator value: vendor (8) + the disk id in hex (32). */
static void
sdev_vpd_t10(const struct sdev_lu *lu, char t10[8 + 32 + 1])
{
    memcpy(t10, lu->vendor, 8);
    for (int i = 0; i < 16; i++)
        g_snprintf(t10 + 8 + 2 * i, 3, "%02X", lu->disk_id[i]);
}

bool
sdev_vpd_names_lu(const struct sdev_lu *lu, uint8_t assoc, uint8_t type, const uint8_t *value,
                  size_t len)
{
    uint8_t naa[16];
    char t10[8 + 32 + 1];

    if (assoc != 0)
        return false;
    if (type == 3 && len == sizeof(naa)) {
        sdev_vpd_naa6(lu->disk_id, naa);
        return memcmp(naa, value, len) == 0;
    }
    if (type == 1 && len == 40) {
        sdev_vpd_t10(lu, t10);
        return memcmp(t10, value, len) == 0;
    }
    return false;
}

static void
sdev_vpd_devid(struct sdev_req *req, GByteArray *out)
{
    struct sdev_lu *lu = req->lu;
    uint8_t naa[16];
    char t10[8 + 32 + 1];

    sdev_vpd_naa6(lu->disk_id, naa);
    sdev_vpd_designator(out, 1, 0, 3, naa, sizeof(naa)); /* binary, LU, NAA */

    /* T10 vendor ID: vendor (8) + vendor specific: the disk id in hex. */
    sdev_vpd_t10(lu, t10);
    sdev_vpd_designator(out, 2, 0, 1, t10, 40); /* ASCII, LU, T10 vendor ID */

    if (!req->nexus)
        return;
    if (req->nexus->rel_tpid) {
        uint8_t rtp[4] = {0, 0, 0, 0};
        sdev_put_be16(rtp + 2, req->nexus->rel_tpid);
        sdev_vpd_designator(out, 1, 1, 4, rtp, 4); /* target port, relative port id */
    }
    const char *tport = req->nexus->target_port;
    if (tport && *tport) {
        const char *tpgt = strstr(tport, ",t,0x");
        sdev_vpd_name(out, 1, tport, strlen(tport)); /* target port name */
        if (tpgt) /* iSCSI "NAME,t,0xTPGT": NAME is the target device */
            sdev_vpd_name(out, 2, tport, (size_t)(tpgt - tport));
    }
}

/* SBC-3 §6.5.3 Block Limits (page length 3Ch). */
static void
sdev_vpd_block_limits(struct sdev_lu *lu, GByteArray *out)
{
    uint8_t p[0x3c] = {0};
    uint32_t granule = view_get_granule(lu->view);
    uint32_t gran_blocks = granule > lu->block_size ? granule / lu->block_size : 1;

    p[0] = 0x00;                /* WSNZ=0: WRITE SAME with 0 blocks runs to the end */
    p[1] = SDEV_MAX_CAW_BLOCKS; /* MAXIMUM COMPARE AND WRITE LENGTH */
    sdev_put_be16(p + 2,
                  (uint16_t)MIN(gran_blocks, 0xffffu)); /* OPTIMAL TRANSFER LENGTH GRANULARITY */
    sdev_put_be32(p + 4, SDEV_MAX_XFER_BYTES >> lu->block_shift); /* MAXIMUM TRANSFER LENGTH */
    sdev_put_be32(p + 8, SDEV_OPT_XFER_BYTES >> lu->block_shift); /* OPTIMAL TRANSFER LENGTH */
    sdev_put_be32(p + 12, 0);                                     /* MAXIMUM PREFETCH LENGTH */
    sdev_put_be32(p + 16,
                  (uint32_t)(SDEV_MAX_UNMAP_BYTES >> lu->block_shift)); /* MAX UNMAP LBA COUNT */
    sdev_put_be32(p + 20, SDEV_MAX_UNMAP_DESCRIPTORS); /* MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT */
    sdev_put_be32(p + 24, gran_blocks);                /* OPTIMAL UNMAP GRANULARITY */
    sdev_put_be32(p + 28, 0x80000000u);                /* UGAVALID, alignment 0 */
    sdev_put_be64(p + 32, SDEV_MAX_UNMAP_BYTES >> lu->block_shift); /* MAXIMUM WRITE SAME LENGTH */
    g_byte_array_append(out, p, sizeof(p));
}

/* SBC-3 §6.5.2 Block Device Characteristics (page length 3Ch). */
static void
sdev_vpd_bdc(GByteArray *out)
{
    uint8_t p[0x3c] = {0};
    sdev_put_be16(p, 0x0001); /* MEDIUM ROTATION RATE: non-rotating medium */
    /* byte 7: WABEREQ=01b (a block read after SANITIZE BLOCK ERASE completes
     * with GOOD: it reads zeros), WACEREQ=00b (no CRYPTOGRAPHIC ERASE). */
    p[3] = 0x40;
    g_byte_array_append(out, p, sizeof(p));
}

/* SBC-3 §6.5.4 Logical Block Provisioning (page length 4). */
static void
sdev_vpd_lbp(GByteArray *out)
{
    uint8_t p[4] = {0};
    p[0] = 0;                             /* THRESHOLD EXPONENT: no thresholds */
    p[1] = 0x80 | 0x40 | 0x20 | (1 << 2); /* LBPU, LBPWS, LBPWS10, LBPRZ=001b; ANC_SUP=0, DP=0 */
    p[2] = 0x02;                          /* PROVISIONING TYPE: thin */
    g_byte_array_append(out, p, sizeof(p));
}

enum sdev_sense
sdev_vpd_build(struct sdev_req *req, uint8_t page, uint8_t **outp, size_t *lenp)
{
    struct sdev_lu *lu = req->lu;
    g_autoptr(GByteArray) out = g_byte_array_new();

    sdev_vpd_header(out, page);
    switch (page) {
    case 0x00:
        g_byte_array_append(out, sdev_vpd_pages, sizeof(sdev_vpd_pages));
        break;
    case 0x80:
        g_byte_array_append(out, (const uint8_t *)lu->serial,
                            (guint)MIN(strlen(lu->serial), (size_t)250));
        break;
    case 0x83:
        sdev_vpd_devid(req, out);
        break;
    case 0xb0:
        sdev_vpd_block_limits(lu, out);
        break;
    case 0xb1:
        sdev_vpd_bdc(out);
        break;
    case 0xb2:
        sdev_vpd_lbp(out);
        break;
    default:
        return sdev_bad_cdb(req, 2, -1);
    }
    sdev_vpd_finish(out);
    *lenp = out->len;
    *outp = g_byte_array_steal(out, NULL);
    return SDEV_SENSE_OK;
}
