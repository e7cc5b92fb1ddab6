#!/bin/bash
# Two clients of one image, each on its own overlay: each reads only its own
# writes, the image export stays read-only and unchanged (sha256 of the
# generation file), and a client's writes survive a daemon restart.
. "$OVT_LIB"
. "$(dirname "$0")/nbd-lib.sh"
ovt_require nbdcopy qemu-img sha256sum cmp
nbdt_require_python
plan 11
ovt_init
nbdt_make_base "$OVT_DIR/base.raw" 16 4
ovt_make_image_from lab "$OVT_DIR/base.raw"
ovt_add_client pc1 lab
ovt_add_client pc2 lab
ovt_make_image lab2 8
ovt_start_daemon || exit 1
gen=$(nbdt_sha_gen lab 1)

"$NBDT_PY" - "$OVT_DIR" <<'PY'
import sys
d = sys.argv[1]
for name, byte in (("a", 0xa1), ("b", 0xb2)):
    with open(f"{d}/{name}.raw", "wb") as f:
        f.write(bytes([byte]) * (2 << 20))
PY
ovt_check "pc1 writes its pattern" nbdcopy "$OVT_DIR/a.raw" "$(ovt_nbd_url lab/pc1)"
ovt_check "pc2 writes another pattern" nbdcopy "$OVT_DIR/b.raw" "$(ovt_nbd_url lab/pc2)"
nbdcopy "$(ovt_nbd_url lab/pc1)" "$OVT_DIR/pc1.raw"
nbdcopy "$(ovt_nbd_url lab/pc2)" "$OVT_DIR/pc2.raw"
nbdcopy "$(ovt_nbd_url lab)" "$OVT_DIR/img.raw"
ovt_check "pc1 reads its own data" cmp -n 2097152 "$OVT_DIR/pc1.raw" "$OVT_DIR/a.raw"
ovt_check "pc2 reads its own data" cmp -n 2097152 "$OVT_DIR/pc2.raw" "$OVT_DIR/b.raw"
ovt_check "both read the base beyond what they wrote" \
    sh -c "cmp -i 2097152 '$OVT_DIR/pc1.raw' '$OVT_DIR/base.raw' &&
           cmp -i 2097152 '$OVT_DIR/pc2.raw' '$OVT_DIR/base.raw'"
ovt_check "the image export still reads the base" cmp "$OVT_DIR/img.raw" "$OVT_DIR/base.raw"
ovt_check "generation file unchanged" test "$(nbdt_sha_gen lab 1)" = "$gen"
ovt_stop_daemon
ovt_start_daemon || exit 1
nbdcopy "$(ovt_nbd_url lab/pc1)" "$OVT_DIR/pc1b.raw"
ovt_check "pc1's writes survive a daemon restart" cmp "$OVT_DIR/pc1.raw" "$OVT_DIR/pc1b.raw"
ovt_check "a client is not served under another image's name" \
    sh -c "! nbdinfo '$(ovt_nbd_url lab2/pc1)' >/dev/null 2>&1 &&
           nbdinfo '$(ovt_nbd_url lab2)' >/dev/null"
ovt_check "generation file still unchanged" test "$(nbdt_sha_gen lab 1)" = "$gen"
ovt_check "daemon stops cleanly" ovt_stop_daemon
ovt_done
