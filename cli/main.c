/* main.c — ovctl, the admin CLI: global options, the command table and
 * dispatch. Each command lives in cli/cmd-<verb>.c and parses its own
 * options with a GOptionContext (ovctl_parse in util.c).
 *
 * Offline commands work on the store directly (overlay/store.h); commands
 * that need the running daemon (status, and reset/commit of a connected
 * client) talk to ovgated over its control socket (ctl-client.c).
 */
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "ovctl.h"

struct cmd {
    const char *group; /* "image", or NULL for a top-level verb */
    const char *verb;
    ovctl_cmd_fn run;
    const char *usage;
};

static const struct cmd cmds[] = {
    {NULL, "init", ovctl_cmd_init, "init                          create the store"},
    {"image", "create", ovctl_cmd_image_create,
     "image create NAME --from RAW_FILE | --size SIZE [--auto-enroll]"},
    {"image", "list", ovctl_cmd_image_list, "image list [--json]"},
    {"image", "info", ovctl_cmd_image_info, "image info NAME [--json]"},
    {"image", "set", ovctl_cmd_image_set, "image set NAME --auto-enroll=on|off"},
    {"image", "remove", ovctl_cmd_image_remove, "image remove NAME"},
    {"client", "add", ovctl_cmd_client_add,
     "client add CLIENT --image NAME [--iqn IQN]... [--mac MAC]..."},
    {"client", "list", ovctl_cmd_client_list, "client list [--json]"},
    {"client", "info", ovctl_cmd_client_info, "client info CLIENT [--json]"},
    {"client", "remove", ovctl_cmd_client_remove, "client remove CLIENT"},
    {"overlay", "info", ovctl_cmd_overlay_info, "overlay info CLIENT [--json]"},
    {"overlay", "map", ovctl_cmd_overlay_map, "overlay map CLIENT [--json]"},
    {NULL, "check", ovctl_cmd_check, "check CLIENT [--repair]"},
    {NULL, "reset", ovctl_cmd_reset, "reset CLIENT | --all [--force]"},
    {NULL, "commit", ovctl_cmd_commit, "commit CLIENT [--json]"},
    {NULL, "gc", ovctl_cmd_gc, "gc"},
    {NULL, "status", ovctl_cmd_status, "status [--json]"},
};

static void
usage(FILE *out)
{
    fprintf(out, "Usage: ovctl [--store DIR] [--socket PATH] COMMAND [ARGS...]\n"
                 "\n"
                 "Administer an ovgate image store and the running ovgated.\n"
                 "\n"
                 "Commands:\n");
    for (size_t i = 0; i < G_N_ELEMENTS(cmds); i++)
        fprintf(out, "  ovctl %s\n", cmds[i].usage);
    fprintf(out,
            "\n"
            "Run 'ovctl COMMAND --help' for a command's options.\n"
            "\n"
            "Global options:\n"
            "  --store DIR    image store (default: $OVGATE_STORE, else %s)\n"
            "  --socket PATH  ovgated's control socket (default: $OVGATE_SOCKET, else\n"
            "                 STORE/ovgated.sock)\n"
            "  --version      print the version\n"
            "\n"
            "Exit codes:\n"
            "  0  success\n"
            "  1  ovctl check found problems (and with --repair, repaired them)\n"
            "  2  bad command line or bad input (name, size, IQN, MAC)\n"
            "  3  no such store, image, client or generation\n"
            "  4  conflict: already exists, still in use, or the client is connected\n"
            "  5  ovgated is not running or refused the request\n"
            "  6  I/O error, disk full, or a damaged store\n",
            OVGATE_DEFAULT_STORE);
}

/* Global options before the command: --store DIR, --store=DIR, --socket. */
static bool
take_global(struct ovctl *ctx, int *i, int argc, char **argv, GError **error)
{
    const char *arg = argv[*i];
    const char *names[] = {"--store", "--socket"};
    char **slots[] = {&ctx->store_dir, &ctx->socket_path};
    for (size_t n = 0; n < G_N_ELEMENTS(names); n++) {
        size_t len = strlen(names[n]);
        if (strncmp(arg, names[n], len) != 0 || (arg[len] != '\0' && arg[len] != '='))
            continue;
        const char *value = arg[len] == '=' ? arg + len + 1 : NULL;
        if (!value) {
            if (*i + 1 >= argc) {
                g_set_error(error, OVCTL_ERROR, OVCTL_ERROR_USAGE, "%s needs a value", names[n]);
                return false;
            }
            value = argv[++*i];
        }
        if (!*value) {
            g_set_error(error, OVCTL_ERROR, OVCTL_ERROR_USAGE, "%s needs a non-empty value",
                        names[n]);
            return false;
        }
        g_free(*slots[n]);
        *slots[n] = g_strdup(value);
        return true;
    }
    g_set_error(error, OVCTL_ERROR, OVCTL_ERROR_USAGE, "unknown option %s (see ovctl --help)", arg);
    return false;
}

static int
dispatch(struct ovctl *ctx, int argc, char **argv)
{
    int i = 1;
    g_autoptr(GError) error = NULL;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return OVCTL_EXIT_OK;
        }
        if (!strcmp(argv[i], "--version")) {
            printf("ovctl %s\n", OVGATE_VERSION);
            return OVCTL_EXIT_OK;
        }
        if (!take_global(ctx, &i, argc, argv, &error))
            return ovctl_fail(error);
    }
    if (i >= argc) {
        usage(stderr);
        return OVCTL_EXIT_USAGE;
    }
    const char *word = argv[i];
    const char *verb = i + 1 < argc ? argv[i + 1] : NULL;
    bool group_known = false;
    for (size_t c = 0; c < G_N_ELEMENTS(cmds); c++) {
        const struct cmd *cmd = &cmds[c];
        if (!cmd->group && !strcmp(cmd->verb, word)) {
            ctx->name = cmd->verb;
            return cmd->run(ctx, argc - i, argv + i);
        }
        if (cmd->group && !strcmp(cmd->group, word)) {
            group_known = true;
            if (verb && !strcmp(cmd->verb, verb)) {
                g_autofree char *name = g_strdup_printf("%s %s", word, verb);
                ctx->name = name;
                return cmd->run(ctx, argc - i - 1, argv + i + 1);
            }
        }
    }
    if (group_known)
        g_set_error(&error, OVCTL_ERROR, OVCTL_ERROR_USAGE, "ovctl %s: %s%s (see ovctl --help)",
                    word, verb ? "unknown subcommand " : "missing subcommand", verb ? verb : "");
    else
        g_set_error(&error, OVCTL_ERROR, OVCTL_ERROR_USAGE,
                    "unknown command '%s' (see ovctl --help)", word);
    return ovctl_fail(error);
}

int
main(int argc, char **argv)
{
    setlocale(LC_ALL, "");
    setlocale(LC_NUMERIC, "C"); /* "1.5 GiB" in every locale: scripts parse it */
    struct ovctl ctx = {0};
    const char *env = g_getenv("OVGATE_STORE");
    ctx.store_dir = g_strdup(env && *env ? env : OVGATE_DEFAULT_STORE);
    env = g_getenv("OVGATE_SOCKET");
    ctx.socket_path = env && *env ? g_strdup(env) : NULL;
    int rc = dispatch(&ctx, argc, argv);
    g_free(ctx.store_dir);
    g_free(ctx.socket_path);
    return rc;
}
