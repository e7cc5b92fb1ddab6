# lib.sh — sourced by the ovctl golden tests (tests/cli/*.sh, run by
# run-golden.sh in their own temporary directory $CLI_TMP).
#
#   run CMD...       print "$ CMD", run it (stdout+stderr), print "[exit N]" if N != 0
#   quiet CMD...     run CMD, print its output only if it fails (with the exit code)
#   ovctl ARGS...    the ovctl under test, on $STORE
#   tool ARGS...     cli-tool on $STORE (writes into overlays, holds them)
#   hold CLIENT      keep CLIENT's overlay open as a writer, as ovgated does,
#                    until unhold; cleaned up on exit
set -u
STORE="$CLI_TMP/store"
export OVGATE_STORE="$STORE"
unset OVGATE_SOCKET
HOLD_PID=""

ovctl() {
    "$OVCTL" "$@"
}

tool() {
    "$CLI_TOOL" "$STORE" "$@"
}

run() {
    echo "\$ $*"
    "$@" 2>&1
    rc=$?
    [ "$rc" -eq 0 ] || echo "[exit $rc]"
    return 0
}

quiet() {
    out=$("$@" 2>&1)
    rc=$?
    [ "$rc" -eq 0 ] || { echo "\$ $*"; echo "$out"; echo "[exit $rc]"; }
    return 0
}

hold() {
    mkfifo "$CLI_TMP/hold.fifo"
    tool hold "$1" < "$CLI_TMP/hold.fifo" > "$CLI_TMP/hold.out" 2>&1 &
    HOLD_PID=$!
    exec 9> "$CLI_TMP/hold.fifo"
    for _ in $(seq 100); do
        grep -q held "$CLI_TMP/hold.out" 2>/dev/null && return 0
        kill -0 "$HOLD_PID" 2>/dev/null || break
        sleep 0.05
    done
    echo "hold $1 failed:"; cat "$CLI_TMP/hold.out"
}

unhold() {
    [ -n "$HOLD_PID" ] || return 0
    exec 9>&-
    wait "$HOLD_PID"
    HOLD_PID=""
    rm -f "$CLI_TMP/hold.fifo"
}

cleanup_hold() {
    if [ -n "$HOLD_PID" ]; then
        exec 9>&- 2>/dev/null
        kill "$HOLD_PID" 2>/dev/null
        wait "$HOLD_PID" 2>/dev/null
    fi
}
trap cleanup_hold EXIT
