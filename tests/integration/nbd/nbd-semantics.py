"""NBD command semantics against a running ovgated (TAP).

usage: nbd-semantics.py PORT BASE.raw
Exports: lab (read-only image) and lab/pc1 (client disk). BASE.raw is the
image: 4 MiB of pattern, then a hole to the end (16 MiB).
"""
import importlib.util
import os
import sys

import nbd

spec = importlib.util.spec_from_file_location(
    "nbdtap", os.path.join(os.path.dirname(os.path.abspath(__file__)), "nbd-tap.py"))
t = importlib.util.module_from_spec(spec)
spec.loader.exec_module(t)

port = int(sys.argv[1])
base = open(sys.argv[2], "rb").read()
SIZE = len(base)
MiB = 1 << 20
HOLE = nbd.STATE_HOLE | nbd.STATE_ZERO

h = t.connect(port, "lab/pc1")
t.ok(h.get_size() == SIZE, "client export has the image's size")
t.ok(not h.is_read_only() and h.can_fua() and h.can_trim() and h.can_zero()
     and h.can_fast_zero() and h.can_flush() and h.can_cache(),
     "client export: writable, FUA, trim, zero, fast zero, flush, cache")
t.ok(not h.can_multi_conn(), "client export does not advertise multi-conn")
t.ok(h.pread(SIZE, 0) == base, "fresh client disk reads the base image")

data = bytes((i * 13 + 7) & 0xff for i in range(65536))
h.pwrite(data, MiB, nbd.CMD_FLAG_FUA)
t.ok(h.pread(65536, MiB) == data, "FUA write reads back")
h.pwrite(data[:1000], MiB + 70000)
t.ok(h.pread(1000, MiB + 70000) == data[:1000], "unaligned write reads back")
t.ok(t.nbd_errno(h.flush) is None, "flush succeeds")

h.trim(128 * 1024, 0)
t.ok(h.pread(128 * 1024, 0) == bytes(128 * 1024), "trimmed range reads as zeros, not base bytes")
x = t.extents(h, 256 * 1024, 0)
t.ok(x["base:allocation"][0] == (128 * 1024, HOLE),
     "base:allocation: trimmed range is hole+zero")
t.ok(x["ovgate:overlay"][0] == (128 * 1024, 3), "ovgate:overlay: trimmed range is overlay+zero (3)")
t.ok(x["ovgate:overlay"][1][1] == 0, "ovgate:overlay: untouched range comes from the base (0)")

x = t.extents(h, 65536, MiB)
t.ok(x["ovgate:overlay"][0] == (65536, 1), "ovgate:overlay: written range is overlay data (1)")
t.ok(x["base:allocation"][0][1] == 0, "base:allocation: written range is data")

h.zero(65536, 2 * MiB, nbd.CMD_FLAG_NO_HOLE)
t.ok(h.pread(65536, 2 * MiB) == bytes(65536), "write zeroes with NO_HOLE reads zeros")
h.zero(MiB, 3 * MiB, nbd.CMD_FLAG_FAST_ZERO)
t.ok(h.pread(MiB, 3 * MiB) == bytes(MiB), "write zeroes with FAST_ZERO succeeds and reads zeros")
h.zero(100, 2 * MiB + 65536 + 50)
t.ok(h.pread(200, 2 * MiB + 65536) == base[2 * MiB + 65536:2 * MiB + 65586] + bytes(100)
     + base[2 * MiB + 65686:2 * MiB + 65736], "unaligned write zeroes touches only its bytes")

x = t.extents(h, MiB, 8 * MiB)
t.ok(x["base:allocation"] == [(MiB, HOLE)], "base:allocation: base image hole is hole+zero")
t.ok(x["ovgate:overlay"] == [(MiB, 0)], "ovgate:overlay: base image hole comes from the base")
x = t.extents(h, 8 * MiB, 0, nbd.CMD_FLAG_REQ_ONE)
t.ok(all(len(v) == 1 for v in x.values()) and len(x) == 2, "REQ_ONE: one extent per context")

t.ok(t.nbd_errno(h.pread, 4096, SIZE - 100) == "EINVAL", "read past the end: EINVAL")
t.ok(t.nbd_errno(h.pwrite, bytes(4096), SIZE - 100) == "ENOSPC", "write past the end: ENOSPC")
t.ok(t.nbd_errno(h.trim, 4096, SIZE) == "ENOSPC", "trim past the end: ENOSPC")
t.ok(t.nbd_errno(h.block_status, 4096, SIZE, lambda *a: 0) == "EINVAL",
     "block status past the end: EINVAL")
t.ok(t.nbd_errno(h.pread, 0, 0) == "EINVAL", "zero-length read: EINVAL")
t.ok(h.pread(65536, MiB) == data, "connection still usable after errors")
t.ok(t.nbd_errno(h.cache, 4 * MiB, 0) is None, "cache (prefetch) succeeds")

chunks = []
buf = h.pread_structured(512 * 1024, 0, lambda sub, off, st, err: chunks.append(st) or 0)
t.ok(nbd.READ_HOLE in chunks and nbd.READ_DATA in chunks and buf[:128 * 1024] == bytes(128 * 1024),
     "structured read sends the trimmed range as a hole chunk")
chunks = []
h.pread_structured(512 * 1024, 0, lambda sub, off, st, err: chunks.append(st) or 0,
                   nbd.CMD_FLAG_DF)
t.ok(chunks == [nbd.READ_DATA], "DF read: a single data chunk")
h.shutdown()

h = t.connect(port, "lab/pc1", structured=False, meta=False)
t.ok(h.pread(65536, MiB) == data, "writes persist across connections; simple replies work")
t.ok(not h.can_df(), "no DF without structured replies")
h.shutdown()

r = t.connect(port, "lab")
t.ok(r.is_read_only() and r.can_multi_conn(), "image export: read-only, multi-conn")
t.ok(t.nbd_errno(r.pwrite, bytes(512), 0) == "EPERM", "write to the image export: EPERM")
t.ok(t.nbd_errno(r.trim, 512, 0) == "EPERM", "trim on the image export: EPERM")
t.ok(t.nbd_errno(r.zero, 512, 0) == "EPERM", "write zeroes on the image export: EPERM")
t.ok(r.pread(SIZE, 0) == base, "image export unchanged by the client's writes")
t.ok(t.nbd_errno(r.flush) is None, "flush on the image export succeeds")
r.shutdown()

try:
    t.connect(port, "lab/nobody")
    t.ok(False, "unknown client export refused")
except nbd.Error as e:
    t.ok(True, "unknown client export refused")
try:
    t.connect(port, "nope")
    t.ok(False, "unknown image export refused")
except nbd.Error as e:
    t.ok(True, "unknown image export refused")

o = t.connect(port, "", opt_mode=True)
names = []
o.opt_list(lambda n, d: names.append((n, d)) or 0)
t.ok([n for n, d in names] == ["lab"], "NBD_OPT_LIST names the image export only")
o.set_export_name("lab/pc1")
ctxs = []
o.opt_list_meta_context(lambda c: ctxs.append(c) or 0)
t.ok(sorted(ctxs) == ["base:allocation", "ovgate:overlay"], "LIST_META_CONTEXT offers both contexts")
o.opt_abort()
t.done()
