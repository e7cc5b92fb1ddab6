"""NBD sessions under administration of the running daemon (TAP).

usage: nbd-admin.py PORT CTL_SOCKET
Client pc1 of image lab (8 MiB, zeros). Covers: status shows the NBD
session; reset without force is refused while connected; online commit
keeps the connection running with the same bytes; reset with force and
kick end the connection; after a reset the client reads the image again.
"""
import importlib.util
import json
import os
import socket
import sys

import nbd

spec = importlib.util.spec_from_file_location(
    "nbdtap", os.path.join(os.path.dirname(os.path.abspath(__file__)), "nbd-tap.py"))
t = importlib.util.module_from_spec(spec)
spec.loader.exec_module(t)
port, ctl_path = int(sys.argv[1]), sys.argv[2]


def ctl(**req):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(ctl_path)
    s.sendall(json.dumps(req).encode() + b"\n")
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    s.close()
    return json.loads(buf)


h = t.connect(port, "lab/pc1")
h.pwrite(b"written-over-nbd", 4096, nbd.CMD_FLAG_FUA)
st = ctl(cmd="status")
nbd_sessions = [x for x in st.get("sessions", []) if x.get("protocol") == "nbd"]
t.ok(any(x.get("client") == "pc1" and x.get("initiator") == "lab/pc1" for x in nbd_sessions),
     "status lists the NBD session of pc1 with its export name")
r = ctl(cmd="reset", client="pc1")
t.ok(not r["ok"], "reset without force is refused while pc1 is connected")
t.ok(h.pread(16, 4096) == b"written-over-nbd", "the refused reset changed nothing")

r = ctl(cmd="commit", client="pc1")
t.ok(r.get("ok") and r.get("generation") == 2, "online commit while connected: generation 2")
t.ok(h.pread(16, 4096) == b"written-over-nbd", "the connection keeps running, same bytes")
h.pwrite(b"after-commit", 8192)
t.ok(h.pread(12, 8192) == b"after-commit", "and keeps writing")
img = t.connect(port, "lab")
t.ok(img.pread(16, 4096) == b"written-over-nbd" and img.pread(12, 8192) == bytes(12),
     "the image export serves the new generation, without later writes")
img.shutdown()

r = ctl(cmd="reset", client="pc1", force=True)
t.ok(r.get("ok"), "reset with force")
t.ok(t.nbd_errno(h.pread, 16, 4096) is not None, "the forced reset ended the NBD connection")
h2 = t.connect(port, "lab/pc1")
t.ok(h2.pread(16, 4096) == b"written-over-nbd" and h2.pread(12, 8192) == bytes(12),
     "after the reset pc1 reads the head generation, its later writes are gone")
r = ctl(cmd="kick", client="pc1")
t.ok(r.get("ok") and r.get("kicked") == 1, "kick ends the one NBD session")
t.ok(t.nbd_errno(h2.pread, 16, 4096) is not None, "the kicked connection is closed")
h3 = t.connect(port, "lab/pc1")
t.ok(h3.pread(16, 4096) == b"written-over-nbd", "pc1 reconnects after the kick")
h3.shutdown()
t.done()
