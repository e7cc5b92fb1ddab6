#!/bin/bash
# Scenario 1: a Linux guest boots with its root file system on ovgated over
# iSCSI (direct kernel boot, iscsistart in the initramfs), writes a token and
# powers off. The host reads the client's disk back through the daemon and
# finds the token; the golden generation file is unchanged.
# shellcheck source=tests/integration/common/ovgate-test-lib.sh
. "$OVT_LIB"
# shellcheck source=tests/e2e/e2e-lib.sh
. "$(dirname "$0")/e2e-lib.sh"

e2e_setup
plan 6
e2e_client a
sums_before=$(e2e_gen_sums)

ovt_check "guest a boots from iSCSI and powers off" e2e_boot a iscsi ovgate.test.token=tok-a-1
ovt_check "guest sees the golden marker" \
    test "$(e2e_guest a marker)" = "ovgate golden image generation 1"
ovt_check "guest root is the iSCSI disk, read-write" \
    e2e_like "$(e2e_guest a root)" '/dev/sd* ext4 rw*'
ovt_check "client a's disk reads back through the daemon with a clean file system" e2e_read_disk a
ovt_check "the token is on client a's disk" test "$(e2e_disk_file /var/lib/ovgate-test/a.token)" = tok-a-1
ovt_check "the generation file is unchanged" test "$(e2e_gen_sums)" = "$sums_before"
ovt_done
