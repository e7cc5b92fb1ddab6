#!/bin/sh
# run-golden.sh SCRIPT EXPECTED — run one ovctl golden test.
#
# SCRIPT (bash) runs in a fresh temporary directory ($CLI_TMP, also its cwd)
# with $CLI_LIB sourced for helpers; its stdout and stderr together are
# normalised (the temporary path -> TMP, UUIDs -> UUID, times -> TIME,
# on-disk sizes -> N, random names of STORE/tmp entries -> NAME-XXXXXX) and compared with EXPECTED. Exit 0 when they match,
# 1 with a diff otherwise, 77 (skip) when SCRIPT exits 77. The temporary
# directory is always removed.
# Set CLI_UPDATE=1 to rewrite EXPECTED from the actual output.
set -u
script=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
expected=$2
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ovctl-cli.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

work="$tmp/work"
export LC_ALL=C.UTF-8 # fixed message catalogue and number format
mkdir "$work" || exit 1
(cd "$work" && CLI_TMP="$work" bash "$script") > "$tmp/output" 2>&1
rc=$?
if [ "$rc" -eq 77 ]; then
    echo "$(basename "$script"): skipped (a tool it needs is missing)"
    exit 77
fi
echo "[script exit $rc]" >> "$tmp/output"

sed -E \
    -e "s#$work#TMP#g" \
    -e 's/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/UUID/g' \
    -e 's/^(image|commit|client|removed)-[A-Za-z0-9]{6,8}$/\1-XXXXXX/' \
    -e 's#(/tmp/(image|commit|client|removed))-[A-Za-z0-9]{6,8}#\1-XXXXXX#g' \
    -e 's/[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z/TIME/g' \
    -e 's/"created" : [0-9]+/"created" : TIME/' \
    -e 's/(on disk: +).*/\1N/' \
    -e 's/(allocated: +).*/\1N/' \
    -e 's/"file_bytes" : [0-9]+/"file_bytes" : N/' \
    -e 's/generation ([0-9]+) \([0-9]+ bytes\)$/generation \1 (N bytes)/' \
    "$tmp/output" > "$tmp/actual"

if [ "${CLI_UPDATE:-0}" = 1 ]; then
    cp "$tmp/actual" "$expected"
    exit 0
fi
if diff -u "$expected" "$tmp/actual"; then
    exit 0
fi
echo "$(basename "$script"): output differs from $(basename "$expected") (see diff above)"
exit 1
