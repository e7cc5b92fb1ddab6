#!/bin/bash
# Scenario 3: the firmware path. QEMU boots its NIC's iPXE ROM, which loads
# contrib/ipxe/ovgate.ipxe over TFTP: `sanhook` logs in to ovgated (and writes
# the iBFT), then the kernel and initramfs are loaded over TFTP and the
# initramfs logs in again from the iBFT (ovgate.iscsi=ibft). The guest writes
# a token; the host reads it back through the daemon.
# shellcheck source=tests/integration/common/ovgate-test-lib.sh
. "$OVT_LIB"
# shellcheck source=tests/e2e/e2e-lib.sh
. "$(dirname "$0")/e2e-lib.sh"

e2e_setup
plan 6
# The client is registered under the initiator name that ovgate.ipxe derives
# from the NIC's MAC by default (no initiator-iqn in boot.ipxe).
mac_iqn="iqn.2026-11.org.ovgate.client:$(e2e_mac f | tr ':' '-')"
e2e_client f "$mac_iqn"
E2E_IPXE_MAC_IQN=1
sums_before=$(e2e_gen_sums)

ovt_check "guest f boots through iPXE sanhook and the iBFT" e2e_boot f ipxe ovgate.test.token=tok-f-1
ovt_check "iPXE registered the SAN device" grep -q 'Registered SAN device' "$OVT_DIR/f.log"
ovt_check "the initramfs read the MAC-derived initiator name from the iBFT" \
    grep -q "iface.initiatorname = $mac_iqn" "$OVT_DIR/f.log"
ovt_check "guest sees the golden marker" \
    test "$(e2e_guest f marker)" = "ovgate golden image generation 1"
token_on_disk() {
    e2e_read_disk f "$mac_iqn" && test "$(e2e_disk_file /var/lib/ovgate-test/f.token)" = tok-f-1
}
ovt_check "the token is on client f's disk" token_on_disk
ovt_check "the generation file is unchanged" test "$(e2e_gen_sums)" = "$sums_before"
ovt_done
