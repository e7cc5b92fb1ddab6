/* login.c — the iSCSI login phase (RFC 7143 §6, §11.12, §11.13): stages,
 * key negotiation, CHAP, target and initiator checks, session creation.
 *
 * Login stages (the CSG of the PDUs the initiator sends):
 *
 *   START ──first Login Request──► SECURITY (CSG 0) ──T=1, NSG=1──► OPERATIONAL (CSG 1)
 *                                      │                                │
 *                                      └──T=1, NSG=3 (auth done)──┐     └──T=1, NSG=3──┐
 *                                                                 ▼                    ▼
 *                                                       login_finish(): FULL FEATURE
 *   any stage ──error (status class 2/3)──► FAILED (response sent, connection ends)
 *
 * Each transition is made by login_step() for one complete request text
 * (Login Requests with the C bit are gathered first, RFC 7143 §11.12.2).
 * The CHAP sub-machine (RFC 7143 §12.1.3):
 *
 *   NONE ──AuthMethod=CHAP──► WAIT_A ──CHAP_A=5 / send CHAP_I, CHAP_C──► WAIT_R
 *        ──CHAP_N, CHAP_R ok (+ our CHAP_N, CHAP_R if mutual)──► DONE
 *
 * Who may log in: TargetName "<prefix>:<image>" must name an image
 * (0x0203 Not found), the InitiatorName must resolve to a client of that
 * image (0x0202 Authorization failure), and that client's CHAP secret, or
 * require_chap, makes CHAP mandatory (0x0201 Authentication failure).
 * Discovery sessions only list targets and need no authentication.
 */
#include <string.h>
#include <sys/random.h>

#include "log.h"
#include "iscsi-int.h"

#define CHAP_CHALLENGE_LEN 16
#define CHAP_ALG_MD5 "5"

enum login_state {
    LOGIN_START,
    LOGIN_SECURITY,
    LOGIN_OPERATIONAL,
    LOGIN_FULL_FEATURE,
    LOGIN_FAILED,
};

enum chap_state {
    CHAP_NONE,
    CHAP_WAIT_A,
    CHAP_WAIT_R,
    CHAP_DONE,
};

struct login {
    struct iscsit_conn *conn;
    struct iscsit_sess *sess;
    struct iscsit_neg neg;
    enum login_state state;
    uint16_t status; /* enum iscsit_login_status, set on failure */
    uint16_t tpgt;
    bool declared;   /* TargetPortalGroupTag / TargetAlias sent */
    bool identified; /* login_identify ran (after the first complete text) */
    GString *text_in;
    /* authentication */
    bool auth_required;
    bool auth_none; /* AuthMethod=None agreed */
    enum chap_state chap;
    char *chap_user, *chap_secret, *mutual_user, *mutual_secret;
    uint8_t chap_id;
    uint8_t challenge[CHAP_CHALLENGE_LEN];
    /* security keys of the current request (borrowed from neg callbacks, copied) */
    char *k_auth_method, *k_chap_a, *k_chap_i, *k_chap_c, *k_chap_n, *k_chap_r;
};

static bool
login_check_invariants(const struct login *l)
{
    switch (l->state) {
    case LOGIN_START:
        return l->chap == CHAP_NONE && !l->auth_none;
    case LOGIN_SECURITY:
        return true;
    case LOGIN_OPERATIONAL:
    case LOGIN_FULL_FEATURE:
        /* past security only when authenticated or not required */
        return !l->auth_required || l->chap == CHAP_DONE;
    case LOGIN_FAILED:
        return l->status != ISCSIT_LOGIN_OK;
    }
    return false;
}

static void
login_fail(struct login *l, uint16_t status, const char *why)
{
    const char *name = l->neg.params.initiator_name;

    LOG_RATELIMITED(G_LOG_LEVEL_MESSAGE, 10, 10, "iSCSI: %s: login of %s refused (0x%04x): %s",
                    l->conn->peer, name ? name : "?", status, why);
    l->status = status;
    l->state = LOGIN_FAILED;
}

