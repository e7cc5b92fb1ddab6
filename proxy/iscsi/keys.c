/* keys.c — iSCSI text keys: syntax (RFC 7143 §6.1, §5.1) and the
 * negotiation of every key the target knows (RFC 7143 §13).
 *
 * One table, indexed by key, gives each key's kind (how the result is
 * computed), range, our own value, where the result is stored, and in which
 * phases it may be sent. The rules, by kind:
 *   list       the target picks the first offered value it supports
 *              (HeaderDigest, DataDigest, TaskReporting) — none: Reject
 *   min/max    numerical, result = min/max(offered, ours); out of range: Reject
 *   and/or     Boolean, result = offered AND/OR ours; not Yes/No: Reject
 *   declare    declarative, no answer (MaxRecvDataSegmentLength, names, SessionType)
 *   target     declared only by the target: the initiator sending it gets Reject
 *   irrelevant obsolete/iSER keys that do not apply: Irrelevant
 *   caller     handed to login.c / text.c (AuthMethod, CHAP_*, SendTargets)
 * Unknown keys and X-/X# extension keys get NotUnderstood (§6.2); a key sent
 * twice in one negotiation fails it (§6.1 "not more than once").
 */
#include <stddef.h>
#include <string.h>

#include "keys.h"

void
iscsit_params_init(struct iscsit_params *p)
{
    memset(p, 0, sizeof(*p));
    p->max_connections = 1;
    p->initial_r2t = true;
    p->immediate_data = true;
    p->max_recv_dsl_initiator = 8192;
    p->max_recv_dsl_target = 8192;
    p->max_burst_length = 262144;
    p->first_burst_length = 65536;
    p->default_time2wait = 2;
    p->default_time2retain = 20;
    p->max_outstanding_r2t = 1;
    p->data_pdu_in_order = true;
    p->data_sequence_in_order = true;
    p->error_recovery_level = 0;
}

void
iscsit_params_clear(struct iscsit_params *p)
{
    g_clear_pointer(&p->initiator_name, g_free);
    g_clear_pointer(&p->initiator_alias, g_free);
    g_clear_pointer(&p->target_name, g_free);
}

enum key_kind {
    K_LIST_DIGEST,
    K_LIST_TASK_REPORTING,
    K_NUM_MIN,
    K_NUM_MAX,
    K_BOOL_AND,
    K_BOOL_OR,
    K_DECL_NUM,
    K_DECL_NAME,
    K_DECL_SESSION_TYPE,
    K_TARGET_ONLY,
    K_IRRELEVANT,
    K_CALLER,
};

/* Phases a key may be sent in (RFC 7143 §13, "Use"). */
#define USE_SEC (1u << ISCSIT_NEG_SECURITY)
#define USE_OPER (1u << ISCSIT_NEG_OPERATIONAL)
#define USE_FFP (1u << ISCSIT_NEG_FULL_FEATURE)
#define USE_LOGIN (USE_SEC | USE_OPER)
#define NO_FIELD ((size_t)-1)
#define F(x) offsetof(struct iscsit_params, x)

struct key_desc {
    const char *name;
    enum key_kind kind;
    uint64_t min, max, ours;
    size_t field; /* offset of the bool / uint32_t / char * result, or NO_FIELD */
    unsigned use;
};

