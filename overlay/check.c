/* check.c — verify an overlay file and, on request, repair it (ovctl check).
 *
 * What is checked: both header copies; the file size against the data
 * region; every written map block (both slots: checksum, magic, index, uuid,
 * granule states, granules past the end of the disk); DATA granules whose
 * bytes would lie past the end of the file.
 *
 * What counts as damage (clean = false): a damaged header copy, copies that
 * differ, a map block with no valid copy, two valid copies with the same
 * sequence, a file shorter than its data region. A torn *older* slot is what
 * a crash during a flush leaves behind by design (F3 in journal.c): it is
 * reported as a note and does not make the overlay unclean.
 *
 * Repair never guesses: a damaged header copy or map slot is rewritten from
 * the surviving copy; a map block with no valid copy becomes all BASE (its
 * range then reads the base again) and the lost byte range is reported;
 * DATA granules past the end of the file become BASE and the file is
 * extended to its proper size. Every action is one report line.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <glib.h>

#include "ov-int.h"

struct check {
    int fd;
    bool repair;
    GString *report;
    bool clean;
    bool wrote;
    struct ov_header h;
    uint64_t file_size;
    uint64_t blocks_used, data_granules, zero_granules;
};

static void line(struct check *c, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static void
line(struct check *c, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    g_string_append_vprintf(c->report, fmt, ap);
    va_end(ap);
    g_string_append_c(c->report, '\n');
}

static bool
check_lock(int fd, bool exclusive, const char *path, GError **error)
{
    struct flock fl = {.l_type = exclusive ? F_WRLCK : F_RDLCK, .l_whence = SEEK_SET};

    if (fcntl(fd, F_OFD_SETLK, &fl) == 0)
        return true;
    if (errno == EAGAIN || errno == EACCES)
        g_set_error(error, OV_ERROR, OV_ERROR_LOCKED,
                    "overlay %s is open for writing elsewhere; stop its client first", path);
    else
        ov_set_error_errno(error, errno, "locking overlay %s", path);
    return false;
}

static bool
check_header_copies(struct check *c, GError **err, GError **error)
{
    uint8_t raw[2][OV_HEADER_SIZE];
    struct ov_header h[2];
    bool ok[2];
    int good;

    for (unsigned i = 0; i < 2; i++) {
        int r = ov_sys_pread(c->fd, raw[i], OV_HEADER_SIZE, i * OV_HEADER_COPY_STRIDE, true);
        if (r < 0) {
            ov_set_error_errno(error, r, "reading header");
            return false;
        }
        ok[i] = ov_header_decode(raw[i], &h[i], &err[i]);
        if (!ok[i] && g_error_matches(err[i], OV_ERROR, OV_ERROR_UNSUPPORTED)) {
            g_propagate_error(error, g_steal_pointer(&err[i]));
            return false;
        }
    }
    if (!ok[0] && !ok[1]) {
        g_set_error(error, OV_ERROR, OV_ERROR_CORRUPT,
                    "no valid header copy (copy 0: %s; copy 1: %s); cannot check", err[0]->message,
                    err[1]->message);
        return false;
    }
    good = ok[0] ? 0 : 1;
    c->h = h[good];
    for (unsigned i = 0; i < 2; i++) {
        if (ok[i] && memcmp(raw[i], raw[good], OV_HEADER_SIZE) == 0)
            continue;
        c->clean = false;
        line(c, "header copy %u: %s", i, ok[i] ? "differs from copy 0" : err[i]->message);
        if (!c->repair)
            continue;
        if (pwrite(c->fd, raw[good], OV_HEADER_SIZE, (off_t)i * OV_HEADER_COPY_STRIDE) !=
            (ssize_t)OV_HEADER_SIZE) {
            ov_set_error_errno(error, errno ? errno : EIO, "rewriting header copy %u", i);
            return false;
        }
        c->wrote = true;
        line(c, "repaired: header copy %u rewritten from copy %d", i, good);
    }
    return true;
}

static bool
check_header(struct check *c, GError **error)
{
    GError *err[2] = {NULL, NULL};
    bool ret = check_header_copies(c, err, error);

    g_clear_error(&err[0]);
    g_clear_error(&err[1]);
    return ret;
}

static int
write_slot(struct check *c, uint64_t b, unsigned slot, uint64_t seq, const uint64_t *words)
{
    uint8_t buf[OV_SLOT_SIZE];

    ov_slot_encode(buf, b, c->h.overlay_uuid, seq, words);
    if (pwrite(c->fd, buf, OV_SLOT_SIZE, (off_t)ov_slot_offset(b, slot)) != (ssize_t)OV_SLOT_SIZE)
        return errno ? -errno : -EIO;
    c->wrote = true;
    return 0;
}

/* DATA granules whose bytes lie past the end of the file become BASE.
 * Returns how many were found. */
