#!/bin/bash
# iscsi-adversarial.sh — a hostile raw-socket initiator (iscsi-adversarial.py):
# command storms without Data-Out, aborts of held and in-flight commands,
# logout with R2Ts outstanding, byte-by-byte logins, oversize pings; and a
# login trickled too slowly is dropped after the login timeout
# (iscsi-slow-login.py, OVGATE_ISCSI_LOGIN_TIMEOUT_S shortens it).
set -u
. "$OVT_LIB"
ovt_require python3
here=$(cd "$(dirname "$0")" && pwd)
INI=iqn.2026-11.test.adversarial:pc
ovt_make_image adv 256
ovt_add_client adv-pc adv "$INI"
ovt_start_daemon || { echo "Bail out! ovgated did not start"; exit 1; }
timeout 120 python3 "$here/iscsi-adversarial.py" "$OVT_ISCSI_PORT" "$(ovt_target adv)" "$INI"
rc=$?
kill -0 "$OVT_PID" 2>/dev/null || { echo "# ovgated died"; rc=1; }
exit $rc