enum key_id {
    KEY_HEADER_DIGEST,
    KEY_DATA_DIGEST,
    KEY_MAX_CONNECTIONS,
    KEY_SEND_TARGETS,
    KEY_TARGET_NAME,
    KEY_INITIATOR_NAME,
    KEY_TARGET_ALIAS,
    KEY_INITIATOR_ALIAS,
    KEY_TARGET_ADDRESS,
    KEY_TARGET_PORTAL_GROUP_TAG,
    KEY_INITIAL_R2T,
    KEY_IMMEDIATE_DATA,
    KEY_MAX_RECV_DSL,
    KEY_MAX_BURST_LENGTH,
    KEY_FIRST_BURST_LENGTH,
    KEY_DEFAULT_TIME2WAIT,
    KEY_DEFAULT_TIME2RETAIN,
    KEY_MAX_OUTSTANDING_R2T,
    KEY_DATA_PDU_IN_ORDER,
    KEY_DATA_SEQUENCE_IN_ORDER,
    KEY_ERROR_RECOVERY_LEVEL,
    KEY_SESSION_TYPE,
    KEY_AUTH_METHOD,
    KEY_CHAP_A,
    KEY_CHAP_I,
    KEY_CHAP_C,
    KEY_CHAP_N,
    KEY_CHAP_R,
    KEY_OF_MARKER,
    KEY_IF_MARKER,
    KEY_OF_MARK_INT,
    KEY_IF_MARK_INT,
    KEY_TASK_REPORTING,
    KEY_PROTOCOL_LEVEL,
    KEY_RDMA_EXTENSIONS,
    KEY_TARGET_RECV_DSL,
    KEY_INITIATOR_RECV_DSL,
    KEY_COUNT
};

#define DSL_RANGE 512, 16777215

