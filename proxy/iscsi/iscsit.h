/* iscsit.h — the iSCSI target front end (RFC 7143), as the daemon sees it.
 *
 * Concurrency: one thread per TCP connection (see docs/concurrency.md). The
 * net layer accepts a socket and calls iscsit_conn_run() on a fresh thread;
 * that call owns the socket until it returns. Sessions (TSIH, reinstatement,
 * the session table) are shared between connection threads under the
 * target's own lock.
 */
#pragma once

#include <stdbool.h>
#include <glib.h>

#include "reg.h"

struct iscsit_target;

/* One target context per daemon; takes no ownership of reg (it must outlive
 * the target). Caller frees with iscsit_target_free after every connection
 * returned. */
struct iscsit_target *iscsit_target_new(struct reg *reg);
void iscsit_target_free(struct iscsit_target *tgt);

/* A portal we listen on, for SendTargets: "127.0.0.1:3260" or "[::1]:3260"
 * with its portal group tag. Call before serving connections. */
void iscsit_target_add_portal(struct iscsit_target *tgt, const char *addr_port, uint16_t tpgt);

/* Serve one connection until it ends; closes fd. Blocking. peer is for logs
 * ("127.0.0.1:51234"). Safe to call from many threads at once. */
void iscsit_conn_run(struct iscsit_target *tgt, int fd, const char *peer);

/* End every connection (shutdown on their sockets); returns at once. */
void iscsit_target_shutdown(struct iscsit_target *tgt);
