#!/bin/bash
# The control socket (docs/control.md): every command, bad JSON, unknown
# commands and arguments, an oversized line, several requests on one
# connection, and reset/commit of a client that is not connected.
. "$OVT_LIB"
ovt_require python3
plan 14
ovt_make_image lab 8 || { not_ok "image created"; ovt_done; }
ovt_add_client pc01 lab iqn.2026-11.test:pc01 || { not_ok "client created"; ovt_done; }
ovt_start_daemon || { not_ok "daemon started"; ovt_done; }
ok "daemon started on a store with image lab and client pc01"

# Sends every argument as one line on one connection; prints one response per line.
ctl_session() {
    python3 - "$OVT_CTL_SOCKET" "$@" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(30)
s.connect(sys.argv[1])
f = s.makefile("rwb")
for line in sys.argv[2:]:
    f.write(line.encode() + b"\n")
    f.flush()
    print(f.readline().decode().rstrip("\n"))
PY
}

# jq-like check: python expression over r (the response object)
check() { # DESC RESPONSE EXPR
    if python3 -c 'import json,sys; r=json.loads(sys.argv[1]); sys.exit(0 if eval(sys.argv[2]) else 1)' "$2" "$3"; then
        ok "$1"
    else
        not_ok "$1 (got: $2)"
    fi
}

check "ping" "$(ovt_ctl '{"cmd":"ping"}')" 'r["ok"] and r["version"] and r["pid"] > 0'
check "status with no sessions" "$(ovt_ctl '{"cmd":"status"}')" 'r["ok"] and r["sessions"] == []'
check "bad JSON is refused" "$(ovt_ctl '{"cmd": ping')" 'not r["ok"] and "JSON" in r["error"]'
check "a JSON array is refused" "$(ovt_ctl '["ping"]')" 'not r["ok"] and "object" in r["error"]'
check "unknown command" "$(ovt_ctl '{"cmd":"reboot"}')" 'not r["ok"] and "reboot" in r["error"]'
check "kick without client" "$(ovt_ctl '{"cmd":"kick"}')" 'not r["ok"] and "client" in r["error"]'
check "reset with a non-boolean force" "$(ovt_ctl '{"cmd":"reset","client":"pc01","force":"yes"}')" \
    'not r["ok"] and "force" in r["error"]'

mapfile -t resp < <(ctl_session '{"cmd":"ping"}' 'garbage' '{"cmd":"rescan"}')
if [ "${#resp[@]}" = 3 ] && [[ ${resp[0]} == *'"ok":true'* ]] &&
    [[ ${resp[1]} == *'"ok":false'* ]] && [[ ${resp[2]} == *'"ok":true'* ]]; then
    ok "one connection carries several requests, a bad one in between"
else
    not_ok "several requests on one connection: ${resp[*]}"
fi

big=$(python3 -c 'print("{\"cmd\":\"ping\",\"pad\":\"" + "x" * 70000 + "\"}")')
check "oversized line is refused" "$(ovt_ctl "$big")" 'not r["ok"] and "long" in r["error"]'

check "kick of an idle client kicks nobody" "$(ovt_ctl '{"cmd":"kick","client":"pc01"}')" \
    'r["ok"] and r["kicked"] == 0'
check "reset of an idle client" "$(ovt_ctl '{"cmd":"reset","client":"pc01"}')" 'r["ok"]'
check "commit of an idle client publishes generation 2" \
    "$(ovt_ctl '{"cmd":"commit","client":"pc01"}')" 'r["ok"] and r["generation"] == 2'
check "reset of an unknown client names it" "$(ovt_ctl '{"cmd":"reset","client":"nobody"}')" \
    'not r["ok"] and "nobody" in r["error"]'
ovt_done