static const struct key_desc key_table[KEY_COUNT] = {
    [KEY_HEADER_DIGEST] = {"HeaderDigest", K_LIST_DIGEST, 0, 0, 0, F(header_digest), USE_LOGIN},
    [KEY_DATA_DIGEST] = {"DataDigest", K_LIST_DIGEST, 0, 0, 0, F(data_digest), USE_LOGIN},
    [KEY_MAX_CONNECTIONS] = {"MaxConnections", K_NUM_MIN, 1, 65535, 1, F(max_connections),
                             USE_LOGIN},
    [KEY_SEND_TARGETS] = {"SendTargets", K_CALLER, 0, 0, 0, NO_FIELD, USE_FFP},
    [KEY_TARGET_NAME] = {"TargetName", K_DECL_NAME, 0, 0, 0, F(target_name), USE_LOGIN},
    [KEY_INITIATOR_NAME] = {"InitiatorName", K_DECL_NAME, 0, 0, 0, F(initiator_name), USE_LOGIN},
    [KEY_TARGET_ALIAS] = {"TargetAlias", K_TARGET_ONLY, 0, 0, 0, NO_FIELD, USE_LOGIN | USE_FFP},
    [KEY_INITIATOR_ALIAS] = {"InitiatorAlias", K_DECL_NAME, 0, 0, 0, F(initiator_alias),
                             USE_LOGIN | USE_FFP},
    [KEY_TARGET_ADDRESS] = {"TargetAddress", K_TARGET_ONLY, 0, 0, 0, NO_FIELD, USE_LOGIN | USE_FFP},
    [KEY_TARGET_PORTAL_GROUP_TAG] = {"TargetPortalGroupTag", K_TARGET_ONLY, 0, 0, 0, NO_FIELD,
                                     USE_LOGIN},
    [KEY_INITIAL_R2T] = {"InitialR2T", K_BOOL_OR, 0, 1, 0, F(initial_r2t), USE_LOGIN},
    [KEY_IMMEDIATE_DATA] = {"ImmediateData", K_BOOL_AND, 0, 1, 1, F(immediate_data), USE_LOGIN},
    [KEY_MAX_RECV_DSL] = {"MaxRecvDataSegmentLength", K_DECL_NUM, DSL_RANGE, 0,
                          F(max_recv_dsl_initiator), USE_LOGIN | USE_FFP},
    [KEY_MAX_BURST_LENGTH] = {"MaxBurstLength", K_NUM_MIN, DSL_RANGE, ISCSIT_OUR_MAX_BURST,
                              F(max_burst_length), USE_LOGIN},
    [KEY_FIRST_BURST_LENGTH] = {"FirstBurstLength", K_NUM_MIN, DSL_RANGE, ISCSIT_OUR_FIRST_BURST,
                                F(first_burst_length), USE_LOGIN},
    [KEY_DEFAULT_TIME2WAIT] = {"DefaultTime2Wait", K_NUM_MAX, 0, 3600, 0, F(default_time2wait),
                               USE_LOGIN},
    [KEY_DEFAULT_TIME2RETAIN] = {"DefaultTime2Retain", K_NUM_MIN, 0, 3600, 0,
                                 F(default_time2retain), USE_LOGIN},
    [KEY_MAX_OUTSTANDING_R2T] = {"MaxOutstandingR2T", K_NUM_MIN, 1, 65535,
                                 ISCSIT_OUR_MAX_OUTSTANDING_R2T, F(max_outstanding_r2t), USE_LOGIN},
    [KEY_DATA_PDU_IN_ORDER] = {"DataPDUInOrder", K_BOOL_OR, 0, 1, 1, F(data_pdu_in_order),
                               USE_LOGIN},
    [KEY_DATA_SEQUENCE_IN_ORDER] = {"DataSequenceInOrder", K_BOOL_OR, 0, 1, 1,
                                    F(data_sequence_in_order), USE_LOGIN},
    [KEY_ERROR_RECOVERY_LEVEL] = {"ErrorRecoveryLevel", K_NUM_MIN, 0, 2, 0, F(error_recovery_level),
                                  USE_LOGIN},
    [KEY_SESSION_TYPE] = {"SessionType", K_DECL_SESSION_TYPE, 0, 0, 0, NO_FIELD, USE_LOGIN},
    [KEY_AUTH_METHOD] = {"AuthMethod", K_CALLER, 0, 0, 0, NO_FIELD, USE_SEC},
    [KEY_CHAP_A] = {"CHAP_A", K_CALLER, 0, 0, 0, NO_FIELD, USE_SEC},
    [KEY_CHAP_I] = {"CHAP_I", K_CALLER, 0, 0, 0, NO_FIELD, USE_SEC},
    [KEY_CHAP_C] = {"CHAP_C", K_CALLER, 0, 0, 0, NO_FIELD, USE_SEC},
    [KEY_CHAP_N] = {"CHAP_N", K_CALLER, 0, 0, 0, NO_FIELD, USE_SEC},
    [KEY_CHAP_R] = {"CHAP_R", K_CALLER, 0, 0, 0, NO_FIELD, USE_SEC},
    /* RFC 3720 markers, removed by RFC 7143 §13 (we never use markers). */
    [KEY_OF_MARKER] = {"OFMarker", K_BOOL_AND, 0, 1, 0, NO_FIELD, USE_LOGIN},
    [KEY_IF_MARKER] = {"IFMarker", K_BOOL_AND, 0, 1, 0, NO_FIELD, USE_LOGIN},
    [KEY_OF_MARK_INT] = {"OFMarkInt", K_IRRELEVANT, 0, 0, 0, NO_FIELD, USE_LOGIN},
    [KEY_IF_MARK_INT] = {"IFMarkInt", K_IRRELEVANT, 0, 0, 0, NO_FIELD, USE_LOGIN},
    /* RFC 7143 §13.23, §13.24; RFC 7145 (iSER) keys, iSER not offered. */
    [KEY_TASK_REPORTING] = {"TaskReporting", K_LIST_TASK_REPORTING, 0, 0, 0, NO_FIELD, USE_LOGIN},
    [KEY_PROTOCOL_LEVEL] = {"iSCSIProtocolLevel", K_NUM_MIN, 0, 31, 1, NO_FIELD, USE_LOGIN},
    [KEY_RDMA_EXTENSIONS] = {"RDMAExtensions", K_BOOL_AND, 0, 1, 0, NO_FIELD, USE_LOGIN},
    [KEY_TARGET_RECV_DSL] = {"TargetRecvDataSegmentLength", K_IRRELEVANT, 0, 0, 0, NO_FIELD,
                             USE_LOGIN},
    [KEY_INITIATOR_RECV_DSL] = {"InitiatorRecvDataSegmentLength", K_IRRELEVANT, 0, 0, 0, NO_FIELD,
                                USE_LOGIN},
};

