#!/usr/bin/env python3
"""iscsi-negative.py PORT TARGET INITIATOR — malformed input against ovgated.

Each case sends something wrong on its own connection and checks the answer
the RFC asks for (login status, Reject reason, SCSI sense, or the connection
being closed), while a session opened at the start keeps working: it is
checked after every case. TAP output.
"""
import socket
import struct
import sys

sys.path.insert(0, __import__("os").path.dirname(__file__))
import iscsi_raw as ir  # noqa: E402

PORT = int(sys.argv[1])
TARGET = sys.argv[2]
INI = sys.argv[3]
results = []


def check(desc, cond):
    results.append(bool(cond))
    print("%s %d - %s" % ("ok" if cond else "not ok", len(results), desc), flush=True)


def session(isid=0x400001370000):
    c = ir.Conn(PORT)
    status, keys, _ = c.login(INI, TARGET, isid=isid)
    assert status == 0, "login failed: 0x%04x" % status
    c.tur()  # consume the POWER ON unit attention of a new nexus
    return c


keeper = session(isid=0x400001370099)


def keeper_alive(desc):
    try:
        # a unit attention (after a reset elsewhere) may come first
        check("other session still served after: " + desc,
              keeper.tur() == 0 or keeper.tur() == 0)
    except Exception as e:  # noqa: BLE001
        check("other session still served after: %s (%s)" % (desc, e), False)


# --- login ---
c = ir.Conn(PORT)
st, keys, rsp = c.login(INI, TARGET, extra=[("X-com.example.Foo", "1"), ("Bogus", "x"),
                                               ("MaxConnections", "abc")])
check("login with unknown and bad keys succeeds", st == 0 and rsp.bhs[1] & 0x80)
check("unknown X- key answered NotUnderstood", keys.get("X-com.example.Foo") == "NotUnderstood")
check("unknown key answered NotUnderstood", keys.get("Bogus") == "NotUnderstood")
check("invalid numeric value answered Reject", keys.get("MaxConnections") == "Reject")
check("TargetPortalGroupTag declared", keys.get("TargetPortalGroupTag") == "1")
check("MaxRecvDataSegmentLength declared", keys.get("MaxRecvDataSegmentLength") == "262144")
c.close()

# a login text split over two PDUs with the C bit, cut inside a key
c = ir.Conn(PORT)
text = ir.keys_to_text([("InitiatorName", INI), ("TargetName", TARGET),
                        ("SessionType", "Normal"), ("MaxBurstLength", "65536")])
st, keys, rsp = c.login_pdu(text[:20], transit=False, cont=True)
check("C-bit login part: empty response, no transit", st == 0 and not rsp.data and
      not rsp.bhs[1] & 0x80)
st, keys, rsp = c.login_pdu(text[20:])
check("... the rest completes the login", st == 0 and rsp.bhs[1] & 0x80 and
      keys.get("MaxBurstLength") == "65536")
c.close()

c = ir.Conn(PORT)
st, _, _ = c.login_pdu([("InitiatorName", INI), ("TargetName", TARGET),
                        ("MaxBurstLength", "512"), ("MaxBurstLength", "1024")])
check("duplicate key: login fails with initiator error 0x0200", st == 0x0200)
check("... and the connection is closed", c.closed())

c = ir.Conn(PORT)
st, _, _ = c.login_pdu(b"InitiatorName=" + INI.encode() + b"\0NoEqualsSign\0")
check("malformed key=value text: 0x0200", st == 0x0200)
c.close()

c = ir.Conn(PORT)
st, _, _ = c.login(INI, TARGET, vmin=1, vmax=1)
check("unsupported version: 0x0205", st == 0x0205)
c.close()

c = ir.Conn(PORT)
st, _, _ = c.login(INI, TARGET + "-nonexistent")
check("unknown target: 0x0203 Not found", st == 0x0203)
c.close()

c = ir.Conn(PORT)
st, _, _ = c.login("iqn.2026-11.test.negative:stranger", TARGET)
check("unknown initiator: 0x0202 Authorization failure", st == 0x0202)
c.close()

c = ir.Conn(PORT)
st, _, _ = c.login_pdu([("SessionType", "Normal"), ("TargetName", TARGET)])
check("no InitiatorName: 0x0207 Missing parameter", st == 0x0207)
c.close()

