#!/bin/bash
# Bad command lines and configurations stop ovgated at once with a clear
# one-line error; a second daemon on the same store is refused.
. "$OVT_LIB"
ovt_require python3
plan 12
ovt_init

expect_fail() { # DESC WANT_STATUS NEEDLE ARGS...
    desc=$1 want=$2 needle=$3
    shift 3
    out=$(timeout 20 "$OVGATED" "$@" 2>&1 </dev/null)
    rc=$?
    if [ "$rc" = "$want" ] && printf '%s' "$out" | grep -qF -- "$needle"; then
        ok "$desc"
    else
        not_ok "$desc (status $rc, output: $out)"
    fi
}

expect_status() { # WANT ARGS...: ovgated exits with WANT
    want=$1
    shift
    timeout 20 "$OVGATED" "$@" >"$OVT_DIR/out" 2>&1 </dev/null
    [ $? = "$want" ]
}

expect_fail "unknown option" 2 "Unknown option" --store "$OVT_STORE" --bogus
expect_fail "bad listen address" 2 "--listen-iscsi" --store "$OVT_STORE" --listen-iscsi 127.0.0.1:99999
expect_fail "bad --serve-stdin" 2 "expected iscsi or nbd" --store "$OVT_STORE" --serve-stdin http
expect_fail "bad --log-level" 2 "--log-level" --store "$OVT_STORE" --log-level loud

printf '[ovgated]\nnop-timeout=0\n' >"$OVT_DIR/bad.conf"
expect_fail "bad config names FILE:[group]:key" 2 "$OVT_DIR/bad.conf:[ovgated]:nop-timeout" \
    --store "$OVT_STORE" --config "$OVT_DIR/bad.conf"
expect_fail "missing store" 1 "$OVT_DIR/nostore" --store "$OVT_DIR/nostore" \
    --listen-iscsi 127.0.0.1:0

ovt_check "--check-config with a bad file fails the same way" expect_status 2 \
    --check-config --config "$OVT_DIR/bad.conf"
printf '[ovgated]\nnop-timeout=10\n' >"$OVT_DIR/good.conf"
ovt_check "--check-config with a good file says ok" expect_status 0 \
    --check-config --config "$OVT_DIR/good.conf"

# TLS files that cannot be loaded: --check-config (which the systemd unit
# runs before a reload) must say so, as the daemon's start would.
printf '[ovgated]\ntls-psk-file=%s\n' "$OVT_DIR/no-such.psk" >"$OVT_DIR/tls.conf"
expect_fail "--check-config loads the TLS files it names" 2 "no-such.psk" \
    --check-config --config "$OVT_DIR/tls.conf"
printf '[ovgated]\ntls-cert=%s\ntls-key=%s\n' "$OVT_DIR/no.crt" "$OVT_DIR/no.key" \
    >"$OVT_DIR/tls2.conf"
expect_fail "--check-config with a missing certificate fails" 2 "no.crt" \
    --check-config --config "$OVT_DIR/tls2.conf"

ovt_start_daemon || { not_ok "first daemon started"; ovt_done; }
ok "first daemon started"
expect_fail "second daemon on the same control socket is refused" 1 "in use" \
    --store "$OVT_STORE" --listen-iscsi 127.0.0.1:0 --control-socket "$OVT_CTL_SOCKET"
ovt_done
