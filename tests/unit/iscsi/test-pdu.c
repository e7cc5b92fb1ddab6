/* test-pdu.c — BHS codec, LUN decoding, serial arithmetic, CRC32C vectors
 * and the receive machine (rx.c) fed byte by byte. */
#include <string.h>
#include <glib.h>

#include "overlay.h"
#include "pdu.h"
#include "rx.h"

static void
test_bhs_fields(void)
{
    struct iscsit_bhs h = {{0}};

    iscsit_bhs_set32(&h, ISCSIT_OFF_ITT, 0x01020304);
    g_assert_cmphex(h.b[16], ==, 0x01);
    g_assert_cmphex(h.b[19], ==, 0x04);
    g_assert_cmphex(iscsit_bhs_get32(&h, ISCSIT_OFF_ITT), ==, 0x01020304);
    iscsit_bhs_set16(&h, 20, 0xbeef);
    g_assert_cmphex(h.b[20], ==, 0xbe);
    g_assert_cmphex(iscsit_bhs_get16(&h, 20), ==, 0xbeef);
    iscsit_bhs_set_dsl(&h, 0x123456);
    g_assert_cmphex(h.b[5], ==, 0x12);
    g_assert_cmphex(h.b[7], ==, 0x56);
    g_assert_cmpuint(iscsit_bhs_dsl(&h), ==, 0x123456);
    h.b[ISCSIT_OFF_AHSLEN] = 3;
    g_assert_cmpuint(iscsit_bhs_ahs_len(&h), ==, 12);
    iscsit_bhs_set_isid(&h, 0x23d000000001ull);
    g_assert_cmphex(h.b[8], ==, 0x23);
    g_assert_cmphex(iscsit_bhs_get_isid(&h), ==, 0x23d000000001ull);
    iscsit_bhs_set_lun(&h, 0x0001000000000000ull);
    g_assert_cmphex(h.b[9], ==, 0x01);
    g_assert_cmphex(iscsit_bhs_get_lun(&h), ==, 0x0001000000000000ull);
    h.b[0] = ISCSIT_OP_SCSI_CMD | ISCSIT_OP_IMMEDIATE;
    g_assert_cmpuint(iscsit_bhs_opcode(&h), ==, ISCSIT_OP_SCSI_CMD);
    g_assert_true(iscsit_bhs_immediate(&h));
    g_assert_cmpstr(iscsit_op_name(ISCSIT_OP_R2T), ==, "Ready To Transfer");
    g_assert_cmpstr(iscsit_op_name(0x1f), ==, "unknown");
}

static void
test_lun_decode(void)
{
    uint64_t lun = 99;

    g_assert_true(iscsit_lun_decode(0, &lun));
    g_assert_cmpuint(lun, ==, 0);
    g_assert_true(iscsit_lun_decode(0x0005000000000000ull, &lun)); /* peripheral */
    g_assert_cmpuint(lun, ==, 5);
    g_assert_true(iscsit_lun_decode(0x4123000000000000ull, &lun)); /* flat */
    g_assert_cmpuint(lun, ==, 0x123);
    g_assert_false(iscsit_lun_decode(0x0100000000000000ull, &lun)); /* bus 1 */
    g_assert_false(iscsit_lun_decode(0x0000000100000000ull, &lun)); /* 2nd level */
    g_assert_false(iscsit_lun_decode(0xc000000000000000ull, &lun)); /* extended */
}

static void
test_serial(void)
{
    g_assert_true(iscsit_sn_lt(1, 2));
    g_assert_false(iscsit_sn_lt(2, 2));
    g_assert_true(iscsit_sn_lt(0xffffffffu, 0));
    g_assert_false(iscsit_sn_lt(0, 0xffffffffu));
    g_assert_true(iscsit_sn_le(5, 5));
    g_assert_cmpuint(iscsit_pad4(0), ==, 0);
    g_assert_cmpuint(iscsit_pad4(1), ==, 3);
    g_assert_cmpuint(iscsit_pad4(4), ==, 0);
    g_assert_cmpuint(iscsit_pad4(7), ==, 1);
}

