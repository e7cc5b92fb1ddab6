#!/bin/bash
# ovgated --serve-stdin nbd: one NBD connection on the socket at fd 0, as
# libnbd's connect_command (and inetd-style activation) provides it.
. "$OVT_LIB"
. "$(dirname "$0")/nbd-lib.sh"
nbdt_require_python
plan 3
ovt_init
nbdt_make_base "$OVT_DIR/base.raw" 8 2
ovt_make_image_from lab "$OVT_DIR/base.raw"
ovt_add_client pc1 lab
out=$("$NBDT_PY" - "$OVGATED" "$OVT_STORE" "$OVT_DIR/base.raw" 2>&1 <<'PY'
import sys
import nbd
ovgated, store, base = sys.argv[1:4]
cmd = [ovgated, "--store", store, "--serve-stdin", "nbd", "--log-level", "warning"]
h = nbd.NBD()
h.set_export_name("lab/pc1")
h.connect_command(cmd)
ok = h.pread(65536, 0) == open(base, "rb").read(65536)
h.pwrite(b"over-stdin", 0, nbd.CMD_FLAG_FUA)
h.shutdown()
h = nbd.NBD()
h.set_export_name("lab/pc1")
h.connect_command(cmd)
print("base-ok" if ok else "base-bad", "persist-ok" if h.pread(10, 0) == b"over-stdin" else "persist-bad")
h.shutdown()
PY
)
sed 's/^/# /' <<<"$out"
ovt_check "one connection on stdin reads the client disk" grep -q base-ok <<<"$out"
ovt_check "its write is there for the next one" grep -q persist-ok <<<"$out"
# each ovgated served its connection and exited: none is left on this store
if pgrep -f -- "--store $OVT_STORE --serve-stdi[n]" >/dev/null; then
    not_ok "nothing is left running"
else
    ok "nothing is left running"
fi
ovt_done
