#!/bin/bash
# Malformed NBD peers (nbd-negative.py, raw sockets): bad flags, magics and
# lengths in the handshake, bad requests in transmission; each gets the
# protocol's answer and the daemon keeps serving, with the image unchanged.
. "$OVT_LIB"
. "$(dirname "$0")/nbd-lib.sh"
ovt_require python3 sha256sum
ovt_init
ovt_make_image lab 8
ovt_add_client pc1 lab
ovt_start_daemon || exit 1
gen=$(nbdt_sha_gen lab 1)
python3 "$(dirname "$0")/nbd-negative.py" "$OVT_NBD_PORT"
rc=$?
kill -0 "$OVT_PID" || { echo "Bail out! ovgated died"; exit 1; }
[ "$(nbdt_sha_gen lab 1)" = "$gen" ] || { echo "Bail out! generation file changed"; exit 1; }
nbdt_stop_clean
exit $rc