/* RFC 3720 Appendix B.4 CRC32C examples. */
static void
test_crc32c_vectors(void)
{
    uint8_t buf[32];

    memset(buf, 0, sizeof(buf));
    g_assert_cmphex(ov_crc32c(0, buf, 32), ==, 0x8a9136aa);
    memset(buf, 0xff, sizeof(buf));
    g_assert_cmphex(ov_crc32c(0, buf, 32), ==, 0x62a8ab43);
    for (int i = 0; i < 32; i++)
        buf[i] = (uint8_t)i;
    g_assert_cmphex(ov_crc32c(0, buf, 32), ==, 0x46dd794e);
    for (int i = 0; i < 32; i++)
        buf[i] = (uint8_t)(31 - i);
    g_assert_cmphex(ov_crc32c(0, buf, 32), ==, 0x113fdb5c);
    /* incremental use gives the same value */
    g_assert_cmphex(ov_crc32c(ov_crc32c(0, buf, 10), buf + 10, 22), ==, 0x113fdb5c);
    g_assert_cmphex(ov_crc32c(0, "123456789", 9), ==, 0xe3069283);
}

/* Build a PDU on the wire: BHS + AHS + [hdigest] + data + pad + [ddigest]. */
static GByteArray *
make_pdu(uint8_t op, const uint8_t *ahs, size_t ahs_len, const uint8_t *data, size_t len, bool hd,
         bool dd)
{
    GByteArray *b = g_byte_array_new();
    struct iscsit_bhs h = {{0}};
    uint8_t zero[4] = {0};
    uint32_t crc;

    h.b[0] = op;
    h.b[ISCSIT_OFF_AHSLEN] = (uint8_t)(ahs_len / 4);
    iscsit_bhs_set_dsl(&h, (uint32_t)len);
    g_byte_array_append(b, h.b, 48);
    if (ahs_len)
        g_byte_array_append(b, ahs, (guint)ahs_len);
    if (hd) {
        crc = ov_crc32c(0, b->data, b->len);
        g_byte_array_append(b, (uint8_t *)&crc, 4); /* little-endian host */
    }
    if (len) {
        size_t start = b->len;

        g_byte_array_append(b, data, (guint)len);
        g_byte_array_append(b, zero, iscsit_pad4((uint32_t)len));
        if (dd) {
            crc = ov_crc32c(0, b->data + start, b->len - start);
            g_byte_array_append(b, (uint8_t *)&crc, 4);
        }
    }
    return b;
}

static void
rx_feed(struct iscsit_rx *rx, const uint8_t *p, size_t n)
{
    size_t avail;
    uint8_t *dst = iscsit_rx_space(rx, &avail);

    g_assert_cmpuint(avail, >=, n);
    memcpy(dst, p, n);
    iscsit_rx_commit(rx, n);
}

/* Feeding one byte at a time gives MORE until the last byte, then the PDU. */
static void
check_bytewise(bool hd, bool dd)
{
    struct iscsit_rx rx;
    struct iscsit_rx_limits lim = {.max_data = 8192, .header_digest = hd, .data_digest = dd};
    uint8_t ahs[8] = {0, 5, 1, 0, 0xaa, 0xbb, 0xcc, 0xdd};
    const char *text = "InitiatorName=iqn.x";
    g_autoptr(GByteArray) w = make_pdu(0x43, ahs, 8, (const uint8_t *)text, strlen(text), hd, dd);
    g_autoptr(GByteArray) w2 = make_pdu(0x00, NULL, 0, NULL, 0, hd, dd);
    struct iscsit_pdu pdu;

    iscsit_rx_init(&rx);
    iscsit_rx_set_limits(&rx, &lim);
    for (guint i = 0; i < w->len; i++) {
        g_assert_cmpint(iscsit_rx_next(&rx, &pdu), ==, ISCSIT_RX_MORE);
        rx_feed(&rx, w->data + i, 1);
        g_assert_true(iscsit_rx_check_invariants(&rx));
    }
    /* second PDU already buffered behind the first */
    rx_feed(&rx, w2->data, w2->len);
    g_assert_cmpint(iscsit_rx_next(&rx, &pdu), ==, ISCSIT_RX_PDU);
    g_assert_cmpuint(iscsit_bhs_opcode(&pdu.bhs), ==, ISCSIT_OP_LOGIN_REQ);
    g_assert_cmpuint(pdu.ahs_len, ==, 8);
    g_assert_cmphex(pdu.ahs[4], ==, 0xaa);
    g_assert_cmpuint(pdu.data_len, ==, strlen(text));
    g_assert_cmpmem(pdu.data, pdu.data_len, text, strlen(text));
    g_assert_cmpuint(iscsit_rx_buffered(&rx), ==, w2->len);
    g_assert_cmpint(iscsit_rx_next(&rx, &pdu), ==, ISCSIT_RX_PDU);
    g_assert_cmpuint(iscsit_bhs_opcode(&pdu.bhs), ==, ISCSIT_OP_NOP_OUT);
    g_assert_cmpuint(pdu.data_len, ==, 0);
    g_assert_cmpint(iscsit_rx_next(&rx, &pdu), ==, ISCSIT_RX_MORE);
    iscsit_rx_clear(&rx);
}