static void
login_clear_keys(struct login *l)
{
    g_clear_pointer(&l->k_auth_method, g_free);
    g_clear_pointer(&l->k_chap_a, g_free);
    g_clear_pointer(&l->k_chap_i, g_free);
    g_clear_pointer(&l->k_chap_c, g_free);
    g_clear_pointer(&l->k_chap_n, g_free);
    g_clear_pointer(&l->k_chap_r, g_free);
}

/* Security keys of this request, kept for login_security(). */
static void
login_key(void *user_data, const char *key, const char *value)
{
    struct login *l = user_data;
    char **slot = NULL;

    if (strcmp(key, "AuthMethod") == 0)
        slot = &l->k_auth_method;
    else if (strcmp(key, "CHAP_A") == 0)
        slot = &l->k_chap_a;
    else if (strcmp(key, "CHAP_I") == 0)
        slot = &l->k_chap_i;
    else if (strcmp(key, "CHAP_C") == 0)
        slot = &l->k_chap_c;
    else if (strcmp(key, "CHAP_N") == 0)
        slot = &l->k_chap_n;
    else if (strcmp(key, "CHAP_R") == 0)
        slot = &l->k_chap_r;
    g_assert(slot);
    g_free(*slot);
    *slot = g_strdup(value);
}

static bool
list_has(const char *list, const char *item)
{
    g_auto(GStrv) items = g_strsplit(list, ",", -1);

    for (int i = 0; items[i]; i++)
        if (strcmp(items[i], item) == 0)
            return true;
    return false;
}

static bool
mem_equal_ct(const uint8_t *a, const uint8_t *b, size_t n)
{
    uint8_t d = 0;

    for (size_t i = 0; i < n; i++)
        d |= a[i] ^ b[i];
    return d == 0;
}

static void
login_random(void *buf, size_t len)
{
    if (getrandom(buf, len, 0) != (ssize_t)len) {
        uint8_t *p = buf;

        for (size_t i = 0; i < len; i++)
            p[i] = (uint8_t)g_random_int();
    }
}

/* AuthMethod offer (RFC 7143 §12.1): CHAP when we need it, else None. */
static void
login_auth_method(struct login *l)
{
    GString *ans = l->neg.answer;

    if (l->auth_required) {
        if (!list_has(l->k_auth_method, "CHAP")) {
            iscsit_text_append(ans, "AuthMethod", "Reject");
            login_fail(l, ISCSIT_LOGIN_AUTH_FAILED, "CHAP required but not offered");
            return;
        }
        iscsit_text_append(ans, "AuthMethod", "CHAP");
        l->chap = CHAP_WAIT_A;
        return;
    }
    if (list_has(l->k_auth_method, "None")) {
        iscsit_text_append(ans, "AuthMethod", "None");
        l->auth_none = true;
        return;
    }
    iscsit_text_append(ans, "AuthMethod", "Reject");
    login_fail(l, ISCSIT_LOGIN_AUTH_FAILED,
               "initiator insists on authentication we have no secret for");
}

/* CHAP_A: pick MD5 and send our identifier and challenge. */
static void
login_chap_a(struct login *l)
{
    GString *ans = l->neg.answer;
    g_autofree char *c = NULL;
    char id[8];

    if (!list_has(l->k_chap_a, CHAP_ALG_MD5)) {
        iscsit_text_append(ans, "CHAP_A", "Reject");
        login_fail(l, ISCSIT_LOGIN_AUTH_FAILED, "no CHAP algorithm in common (we do MD5)");
        return;
    }
    login_random(&l->chap_id, 1);
    login_random(l->challenge, sizeof(l->challenge));
    c = iscsit_hex_encode(l->challenge, sizeof(l->challenge));
    g_snprintf(id, sizeof(id), "%u", l->chap_id);
    iscsit_text_append(ans, "CHAP_A", CHAP_ALG_MD5);
    iscsit_text_append(ans, "CHAP_I", id);
    iscsit_text_append(ans, "CHAP_C", c);
    l->chap = CHAP_WAIT_R;
}

