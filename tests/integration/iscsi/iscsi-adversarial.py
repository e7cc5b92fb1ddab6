#!/usr/bin/env python3
"""iscsi-adversarial.py PORT TARGET INITIATOR — a hostile initiator against
ovgated: command storms that never send Data-Out (the CmdSN window must
close, immediate commands get TASK SET FULL), ABORT TASK for commands held
or still in flight, logout with R2Ts outstanding, a login trickled one byte
per TCP segment, oversize pings. A second session is checked throughout.
TAP output."""
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import iscsi_raw as ir  # noqa: E402

PORT, TARGET, INI = int(sys.argv[1]), sys.argv[2], sys.argv[3]
WINDOW = 128
results = []


def check(desc, cond):
    results.append(bool(cond))
    print("%s %d - %s" % ("ok" if cond else "not ok", len(results), desc), flush=True)


def session(isid, extra=()):
    c = ir.Conn(PORT)
    st, _, _ = c.login(INI, TARGET, isid=isid, extra=extra)
    assert st == 0, "login failed: 0x%04x" % st
    c.tur()  # the POWER ON unit attention of a new nexus
    return c


def write10(lba, blocks):
    return bytes([0x2A, 0, (lba >> 24) & 255, (lba >> 16) & 255, (lba >> 8) & 255, lba & 255,
                  0, 0, blocks, 0])


def read10(lba, blocks):
    return bytes([0x28, 0, (lba >> 24) & 255, (lba >> 16) & 255, (lba >> 8) & 255, lba & 255,
                  0, 0, blocks, 0])


def send_cmd(c, cdb, edtl, write, cmdsn, immediate=False, itt=None):
    itt = itt if itt is not None else c.next_itt()
    flags = 0x81 | (0x20 if write else 0x40 if edtl else 0)
    b = ir.bhs(ir.OP_SCSI_CMD, flags, itt=itt, f20=edtl, f24=cmdsn, f28=c.statsn + 1,
               f32=bytes(cdb) + b"\0" * (16 - len(cdb)), immediate=immediate)
    c.send(b)
    return itt


def drain(c, quiet=1.0):
    """Every PDU the target sends until it is quiet for `quiet` seconds."""
    out = []
    c.sock.settimeout(quiet)
    try:
        while True:
            out.append(c.recv())
    except socket.timeout:
        pass
    c.sock.settimeout(10)
    return out


def data_out(c, itt, r2t, payload):
    d = ir.bhs(ir.OP_DATA_OUT, 0x80, itt=itt, f20=r2t.u32(20), f28=c.statsn + 1)
    d[40:44] = r2t.u32(40).to_bytes(4, "big")
    c.send(d, payload[:r2t.u32(44)])


keeper = session(0x400001370099)


def keeper_alive(desc):
    try:
        check("other session still served after: " + desc, keeper.tur() in (0, 2))
    except Exception as e:  # noqa: BLE001
        check("other session still served after: %s (%s)" % (desc, e), False)


# 1. A storm of writes that never send their data: the window must close.
c = session(0x400001370001)
exp0 = c.cmdsn
N = 200
itts = []
for i in range(N):
    itts.append(send_cmd(c, write10(2048 + 8 * i, 8), 4096, True, exp0 + i))
pdus = drain(c)
r2ts = [p for p in pdus if p.opcode == ir.OP_R2T]
maxcmdsn = max((p.u32(32) for p in pdus), default=0)
check("write storm without Data-Out: R2Ts only for commands inside the window (%d of %d)"
      % (len(r2ts), N), len(r2ts) == WINDOW)
check("... MaxCmdSN stops at ExpCmdSN + window - 1 (%d, want %d)"
      % (maxcmdsn - exp0, WINDOW - 1), maxcmdsn == exp0 + WINDOW - 1)
# finishing ten of them reopens the window by ten
byitt = {p.u32(16): p for p in r2ts}
for itt in itts[:10]:
    data_out(c, itt, byitt[itt], b"\xab" * 4096)
pdus = drain(c)
rsps = [p for p in pdus if p.opcode == ir.OP_SCSI_RSP]
check("ten writes given their data complete GOOD",
      len(rsps) == 10 and all(p.bhs[3] == 0 for p in rsps))
check("... and the window reopens by ten (MaxCmdSN %d)" % (rsps[-1].u32(32) - exp0 if rsps else -1),
      rsps and rsps[-1].u32(32) == exp0 + WINDOW - 1 + 10)
# 2. logout with R2Ts outstanding: answered, connection closed, nothing written
c.cmdsn = exp0 + WINDOW
lo = ir.bhs(ir.OP_LOGOUT, 0x80, itt=c.next_itt(), f24=c.cmdsn, f28=c.statsn + 1, immediate=True)
c.send(lo)
p = c.recv()
check("logout with %d R2Ts outstanding: response 0" % (WINDOW - 10),
      p.opcode == ir.OP_LOGOUT_RSP and p.bhs[2] == 0)