static void
test_rx_bytewise(void)
{
    check_bytewise(false, false);
    check_bytewise(true, false);
    check_bytewise(false, true);
    check_bytewise(true, true);
}

static void
test_rx_data_too_long(void)
{
    struct iscsit_rx rx;
    struct iscsit_rx_limits lim = {.max_data = 512};
    g_autofree uint8_t *data = g_malloc0(513);
    g_autoptr(GByteArray) w = make_pdu(0x01, NULL, 0, data, 513, false, false);
    struct iscsit_pdu pdu;

    iscsit_rx_init(&rx);
    iscsit_rx_set_limits(&rx, &lim);
    rx_feed(&rx, w->data, 48); /* only the header: refused before the data arrives */
    g_assert_cmpint(iscsit_rx_next(&rx, &pdu), ==, ISCSIT_RX_ERR_DATA_LEN);
    g_assert_cmpuint(iscsit_bhs_dsl(&pdu.bhs), ==, 513);
    g_assert_cmpuint(rx.cap, <, 1u << 20);
    iscsit_rx_clear(&rx);
}

static void
test_rx_digest_errors(void)
{
    struct iscsit_rx rx;
    struct iscsit_rx_limits lim = {.max_data = 8192, .header_digest = true, .data_digest = true};
    uint8_t data[5] = {1, 2, 3, 4, 5};
    g_autoptr(GByteArray) w = make_pdu(0x05, NULL, 0, data, 5, true, true);
    struct iscsit_pdu pdu;

    iscsit_rx_init(&rx);
    iscsit_rx_set_limits(&rx, &lim);
    w->data[52 + 5] ^= 1; /* padding byte: covered by the data digest */
    rx_feed(&rx, w->data, w->len);
    g_assert_cmpint(iscsit_rx_next(&rx, &pdu), ==, ISCSIT_RX_ERR_DDIGEST);
    iscsit_rx_clear(&rx);

    iscsit_rx_init(&rx);
    iscsit_rx_set_limits(&rx, &lim);
    w->data[52 + 5] ^= 1;
    w->data[20] ^= 0x80; /* header */
    rx_feed(&rx, w->data, w->len);
    g_assert_cmpint(iscsit_rx_next(&rx, &pdu), ==, ISCSIT_RX_ERR_HDIGEST);
    iscsit_rx_clear(&rx);
}

/* Limits change between PDUs (digests start after login): the PDU already
 * parsed keeps its layout. */
static void
test_rx_limits_change(void)
{
    struct iscsit_rx rx;
    struct iscsit_rx_limits plain = {.max_data = 8192};
    struct iscsit_rx_limits dig = {.max_data = 262144, .header_digest = true};
    g_autoptr(GByteArray) a = make_pdu(0x03, NULL, 0, (const uint8_t *)"A=B", 4, false, false);
    g_autoptr(GByteArray) b = make_pdu(0x00, NULL, 0, NULL, 0, true, false);
    struct iscsit_pdu pdu;

    iscsit_rx_init(&rx);
    iscsit_rx_set_limits(&rx, &plain);
    rx_feed(&rx, a->data, a->len);
    rx_feed(&rx, b->data, b->len);
    g_assert_cmpint(iscsit_rx_next(&rx, &pdu), ==, ISCSIT_RX_PDU);
    iscsit_rx_set_limits(&rx, &dig);
    g_assert_cmpint(iscsit_rx_next(&rx, &pdu), ==, ISCSIT_RX_PDU);
    g_assert_cmpuint(iscsit_bhs_opcode(&pdu.bhs), ==, ISCSIT_OP_NOP_OUT);
    iscsit_rx_clear(&rx);
}