/* The initiator's mutual challenge: answer it with our own secret. */
static void
login_chap_mutual(struct login *l)
{
    g_autofree uint8_t *chal = NULL;
    g_autofree char *r = NULL;
    uint64_t id;
    size_t clen = 0;
    uint8_t digest[16];

    if (!l->k_chap_i || !l->k_chap_c) {
        login_fail(l, ISCSIT_LOGIN_AUTH_FAILED, "mutual CHAP needs both CHAP_I and CHAP_C");
        return;
    }
    if (!l->mutual_user || !l->mutual_secret) {
        login_fail(l, ISCSIT_LOGIN_AUTH_FAILED, "mutual CHAP asked for but not configured");
        return;
    }
    chal = iscsit_parse_binary(l->k_chap_c, 1024, &clen);
    if (!iscsit_parse_number(l->k_chap_i, &id) || id > 255 || !chal) {
        login_fail(l, ISCSIT_LOGIN_AUTH_FAILED, "malformed CHAP_I or CHAP_C");
        return;
    }
    /* RFC 7143 §12.1.3: refuse a challenge equal to the one we sent (reflection). */
    if (clen == sizeof(l->challenge) && memcmp(chal, l->challenge, clen) == 0) {
        login_fail(l, ISCSIT_LOGIN_AUTH_FAILED, "initiator reflected our CHAP challenge");
        return;
    }
    iscsit_chap_response((uint8_t)id, (const uint8_t *)l->mutual_secret, strlen(l->mutual_secret),
                         chal, clen, digest);
    r = iscsit_hex_encode(digest, sizeof(digest));
    iscsit_text_append(l->neg.answer, "CHAP_N", l->mutual_user);
    iscsit_text_append(l->neg.answer, "CHAP_R", r);
}

/* CHAP_N / CHAP_R: check the initiator's answer to our challenge. */
static void
login_chap_r(struct login *l)
{
    g_autofree uint8_t *resp = NULL;
    size_t rlen = 0;
    uint8_t expect[16];

    if (!l->k_chap_n || !l->k_chap_r) {
        login_fail(l, ISCSIT_LOGIN_AUTH_FAILED, "CHAP_N and CHAP_R expected");
        return;
    }
    resp = iscsit_parse_binary(l->k_chap_r, 64, &rlen);
    iscsit_chap_response(l->chap_id, (const uint8_t *)l->chap_secret, strlen(l->chap_secret),
                         l->challenge, sizeof(l->challenge), expect);
    if (strcmp(l->k_chap_n, l->chap_user) != 0 || !resp || rlen != sizeof(expect) ||
        !mem_equal_ct(resp, expect, sizeof(expect))) {
        login_fail(l, ISCSIT_LOGIN_AUTH_FAILED, "wrong CHAP name or secret");
        return;
    }
    if (l->k_chap_i || l->k_chap_c) {
        login_chap_mutual(l);
        if (l->state == LOGIN_FAILED)
            return;
    }
    l->chap = CHAP_DONE;
}

/* Security stage keys of one request. */
static void
login_security(struct login *l)
{
    bool chap_keys = l->k_chap_a || l->k_chap_i || l->k_chap_c || l->k_chap_n || l->k_chap_r;

    if (l->k_auth_method) {
        if (l->chap != CHAP_NONE || l->auth_none) {
            login_fail(l, ISCSIT_LOGIN_INITIATOR_ERROR, "AuthMethod renegotiated");
            return;
        }
        login_auth_method(l);
        if (l->state == LOGIN_FAILED || !chap_keys)
            return;
    }
    switch (l->chap) {
    case CHAP_WAIT_A:
        if (l->k_chap_a && !l->k_chap_n && !l->k_chap_r)
            login_chap_a(l);
        else if (chap_keys)
            login_fail(l, ISCSIT_LOGIN_AUTH_FAILED, "CHAP keys out of order");
        break;
    case CHAP_WAIT_R:
        if (l->k_chap_a)
            login_fail(l, ISCSIT_LOGIN_AUTH_FAILED, "CHAP_A repeated");
        else if (chap_keys)
            login_chap_r(l);
        break;
    case CHAP_NONE:
    case CHAP_DONE:
        if (chap_keys)
            login_fail(l, ISCSIT_LOGIN_AUTH_FAILED, "unexpected CHAP keys");
        break;
    }
}

