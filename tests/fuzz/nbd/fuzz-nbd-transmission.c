/* fuzz-nbd-transmission.c — libFuzzer harness for the NBD request parser
 * and command handlers.
 *
 * A fixed, valid handshake (fixed newstyle + no zeroes, structured replies,
 * both metadata contexts, NBD_OPT_GO "img/c1") is sent first; the input is
 * the request stream that follows (transmission.c, meta.c, codec.c). Each
 * request header is also checked on its own with nbdsrv_request_check. */
#include <stdint.h>
#include <string.h>

#include "fuzz-nbd-common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t
put_opt(uint8_t *p, uint32_t opt, const uint8_t *data, uint32_t len)
{
    nbdsrv_put_be64(p, NBD_MAGIC_IHAVEOPT);
    nbdsrv_put_be32(p + 8, opt);
    nbdsrv_put_be32(p + 12, len);
    if (len)
        memcpy(p + 16, data, len);
    return 16 + (size_t)len;
}

static size_t
build_prefix(uint8_t *p)
{
    static const char export[] = "img/c1";
    static const char *const ctx[] = {"base:allocation", "ovgate:overlay"};
    uint8_t buf[128];
    size_t n = 0, b = 0;

    nbdsrv_put_be32(p, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
    n = 4;
    n += put_opt(p + n, NBD_OPT_STRUCTURED_REPLY, NULL, 0);
    nbdsrv_put_be32(buf, sizeof(export) - 1);
    memcpy(buf + 4, export, sizeof(export) - 1);
    b = 4 + sizeof(export) - 1;
    nbdsrv_put_be32(buf + b, 2);
    b += 4;
    for (int i = 0; i < 2; i++) {
        nbdsrv_put_be32(buf + b, (uint32_t)strlen(ctx[i]));
        memcpy(buf + b + 4, ctx[i], strlen(ctx[i]));
        b += 4 + strlen(ctx[i]);
    }
    n += put_opt(p + n, NBD_OPT_SET_META_CONTEXT, buf, (uint32_t)b);
    nbdsrv_put_be32(buf, sizeof(export) - 1);
    memcpy(buf + 4, export, sizeof(export) - 1);
    b = 4 + sizeof(export) - 1;
    nbdsrv_put_be16(buf + b, 0);
    b += 2;
    n += put_opt(p + n, NBD_OPT_GO, buf, (uint32_t)b);
    return n;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t prefix[512];
    static size_t prefix_len;
    const struct nbdsrv_neg neg = {
        .size = 256 * 1024,
        .tflags = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA |
                  NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES | NBD_FLAG_SEND_CACHE |
                  NBD_FLAG_SEND_DF | NBD_FLAG_SEND_FAST_ZERO,
        .structured = true,
        .meta = NBDSRV_META_ALL,
    };

    if (size > 1024 * 1024)
        return 0;
    if (prefix_len == 0)
        prefix_len = build_prefix(prefix);
    for (size_t off = 0; off + NBD_REQUEST_LEN <= size; off += NBD_REQUEST_LEN) {
        struct nbdsrv_request req;
        if (nbdsrv_parse_request(data + off, &req))
            (void)nbdsrv_request_check(&req, &neg);
    }
    fuzz_nbd_run(prefix, prefix_len, data, size);
    return 0;
}
