#!/bin/bash
# The initramfs and the gateway answer bad boot parameters with a clear
# error, and the guest stops instead of hanging (ovgate.onfail=poweroff):
#  - a malformed ovgate.iscsi= is rejected by ovgate-init before any login;
#  - an initiator name that belongs to no client is refused by ovgated, and
#    ovgate-init reports the failed login;
#  - the refused initiator left the store as it was (no client, no overlay).
# shellcheck source=tests/integration/common/ovgate-test-lib.sh
. "$OVT_LIB"
# shellcheck source=tests/e2e/e2e-lib.sh
. "$(dirname "$0")/e2e-lib.sh"

e2e_setup
plan 6
sums_before=$(e2e_gen_sums)
clients_before=$(ls "$OVT_STORE/clients")

# Boots that are expected to end in ovgate-init's FATAL line, then power off.
boot_fails() { # NAME CMDLINE...
    e2e_name=$1
    shift
    e2e_log="$OVT_DIR/$e2e_name.log"
    timeout --kill-after=5 "$E2E_BOOT_TIMEOUT" qemu-system-x86_64 -accel tcg -m 512 \
        -nographic -no-reboot -monitor none -serial "file:$e2e_log" \
        -netdev user,id=n0 -device virtio-net-pci,netdev=n0,romfile= \
        -kernel "$E2E_CACHE/vmlinuz" -initrd "$E2E_CACHE/initramfs.img" \
        -append "$E2E_CMDLINE_BASE $*" </dev/null >"$e2e_log.qemu" 2>&1 &
    E2E_PIDS="$E2E_PIDS $!"
    eval "E2E_PID_$e2e_name=$!"
}
fatal_line() {
    tr -d '\r' <"$OVT_DIR/$1.log" | sed -n 's/^ovgate-init: FATAL: //p'
}
ended() { # NAME: QEMU exited by itself (the guest powered off)
    eval "wait \$E2E_PID_$1"
}

boot_fails bad ovgate.iscsi=10.0.2.2:no-port-or-target
boot_fails stranger \
    "ovgate.iscsi=10.0.2.2:$OVT_ISCSI_PORT:$E2E_TARGET:iqn.2026-11.org.example:stranger"
ovt_check "a malformed ovgate.iscsi= powers the guest off" ended bad
ovt_check "ovgate-init names the malformed parameter" \
    e2e_like "$(fatal_line bad)" '*ovgate.iscsi=10.0.2.2:no-port-or-target: expected PORTAL:PORT:TARGET:INITIATOR*'
ovt_check "an unknown initiator powers the guest off" ended stranger
ovt_check "ovgate-init reports the refused login" \
    e2e_like "$(fatal_line stranger)" "iSCSI login to $E2E_TARGET at 10.0.2.2:$OVT_ISCSI_PORT failed"
ovt_check "ovgated logged the refused initiator" grep -q 'iqn.2026-11.org.example:stranger' "$OVT_LOG"
ovt_check "the store is unchanged (no client, same generation)" \
    test "$(ls "$OVT_STORE/clients")/$(e2e_gen_sums)" = "$clients_before/$sums_before"
ovt_done