static bool
login_authenticated(const struct login *l)
{
    if (l->auth_required)
        return l->chap == CHAP_DONE;
    return true;
}

/* Login status for a failed registry lookup. RFC 7143 §11.13.5: initiators
 * treat class 2 as final and retry class 3, so a server-side failure
 * (REG_ERROR_FAILED: out of file descriptors, EIO, ...) is 03xx, never
 * "not found" / "not authorised" (scale finding S1). */
static uint16_t
login_reg_status(const GError *error)
{
    if (g_error_matches(error, REG_ERROR, REG_ERROR_UNKNOWN_TARGET))
        return ISCSIT_LOGIN_NOT_FOUND;
    if (g_error_matches(error, REG_ERROR, REG_ERROR_UNKNOWN_INITIATOR))
        return ISCSIT_LOGIN_AUTHZ_FAILED;
    if (g_error_matches(error, REG_ERROR, REG_ERROR_BUSY))
        return ISCSIT_LOGIN_SERVICE_UNAVAILABLE;
    if (reg_error_is_out_of_resources(error))
        return ISCSIT_LOGIN_OUT_OF_RESOURCES;
    return ISCSIT_LOGIN_TARGET_ERROR;
}

/* After the first request: who is this, and what may it log in to? */
static void
login_identify(struct login *l)
{
    struct iscsit_params *p = &l->neg.params;
    struct reg *reg = l->conn->tgt->reg;
    g_autoptr(GError) error = NULL;
    struct cfg *cfg;
    const struct cfg_client *cc;

    if (!p->initiator_name) {
        login_fail(l, ISCSIT_LOGIN_MISSING_PARAM, "no InitiatorName");
        return;
    }
    cfg = reg_get_cfg(reg);
    if (p->discovery) {
        /* Discovery CHAP ([ovgated] discovery-chap-*): only when configured;
         * require_chap is about the disks, not the list of target names. */
        if (cfg->discovery_chap_user && cfg->discovery_chap_secret) {
            l->chap_user = g_strdup(cfg->discovery_chap_user);
            l->chap_secret = g_strdup(cfg->discovery_chap_secret);
        }
        if (cfg->discovery_mutual_chap_user && cfg->discovery_mutual_chap_secret) {
            l->mutual_user = g_strdup(cfg->discovery_mutual_chap_user);
            l->mutual_secret = g_strdup(cfg->discovery_mutual_chap_secret);
        }
        l->auth_required = l->chap_secret != NULL;
        cfg_unref(cfg);
        return;
    }
    if (!p->target_name) {
        login_fail(l, ISCSIT_LOGIN_MISSING_PARAM, "no TargetName");
        cfg_unref(cfg);
        return;
    }
    l->sess->image = reg_image_from_target_full(reg, p->target_name, &error);
    if (!l->sess->image) {
        login_fail(l, login_reg_status(error), error->message);
        cfg_unref(cfg);
        return;
    }
    l->sess->client = reg_resolve_initiator(reg, l->sess->image, p->initiator_name, &error);
    if (!l->sess->client) {
        login_fail(l, login_reg_status(error), error->message);
        cfg_unref(cfg);
        return;
    }
    cc = cfg_get_client(cfg, l->sess->client);
    if (cc && cc->chap_user && cc->chap_secret) {
        l->chap_user = g_strdup(cc->chap_user);
        l->chap_secret = g_strdup(cc->chap_secret);
    }
    if (cc && cc->mutual_chap_user && cc->mutual_chap_secret) {
        l->mutual_user = g_strdup(cc->mutual_chap_user);
        l->mutual_secret = g_strdup(cc->mutual_chap_secret);
    }
    l->auth_required = l->chap_secret != NULL || cfg->require_chap;
    if (cfg->require_chap && !l->chap_secret)
        login_fail(l, ISCSIT_LOGIN_AUTH_FAILED, "require_chap is set but the client has no secret");
    cfg_unref(cfg);
}