static const struct key_desc *
key_lookup(const char *name)
{
    for (int i = 0; i < KEY_COUNT; i++)
        if (strcmp(key_table[i].name, name) == 0)
            return &key_table[i];
    return NULL;
}

void
iscsit_text_append(GString *out, const char *key, const char *value)
{
    g_string_append(out, key);
    g_string_append_c(out, '=');
    g_string_append(out, value);
    g_string_append_c(out, '\0');
}

bool
iscsit_parse_number(const char *s, uint64_t *out)
{
    uint64_t v = 0;

    if (!s[0])
        return false;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        s += 2;
        if (!s[0] || strlen(s) > 16)
            return false;
        for (; *s; s++) {
            int d = g_ascii_xdigit_value(*s);

            if (d < 0)
                return false;
            v = v << 4 | (uint64_t)d;
        }
        *out = v;
        return true;
    }
    if (s[0] == '0' && s[1] != '\0')
        return false; /* decimal-constant has no leading zeros */
    for (; *s; s++) {
        if (!g_ascii_isdigit(*s))
            return false;
        if (v > (G_MAXUINT64 - (uint64_t)(*s - '0')) / 10)
            return false;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    return true;
}

uint8_t *
iscsit_parse_binary(const char *s, size_t max, size_t *len)
{
    size_t n = strlen(s);

    if (n > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        size_t digits = n - 2, bytes = (digits + 1) / 2;
        g_autofree uint8_t *out = NULL;
        const char *p = s + 2;

        if (bytes > max)
            return NULL;
        out = g_malloc(bytes);
        for (size_t i = 0; i < bytes; i++) {
            int hi, lo;

            /* An odd number of digits has an implied leading zero. */
            if (i == 0 && (digits & 1)) {
                hi = 0;
                lo = g_ascii_xdigit_value(*p++);
            } else {
                hi = g_ascii_xdigit_value(*p++);
                lo = g_ascii_xdigit_value(*p++);
            }
            if (hi < 0 || lo < 0)
                return NULL;
            out[i] = (uint8_t)(hi << 4 | lo);
        }
        *len = bytes;
        return g_steal_pointer(&out);
    }
    if (n > 2 && s[0] == '0' && (s[1] == 'b' || s[1] == 'B')) {
        size_t blen = n - 2;
        g_autofree uint8_t *out = NULL;
        gsize olen = 0;

        if (blen % 4 != 0 || blen / 4 * 3 > max + 2)
            return NULL;
        for (size_t i = 2; i < n; i++)
            if (!g_ascii_isalnum(s[i]) && s[i] != '+' && s[i] != '/' && s[i] != '=')
                return NULL;
        out = g_base64_decode(s + 2, &olen);
        if (!out || olen == 0 || olen > max)
            return NULL;
        *len = olen;
        return g_steal_pointer(&out);
    }
    return NULL;
}

static bool
key_name_valid(const char *k, size_t len)
{
    if (len == 0 || len > ISCSIT_KEY_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (i == 1 && k[0] == 'X' && k[1] == '#')
            continue; /* X#<IANA name> extension keys (RFC 7143 §13.2) */
        if (!g_ascii_isalnum(k[i]) && !strchr(".-+@_", k[i]))
            return false;
    }
    return true;
}

bool
iscsit_text_foreach(const char *text, size_t len, iscsit_kv_fn fn, void *user_data)
{
    size_t i = 0;

    while (i < len) {
        const char *pair = text + i;
        const char *nul = memchr(pair, '\0', len - i);
        size_t plen = nul ? (size_t)(nul - pair) : len - i;
        const char *eq;
        g_autofree char *key = NULL;
        g_autofree char *value = NULL;

        i += plen + 1;
        if (plen == 0)
            continue; /* tolerate padding NULs */
        eq = memchr(pair, '=', plen);
        if (!eq || !key_name_valid(pair, (size_t)(eq - pair)))
            return false;
        if (plen - (size_t)(eq - pair) - 1 > ISCSIT_BINARY_VALUE_MAX)
            return false;
        key = g_strndup(pair, (size_t)(eq - pair));
        value = g_strndup(eq + 1, plen - (size_t)(eq - pair) - 1);
        if (!fn(user_data, key, value))
            return false;
    }
    return true;
}

