/* fuzz-pdu.c — libFuzzer harness for the iSCSI receive machine (rx.c):
 * BHS/AHS decoding, length checks against the limits, digests, and the
 * SCSI Command CDB decoding from the BHS and extended CDB AHS (pdu.c).
 *
 * Input: byte 0 picks the limits (bit 0 header digest, bit 1 data digest,
 * bits 2-3 MaxRecvDataSegmentLength 512/8192/65536/262144); the rest is the
 * byte stream, delivered in chunks whose sizes come from byte 1.
 */
#include <stdint.h>
#include <string.h>
#include <glib.h>

#include "pdu.h"
#include "rx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint32_t mrdsl[4] = {512, 8192, 65536, 262144};
    struct iscsit_rx rx;
    struct iscsit_rx_limits lim;
    size_t off = 2, chunk;

    if (size < 2)
        return 0;
    lim.header_digest = data[0] & 1;
    lim.data_digest = (data[0] >> 1) & 1;
    lim.max_data = mrdsl[(data[0] >> 2) & 3];
    chunk = (size_t)data[1] * 7 + 1;
    iscsit_rx_init(&rx);
    iscsit_rx_set_limits(&rx, &lim);
    while (off < size) {
        size_t avail, n;
        uint8_t *dst = iscsit_rx_space(&rx, &avail);
        struct iscsit_pdu pdu;
        enum iscsit_rx_result r;

        n = MIN(MIN(avail, chunk), size - off);
        memcpy(dst, data + off, n);
        iscsit_rx_commit(&rx, n);
        off += n;
        while ((r = iscsit_rx_next(&rx, &pdu)) == ISCSIT_RX_PDU) {
            uint64_t lun;
            uint8_t cdb[32];
            size_t cdb_len;

            g_assert(pdu.data_len <= lim.max_data);
            g_assert(pdu.ahs_len == iscsit_bhs_ahs_len(&pdu.bhs));
            /* touch every byte handed out: ASan checks the bounds */
            for (uint32_t i = 0; i < pdu.data_len; i++)
                (void)*(volatile const uint8_t *)&pdu.data[i];
            for (uint32_t i = 0; i < pdu.ahs_len; i++)
                (void)*(volatile const uint8_t *)&pdu.ahs[i];
            (void)iscsit_lun_decode(iscsit_bhs_get_lun(&pdu.bhs), &lun);
            (void)iscsit_op_name(pdu.bhs.b[0]);
            if (iscsit_pdu_cdb(&pdu.bhs, pdu.ahs, pdu.ahs_len, cdb, sizeof(cdb), &cdb_len))
                g_assert(cdb_len >= 16 && cdb_len <= sizeof(cdb));
        }
        if (r != ISCSIT_RX_MORE && r != ISCSIT_RX_PDU)
            break; /* the connection would end here */
    }
    iscsit_rx_clear(&rx);
    return 0;
}
