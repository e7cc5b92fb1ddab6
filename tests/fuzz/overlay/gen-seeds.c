/* gen-seeds.c — writes the seed corpus of fuzz-ov-open into a directory.
 *
 * Each seed is the head of a real overlay made by the library (header
 * copies and the written map blocks), some then damaged the way a crash or
 * bit rot would. Run: gen-seeds DIR (the committed corpus/ came from it). */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <glib.h>
#include <glib/gstdio.h>

#include "ov-int.h"

static int
pattern_pread(struct ov_base *base, void *buf, size_t len, uint64_t offset)
{
    memset(buf, 0x5a, len);
    return 0;
}

static void
pattern_destroy(struct ov_base *base)
{
    g_free(base);
}

static const struct ov_base_ops pattern_ops = {
    .name = "pattern", .pread = pattern_pread, .destroy = pattern_destroy};

/* Make an overlay, run fn on it, save its first keep bytes as out/name. */
static void
seed(const char *out, const char *name, uint64_t size, uint32_t granule,
     void (*fn)(struct ov_overlay *ov), uint64_t keep, uint64_t poke_at)
{
    g_autofree char *tmp = g_build_filename(out, "tmp.ovl", NULL);
    g_autofree char *dst = g_build_filename(out, name, NULL);
    struct ov_base_id id = {.image = "lab", .generation = 2, .size = size};
    struct ov_base *base = g_new0(struct ov_base, 1);
    g_autofree uint8_t *buf = g_malloc0(keep);
    struct ov_overlay *ov;
    int fd;

    memset(id.uuid, 0xab, sizeof(id.uuid));
    ov_base_init(base, &pattern_ops, size, -1, "pattern");
    ov_base_set_id(base, &id);
    if (!ov_overlay_create(tmp, &id, granule, true, NULL))
        g_error("create failed");
    ov = ov_overlay_open(tmp, base, 0, NULL);
    if (fn)
        fn(ov);
    ov_overlay_close(ov, NULL);
    ov_base_unref(base);
    fd = open(tmp, O_RDONLY);
    if (pread(fd, buf, keep, 0) < 0)
        g_error("read failed");
    close(fd);
    if (poke_at)
        buf[poke_at] ^= 0x40;
    if (!g_file_set_contents(dst, (char *)buf, (gssize)keep, NULL))
        g_error("cannot write %s", dst);
    g_unlink(tmp);
}

static void
few_writes(struct ov_overlay *ov)
{
    ov_overlay_pwrite(ov, "abc", 3, 100, 0);
    ov_overlay_flush(ov);
    ov_overlay_pwrite(ov, "def", 3, 70000, 0);
    ov_overlay_zero(ov, 4096 * 20, 4096 * 30, 0);
    ov_overlay_flush(ov);
}

static void
many_blocks(struct ov_overlay *ov)
{
    for (uint64_t b = 0; b < 3; b++) {
        ov_overlay_pwrite(ov, "x", 1, b * OV_MAP_GRANULES * 512 + 777, 0);
        ov_overlay_zero(ov, b * OV_MAP_GRANULES * 512 + 4096, 8192, 0);
    }
    ov_overlay_flush(ov);
}

int
main(int argc, char **argv)
{
    const uint64_t hdr = OV_MAP_OFFSET, blk = OV_MAP_BLOCK_BYTES;

    if (argc != 2) {
        fprintf(stderr, "usage: gen-seeds DIR\n");
        return 2;
    }
    g_mkdir_with_parents(argv[1], 0755);
    seed(argv[1], "empty-4k", 1 << 20, 4096, NULL, hdr + blk, 0);
    seed(argv[1], "two-slots-4k", 8 << 20, 4096, few_writes, hdr + blk, 0);
    seed(argv[1], "torn-slot-b", 8 << 20, 4096, few_writes, hdr + blk, hdr + 4096 + 900);
    seed(argv[1], "bad-header-copy0", 8 << 20, 4096, few_writes, hdr + blk, 300);
    seed(argv[1], "three-blocks-512", 20 << 20, 512, many_blocks, hdr + 3 * blk, 0);
    seed(argv[1], "odd-size-64k", (5 << 20) + 1234, 65536, few_writes, hdr + blk, 0);
    seed(argv[1], "header-only", 3 << 20, 1 << 20, NULL, 600, 0);
    /* Both slots of block 0 damaged (second poke on top of the torn seed). */
    seed(argv[1], "both-slots-bad", 8 << 20, 4096, few_writes, hdr + blk, hdr + 900);
    {
        g_autofree char *p = g_build_filename(argv[1], "both-slots-bad", NULL);
        g_autofree char *d = NULL;
        gsize n;
        if (!g_file_get_contents(p, &d, &n, NULL) || n < hdr + blk)
            g_error("cannot reread %s", p);
        d[hdr + 4096 + 900] ^= 0x40;
        if (!g_file_set_contents(p, d, (gssize)n, NULL))
            g_error("cannot write %s", p);
    }
    return 0;
}
