# ovgate-test-lib.sh — sourced by the integration tests (sh/bash).
#
# Starts the real ovgated on a fresh store in a temporary directory, on free
# loopback ports, and always cleans up: only the processes this library
# started (by PID) and only its own temporary directory.
#
# Environment (set by meson's integration_env, see meson.build beside this):
#   OVGATED  path of the ovgated binary      OVCTL  path of ovctl
#   OVT_LIB  path of this file               MESON_BUILD_ROOT
#
# API
#   ovt_require TOOL...        exit 77 (skip) unless every TOOL is on PATH
#   ovt_init                   make OVT_DIR (temp dir) and OVT_STORE (empty store
#                              created with `ovctl init` when it exists); called by
#                              ovt_start_daemon when not done yet
#   ovt_ovctl ARGS...          run "$OVCTL --store $OVT_STORE ARGS..."
#   ovt_make_image NAME MIB [auto]   image NAME: empty disk of MIB MiB; "auto"
#                              turns auto-enrolment on
#   ovt_make_image_from NAME FILE [auto]   image NAME from a raw file
#   ovt_add_client NAME IMAGE [IQN...]     client of IMAGE with initiator names
#   ovt_start_daemon [ARGS...] start ovgated (extra ARGS appended) with
#                              --store $OVT_STORE --listen-iscsi 127.0.0.1:0
#                              --listen-nbd 127.0.0.1:0 (each left out when ARGS
#                              name listeners of that protocol themselves, e.g.
#                              --listen-iscsi none) --port-file $OVT_DIR/ports
#                              --control-socket $OVT_DIR/ovgated.sock
#                              --log-level debug; waits (bounded) for the port
#                              file; exports OVT_ISCSI_PORT OVT_NBD_PORT OVT_PID
#                              OVT_CTL_SOCKET OVT_LOG (daemon stderr)
#   ovt_stop_daemon            SIGTERM to OVT_PID, wait up to 20 s, then SIGKILL;
#                              returns the daemon's exit status (0 = clean)
#   ovt_kill_daemon            SIGKILL to OVT_PID (crash simulation)
#   ovt_ctl JSON               one control-socket request; prints the response line
#   ovt_target IMAGE           prints the iSCSI target name of IMAGE
#   ovt_iscsi_url IMAGE [LUN]  prints iscsi://127.0.0.1:PORT/TARGET/LUN
#   ovt_nbd_url EXPORT         prints nbd://127.0.0.1:PORT/EXPORT
#   ovt_on_exit CMD            run CMD (a string) during cleanup, before the
#                              daemon is stopped
#   TAP: plan N, ok DESC, not_ok DESC, diag TEXT, ovt_check DESC CMD...
#        (runs CMD, prints ok/not ok), ovt_done (exit 1 if anything failed)
#
# Cleanup runs on EXIT, INT and TERM. Set OVT_KEEP=1 to keep OVT_DIR for
# debugging (its path is printed as a TAP comment).

: "${OVGATED:?OVGATED must point at the ovgated binary}"
: "${OVCTL:=}"

# nbdsh runs "python3" from PATH; a python3 that lacks libnbd's bindings
# (e.g. a pyenv one ahead of /usr/bin) would make it fail. Prefer the system
# interpreter then.
if ! python3 -c 'import nbd' >/dev/null 2>&1 && [ -x /usr/bin/python3 ] &&
    /usr/bin/python3 -c 'import nbd' >/dev/null 2>&1; then
    PATH="/usr/bin:$PATH"
    export PATH
fi

OVT_DIR=""
OVT_STORE=""
OVT_PID=""
OVT_ISCSI_PORT=""
OVT_NBD_PORT=""
OVT_CTL_SOCKET=""
OVT_LOG=""
OVT_FAILED=0
OVT_TESTNUM=0
OVT_EXIT_HOOKS=""
OVT_IQN_PREFIX="iqn.2026-11.org.ovgate"

plan() {
    echo "1..$1"
}