c = ir.Conn(PORT)
st, _, _ = c.login_pdu([("InitiatorName", INI), ("TargetName", TARGET), ("CHAP_A", "5")])
check("security key in the operational stage: 0x0200", st == 0x0200)
c.close()

c = ir.Conn(PORT)
st, _, _ = c.login_pdu(b"InitiatorName=" + INI.encode() + b"\0X-pad=" + b"a" * 9000 + b"\0")
check("login data segment over 8192 bytes: 0x0200", st == 0x0200)
check("... and the connection is closed", c.closed())

c = ir.Conn(PORT)
c.send(ir.bhs(ir.OP_NOP_OUT, 0x80, itt=1, f20=ir.RSVD, immediate=True))
check("first PDU not a Login: connection closed", c.closed())
keeper_alive("login errors")

# --- full feature phase ---
c = session()
c.send(ir.bhs(0x1F, 0x80, itt=c.next_itt(), f24=c.cmdsn))
p = c.recv()
check("unknown opcode: Reject with reason 0x05", p.opcode == ir.OP_REJECT and p.bhs[2] == 0x05)
check("... carrying the rejected header", p.data[:1] == b"\x1f")
check("session works after the Reject", c.tur() == 0)

# LBA out of range: READ(10) past the end -> CHECK CONDITION, ILLEGAL REQUEST, LBA OUT OF RANGE
st, sense, _ = c.scsi([0x28, 0, 0xFF, 0xFF, 0xFF, 0xF0, 0, 0, 1, 0], read_len=512)
check("READ(10) beyond the end: CHECK CONDITION", st == 0x02)
check("... sense ILLEGAL REQUEST / LBA OUT OF RANGE (0x21)",
      len(sense) >= 14 and (sense[2] & 0x0F) == 0x05 and sense[12] == 0x21)
st, sense, _ = c.scsi([0x2A, 0, 0xFF, 0xFF, 0xFF, 0xF0, 0, 0, 1, 0], write=b"\xaa" * 512)
check("WRITE(10) beyond the end: CHECK CONDITION, LBA OUT OF RANGE",
      st == 0x02 and len(sense) >= 14 and sense[12] == 0x21)
# a LUN that does not exist: REPORT LUNS-free command gets LOGICAL UNIT NOT SUPPORTED
st, sense, _ = c.scsi([0, 0, 0, 0, 0, 0], lun=0x0005000000000000)
check("TEST UNIT READY to LUN 5: LOGICAL UNIT NOT SUPPORTED (0x25)",
      st == 0x02 and len(sense) >= 14 and sense[12] == 0x25)

# write with R2T: our own data round trip through Data-Out
st, _, _ = c.scsi([0x2A, 0, 0, 0, 0, 8, 0, 0, 2, 0], write=b"\x5a" * 1024, immediate_data=False)
st2, _, data = c.scsi([0x28, 0, 0, 0, 0, 8, 0, 0, 2, 0], read_len=1024)
check("WRITE(10) via R2T then READ(10) returns the data", st == 0 and st2 == 0 and data == b"\x5a" * 1024)

# Data-Out with a Target Transfer Tag we never issued
itt = c.next_itt()
b = ir.bhs(ir.OP_SCSI_CMD, 0xA1, itt=itt, f20=512, f24=c.cmdsn, f32=bytes([0x2A, 0, 0, 0, 0, 1, 0, 0, 1, 0]) + b"\0" * 6)
c.cmdsn += 1
c.send(b)
r2t = c.recv()
d = ir.bhs(ir.OP_DATA_OUT, 0x80, itt=itt, f20=r2t.u32(20) ^ 0x1234)
c.send(d, b"\0" * 512)
p = c.recv()
check("Data-Out with a wrong Target Transfer Tag: Reject 0x04", p.opcode == ir.OP_REJECT and p.bhs[2] == 0x04)
check("session works after the bad Data-Out", c.tur() == 0)

# immediate data without the W bit
b = ir.bhs(ir.OP_SCSI_CMD, 0x81, itt=c.next_itt(), f20=0, f24=c.cmdsn, f32=b"\0" * 16)
c.cmdsn += 1  # a rejected command still uses up its CmdSN
c.send(b, b"x" * 100)
p = c.recv()
check("data segment on a non-write command: Reject 0x04", p.opcode == ir.OP_REJECT and p.bhs[2] == 0x04)

