#!/bin/bash
# Scenario 5: a Linux guest boots with its root file system on ovgated over
# NBD (the kernel's nbd driver, nbd-client in the initramfs, export
# IMAGE/CLIENT), writes a token and powers off. The host reads the disk back
# (over NBD) and finds the token; the generation is unchanged.
# shellcheck source=tests/integration/common/ovgate-test-lib.sh
. "$OVT_LIB"
# shellcheck source=tests/e2e/e2e-lib.sh
. "$(dirname "$0")/e2e-lib.sh"

ovt_require nbdcopy
e2e_setup
plan 7
e2e_client n
sums_before=$(e2e_gen_sums)

# Read the disk over NBD with libnbd's nbdcopy. --no-extents: copy every
# byte rather than trusting block status, so the check does not depend on
# NBD_CMD_BLOCK_STATUS (tested by the integration suite).
read_nbd() {
    E2E_DISK="$OVT_DIR/disk-n-nbd.raw"
    timeout "$E2E_HOST_TIMEOUT" nbdcopy --no-extents "nbd://127.0.0.1:$OVT_NBD_PORT/$E2E_IMAGE/n" "$E2E_DISK" &&
        e2fsck -fn "$E2E_DISK" >/dev/null 2>&1
}

# A static address (the kernel's ip= syntax) here; the iSCSI tests use DHCP.
ovt_check "guest n boots from NBD and powers off" e2e_boot n nbd ovgate.test.token=tok-n-1 \
    ip=10.0.2.15::10.0.2.2:255.255.255.0::eth0:off
ovt_check "ovgate-init configured the static address" \
    grep -q '^ovgate-init: network: eth0 10.0.2.15/24' "$OVT_DIR/n.log"
ovt_check "guest sees the golden marker" \
    test "$(e2e_guest n marker)" = "ovgate golden image generation 1"
ovt_check "guest root is /dev/nbd0, read-write" \
    e2e_like "$(e2e_guest n root)" '/dev/nbd0 ext4 rw*'
ovt_check "client n's disk reads back over NBD with a clean file system" read_nbd
ovt_check "the token is on client n's disk" test "$(e2e_disk_file /var/lib/ovgate-test/n.token)" = tok-n-1
ovt_check "the generation file is unchanged" test "$(e2e_gen_sums)" = "$sums_before"
ovt_done
