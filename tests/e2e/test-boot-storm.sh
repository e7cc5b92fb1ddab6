#!/bin/bash
# Suite 'slow': a small boot storm. E2E_STORM_CLIENTS (default 6) guests of
# one image boot at the same time over iSCSI and NBD (alternately), each
# writes its token; every guest saw no other client's token and every disk
# holds exactly its own; the generation is unchanged. Prints each guest's
# boot time. Run: meson test -C BUILD --suite slow e2e-boot-storm
# shellcheck source=tests/integration/common/ovgate-test-lib.sh
. "$OVT_LIB"
# shellcheck source=tests/e2e/e2e-lib.sh
. "$(dirname "$0")/e2e-lib.sh"

n=${E2E_STORM_CLIENTS:-6}
E2E_BOOT_TIMEOUT=${E2E_BOOT_TIMEOUT_STORM:-400}
e2e_setup
plan $((n * 3 + 1))
sums_before=$(e2e_gen_sums)
i=1
while [ $i -le "$n" ]; do
    e2e_client "s$i"
    i=$((i + 1))
done
t0=$(date +%s)
i=1
while [ $i -le "$n" ]; do
    how=iscsi
    [ $((i % 2)) -eq 1 ] || how=nbd
    e2e_boot_start "s$i" "$how" "ovgate.test.token=tok-s$i"
    i=$((i + 1))
done
saw_only_none() {
    e2e_booted "$1" && test -z "$(e2e_guest "$1" token)"
}
own_token_only() {
    e2e_read_disk "$1" &&
        test "$(debugfs -R 'ls -l /var/lib/ovgate-test' "$E2E_DISK" 2>/dev/null |
            awk '$NF ~ /\.token$/ {print $NF}')" = "$1.token" &&
        test "$(e2e_disk_file "/var/lib/ovgate-test/$1.token")" = "tok-$1"
}
i=1
while [ $i -le "$n" ]; do
    ovt_check "guest s$i boots in the storm" e2e_boot_wait "s$i"
    i=$((i + 1))
done
diag "$n guests booted in $(($(date +%s) - t0)) s"
i=1
while [ $i -le "$n" ]; do
    ovt_check "guest s$i saw no other client's token" saw_only_none "s$i"
    ovt_check "s$i's disk holds its own token and no other" own_token_only "s$i"
    i=$((i + 1))
done
ovt_check "the generation file is unchanged" test "$(e2e_gen_sums)" = "$sums_before"
ovt_done
