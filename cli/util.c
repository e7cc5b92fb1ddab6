/* util.c — ovctl's shared helpers: option parsing with the common options,
 * error reporting and exit codes, opening the store, sizes, times, tables
 * and JSON output. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>
#include <json-glib/json-glib.h>

#include "base.h"
#include "ovctl.h"

G_DEFINE_QUARK(ovctl - error - quark, ovctl_error)

int
ovctl_exit_code(const GError *error)
{
    if (error->domain == OVCTL_ERROR)
        return error->code == OVCTL_ERROR_DAEMON ? OVCTL_EXIT_DAEMON : OVCTL_EXIT_USAGE;
    if (error->domain == G_OPTION_ERROR)
        return OVCTL_EXIT_USAGE;
    if (error->domain != OV_ERROR)
        return OVCTL_EXIT_FAILED;
    switch ((enum ov_error_code)error->code) {
    case OV_ERROR_INVALID:
        return OVCTL_EXIT_USAGE;
    case OV_ERROR_NOT_FOUND:
        return OVCTL_EXIT_NOT_FOUND;
    case OV_ERROR_EXISTS:
    case OV_ERROR_LOCKED:
        return OVCTL_EXIT_CONFLICT;
    case OV_ERROR_FAILED:
    case OV_ERROR_CORRUPT:
    case OV_ERROR_UNSUPPORTED:
    case OV_ERROR_WRONG_BASE:
    case OV_ERROR_NO_SPACE:
        break;
    }
    return OVCTL_EXIT_FAILED;
}

int
ovctl_fail(GError *error)
{
    fflush(stdout); /* keep what was printed before the error in order */
    /* One line: newlines in messages (e.g. from GOptionContext) become spaces. */
    g_autofree char *msg = g_strdup(error->message);
    g_strdelimit(msg, "\n", ' ');
    g_strchomp(msg);
    fprintf(stderr, "ovctl: error: %s\n", msg);
    return ovctl_exit_code(error);
}

bool
ovctl_parse(struct ovctl *ctx, const GOptionEntry *entries, bool json_ok, int *argc, char ***argv,
            int npos, const char *params, const char *summary, GError **error)
{
    char *store = NULL, *socket = NULL;
    gboolean json = false;
    const GOptionEntry common[] = {
        {"store", 0, 0, G_OPTION_ARG_FILENAME, &store, "Image store directory", "DIR"},
        {"socket", 0, 0, G_OPTION_ARG_FILENAME, &socket,
         "ovgated's control socket (default STORE/ovgated.sock)", "PATH"},
        {"json", 0, 0, G_OPTION_ARG_NONE, &json, "Print JSON for scripts", NULL},
        {NULL},
    };
    g_autofree char *prog = g_strdup_printf("ovctl %s", ctx->name);
    g_set_prgname(prog);
    GOptionContext *oc = g_option_context_new(params);
    g_option_context_set_summary(oc, summary);
    if (entries)
        g_option_context_add_main_entries(oc, entries, NULL);
    g_option_context_add_main_entries(
        oc, json_ok ? common : (GOptionEntry[]){common[0], common[1], {NULL}}, NULL);
    bool ok = g_option_context_parse(oc, argc, argv, error);
    g_option_context_free(oc);
    if (store) {
        g_free(ctx->store_dir);
        ctx->store_dir = store;
    }
    if (socket) {
        g_free(ctx->socket_path);
        ctx->socket_path = socket;
    }
    ctx->json = json;
    if (ok && ((store && !*store) || (socket && !*socket))) {
        g_set_error(error, OVCTL_ERROR, OVCTL_ERROR_USAGE, "%s needs a non-empty value",
                    store && !*store ? "--store" : "--socket");
        ok = false;
    }
    if (!ok) {
        g_prefix_error(error, "ovctl %s: ", ctx->name);
        return false;
    }
    int got = *argc - 1;
    for (int i = 1; i < *argc; i++) {
        if ((*argv)[i][0] == '-' && (*argv)[i][1] != '\0') {
            g_set_error(error, OVCTL_ERROR, OVCTL_ERROR_USAGE, "ovctl %s: unknown option %s",
                        ctx->name, (*argv)[i]);
            return false;
        }
    }
    if (npos >= 0 && got != npos) {
        g_set_error(error, OVCTL_ERROR, OVCTL_ERROR_USAGE,
                    "ovctl %s: expected %s (see ovctl %s --help)", ctx->name,
                    params && *params ? params : "no arguments", ctx->name);
        return false;
    }
    return true;
}

static struct ov_base *
file_opener(const struct ov_image_info *image, const struct ov_generation_info *gen,
            void *user_data, GError **error)
{
    return base_file_open(gen->path, error);
}

struct ov_store *
ovctl_open_store(struct ovctl *ctx, bool create, GError **error)
{
    struct ov_store *store = ov_store_open(ctx->store_dir, create, error);
    if (store)
        ov_store_set_base_opener(store, file_opener, NULL, NULL);
    return store;
}

