#!/bin/bash
# Real NBD clients against ovgated: nbdinfo (export info, --list, --map for
# base:allocation and ovgate:overlay), nbdcopy in and out byte-exact, and
# qemu-img convert/compare over nbd:// URLs. The generation file must not
# change.
. "$OVT_LIB"
. "$(dirname "$0")/nbd-lib.sh"
ovt_require nbdinfo nbdcopy qemu-img sha256sum cmp
nbdt_require_python
plan 17
ovt_init
nbdt_make_base "$OVT_DIR/base.raw" 32 8
ovt_make_image_from lab "$OVT_DIR/base.raw"
ovt_add_client pc1 lab
ovt_start_daemon || exit 1
gen=$(nbdt_sha_gen lab 1)
IMG=$(ovt_nbd_url lab)
PC1=$(ovt_nbd_url lab/pc1)

info=$(nbdinfo "$IMG" 2>&1)
ovt_check "nbdinfo: image size" grep -q 'export-size: 33554432' <<<"$info"
ovt_check "nbdinfo: image export is read-only" grep -q 'is_read_only: true' <<<"$info"
ovt_check "nbdinfo: image export can multi-conn" grep -q 'can_multi_conn: true' <<<"$info"
info=$(nbdinfo "$PC1" 2>&1)
ovt_check "nbdinfo: client export is writable, no multi-conn" \
    grep -qz 'can_multi_conn: false.*can_trim: true.*can_zero: true' <<<"$info"
ovt_check "nbdinfo --list: names the image" \
    grep -q 'export="lab"' <<<"$(nbdinfo --list "nbd://127.0.0.1:$OVT_NBD_PORT" 2>&1)"

map=$(nbdinfo --map "$IMG" 2>&1)
sed "s/^/# /" <<<"$map"
ovt_check "nbdinfo --map: data then the base's hole" \
    test "$(awk '{print $1, $2, $3}' <<<"$map")" = "$(printf '0 8388608 0\n8388608 25165824 3')"

# A new pattern written through nbdcopy: 12 MiB of data, zeros after.
nbdt_make_base "$OVT_DIR/new.raw" 32 12
"$NBDT_PY" - "$OVT_DIR/new.raw" <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:  # make it differ from the base everywhere
    for off in range(0, 12 << 20, 1 << 20):
        f.seek(off)
        f.write(b"ovgate-nbd-%d" % off)
PY
ovt_check "nbdcopy: patterned image into the client export" nbdcopy "$OVT_DIR/new.raw" "$PC1"
ovt_check "nbdcopy: client export out again" nbdcopy "$PC1" "$OVT_DIR/out.raw"
ovt_check "nbdcopy round trip is byte-exact" cmp "$OVT_DIR/new.raw" "$OVT_DIR/out.raw"
map=$(nbdinfo --map=ovgate:overlay "$PC1" 2>&1)
sed "s/^/# /" <<<"$map"
ovt_check "nbdinfo --map=ovgate:overlay: the copied data lives in the overlay" \
    awk '$1 == 0 && $3 % 2 == 1 { found = 1 } END { exit !found }' <<<"$map"
ovt_check "qemu-img compare: file vs nbd:// client export" \
    nbdt_quiet qemu-img compare -f raw -F raw "$OVT_DIR/new.raw" "$PC1"
ovt_check "qemu-img compare: base vs nbd:// image export" \
    nbdt_quiet qemu-img compare -f raw -F raw "$OVT_DIR/base.raw" "$IMG"
ovt_check "qemu-img convert from nbd:// image export" \
    qemu-img convert -f raw -O raw "$IMG" "$OVT_DIR/img-out.raw"
ovt_check "qemu-img convert output equals the base" cmp "$OVT_DIR/base.raw" "$OVT_DIR/img-out.raw"
ovt_check "qemu-img convert into nbd:// client export, compare" \
    sh -c "qemu-img convert -n -f raw -O raw '$OVT_DIR/base.raw' '$PC1' &&
           qemu-img compare -q -f raw -F raw '$OVT_DIR/base.raw' '$PC1'"
ovt_check "generation file unchanged" test "$(nbdt_sha_gen lab 1)" = "$gen"
ovt_check "daemon stops cleanly" ovt_stop_daemon
ovt_done
