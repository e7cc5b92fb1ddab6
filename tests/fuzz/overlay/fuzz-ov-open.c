/* fuzz-ov-open.c — libFuzzer harness for the overlay header and map loader.
 *
 * The input is the beginning of an overlay file (header copies at 0 and
 * 4096, map slots from 8192; anything past the input's end reads as a
 * hole). It is written to a memfd and opened through /proc/self/fd, against
 * a synthetic base whose identity is whatever the header claims, so the map
 * loader, the merged read path, block status, a write + flush, and check
 * (verify, then repair, then open again) all run on hostile metadata. Nothing
 * may crash, leak or trip a sanitizer; errors are the expected outcome.
 *
 * Each input runs twice: as given, and with every checksum in it (both
 * header copies, every map slot) recomputed, so that mutations reach the
 * code behind the CRC checks instead of stopping at them.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <glib.h>

#include "ov-int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct pattern_base {
    struct ov_base base;
};

static int
pattern_pread(struct ov_base *base, void *buf, size_t len, uint64_t offset)
{
    uint8_t *p = buf;
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)((offset + i) * 31);
    return 0;
}

static void
pattern_destroy(struct ov_base *base)
{
    g_free(base);
}

static const struct ov_base_ops pattern_ops = {
    .name = "pattern",
    .pread = pattern_pread,
    .destroy = pattern_destroy,
};

static void
quiet(const gchar *domain, GLogLevelFlags level, const gchar *message, gpointer user_data)
{
}

static bool
count_extent(uint64_t offset, uint64_t length, enum ov_extent_kind kind, void *user_data)
{
    return ++*(unsigned *)user_data < 100000;
}

static void
exercise(const char *path, struct ov_base *base)
{
    struct ov_overlay *ov = ov_overlay_open(path, base, 0, NULL);
    struct ov_overlay_info info;
    uint8_t buf[8192];
    unsigned n = 0;

    if (!ov)
        return;
    ov_overlay_get_info(ov, &info);
    (void)ov_overlay_block_status(ov, 0, info.size, count_extent, &n);
    (void)ov_overlay_pread(ov, buf, MIN(sizeof(buf), info.size), 0);
    (void)ov_overlay_pread(ov, buf, MIN((uint64_t)sizeof(buf), info.size),
                           info.size - MIN((uint64_t)sizeof(buf), info.size));
    (void)ov_overlay_pwrite(ov, "fuzz", MIN((uint64_t)4, info.size), info.size / 2, 0);
    (void)ov_overlay_zero(ov, 0, MIN((uint64_t)3 * info.granule, info.size), 0);
    (void)ov_overlay_flush(ov);
    ov_overlay_close(ov, NULL);
}

static void
fix_checksums(uint8_t *d, size_t size)
{
    for (size_t c = 0; c < 2; c++) {
        size_t at = c * OV_HEADER_COPY_STRIDE;
        if (at + OV_HEADER_SIZE <= size) {
            uint32_t crc = GUINT32_TO_LE(ov_crc32c(0, d + at, OV_HEADER_SIZE - 4));
            memcpy(d + at + OV_HEADER_SIZE - 4, &crc, 4);
        }
    }
    for (size_t at = OV_MAP_OFFSET; at + OV_SLOT_SIZE <= size; at += OV_SLOT_SIZE) {
        uint32_t crc = ov_crc32c(0, d + at, OV_SLOT_HEADER_SIZE - 4);
        crc = GUINT32_TO_LE(
            ov_crc32c(crc, d + at + OV_SLOT_HEADER_SIZE, OV_SLOT_SIZE - OV_SLOT_HEADER_SIZE));
        memcpy(d + at + OV_SLOT_HEADER_SIZE - 4, &crc, 4);
    }
}

static void
run_one(const uint8_t *data, size_t size)
{
    struct ov_header h;
    unsigned good;
    GString *report;
    bool clean;
    char path[64];
    int fd;

    fd = memfd_create("fuzz-overlay", MFD_CLOEXEC);
    if (fd < 0)
        return;
    if (write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return;
    }
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);

    if (ov_header_read(fd, &h, &good, NULL)) {
        struct pattern_base *pb = g_new0(struct pattern_base, 1);
        ov_base_init(&pb->base, &pattern_ops, h.size, -1, "pattern");
        ov_base_set_id(&pb->base, &h.base);
        exercise(path, &pb->base);
        report = g_string_new(NULL);
        if (ov_overlay_check(path, false, report, &clean, NULL) && !clean) {
            g_string_truncate(report, 0);
            if (ov_overlay_check(path, true, report, &clean, NULL))
                exercise(path, &pb->base);
        }
        g_string_free(report, TRUE);
        ov_base_unref(&pb->base);
    } else {
        struct ov_base_id id;
        report = g_string_new(NULL);
        (void)ov_overlay_read_base_id(path, &id, NULL);
        (void)ov_overlay_check(path, true, report, &clean, NULL);
        g_string_free(report, TRUE);
    }
    close(fd);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool init;
    uint8_t *copy;

    if (!init) {
        g_log_set_handler("ovgate-overlay", G_LOG_LEVEL_MASK | G_LOG_FLAG_FATAL, quiet, NULL);
        init = true;
    }
    if (size > (1u << 20))
        return 0;
    run_one(data, size);
    copy = g_memdup2(data, size);
    fix_checksums(copy, size);
    run_one(copy, size);
    g_free(copy);
    return 0;
}
