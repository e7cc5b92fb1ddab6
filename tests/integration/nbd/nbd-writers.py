"""One writer per overlay over NBD (TAP).

usage: nbd-writers.py PORT MODE
MODE "refuse": a second connection to lab/pc1 is refused while the first
lives, and accepted right after it ends. MODE "replace" (the client has
nbd-replace-stale): the second connection takes over and the first is ended.
"""
import importlib.util
import os
import sys

import nbd

spec = importlib.util.spec_from_file_location(
    "nbdtap", os.path.join(os.path.dirname(os.path.abspath(__file__)), "nbd-tap.py"))
t = importlib.util.module_from_spec(spec)
spec.loader.exec_module(t)
port, mode = int(sys.argv[1]), sys.argv[2]

h1 = t.connect(port, "lab/pc1")
h1.pwrite(b"first-writer", 0, nbd.CMD_FLAG_FUA)
if mode == "refuse":
    try:
        t.connect(port, "lab/pc1")
        t.ok(False, "second connection to the same client export is refused")
    except nbd.Error as e:
        t.diag(e.string)  # the message the client sees
        t.ok("policy" in e.string,
             "second connection to the same client export is refused")
    t.ok(h1.pread(12, 0) == b"first-writer", "the first connection keeps working")
    h1.shutdown()
    del h1
    h2 = t.connect(port, "lab/pc1")
    t.ok(h2.pread(12, 0) == b"first-writer", "reconnecting right after a disconnect is accepted")
    h2.shutdown()
else:
    h2 = t.connect(port, "lab/pc1")
    t.ok(h2.pread(12, 0) == b"first-writer", "the new connection replaces the old one, same disk")
    t.ok(t.nbd_errno(h1.pread, 12, 0) is not None, "the old connection was ended")
    h2.pwrite(b"second-write", 0)
    h2.shutdown()
    h3 = t.connect(port, "lab/pc1")
    t.ok(h3.pread(12, 0) == b"second-write", "the new writer's data is on the disk")
    h3.shutdown()

# The image export is shared: many readers at once (multi-conn).
readers = [t.connect(port, "lab") for _ in range(4)]
t.ok(all(r.can_multi_conn() and r.pread(4096, 0) == bytes(4096) for r in readers),
     "four concurrent connections to the image export")
for r in readers:
    r.shutdown()
t.done()
