#!/bin/bash
# iscsi-slow-login.sh — a login trickled byte by byte is dropped 30 s after
# the connection opened (iscsi-slow-login.py); the daemon keeps serving.
set -u
. "$OVT_LIB"
ovt_require python3
here=$(cd "$(dirname "$0")" && pwd)
INI=iqn.2026-11.test.slow:pc
ovt_make_image slow 1
ovt_add_client slow-pc slow "$INI"
ovt_start_daemon || { echo "Bail out! ovgated did not start"; exit 1; }
timeout 90 python3 "$here/iscsi-slow-login.py" "$OVT_ISCSI_PORT" "$(ovt_target slow)" "$INI"
rc=$?
kill -0 "$OVT_PID" 2>/dev/null || { echo "# ovgated died"; rc=1; }
exit $rc
