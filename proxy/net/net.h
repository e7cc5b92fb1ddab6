/* net.h — listeners, accept threads and connection threads (docs/concurrency.md).
 *
 * A net_server owns listening TCP sockets (IPv4/IPv6, SO_REUSEADDR). After
 * net_server_start() each listener has one accept thread blocking in
 * accept4(); every accepted socket gets TCP_NODELAY and its own detached
 * connection thread that calls the listener's handler, which owns the fd
 * until it returns (the front ends close it). Shutdown is ordered by the
 * caller: net_server_stop_accepting(), then end the connections (front-end
 * shutdown), then net_server_wait_idle().
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>

#include "cfg.h"

/* Serve one connection on fd (blocking; closes fd). peer is "ADDR:PORT". */
typedef void (*net_conn_fn)(void *user_data, int fd, const char *peer);

struct net_server;

struct net_server *net_server_new(void);
/* Stops accepting and frees; the caller made sure no connection runs
 * (net_server_wait_idle returned true). Accepts NULL. */
void net_server_free(struct net_server *srv);

/* Bind and listen on l (port 0 = any free port). proto names the front end
 * for logs and the port file ("iscsi", "nbd"). On success *bound_out (if not
 * NULL) is the address actually bound, "127.0.0.1:3260" or "[::1]:3260"
 * (caller frees with g_free). */
bool net_server_listen(struct net_server *srv, const struct cfg_listen *l, const char *proto,
                       net_conn_fn fn, void *user_data, char **bound_out, GError **error);
/* Adopt a listening socket handed over by systemd (socket activation): fd
 * must be a bound, listening stream socket; the server owns it afterwards.
 * Otherwise like net_server_listen. */
bool net_server_adopt(struct net_server *srv, int fd, const char *proto, net_conn_fn fn,
                      void *user_data, char **bound_out, GError **error);
/* "PROTO ADDR:PORT\n" for every listener, in order (caller frees). */
char *net_server_describe(struct net_server *srv);
/* Start one accept thread per listener. */
bool net_server_start(struct net_server *srv, GError **error);
/* Close the listening sockets and join the accept threads. Idempotent. */
void net_server_stop_accepting(struct net_server *srv);
/* Number of connection threads running now. */
unsigned net_server_get_active(struct net_server *srv);
/* Wait until no connection thread runs; false after timeout_ms. */
bool net_server_wait_idle(struct net_server *srv, int timeout_ms);

/* Format a socket address as "ADDR:PORT" / "[ADDR]:PORT" (caller frees). */
char *net_format_sockaddr(const void *sa, unsigned salen);
/* Write text to path atomically (temp file + rename). */
bool net_write_file_atomic(const char *path, const char *text, GError **error);
