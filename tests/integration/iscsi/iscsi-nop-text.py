#!/usr/bin/env python3
"""iscsi-nop-text.py PORT TARGET INITIATOR — target NOP-In pings and long Text
responses split with the C bit. Run with nop-interval=1, nop-timeout=2 and
enough images that SendTargets=All exceeds 512 bytes. TAP output."""
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import iscsi_raw as ir  # noqa: E402

PORT, TARGET, INI = int(sys.argv[1]), sys.argv[2], sys.argv[3]
results = []


def check(desc, cond):
    results.append(bool(cond))
    print("%s %d - %s" % ("ok" if cond else "not ok", len(results), desc), flush=True)


# An initiator that answers pings stays (any PDU counts as a sign of life).
good = ir.Conn(PORT)
good.login(INI, TARGET, isid=0x400001370001)
good.sock.settimeout(5)
answered = 0
end = time.monotonic() + 5
while time.monotonic() < end:
    try:
        p = good.recv()
    except socket.timeout:
        break
    if p.opcode == ir.OP_NOP_IN and p.u32(20) != ir.RSVD:
        b = ir.bhs(ir.OP_NOP_OUT, 0x80, itt=ir.RSVD, f20=p.u32(20), f24=good.cmdsn,
                   immediate=True)
        good.send(b)
        answered += 1
check("answered pings keep the connection (%d answered)" % answered, answered >= 2)
check("... and it still serves commands", good.tur() in (0, 2))
good.close()

# One that does not answer and sends nothing is dropped.
bad = ir.Conn(PORT)
bad.login(INI, TARGET, isid=0x400001370002)
bad.sock.settimeout(5)
p = bad.recv()
check("idle initiator gets a NOP-In ping", p.opcode == ir.OP_NOP_IN and p.u32(16) == ir.RSVD
      and p.u32(20) != ir.RSVD)
t0 = time.monotonic()
check("unanswered ping: the connection is dropped", bad.closed(timeout=8))
check("... after about nop-timeout", time.monotonic() - t0 < 6)

# One that sends commands but never reads the replies: our send blocks, and
# is given up after nop-timeout like an unanswered ping.
deaf = ir.Conn(PORT)
deaf.login(INI, TARGET, isid=0x400001370003)
deaf.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
deaf.sock.settimeout(1.0)
sent = 0
try:
    while sent < 20000:  # READ(10) of 64 KiB each, never read
        b = ir.bhs(ir.OP_SCSI_CMD, 0xC1, itt=deaf.next_itt(), f20=65536, f24=deaf.cmdsn,
                   f32=bytes([0x28, 0, 0, 0, 0, 0, 0, 0, 128, 0]) + b"\0" * 6)
        deaf.cmdsn += 1
        deaf.send(b)
        sent += 1
except (socket.timeout, OSError):
    pass
time.sleep(5)
# Now read everything, answering pings: a target still blocked in its send
# would go on serving; one that gave up ends the stream.
deaf.sock.settimeout(3)
t0, ended = time.monotonic(), False
try:
    while time.monotonic() - t0 < 10:
        p = deaf.recv()
        if p.opcode == ir.OP_NOP_IN and p.u32(20) != ir.RSVD:
            deaf.send(ir.bhs(ir.OP_NOP_OUT, 0x80, itt=ir.RSVD, f20=p.u32(20), f24=deaf.cmdsn,
                             immediate=True))
except (EOFError, ConnectionResetError, BrokenPipeError):
    ended = True
except socket.timeout:
    pass
check("a peer that stops reading our replies (%d commands sent) is dropped after nop-timeout"
      % sent, ended)
deaf.close()

# SendTargets=All with MaxRecvDataSegmentLength=512: parts with the C bit.
# An initiator that is no client yet: it may access every auto-enrolment image.
c = ir.Conn(PORT)
st, _, _ = c.login_pdu([("InitiatorName", INI + "-new"), ("SessionType", "Discovery"),
                        ("MaxRecvDataSegmentLength", "512")])
check("discovery login with MaxRecvDataSegmentLength=512", st == 0)
b = ir.bhs(ir.OP_TEXT, 0x80, itt=0x55, f20=ir.RSVD, f24=c.cmdsn)
c.cmdsn += 1
c.send(b, b"SendTargets=All\0")
text = b""
parts = 0
while True:
    p = c.recv()
    assert p.opcode == ir.OP_TEXT_RSP, p
    parts += 1
    assert len(p.data) <= 512
    text += p.data
    if p.bhs[1] & 0x80:
        check("last part has F=1 and TTT reserved", p.u32(20) == ir.RSVD)
        break
    # C bit set: ask for the rest with an empty request echoing the TTT
    assert p.bhs[1] & 0x40 and p.u32(20) != ir.RSVD
    b = ir.bhs(ir.OP_TEXT, 0x80, itt=0x55, f20=p.u32(20), f24=c.cmdsn)
    c.cmdsn += 1
    c.send(b)
keys = [kv for kv in text.split(b"\0") if kv]
names = [kv for kv in keys if kv.startswith(b"TargetName=")]
check("response came in %d parts" % parts, parts >= 2)
check("all 12 targets listed, each with an address",
      len(names) == 12 and sum(kv.startswith(b"TargetAddress=") for kv in keys) == 12)
c.close()
print("1..%d" % len(results))
sys.exit(0 if all(results) else 1)
