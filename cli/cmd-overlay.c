/* cmd-overlay.c — ovctl overlay info|map and ovctl check: inspecting a
 * client's overlay. Inspection works while ovgated serves the client: the
 * overlay is opened read-only without a lock (OV_OPEN_NO_LOCK), and whether
 * it is connected is only tested (ov_store_client_connected). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <glib.h>
#include <json-glib/json-glib.h>

#include "ovctl.h"

/* The common start of the inspection commands: parse "CLIENT" (summary is
 * the command's help line), then open the client's overlay without any
 * lock, so that a look never gets in the way of ovgated attaching the
 * client; *connected tells whether a writer holds it. NULL with *error set. */
static struct ov_overlay *
open_for_inspection(struct ovctl *ctx, int *argc, char ***argv, const char *summary,
                    bool *connected, GError **error)
{
    struct ov_overlay *ov = NULL;

    if (!ovctl_parse(ctx, NULL, true, argc, argv, 1, "CLIENT", summary, error))
        return NULL;
    struct ov_store *store = ovctl_open_store(ctx, false, error);
    if (!store)
        return NULL;
    if (ov_store_client_connected(store, (*argv)[1], connected, error))
        ov = ov_store_client_open_overlay(store, (*argv)[1], OV_OPEN_READ_ONLY | OV_OPEN_NO_LOCK,
                                          error);
    ov_store_close(store);
    return ov;
}

int
ovctl_cmd_overlay_info(struct ovctl *ctx, int argc, char **argv)
{
    g_autoptr(GError) error = NULL;
    bool connected;
    struct ov_overlay *ov = open_for_inspection(
        ctx, &argc, &argv, "Show a client's overlay: generation, space, granule states.",
        &connected, &error);
    if (!ov)
        return ovctl_fail(error);
    struct ov_overlay_info oi;
    ov_overlay_get_info(ov, &oi);
    ov_overlay_close(ov, NULL);
    uint64_t data_bytes = oi.data_granules * oi.granule;
    uint64_t zero_bytes = oi.zero_granules * oi.granule;
    if (ctx->json) {
        JsonBuilder *b = json_builder_new();
        json_builder_begin_object(b);
        const struct {
            const char *key;
            gint64 value;
        } ints[] = {
            {"generation", oi.base.generation},
            {"size", (gint64)oi.size},
            {"granule", oi.granule},
            {"format_version", oi.format_version},
            {"file_bytes", (gint64)oi.file_bytes},
            {"data_granules", (gint64)oi.data_granules},
            {"zero_granules", (gint64)oi.zero_granules},
        };
        json_builder_set_member_name(b, "client");
        json_builder_add_string_value(b, argv[1]);
        json_builder_set_member_name(b, "image");
        json_builder_add_string_value(b, oi.base.image);
        for (size_t i = 0; i < G_N_ELEMENTS(ints); i++) {
            json_builder_set_member_name(b, ints[i].key);
            json_builder_add_int_value(b, ints[i].value);
        }
        json_builder_set_member_name(b, "connected");
        json_builder_add_boolean_value(b, connected);
        json_builder_set_member_name(b, "corrupt");
        json_builder_add_boolean_value(b, oi.corrupt);
        json_builder_end_object(b);
        ovctl_json_print(b);
        return OVCTL_EXIT_OK;
    }
    g_autofree char *size = ovctl_format_size(oi.size);
    g_autofree char *alloc = ovctl_format_size(oi.file_bytes);
    g_autofree char *data = ovctl_format_size(data_bytes);
    g_autofree char *zero = ovctl_format_size(zero_bytes);
    printf("client:          %s\n", argv[1]);
    printf("image:           %s\n", oi.base.image);
    printf("generation:      %" PRIu32 "\n", oi.base.generation);
    printf("size:            %s (%" PRIu64 " bytes)\n", size, oi.size);
    printf("granule:         %" PRIu32 " bytes\n", oi.granule);
    printf("format version:  %" PRIu32 "\n", oi.format_version);
    printf("allocated:       %s\n", alloc);
    printf("data granules:   %" PRIu64 " (%s)\n", oi.data_granules, data);
    printf("zero granules:   %" PRIu64 " (%s)\n", oi.zero_granules, zero);
    printf("connected:       %s\n", connected ? "yes" : "no");
    if (oi.corrupt)
        printf("state:           damaged metadata seen: run ovctl check %s\n", argv[1]);
    return OVCTL_EXIT_OK;
}