diag() {
    echo "# $*"
}

ok() {
    OVT_TESTNUM=$((OVT_TESTNUM + 1))
    echo "ok $OVT_TESTNUM - $*"
}

not_ok() {
    OVT_TESTNUM=$((OVT_TESTNUM + 1))
    OVT_FAILED=1
    echo "not ok $OVT_TESTNUM - $*"
}

ovt_check() {
    ovt_check_desc=$1
    shift
    # The command's own stdout goes to stderr: stdout is the TAP stream.
    if "$@" >&2; then
        ok "$ovt_check_desc"
    else
        not_ok "$ovt_check_desc"
    fi
}

ovt_done() {
    [ "$OVT_FAILED" -eq 0 ] || exit 1
    exit 0
}

ovt_require() {
    for ovt_tool in "$@"; do
        if ! command -v "$ovt_tool" >/dev/null 2>&1; then
            echo "1..0 # SKIP $ovt_tool is not installed"
            exit 77
        fi
    done
}

ovt_on_exit() {
    OVT_EXIT_HOOKS="$OVT_EXIT_HOOKS
$1"
}

ovt_cleanup() {
    ovt_status=$?
    trap - EXIT INT TERM
    if [ -n "$OVT_EXIT_HOOKS" ]; then
        eval "$OVT_EXIT_HOOKS" || true
    fi
    if [ -n "$OVT_PID" ] && kill -0 "$OVT_PID" 2>/dev/null; then
        ovt_stop_daemon >/dev/null 2>&1 || true
    fi
    if [ -n "$OVT_DIR" ] && [ -d "$OVT_DIR" ]; then
        if [ "${OVT_KEEP:-0}" = 1 ] || { [ "$ovt_status" -ne 0 ] && [ "$ovt_status" -ne 77 ]; }; then
            if [ -n "$OVT_LOG" ] && [ -s "$OVT_LOG" ]; then
                echo "# --- ovgated log (last 40 lines) ---"
                tail -n 40 "$OVT_LOG" | sed 's/^/# /'
            fi
        fi
        if [ "${OVT_KEEP:-0}" = 1 ]; then
            echo "# kept $OVT_DIR"
        else
            rm -rf "$OVT_DIR"
        fi
    fi
    exit "$ovt_status"
}
trap ovt_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ovt_init() {
    [ -n "$OVT_DIR" ] && return 0
    OVT_DIR=$(mktemp -d "${TMPDIR:-/tmp}/ovgate-test.XXXXXX") || exit 1
    OVT_STORE="$OVT_DIR/store"
    OVT_LOG="$OVT_DIR/ovgated.log"
    OVT_CTL_SOCKET="$OVT_DIR/ovgated.sock"
    export OVT_DIR OVT_STORE OVT_LOG OVT_CTL_SOCKET
    mkdir -p "$OVT_STORE"
    if [ -n "$OVCTL" ] && [ -x "$OVCTL" ]; then
        "$OVCTL" --store "$OVT_STORE" init >/dev/null || {
            echo "Bail out! ovctl init failed"
            exit 1
        }
    fi
}

ovt_ovctl() {
    ovt_init
    "$OVCTL" --store "$OVT_STORE" "$@"
}

ovt_make_image() {
    if [ "${3:-}" = auto ]; then
        ovt_ovctl image create "$1" --size "${2}M" --auto-enroll >/dev/null
    else
        ovt_ovctl image create "$1" --size "${2}M" >/dev/null
    fi
}

ovt_make_image_from() {
    if [ "${3:-}" = auto ]; then
        ovt_ovctl image create "$1" --from "$2" --auto-enroll >/dev/null
    else
        ovt_ovctl image create "$1" --from "$2" >/dev/null
    fi
}

ovt_add_client() {
    ovt_name=$1
    ovt_image=$2
    shift 2
    ovt_iqns=""
    for ovt_a in "$@"; do
        ovt_iqns="$ovt_iqns --iqn $ovt_a"
    done
    # shellcheck disable=SC2086
    ovt_ovctl client add "$ovt_name" --image "$ovt_image" $ovt_iqns >/dev/null
}

