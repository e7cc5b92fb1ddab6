/* text.c — Text Request/Response in full feature phase (RFC 7143 §11.10,
 * §11.11) and SendTargets (RFC 7143 Appendix C).
 *
 * A request split over PDUs with the C bit is gathered (the target answers
 * each part with an empty Text Response carrying a Target Transfer Tag); a
 * response longer than the initiator's MaxRecvDataSegmentLength goes out in
 * parts with the C bit, each asked for by an empty Text Request that echoes
 * our Target Transfer Tag.
 *
 * SendTargets=All lists every image the initiator may log in to
 * (reg_initiator_may_access: a client of it, or auto-enrolment on) as "<prefix>:<image>" with one
 * TargetAddress per portal we listen on; a wildcard portal (0.0.0.0 or [::])
 * is reported as the address this connection reached us on.
 */
#include <string.h>

#include "log.h"
#include "iscsi-int.h"

static void
text_target_addresses(struct iscsit_conn *conn, GString *out)
{
    struct iscsit_target *tgt = conn->tgt;
    guint n = 0;

    g_mutex_lock(&tgt->lock);
    for (guint i = 0; i < tgt->portals->len; i++) {
        struct iscsit_portal *p = tgt->portals->pdata[i];
        bool wildcard = g_str_has_prefix(p->addr_port, "0.0.0.0:") ||
                        g_str_has_prefix(p->addr_port, "[::]:") || p->addr_port[0] == ':';
        g_autofree char *v = NULL;

        if (wildcard && conn->local) {
            const char *port = strrchr(p->addr_port, ':');
            const char *lport = strrchr(conn->local, ':');
            g_autofree char *host = g_strndup(conn->local, (gsize)(lport - conn->local));

            v = g_strdup_printf("%s%s,%u", host, port, p->tpgt);
        } else {
            v = g_strdup_printf("%s,%u", p->addr_port, p->tpgt);
        }
        iscsit_text_append(out, "TargetAddress", v);
        n++;
    }
    g_mutex_unlock(&tgt->lock);
    if (n == 0 && conn->local) {
        g_autofree char *v = g_strdup_printf("%s,1", conn->local);

        iscsit_text_append(out, "TargetAddress", v);
    }
}

void
iscsit_send_targets(struct iscsit_conn *conn, const char *value, GString *out)
{
    struct reg *reg = conn->tgt->reg;
    struct iscsit_sess *sess = conn->sess;

    if (strcmp(value, "All") == 0) {
        g_auto(GStrv) images = reg_list_images(reg);

        for (int i = 0; images && images[i]; i++) {
            g_autofree char *name = NULL;

            /* RFC 7143 Appendix C: only the targets this initiator may
             * access. The check enrols nobody (auto-enrolment happens at
             * a normal session's login only). */
            if (!reg_initiator_may_access(reg, images[i], sess->params.initiator_name))
                continue;
            name = reg_target_name(reg, images[i]);

            iscsit_text_append(out, "TargetName", name);
            text_target_addresses(conn, out);
        }
        return;
    }
    if (value[0] == '\0') {
        /* The session's own target (normal sessions only). */
        if (!sess->params.discovery && sess->params.target_name) {
            iscsit_text_append(out, "TargetName", sess->params.target_name);
            text_target_addresses(conn, out);
        }
        return;
    }
    {
        g_autofree char *image = reg_image_from_target(reg, value);

        if (image && reg_initiator_may_access(reg, image, sess->params.initiator_name)) {
            iscsit_text_append(out, "TargetName", value);
            text_target_addresses(conn, out);
        }
    }
}

struct text_ctx {
    struct iscsit_conn *conn;
    GString *out;
};

static void
text_key(void *user_data, const char *key, const char *value)
{
    struct text_ctx *ctx = user_data;

    g_assert(strcmp(key, "SendTargets") == 0);
    iscsit_send_targets(ctx->conn, value, ctx->out);
}

/* Send the next part of conn->text_out (at most MaxRecvDataSegmentLength). */
static void
text_tx_part(struct iscsit_conn *conn)
{
    struct iscsit_bhs rsp = {{0}};
    size_t left = conn->text_out->len - conn->text_out_off;
    uint32_t n = (uint32_t)MIN(left, (size_t)conn->sess->params.max_recv_dsl_initiator);
    bool last = n == left;
    uint8_t *copy = g_memdup2(conn->text_out->str + conn->text_out_off, n ? n : 1);

    rsp.b[0] = ISCSIT_OP_TEXT_RSP;
    rsp.b[1] = last ? ISCSIT_FLAG_FINAL : ISCSIT_FLAG_CONT;
    iscsit_bhs_set32(&rsp, ISCSIT_OFF_ITT, conn->text_out_itt);
    if (!last) {
        conn->text_out_ttt = conn->next_ttt++;
        if (conn->text_out_ttt == ISCSIT_RSVD_TAG)
            conn->text_out_ttt = conn->next_ttt++;
    }
    iscsit_bhs_set32(&rsp, ISCSIT_OFF_TTT, last ? ISCSIT_RSVD_TAG : conn->text_out_ttt);
    iscsit_conn_set_sn(conn, &rsp, true);
    iscsit_tx_pdu(conn, &rsp, copy, n, copy);
    conn->text_out_off += n;
    if (last) {
        g_string_free(conn->text_out, TRUE);
        conn->text_out = NULL;
    }
}

