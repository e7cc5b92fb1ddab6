#!/bin/bash
# scale.sh CLIENT N_ISCSI N_NBD N_READERS — N_ISCSI + N_NBD sessions at once,
# each its own client of one image, plus N_READERS NBD sessions on the image's
# read-only export (docs/concurrency.md: thread per connection, no global
# lock on the data path). scale-client logs every session in, writes tagged
# blocks, flushes, reads back and checks it sees only its own writes and the
# base elsewhere; while all sessions are up the control socket must list each
# of them. Afterwards every overlay passes `ovctl check`, the generation file
# is unchanged, and after a daemon restart every session still reads its own
# flushed data.
. "$OVT_LIB"
ovt_require python3 sha256sum
CLIENT=${1:?usage: scale.sh CLIENT N_ISCSI N_NBD}
N_ISCSI=${2:?}
N_NBD=${3:?}
N_READERS=${4:-0}
N=$((N_ISCSI + N_NBD))
IQN_PREFIX=iqn.2026-11.org.ovgate.scale
DISK_MIB=64
plan 15

ovt_init
"$CLIENT" --make-base "$OVT_DIR/base.raw" --disk-mib "$DISK_MIB" || exit 1
ovt_make_image_from lab "$OVT_DIR/base.raw" || exit 1
rm -f "$OVT_DIR/base.raw"
clients=()
for ((i = 0; i < N; i++)); do
    name=$(printf 'c%03d' "$i")
    clients+=("$name")
    if ((i < N_ISCSI)); then
        ovt_add_client "$name" lab "$IQN_PREFIX:$name" || exit 1
    else
        ovt_add_client "$name" lab || exit 1
    fi
done
gen_sha() {
    sha256sum "$OVT_STORE/images/lab/gen/1.raw" | cut -d' ' -f1
}
gen=$(gen_sha)
ovt_start_daemon || exit 1
diag "ovgated pid $OVT_PID: $N_ISCSI iSCSI + $N_NBD NBD sessions, $N_READERS image readers"

# Start scale-client in the background; it creates $OVT_DIR/ready once every
# session has verified its data and logs out once $OVT_DIR/go exists.
run_client() {
    "$CLIENT" --host 127.0.0.1 --iscsi-port "$OVT_ISCSI_PORT" --nbd-port "$OVT_NBD_PORT" \
        --target "$(ovt_target lab)" --image lab --client-prefix c \
        --iqn-prefix "$IQN_PREFIX" --iscsi "$N_ISCSI" --nbd "$N_NBD" --readers "$N_READERS" \
        --disk-mib "$DISK_MIB" "$@"
}
rm -f "$OVT_DIR/ready" "$OVT_DIR/go"
run_client --ready-file "$OVT_DIR/ready" --go-file "$OVT_DIR/go" >"$OVT_DIR/client.out" 2>&1 &
cpid=$!
ovt_on_exit "kill $cpid 2>/dev/null || true"
# Ask for the status over and over while the sessions log in and do I/O: the
# control socket walks the registry while connection threads attach disks.
polls=0
poll_errors=0
i=0
while [ "$i" -eq 0 ] ||
    { [ ! -e "$OVT_DIR/ready" ] && kill -0 "$cpid" 2>/dev/null && [ "$i" -lt 600 ]; }; do
    if ovt_ovctl --socket "$OVT_CTL_SOCKET" status --json >/dev/null 2>"$OVT_DIR/poll.err"; then
        polls=$((polls + 1))
    else
        poll_errors=$((poll_errors + 1))
        sed 's/^/# status during the run: /' "$OVT_DIR/poll.err"
    fi
    sleep 0.02
    i=$((i + 1))
done
diag "ovctl status answered $polls times during the run"
ovt_check "ovctl status answers during logins and I/O" test "$poll_errors" -eq 0 -a "$polls" -ge 1
while [ ! -e "$OVT_DIR/ready" ] && kill -0 "$cpid" 2>/dev/null && [ "$i" -lt 1800 ]; do
    sleep 0.05
    i=$((i + 1))
done

# While every session is up: the control socket lists each client exactly
# once, with its protocol, and counts at least the writes it made.
status_ok() {
    ovt_ovctl --socket "$OVT_CTL_SOCKET" status --json >"$OVT_DIR/status.json" || return 1
    # scale-client's defaults: 2 rounds, each writing 32 + 16 blocks and
    # reading them and 3 x 16 blocks of other sessions' private sets.
    python3 - "$OVT_DIR/status.json" "$N_ISCSI" "$N_NBD" "$N_READERS" 96 192 <<'PY'
import json, sys
path, ni, nn, nr, min_w, min_r = sys.argv[1], *map(int, sys.argv[2:])
sessions = json.load(open(path))["sessions"]
want = {f"c{i:03d}": ("iscsi" if i < ni else "nbd") for i in range(ni + nn)}
seen = {}
bad = []
readers = [s for s in sessions if s.get("client") is None]
if len(readers) != nr or any(s.get("protocol") != "nbd" for s in readers):
    bad.append(f"{len(readers)} image export sessions listed, expected {nr} (NBD)")
for s in sessions:
    c = s.get("client")
    if c is None:
        continue
    if c in seen:
        bad.append(f"{c} listed twice")
    seen[c] = s
    if c not in want:
        bad.append(f"unexpected session {c}")
    elif s.get("protocol") != want[c]:
        bad.append(f"{c}: protocol {s.get('protocol')}, expected {want[c]}")
    elif s.get("write_ops", 0) < min_w or s.get("read_ops", 0) < min_r:
        bad.append(f"{c}: {s.get('write_ops')} writes, {s.get('read_ops')} reads counted")
missing = sorted(set(want) - set(seen))
if missing:
    bad.append(f"{len(missing)} missing, e.g. {missing[:5]}")
for b in bad[:10]:
    print("# status:", b)
print(f"# status lists {len(sessions)} sessions")
sys.exit(1 if bad else 0)
PY
}
if [ -e "$OVT_DIR/ready" ]; then
    ovt_check "ovctl status lists all $((N + N_READERS)) sessions while they are up" status_ok
