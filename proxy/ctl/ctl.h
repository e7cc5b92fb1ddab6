/* ctl.h — ovgated's control socket server (wire contract: ctl-proto.h,
 * docs/control.md). Runs on the main thread's GMainContext: a
 * GSocketService on a unix stream socket created with mode 0600. Commands
 * that wait (kick, reset, commit) run in a worker thread (GTask) so the main
 * loop keeps serving signals and other requests.
 */
#pragma once

#include <stdbool.h>
#include <glib.h>
#include <json-glib/json-glib.h>

#include "ctl-proto.h"
#include "reg.h"

struct ctl_server;

/* "reload": re-read the configuration (what SIGHUP does). Runs on the main
 * thread. */
typedef bool (*ctl_reload_fn)(void *user_data, GError **error);

/* Listen on path (an old socket file there is replaced; a live daemon on it
 * is detected and refused). Caller frees with ctl_server_free. */
struct ctl_server *ctl_server_new(struct reg *reg, const char *path, ctl_reload_fn reload,
                                  void *reload_data, GError **error);
/* Stop listening, remove the socket file, and wait up to timeout_ms for
 * commands still running in worker threads; false if one still runs (the
 * registry must then stay allocated). Idempotent. */
bool ctl_server_stop(struct ctl_server *ctl, int timeout_ms);
/* ctl_server_stop, then free. Accepts NULL. */
void ctl_server_free(struct ctl_server *ctl);

/* Execute one request object; returns the response object (caller unrefs).
 * Blocking commands block the caller: the server calls this from a worker. */
JsonObject *ctl_dispatch(struct reg *reg, JsonObject *request, ctl_reload_fn reload,
                         void *reload_data);
/* Parse one request line; NULL + error for bad JSON / not an object. */
JsonObject *ctl_parse_line(const char *line, gsize len, GError **error);
/* Serialise a response object as one line without the trailing newline
 * (caller frees). */
char *ctl_format_response(JsonObject *resp);
/* {"ok": false, "error": message} (caller unrefs). */
JsonObject *ctl_error_response(const char *message);
