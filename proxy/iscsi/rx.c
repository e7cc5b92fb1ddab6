/* rx.c — the iSCSI receive machine (see rx.h for the state diagram).
 *
 * Design notes:
 * - The buffer holds the PDU being assembled from rx->start on, followed by
 *   whatever the socket already delivered of the next ones; a connection
 *   reads as much as the socket has (batching, docs/concurrency.md) and then
 *   takes PDUs out one by one without another system call.
 * - A PDU's total size is known once its BHS is checked; the buffer only
 *   grows to hold one checked PDU, so a peer cannot make us allocate more
 *   than BHS + 1020 bytes of AHS + MaxRecvDataSegmentLength + digests.
 * - Digests (RFC 7143 §11.2.2.2, CRC32C per §13.1) are verified here; the
 *   padding is covered by the data digest.
 */
#include <string.h>

#include "overlay.h"
#include "rx.h"

#define RX_MIN_CAP (64 * 1024)

void
iscsit_rx_init(struct iscsit_rx *rx)
{
    memset(rx, 0, sizeof(*rx));
    rx->state = ISCSIT_RX_BHS;
    rx->lim.max_data = 8192; /* RFC 7143 §13.12 default, in force during login */
}

void
iscsit_rx_clear(struct iscsit_rx *rx)
{
    g_clear_pointer(&rx->buf, g_free);
    rx->cap = rx->start = rx->end = 0;
}

void
iscsit_rx_set_limits(struct iscsit_rx *rx, const struct iscsit_rx_limits *lim)
{
    rx->lim = *lim;
}

bool
iscsit_rx_check_invariants(const struct iscsit_rx *rx)
{
    if (rx->start > rx->end || rx->end > rx->cap)
        return false;
    switch (rx->state) {
    case ISCSIT_RX_BHS:
        return true;
    case ISCSIT_RX_AHS:
    case ISCSIT_RX_HDIGEST:
    case ISCSIT_RX_DATA:
    case ISCSIT_RX_DDIGEST:
        /* The BHS is buffered and its lengths were checked. */
        return rx->end - rx->start >= ISCSIT_BHS_LEN &&
               iscsit_bhs_dsl(&rx->pdu.bhs) <= rx->lim.max_data;
    case ISCSIT_RX_DONE:
        return rx->pdu.data_len <= rx->lim.max_data &&
               rx->data_off + rx->pdu.data_len <= rx->end - rx->start;
    }
    return false;
}

static size_t
rx_have(const struct iscsit_rx *rx)
{
    return rx->end - rx->start;
}

static size_t
rx_data_padded(const struct iscsit_rx *rx)
{
    uint32_t dsl = iscsit_bhs_dsl(&rx->pdu.bhs);

    return (size_t)dsl + iscsit_pad4(dsl);
}

/* Fix the layout of the PDU whose BHS was just read: the limits may change
 * at the next PDU boundary (digests start after login), never inside one. */
static void
rx_layout(struct iscsit_rx *rx)
{
    uint32_t dsl = iscsit_bhs_dsl(&rx->pdu.bhs);

    rx->hdigest = rx->lim.header_digest;
    rx->ddigest = rx->lim.data_digest && dsl > 0;
    rx->data_off =
        ISCSIT_BHS_LEN + iscsit_bhs_ahs_len(&rx->pdu.bhs) + (rx->hdigest ? ISCSIT_DIGEST_LEN : 0);
    rx->total = rx->data_off + rx_data_padded(rx) + (rx->ddigest ? ISCSIT_DIGEST_LEN : 0);
}

