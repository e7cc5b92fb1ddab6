#!/bin/bash
# Scenario 3b: iPXE `sanboot` of a whole bootable disk image. The image is a
# partitioned disk (MBR and syslinux, a FAT partition with the kernel and the
# ovgate initramfs, the golden ext4 file system in partition 2), as an
# installed machine's disk would be. The NIC's iPXE ROM logs in, hands the
# disk to the BIOS as drive 0x80 and boots it; syslinux reads the kernel and
# initramfs over iSCSI through iPXE; the initramfs logs in again from the
# iBFT and mounts partition 2. The guest writes a token; the host finds it in
# the client's disk and the generation unchanged.
# shellcheck source=tests/integration/common/ovgate-test-lib.sh
. "$OVT_LIB"
E2E_IMAGE=labdisk
# shellcheck source=tests/e2e/e2e-lib.sh
. "$(dirname "$0")/e2e-lib.sh"

e2e_setup bootdisk
plan 6
e2e_client s
sums_before=$(e2e_gen_sums)

token_on_disk() {
    e2e_read_disk s && test "$(e2e_disk_file /var/lib/ovgate-test/sanboot.token)" = sanboot-ok
}

ovt_check "guest s boots its disk through iPXE sanboot" e2e_boot s sanboot
ovt_check "iPXE booted from the SAN disk" grep -q 'Booting from SAN device 0x80' "$OVT_DIR/s.log"
ovt_check "the initramfs logged in from the iBFT as s" \
    grep -q "iface.initiatorname = $(e2e_iqn s)" "$OVT_DIR/s.log"
ovt_check "guest root is partition 2 of the iSCSI disk" \
    e2e_like "$(e2e_guest s root)" '/dev/sda2 ext4 rw*'
ovt_check "the token is on client s's disk" token_on_disk
ovt_check "the generation file is unchanged" test "$(e2e_gen_sums)" = "$sums_before"
ovt_done
