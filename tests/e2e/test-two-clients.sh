#!/bin/bash
# Scenario 2: two clients of the same image boot at the same time over iSCSI.
# Each writes its own token and sees only its own; read back through the
# daemon, each disk holds only its own token; the generation is unchanged.
# shellcheck source=tests/integration/common/ovgate-test-lib.sh
. "$OVT_LIB"
# shellcheck source=tests/e2e/e2e-lib.sh
. "$(dirname "$0")/e2e-lib.sh"

e2e_setup
plan 9
e2e_client a
e2e_client b
sums_before=$(e2e_gen_sums)

e2e_boot_start a iscsi ovgate.test.token=tok-a-2
e2e_boot_start b iscsi ovgate.test.token=tok-b-2
ovt_check "guest a boots while b boots" e2e_boot_wait a
ovt_check "guest b boots while a boots" e2e_boot_wait b
saw_no_token() {
    e2e_booted "$1" && test -z "$(e2e_guest "$1" token)"
}
ovt_check "guest a saw no other client's token" saw_no_token a
ovt_check "guest b saw no other client's token" saw_no_token b
ovt_check "client a's disk reads back" e2e_read_disk a
ovt_check "a's disk has a's token and not b's" \
    test "$(e2e_disk_file /var/lib/ovgate-test/a.token)/$(e2e_disk_file /var/lib/ovgate-test/b.token)" = "tok-a-2/"
ovt_check "client b's disk reads back" e2e_read_disk b
ovt_check "b's disk has b's token and not a's" \
    test "$(e2e_disk_file /var/lib/ovgate-test/b.token)/$(e2e_disk_file /var/lib/ovgate-test/a.token)" = "tok-b-2/"
ovt_check "the generation file is unchanged" test "$(e2e_gen_sums)" = "$sums_before"
ovt_done