# bad extended-CDB AHS
b = ir.bhs(ir.OP_SCSI_CMD, 0x81, itt=c.next_itt(), f24=c.cmdsn, f32=b"\0" * 16)
c.cmdsn += 1
c.send(b, ahs=bytes([0, 200, 1, 0, 0, 0, 0, 0]))
p = c.recv()
check("AHS length beyond the header: Reject 0x04", p.opcode == ir.OP_REJECT and p.bhs[2] == 0x04)

# a 32-byte CDB: bytes 16..31 in an extended CDB AHS (length 17 = reserved
# byte + 16 CDB bytes), followed by a bidirectional-read-length AHS
cdb = bytes([0x7F, 0, 0, 0, 0, 0, 0, 0x18]) + bytes(24)
b = ir.bhs(ir.OP_SCSI_CMD, 0x81, itt=c.next_itt(), f24=c.cmdsn, f32=cdb[:16])
c.cmdsn += 1
c.send(b, ahs=bytes([0, 17, 1, 0]) + cdb[16:] + bytes([0, 5, 2, 0, 0, 0, 0, 0]))
p = c.recv()
check("32-byte CDB in an extended CDB AHS reaches the device (SCSI Response, not Reject)",
      p.opcode == ir.OP_SCSI_RSP)

# CmdSN outside the window: dropped silently (RFC 7143 §3.2.2.1)
b = ir.bhs(ir.OP_SCSI_CMD, 0x81, itt=c.next_itt(), f24=c.cmdsn + 1000, f32=b"\0" * 16)
c.send(b)
c.sock.settimeout(1.0)
try:
    c.recv()
    check("command outside the CmdSN window gets no answer", False)
except socket.timeout:
    check("command outside the CmdSN window gets no answer", True)
c.sock.settimeout(10.0)
check("next command in sequence is answered", c.tur() == 0)

# a command ahead of ExpCmdSN (inside the window) waits for the gap to close
i1, i2 = c.next_itt(), c.next_itt()
c.send(ir.bhs(ir.OP_SCSI_CMD, 0x81, itt=i2, f24=c.cmdsn + 1, f32=b"\0" * 16))
c.sock.settimeout(0.5)
try:
    c.recv()
    early = True
except socket.timeout:
    early = False
c.sock.settimeout(10.0)
c.send(ir.bhs(ir.OP_SCSI_CMD, 0x81, itt=i1, f24=c.cmdsn, f32=b"\0" * 16))
c.cmdsn += 2
r1, r2 = c.recv(), c.recv()
check("command ahead of ExpCmdSN is held, then both run in CmdSN order",
      not early and r1.u32(16) == i1 and r2.u32(16) == i2 and r1.bhs[3] == 0 and r2.bhs[3] == 0)

# NOP-Out ping echoes its data
p = c.nop(b"ping-data")
check("NOP-Out ping: NOP-In echoes the data", p.opcode == ir.OP_NOP_IN and p.data == b"ping-data")

# task management
def tmf(conn, fn, lun=0, rtt=ir.RSVD, refcmdsn=0):
    b = ir.bhs(ir.OP_TMF, 0x80 | fn, lun=lun, itt=conn.next_itt(), f20=rtt, f24=conn.cmdsn,
               immediate=True)
    b[32:36] = refcmdsn.to_bytes(4, "big")
    conn.send(b)
    p = conn.recv()
    assert p.opcode == ir.OP_TMF_RSP, p
    return p.bhs[2]


check("ABORT TASK for a task already answered: 'task does not exist' (1)",
      tmf(c, 1, rtt=0x7777, refcmdsn=c.cmdsn - 1) == 1)
check("LUN RESET: function complete", tmf(c, 5) == 0)
check("LUN RESET on LUN 3: 'LUN does not exist' (2)", tmf(c, 5, lun=0x0003000000000000) == 2)
check("TASK REASSIGN at ERL 0: not supported (4)", tmf(c, 8) == 4)
check("undefined function 14: 'not supported' (5)", tmf(c, 14) == 5)
c.scsi([0, 0, 0, 0, 0, 0])  # consume the unit attention of the reset

# oversize data segment: Reject (protocol error) and the connection ends
big = 262144 + 4
b = ir.bhs(ir.OP_NOP_OUT, 0x80, itt=c.next_itt(), f20=ir.RSVD, immediate=True, dsl=big)
c.send_raw(bytes(b))
p = c.recv()
check("data segment over MaxRecvDataSegmentLength: Reject 0x04", p.opcode == ir.OP_REJECT and p.bhs[2] == 0x04)
check("... and the connection is closed", c.closed())
keeper_alive("full feature phase errors")