bool
ovctl_parse_size(const char *text, uint64_t *out, GError **error)
{
    char *end = NULL;
    errno = 0;
    bool ok = text && g_ascii_isdigit(text[0]);
    guint64 v = ok ? g_ascii_strtoull(text, &end, 10) : 0;
    ok = ok && errno == 0;
    unsigned shift = 0;
    if (ok && *end) {
        const char *units = "KMGT";
        const char *u = strchr(units, g_ascii_toupper(*end));
        ok = u != NULL;
        if (ok) {
            shift = 10u * (unsigned)(u - units + 1);
            end++;
            ok = !*end || !g_ascii_strcasecmp(end, "iB") || !g_ascii_strcasecmp(end, "B");
        }
    }
    if (ok && shift && v > ((guint64)G_MAXINT64 >> shift))
        ok = false;
    v <<= shift;
    if (!ok || v == 0 || v % 512 != 0 || v > (guint64)G_MAXINT64) {
        g_set_error(error, OVCTL_ERROR, OVCTL_ERROR_USAGE,
                    "bad size '%s' (a positive multiple of 512 bytes, e.g. 64M, 8G; "
                    "suffixes K M G T)",
                    text ? text : "");
        return false;
    }
    *out = v;
    return true;
}

char *
ovctl_format_size(uint64_t bytes)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    unsigned u = 0;
    double v = (double)bytes;
    while (v >= 1024.0 && u + 1 < G_N_ELEMENTS(units)) {
        v /= 1024.0;
        u++;
    }
    if (u == 0)
        return g_strdup_printf("%" PRIu64 " B", bytes);
    if (v == (double)(uint64_t)v)
        return g_strdup_printf("%" PRIu64 " %s", (uint64_t)v, units[u]);
    return g_strdup_printf("%.1f %s", v, units[u]);
}

char *
ovctl_format_time(gint64 unix_seconds)
{
    if (unix_seconds <= 0)
        return g_strdup("-");
    g_autoptr(GDateTime) dt = g_date_time_new_from_unix_utc(unix_seconds);
    return dt ? g_date_time_format(dt, "%Y-%m-%dT%H:%M:%SZ") : g_strdup("-");
}

bool
ovctl_parse_bool(const char *text, bool *out, GError **error)
{
    static const char *const yes[] = {"on", "yes", "true", "1", NULL};
    static const char *const no[] = {"off", "no", "false", "0", NULL};
    for (int i = 0; text && yes[i]; i++) {
        if (!g_ascii_strcasecmp(text, yes[i])) {
            *out = true;
            return true;
        }
        if (!g_ascii_strcasecmp(text, no[i])) {
            *out = false;
            return true;
        }
    }
    g_set_error(error, OVCTL_ERROR, OVCTL_ERROR_USAGE, "expected on or off, not '%s'",
                text ? text : "");
    return false;
}

/* ------------------------------------------------------------------ tables */

struct ovctl_table {
    guint ncols;
    GPtrArray *rows; /* of GStrv */
};

struct ovctl_table *
ovctl_table_new(const char *const *header)
{
    struct ovctl_table *t = g_new0(struct ovctl_table, 1);
    t->ncols = g_strv_length((char **)header);
    t->rows = g_ptr_array_new_with_free_func((GDestroyNotify)g_strfreev);
    g_ptr_array_add(t->rows, g_strdupv((char **)header));
    return t;
}

void
ovctl_table_add(struct ovctl_table *t, ...)
{
    va_list ap;
    va_start(ap, t);
    char **row = g_new0(char *, t->ncols + 1);
    for (guint i = 0; i < t->ncols; i++) {
        const char *cell = va_arg(ap, const char *);
        g_assert(cell != NULL); /* our own bug: fewer cells than columns */
        row[i] = g_strdup(cell);
    }
    va_end(ap);
    g_ptr_array_add(t->rows, row);
}

void
ovctl_table_print(struct ovctl_table *t)
{
    g_autofree size_t *width = g_new0(size_t, t->ncols);
    for (guint r = 0; r < t->rows->len; r++) {
        char **row = t->rows->pdata[r];
        for (guint c = 0; c < t->ncols; c++)
            width[c] = MAX(width[c], strlen(row[c]));
    }
    for (guint r = 0; r < t->rows->len; r++) {
        char **row = t->rows->pdata[r];
        GString *line = g_string_new(NULL);
        for (guint c = 0; c < t->ncols; c++) {
            if (c + 1 < t->ncols)
                g_string_append_printf(line, "%-*s  ", (int)width[c], row[c]);
            else
                g_string_append(line, row[c]);
        }
        puts(line->str);
        g_string_free(line, true);
    }
    g_ptr_array_unref(t->rows);
    g_free(t);
}

void
ovctl_json_print(JsonBuilder *b)
{
    JsonNode *root = json_builder_get_root(b);
    JsonGenerator *gen = json_generator_new();
    json_generator_set_pretty(gen, true);
    json_generator_set_root(gen, root);
    g_autofree char *text = json_generator_to_data(gen, NULL);
    puts(text);
    g_object_unref(gen);
    json_node_unref(root);
    g_object_unref(b);
}