static uint32_t
rx_get_digest(const uint8_t *p)
{
    /* RFC 7143 §11.2.2.2 + §13.1: the CRC32C digest is sent with the least
     * significant byte first, so a little-endian load gives its value. */
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

enum iscsit_rx_result
iscsit_rx_next(struct iscsit_rx *rx, struct iscsit_pdu *pdu)
{
    const uint8_t *base;

    if (rx->state == ISCSIT_RX_DONE) {
        rx->start += rx->total;
        rx->state = ISCSIT_RX_BHS;
    }
    if (!rx->buf)
        return ISCSIT_RX_MORE; /* nothing received yet */
    base = rx->buf + rx->start;
    for (;;) {
        g_assert(iscsit_rx_check_invariants(rx));
        switch (rx->state) {
        case ISCSIT_RX_BHS:
            if (rx_have(rx) < ISCSIT_BHS_LEN)
                return ISCSIT_RX_MORE;
            memcpy(rx->pdu.bhs.b, base, ISCSIT_BHS_LEN);
            if (iscsit_bhs_dsl(&rx->pdu.bhs) > rx->lim.max_data) {
                memset(pdu, 0, sizeof(*pdu));
                pdu->bhs = rx->pdu.bhs;
                return ISCSIT_RX_ERR_DATA_LEN;
            }
            rx_layout(rx);
            rx->state = ISCSIT_RX_AHS;
            break;
        case ISCSIT_RX_AHS:
            if (rx_have(rx) < ISCSIT_BHS_LEN + iscsit_bhs_ahs_len(&rx->pdu.bhs))
                return ISCSIT_RX_MORE;
            rx->state = ISCSIT_RX_HDIGEST;
            break;
        case ISCSIT_RX_HDIGEST: {
            size_t hlen = ISCSIT_BHS_LEN + iscsit_bhs_ahs_len(&rx->pdu.bhs);

            if (rx_have(rx) < rx->data_off)
                return ISCSIT_RX_MORE;
            if (rx->hdigest && ov_crc32c(0, base, hlen) != rx_get_digest(base + hlen))
                return ISCSIT_RX_ERR_HDIGEST;
            rx->state = ISCSIT_RX_DATA;
            break;
        }
        case ISCSIT_RX_DATA:
            if (rx_have(rx) < rx->data_off + rx_data_padded(rx))
                return ISCSIT_RX_MORE;
            rx->state = ISCSIT_RX_DDIGEST;
            break;
        case ISCSIT_RX_DDIGEST: {
            bool bad = false;

            if (rx_have(rx) < rx->total)
                return ISCSIT_RX_MORE;
            if (rx->ddigest) {
                const uint8_t *d = base + rx->data_off;
                size_t plen = rx_data_padded(rx);

                bad = ov_crc32c(0, d, plen) != rx_get_digest(d + plen);
            }
            rx->pdu.ahs = base + ISCSIT_BHS_LEN;
            rx->pdu.ahs_len = iscsit_bhs_ahs_len(&rx->pdu.bhs);
            rx->pdu.data = base + rx->data_off;
            rx->pdu.data_len = iscsit_bhs_dsl(&rx->pdu.bhs);
            rx->state = ISCSIT_RX_DONE;
            *pdu = rx->pdu;
            return bad ? ISCSIT_RX_ERR_DDIGEST : ISCSIT_RX_PDU;
        }
        case ISCSIT_RX_DONE:
            g_assert_not_reached();
        }
    }
}

uint8_t *
iscsit_rx_space(struct iscsit_rx *rx, size_t *avail)
{
    size_t have = rx_have(rx);
    size_t want = RX_MIN_CAP;

    /* Once the BHS is known (it was checked), the buffer must hold the whole PDU. */
    if (rx->state != ISCSIT_RX_BHS && rx->state != ISCSIT_RX_DONE)
        want = MAX(want, rx->total + ISCSIT_BHS_LEN);
    if (rx->state == ISCSIT_RX_DONE) {
        rx->start += rx->total;
        rx->state = ISCSIT_RX_BHS;
        have = rx_have(rx);
    }
    if (rx->start > 0 && (rx->cap - rx->end < want / 2 || have == 0)) {
        memmove(rx->buf, rx->buf + rx->start, have);
        rx->start = 0;
        rx->end = have;
    }
    if (rx->cap < want) {
        rx->buf = g_realloc(rx->buf, want);
        rx->cap = want;
    }
    *avail = rx->cap - rx->end;
    return rx->buf + rx->end;
}

void
iscsit_rx_commit(struct iscsit_rx *rx, size_t n)
{
    g_assert(rx->end + n <= rx->cap);
    rx->end += n;
}

size_t
iscsit_rx_buffered(const struct iscsit_rx *rx)
{
    size_t have = rx_have(rx);

    if (rx->state == ISCSIT_RX_DONE)
        return have - rx->total;
    return have;
}
