#!/usr/bin/env python3
"""iscsi-slow-login.py PORT TARGET INITIATOR — a login trickled one byte every
2 s must still end 30 s after the connection opened (ISCSIT_LOGIN_TIMEOUT_S):
a stalled login may not hold a connection thread for ever. TAP output."""
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import iscsi_raw as ir  # noqa: E402

PORT, TARGET, INI = int(sys.argv[1]), sys.argv[2], sys.argv[3]
print("1..2", flush=True)
c = ir.Conn(PORT)
t0 = time.monotonic()
text = ir.keys_to_text([("InitiatorName", INI), ("TargetName", TARGET)])
b = ir.bhs(ir.OP_LOGIN, 0x87, itt=1, f24=1, immediate=True)
b[5:8] = len(text).to_bytes(3, "big")
raw = bytes(b) + text
closed = False
c.sock.settimeout(2.0)
for i in range(len(raw) - 1):  # never the last byte
    try:
        c.sock.send(raw[i:i + 1])
        if c.sock.recv(1) == b"":
            closed = True
            break
    except socket.timeout:
        pass
    except OSError:
        closed = True
        break
    if time.monotonic() - t0 > 45:
        break
took = time.monotonic() - t0
print("%s 1 - a login trickled one byte every 2 s is dropped" % ("ok" if closed else "not ok"))
print("%s 2 - ... about 30 s after the connection opened (%.1f s)"
      % ("ok" if closed and 28 <= took <= 36 else "not ok", took))
sys.exit(0 if closed and 28 <= took <= 36 else 1)
