/* tx.c — the reply queue of a connection.
 *
 * Replies are queued as iovecs (BHS, data, padding, digests) and sent with
 * one writev() when the connection has drained its input (conn.c decides
 * when), so a batch of 32 commands costs one send, not 32. Data-In payload
 * is never copied: the iovec points into the buffer sdev returned, or into
 * its read-only mapping of the disk's pages (large reads, view_map_read),
 * which the queue owns until it is sent.
 */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "overlay.h"
#include "iscsi-int.h"

/* Per-PDU bytes we build: BHS, header digest, padding, data digest. */
struct tx_hdr {
    struct iscsit_bhs bhs;
    uint8_t hdigest[4];
    uint8_t pad[4];
    uint8_t ddigest[4];
};

void
iscsit_tx_init(struct iscsit_tx *tx)
{
    tx->iov = g_array_new(FALSE, FALSE, sizeof(struct iovec));
    tx->owned = g_ptr_array_new_with_free_func(g_free);
    tx->maps = g_array_new(FALSE, FALSE, sizeof(struct view_map));
    tx->bytes = 0;
}

static void
tx_release_maps(struct iscsit_tx *tx)
{
    for (guint i = 0; i < tx->maps->len; i++)
        view_map_release(&g_array_index(tx->maps, struct view_map, i));
    g_array_set_size(tx->maps, 0);
}

void
iscsit_tx_clear(struct iscsit_tx *tx)
{
    g_clear_pointer(&tx->iov, g_array_unref);
    g_clear_pointer(&tx->owned, g_ptr_array_unref);
    if (tx->maps)
        tx_release_maps(tx);
    g_clear_pointer(&tx->maps, g_array_unref);
    tx->bytes = 0;
}

void
iscsit_tx_own_map(struct iscsit_conn *conn, const struct view_map *map)
{
    g_array_append_val(conn->tx.maps, *map);
}

static void
tx_put_digest(uint8_t out[4], uint32_t crc)
{
    /* least significant byte first (RFC 7143 §13.1 and rx.c) */
    out[0] = crc;
    out[1] = crc >> 8;
    out[2] = crc >> 16;
    out[3] = crc >> 24;
}

static void
tx_iov(struct iscsit_tx *tx, const void *base, size_t len)
{
    struct iovec v = {.iov_base = (void *)base, .iov_len = len};

    if (len == 0)
        return;
    g_array_append_val(tx->iov, v);
    tx->bytes += len;
}

void
iscsit_tx_pdu(struct iscsit_conn *conn, const struct iscsit_bhs *bhs, const void *data,
              uint32_t len, void *owned)
{
    struct iscsit_tx *tx = &conn->tx;
    struct tx_hdr *h = g_new0(struct tx_hdr, 1);
    bool hd = conn->rx.lim.header_digest, dd = conn->rx.lim.data_digest;
    uint32_t pad = iscsit_pad4(len);

    h->bhs = *bhs;
    iscsit_bhs_set_dsl(&h->bhs, len);
    g_ptr_array_add(tx->owned, h);
    if (owned)
        g_ptr_array_add(tx->owned, owned);
    tx_iov(tx, &h->bhs, ISCSIT_BHS_LEN);
    if (hd) {
        tx_put_digest(h->hdigest, ov_crc32c(0, &h->bhs, ISCSIT_BHS_LEN));
        tx_iov(tx, h->hdigest, 4);
    }
    if (len == 0)
        return;
    tx_iov(tx, data, len);
    tx_iov(tx, h->pad, pad);
    if (dd) {
        uint32_t crc = ov_crc32c(0, data, len);

        crc = ov_crc32c(crc, h->pad, pad);
        tx_put_digest(h->ddigest, crc);
        tx_iov(tx, h->ddigest, 4);
    }
}

bool
iscsit_tx_flush(struct iscsit_conn *conn)
{
    struct iscsit_tx *tx = &conn->tx;
    struct iovec *iov = (struct iovec *)(void *)tx->iov->data;
    size_t n = tx->iov->len, i = 0;
    bool ok = !conn->failed;

    while (ok && i < n) {
        int cnt = (int)MIN(n - i, (size_t)IOV_MAX);
        struct msghdr msg = {.msg_iov = iov + i, .msg_iovlen = cnt};
        ssize_t w = sendmsg(conn->fd, &msg, MSG_NOSIGNAL);

        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                g_message("iSCSI: %s: not reading our replies for %d s, dropping the connection",
                          conn->peer, conn->nop_timeout_s);
            else
                g_debug("iSCSI: send to %s: %s", conn->peer, g_strerror(errno));
            conn->failed = true;
            ok = false;
            break;
        }
        /* Skip what was sent; adjust a partly sent iovec. */
        while (i < n && (size_t)w >= iov[i].iov_len) {
            w -= (ssize_t)iov[i].iov_len;
            i++;
        }
        if (i < n && w > 0) {
            iov[i].iov_base = (uint8_t *)iov[i].iov_base + w;
            iov[i].iov_len -= (size_t)w;
        }
    }
    g_array_set_size(tx->iov, 0);
    g_ptr_array_set_size(tx->owned, 0);
    tx_release_maps(tx);
    tx->bytes = 0;
    return ok;
}
