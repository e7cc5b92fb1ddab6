#!/bin/bash
# iscsi-negative.sh — malformed PDUs, bad login keys, oversize data
# segments, out-of-range LBAs and protocol misuse from a raw-socket client
# (iscsi-negative.py); each gets the RFC's answer and the daemon keeps
# serving another session throughout.
set -u
. "$OVT_LIB"
ovt_require python3
here=$(cd "$(dirname "$0")" && pwd)
INI=iqn.2026-11.test.negative:pc
ovt_make_image neg 128
ovt_add_client neg-pc neg "$INI"
ovt_start_daemon || { echo "Bail out! ovgated did not start"; exit 1; }
timeout 120 python3 "$here/iscsi-negative.py" "$OVT_ISCSI_PORT" "$(ovt_target neg)" "$INI"
rc=$?
kill -0 "$OVT_PID" 2>/dev/null || { echo "# ovgated died"; rc=1; }
exit $rc
