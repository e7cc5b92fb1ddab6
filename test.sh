#!/bin/sh
# ./test.sh — build ovgate and run the whole test suite, exactly as CI does.
#
# On a fresh Debian 12 machine (as root, or with sudo) this installs the
# Debian packages it needs first (contrib/dev/install-deps.sh). Then:
#   1. gcc build, warnings are errors: every suite but "slow"
#      (unit, crash, fuzz corpus replay, cli, integration, conformance, e2e);
#   2. clang build with AddressSanitizer + UndefinedBehaviorSanitizer and
#      libFuzzer: unit, crash, cli, integration, conformance, and a short
#      fuzzing run of every harness.
# Build trees live in _build/. The last line says "N passed, N failed, N skipped".
#
# Environment: OVGATE_SKIP_DEPS=1 skips the package step; OVGATE_TEST_CONFIGS
# picks configurations ("gcc asan", default both); extra arguments are passed
# to every `meson test` (e.g. --suite unit).
set -eu
cd "$(dirname "$0")"
top=$(pwd)
# Debian's own python3 first: nbdsh and the libnbd bindings live there, not in
# a pyenv or venv interpreter that may shadow it on PATH.
export PATH="/usr/sbin:/usr/bin:/sbin:/bin:$PATH"

[ "${OVGATE_SKIP_DEPS:-0}" = 1 ] || ./contrib/dev/install-deps.sh

configs=${OVGATE_TEST_CONFIGS:-gcc asan}
summary="$top/_build/test-summary.txt"
mkdir -p _build
: > "$summary"
status=0

setup() { # dir, meson args...
    dir=$1; shift
    if [ -f "$dir/build.ninja" ]; then
        meson setup --reconfigure "$dir" "$@" >/dev/null
    else
        meson setup "$dir" "$@"
    fi
}

run_suites() { # dir, meson test args...
    dir=$1; shift
    rc=0
    meson test -C "$dir" --print-errorlogs --num-processes 2 "$@" || rc=$?
    python3 "$top/tests/summarize-testlog.py" "$dir/meson-logs/testlog.json" >> "$summary"
    [ $rc -eq 0 ] || status=1
}

for c in $configs; do
    case $c in
    gcc)
        CC=gcc setup _build/gcc -Dwerror=true -Dbuildtype=debugoptimized
        meson compile -C _build/gcc
        run_suites _build/gcc --no-suite slow "$@"
        ;;
    asan)
        CC=clang setup _build/asan -Dwerror=true -Dbuildtype=debug \
            -Db_sanitize=address,undefined -Db_lundef=false -Dfuzz=true -De2e=false
        meson compile -C _build/asan
        ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
        UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
            run_suites _build/asan --no-suite slow --no-suite e2e "$@"
        ;;
    *) echo "test.sh: unknown configuration '$c'" >&2; exit 2 ;;
    esac
done

echo
echo "Per configuration:"
cat "$summary"
python3 "$top/tests/summarize-testlog.py" --total "$summary"
exit $status
