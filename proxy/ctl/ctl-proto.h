/* ctl-proto.h — the wire contract of ovgated's control socket (docs/control.md).
 *
 * Transport: a unix stream socket, by default STORE/ovgated.sock (mode 0600,
 * root only). One request per line, one response per line, both a single
 * JSON object encoded as UTF-8 and terminated by '\n'; a connection may carry
 * several requests in turn. Requests larger than CTL_MAX_LINE are refused.
 *
 * Request:  {"cmd": "<name>", ...arguments}
 * Response: {"ok": true, ...results}  or  {"ok": false, "error": "<one line>"}
 *
 * Commands (arguments -> results):
 *   "ping"                          -> {"version": OVGATE_VERSION, "pid": N}
 *   "status"                        -> {"sessions": [ {client, image, generation,
 *                                        protocol: "iscsi"|"nbd", peer, initiator,
 *                                        since, read_ops, read_bytes, write_ops,
 *                                        write_bytes, zero_ops, flush_ops, errors} ... ]}
 *   "kick"    {"client": C}         -> {"kicked": N}   ends C's sessions, waits until closed
 *   "reset"   {"client": C, "force": bool}
 *                                   -> {}   refused while C has sessions unless force, in
 *                                           which case they are ended first
 *   "commit"  {"client": C}         -> {"generation": N}  online commit: C keeps running
 *   "rescan"                        -> {}   re-read the store now
 *   "reload"                        -> {}   re-read the config file (like SIGHUP)
 */
#pragma once

#define CTL_SOCKET_NAME "ovgated.sock"
#define CTL_MAX_LINE (64 * 1024)
