#!/bin/bash
# Scenario 6: the gateway is killed (SIGKILL) and restarted under a running
# client. The guest syncs phase 1, then writes phase 2 in fsynced pieces
# while the host kills ovgated and starts it again on the same ports; the
# guest's initiator (iscsid, started by the initramfs) reconnects within
# replacement_timeout and every fsync completes. After a reboot, both phases
# read back with the checksums the guest reported, `ovctl check` is clean and
# the generation is unchanged.
# shellcheck source=tests/integration/common/ovgate-test-lib.sh
. "$OVT_LIB"
# shellcheck source=tests/e2e/e2e-lib.sh
. "$(dirname "$0")/e2e-lib.sh"

e2e_setup
plan 10
e2e_client r
sums_before=$(e2e_gen_sums)

# Start ovgated again on the ports it had (the guest keeps the same portal).
restart_daemon() {
    rm -f "$OVT_DIR/ports"
    "$OVGATED" --store "$OVT_STORE" \
        --listen-iscsi "127.0.0.1:$OVT_ISCSI_PORT" --listen-nbd "127.0.0.1:$OVT_NBD_PORT" \
        --port-file "$OVT_DIR/ports" --control-socket "$OVT_CTL_SOCKET" \
        --log-level debug </dev/null 2>>"$OVT_LOG" >&2 &
    # shellcheck disable=SC2034 # read by ovgate-test-lib.sh (stop, cleanup)
    OVT_PID=$!
    ovt_wait_ports 30
}

# Wait (bounded) for a guest console line.
wait_console() { # NAME TEXT SECONDS
    i=0
    while [ $i -lt $(($3 * 10)) ]; do
        grep -q "^OVGATE-GUEST: $2" "$OVT_DIR/$1.log" 2>/dev/null && return 0
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

phase_on_disk() { # N EXPECTED-SHA256
    [ -n "$2" ] || return 1
    rm -f "$OVT_DIR/$1.phase"
    debugfs -R "dump /var/lib/ovgate-test/$1.phase $OVT_DIR/$1.phase" "$E2E_DISK" >/dev/null 2>&1 &&
        test "$(sha256sum <"$OVT_DIR/$1.phase" | cut -d' ' -f1)" = "$2"
}

e2e_boot_start r iscsi ovgate.test.token=tok-r-1 ovgate.test.mode=restart \
    ovgate.replacement_timeout=120
ovt_check "guest r synced phase 1" wait_console r "synced phase 1" 180
ovt_kill_daemon
diag "killed ovgated (SIGKILL) while guest r writes phase 2"
sleep 3
ovt_check "ovgated restarts on the same ports" restart_daemon
ovt_check "guest r finishes after the restart" e2e_boot_wait r
sha1=$(e2e_guest r "synced phase 1")
sha2=$(e2e_guest r "synced phase 2")
ovt_check "every fsync of phase 2 succeeded across the restart" test -n "$sha2"
ovt_check "the root file system stayed read-write (no I/O errors)" \
    e2e_like "$(e2e_guest r "root options after phase 2:")" 'rw*'
check_clean() {
    timeout "$E2E_HOST_TIMEOUT" "$OVCTL" --store "$OVT_STORE" check r >&2
}
ovt_check "ovctl check r is clean" check_clean
ovt_check "guest r boots again" e2e_boot r iscsi
ovt_check "after the reboot the guest reads both phases intact" \
    test "$(e2e_guest r phase)" = "$(printf '1.phase %s\n2.phase %s' "$sha1" "$sha2")"
check_host_side() {
    e2e_read_disk r && phase_on_disk 1 "$sha1" && phase_on_disk 2 "$sha2" &&
        test "$(e2e_disk_file /var/lib/ovgate-test/r.token)" = tok-r-1
}
ovt_check "the host reads both phases and the token through the daemon" check_host_side
ovt_check "the generation file is unchanged" test "$(e2e_gen_sums)" = "$sums_before"
ovt_done
