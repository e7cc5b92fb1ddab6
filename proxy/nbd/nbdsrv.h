/* nbdsrv.h — the NBD server front end (fixed newstyle, structured replies),
 * as the daemon sees it. One thread per connection, like iSCSI
 * (docs/concurrency.md).
 */
#pragma once

#include <stdbool.h>
#include <glib.h>

#include "reg.h"

struct nbdsrv;

/* Loads TLS credentials named in the registry's configuration (if any).
 * Caller frees with nbdsrv_free after every connection returned. */
struct nbdsrv *nbdsrv_new(struct reg *reg, GError **error);
void nbdsrv_free(struct nbdsrv *srv);

/* Load the TLS credentials cfg names (if any) and drop them again: lets
 * --check-config and a reload refuse a file whose certificate, key or PSK
 * file cannot be loaded, as the daemon's start would. */
bool nbdsrv_tls_check(const struct cfg *cfg, GError **error);

/* Serve one connection until it ends; closes fd. Blocking. */
void nbdsrv_conn_run(struct nbdsrv *srv, int fd, const char *peer);

/* End every connection (shutdown on their sockets); returns at once. */
void nbdsrv_shutdown(struct nbdsrv *srv);
