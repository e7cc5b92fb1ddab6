#!/bin/bash
# Scenario 4: reset and commit with real guests.
#  - a and b boot and write their tokens;
#  - `ovctl reset a`: a boots again and finds no token (its overlay is gone),
#    then writes a new one;
#  - `ovctl commit a` publishes generation 2 = generation 1 + a's overlay;
#  - a new client c (on generation 2) boots and sees a's token, while b (still
#    on generation 1 with its overlay) sees only its own world;
#  - generation 1's file never changes.
# shellcheck source=tests/integration/common/ovgate-test-lib.sh
. "$OVT_LIB"
# shellcheck source=tests/e2e/e2e-lib.sh
. "$(dirname "$0")/e2e-lib.sh"

e2e_setup
plan 14
e2e_client a
e2e_client b
gen1_before=$(cd "$OVT_STORE" && sha256sum images/lab/gen/1.raw)

ovctl_live() {
    timeout "$E2E_HOST_TIMEOUT" "$OVCTL" --store "$OVT_STORE" --socket "$OVT_CTL_SOCKET" "$@"
}

ovctl_do() {
    ovctl_live "$@" >&2
}

token_on_disk() { # CLIENT FILE EXPECTED
    e2e_read_disk "$1" && test "$(e2e_disk_file "/var/lib/ovgate-test/$2")" = "$3"
}

head_is_2() {
    ovctl_live image info lab --json | grep -Eq '"head" *: *2([^0-9]|$)'
}

e2e_boot_start a iscsi ovgate.test.token=tok-a-old
e2e_boot_start b iscsi ovgate.test.token=tok-b-1
ovt_check "a boots and writes its token" e2e_boot_wait a
ovt_check "b boots and writes its token" e2e_boot_wait b

ovt_check "ovctl reset a" ovctl_do reset a
ovt_check "a boots again after the reset" e2e_boot a iscsi ovgate.test.token=tok-a-new
found_no_token() {
    e2e_booted a && test -z "$(e2e_guest a token)"
}
ovt_check "after the reset a found no token" found_no_token
ovt_check "a's new token is on its disk" token_on_disk a a.token tok-a-new

ovt_check "ovctl commit a" ovctl_do commit a
ovt_check "generation 2 is the head of image lab" head_is_2
e2e_client c
e2e_boot_start c iscsi
e2e_boot_start b iscsi
ovt_check "c (new, on generation 2) boots" e2e_boot_wait c
ovt_check "b (generation 1 + its overlay) boots" e2e_boot_wait b
ovt_check "c sees a's committed token and nothing else" test "$(e2e_guest c token)" = "a.token tok-a-new"
ovt_check "b sees only its own token" test "$(e2e_guest b token)" = "b.token tok-b-1"
b_disk_own_world() {
    e2e_read_disk b &&
        test "$(e2e_disk_file /var/lib/ovgate-test/b.token)/$(e2e_disk_file /var/lib/ovgate-test/a.token)" = "tok-b-1/"
}
ovt_check "b's disk has its own token and none of a" b_disk_own_world
ovt_check "generation 1's file is unchanged" \
    test "$(cd "$OVT_STORE" && sha256sum images/lab/gen/1.raw)" = "$gen1_before"
ovt_done
