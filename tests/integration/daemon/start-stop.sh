#!/bin/bash
# ovgated starts on free ports, writes its port file once every listener is
# bound, answers on them and on the control socket, and stops cleanly on
# SIGTERM (exit 0, control socket removed), telling systemd READY=1 and
# STOPPING=1 on $NOTIFY_SOCKET.
. "$OVT_LIB"
ovt_require python3
plan 11

# A stand-in for systemd's notify socket (Type=notify).
ovt_init
python3 - "$OVT_DIR/notify.sock" "$OVT_DIR/notify.out" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(30)
with open(sys.argv[2], "w") as f:
    try:
        for _ in range(2):
            f.write(s.recv(4096).decode() + "\n")
            f.flush()
    except socket.timeout:
        pass
PY
notify_pid=$!
ovt_on_exit "kill $notify_pid 2>/dev/null"
for _ in $(seq 100); do [ -S "$OVT_DIR/notify.sock" ] && break; sleep 0.05; done
export NOTIFY_SOCKET="$OVT_DIR/notify.sock"
ovt_start_daemon || { not_ok "daemon started"; ovt_done; }
unset NOTIFY_SOCKET
ok "daemon started (pid $OVT_PID)"
notified() { # wait up to 5 s for a line in notify.out
    for _ in $(seq 100); do grep -qx "$1" "$OVT_DIR/notify.out" && return 0; sleep 0.05; done
    return 1
}
ovt_check "systemd was told READY=1" notified READY=1

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
ovt_check "systemd was told STOPPING=1" notified STOPPING=1
ovt_done
