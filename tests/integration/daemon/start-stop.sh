#!/bin/bash
# ovgated starts on free ports, writes its port file once every listener is
# bound, answers on them and on the control socket, and stops cleanly on
# SIGTERM (exit 0, control socket removed).
. "$OVT_LIB"
ovt_require python3
plan 9

ovt_start_daemon || { not_ok "daemon started"; ovt_done; }
ok "daemon started (pid $OVT_PID)"

ovt_check "port file lists iscsi and nbd on 127.0.0.1" \
    grep -qE '^iscsi 127\.0\.0\.1:[0-9]+$' "$OVT_DIR/ports"
ovt_check "port file has one nbd line" \
    test "$(grep -cE '^nbd 127\.0\.0\.1:[0-9]+$' "$OVT_DIR/ports")" = 1
ovt_check "ports are not 0" test "$OVT_ISCSI_PORT" -gt 0 -a "$OVT_NBD_PORT" -gt 0

tcp_connects() {
    python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 5).close()' "$1"
}
ovt_check "iSCSI port accepts connections" tcp_connects "$OVT_ISCSI_PORT"
ovt_check "NBD port accepts connections" tcp_connects "$OVT_NBD_PORT"

resp=$(ovt_ctl '{"cmd":"ping"}')
diag "ping: $resp"
ovt_check "control socket answers ping with our pid" \
    python3 -c 'import json,sys; r=json.loads(sys.argv[1]); sys.exit(not (r["ok"] and r["pid"] == int(sys.argv[2])))' "$resp" "$OVT_PID"

ovt_check "control socket is mode 0600" test "$(stat -c %a "$OVT_CTL_SOCKET")" = 600

ovt_stop_daemon
rc=$?
if [ "$rc" = 0 ] && [ ! -e "$OVT_CTL_SOCKET" ]; then
    ok "SIGTERM: exit status 0 and control socket removed"
else
    not_ok "SIGTERM: exit status $rc, socket present: $(test -e "$OVT_CTL_SOCKET" && echo yes || echo no)"
fi
ovt_done
