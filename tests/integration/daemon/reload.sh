#!/bin/bash
# SIGHUP and the control socket's "reload" re-read the config file; a bad
# file is logged and the old configuration stays in force.
. "$OVT_LIB"
ovt_require python3
plan 9
ovt_init
conf="$OVT_DIR/ovgated.conf"
printf '[ovgated]\nlog-level=debug\n[image lab]\nauto-enroll=false\n' >"$conf"
ovt_start_daemon --config "$conf" || { not_ok "daemon started"; ovt_done; }
ok "daemon started with a config file"

wait_log() { # NEEDLE COUNT: wait up to 10 s for COUNT lines containing NEEDLE
    for _ in $(seq 100); do
        [ "$(grep -cF -- "$1" "$OVT_LOG")" -ge "$2" ] && return 0
        sleep 0.1
    done
    return 1
}

printf '[ovgated]\nlog-level=info\n[image lab]\nauto-enroll=true\n' >"$conf"
kill -HUP "$OVT_PID"
ovt_check "SIGHUP with a good file reloads" wait_log "configuration reloaded" 1

printf '[ovgated]\nlog-level=info\nfrobnicate=1\n' >"$conf"
kill -HUP "$OVT_PID"
ovt_check "SIGHUP with a bad file logs the error with its place" \
    wait_log "reload failed, keeping the old configuration: $conf:[ovgated]:frobnicate" 1
ovt_check "daemon still runs after a bad reload" kill -0 "$OVT_PID"

resp=$(ovt_ctl '{"cmd":"reload"}')
diag "reload (bad file): $resp"
ovt_check "control reload with a bad file answers ok:false with the place" \
    python3 -c 'import json,sys; r=json.loads(sys.argv[1]); sys.exit(r["ok"] or "frobnicate" not in r["error"])' "$resp"

# A file that parses but names TLS files that cannot be loaded is a bad
# file too: refused as a whole, the old configuration stays.
printf '[ovgated]\nlog-level=info\ntls-psk-file=%s\n' "$OVT_DIR/missing.psk" >"$conf"
resp=$(ovt_ctl '{"cmd":"reload"}')
diag "reload (missing TLS file): $resp"
ovt_check "reload naming a missing TLS file answers ok:false" \
    python3 -c 'import json,sys; r=json.loads(sys.argv[1]); sys.exit(r["ok"] or "missing.psk" not in r["error"])' "$resp"
kill -HUP "$OVT_PID"
ovt_check "SIGHUP naming a missing TLS file keeps the old configuration" \
    wait_log "reload failed, keeping the old configuration: $conf: TLS PSK file" 1

printf '[ovgated]\nlog-level=debug\n' >"$conf"
resp=$(ovt_ctl '{"cmd":"reload"}')
ovt_check "control reload with a good file answers ok:true" \
    python3 -c 'import json,sys; sys.exit(not json.loads(sys.argv[1])["ok"])' "$resp"

ovt_check "daemon stops cleanly" ovt_stop_daemon
ovt_done