/* A large PDU grows the buffer exactly once it is known to be legal. */
static void
test_rx_large(void)
{
    struct iscsit_rx rx;
    struct iscsit_rx_limits lim = {.max_data = 262144};
    g_autofree uint8_t *data = g_malloc(262144);
    g_autoptr(GByteArray) w = NULL;
    struct iscsit_pdu pdu;
    size_t off = 0;

    for (size_t i = 0; i < 262144; i++)
        data[i] = (uint8_t)(i * 7);
    w = make_pdu(0x05, NULL, 0, data, 262144, false, false);
    iscsit_rx_init(&rx);
    iscsit_rx_set_limits(&rx, &lim);
    while (off < w->len) {
        size_t avail, n;
        uint8_t *dst;

        g_assert_cmpint(iscsit_rx_next(&rx, &pdu), ==, ISCSIT_RX_MORE);
        dst = iscsit_rx_space(&rx, &avail);
        n = MIN(avail, w->len - off);
        n = MIN(n, 10000);
        memcpy(dst, w->data + off, n);
        iscsit_rx_commit(&rx, n);
        off += n;
    }
    g_assert_cmpint(iscsit_rx_next(&rx, &pdu), ==, ISCSIT_RX_PDU);
    g_assert_cmpmem(pdu.data, pdu.data_len, data, 262144);
    iscsit_rx_clear(&rx);
}

static void
test_ext_cdb(void)
{
    struct iscsit_bhs h = {{0}};
    uint8_t cdb[32];
    size_t len = 0;
    /* extended CDB AHS: AHSLength 17 = reserved byte + CDB bytes 16..31,
     * then a bidirectional read length AHS (AHSLength 5) */
    uint8_t ahs[28] = {0, 17, 1, 0};
    const uint8_t bidi[8] = {0, 5, 2, 0, 0, 0, 2, 0};

    for (int i = 0; i < 16; i++) {
        h.b[32 + i] = (uint8_t)i;
        ahs[4 + i] = (uint8_t)(16 + i);
    }
    memcpy(ahs + 20, bidi, 8);
    g_assert_true(iscsit_pdu_cdb(&h, NULL, 0, cdb, sizeof(cdb), &len));
    g_assert_cmpuint(len, ==, 16);
    g_assert_true(iscsit_pdu_cdb(&h, ahs, 28, cdb, sizeof(cdb), &len));
    g_assert_cmpuint(len, ==, 32);
    for (int i = 0; i < 32; i++)
        g_assert_cmpuint(cdb[i], ==, i);
    /* 20-byte CDB: AHSLength 5, padded to 8 bytes */
    {
        uint8_t a2[8] = {0, 5, 1, 0, 0xa0, 0xa1, 0xa2, 0xa3};

        g_assert_true(iscsit_pdu_cdb(&h, a2, 8, cdb, sizeof(cdb), &len));
        g_assert_cmpuint(len, ==, 20);
        g_assert_cmphex(cdb[19], ==, 0xa3);
    }
    /* too long for the buffer, beyond the AHS, unknown type, two CDB AHS */
    g_assert_false(iscsit_pdu_cdb(&h, ahs, 28, cdb, 24, &len));
    ahs[1] = 40;
    g_assert_false(iscsit_pdu_cdb(&h, ahs, 28, cdb, sizeof(cdb), &len));
    ahs[1] = 17;
    ahs[22] = 7;
    g_assert_false(iscsit_pdu_cdb(&h, ahs, 28, cdb, sizeof(cdb), &len));
    {
        uint8_t two[16] = {0, 5, 1, 0, 1, 2, 3, 4, 0, 5, 1, 0, 1, 2, 3, 4};

        g_assert_false(iscsit_pdu_cdb(&h, two, 16, cdb, sizeof(cdb), &len));
    }
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/iscsi/pdu/bhs-fields", test_bhs_fields);
    g_test_add_func("/iscsi/pdu/lun-decode", test_lun_decode);
    g_test_add_func("/iscsi/pdu/serial", test_serial);
    g_test_add_func("/iscsi/pdu/ext-cdb-ahs", test_ext_cdb);
    g_test_add_func("/iscsi/pdu/crc32c-rfc3720-b4", test_crc32c_vectors);
    g_test_add_func("/iscsi/rx/bytewise", test_rx_bytewise);
    g_test_add_func("/iscsi/rx/data-too-long", test_rx_data_too_long);
    g_test_add_func("/iscsi/rx/digest-errors", test_rx_digest_errors);
    g_test_add_func("/iscsi/rx/limits-change", test_rx_limits_change);
    g_test_add_func("/iscsi/rx/large", test_rx_large);
    return g_test_run();
}
