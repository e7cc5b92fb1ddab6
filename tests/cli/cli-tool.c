/* cli-tool.c — a helper for the ovctl golden tests: does to a client's
 * overlay what a connected machine would (write, zero, read back), and can
 * hold the overlay open as a writer the way ovgated does while it serves the
 * client. It uses the same store and base opener as ovctl.
 *
 *   cli-tool STORE write CLIENT OFFSET LENGTH BYTE   fill with BYTE (0-255)
 *   cli-tool STORE zero CLIENT OFFSET LENGTH         discard (reads as zeros)
 *   cli-tool STORE sha256 CLIENT                     checksum of the merged disk
 *   cli-tool STORE hold CLIENT                       open as writer, print
 *                                                    "held", wait for EOF on stdin
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>

#include "base.h"
#include "store.h"

static struct ov_base *
opener(const struct ov_image_info *image, const struct ov_generation_info *gen, void *data,
       GError **error)
{
    return base_file_open(gen->path, error);
}

static bool
parse_u64(const char *s, uint64_t *out)
{
    char *end = NULL;
    *out = g_ascii_strtoull(s, &end, 0);
    return *s && end && !*end;
}

static int
run(struct ov_overlay *ov, int argc, char **argv)
{
    const char *cmd = argv[2];
    struct ov_overlay_info oi;
    ov_overlay_get_info(ov, &oi);
    uint64_t off = 0, len = 0, byte = 0;
    if (!strcmp(cmd, "write") && argc == 7 && parse_u64(argv[4], &off) &&
        parse_u64(argv[5], &len) && parse_u64(argv[6], &byte) && byte < 256) {
        g_autofree uint8_t *buf = g_malloc(len);
        memset(buf, (int)byte, len);
        int r = ov_overlay_pwrite(ov, buf, len, off, 0);
        return r < 0 || ov_overlay_flush(ov) < 0;
    }
    if (!strcmp(cmd, "zero") && argc == 6 && parse_u64(argv[4], &off) && parse_u64(argv[5], &len)) {
        int r = ov_overlay_zero(ov, off, len, 0);
        return r < 0 || ov_overlay_flush(ov) < 0;
    }
    if (!strcmp(cmd, "sha256") && argc == 4) {
        g_autoptr(GChecksum) sum = g_checksum_new(G_CHECKSUM_SHA256);
        g_autofree uint8_t *buf = g_malloc(1 << 20);
        for (off = 0; off < oi.size; off += len) {
            len = MIN((uint64_t)(1 << 20), oi.size - off);
            if (ov_overlay_pread(ov, buf, len, off) < 0)
                return 1;
            g_checksum_update(sum, buf, len);
        }
        printf("%s\n", g_checksum_get_string(sum));
        return 0;
    }
    if (!strcmp(cmd, "hold") && argc == 4) {
        printf("held\n");
        fflush(stdout);
        char c;
        while (read(0, &c, 1) > 0)
            ;
        return 0;
    }
    fprintf(stderr, "cli-tool: bad arguments\n");
    return 2;
}

int
main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: cli-tool STORE write|zero|sha256|hold CLIENT ...\n");
        return 2;
    }
    g_autoptr(GError) error = NULL;
    struct ov_store *store = ov_store_open(argv[1], false, &error);
    if (!store) {
        fprintf(stderr, "cli-tool: %s\n", error->message);
        return 1;
    }
    ov_store_set_base_opener(store, opener, NULL, NULL);
    unsigned flags = !strcmp(argv[2], "sha256") ? OV_OPEN_READ_ONLY | OV_OPEN_NO_LOCK : 0;
    struct ov_overlay *ov = ov_store_client_open_overlay(store, argv[3], flags, &error);
    ov_store_close(store);
    if (!ov) {
        fprintf(stderr, "cli-tool: %s\n", error->message);
        return 1;
    }
    int rc = run(ov, argc, argv);
    if (!ov_overlay_close(ov, &error)) {
        fprintf(stderr, "cli-tool: %s\n", error->message);
        rc = 1;
    }
    return rc;
}