# TARGET WARM RESET answers and keeps the connection; COLD RESET answers, then
# drops it (RFC 7143 §11.5.1)
c = session()
check("TARGET WARM RESET: function complete", tmf(c, 6) == 0)
check("... the connection stays", c.tur() in (0, 2))
check("TARGET COLD RESET: function complete", tmf(c, 7) == 0)
check("... then the connection is closed", c.closed())
keeper_alive("target resets")

# logout
c = session()
b = ir.bhs(ir.OP_LOGOUT, 0x80 | 0, itt=c.next_itt(), f24=c.cmdsn, immediate=True)
c.send(b)
p = c.recv()
check("Logout (close session): response 0", p.opcode == ir.OP_LOGOUT_RSP and p.bhs[2] == 0)
check("... then the connection is closed", c.closed())
c = session()
b = ir.bhs(ir.OP_LOGOUT, 0x80 | 2, itt=c.next_itt(), f24=c.cmdsn, immediate=True)
c.send(b)
p = c.recv()
check("Logout for recovery at ERL 0: 'recovery not supported' (2)",
      p.opcode == ir.OP_LOGOUT_RSP and p.bhs[2] == 2)
c.close()

# discovery session: SendTargets works, SCSI commands do not
c = ir.Conn(PORT)
st, _, _ = c.login(INI, discovery=True)
b = ir.bhs(ir.OP_TEXT, 0x80, itt=c.next_itt(), f20=ir.RSVD, f24=c.cmdsn)
c.cmdsn += 1
c.send(b, b"SendTargets=All\0")
p = c.recv()
check("discovery: SendTargets=All lists the target",
      p.opcode == ir.OP_TEXT_RSP and ("TargetName=" + TARGET).encode() in p.data)
b = ir.bhs(ir.OP_TEXT, 0x80, itt=c.next_itt(), f20=ir.RSVD, f24=c.cmdsn)
c.cmdsn += 1
c.send(b, ("SendTargets=" + TARGET + "\0").encode())
p = c.recv()
kv = [x for x in p.data.split(b"\0") if x]
check("discovery: SendTargets=<name> lists just that target with its portal",
      kv[0] == ("TargetName=" + TARGET).encode() and len(kv) == 2 and
      kv[1] == ("TargetAddress=127.0.0.1:%d,1" % PORT).encode())
b = ir.bhs(ir.OP_TEXT, 0x80, itt=c.next_itt(), f20=ir.RSVD, f24=c.cmdsn)
c.cmdsn += 1
c.send(b, ("SendTargets=" + TARGET + "-nonexistent\0").encode())
p = c.recv()
check("discovery: SendTargets for an unknown name lists nothing", p.data.strip(b"\0") == b"")
c.send(ir.bhs(ir.OP_SCSI_CMD, 0x81, itt=c.next_itt(), f24=c.cmdsn))
c.cmdsn += 1
p = c.recv()
check("discovery: SCSI command rejected (0x04)", p.opcode == ir.OP_REJECT and p.bhs[2] == 0x04)
c.close()

# session reinstatement: same ISID, TSIH 0 -> the old connection is ended
old = session(isid=0x400001370042)
new = session(isid=0x400001370042)
check("reinstatement: the old session's connection is closed", old.closed())
check("reinstatement: the new session works", new.tur() != 0x18)  # UA allowed, not conflict
new.close()

# CRC32C header and data digests: data round trip with both on, then a
# corrupted data digest (Reject 0x02, connection ends) and a corrupted header
# digest (connection ends).
def digest_session(isid):
    c = ir.Conn(PORT)
    st, keys, _ = c.login(INI, TARGET, isid=isid,
                          extra=[("HeaderDigest", "CRC32C"), ("DataDigest", "CRC32C")])
    assert st == 0 and keys.get("HeaderDigest") == "CRC32C" and keys.get("DataDigest") == "CRC32C"
    c.hdigest = c.ddigest = True
    c.tur()
    return c


c = digest_session(0x400001370081)
pattern = bytes(range(256)) * 16 + b"odd"  # padding covered by the data digest
st, _, _ = c.scsi([0x2A, 0, 0, 0, 0, 16, 0, 0, 9, 0], write=pattern + b"\0" * (4608 - len(pattern)))
st2, _, data = c.scsi([0x28, 0, 0, 0, 0, 16, 0, 0, 9, 0], read_len=4608)
check("HeaderDigest+DataDigest=CRC32C: write and read back, digests verified both ways",
      st == 0 and st2 == 0 and data[:len(pattern)] == pattern)
