#!/bin/bash
# One-way CHAP from the initramfs (ovgate.chap=USER:SECRET): ovgated's config
# gives client c a CHAP name and secret. A boot with a wrong secret is
# refused and ends with a clear FATAL line; a boot with the right one mounts
# the root file system and writes the token, which the host reads back
# through the daemon with the same CHAP credentials.
# shellcheck source=tests/integration/common/ovgate-test-lib.sh
. "$OVT_LIB"
# shellcheck source=tests/e2e/e2e-lib.sh
. "$(dirname "$0")/e2e-lib.sh"

ovt_init
cat >"$OVT_DIR/ovgated.conf" <<CONF
[client c]
chap-user=pc-c
chap-secret=e2e-chap-secret-1
CONF
E2E_DAEMON_ARGS="--config $OVT_DIR/ovgated.conf"
e2e_setup
plan 8
e2e_client c

fatal_line() {
    tr -d '\r' <"$OVT_DIR/$1.log" | sed -n 's/^ovgate-init: FATAL: //p'
}
refused() {
    ! E2E_EXPECT_FAIL=1 e2e_boot c iscsi ovgate.chap=pc-c:not-the-secret-42 ovgate.test.token=tok-wrong &&
        e2e_like "$(fatal_line c)" "iSCSI login to $E2E_TARGET at 10.0.2.2:$OVT_ISCSI_PORT failed"
}
token_on_disk() {
    E2E_CHAP=pc-c:e2e-chap-secret-1 e2e_read_disk c &&
        test "$(e2e_disk_file /var/lib/ovgate-test/c.token)" = tok-c-chap
}

ovt_check "a wrong CHAP secret is refused and the guest powers off" refused
ovt_check "ovgated logged the failed authentication" grep -qi 'chap' "$OVT_LOG"
ovt_check "with the right secret c boots" e2e_boot c iscsi ovgate.chap=pc-c:e2e-chap-secret-1 \
    ovgate.test.token=tok-c-chap
ovt_check "guest sees the golden marker" \
    test "$(e2e_guest c marker)" = "ovgate golden image generation 1"
ovt_check "the token is on c's disk (read with CHAP)" token_on_disk
# The firmware path: iPXE's username/password settings are its CHAP
# credentials; sanhook logs in with them and writes them into the iBFT, from
# which the initramfs logs in again.
E2E_IPXE_SETTINGS="set username pc-c
set password e2e-chap-secret-1"
ovt_check "through iPXE sanhook with CHAP, c boots and logs in again from the iBFT" \
    e2e_boot c ipxe ovgate.test.token=tok-c-ibft
token2_on_disk() {
    E2E_CHAP=pc-c:e2e-chap-secret-1 e2e_read_disk c &&
        test "$(e2e_disk_file /var/lib/ovgate-test/c.token)" = tok-c-ibft
}
ovt_check "the iPXE boot's token is on c's disk" token2_on_disk
ovt_check "reading c's disk without CHAP is refused" sh -c '! "$@" 2>/dev/null' _ \
    timeout "$E2E_HOST_TIMEOUT" qemu-img info --image-opts \
    "driver=raw,file.driver=iscsi,file.transport=tcp,file.portal=127.0.0.1:$OVT_ISCSI_PORT,file.target=$E2E_TARGET,file.lun=0,file.initiator-name=$(e2e_iqn c)"
ovt_done
