#!/bin/bash
# NBD sessions and the control socket: status, refused and forced reset,
# online commit under a running connection, kick (nbd-admin.py).
. "$OVT_LIB"
. "$(dirname "$0")/nbd-lib.sh"
nbdt_require_python
ovt_init
ovt_make_image lab 8
ovt_add_client pc1 lab
ovt_start_daemon || exit 1
"$NBDT_PY" "$(dirname "$0")/nbd-admin.py" "$OVT_NBD_PORT" "$OVT_CTL_SOCKET"
rc=$?
nbdt_stop_clean
exit $rc