check("... then the connection is closed", c.closed())
st, _, data = keeper.scsi(read10(2048, 16), read_len=8192)
check("the completed writes are on disk, the abandoned ones are not",
      st == 0 and data[:4096] == b"\xab" * 4096 and data[4096:] == b"\xab" * 4096)
st, _, data = keeper.scsi(read10(2048 + 8 * 50, 8), read_len=4096)
check("... (an abandoned write's blocks read as before)", st == 0 and data == b"\0" * 4096)
keeper_alive("a write storm and a logout with R2Ts outstanding")

# 3. Immediate commands do not use the window: too many waiting tasks get
# TASK SET FULL (SAM-5 status 0x28) instead of unbounded memory.
c = session(0x400001370002)
M = 400
for i in range(M):
    send_cmd(c, write10(4096, 8), 4096, True, c.cmdsn, immediate=True)
pdus = drain(c)
r2ts = [p for p in pdus if p.opcode == ir.OP_R2T]
full = [p for p in pdus if p.opcode == ir.OP_SCSI_RSP and p.bhs[3] == 0x28]
check("immediate write storm: at most %d tasks wait (%d R2Ts)" % (2 * WINDOW, len(r2ts)),
      0 < len(r2ts) <= 2 * WINDOW)
check("... the rest get TASK SET FULL (%d)" % len(full), len(full) == M - len(r2ts))
c.close()
keeper_alive("an immediate write storm")

# 4. ABORT TASK for a command held ahead of a CmdSN gap: it never runs.
def tmf_abort(c, rtt, refcmdsn, cmdsn):
    b = ir.bhs(ir.OP_TMF, 0x80 | 1, itt=c.next_itt(), f20=rtt, f24=cmdsn, f28=c.statsn + 1,
               immediate=True)
    b[32:36] = refcmdsn.to_bytes(4, "big")
    c.send(b)
    p = c.recv()
    assert p.opcode == ir.OP_TMF_RSP, p
    return p.bhs[2]


c = session(0x400001370003)
e = c.cmdsn
held = send_cmd(c, read10(0, 1), 512, False, e + 1)
check("ABORT TASK of a command held behind a CmdSN gap: function complete",
      tmf_abort(c, held, e + 1, e) == 0)
send_cmd(c, [0] * 6, 0, False, e)  # TEST UNIT READY closes the gap
pdus = drain(c)
check("... the gap closes and the aborted command never runs",
      [p.u32(16) for p in pdus if p.opcode in (ir.OP_DATA_IN, ir.OP_SCSI_RSP)] != [] and
      all(p.u32(16) != held for p in pdus))
c.cmdsn = e + 2
check("... and CmdSN moved past it (next command served)", c.tur() == 0)
# ABORT TASK for a command sent but not yet arrived (RefCmdSN = ExpCmdSN,
# below the TMF's CmdSN): "function complete", and when it comes it is not run
e = c.cmdsn
inflight = 0x5151
check("ABORT TASK of a command still in flight: function complete",
      tmf_abort(c, inflight, e, e + 1) == 0)
send_cmd(c, read10(0, 1), 512, False, e, itt=inflight)
send_cmd(c, [0] * 6, 0, False, e + 1)
pdus = drain(c)
check("... it is dropped when it arrives, the next command runs",
      all(p.u32(16) != inflight for p in pdus) and
      any(p.opcode == ir.OP_SCSI_RSP and p.bhs[3] == 0 for p in pdus))
c.close()
keeper_alive("aborts of held and in-flight commands")

# 5. A login trickled one byte per TCP segment still logs in.
c = ir.Conn(PORT)
text = ir.keys_to_text([("InitiatorName", INI), ("TargetName", TARGET), ("SessionType", "Normal")])
b = ir.bhs(ir.OP_LOGIN, 0x87, itt=1, f24=1, immediate=True)
b[8:14] = (0x400001370004).to_bytes(6, "big")
b[5:8] = len(text).to_bytes(3, "big")
raw = bytes(b) + text + b"\0" * ir.pad4(len(text))
for i in range(len(raw)):
    c.sock.send(raw[i:i + 1])
    if i % 16 == 0:
        time.sleep(0.002)
p = c.recv()
check("login sent one byte per TCP segment (%d segments): logged in" % len(raw),
      p.opcode == ir.OP_LOGIN_RSP and p.bhs[36] == 0 and p.bhs[1] & 0x80)
c.close()

# 6. Ping data over our MaxRecvDataSegmentLength: Reject, connection ends;
# ping data over the initiator's: the echo is cut to what it can receive.
c = session(0x400001370005)
b = ir.bhs(ir.OP_NOP_OUT, 0x80, itt=c.next_itt(), f20=ir.RSVD, f24=c.cmdsn, f28=c.statsn + 1,
           immediate=True)