else
    not_ok "ovctl status lists all $((N + N_READERS)) sessions while they are up (client not ready)"
fi
touch "$OVT_DIR/go"
rc=0
wait "$cpid" || rc=$?
sed 's/^\([^#B]\)/# \1/' "$OVT_DIR/client.out"
ovt_check "$N sessions at once wrote, flushed and read back only their own data; $N_READERS image readers saw only the base" \
    test "$rc" -eq 0

# After the client logged out, the daemon drops every session (bounded wait).
no_sessions() {
    for ((j = 0; j < 100; j++)); do
        if ovt_ovctl --socket "$OVT_CTL_SOCKET" status --json 2>/dev/null |
            python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)["sessions"] == [] else 1)'; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}
ovt_check "every session ends after the client disconnects" no_sessions

check_all() {
    local bad=0
    for c in "${clients[@]}"; do
        if ! ovt_ovctl check "$c" >"$OVT_DIR/check.out" 2>&1; then
            diag "ovctl check $c failed:"
            sed 's/^/#   /' "$OVT_DIR/check.out"
            bad=1
        fi
    done
    return "$bad"
}
ovt_check "every overlay passes ovctl check with the daemon running" check_all
ovt_check "the generation file is unchanged" test "$(gen_sha)" = "$gen"

stop_clean() {
    ovt_stop_daemon
    local st=$?
    [ "$st" -eq 0 ] || diag "ovgated exited with status $st"
    return "$st"
}
ovt_check "ovgated stops cleanly after $N sessions" stop_clean
ovt_check "every overlay passes ovctl check with the daemon stopped" check_all

# Flushed data survives a restart: all sessions again at once, read only.
ovt_start_daemon || exit 1
rc=0
run_client --verify-only >"$OVT_DIR/client2.out" 2>&1 || rc=$?
sed 's/^\([^#B]\)/# \1/' "$OVT_DIR/client2.out"
ovt_check "after a restart all $N sessions at once read their own flushed data" test "$rc" -eq 0
# The checks can fail: sessions that log in as other clients (a name shift
# of one, within each protocol) must report the other clients' data.
rc=0
run_client --verify-only --name-shift 1 >"$OVT_DIR/client3.out" 2>&1 || rc=$?
ovt_check "the checks see it when a session is served another client's overlay" \
    test "$rc" -eq 1 -a "$(grep -c 'ISOLATION BROKEN' "$OVT_DIR/client3.out")" -eq "$N"
# ... and a round that was never written reads as stale data.
rc=0
run_client --verify-only --rounds 3 >"$OVT_DIR/client4.out" 2>&1 || rc=$?
ovt_check "the checks see it when a session reads an older round's data" \
    test "$rc" -eq 1 -a "$(grep -c 'STALE' "$OVT_DIR/client4.out")" -eq "$N"
# Online resets under load: while all sessions run 8 rounds, one iSCSI and
# one NBD client are reset with --force. Only their sessions end; every
# other session verifies every round, and nobody reads another's data.
victims="0,$N_ISCSI"
[ "$N_NBD" -gt 0 ] || victims=0
rm -f "$OVT_DIR/mark"
run_client --rounds 8 --victims "$victims" --mark-file "$OVT_DIR/mark" \
    >"$OVT_DIR/client5.out" 2>&1 &
cpid=$!
ovt_on_exit "kill $cpid 2>/dev/null || true"
i=0
while [ ! -e "$OVT_DIR/mark" ] && kill -0 "$cpid" 2>/dev/null && [ "$i" -lt 1200 ]; do
    sleep 0.02
    i=$((i + 1))
done
reset_rc=0
for v in ${victims//,/ }; do
    ovt_ovctl --socket "$OVT_CTL_SOCKET" reset "$(printf 'c%03d' "$v")" --force \
        >"$OVT_DIR/reset.out" 2>&1 || { reset_rc=1; sed 's/^/# reset: /' "$OVT_DIR/reset.out"; }
done
rc=0
wait "$cpid" || rc=$?
grep -E '^# (victim|[0-9]+ victim|session|phase connect|total|Bail)' "$OVT_DIR/client5.out"
ovt_check "resetting clients under load ends only their sessions; all others verify 8 rounds" \
    test "$rc" -eq 0 -a "$reset_rc" -eq 0
ovt_check "ovgated stops cleanly again" stop_clean
ovt_check "every overlay passes ovctl check after the online resets" check_all
ovt_check "the generation file is still unchanged" test "$(gen_sha)" = "$gen"
ovt_done
