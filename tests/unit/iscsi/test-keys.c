/* test-keys.c — key=value syntax and the negotiation rule of every key
 * (RFC 7143 §6, §13), plus CHAP computations (RFC 1994 §4.1). */
#include <string.h>
#include <glib.h>

#include "iscsi-int.h"
#include "keys.h"

/* Negotiate text (pairs separated by '|', turned into NULs) in phase and
 * return the answer with NULs shown as '|'. */
struct run {
    struct iscsit_neg neg;
    enum iscsit_neg_error err;
    GString *caller; /* keys handed to the caller, "K=V|" */
    char *answer;
};

static void
caller_key(void *user_data, const char *key, const char *value)
{
    struct run *r = user_data;

    g_string_append_printf(r->caller, "%s=%s|", key, value);
}

static void
run_neg(struct run *r, enum iscsit_neg_phase phase, const char *text)
{
    g_autofree char *t = g_strdup(text);
    size_t n = strlen(t);

    for (size_t i = 0; i < n; i++)
        if (t[i] == '|')
            t[i] = '\0';
    r->caller = g_string_new(NULL);
    iscsit_neg_init(&r->neg);
    r->err = iscsit_neg_text(&r->neg, phase, t, n + 1, caller_key, r);
    r->answer = g_memdup2(r->neg.answer->str, r->neg.answer->len + 1);
    for (size_t i = 0; i < r->neg.answer->len; i++)
        if (r->answer[i] == '\0')
            r->answer[i] = '|';
}

static void
run_clear(struct run *r)
{
    iscsit_neg_clear(&r->neg);
    g_string_free(r->caller, TRUE);
    g_free(r->answer);
}

/* One key in the operational stage: expected answer ("" = none). */
static void
check_one(const char *text, const char *answer)
{
    struct run r;

    run_neg(&r, ISCSIT_NEG_OPERATIONAL, text);
    g_assert_cmpint(r.err, ==, ISCSIT_NEG_OK);
    g_assert_cmpstr(r.answer, ==, answer);
    run_clear(&r);
}

static void
test_digests(void)
{
    struct run r;

    check_one("HeaderDigest=CRC32C,None", "HeaderDigest=CRC32C|");
    check_one("HeaderDigest=None,CRC32C", "HeaderDigest=None|");
    check_one("DataDigest=MD5,CRC32C", "DataDigest=CRC32C|");
    check_one("DataDigest=MD5", "DataDigest=Reject|");
    run_neg(&r, ISCSIT_NEG_OPERATIONAL, "HeaderDigest=CRC32C|DataDigest=None");
    g_assert_true(r.neg.params.header_digest);
    g_assert_false(r.neg.params.data_digest);
    run_clear(&r);
}

static void
test_numeric_min_max(void)
{
    struct run r;

    check_one("MaxConnections=4", "MaxConnections=1|");
    check_one("MaxConnections=0", "MaxConnections=Reject|");
    check_one("MaxConnections=65536", "MaxConnections=Reject|");
    check_one("MaxBurstLength=262144", "MaxBurstLength=262144|");
    check_one("MaxBurstLength=16776192", "MaxBurstLength=1048576|");
    check_one("MaxBurstLength=511", "MaxBurstLength=Reject|");
    check_one("FirstBurstLength=0x10000", "FirstBurstLength=65536|");
    check_one("FirstBurstLength=1048576", "FirstBurstLength=262144|");
    check_one("DefaultTime2Wait=2", "DefaultTime2Wait=2|"); /* max(2, 0) */
    check_one("DefaultTime2Wait=3601", "DefaultTime2Wait=Reject|");
    check_one("DefaultTime2Retain=20", "DefaultTime2Retain=0|"); /* min(20, 0): ERL 0 */
    check_one("MaxOutstandingR2T=1", "MaxOutstandingR2T=1|");
    check_one("MaxOutstandingR2T=64", "MaxOutstandingR2T=16|");
    check_one("ErrorRecoveryLevel=2", "ErrorRecoveryLevel=0|");
    check_one("ErrorRecoveryLevel=3", "ErrorRecoveryLevel=Reject|");
    check_one("MaxBurstLength=abc", "MaxBurstLength=Reject|");
    check_one("MaxBurstLength=0262144", "MaxBurstLength=Reject|"); /* leading zero */
    check_one("MaxBurstLength=", "MaxBurstLength=Reject|");
    run_neg(&r, ISCSIT_NEG_OPERATIONAL, "MaxBurstLength=65536|FirstBurstLength=262144");
    g_assert_cmpuint(r.neg.params.max_burst_length, ==, 65536);
    /* FirstBurstLength never exceeds MaxBurstLength */
    g_assert_cmpuint(r.neg.params.first_burst_length, ==, 65536);
    run_clear(&r);
}

