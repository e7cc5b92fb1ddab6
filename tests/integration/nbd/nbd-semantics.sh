#!/bin/bash
# NBD command semantics (nbd-semantics.py over python3-libnbd): FUA, trim,
# write zeroes (NO_HOLE, FAST_ZERO), block status in both contexts, holes in
# structured reads, DF, error cases, read-only image export, unknown exports.
. "$OVT_LIB"
. "$(dirname "$0")/nbd-lib.sh"
nbdt_require_python
ovt_init
nbdt_make_base "$OVT_DIR/base.raw" 16 4
ovt_make_image_from lab "$OVT_DIR/base.raw"
ovt_add_client pc1 lab
ovt_start_daemon || exit 1
gen=$(nbdt_sha_gen lab 1)
"$NBDT_PY" "$(dirname "$0")/nbd-semantics.py" "$OVT_NBD_PORT" "$OVT_DIR/base.raw"
rc=$?
[ "$(nbdt_sha_gen lab 1)" = "$gen" ] || { echo "Bail out! generation file changed"; exit 1; }
nbdt_stop_clean
exit $rc