/* The portal group of the address this connection came in on. */
static uint16_t
login_tpgt(struct iscsit_conn *conn)
{
    struct iscsit_target *tgt = conn->tgt;
    uint16_t tpgt = 1;
    const char *local_port = conn->local ? strrchr(conn->local, ':') : NULL;

    g_mutex_lock(&tgt->lock);
    for (guint i = 0; i < tgt->portals->len; i++) {
        struct iscsit_portal *p = tgt->portals->pdata[i];
        const char *port = strrchr(p->addr_port, ':');

        if (conn->local && strcmp(p->addr_port, conn->local) == 0) {
            tpgt = p->tpgt;
            break;
        }
        if (local_port && port && strcmp(port, local_port) == 0)
            tpgt = p->tpgt; /* wildcard listener on the same port */
    }
    g_mutex_unlock(&tgt->lock);
    return tpgt;
}

/* Keys we declare (RFC 7143 §13.9, §13.6, §13.12). */
static void
login_declare(struct login *l, enum login_state stage)
{
    GString *ans = l->neg.answer;
    char buf[16];

    if (!l->declared && !l->neg.params.discovery) {
        struct cfg *cfg = reg_get_cfg(l->conn->tgt->reg);

        g_snprintf(buf, sizeof(buf), "%u", l->tpgt);
        iscsit_text_append(ans, "TargetPortalGroupTag", buf);
        if (cfg->target_alias && cfg->target_alias[0])
            iscsit_text_append(ans, "TargetAlias", cfg->target_alias);
        cfg_unref(cfg);
    }
    l->declared = true;
    if (stage == LOGIN_OPERATIONAL && !l->neg.declared_mrdsl) {
        g_snprintf(buf, sizeof(buf), "%u", ISCSIT_OUR_MAX_RECV_DSL);
        iscsit_text_append(ans, "MaxRecvDataSegmentLength", buf);
        l->neg.declared_mrdsl = true;
    }
}

/* Enter full feature phase: table entry (reinstatement), disk, nexus. */
static void
login_finish(struct login *l)
{
    struct iscsit_conn *conn = l->conn;
    struct iscsit_sess *sess = l->sess;
    struct reg_attach_params ap = {0};
    g_autoptr(GError) error = NULL;
    g_autofree char *iport = NULL;
    g_autofree char *tport = NULL;

    /* Names move from the negotiation into the session. */
    sess->params = l->neg.params;
    memset(&l->neg.params, 0, sizeof(l->neg.params));
    if (l->neg.declared_mrdsl)
        sess->params.max_recv_dsl_target = ISCSIT_OUR_MAX_RECV_DSL;
    sess->conn = conn;
    if (!iscsit_sess_register(sess)) {
        login_fail(l, ISCSIT_LOGIN_SERVICE_UNAVAILABLE, "target shutting down or busy");
        return;
    }
    if (sess->params.discovery)
        return;
    ap.protocol = REG_PROTO_ISCSI;
    ap.peer = conn->peer;
    ap.initiator = sess->params.initiator_name;
    ap.kick = iscsit_sess_kick;
    ap.kick_data = conn;
    sess->attach = reg_attach_client(conn->tgt->reg, sess->client, &ap, &error);
    if (!sess->attach) {
        uint16_t st = ISCSIT_LOGIN_TARGET_ERROR;

        if (g_error_matches(error, REG_ERROR, REG_ERROR_BUSY))
            st = ISCSIT_LOGIN_SERVICE_UNAVAILABLE;
        else if (g_error_matches(error, REG_ERROR, REG_ERROR_UNKNOWN_TARGET))
            st = ISCSIT_LOGIN_TARGET_REMOVED;
        else if (g_error_matches(error, REG_ERROR, REG_ERROR_UNKNOWN_INITIATOR))
            st = ISCSIT_LOGIN_AUTHZ_FAILED;
        else if (reg_error_is_out_of_resources(error))
            st = ISCSIT_LOGIN_OUT_OF_RESOURCES;
        login_fail(l, st, error ? error->message : "attach failed");
        return;
    }
    /* SAM initiator/target port names for iSCSI (RFC 7143 §4.2.7.4, §10.1.2). */
    iport = g_strdup_printf("%s,i,0x%012" G_GINT64_MODIFIER "x", sess->params.initiator_name,
                            sess->isid);
    tport = g_strdup_printf("%s,t,0x%04x", sess->params.target_name, l->tpgt);
    sess->nexus = sdev_nexus_new(reg_attach_get_lu(sess->attach), iport, tport, l->tpgt);
    g_message("iSCSI: %s logged in from %s to %s as client %s (TSIH %u)",
              sess->params.initiator_name, conn->peer, sess->params.target_name, sess->client,
              sess->tsih);
}

