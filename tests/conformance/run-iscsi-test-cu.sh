#!/bin/bash
# run-iscsi-test-cu.sh — libiscsi's conformance suite against ovgated.
#
# Starts ovgated on a fresh store (tests/integration/common/ovgate-test-lib.sh)
# with one client that owns both initiator names iscsi-test-cu uses, then runs
# the SCSI family (the target URL given twice, which enables the MultipathIO
# tests with a second session) and the iSCSI family, verbose. CUnit counts a
# "[SKIPPED]" test as passed, so cu-results.py counts from the output; the test
# fails on any failure and on any skip not listed in not-applicable.txt.
#
# Usage (meson sets the environment): run-iscsi-test-cu.sh [FAMILY...]
# Set OVT_CU_OUT=DIR to keep the raw iscsi-test-cu output there.
set -u
. "$OVT_LIB"
ovt_require iscsi-test-cu python3

here=$(cd "$(dirname "$0")" && pwd)
families=${*:-SCSI iSCSI}
I1=iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test
I2=iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test-2

ovt_make_image conformance 128
ovt_add_client conformance-client conformance "$I1" "$I2"
ovt_start_daemon || { echo "ovgated did not start"; exit 1; }
url=$(ovt_iscsi_url conformance)

rc=0
for fam in $families; do
    out="$OVT_DIR/cu-$fam.txt"
    echo "# iscsi-test-cu -t $fam $url $url"
    timeout 900 iscsi-test-cu --initiator-name "$I1" --initiator-name-2 "$I2" \
        -t "$fam" --dataloss --allow-sanitize "$url" "$url" >"$out" 2>&1
    echo "# iscsi-test-cu exit status $?"
    if [ -n "${OVT_CU_OUT:-}" ]; then
        mkdir -p "$OVT_CU_OUT" && cp "$out" "$OVT_CU_OUT/"
    fi
    python3 "$here/cu-results.py" "$out" --family "$fam" \
        --not-applicable "$here/not-applicable.txt" || rc=1
done
# The daemon survived the whole run and still serves.
if ! kill -0 "$OVT_PID" 2>/dev/null; then
    echo "# ovgated died during the run"
    rc=1
fi
exit $rc