void
iscsit_neg_init(struct iscsit_neg *neg)
{
    memset(neg, 0, sizeof(*neg));
    iscsit_params_init(&neg->params);
    neg->seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    neg->answer = g_string_new(NULL);
}

void
iscsit_neg_clear(struct iscsit_neg *neg)
{
    iscsit_params_clear(&neg->params);
    g_clear_pointer(&neg->seen, g_hash_table_unref);
    if (neg->answer)
        g_string_free(neg->answer, TRUE);
    neg->answer = NULL;
}

static void
neg_set_u32(struct iscsit_neg *neg, const struct key_desc *d, uint32_t v)
{
    if (d->field != NO_FIELD)
        memcpy((char *)&neg->params + d->field, &v, sizeof(v));
}

static void
neg_set_bool(struct iscsit_neg *neg, const struct key_desc *d, bool v)
{
    if (d->field != NO_FIELD)
        memcpy((char *)&neg->params + d->field, &v, sizeof(v));
}

static void
neg_set_str(struct iscsit_neg *neg, const struct key_desc *d, const char *v)
{
    char **slot = (char **)(void *)((char *)&neg->params + d->field);

    g_free(*slot);
    *slot = g_strdup(v);
}

/* HeaderDigest/DataDigest and TaskReporting (RFC 7143 §6.2.1 list rule). */
static void
neg_list(struct iscsit_neg *neg, const struct key_desc *d, const char *value)
{
    g_auto(GStrv) items = g_strsplit(value, ",", -1);

    for (int i = 0; items[i]; i++) {
        if (d->kind == K_LIST_DIGEST &&
            (strcmp(items[i], "None") == 0 || strcmp(items[i], "CRC32C") == 0)) {
            neg_set_bool(neg, d, strcmp(items[i], "CRC32C") == 0);
            iscsit_text_append(neg->answer, d->name, items[i]);
            return;
        }
        if (d->kind == K_LIST_TASK_REPORTING && strcmp(items[i], "RFC3720") == 0) {
            iscsit_text_append(neg->answer, d->name, items[i]);
            return;
        }
    }
    iscsit_text_append(neg->answer, d->name, "Reject");
}

static bool
parse_bool(const char *v, bool *out)
{
    if (strcmp(v, "Yes") == 0)
        *out = true;
    else if (strcmp(v, "No") == 0)
        *out = false;
    else
        return false;
    return true;
}

/* An iSCSI name or alias as text: printable UTF-8, at most 223 bytes for
 * names (RFC 7143 §4.2.7.1) and 255 for aliases. */
static bool
name_valid(const char *v, size_t max)
{
    size_t n = strlen(v);

    if (n == 0 || n > max || !g_utf8_validate(v, -1, NULL))
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f)
            return false;
    return true;
}