static uint64_t
clip_past_eof(struct check *c, uint64_t b, uint64_t *words)
{
    uint64_t n = 0;

    for (uint64_t i = 0; i < ov_block_granules(&c->h, b); i++) {
        uint64_t g = b * OV_MAP_GRANULES + i;
        uint64_t end = c->h.data_offset + MIN((g + 1) * c->h.granule, c->h.size);
        if (((words[i / 32] >> (2 * (i % 32))) & 3) == OV_G_DATA && end > c->file_size) {
            words[i / 32] &= ~(UINT64_C(3) << (2 * (i % 32)));
            n++;
        }
    }
    return n;
}

static bool
check_block(struct check *c, uint64_t b, const uint8_t *buf, GError **error)
{
    uint64_t seq[2] = {0, 0};
    uint64_t words[2][OV_MAP_WORDS];
    const char *why[2];
    enum ov_slot_state st[2];
    uint64_t valid = ov_block_granules(&c->h, b);
    uint64_t first = b * OV_MAP_GRANULES * c->h.granule;
    uint64_t last = MIN((b + 1) * OV_MAP_GRANULES * c->h.granule, c->h.size) - 1;
    int pick, r = 0;

    for (unsigned s = 0; s < 2; s++)
        st[s] = ov_slot_decode(buf + s * OV_SLOT_SIZE, b, c->h.overlay_uuid, valid, &seq[s],
                               words[s], &why[s]);
    pick = ov_slot_select(st[0], seq[0], st[1], seq[1]);
    if (pick == OV_SELECT_NONE) {
        if (st[0] == OV_SLOT_INVALID || st[1] == OV_SLOT_INVALID)
            line(c,
                 "note: map block %" G_GUINT64_FORMAT ": torn first write (%s), block is all "
                 "BASE",
                 b, why[st[0] == OV_SLOT_INVALID ? 0 : 1]);
        return true;
    }
    if (pick == OV_SELECT_CORRUPT) {
        c->clean = false;
        line(c,
             "map block %" G_GUINT64_FORMAT " (bytes %" G_GUINT64_FORMAT "..%" G_GUINT64_FORMAT
             "): no valid copy (slot A: %s; slot B: %s)",
             b, first, last, why[0], why[1]);
        if (c->repair) {
            uint64_t zero[OV_MAP_WORDS] = {0};
            static const uint8_t empty[OV_SLOT_SIZE];
            r = write_slot(c, b, 0, 1, zero);
            if (r == 0 && pwrite(c->fd, empty, OV_SLOT_SIZE, (off_t)ov_slot_offset(b, 1)) !=
                              (ssize_t)OV_SLOT_SIZE)
                r = errno ? -errno : -EIO;
            if (r == 0)
                line(c,
                     "repaired: map block %" G_GUINT64_FORMAT " set to BASE; client writes to "
                     "bytes %" G_GUINT64_FORMAT "..%" G_GUINT64_FORMAT " are lost",
                     b, first, last);
        }
        goto out;
    }
    c->blocks_used++;
    uint64_t *w = words[pick];
    uint64_t next_seq = seq[pick] + 1;
    unsigned other = 1u - (unsigned)pick;
    bool rewrite = false;

    if (st[other] == OV_SLOT_VALID && seq[other] == seq[pick]) {
        c->clean = false;
        line(c, "map block %" G_GUINT64_FORMAT ": both copies have sequence %" G_GUINT64_FORMAT, b,
             seq[pick]);
        rewrite = true;
    } else if (st[other] == OV_SLOT_INVALID) {
        line(c,
             "note: map block %" G_GUINT64_FORMAT ": older slot %c is torn (%s), current slot "
             "%c sequence %" G_GUINT64_FORMAT " is good",
             b, "AB"[other], why[other], "AB"[pick], seq[pick]);
        rewrite = true;
    }
    uint64_t lost = clip_past_eof(c, b, w);
    if (lost) {
        c->clean = false;
        line(c,
             "map block %" G_GUINT64_FORMAT ": %" G_GUINT64_FORMAT " DATA granules lie past "
             "the end of the file",
             b, lost);
        rewrite = true;
    }
    ov_words_count(w, OV_MAP_WORDS, &c->data_granules, &c->zero_granules);
    if (c->repair && rewrite) {
        /* Into the other slot with a higher sequence: the good copy stays. */
        r = write_slot(c, b, other, next_seq, w);
        if (r == 0)
            line(c, "repaired: map block %" G_GUINT64_FORMAT " slot %c rewritten%s", b, "AB"[other],
                 lost ? " (granules past the end of the file set to BASE)" : "");
    }
out:
    if (r < 0) {
        ov_set_error_errno(error, r, "repairing map block %" G_GUINT64_FORMAT, b);
        return false;
    }
    return true;
}