/* Queue the Login Response for the current request. */
static void
login_respond(struct login *l, const struct iscsit_bhs *req, bool transit, uint8_t csg, uint8_t nsg,
              const GString *text)
{
    struct iscsit_conn *conn = l->conn;
    struct iscsit_bhs rsp = {{0}};

    rsp.b[0] = ISCSIT_OP_LOGIN_RSP;
    if (l->state != LOGIN_FAILED)
        rsp.b[1] = (uint8_t)((transit ? ISCSIT_LOGIN_TRANSIT : 0) | csg << 2 | (transit ? nsg : 0));
    rsp.b[2] = 0;                     /* VersionMax */
    rsp.b[3] = 0;                     /* VersionActive */
    memcpy(rsp.b + 8, req->b + 8, 6); /* ISID */
    if (l->state == LOGIN_FULL_FEATURE)
        iscsit_bhs_set16(&rsp, 14, l->sess->tsih);
    else
        memcpy(rsp.b + 14, req->b + 14, 2);
    memcpy(rsp.b + ISCSIT_OFF_ITT, req->b + ISCSIT_OFF_ITT, 4);
    iscsit_conn_set_sn(conn, &rsp, true);
    rsp.b[36] = l->status >> 8;
    rsp.b[37] = l->status & 0xff;
    if (text && text->len > 0 && l->state != LOGIN_FAILED) {
        uint8_t *copy = g_memdup2(text->str, text->len);

        iscsit_tx_pdu(conn, &rsp, copy, (uint32_t)text->len, copy);
    } else {
        iscsit_tx_pdu(conn, &rsp, NULL, 0, NULL);
    }
}

/* Header checks of every Login Request (RFC 7143 §11.12). */
static bool
login_check_header(struct login *l, const struct iscsit_bhs *req, bool first)
{
    uint8_t flags = req->b[1];
    uint8_t csg = ISCSIT_LOGIN_CSG(flags), nsg = ISCSIT_LOGIN_NSG(flags);
    bool transit = flags & ISCSIT_LOGIN_TRANSIT;

    if (iscsit_bhs_opcode(req) != ISCSIT_OP_LOGIN_REQ) {
        login_fail(l, ISCSIT_LOGIN_INVALID_REQUEST, "non-login PDU during login");
        return false;
    }
    if (req->b[3] > 0 || req->b[2] < req->b[3]) {
        login_fail(l, ISCSIT_LOGIN_UNSUPPORTED_VERSION, "no common protocol version (we do 0)");
        return false;
    }
    if ((transit && (flags & ISCSIT_FLAG_CONT)) || csg == 2 || csg == 3 ||
        (transit && (nsg <= csg || nsg == 2))) {
        login_fail(l, ISCSIT_LOGIN_INITIATOR_ERROR, "invalid stage transition");
        return false;
    }
    if (first) {
        l->sess->isid = iscsit_bhs_get_isid(req);
        l->conn->cid = iscsit_bhs_get16(req, ISCSIT_OFF_TTT);
        l->sess->exp_cmdsn = iscsit_bhs_get32(req, ISCSIT_OFF_CMDSN);
        l->sess->max_cmdsn = l->sess->exp_cmdsn + ISCSIT_CMDSN_WINDOW - 1;
        l->state = csg == ISCSIT_STAGE_SECURITY ? LOGIN_SECURITY : LOGIN_OPERATIONAL;
        if (iscsit_bhs_get16(req, 14) != 0) {
            /* Adding a connection to a session: MaxConnections is 1. */
            login_fail(l, ISCSIT_LOGIN_NO_SESSION,
                       "TSIH given but we keep one connection per session");
            return false;
        }
        return true;
    }
    if (iscsit_bhs_get_isid(req) != l->sess->isid || iscsit_bhs_get16(req, 14) != 0 ||
        iscsit_bhs_get16(req, ISCSIT_OFF_TTT) != l->conn->cid) {
        login_fail(l, ISCSIT_LOGIN_INITIATOR_ERROR, "ISID, TSIH or CID changed during login");
        return false;
    }
    if ((l->state == LOGIN_SECURITY && csg != ISCSIT_STAGE_SECURITY) ||
        (l->state == LOGIN_OPERATIONAL && csg != ISCSIT_STAGE_OPERATIONAL)) {
        login_fail(l, ISCSIT_LOGIN_INITIATOR_ERROR, "CSG does not match the current stage");
        return false;
    }
    return true;
}