# Wait up to $1 seconds (fractions allowed) for the port file; fail early if
# the daemon died.
ovt_wait_ports() {
    ovt_deadline=$(($1 * 20))
    ovt_i=0
    while [ "$ovt_i" -lt "$ovt_deadline" ]; do
        if [ -s "$OVT_DIR/ports" ]; then
            return 0
        fi
        if ! kill -0 "$OVT_PID" 2>/dev/null; then
            echo "# ovgated exited before it was ready:"
            sed 's/^/# /' "$OVT_LOG"
            return 1
        fi
        sleep 0.05
        ovt_i=$((ovt_i + 1))
    done
    echo "# ovgated did not write its port file within $1 s"
    return 1
}

ovt_start_daemon() {
    ovt_init
    rm -f "$OVT_DIR/ports"
    # Default listeners unless the caller names its own for that protocol.
    ovt_listen_iscsi="--listen-iscsi=127.0.0.1:0"
    ovt_listen_nbd="--listen-nbd=127.0.0.1:0"
    for ovt_a in "$@"; do
        case "$ovt_a" in
        --listen-iscsi*) ovt_listen_iscsi="" ;;
        --listen-nbd*) ovt_listen_nbd="" ;;
        esac
    done
    # shellcheck disable=SC2086 # each is one word or empty
    "$OVGATED" --store "$OVT_STORE" $ovt_listen_iscsi $ovt_listen_nbd \
        --port-file "$OVT_DIR/ports" --control-socket "$OVT_CTL_SOCKET" \
        --log-level debug "$@" </dev/null 2>>"$OVT_LOG" >&2 &
    OVT_PID=$!
    export OVT_PID
    ovt_wait_ports "${OVT_START_TIMEOUT:-30}" || return 1
    OVT_ISCSI_PORT=$(awk '$1 == "iscsi" { n = split($2, a, ":"); print a[n]; exit }' "$OVT_DIR/ports")
    OVT_NBD_PORT=$(awk '$1 == "nbd" { n = split($2, a, ":"); print a[n]; exit }' "$OVT_DIR/ports")
    export OVT_ISCSI_PORT OVT_NBD_PORT
    return 0
}

ovt_stop_daemon() {
    [ -n "$OVT_PID" ] || return 0
    kill -TERM "$OVT_PID" 2>/dev/null || true
    ovt_i=0
    while kill -0 "$OVT_PID" 2>/dev/null && [ "$ovt_i" -lt 400 ]; do
        sleep 0.05
        ovt_i=$((ovt_i + 1))
    done
    if kill -0 "$OVT_PID" 2>/dev/null; then
        echo "# ovgated did not stop within 20 s of SIGTERM: SIGKILL"
        kill -KILL "$OVT_PID" 2>/dev/null || true
    fi
    ovt_rc=0
    wait "$OVT_PID" 2>/dev/null || ovt_rc=$?
    OVT_PID=""
    return "$ovt_rc"
}

ovt_kill_daemon() {
    [ -n "$OVT_PID" ] || return 0
    kill -KILL "$OVT_PID" 2>/dev/null || true
    wait "$OVT_PID" 2>/dev/null || true
    OVT_PID=""
}

ovt_ctl() {
    python3 - "$OVT_CTL_SOCKET" "$1" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(30)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\n")
buf = b""
while not buf.endswith(b"\n"):
    chunk = s.recv(65536)
    if not chunk:
        break
    buf += chunk
sys.stdout.write(buf.decode())
EOF
}

ovt_target() {
    echo "$OVT_IQN_PREFIX:$1"
}

ovt_iscsi_url() {
    echo "iscsi://127.0.0.1:$OVT_ISCSI_PORT/$(ovt_target "$1")/${2:-0}"
}

ovt_nbd_url() {
    echo "nbd://127.0.0.1:$OVT_NBD_PORT/$1"
}