static bool
check_map(struct check *c, GError **error)
{
    uint64_t end = OV_MAP_OFFSET + c->h.map_blocks * OV_MAP_BLOCK_BYTES;
    g_autofree uint8_t *buf = g_malloc(OV_MAP_BLOCK_BYTES);
    uint64_t b = 0;

    while (b < c->h.map_blocks) {
        off_t pos = (off_t)ov_slot_offset(b, 0);
        off_t data = lseek(c->fd, pos, SEEK_DATA);

        /* Holes are EMPTY slots: skip to the next block holding data. */
        if (data < 0 && errno == ENXIO)
            break;
        if (data > pos) {
            if ((uint64_t)data >= end)
                break;
            b = ((uint64_t)data - OV_MAP_OFFSET) / OV_MAP_BLOCK_BYTES;
        }
        int r = ov_sys_pread(c->fd, buf, OV_MAP_BLOCK_BYTES, ov_slot_offset(b, 0), true);
        if (r < 0) {
            ov_set_error_errno(error, r, "reading map block %" G_GUINT64_FORMAT, b);
            return false;
        }
        if (!check_block(c, b, buf, error))
            return false;
        b++;
    }
    return true;
}

static bool
check_size(struct check *c, GError **error)
{
    uint64_t want = c->h.data_offset + c->h.size;

    if (c->file_size >= want)
        return true;
    c->clean = false;
    line(c,
         "file is %" G_GUINT64_FORMAT " bytes, shorter than its data region (%" G_GUINT64_FORMAT
         ")",
         c->file_size, want);
    if (!c->repair)
        return true;
    if (ftruncate(c->fd, (off_t)want) < 0) {
        ov_set_error_errno(error, errno, "extending the overlay file");
        return false;
    }
    c->wrote = true;
    line(c, "repaired: file extended to %" G_GUINT64_FORMAT " bytes", want);
    return true;
}

static bool
check_fd(struct check *c, const char *path, GError **error)
{
    struct stat st;
    char uuid[37];

    if (!check_lock(c->fd, c->repair, path, error) || !check_header(c, error))
        return false;
    if (fstat(c->fd, &st) < 0) {
        ov_set_error_errno(error, errno, "stat");
        return false;
    }
    c->file_size = (uint64_t)st.st_size;
    ov_uuid_format(c->h.base.uuid, uuid);
    line(c,
         "header: version %u, size %" G_GUINT64_FORMAT ", granule %u, base %s generation %u "
         "(uuid %s), %" G_GUINT64_FORMAT " map blocks",
         c->h.version, c->h.size, c->h.granule, c->h.base.image, c->h.base.generation, uuid,
         c->h.map_blocks);
    if (!check_map(c, error))
        return false;
    if (!check_size(c, error))
        return false;
    if (c->wrote && fdatasync(c->fd) < 0) {
        ov_set_error_errno(error, errno, "syncing repairs");
        return false;
    }
    line(c,
         "summary: %" G_GUINT64_FORMAT " map blocks in use, %" G_GUINT64_FORMAT
         " DATA granules, %" G_GUINT64_FORMAT " ZERO granules, %" G_GUINT64_FORMAT
         " bytes on disk: %s",
         c->blocks_used, c->data_granules, c->zero_granules, (uint64_t)st.st_blocks * 512,
         c->clean ? "clean" : (c->repair ? "repaired" : "damaged (run with repair)"));
    return true;
}

bool
ov_overlay_check(const char *path, bool repair, GString *report, bool *clean, GError **error)
{
    struct check c = {.repair = repair, .report = report, .clean = true};
    bool ok;

    c.fd = open(path, (repair ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (c.fd < 0) {
        ov_set_error_errno(error, errno, "opening overlay %s", path);
        return false;
    }
    ok = check_fd(&c, path, error);
    close(c.fd);
    if (!ok) {
        g_prefix_error(error, "checking %s: ", path);
        return false;
    }
    *clean = c.clean;
    return true;
}
