#!/bin/bash
# One disk, two protocols: a pattern written over iSCSI (qemu-img) reads
# back byte-exact over NBD (nbdcopy, qemu-img compare), and the reverse;
# while NBD holds the client's disk an iSCSI login for it is refused.
. "$OVT_LIB"
. "$(dirname "$0")/nbd-lib.sh"
ovt_require qemu-img nbdcopy nbdinfo iscsi-inq cmp sha256sum
nbdt_require_python
if ! qemu-img --help 2>/dev/null | grep -q iscsi; then
    echo "1..0 # SKIP qemu-img has no iscsi driver (qemu-block-extra)"
    exit 77
fi
plan 9
IQN=iqn.2026-11.test.cross:pc1
ovt_init
nbdt_make_base "$OVT_DIR/base.raw" 16 4
ovt_make_image_from lab "$OVT_DIR/base.raw"
ovt_add_client pc1 lab "$IQN"
ovt_start_daemon || exit 1
gen=$(nbdt_sha_gen lab 1)
ISCSI="driver=raw,file.driver=iscsi,file.transport=tcp,file.portal=127.0.0.1:$OVT_ISCSI_PORT,file.target=$(ovt_target lab),file.lun=0,file.initiator-name=$IQN"
NBD=$(ovt_nbd_url lab/pc1)

# Wait (bounded) until the client's disk is free for NBD again: the iSCSI
# session of the qemu-img that just exited may still be unwinding.
wait_nbd_free() {
    for _ in $(seq 1 50); do
        nbdinfo "$NBD" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}

"$NBDT_PY" -c 'import os, sys; sys.stdout.buffer.write(os.urandom(6 << 20))' >"$OVT_DIR/a.raw"
ovt_check "qemu-img writes 6 MiB over iSCSI" \
    timeout 60 qemu-img convert -n -f raw --target-image-opts "$OVT_DIR/a.raw" "$ISCSI"
wait_nbd_free
ovt_check "NBD reads the iSCSI writes back byte-exact (nbdcopy)" \
    sh -c "nbdcopy '$NBD' '$OVT_DIR/out.raw' && cmp -n $((6 << 20)) '$OVT_DIR/a.raw' '$OVT_DIR/out.raw' &&
           cmp -i $((6 << 20)) '$OVT_DIR/base.raw' '$OVT_DIR/out.raw'"
ovt_check "qemu-img compare over nbd:// agrees" \
    sh -c "head -c $((6 << 20)) '$OVT_DIR/a.raw' >'$OVT_DIR/expect.raw' &&
           tail -c +$(((6 << 20) + 1)) '$OVT_DIR/base.raw' >>'$OVT_DIR/expect.raw' &&
           qemu-img compare -q -f raw -F raw '$OVT_DIR/expect.raw' '$NBD'"

"$NBDT_PY" -c 'import sys; sys.stdout.buffer.write(b"over-nbd" * (128 << 10))' >"$OVT_DIR/b.raw"
ovt_check "nbdcopy writes 1 MiB over NBD" nbdcopy "$OVT_DIR/b.raw" "$NBD"
ovt_check "iSCSI reads the NBD writes back byte-exact" \
    sh -c "timeout 60 qemu-img convert --image-opts '$ISCSI' -O raw '$OVT_DIR/iscsi.raw' &&
           cmp -n $((1 << 20)) '$OVT_DIR/b.raw' '$OVT_DIR/iscsi.raw'"

# Large iSCSI reads are sent from a mapping of the disk's pages (base
# file, overlay file, zero pages side by side in one area): scatter
# overlay data, zeroed and trimmed runs over base data, then the whole
# disk read over iSCSI (qemu-img: large reads) must equal NBD's copy.
wait_nbd_free
"$NBDT_PY" - "$OVT_NBD_PORT" <<'PY'
import sys
import nbd
h = nbd.NBD()
h.set_export_name("lab/pc1")
h.connect_tcp("127.0.0.1", sys.argv[1])
mib = 1 << 20
for i, off in enumerate([2 * mib + 4096, 2 * mib + 65536, 7 * mib, 7 * mib + 300000 // 4096 * 4096,
                         9 * mib + 12288, 15 * mib - 8192]):
    h.pwrite(bytes([0x40 + i]) * 4096 * (i + 1), off)
h.zero(256 << 10, 3 * mib + 8192)
h.trim(128 << 10, 8 * mib)
h.zero(4096, 10 * mib + 4096)
h.flush()
h.shutdown()
PY
ovt_check "a mixed disk reads the same over iSCSI (large reads) as over NBD" \
    sh -c "nbdcopy '$NBD' '$OVT_DIR/mixed-nbd.raw' &&
           timeout 60 qemu-img convert --image-opts '$ISCSI' -O raw '$OVT_DIR/mixed-iscsi.raw' &&
           cmp '$OVT_DIR/mixed-nbd.raw' '$OVT_DIR/mixed-iscsi.raw' &&
           ! cmp -s '$OVT_DIR/mixed-nbd.raw' '$OVT_DIR/base.raw'"

# Hold the disk over NBD, then try iSCSI.
wait_nbd_free
"$NBDT_PY" - "$OVT_NBD_PORT" "$OVT_DIR/holding" <<'PY' &
import os, sys, time
import nbd
h = nbd.NBD()
h.set_export_name("lab/pc1")
h.connect_tcp("127.0.0.1", sys.argv[1])
open(sys.argv[2], "w").close()
for _ in range(200):  # at most 20 s
    if not os.path.exists(sys.argv[2]):
        break
    time.sleep(0.1)
h.shutdown()
PY
holder=$!
for _ in $(seq 1 50); do [ -e "$OVT_DIR/holding" ] && break; sleep 0.1; done
ovt_check "iSCSI login for a client held over NBD is refused" \
    sh -c "! timeout 20 iscsi-inq -i '$IQN' '$(ovt_iscsi_url lab)' >/dev/null 2>&1"
rm -f "$OVT_DIR/holding"
wait "$holder"
ovt_check "generation file unchanged" test "$(nbdt_sha_gen lab 1)" = "$gen"
ovt_check "daemon stops cleanly" ovt_stop_daemon
ovt_done
