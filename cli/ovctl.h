/* ovctl.h — shared by ovctl's files (cli/): the command context, exit codes,
 * option parsing, output helpers and the control-socket client. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>
#include <json-glib/json-glib.h>

#include "store.h"

/* Exit codes (also printed by ovctl --help). */
enum ovctl_exit {
    OVCTL_EXIT_OK = 0,
    OVCTL_EXIT_PROBLEMS = 1,  /* ovctl check found (and maybe repaired) problems */
    OVCTL_EXIT_USAGE = 2,     /* bad command line or bad input (name, size, IQN, MAC) */
    OVCTL_EXIT_NOT_FOUND = 3, /* store, image, client or generation does not exist */
    OVCTL_EXIT_CONFLICT = 4,  /* already exists, still in use, client connected */
    OVCTL_EXIT_DAEMON = 5,    /* ovgated not running, or it refused the request */
    OVCTL_EXIT_FAILED = 6,    /* I/O error, disk full, damaged store */
};

#define OVCTL_ERROR (ovctl_error_quark())
GQuark ovctl_error_quark(void);
enum ovctl_error_code {
    OVCTL_ERROR_USAGE,
    OVCTL_ERROR_DAEMON,
};

struct ovctl {
    char *store_dir;   /* --store, $OVGATE_STORE or OVGATE_DEFAULT_STORE */
    char *socket_path; /* --socket, $OVGATE_SOCKET, or NULL = STORE/ovgated.sock */
    bool json;         /* --json where the command supports it */
    const char *name;  /* "image create" etc., for messages */
};

typedef int (*ovctl_cmd_fn)(struct ovctl *ctx, int argc, char **argv);

/* Commands (cli/cmd-*.c). argv[0] is the command's name; each returns an exit code. */
int ovctl_cmd_init(struct ovctl *ctx, int argc, char **argv);
int ovctl_cmd_image_create(struct ovctl *ctx, int argc, char **argv);
int ovctl_cmd_image_list(struct ovctl *ctx, int argc, char **argv);
int ovctl_cmd_image_info(struct ovctl *ctx, int argc, char **argv);
int ovctl_cmd_image_set(struct ovctl *ctx, int argc, char **argv);
int ovctl_cmd_image_remove(struct ovctl *ctx, int argc, char **argv);
int ovctl_cmd_client_add(struct ovctl *ctx, int argc, char **argv);
int ovctl_cmd_client_list(struct ovctl *ctx, int argc, char **argv);
int ovctl_cmd_client_info(struct ovctl *ctx, int argc, char **argv);
int ovctl_cmd_client_remove(struct ovctl *ctx, int argc, char **argv);
int ovctl_cmd_overlay_info(struct ovctl *ctx, int argc, char **argv);
int ovctl_cmd_overlay_map(struct ovctl *ctx, int argc, char **argv);
int ovctl_cmd_check(struct ovctl *ctx, int argc, char **argv);
int ovctl_cmd_reset(struct ovctl *ctx, int argc, char **argv);
int ovctl_cmd_commit(struct ovctl *ctx, int argc, char **argv);
int ovctl_cmd_gc(struct ovctl *ctx, int argc, char **argv);
int ovctl_cmd_status(struct ovctl *ctx, int argc, char **argv);

/* --- util.c --- */

/* Print "ovctl: error: MESSAGE" and return the exit code for the error. */
int ovctl_fail(GError *error);
int ovctl_exit_code(const GError *error);

/* Parse a subcommand's options (entries may be NULL) plus the common ones
 * (--store, --socket, and --json when json_ok). Afterwards argv holds only
 * the positional arguments; exactly npos of them are required (-1: any).
 * params is the usage's positional part, summary a one-line description. */
bool ovctl_parse(struct ovctl *ctx, const GOptionEntry *entries, bool json_ok, int *argc,
                 char ***argv, int npos, const char *params, const char *summary, GError **error);

/* Open the store (create: initialise it) with the file base opener. */
struct ov_store *ovctl_open_store(struct ovctl *ctx, bool create, GError **error);

/* "64M", "1G", "512", "2T" (binary units), a positive multiple of 512. */
bool ovctl_parse_size(const char *text, uint64_t *out, GError **error);
/* "64 MiB", "1.5 GiB", "512 B" (caller frees). */
char *ovctl_format_size(uint64_t bytes);
/* "2026-11-22T03:40:00Z", or "-" for 0 (caller frees). */
char *ovctl_format_time(gint64 unix_seconds);
/* "on"/"off" and friends. */
bool ovctl_parse_bool(const char *text, bool *out, GError **error);

/* A text table: rows of strings, columns padded to the widest cell. */
struct ovctl_table;
struct ovctl_table *ovctl_table_new(const char *const *header);
void ovctl_table_add(struct ovctl_table *t, ...) G_GNUC_NULL_TERMINATED;
/* Prints and frees. */
void ovctl_table_print(struct ovctl_table *t);

/* Print the builder's root as pretty JSON on stdout, then unref it. */
void ovctl_json_print(JsonBuilder *b);

/* --- ctl-client.c --- */

/* Send one request object to ovgated and return the response object (caller
 * unrefs with json_object_unref). {"ok":false} becomes an OVCTL_ERROR_DAEMON
 * error with the daemon's message; no answer on the socket likewise, saying
 * that the daemon is not running. timeout_s 0 waits forever. */
JsonObject *ovctl_ctl_request(struct ovctl *ctx, JsonBuilder *request, unsigned timeout_s,
                              GError **error);
/* The control socket path in use (caller frees). */
char *ovctl_ctl_socket_path(struct ovctl *ctx);
