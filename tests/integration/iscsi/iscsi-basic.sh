#!/bin/bash
# iscsi-basic.sh — the iSCSI target with real clients: discovery (iscsi-ls),
# INQUIRY (iscsi-inq), an unknown initiator refused, a patterned image written
# and read back byte-exact through qemu-img, and two initiators isolated from
# each other while the golden image generation stays unchanged.
set -u
. "$OVT_LIB"
ovt_require iscsi-ls iscsi-inq qemu-img sha256sum python3
plan 16

A=iqn.2026-11.test.basic:pc-a
B=iqn.2026-11.test.basic:pc-b
ovt_init
# a golden image with a known pattern, so "reads back the base" is checkable
python3 -c 'import sys; sys.stdout.buffer.write(bytes((i * 7 + 3) & 0xff for i in range(1 << 20)) * 16)' \
    >"$OVT_DIR/golden.raw"
ovt_make_image_from lab "$OVT_DIR/golden.raw"
ovt_make_image other 8
ovt_add_client pc-a lab "$A"
ovt_add_client pc-b lab "$B"
gen_file=$(ls "$OVT_STORE"/images/lab/gen/*.raw | head -1)
gen_sum_before=$(sha256sum <"$gen_file")
ovt_start_daemon || { echo "Bail out! ovgated did not start"; exit 1; }
T=$(ovt_target lab)
P=127.0.0.1:$OVT_ISCSI_PORT

fails() {
    ! "$@"
}
export OVT_HERE
OVT_HERE=$(cd "$(dirname "$0")" && pwd)

opts() { # INITIATOR -> qemu --image-opts string for the lab target
    echo "driver=raw,file.driver=iscsi,file.transport=tcp,file.portal=$P,file.target=$T,file.lun=0,file.initiator-name=$1"
}

# 1. discovery: SendTargets=All lists the image pc-a may log in to, with the
# portal we listen on, and not the image it is no client of
out=$(timeout 20 iscsi-ls -i "$A" "iscsi://$P" 2>&1)
diag "$out"
ovt_check "discovery lists $T at the listening portal" \
    grep -qx "Target:$T Portal:$P,1" <<<"$out"
ovt_check "discovery does not list an image pc-a is no client of" \
    fails grep -q "Target:$(ovt_target other) " <<<"$out"

# 2. INQUIRY through a registered initiator
out=$(timeout 20 iscsi-inq -i "$A" "$(ovt_iscsi_url lab)" 2>&1)
ovt_check "iscsi-inq as a registered initiator" grep -q "Product:" <<<"$out"

# 3. unknown initiator: login refused with Authorization failure (0x0202)
out=$(timeout 20 iscsi-inq -i iqn.2026-11.test.basic:stranger "$(ovt_iscsi_url lab)" 2>&1)
rc=$?
diag "$out"
ovt_check "unknown initiator is refused" test "$rc" -ne 0
ovt_check "... with Authorization failure" grep -qi "authorization" <<<"$out$(cat "$OVT_LOG")"

# 4. write a patterned 4 MiB image through the target, read it back byte-exact
python3 -c 'import os,sys; sys.stdout.buffer.write(os.urandom(4 << 20))' >"$OVT_DIR/pattern-a.raw"
python3 -c 'import sys; sys.stdout.buffer.write(b"client-b" * (512 << 10))' >"$OVT_DIR/pattern-b.raw"
ovt_check "qemu-img convert writes pattern A through pc-a" \
    timeout 60 qemu-img convert -n -f raw --target-image-opts "$OVT_DIR/pattern-a.raw" "$(opts "$A")"
ovt_check "qemu-img convert writes pattern B through pc-b" \
    timeout 60 qemu-img convert -n -f raw --target-image-opts "$OVT_DIR/pattern-b.raw" "$(opts "$B")"
# compare the first 4 MiB of each client's disk with what it wrote
read_back() { # INITIATOR FILE
    timeout 60 qemu-img convert --image-opts "$(opts "$1")" -O raw "$2.full" &&
        head -c $((4 << 20)) "$2.full" >"$2" && rm -f "$2.full"
}
read_back "$A" "$OVT_DIR/read-a.raw"
read_back "$B" "$OVT_DIR/read-b.raw"
ovt_check "pc-a reads back exactly its own data" cmp -s "$OVT_DIR/pattern-a.raw" "$OVT_DIR/read-a.raw"
ovt_check "pc-b reads back exactly its own data" cmp -s "$OVT_DIR/pattern-b.raw" "$OVT_DIR/read-b.raw"
# beyond what it wrote each client still sees the golden image
{ cat "$OVT_DIR/pattern-a.raw"; tail -c +$(((4 << 20) + 1)) "$OVT_DIR/golden.raw"; } >"$OVT_DIR/expect-a.raw"
ovt_check "qemu-img compare: pc-a's disk = its writes + the golden image" \
    timeout 60 qemu-img compare --image-opts "driver=raw,file.filename=$OVT_DIR/expect-a.raw" "$(opts "$A")"
# 5. header digests (CRC32C) negotiated and used both ways
ovt_check "qemu-img compare with HeaderDigest=CRC32C" \
    timeout 60 qemu-img compare --image-opts "driver=raw,file.filename=$OVT_DIR/expect-a.raw" \
    "$(opts "$A"),file.header-digest=crc32c"
ovt_check "iscsi-inq with HeaderDigest=CRC32C" \
    timeout 20 iscsi-inq -i "$A" "$(ovt_iscsi_url lab)?header_digest=crc32c"
# 6. the registry's kick: reset --force of a connected client ends its session
python3 - "$OVT_ISCSI_PORT" "$T" "$A" >"$OVT_DIR/kick.out" 2>&1 <<'PYEOF' &
import os, sys
sys.path.insert(0, os.environ["OVT_HERE"])
import iscsi_raw as ir
c = ir.Conn(int(sys.argv[1]))
print("login", c.login(sys.argv[3], sys.argv[2])[0])
c.tur()
print("closed", c.closed(timeout=20))
PYEOF
kick_pid=$!
for _ in $(seq 50); do grep -q login "$OVT_DIR/kick.out" 2>/dev/null && break; sleep 0.1; done
ovt_check "reset without --force is refused while pc-a is connected" \
    fails ovt_ovctl --socket "$OVT_CTL_SOCKET" reset pc-a
ovt_ovctl --socket "$OVT_CTL_SOCKET" reset pc-a --force >/dev/null
wait "$kick_pid"
ovt_check "reset --force ends pc-a's iSCSI session" grep -qx "closed True" "$OVT_DIR/kick.out"
ovt_check "the golden generation file is unchanged (sha256)" \
    test "$(sha256sum <"$gen_file")" = "$gen_sum_before"
ovt_check "ovgated still runs" kill -0 "$OVT_PID"
ovt_done