c.send(b, b"p" * (262144 + 4))
p = c.recv()
check("NOP-Out ping over MaxRecvDataSegmentLength: Reject (0x04)",
      p.opcode == ir.OP_REJECT and p.bhs[2] == 0x04)
check("... and the connection ends", c.closed())
c = session(0x400001370006, extra=[("MaxRecvDataSegmentLength", "512")])
p = c.nop(b"q" * 4000)
check("ping of 4000 bytes to an initiator receiving 512: echo cut to 512",
      p.opcode == ir.OP_NOP_IN and p.data == b"q" * 512)
c.close()
keeper_alive("oversize pings")

# 7. Data-Out with a buffer offset outside the R2T, and duplicate ITTs
c = session(0x400001370007)
itt = send_cmd(c, write10(8192, 8), 4096, True, c.cmdsn)
c.cmdsn += 1
r2t = c.recv()
d = ir.bhs(ir.OP_DATA_OUT, 0x80, itt=itt, f20=r2t.u32(20), f28=c.statsn + 1)
d[40:44] = (1 << 31).to_bytes(4, "big")
c.send(d, b"x" * 512)
p = c.recv()
check("Data-Out at an offset far outside the R2T: Reject (0x04)",
      p.opcode == ir.OP_REJECT and p.bhs[2] == 0x04)
itt = send_cmd(c, write10(8192, 8), 4096, True, c.cmdsn)
c.cmdsn += 1
c.recv()
send_cmd(c, read10(0, 1), 512, False, c.cmdsn, itt=itt)
c.cmdsn += 1
p = c.recv()
check("a command reusing the ITT of a waiting write: Reject 'task in progress' (0x07)",
      p.opcode == ir.OP_REJECT and p.bhs[2] == 0x07)
check("... the connection still serves", c.tur() in (0, 2))
c.close()
keeper_alive("bad Data-Out offsets and duplicate ITTs")
# 8. Commands behind a CmdSN gap are held (copied) only up to 4 MiB of data.
c = session(0x400001370008, extra=[("FirstBurstLength", "262144"),
                                   ("MaxBurstLength", "262144")])
e = c.cmdsn
K = 24  # 24 x 256 KiB = 6 MiB behind the gap
for i in range(K):
    itt = c.next_itt()
    b = ir.bhs(ir.OP_SCSI_CMD, 0xA1, itt=itt, f20=262144, f24=e + 1 + i, f28=c.statsn + 1,
               f32=write10(16384 + 512 * i, 0) + b"\0" * 6)
    b[32 + 7:32 + 9] = (512).to_bytes(2, "big")  # 512 blocks = 256 KiB
    c.send(b, bytes([i + 1]) * 262144)
send_cmd(c, [0] * 6, 0, False, e)  # close the gap
pdus = drain(c, quiet=2.0)
rsps = [p for p in pdus if p.opcode == ir.OP_SCSI_RSP]
good = [p for p in rsps if p.bhs[3] == 0]
check("held commands are capped at 4 MiB of data: %d of %d ran, the rest were dropped"
      % (len(good) - 1, K), 1 + 14 <= len(good) <= 1 + 16 and len(rsps) == len(good))
c.close()
keeper_alive("6 MiB of commands behind a CmdSN gap")
# 9. Writes each left one burst short: the data they hold counts against the
# connection's 64 MiB budget, so asking stops near it instead of at 6 x 32 MiB.
c = session(0x400001370009, extra=[("MaxBurstLength", "16776192"), ("MaxOutstandingR2T", "1"),
                                   ("ImmediateData", "No")])
