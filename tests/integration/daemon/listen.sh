#!/bin/bash
# Listeners: several per protocol, IPv6, "none" for no iSCSI, listen keys
# from the config file, and --serve-stdin (one NBD connection on fd 0, no
# ports at all).
. "$OVT_LIB"
ovt_require python3 nbdsh
plan 9
ovt_make_image lab 8 || { not_ok "image created"; ovt_done; }
ovt_add_client pc01 lab iqn.2026-11.test:pc01 || { not_ok "client created"; ovt_done; }

have_ipv6() {
    python3 -c 'import socket; s=socket.socket(socket.AF_INET6); s.bind(("::1", 0))' 2>/dev/null
}

if have_ipv6; then
    ovt_start_daemon --listen-iscsi 127.0.0.1:0 --listen-iscsi '[::1]:0' \
        --listen-nbd '[::1]:0' || { not_ok "daemon started"; ovt_done; }
    ovt_check "two iSCSI listeners, one IPv6" \
        test "$(grep -c '^iscsi ' "$OVT_DIR/ports")" = 2 -a "$(grep -c '^iscsi \[::1\]:' "$OVT_DIR/ports")" = 1
    v6port=$(awk '$1 == "nbd" { sub(/.*:/, "", $2); print $2 }' "$OVT_DIR/ports")
    ovt_check "NBD over IPv6" nbdsh -u "nbd://[::1]:$v6port/lab/pc01" -c 'assert h.get_size() == 8 << 20'
    ovt_stop_daemon
else
    ok "# SKIP no IPv6 loopback"
    ok "# SKIP no IPv6 loopback"
fi

ovt_start_daemon --listen-iscsi none || { not_ok "daemon started"; ovt_done; }
ovt_check "--listen-iscsi none: no iSCSI listener" test "$(grep -c '^iscsi ' "$OVT_DIR/ports")" = 0
ovt_check "... and NBD still listens" test "$(grep -c '^nbd ' "$OVT_DIR/ports")" = 1
# A boot storm (hundreds of machines powered on at once) connects faster
# than one accept thread may run: the listen backlog is the kernel's
# maximum (net.core.somaxconn), not a small fixed number. For a listening
# socket ss shows the backlog as Send-Q.
if command -v ss >/dev/null; then
    nport=$(awk '$1 == "nbd" { sub(/.*:/, "", $2); print $2 }' "$OVT_DIR/ports")
    backlog=$(ss -Hltn "sport = :$nport" | awk '{ print $3; exit }')
    want=$(cat /proc/sys/net/core/somaxconn)
    [ "$want" -gt 65535 ] && want=65535 # what ovgated asks for
    diag "listen backlog $backlog (somaxconn $want)"
    ovt_check "listen backlog is net.core.somaxconn" test "$backlog" = "$want"
else
    ok "# SKIP ss not installed"
fi
ovt_stop_daemon

# Listen addresses from the config file (no --listen-* on the command line).
printf '[ovgated]\nlisten-iscsi=127.0.0.1:0\nlisten-nbd=127.0.0.1:0;127.0.0.1:0\ncontrol-socket=%s\n' \
    "$OVT_DIR/from-config.sock" >"$OVT_DIR/listen.conf"
"$OVGATED" --store "$OVT_STORE" --config "$OVT_DIR/listen.conf" --port-file "$OVT_DIR/ports2" \
    2>>"$OVT_LOG" &
OVT_PID=$!
export OVT_PID
for _ in $(seq 200); do [ -s "$OVT_DIR/ports2" ] && break; sleep 0.05; done
ovt_check "config file: one iSCSI and two NBD listeners" \
    test "$(grep -c '^iscsi ' "$OVT_DIR/ports2")" = 1 -a "$(grep -c '^nbd ' "$OVT_DIR/ports2")" = 2
ovt_check "config file: control socket path" test -S "$OVT_DIR/from-config.sock"
ovt_stop_daemon

# --serve-stdin nbd: libnbd connects the daemon's stdin/stdout to a socket.
ovt_check "--serve-stdin nbd serves one connection" nbdsh -c - <<EOF_PY
h.set_export_name("lab/pc01")
h.connect_command(["$OVGATED", "--store", "$OVT_STORE", "--serve-stdin", "nbd"])
h.pwrite(b"stdin" * 100, 4096)
h.flush()
assert h.pread(500, 4096) == b"stdin" * 100
h.shutdown()
EOF_PY
# shellcheck disable=SC2016 # expanded by the inner sh
ovt_check "--serve-stdin iscsi ends cleanly when the peer closes at once" \
    sh -c '"$1" --store "$2" --serve-stdin iscsi </dev/null 2>>"$3"' sh "$OVGATED" "$OVT_STORE" "$OVT_LOG"
ovt_done
