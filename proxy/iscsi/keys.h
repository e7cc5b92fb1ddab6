/* keys.h — iSCSI text keys: key=value parsing and the negotiation rules of
 * RFC 7143 §6 and §13 (declarative vs. negotiated keys, numerical ranges,
 * Boolean AND/OR results, list selection, duplicates).
 *
 * Pure code with no sockets or sessions, so the unit tests and the fuzzer
 * drive it directly. login.c and text.c own a struct iscsit_neg for the
 * length of a negotiation and read the results from neg->params.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>

#define ISCSIT_KEY_NAME_MAX 63       /* RFC 7143 §6.1 */
#define ISCSIT_VALUE_MAX 255         /* RFC 7143 §6.1, text values */
#define ISCSIT_BINARY_VALUE_MAX 8192 /* CHAP_C / CHAP_R in hex or base64 */
#define ISCSIT_TEXT_MAX 65536        /* one negotiation's text over all C-bit PDUs */

/* Our offers and limits (RFC 7143 §13 ranges apply on top). */
#define ISCSIT_OUR_MAX_RECV_DSL 262144u
#define ISCSIT_OUR_MAX_BURST 1048576u
#define ISCSIT_OUR_FIRST_BURST 262144u
#define ISCSIT_OUR_MAX_OUTSTANDING_R2T 16u

/* Negotiated and declared session/connection parameters. Defaults are the
 * RFC 7143 §13 defaults (iscsit_params_init). */
struct iscsit_params {
    bool header_digest;
    bool data_digest;
    uint32_t max_connections;
    bool initial_r2t;
    bool immediate_data;
    uint32_t max_recv_dsl_initiator; /* initiator's MaxRecvDataSegmentLength: our send limit */
    uint32_t max_recv_dsl_target;    /* ours, once declared: our receive limit */
    uint32_t max_burst_length;
    uint32_t first_burst_length;
    uint32_t default_time2wait;
    uint32_t default_time2retain;
    uint32_t max_outstanding_r2t;
    bool data_pdu_in_order;
    bool data_sequence_in_order;
    uint32_t error_recovery_level;
    bool discovery;        /* SessionType=Discovery */
    char *initiator_name;  /* owned */
    char *initiator_alias; /* owned */
    char *target_name;     /* owned */
};

void iscsit_params_init(struct iscsit_params *p);
void iscsit_params_clear(struct iscsit_params *p);

/* Where a negotiation happens: which keys are legal (RFC 7143 §6.3, the
 * "Use" of each key in §13). */
enum iscsit_neg_phase {
    ISCSIT_NEG_SECURITY,    /* login, CSG = SecurityNegotiation */
    ISCSIT_NEG_OPERATIONAL, /* login, CSG = LoginOperationalNegotiation */
    ISCSIT_NEG_FULL_FEATURE /* Text Request in full feature phase */
};

/* Why a negotiation failed as a whole (keys with bad values are answered
 * with Reject and do not fail it). */
enum iscsit_neg_error {
    ISCSIT_NEG_OK = 0,
    ISCSIT_NEG_SYNTAX,    /* not key=value, bad key name, over-long text */
    ISCSIT_NEG_DUPLICATE, /* a key sent twice in one negotiation */
    ISCSIT_NEG_FORBIDDEN, /* a key not allowed in this phase (e.g. CHAP_N in operational) */
};

/* A key=value pair that negotiation hands to the caller (security keys,
 * SendTargets); value is borrowed from the text being parsed. */
typedef void (*iscsit_neg_key_fn)(void *user_data, const char *key, const char *value);

struct iscsit_neg {
    struct iscsit_params params;
    GHashTable *seen;    /* keys received in this negotiation (owned strings) */
    GString *answer;     /* key=value\0 pairs to send back */
    bool declared_mrdsl; /* we sent our MaxRecvDataSegmentLength */
    bool mrdsl_pending;  /* our MaxRecvDataSegmentLength is in answer but not yet sent */
    bool seen_initiator_mrdsl;
};

void iscsit_neg_init(struct iscsit_neg *neg);
void iscsit_neg_clear(struct iscsit_neg *neg);

/* Parse one complete text (key=value\0 ..., RFC 7143 §6.1) and negotiate
 * every key: negotiated keys get their result appended to neg->answer;
 * declarative keys are stored; unknown and X- keys get NotUnderstood; bad
 * values get Reject. Keys that the caller handles (AuthMethod, CHAP_*,
 * SendTargets) go to key_fn instead, when they are legal in phase. */
enum iscsit_neg_error iscsit_neg_text(struct iscsit_neg *neg, enum iscsit_neg_phase phase,
                                      const char *text, size_t len, iscsit_neg_key_fn key_fn,
                                      void *user_data);

/* Append key=value\0 to out. */
void iscsit_text_append(GString *out, const char *key, const char *value);

/* Number syntax of RFC 7143 §5.1: decimal-constant or hex-constant
 * ("0x..."), up to 64 bits. Returns false on any other text. */
bool iscsit_parse_number(const char *s, uint64_t *out);

/* Binary value (RFC 7143 §5.1): "0x" hex or "0b" base64. Caller frees the
 * returned bytes with g_free. NULL on bad syntax or when longer than max. */
uint8_t *iscsit_parse_binary(const char *s, size_t max, size_t *len);

/* Iterate the key=value pairs of a text; returns false on a syntax error.
 * Used by the negotiation and by the fuzz harness. */
typedef bool (*iscsit_kv_fn)(void *user_data, const char *key, const char *value);
bool iscsit_text_foreach(const char *text, size_t len, iscsit_kv_fn fn, void *user_data);
