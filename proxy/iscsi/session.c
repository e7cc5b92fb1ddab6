/* session.c — the target object and its session table: portals, TSIH
 * allocation, session reinstatement, kicks and shutdown.
 *
 * Locking: target->lock guards portals, sessions, conns, next_tsih and
 * shutting_down, plus every session's state and conn pointer while it is
 * in the table. It is never held during I/O or while calling the registry.
 *
 * Reinstatement (RFC 7143 §6.3.5, ERL 0): a login with TSIH 0 from the
 * same InitiatorName + ISID as a logged-in session ends the old session at
 * once — its socket is shut down, which wakes its connection thread — and
 * the new login waits (bounded) until the old one has left the table, so
 * the old SCSI nexus is gone before the new one is created.
 */
#include <string.h>
#include <sys/socket.h>

#include "iscsi-int.h"

struct iscsit_target *
iscsit_target_new(struct reg *reg)
{
    struct iscsit_target *tgt = g_new0(struct iscsit_target, 1);

    tgt->reg = reg;
    g_mutex_init(&tgt->lock);
    g_cond_init(&tgt->cond);
    tgt->portals = g_ptr_array_new();
    tgt->sessions = g_ptr_array_new();
    tgt->conns = g_ptr_array_new();
    tgt->next_tsih = 1;
    return tgt;
}

void
iscsit_target_free(struct iscsit_target *tgt)
{
    if (!tgt)
        return;
    g_assert(tgt->sessions->len == 0 && tgt->conns->len == 0);
    for (guint i = 0; i < tgt->portals->len; i++) {
        struct iscsit_portal *p = tgt->portals->pdata[i];

        g_free(p->addr_port);
        g_free(p);
    }
    g_ptr_array_unref(tgt->portals);
    g_ptr_array_unref(tgt->sessions);
    g_ptr_array_unref(tgt->conns);
    g_cond_clear(&tgt->cond);
    g_mutex_clear(&tgt->lock);
    g_free(tgt);
}

void
iscsit_target_add_portal(struct iscsit_target *tgt, const char *addr_port, uint16_t tpgt)
{
    struct iscsit_portal *p = g_new0(struct iscsit_portal, 1);

    p->addr_port = g_strdup(addr_port);
    p->tpgt = tpgt;
    g_mutex_lock(&tgt->lock);
    g_ptr_array_add(tgt->portals, p);
    g_mutex_unlock(&tgt->lock);
}

void
iscsit_target_shutdown(struct iscsit_target *tgt)
{
    g_mutex_lock(&tgt->lock);
    tgt->shutting_down = true;
    for (guint i = 0; i < tgt->conns->len; i++)
        iscsit_conn_shutdown(tgt->conns->pdata[i]);
    g_cond_broadcast(&tgt->cond); /* a login waiting to reinstate gives up */
    g_mutex_unlock(&tgt->lock);
}

bool
iscsit_sess_check_invariants(const struct iscsit_sess *sess)
{
    switch (sess->state) {
    case ISCSIT_SESS_FREE:
        return sess->tsih == 0;
    case ISCSIT_SESS_LOGGED_IN:
        if (sess->tsih == 0 || !sess->conn)
            return false;
        if (!sess->params.discovery && (!sess->nexus || !sess->attach))
            return false;
        return iscsit_sn_le(sess->exp_cmdsn, sess->max_cmdsn + 1);
    case ISCSIT_SESS_ENDED:
        return !sess->nexus && !sess->attach;
    }
    return false;
}

struct iscsit_sess *
iscsit_sess_new(struct iscsit_target *tgt)
{
    struct iscsit_sess *sess = g_new0(struct iscsit_sess, 1);

    sess->tgt = tgt;
    sess->state = ISCSIT_SESS_FREE;
    iscsit_params_init(&sess->params);
    return sess;
}

static bool
sess_same_port(const struct iscsit_sess *a, const struct iscsit_sess *b)
{
    return a->isid == b->isid &&
           g_strcmp0(a->params.initiator_name, b->params.initiator_name) == 0 &&
           g_strcmp0(a->params.target_name, b->params.target_name) == 0;
}

static bool
sess_tsih_used(struct iscsit_target *tgt, uint16_t tsih)
{
    for (guint i = 0; i < tgt->sessions->len; i++) {
        struct iscsit_sess *s = tgt->sessions->pdata[i];

        if (s->tsih == tsih)
            return true;
    }
    return false;
}

/* Caller holds tgt->lock. A free TSIH, never 0 (RFC 7143 §11.12.6). */
static uint16_t
sess_alloc_tsih(struct iscsit_target *tgt)
{
    for (;;) {
        uint16_t t = tgt->next_tsih++;

        if (t != 0 && !sess_tsih_used(tgt, t))
            return t;
    }
}

bool
iscsit_sess_register(struct iscsit_sess *sess)
{
    struct iscsit_target *tgt = sess->tgt;
    gint64 deadline = g_get_monotonic_time() + ISCSIT_REINSTATE_WAIT_MS * G_TIME_SPAN_MILLISECOND;
    bool ok = true;

    g_assert(sess->state == ISCSIT_SESS_FREE);
    g_mutex_lock(&tgt->lock);
    for (;;) {
        struct iscsit_sess *old = NULL;

        if (tgt->shutting_down) {
            ok = false;
            break;
        }
        for (guint i = 0; i < tgt->sessions->len && !old; i++) {
            struct iscsit_sess *s = tgt->sessions->pdata[i];

            if (sess_same_port(s, sess))
                old = s;
        }
        if (!old)
            break;
        g_message("iSCSI: %s ISID 0x%012" G_GINT64_MODIFIER "x reinstates session TSIH %u",
                  sess->params.initiator_name, sess->isid, old->tsih);
        iscsit_conn_shutdown(old->conn);
        if (!g_cond_wait_until(&tgt->cond, &tgt->lock, deadline)) {
            g_warning("iSCSI: session TSIH %u did not end in time for reinstatement", old->tsih);
            ok = false;
            break;
        }
    }
    if (ok) {
        sess->tsih = sess_alloc_tsih(tgt);
        sess->state = ISCSIT_SESS_LOGGED_IN;
        g_ptr_array_add(tgt->sessions, sess);
    }
    g_mutex_unlock(&tgt->lock);
    return ok;
}

void
iscsit_sess_free(struct iscsit_sess *sess)
{
    struct iscsit_target *tgt;

    if (!sess)
        return;
    tgt = sess->tgt;
    /* The nexus goes before the session leaves the table: a reinstating
     * login waits for that, so two nexus objects of one initiator port
     * never exist at once. */
    g_clear_pointer(&sess->nexus, sdev_nexus_free);
    g_clear_pointer(&sess->attach, reg_detach);
    g_mutex_lock(&tgt->lock);
    if (sess->state == ISCSIT_SESS_LOGGED_IN) {
        g_ptr_array_remove(tgt->sessions, sess);
        g_cond_broadcast(&tgt->cond);
    }
    sess->state = ISCSIT_SESS_ENDED;
    g_mutex_unlock(&tgt->lock);
    g_assert(iscsit_sess_check_invariants(sess));
    iscsit_params_clear(&sess->params);
    g_free(sess->image);
    g_free(sess->client);
    g_free(sess);
}

void
iscsit_sess_kick(void *user_data, const char *reason)
{
    struct iscsit_conn *conn = user_data;

    g_message("iSCSI: ending connection from %s: %s", conn->peer, reason ? reason : "kicked");
    iscsit_conn_shutdown(conn);
}