struct map_out {
    struct ovctl_table *table;
    JsonBuilder *json;
};

static bool
map_extent(uint64_t offset, uint64_t length, enum ov_extent_kind kind, void *user_data)
{
    struct map_out *m = user_data;
    if (kind == OV_EXTENT_BASE)
        return true;
    const char *what = kind == OV_EXTENT_DATA ? "data" : "zero";
    if (m->json) {
        json_builder_begin_object(m->json);
        json_builder_set_member_name(m->json, "offset");
        json_builder_add_int_value(m->json, (gint64)offset);
        json_builder_set_member_name(m->json, "length");
        json_builder_add_int_value(m->json, (gint64)length);
        json_builder_set_member_name(m->json, "type");
        json_builder_add_string_value(m->json, what);
        json_builder_end_object(m->json);
    } else {
        g_autofree char *off = g_strdup_printf("%" PRIu64, offset);
        g_autofree char *len = g_strdup_printf("%" PRIu64, length);
        ovctl_table_add(m->table, off, len, what, NULL);
    }
    return true;
}

int
ovctl_cmd_overlay_map(struct ovctl *ctx, int argc, char **argv)
{
    g_autoptr(GError) error = NULL;
    bool connected;
    struct ov_overlay *ov = open_for_inspection(
        ctx, &argc, &argv, "List the overlay's allocated extents (offset and length in bytes).",
        &connected, &error);
    if (!ov)
        return ovctl_fail(error);
    struct ov_overlay_info oi;
    ov_overlay_get_info(ov, &oi);
    const char *header[] = {"OFFSET", "LENGTH", "TYPE", NULL};
    struct map_out m = {0};
    if (ctx->json) {
        m.json = json_builder_new();
        json_builder_begin_array(m.json);
    } else {
        m.table = ovctl_table_new(header);
    }
    int r = ov_overlay_block_status(ov, 0, oi.size, map_extent, &m);
    ov_overlay_close(ov, NULL);
    if (m.json) {
        json_builder_end_array(m.json);
        if (r == 0)
            ovctl_json_print(m.json);
        else
            g_object_unref(m.json);
    } else {
        ovctl_table_print(m.table); /* on error: what was read before it */
    }
    if (r < 0) {
        g_set_error(&error, OV_ERROR, ov_error_from_errno(-r), "cannot read the map of %s: %s",
                    argv[1], g_strerror(-r));
        return ovctl_fail(error);
    }
    return OVCTL_EXIT_OK;
}

int
ovctl_cmd_check(struct ovctl *ctx, int argc, char **argv)
{
    g_autoptr(GError) error = NULL;
    gboolean repair = false;
    const GOptionEntry entries[] = {
        {"repair", 0, 0, G_OPTION_ARG_NONE, &repair, "Fix what can be fixed", NULL},
        {NULL},
    };
    if (!ovctl_parse(ctx, entries, false, &argc, &argv, 1, "CLIENT",
                     "Verify a client's overlay (exit 0 clean, 1 problems found or repaired).",
                     &error))
        return ovctl_fail(error);
    struct ov_store *store = ovctl_open_store(ctx, false, &error);
    if (!store)
        return ovctl_fail(error);
    g_autoptr(GString) report = g_string_new(NULL);
    bool clean = false;
    bool ok = ov_store_client_check(store, argv[1], repair, report, &clean, &error);
    ov_store_close(store);
    if (!ok) {
        if (g_error_matches(error, OV_ERROR, OV_ERROR_LOCKED)) {
            g_clear_error(&error);
            g_set_error(&error, OV_ERROR, OV_ERROR_LOCKED,
                        "client %s is connected (ovgated holds its overlay); check it while "
                        "it is not served",
                        argv[1]);
        }
        return ovctl_fail(error);
    }
    fputs(report->str, stdout);
    if (report->len && report->str[report->len - 1] != '\n')
        putchar('\n');
    if (clean) {
        printf("client %s: overlay is clean\n", argv[1]);
        return OVCTL_EXIT_OK;
    }
    printf("client %s: problems found%s\n", argv[1],
           repair ? "; --repair made the fixes listed above"
                  : " (ovctl check --repair repairs what it can)");
    return OVCTL_EXIT_PROBLEMS;
}
