/* rx.h — the byte-level receive machine: BHS → AHS → header digest →
 * data (+ padding) → data digest, over a growable receive buffer.
 *
 * Every length from the wire is checked against the limits in force before
 * the buffer grows for it. The machine resumes after a short read: the
 * caller appends bytes (iscsit_rx_space / iscsit_rx_commit) and calls
 * iscsit_rx_next again. It never touches a socket, so the unit tests and the
 * fuzz harness feed it bytes directly.
 *
 *   BHS ──48 bytes──► AHS ──TotalAHSLength*4──► HDIGEST ──4 (if on)──►
 *   DATA ──DSL+pad──► DDIGEST ──4 (if on and DSL>0)──► DONE ──next()──► BHS
 *
 * Transitions are made only by iscsit_rx_next; iscsit_rx_check_invariants
 * states what each state promises about the buffer.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pdu.h"

enum iscsit_rx_state {
    ISCSIT_RX_BHS,     /* waiting for the 48-byte BHS */
    ISCSIT_RX_AHS,     /* BHS checked; waiting for the AHS */
    ISCSIT_RX_HDIGEST, /* waiting for the header digest */
    ISCSIT_RX_DATA,    /* header done; waiting for data segment + padding */
    ISCSIT_RX_DDIGEST, /* waiting for the data digest */
    ISCSIT_RX_DONE,    /* a whole PDU is in pdu; consumed by the next call */
};

enum iscsit_rx_result {
    ISCSIT_RX_MORE = 0,     /* need more bytes */
    ISCSIT_RX_PDU,          /* *pdu holds a complete PDU */
    ISCSIT_RX_ERR_DATA_LEN, /* DataSegmentLength over the limit (PDU header in *pdu) */
    ISCSIT_RX_ERR_HDIGEST,  /* header digest mismatch: framing can't be trusted */
    ISCSIT_RX_ERR_DDIGEST,  /* data digest mismatch (PDU complete, data bad) */
};

struct iscsit_rx_limits {
    uint32_t max_data; /* MaxRecvDataSegmentLength we declared (8192 during login) */
    bool header_digest;
    bool data_digest;
};

/* A received PDU; ahs and data point into the receive buffer and stay valid
 * until the next iscsit_rx_next / iscsit_rx_space call. */
struct iscsit_pdu {
    struct iscsit_bhs bhs;
    const uint8_t *ahs;
    uint32_t ahs_len;
    const uint8_t *data;
    uint32_t data_len;
};

struct iscsit_rx {
    enum iscsit_rx_state state;
    uint8_t *buf;
    size_t cap;
    size_t start; /* first byte of the current PDU */
    size_t end;   /* bytes received */
    struct iscsit_rx_limits lim;
    struct iscsit_pdu pdu;
    size_t data_off; /* offset of the data segment from start (set with the BHS) */
    size_t total;    /* size of the current PDU on the wire (set with the BHS) */
    bool hdigest;    /* digests in force for the current PDU */
    bool ddigest;
};

void iscsit_rx_init(struct iscsit_rx *rx);
void iscsit_rx_clear(struct iscsit_rx *rx);
void iscsit_rx_set_limits(struct iscsit_rx *rx, const struct iscsit_rx_limits *lim);
/* Advance the machine over the buffered bytes. */
enum iscsit_rx_result iscsit_rx_next(struct iscsit_rx *rx, struct iscsit_pdu *pdu);
/* Room to append at least min bytes (compacts or grows the buffer; pointers
 * from an earlier PDU become invalid). *avail gets the writable size. */
uint8_t *iscsit_rx_space(struct iscsit_rx *rx, size_t *avail);
void iscsit_rx_commit(struct iscsit_rx *rx, size_t n);
/* Bytes buffered beyond the PDU being assembled. */
size_t iscsit_rx_buffered(const struct iscsit_rx *rx);
bool iscsit_rx_check_invariants(const struct iscsit_rx *rx);