itt = c.next_itt()
c.cmdsn += 1
raw = bytes(ir.bhs(ir.OP_SCSI_CMD, 0xA1, itt=itt, f20=512, f24=c.cmdsn - 1, dsl=512,
                   f32=bytes([0x2A, 0, 0, 0, 0, 16, 0, 0, 1, 0]) + b"\0" * 6))
raw += struct.pack("<I", ir.crc32c(raw)) + b"\x11" * 512 + struct.pack("<I", 0xBADBAD)
c.send_raw(raw)
p = c.recv()
check("data digest error: Reject 0x02", p.opcode == ir.OP_REJECT and p.bhs[2] == 0x02)
check("... and the connection ends (ERL 0)", c.closed())
c = digest_session(0x400001370082)
raw = bytes(ir.bhs(ir.OP_NOP_OUT, 0x80, itt=c.next_itt(), f20=ir.RSVD, immediate=True))
c.send_raw(raw + struct.pack("<I", ir.crc32c(raw) ^ 1))
check("header digest error: the connection ends", c.closed())

# Many large writes at once: R2Ts are rationed by the connection's budget of
# solicited bytes (64 MiB) and every write still completes.
c = ir.Conn(PORT)
st, keys, _ = c.login(INI, TARGET, isid=0x400001370077,
                      extra=[("MaxBurstLength", "16776192"), ("MaxOutstandingR2T", "16"),
                             ("ImmediateData", "No")])
c.tur()
NW, SZ = 24, 4 << 20
mrdsl = 262144
itts = {}
for i in range(NW):
    itt = c.next_itt()
    lba = i * (SZ // 512)
    cdb = bytes([0x2A, 0]) + lba.to_bytes(4, "big") + bytes([0]) + (SZ // 512).to_bytes(2, "big") + bytes([0])
    b = ir.bhs(ir.OP_SCSI_CMD, 0xA1, itt=itt, f20=SZ, f24=c.cmdsn, f32=cdb + b"\0" * 6)
    c.cmdsn += 1
    c.send(b)
    itts[itt] = bytes([i + 1]) * SZ
done = {}
outstanding_max = 0
pending = []  # R2Ts received and not yet answered


def answer(r2t):
    itt, ttt, off, ln = r2t.u32(16), r2t.u32(20), r2t.u32(40), r2t.u32(44)
    for n, pos in enumerate(range(off, off + ln, mrdsl)):
        chunk = itts[itt][pos:min(pos + mrdsl, off + ln)]
        d = ir.bhs(ir.OP_DATA_OUT, 0x80 if pos + len(chunk) == off + ln else 0, itt=itt, f20=ttt)
        d[36:40] = n.to_bytes(4, "big")
        d[40:44] = pos.to_bytes(4, "big")
        c.send(d, chunk)


while len(done) < NW:
    # take everything the target sends before answering: that is what it
    # solicited at once
    c.sock.settimeout(0.5 if pending else 30)
    try:
        p = c.recv()
    except socket.timeout:
        outstanding_max = max(outstanding_max, sum(r.u32(44) for r in pending))
        for r in pending:
            answer(r)
        pending = []
        continue
    if p.opcode == ir.OP_R2T:
        pending.append(p)
    elif p.opcode == ir.OP_SCSI_RSP:
        done[p.u32(16)] = p.bhs[3]
c.sock.settimeout(10)
check("%d concurrent 4 MiB writes all complete GOOD" % NW, all(v == 0 for v in done.values()))
check("solicited bytes reach but never exceed the 64 MiB budget (max %d MiB)"
      % (outstanding_max >> 20), 16 << 20 < outstanding_max <= 64 << 20)
st, _, data = c.scsi([0x28, 0, 0, 0, 0x80 * 0, 0, 0, 0, 8, 0], read_len=4096)
st2, _, data2 = c.scsi([0x28, 0] + list((23 * (SZ // 512)).to_bytes(4, "big")) + [0, 0, 8, 0], read_len=4096)
check("their data reads back", st == 0 and data == b"\x01" * 4096 and st2 == 0 and data2 == b"\x18" * 4096)
c.close()

keeper_alive("everything")
print("1..%d" % len(results))
sys.exit(0 if all(results) else 1)
