#!/bin/bash
# iscsi-discovery.sh — discovery sessions: SendTargets lists only the targets
# the initiator may log in to (a client of the image, or auto-enrolment on),
# discovery never enrols anybody, and discovery CHAP ([ovgated]
# discovery-chap-*) with right, wrong and missing secrets, one-way and mutual.
set -u
. "$OVT_LIB"
ovt_require iscsi-ls
plan 14

A=iqn.2026-11.test.disc:pc-a
STRANGER=iqn.2026-11.test.disc:stranger
ovt_make_image lab 8
ovt_make_image other 8
ovt_make_image open 8 auto
ovt_add_client pc-a lab "$A"
ovt_start_daemon || { echo "Bail out! ovgated did not start"; exit 1; }
P=127.0.0.1:$OVT_ISCSI_PORT
fails() {
    ! "$@"
}
ls_as() { # INITIATOR [CREDENTIALS@] -> targets, one per line
    timeout 20 iscsi-ls -i "$1" "iscsi://${2:-}$P" 2>&1
}
has() { # OUTPUT IMAGE
    grep -q "^Target:$(ovt_target "$2") " <<<"$1"
}

out=$(ls_as "$A")
diag "$out"
ovt_check "a client sees its own image" has "$out" lab
ovt_check "... not an image it is no client of" fails has "$out" other
ovt_check "... nor an auto-enrolment image (a client logs in to its own image only)" \
    fails has "$out" open
out=$(ls_as "$STRANGER")
diag "$out"
ovt_check "a stranger sees only the auto-enrolment image" \
    eval 'has "$out" open && ! has "$out" lab && ! has "$out" other'
ovt_check "discovery enrolled nobody" \
    eval '! ovt_ovctl client list 2>&1 | grep -q stranger'

# Discovery CHAP
ovt_stop_daemon >/dev/null 2>&1
cat >"$OVT_DIR/disc.conf" <<CONF
[ovgated]
discovery-chap-user=disc-user
discovery-chap-secret=disc-secret-123456

[image open]
auto-enroll=false
CONF
chmod 600 "$OVT_DIR/disc.conf"
ovt_start_daemon --config "$OVT_DIR/disc.conf" || { echo "Bail out! ovgated did not restart"; exit 1; }
P=127.0.0.1:$OVT_ISCSI_PORT
out=$(ls_as "$A" "disc-user%disc-secret-123456@")
diag "$out"
ovt_check "discovery CHAP with the right secret lists the targets" has "$out" lab
out=$(ls_as "$STRANGER" "disc-user%disc-secret-123456@")
ovt_check "auto-enrolment turned off in the config: a stranger sees nothing" \
    fails grep -q "^Target:" <<<"$out"
: >"$OVT_LOG"
out=$(ls_as "$A" "disc-user%wrong-secret-00000@")
ovt_check "discovery CHAP with a wrong secret is refused" \
    eval 'fails grep -q "^Target:" <<<"$out" && grep -q "refused (0x0201)" "$OVT_LOG"'
: >"$OVT_LOG"
out=$(ls_as "$A")
ovt_check "discovery without credentials is refused" \
    eval 'fails grep -q "^Target:" <<<"$out" && grep -q "refused (0x0201)" "$OVT_LOG"'
ovt_check "a normal session needs no discovery secret" \
    timeout 20 iscsi-inq -i "$A" "$(ovt_iscsi_url lab)"

# Mutual discovery CHAP, and validation of the keys
ovt_stop_daemon >/dev/null 2>&1
cat >"$OVT_DIR/disc.conf" <<CONF
[ovgated]
discovery-chap-user=disc-user
discovery-chap-secret=disc-secret-123456
discovery-mutual-chap-user=tgt-user
discovery-mutual-chap-secret=tgt-secret-654321
CONF
ovt_start_daemon --config "$OVT_DIR/disc.conf" || { echo "Bail out! ovgated did not restart"; exit 1; }
P=127.0.0.1:$OVT_ISCSI_PORT
# iscsi-ls takes no target credentials: drive mutual CHAP with the raw client
here=$(cd "$(dirname "$0")" && pwd)
ovt_check "mutual discovery CHAP: the target proves the mutual secret" \
    timeout 30 python3 "$here/iscsi-discovery-chap.py" "$OVT_ISCSI_PORT" "$A" \
    disc-user disc-secret-123456 tgt-user tgt-secret-654321
ovt_stop_daemon >/dev/null 2>&1
printf '[ovgated]\ndiscovery-chap-user=u\ndiscovery-chap-secret=short\n' >"$OVT_DIR/bad.conf"
ovt_check "a discovery secret under 12 bytes is refused at startup" \
    eval '"$OVGATED" --check-config --config "$OVT_DIR/bad.conf" --store "$OVT_STORE" 2>&1 | grep -q "discovery-chap-secret"'
printf '[ovgated]\ndiscovery-chap-user=u\n' >"$OVT_DIR/bad.conf"
ovt_check "a discovery user without a secret is refused" \
    eval 'fails "$OVGATED" --check-config --config "$OVT_DIR/bad.conf" --store "$OVT_STORE" >/dev/null 2>&1'
printf '[ovgated]\ndiscovery-chap-user=u\ndiscovery-chap-secret=same-secret-1234\ndiscovery-mutual-chap-user=t\ndiscovery-mutual-chap-secret=same-secret-1234\n' >"$OVT_DIR/bad.conf"
ovt_check "the same secret both ways is refused" \
    eval '"$OVGATED" --check-config --config "$OVT_DIR/bad.conf" --store "$OVT_STORE" 2>&1 | grep -q "must differ"'
ovt_done
