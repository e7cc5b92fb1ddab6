/* fuzz-nbd-handshake.c — libFuzzer harness for the NBD option parser.
 *
 * The input is what a client sends after the server's greeting: client
 * flags, then options (and, if it gets that far, requests). It runs through
 * a real connection of the test server (handshake.c, codec.c, tls.c). The
 * option payload parsers are also fed the raw input directly. */
#include <stdint.h>
#include <stdlib.h>

#include "fuzz-nbd-common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct nbdsrv_info_req info;
    struct nbdsrv_meta_req *meta = g_new(struct nbdsrv_meta_req, 1);

    if (size > 1024 * 1024)
        return 0;
    if (nbdsrv_parse_info_req(data, size, &info) == 0)
        g_free(info.name);
    if (nbdsrv_parse_meta_req(data, size, meta) == 0)
        g_free(meta->name);
    g_free(meta);
    fuzz_nbd_run(NULL, 0, data, size);
    return 0;
}
