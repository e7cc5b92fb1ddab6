#!/bin/bash
# iscsi-chap.sh — CHAP (RFC 7143 §12.1.3) with libiscsi as the initiator:
# one-way and mutual, right and wrong secrets, no credentials, and
# require-chap for a client without a secret. Secrets come from the config
# file ([client NAME] chap-user/chap-secret/mutual-chap-*).
set -u
. "$OVT_LIB"
ovt_require iscsi-inq
plan 9

ONE=iqn.2026-11.test.chap:one-way
MUT=iqn.2026-11.test.chap:mutual
OPEN=iqn.2026-11.test.chap:open
ovt_make_image lab 16
ovt_add_client one lab "$ONE"
ovt_add_client mut lab "$MUT"
ovt_add_client open lab "$OPEN"
cat >"$OVT_DIR/chap.conf" <<CONF
[client one]
chap-user=one-user
chap-secret=one-secret-123456

[client mut]
chap-user=mut-user
chap-secret=mut-secret-123456
mutual-chap-user=target-user
mutual-chap-secret=target-secret-654321
CONF
chmod 600 "$OVT_DIR/chap.conf"
ovt_start_daemon --config "$OVT_DIR/chap.conf" || { echo "Bail out! ovgated did not start"; exit 1; }
T=$(ovt_target lab)
P=127.0.0.1:$OVT_ISCSI_PORT

inq() { # INITIATOR URL-CREDENTIALS [QUERY]
    timeout 20 iscsi-inq -i "$1" "iscsi://$2$P/$T/0${3:-}" >"$OVT_DIR/inq.out" 2>&1
}
fails() {
    ! "$@"
}
logged() { # STATUS: the daemon logged a refusal with this status
    grep -q "refused ($1)" "$OVT_LOG"
}

ovt_check "one-way CHAP with the right secret" inq "$ONE" "one-user%one-secret-123456@"
: >"$OVT_LOG"
ovt_check "one-way CHAP with a wrong secret is refused" fails inq "$ONE" "one-user%wrong-secret-000@"
ovt_check "... with Authentication failure (0x0201)" logged 0x0201
: >"$OVT_LOG"
ovt_check "no credentials for a CHAP client is refused (0x0201)" \
    eval 'fails inq "$ONE" "" && logged 0x0201'
ovt_check "mutual CHAP with both secrets right" \
    inq "$MUT" "mut-user%mut-secret-123456@" "?target_user=target-user&target_password=target-secret-654321"
ovt_check "mutual CHAP: initiator rejects a target that answers with another secret" \
    fails inq "$MUT" "mut-user%mut-secret-123456@" "?target_user=target-user&target_password=not-the-secret-1"
ovt_check "a client without CHAP logs in without credentials" inq "$OPEN" ""

# require-chap: a client without a secret can no longer log in
ovt_stop_daemon >/dev/null 2>&1
{ printf '[ovgated]\nrequire-chap=true\n\n'; cat "$OVT_DIR/chap.conf"; } >"$OVT_DIR/require.conf"
chmod 600 "$OVT_DIR/require.conf"
ovt_start_daemon --config "$OVT_DIR/require.conf" || { echo "Bail out! ovgated did not restart"; exit 1; }
P=127.0.0.1:$OVT_ISCSI_PORT
ovt_check "require-chap: a client without a secret is refused" fails inq "$OPEN" ""
ovt_check "require-chap: a CHAP client still logs in" inq "$ONE" "one-user%one-secret-123456@"
ovt_done
