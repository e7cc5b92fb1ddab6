#!/bin/bash
# iscsi-nop-text.sh — NOP-In pings of idle initiators (nop-interval=1,
# nop-timeout=2) and SendTargets responses split with the C bit.
set -u
. "$OVT_LIB"
ovt_require python3
here=$(cd "$(dirname "$0")" && pwd)
INI=iqn.2026-11.test.nop:pc
# auto-enrolment on: SendTargets=All lists every image to a new initiator
for i in $(seq -w 1 12); do
    ovt_make_image "image-with-a-longish-name-$i" 1 auto
done
ovt_add_client pc image-with-a-longish-name-01 "$INI"
printf '[ovgated]\nnop-interval=1\nnop-timeout=2\n' >"$OVT_DIR/nop.conf"
ovt_start_daemon --config "$OVT_DIR/nop.conf" || { echo "Bail out! ovgated did not start"; exit 1; }
timeout 120 python3 "$here/iscsi-nop-text.py" "$OVT_ISCSI_PORT" \
    "$(ovt_target image-with-a-longish-name-01)" "$INI"
