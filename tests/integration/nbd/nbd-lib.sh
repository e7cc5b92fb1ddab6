# nbd-lib.sh — helpers for the NBD integration tests (sourced after
# ovgate-test-lib.sh).

# A python3 that can import libnbd's bindings (python3-libnbd); skip if none.
nbdt_require_python() {
    NBDT_PY=""
    for p in python3 /usr/bin/python3; do
        if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import nbd' 2>/dev/null; then
            NBDT_PY=$p
            break
        fi
    done
    if [ -z "$NBDT_PY" ]; then
        echo "1..0 # SKIP python3-libnbd is not installed"
        exit 77
    fi
    export NBDT_PY
}

# nbdt_make_base FILE SIZE_MIB DATA_MIB: DATA_MIB of a deterministic pattern,
# then a hole to SIZE_MIB.
nbdt_make_base() {
    "${NBDT_PY:-python3}" - "$1" "$2" "$3" <<'PY'
import sys
path, size, data = sys.argv[1], int(sys.argv[2]) << 20, int(sys.argv[3]) << 20
block = bytes((i * 7 + 3) & 0xff for i in range(65536))
with open(path, "wb") as f:
    for off in range(0, data, 65536):
        f.write(bytes([(off >> 16) & 0xff]) + block[1:])
    f.truncate(size)
PY
}

# sha256 of generation N of IMAGE in the store.
nbdt_sha_gen() {
    sha256sum "$OVT_STORE/images/$1/gen/$2.raw" | cut -d' ' -f1
}

# Run a command with its output out of the TAP stream.
nbdt_quiet() {
    "$@" >/dev/null 2>&1
}

# Stop the daemon; a non-zero exit (a sanitizer report, a failed final
# flush) fails the whole test.
nbdt_stop_clean() {
    ovt_stop_daemon
    nbdt_rc=$?
    if [ "$nbdt_rc" -ne 0 ]; then
        echo "Bail out! ovgated exited with status $nbdt_rc"
        exit 1
    fi
}