static void
test_booleans(void)
{
    struct run r;

    check_one("InitialR2T=Yes", "InitialR2T=Yes|"); /* OR */
    check_one("InitialR2T=No", "InitialR2T=No|");
    check_one("ImmediateData=Yes", "ImmediateData=Yes|"); /* AND */
    check_one("ImmediateData=No", "ImmediateData=No|");
    check_one("DataPDUInOrder=No", "DataPDUInOrder=Yes|"); /* OR with our Yes */
    check_one("DataSequenceInOrder=No", "DataSequenceInOrder=Yes|");
    check_one("ImmediateData=yes", "ImmediateData=Reject|");
    check_one("OFMarker=Yes", "OFMarker=No|");
    check_one("IFMarker=No", "IFMarker=No|");
    check_one("OFMarkInt=2048~8192", "OFMarkInt=Irrelevant|");
    check_one("RDMAExtensions=Yes", "RDMAExtensions=No|");
    run_neg(&r, ISCSIT_NEG_OPERATIONAL, "InitialR2T=No|ImmediateData=No");
    g_assert_false(r.neg.params.initial_r2t);
    g_assert_false(r.neg.params.immediate_data);
    run_clear(&r);
}

static void
test_declarative(void)
{
    struct run r;

    run_neg(&r, ISCSIT_NEG_SECURITY,
            "InitiatorName=iqn.1993-08.org.debian:01:abc|SessionType=Discovery|"
            "InitiatorAlias=host one|MaxRecvDataSegmentLength=65536|TargetName=iqn.x:y");
    g_assert_cmpint(r.err, ==, ISCSIT_NEG_OK);
    g_assert_cmpstr(r.answer, ==, ""); /* declarations get no answer */
    g_assert_cmpstr(r.neg.params.initiator_name, ==, "iqn.1993-08.org.debian:01:abc");
    g_assert_cmpstr(r.neg.params.initiator_alias, ==, "host one");
    g_assert_cmpstr(r.neg.params.target_name, ==, "iqn.x:y");
    g_assert_true(r.neg.params.discovery);
    g_assert_cmpuint(r.neg.params.max_recv_dsl_initiator, ==, 65536);
    g_assert_true(r.neg.seen_initiator_mrdsl);
    run_clear(&r);
    check_one("SessionType=Normal", "");
    check_one("SessionType=Other", "SessionType=Reject|");
    check_one("MaxRecvDataSegmentLength=511", "MaxRecvDataSegmentLength=Reject|");
    check_one("MaxRecvDataSegmentLength=16777216", "MaxRecvDataSegmentLength=Reject|");
    /* keys only the target declares */
    check_one("TargetAlias=x", "TargetAlias=Reject|");
    check_one("TargetPortalGroupTag=1", "TargetPortalGroupTag=Reject|");
    check_one("TargetAddress=1.2.3.4", "TargetAddress=Reject|");
}

static void
test_unknown_and_extension(void)
{
    check_one("X-com.example.Foo=1", "X-com.example.Foo=NotUnderstood|");
    check_one("X#vendor=1", "X#vendor=NotUnderstood|");
    check_one("Bogus=1", "Bogus=NotUnderstood|");
    check_one("TaskReporting=ResponseFence,RFC3720", "TaskReporting=RFC3720|");
    check_one("iSCSIProtocolLevel=2", "iSCSIProtocolLevel=1|");
}

static void
test_duplicates_and_syntax(void)
{
    struct run r;

    run_neg(&r, ISCSIT_NEG_OPERATIONAL, "MaxBurstLength=512|MaxBurstLength=1024");
    g_assert_cmpint(r.err, ==, ISCSIT_NEG_DUPLICATE);
    run_clear(&r);
    run_neg(&r, ISCSIT_NEG_OPERATIONAL, "NoEqualsSign");
    g_assert_cmpint(r.err, ==, ISCSIT_NEG_SYNTAX);
    run_clear(&r);
    run_neg(&r, ISCSIT_NEG_OPERATIONAL, "=value");
    g_assert_cmpint(r.err, ==, ISCSIT_NEG_SYNTAX);
    run_clear(&r);
    run_neg(&r, ISCSIT_NEG_OPERATIONAL, "Bad Key=1");
    g_assert_cmpint(r.err, ==, ISCSIT_NEG_SYNTAX);
    run_clear(&r);
    {
        g_autofree char *longkey = g_strnfill(64, 'K');
        g_autofree char *t = g_strdup_printf("%s=1", longkey);

        run_neg(&r, ISCSIT_NEG_OPERATIONAL, t);
        g_assert_cmpint(r.err, ==, ISCSIT_NEG_SYNTAX);
        run_clear(&r);
    }
    {
        g_autofree char *longval = g_strnfill(256, 'a');
        g_autofree char *t = g_strdup_printf("InitiatorAlias=%s", longval);

        check_one(t, "InitiatorAlias=Reject|");
    }
    /* security keys after the security stage fail the login */
    run_neg(&r, ISCSIT_NEG_OPERATIONAL, "CHAP_A=5");
    g_assert_cmpint(r.err, ==, ISCSIT_NEG_FORBIDDEN);
    run_clear(&r);
}