SZ, NW, CH = 65535 * 512, 6, 262144  # the largest WRITE(10)
wr = {}
for i in range(NW):
    cdb = bytes([0x2A, 0]) + (65536 * i).to_bytes(4, "big") + bytes([0]) + \
        (SZ // 512).to_bytes(2, "big") + bytes([0])
    wr[send_cmd(c, cdb, SZ, True, c.cmdsn)] = bytes([0x30 + i]) * CH
    c.cmdsn += 1


def answer_r2t(r):
    itt, ttt, off, ln = r.u32(16), r.u32(20), r.u32(40), r.u32(44)
    for n, pos in enumerate(range(off, off + ln, CH)):
        k = min(CH, off + ln - pos)
        d = ir.bhs(ir.OP_DATA_OUT, 0x80 if pos + k == off + ln else 0, itt=itt, f20=ttt)
        d[36:40] = n.to_bytes(4, "big")
        d[40:44] = pos.to_bytes(4, "big")
        c.send(d, wr[itt][:k])


asked = sent = 0
withheld, done = [], {}
t9 = time.monotonic()
c.sock.settimeout(1.5)
while True:
    try:
        p = c.recv()  # answer each R2T at once, until the target stops asking
    except socket.timeout:
        break
    if p.opcode == ir.OP_R2T:
        asked += p.u32(44)
        if p.u32(40) + p.u32(44) == SZ:
            withheld.append(p)  # the last burst of each write: keep it back
        else:
            answer_r2t(p)
            sent += p.u32(44)
    elif p.opcode == ir.OP_SCSI_RSP:
        done[p.u32(16)] = p.bhs[3]
check("writes left one burst short: asked for %d MiB, at most budget + one write (96)"
      % (asked >> 20), asked <= 96 << 20)
check("... and sent %d MiB that the target holds, within budget + one write (96)"
      % (sent >> 20), 0 < sent <= 96 << 20)
print("# phase 1 took %.1f s" % (time.monotonic() - t9), flush=True)
# now give every withheld burst: everything completes, no write starves
c.sock.settimeout(20)
while len(done) < NW:
    while withheld:
        answer_r2t(withheld.pop(0))
    p = c.recv()
    if p.opcode == ir.OP_R2T:
        if p.u32(40) + p.u32(44) == SZ:
            withheld.append(p)
        else:
            answer_r2t(p)
    elif p.opcode == ir.OP_SCSI_RSP:
        done[p.u32(16)] = p.bhs[3]
print("# phase 2 took %.1f s" % (time.monotonic() - t9), flush=True)
check("... then all %d writes complete GOOD" % NW, all(v == 0 for v in done.values()))
st, _, data = c.scsi(read10(65536 * 5 + 65534, 1), read_len=512)
check("... the last write's last block reads back", st == 0 and data == bytes([0x35]) * 512)
c.close()
keeper_alive("writes left one burst short")
# 10. Reinstatement while the old session has a write waiting for its data
# and commands queued behind a CmdSN gap: the old connection ends, none of
# its pending work is applied, the new session serves at once.
old = session(0x40000137000A)
itt = send_cmd(old, write10(500000, 8), 4096, True, old.cmdsn)
r2t = old.recv()
send_cmd(old, write10(500008, 0), 0, False, old.cmdsn + 2)  # held behind a gap
new = ir.Conn(PORT)
st, _, _ = new.login(INI, TARGET, isid=0x40000137000A)
check("reinstatement with a write waiting for Data-Out: the new login succeeds", st == 0)
check("... the old connection is closed", old.closed())
try:
    data_out(old, itt, r2t, b"\xee" * 4096)
except OSError:
    pass
new.tur()  # unit attention of the new nexus
st, _, data = new.scsi(read10(500000, 8), read_len=4096)
check("... its waiting write was never applied", st == 0 and data == b"\0" * 4096)
new.close()
keeper_alive("reinstatement over pending work")
# 11. Huge login texts: a value over 255 bytes, and C-bit parts past 64 KiB.
c = ir.Conn(PORT)
st, keys, _ = c.login_pdu([("InitiatorName", INI), ("TargetName", TARGET),
                           ("X-com.example.Big", "v" * 8000)])
check("an unknown key with an 8000-byte value: login goes on, answered NotUnderstood",
      st == 0 and keys.get("X-com.example.Big") == "NotUnderstood")
c.close()
c = ir.Conn(PORT)
st, keys, _ = c.login_pdu([("InitiatorName", INI), ("TargetName", TARGET),
                           ("MaxBurstLength", "1" * 8000)])
check("a known key with an 8000-byte value: answered Reject (the key keeps its default)",
      st == 0 and keys.get("MaxBurstLength") == "Reject")
c.close()
c = ir.Conn(PORT)
st, _, _ = c.login_pdu([("InitiatorName", INI), ("TargetName", TARGET),
                        ("X-com.example.Big", "v" * 8193)])
check("a value over 8192 bytes: initiator error 0x0200", st == 0x0200)
check("... and the connection is closed", c.closed())
c = ir.Conn(PORT)
part = ir.keys_to_text([("InitiatorName", INI), ("TargetName", TARGET)]) + \
    b"".join(b"X-com.example.K%d=%s\0" % (i, b"v" * 200) for i in range(36))
part = part[:8192]
st = 0
for i in range(9):  # 9 x 8 KiB: past the 64 KiB limit on gathered text
    st, _, rsp = c.login_pdu(part, transit=False, cont=True)
    if st != 0:
        break
check("C-bit login parts past 64 KiB: initiator error 0x0200 (after %d parts)" % (i + 1),
      st == 0x0200 and i == 8)
check("... and the connection is closed", c.closed())
keeper_alive("huge login texts")
print("1..%d" % len(results))
sys.exit(0 if all(results) else 1)