static void
neg_key(struct iscsit_neg *neg, const struct key_desc *d, const char *value)
{
    uint64_t num;
    bool b;

    if (strlen(value) > ISCSIT_VALUE_MAX) {
        iscsit_text_append(neg->answer, d->name, "Reject");
        return;
    }
    switch (d->kind) {
    case K_LIST_DIGEST:
    case K_LIST_TASK_REPORTING:
        neg_list(neg, d, value);
        break;
    case K_NUM_MIN:
    case K_NUM_MAX:
        if (!iscsit_parse_number(value, &num) || num < d->min || num > d->max) {
            iscsit_text_append(neg->answer, d->name, "Reject");
            break;
        }
        num = d->kind == K_NUM_MIN ? MIN(num, d->ours) : MAX(num, d->ours);
        neg_set_u32(neg, d, (uint32_t)num);
        {
            char buf[24];

            g_snprintf(buf, sizeof(buf), "%" G_GUINT64_FORMAT, num);
            iscsit_text_append(neg->answer, d->name, buf);
        }
        break;
    case K_BOOL_AND:
    case K_BOOL_OR:
        if (!parse_bool(value, &b)) {
            iscsit_text_append(neg->answer, d->name, "Reject");
            break;
        }
        b = d->kind == K_BOOL_AND ? (b && d->ours) : (b || d->ours);
        neg_set_bool(neg, d, b);
        iscsit_text_append(neg->answer, d->name, b ? "Yes" : "No");
        break;
    case K_DECL_NUM:
        if (!iscsit_parse_number(value, &num) || num < d->min || num > d->max) {
            iscsit_text_append(neg->answer, d->name, "Reject");
            break;
        }
        neg_set_u32(neg, d, (uint32_t)num);
        neg->seen_initiator_mrdsl = true;
        break;
    case K_DECL_NAME:
        if (!name_valid(value, d->field == F(initiator_alias) ? ISCSIT_VALUE_MAX : 223)) {
            iscsit_text_append(neg->answer, d->name, "Reject");
            break;
        }
        neg_set_str(neg, d, value);
        break;
    case K_DECL_SESSION_TYPE:
        if (strcmp(value, "Discovery") == 0)
            neg->params.discovery = true;
        else if (strcmp(value, "Normal") == 0)
            neg->params.discovery = false;
        else
            iscsit_text_append(neg->answer, d->name, "Reject");
        break;
    case K_TARGET_ONLY:
        iscsit_text_append(neg->answer, d->name, "Reject");
        break;
    case K_IRRELEVANT:
        iscsit_text_append(neg->answer, d->name, "Irrelevant");
        break;
    case K_CALLER:
        g_assert_not_reached();
    }
}

struct neg_ctx {
    struct iscsit_neg *neg;
    enum iscsit_neg_phase phase;
    iscsit_neg_key_fn key_fn;
    void *user_data;
    enum iscsit_neg_error err;
};

static bool
neg_pair(void *user_data, const char *key, const char *value)
{
    struct neg_ctx *ctx = user_data;
    struct iscsit_neg *neg = ctx->neg;
    const struct key_desc *d;

    if (g_hash_table_contains(neg->seen, key)) {
        ctx->err = ISCSIT_NEG_DUPLICATE;
        return false;
    }
    g_hash_table_add(neg->seen, g_strdup(key));
    d = key_lookup(key);
    if (!d) {
        /* Unknown, X- and X# keys (RFC 7143 §6.2, §13.16) */
        iscsit_text_append(neg->answer, key, "NotUnderstood");
        return true;
    }
    if (!(d->use & (1u << ctx->phase))) {
        if (d->kind == K_CALLER && ctx->phase != ISCSIT_NEG_FULL_FEATURE && d->use == USE_SEC) {
            /* Security keys after the security stage. */
            ctx->err = ISCSIT_NEG_FORBIDDEN;
            return false;
        }
        iscsit_text_append(neg->answer, key,
                           ctx->phase == ISCSIT_NEG_FULL_FEATURE ? "Reject" : "Irrelevant");
        return true;
    }
    if (d->kind == K_CALLER) {
        ctx->key_fn(ctx->user_data, key, value);
        return true;
    }
    neg_key(neg, d, value);
    return true;
}

enum iscsit_neg_error
iscsit_neg_text(struct iscsit_neg *neg, enum iscsit_neg_phase phase, const char *text, size_t len,
                iscsit_neg_key_fn key_fn, void *user_data)
{
    struct neg_ctx ctx = {neg, phase, key_fn, user_data, ISCSIT_NEG_OK};

    if (len > ISCSIT_TEXT_MAX)
        return ISCSIT_NEG_SYNTAX;
    if (!iscsit_text_foreach(text, len, neg_pair, &ctx) && ctx.err == ISCSIT_NEG_OK)
        ctx.err = ISCSIT_NEG_SYNTAX;
    /* RFC 7143 §13.14: FirstBurstLength must not exceed MaxBurstLength. */
    if (neg->params.first_burst_length > neg->params.max_burst_length)
        neg->params.first_burst_length = neg->params.max_burst_length;
    return ctx.err;
}