static void
test_phases(void)
{
    struct run r;

    run_neg(&r, ISCSIT_NEG_SECURITY, "AuthMethod=CHAP,None|CHAP_A=5");
    g_assert_cmpint(r.err, ==, ISCSIT_NEG_OK);
    g_assert_cmpstr(r.caller->str, ==, "AuthMethod=CHAP,None|CHAP_A=5|");
    run_clear(&r);
    run_neg(&r, ISCSIT_NEG_FULL_FEATURE,
            "SendTargets=All|MaxRecvDataSegmentLength=4096|MaxBurstLength=512");
    g_assert_cmpint(r.err, ==, ISCSIT_NEG_OK);
    g_assert_cmpstr(r.caller->str, ==, "SendTargets=All|");
    g_assert_cmpstr(r.answer, ==, "MaxBurstLength=Reject|"); /* leading-only key in FFP */
    g_assert_cmpuint(r.neg.params.max_recv_dsl_initiator, ==, 4096);
    run_clear(&r);
    check_one("SendTargets=All", "SendTargets=Irrelevant|");
}

static void
test_numbers_and_binary(void)
{
    uint64_t v;
    size_t len;
    g_autofree uint8_t *b1 = NULL;
    g_autofree uint8_t *b2 = NULL;
    g_autofree uint8_t *b3 = NULL;

    g_assert_true(iscsit_parse_number("0", &v) && v == 0);
    g_assert_true(iscsit_parse_number("8192", &v) && v == 8192);
    g_assert_true(iscsit_parse_number("0xFFff", &v) && v == 0xffff);
    g_assert_false(iscsit_parse_number("0x", &v));
    g_assert_false(iscsit_parse_number("-1", &v));
    g_assert_false(iscsit_parse_number("18446744073709551616", &v));
    g_assert_true(iscsit_parse_number("18446744073709551615", &v) && v == G_MAXUINT64);
    b1 = iscsit_parse_binary("0x0102ff", 16, &len);
    g_assert_nonnull(b1);
    g_assert_cmpuint(len, ==, 3);
    g_assert_cmphex(b1[2], ==, 0xff);
    b2 = iscsit_parse_binary("0xabc", 16, &len); /* odd digit count */
    g_assert_nonnull(b2);
    g_assert_cmpuint(len, ==, 2);
    g_assert_cmphex(b2[0], ==, 0x0a);
    g_assert_cmphex(b2[1], ==, 0xbc);
    b3 = iscsit_parse_binary("0bAQID", 16, &len); /* base64 of 01 02 03 */
    g_assert_nonnull(b3);
    g_assert_cmpuint(len, ==, 3);
    g_assert_cmphex(b3[2], ==, 3);
    g_assert_null(iscsit_parse_binary("0xzz", 16, &len));
    g_assert_null(iscsit_parse_binary("1234", 16, &len));
    g_assert_null(iscsit_parse_binary("0x000102030405060708", 8, &len)); /* too long */
}

/* Expected values computed outside the project (Python hashlib.md5). */
static void
test_chap_vectors(void)
{
    uint8_t chal[16], out[16];
    const uint8_t c2[16] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
                            0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff};
    g_autofree char *hex = NULL;
    g_autofree char *hex2 = NULL;

    for (int i = 0; i < 16; i++)
        chal[i] = (uint8_t)i;
    iscsit_chap_response(7, (const uint8_t *)"secretsecret", 12, chal, 16, out);
    hex = iscsit_hex_encode(out, 16);
    g_assert_cmpstr(hex, ==, "0x6ecf51cbe0f7ac32d9cd952f3fd639c0");
    iscsit_chap_response(0x2a, (const uint8_t *)"mutual-secret-1", 15, c2, 16, out);
    hex2 = iscsit_hex_encode(out, 16);
    g_assert_cmpstr(hex2, ==, "0xc6ffecfeab75ff958276de89c1aefebb");
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/iscsi/keys/digests", test_digests);
    g_test_add_func("/iscsi/keys/numeric-min-max", test_numeric_min_max);
    g_test_add_func("/iscsi/keys/booleans", test_booleans);
    g_test_add_func("/iscsi/keys/declarative", test_declarative);
    g_test_add_func("/iscsi/keys/unknown-and-extension", test_unknown_and_extension);
    g_test_add_func("/iscsi/keys/duplicates-and-syntax", test_duplicates_and_syntax);
    g_test_add_func("/iscsi/keys/phases", test_phases);
    g_test_add_func("/iscsi/keys/numbers-and-binary", test_numbers_and_binary);
    g_test_add_func("/iscsi/chap/vectors", test_chap_vectors);
    return g_test_run();
}
