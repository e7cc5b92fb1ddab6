#!/bin/bash
# Socket activation (systemd's LISTEN_FDS protocol, as ovgated.socket and
# ovgated-nbd.socket use it): the daemon serves the sockets it is handed,
# told apart by their names, and binds nothing itself.
. "$OVT_LIB"
ovt_require python3 nbdinfo iscsi-ls systemd-socket-activate
plan 5
ovt_make_image lab 8 || { not_ok "image created"; ovt_done; }
ovt_add_client pc01 lab iqn.2026-11.test:pc01 || { not_ok "client created"; ovt_done; }

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
iport=$(free_port)
nport=$(free_port)
# systemd-socket-activate binds both, and execs ovgated (same pid) on the
# first connection.
systemd-socket-activate -l "127.0.0.1:$iport" -l "127.0.0.1:$nport" --fdname=iscsi:nbd \
    "$OVGATED" --store "$OVT_STORE" --port-file "$OVT_DIR/ports" \
    --control-socket "$OVT_CTL_SOCKET" --log-level debug 2>>"$OVT_LOG" &
OVT_PID=$!
export OVT_PID
for _ in $(seq 100); do grep -q "Listening on 127.0.0.1:$nport" "$OVT_LOG" && break; sleep 0.05; done

ovt_check "NBD on the passed socket" sh -c "timeout 20 nbdinfo nbd://127.0.0.1:$nport/lab/pc01 >/dev/null"
ovt_check "iSCSI on the passed socket" sh -c "timeout 20 iscsi-ls -s -i iqn.2026-11.test:pc01 iscsi://127.0.0.1:$iport >/dev/null"
ovt_check "the port file lists exactly the passed sockets" \
    test "$(sort "$OVT_DIR/ports" | tr '\n' ' ')" = "iscsi 127.0.0.1:$iport nbd 127.0.0.1:$nport "
ovt_check "the daemon logged the activation" grep -q "socket activation: serving 2 socket" "$OVT_LOG"
ovt_check "SIGTERM: clean exit" ovt_stop_daemon
ovt_done
