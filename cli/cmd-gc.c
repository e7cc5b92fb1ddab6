/* cmd-gc.c — ovctl gc: remove generations nobody uses, and leftovers. */
#include <stdio.h>

#include <glib.h>

#include "ovctl.h"

int
ovctl_cmd_gc(struct ovctl *ctx, int argc, char **argv)
{
    g_autoptr(GError) error = NULL;
    if (!ovctl_parse(ctx, NULL, false, &argc, &argv, 0, "",
                     "Remove generations that are not a head and on which no client sits.", &error))
        return ovctl_fail(error);
    struct ov_store *store = ovctl_open_store(ctx, false, &error);
    if (!store)
        return ovctl_fail(error);
    g_autoptr(GString) report = g_string_new(NULL);
    bool ok = ov_store_gc(store, report, &error);
    ov_store_close(store);
    fputs(report->str, stdout); /* what was done before a failure, too */
    if (!ok)
        return ovctl_fail(error);
    if (report->len == 0)
        printf("nothing to remove\n");
    return OVCTL_EXIT_OK;
}
