/* fuzz-keys.c — libFuzzer harness for the login/text key=value parser and
 * the negotiation of every key (keys.c), plus the number and binary-value
 * parsers used by CHAP.
 *
 * Input: byte 0 picks the phase (security / operational / full feature);
 * the rest is the text as it would arrive in Login or Text Request data.
 */
#include <stdint.h>
#include <string.h>
#include <glib.h>

#include "keys.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
caller_key(void *user_data, const char *key, const char *value)
{
    size_t len;
    uint64_t num;
    g_autofree uint8_t *bin = iscsit_parse_binary(value, 1024, &len);

    (void)user_data;
    (void)key;
    (void)iscsit_parse_number(value, &num);
    if (bin)
        g_assert(len <= 1024);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct iscsit_neg neg;

    if (size < 1)
        return 0;
    iscsit_neg_init(&neg);
    (void)iscsit_neg_text(&neg, (enum iscsit_neg_phase)(data[0] % 3), (const char *)data + 1,
                          size - 1, caller_key, NULL);
    /* the answer is always whole key=value\0 pairs */
    g_assert(neg.answer->len == 0 || neg.answer->str[neg.answer->len - 1] == '\0');
    g_assert(neg.params.first_burst_length <= neg.params.max_burst_length);
    iscsit_neg_clear(&neg);
    return 0;
}
