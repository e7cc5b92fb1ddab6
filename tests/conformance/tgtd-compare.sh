#!/bin/bash
# tgtd-compare.sh — run the same iscsi-test-cu command as
# run-iscsi-test-cu.sh against tgtd (tgt, a userspace iSCSI target) on this
# machine, for a side-by-side count. Manual (needs root and tgt); not part of
# any meson suite. Only the tgtd started here is stopped, by its PID.
#
# Usage: tgtd-compare.sh [FAMILY...]    (default: SCSI iSCSI)
# Prints the cu-results.py summary line per family.
set -u
command -v tgtd >/dev/null && command -v tgtadm >/dev/null && command -v iscsi-test-cu >/dev/null ||
    { echo "1..0 # SKIP tgt or iscsi-test-cu missing"; exit 77; }
here=$(cd "$(dirname "$0")" && pwd)
families=${*:-SCSI iSCSI}
dir=$(mktemp -d /tmp/tgtd-compare.XXXXXX)
cport=$((20000 + RANDOM % 20000))
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
iqn=iqn.2026-11.org.ovgate:tgtd-compare
I1=iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test
I2=iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test-2
pid=""

cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        # tgtd ignores SIGTERM while targets exist (MACHINE-NOTES)
        tgtadm -C "$cport" --op update --mode sys --name State -v offline >/dev/null 2>&1
        tgtadm -C "$cport" --op delete --mode target --tid 1 --force >/dev/null 2>&1
        kill "$pid" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    fi
    rm -rf "$dir"
}
trap cleanup EXIT

truncate -s 128M "$dir/disk.img"
tgtd -f -C "$cport" --iscsi "portal=127.0.0.1:$port" >"$dir/tgtd.log" 2>&1 &
pid=$!
for _ in $(seq 50); do tgtadm -C "$cport" --op show --mode target >/dev/null 2>&1 && break; sleep 0.1; done
tgtadm -C "$cport" --op new --mode target --tid 1 -T "$iqn" || exit 1
tgtadm -C "$cport" --op new --mode logicalunit --tid 1 --lun 1 -b "$dir/disk.img" || exit 1
tgtadm -C "$cport" --op bind --mode target --tid 1 -I ALL || exit 1
url="iscsi://127.0.0.1:$port/$iqn/1"
for fam in $families; do
    timeout 900 iscsi-test-cu --initiator-name "$I1" --initiator-name-2 "$I2" \
        -t "$fam" --dataloss --allow-sanitize "$url" "$url" >"$dir/cu-$fam.txt" 2>&1
    if [ -n "${OVT_CU_OUT:-}" ]; then
        mkdir -p "$OVT_CU_OUT" && cp "$dir/cu-$fam.txt" "$OVT_CU_OUT/tgtd-cu-$fam.txt"
    fi
    python3 "$here/cu-results.py" "$dir/cu-$fam.txt" --family "$fam" | tail -1
done