/* Empty Text Response asking for the rest of a C-bit request. */
static void
text_tx_ack(struct iscsit_conn *conn, uint32_t itt)
{
    struct iscsit_bhs rsp = {{0}};

    rsp.b[0] = ISCSIT_OP_TEXT_RSP;
    iscsit_bhs_set32(&rsp, ISCSIT_OFF_ITT, itt);
    conn->text_out_ttt = conn->next_ttt++;
    if (conn->text_out_ttt == ISCSIT_RSVD_TAG)
        conn->text_out_ttt = conn->next_ttt++;
    iscsit_bhs_set32(&rsp, ISCSIT_OFF_TTT, conn->text_out_ttt);
    iscsit_conn_set_sn(conn, &rsp, true);
    iscsit_tx_pdu(conn, &rsp, NULL, 0, NULL);
}

void
iscsit_rx_text(struct iscsit_conn *conn, const struct iscsit_pdu *pdu)
{
    uint8_t flags = pdu->bhs.b[1];
    uint32_t itt = iscsit_bhs_get32(&pdu->bhs, ISCSIT_OFF_ITT);
    uint32_t ttt = iscsit_bhs_get32(&pdu->bhs, ISCSIT_OFF_TTT);
    struct iscsit_neg neg;
    struct text_ctx ctx;
    enum iscsit_neg_error err;

    if ((flags & ISCSIT_FLAG_FINAL) && (flags & ISCSIT_FLAG_CONT)) {
        iscsit_tx_reject(conn, &pdu->bhs, ISCSIT_REJECT_PROTOCOL);
        return;
    }
    if (ttt != ISCSIT_RSVD_TAG) {
        /* Continuation: of our long response, or of the initiator's request. */
        if (conn->text_out && itt == conn->text_out_itt && ttt == conn->text_out_ttt &&
            pdu->data_len == 0) {
            text_tx_part(conn);
            return;
        }
        if (!conn->text_in || itt != conn->text_in_itt || ttt != conn->text_out_ttt) {
            iscsit_tx_reject(conn, &pdu->bhs, ISCSIT_REJECT_INVALID_FIELD);
            return;
        }
    } else {
        /* A new request resets any negotiation in progress (RFC 7143 §11.10.4). */
        if (conn->text_out) {
            g_string_free(conn->text_out, TRUE);
            conn->text_out = NULL;
        }
        if (conn->text_in) {
            g_string_free(conn->text_in, TRUE);
            conn->text_in = NULL;
        }
    }
    if (!conn->text_in) {
        conn->text_in = g_string_new(NULL);
        conn->text_in_itt = itt;
    }
    if (conn->text_in->len + pdu->data_len > ISCSIT_TEXT_MAX) {
        g_string_free(conn->text_in, TRUE);
        conn->text_in = NULL;
        iscsit_tx_reject(conn, &pdu->bhs, ISCSIT_REJECT_PROTOCOL);
        return;
    }
    g_string_append_len(conn->text_in, (const char *)pdu->data, pdu->data_len);
    if (flags & ISCSIT_FLAG_CONT) {
        text_tx_ack(conn, itt);
        return;
    }

    iscsit_neg_init(&neg);
    neg.params.max_recv_dsl_initiator = conn->sess->params.max_recv_dsl_initiator;
    ctx.conn = conn;
    ctx.out = neg.answer;
    err = iscsit_neg_text(&neg, ISCSIT_NEG_FULL_FEATURE, conn->text_in->str, conn->text_in->len,
                          text_key, &ctx);
    g_string_free(conn->text_in, TRUE);
    conn->text_in = NULL;
    if (err != ISCSIT_NEG_OK) {
        iscsit_neg_clear(&neg);
        iscsit_tx_reject(conn, &pdu->bhs, ISCSIT_REJECT_PROTOCOL);
        return;
    }
    /* MaxRecvDataSegmentLength may be declared again in full feature phase. */
    if (neg.seen_initiator_mrdsl)
        conn->sess->params.max_recv_dsl_initiator = neg.params.max_recv_dsl_initiator;
    conn->text_out = g_string_new_len(neg.answer->str, (gssize)neg.answer->len);
    conn->text_out_off = 0;
    conn->text_out_itt = itt;
    iscsit_neg_clear(&neg);
    text_tx_part(conn);
}