/* One complete request text in the current stage; returns whether the
 * target agrees to the transition the initiator asked for. */
static bool
login_step(struct login *l, const struct iscsit_bhs *req, const char *text, size_t len)
{
    uint8_t flags = req->b[1];
    bool transit = flags & ISCSIT_LOGIN_TRANSIT;
    enum login_state stage = l->state;
    enum iscsit_neg_error err;

    g_string_truncate(l->neg.answer, 0);
    login_clear_keys(l);
    err = iscsit_neg_text(&l->neg,
                          stage == LOGIN_SECURITY ? ISCSIT_NEG_SECURITY : ISCSIT_NEG_OPERATIONAL,
                          text, len, login_key, l);
    if (err != ISCSIT_NEG_OK) {
        login_fail(l, ISCSIT_LOGIN_INITIATOR_ERROR,
                   err == ISCSIT_NEG_DUPLICATE   ? "a key was sent twice"
                   : err == ISCSIT_NEG_FORBIDDEN ? "security key outside the security stage"
                                                 : "malformed key=value text");
        return false;
    }
    if (!l->identified) {
        /* the first complete request text (it may span C-bit PDUs) */
        l->identified = true;
        login_identify(l);
        if (l->state == LOGIN_FAILED)
            return false;
        l->tpgt = login_tpgt(l->conn);
    }
    if (stage == LOGIN_SECURITY) {
        login_security(l);
        if (l->state == LOGIN_FAILED)
            return false;
    } else if (!login_authenticated(l)) {
        /* Skipped the security stage although we need authentication. */
        login_fail(l, ISCSIT_LOGIN_AUTH_FAILED, "authentication required");
        return false;
    }
    login_declare(l, stage);
    if (!transit)
        return false;
    if (stage == LOGIN_SECURITY) {
        /* Stay while a CHAP exchange is under way (RFC 7143 §12.1.3). */
        if (l->chap == CHAP_WAIT_A || l->chap == CHAP_WAIT_R)
            return false;
        if (!login_authenticated(l)) {
            login_fail(l, ISCSIT_LOGIN_AUTH_FAILED, "left the security stage unauthenticated");
            return false;
        }
    }
    return true;
}

/* Gather C-bit continuations, then one step and one response. false: the
 * login is over (failed or in full feature phase). */
static bool
login_request(struct login *l, const struct iscsit_pdu *pdu, bool first)
{
    const struct iscsit_bhs *req = &pdu->bhs;
    uint8_t flags = req->b[1];
    uint8_t csg, nsg = ISCSIT_LOGIN_NSG(flags);
    bool agree;

    if (!login_check_header(l, req, first)) {
        login_respond(l, req, false, 0, 0, NULL);
        return false;
    }
    csg = ISCSIT_LOGIN_CSG(flags);
    if (l->text_in->len + pdu->data_len > ISCSIT_TEXT_MAX) {
        login_fail(l, ISCSIT_LOGIN_INITIATOR_ERROR, "login text too long");
        login_respond(l, req, false, 0, 0, NULL);
        return false;
    }
    g_string_append_len(l->text_in, (const char *)pdu->data, pdu->data_len);
    if (flags & ISCSIT_FLAG_CONT) {
        /* RFC 7143 §11.13.3: acknowledge, ask for the rest. */
        login_respond(l, req, false, csg, 0, NULL);
        return true;
    }
    agree = login_step(l, req, l->text_in->str, l->text_in->len);
    g_string_truncate(l->text_in, 0);
    if (l->state == LOGIN_FAILED) {
        login_respond(l, req, false, 0, 0, NULL);
        return false;
    }
    if (agree && nsg == ISCSIT_STAGE_FULL_FEATURE) {
        login_finish(l);
        if (l->state == LOGIN_FAILED) {
            login_respond(l, req, false, 0, 0, NULL);
            return false;
        }
        l->state = LOGIN_FULL_FEATURE;
    }
    login_respond(l, req, agree, csg, nsg, l->neg.answer);
    if (agree && nsg == ISCSIT_STAGE_OPERATIONAL)
        l->state = LOGIN_OPERATIONAL;
    g_assert(login_check_invariants(l));
    return l->state != LOGIN_FULL_FEATURE;
}

bool
iscsit_login_run(struct iscsit_conn *conn, const struct iscsit_pdu *first, bool first_too_long)
{
    struct login l = {0};
    struct iscsit_pdu pdu = *first;
    bool more, ok;
    gint64 deadline = conn->started_us + (gint64)ISCSIT_LOGIN_TIMEOUT_S * G_USEC_PER_SEC;

    l.conn = conn;
    l.sess = iscsit_sess_new(conn->tgt);
    l.state = LOGIN_START;
    l.text_in = g_string_new(NULL);
    iscsit_neg_init(&l.neg);
    conn->state = ISCSIT_CONN_IN_LOGIN;
    conn->sess = l.sess;

    if (first_too_long) {
        login_fail(&l, ISCSIT_LOGIN_INITIATOR_ERROR, "login data segment over 8192 bytes");
        login_respond(&l, &pdu.bhs, false, 0, 0, NULL);
        more = false;
    } else {
        more = login_request(&l, &pdu, true);
    }
    while (more) {
        bool timed_out;
        enum iscsit_rx_result r;
        /* The whole login has ISCSIT_LOGIN_TIMEOUT_S, however slowly its
         * PDUs trickle in: a stalled login must not hold a thread. */
        r = iscsit_conn_recv_until(conn, &pdu, deadline, &timed_out);
        if (timed_out)
            g_message("iSCSI: %s: login not complete after %d s, dropping the connection",
                      conn->peer, ISCSIT_LOGIN_TIMEOUT_S);
        if (r != ISCSIT_RX_PDU) {
            if (r == ISCSIT_RX_ERR_DATA_LEN) {
                login_fail(&l, ISCSIT_LOGIN_INITIATOR_ERROR, "login data segment over 8192 bytes");
                login_respond(&l, &pdu.bhs, false, 0, 0, NULL);
            }
            break;
        }
        more = login_request(&l, &pdu, false);
    }
    ok = l.state == LOGIN_FULL_FEATURE;
    iscsit_tx_flush(conn);
    if (ok && !conn->failed) {
        struct iscsit_rx_limits lim = {
            .max_data = l.sess->params.max_recv_dsl_target,
            .header_digest = l.sess->params.header_digest,
            .data_digest = l.sess->params.data_digest,
        };

        /* Digests and our larger limit start with the next PDU (RFC 7143 §13.1). */
        iscsit_rx_set_limits(&conn->rx, &lim);
    }
    login_clear_keys(&l);
    iscsit_neg_clear(&l.neg);
    g_string_free(l.text_in, TRUE);
    g_free(l.chap_user);
    g_free(l.chap_secret);
    g_free(l.mutual_user);
    g_free(l.mutual_secret);
    return ok && !conn->failed;
}
