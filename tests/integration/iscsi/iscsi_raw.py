#!/usr/bin/env python3
"""iscsi_raw.py — a small raw-socket iSCSI initiator for negative tests.

Builds PDUs byte by byte (RFC 7143 §11) so a test can send exactly the
malformed input it wants and look at exactly what comes back. No digests
unless asked for; one connection per session.
"""
import socket
import struct

OP_NOP_OUT, OP_SCSI_CMD, OP_TMF, OP_LOGIN, OP_TEXT, OP_DATA_OUT, OP_LOGOUT = 0, 1, 2, 3, 4, 5, 6
OP_NOP_IN, OP_SCSI_RSP, OP_TMF_RSP, OP_LOGIN_RSP, OP_TEXT_RSP = 0x20, 0x21, 0x22, 0x23, 0x24
OP_DATA_IN, OP_LOGOUT_RSP, OP_R2T, OP_REJECT = 0x25, 0x26, 0x31, 0x3F
RSVD = 0xFFFFFFFF


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def pad4(n):
    return (4 - n % 4) % 4


def keys_to_text(keys):
    return b"".join(("%s=%s" % kv).encode() + b"\0" for kv in keys)


def text_to_keys(data):
    out = {}
    for item in data.split(b"\0"):
        if b"=" in item:
            k, _, v = item.partition(b"=")
            out[k.decode()] = v.decode()
    return out


class PDU:
    def __init__(self, bhs, data=b""):
        self.bhs = bhs
        self.data = data

    @property
    def opcode(self):
        return self.bhs[0] & 0x3F

    def u32(self, off):
        return struct.unpack(">I", self.bhs[off:off + 4])[0]

    def __repr__(self):
        return "PDU(op=0x%02x, flags=0x%02x, dsl=%d)" % (self.opcode, self.bhs[1], len(self.data))


def bhs(op, flags=0, lun=0, itt=0, f20=0, f24=0, f28=0, f32=b"\0" * 16, dsl=0, ahs_words=0,
        immediate=False, f2=0, f3=0):
    b = bytearray(48)
    b[0] = op | (0x40 if immediate else 0)
    b[1] = flags
    b[2] = f2
    b[3] = f3
    b[4] = ahs_words
    b[5:8] = dsl.to_bytes(3, "big")
    b[8:16] = lun.to_bytes(8, "big")
    b[16:20] = itt.to_bytes(4, "big")
    b[20:24] = f20.to_bytes(4, "big")
    b[24:28] = f24.to_bytes(4, "big")
    b[28:32] = f28.to_bytes(4, "big")
    b[32:48] = f32
    return b


class Conn:
    def __init__(self, port, host="127.0.0.1", timeout=10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.itt = 0x100
        self.cmdsn = 1
        self.statsn = 0
        self.hdigest = False
        self.ddigest = False
        self.buf = b""

    def close(self):
        self.sock.close()

    def next_itt(self):
        self.itt += 1
        return self.itt

    def send_raw(self, raw):
        self.sock.sendall(raw)

    def send(self, b, data=b"", ahs=b"", set_dsl=True):
        b = bytearray(b)
        if set_dsl:
            b[5:8] = len(data).to_bytes(3, "big")
        b[4] = len(ahs) // 4
        out = bytes(b) + ahs
        if self.hdigest:
            out += struct.pack("<I", crc32c(out))
        if data:
            d = data + b"\0" * pad4(len(data))
            out += d
            if self.ddigest:
                out += struct.pack("<I", crc32c(d))
        self.sock.sendall(out)

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv(self):
        """Next PDU; EOFError when the target closed the connection,
        socket.timeout when nothing came."""
        h = self._read(48)
        ahs = self._read(h[4] * 4)
        if self.hdigest:
            got = struct.unpack("<I", self._read(4))[0]
            if got != crc32c(h + ahs):
                raise ValueError("bad header digest from the target")
        dsl = int.from_bytes(h[5:8], "big")
        padded = self._read(dsl + pad4(dsl))
        data = padded[:dsl]
        if self.ddigest and dsl:
            got = struct.unpack("<I", self._read(4))[0]
            if got != crc32c(padded):
                raise ValueError("bad data digest from the target")
        p = PDU(h, data)
        if p.opcode in (OP_SCSI_RSP, OP_TMF_RSP, OP_TEXT_RSP, OP_LOGOUT_RSP, OP_REJECT,
                        OP_LOGIN_RSP, OP_NOP_IN) or (p.opcode == OP_DATA_IN and h[1] & 1):
            self.statsn = p.u32(24)
        return p

    def closed(self, timeout=5.0):
        """True when the target closes the connection (EOF or reset)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                self.recv()
        except (EOFError, ConnectionResetError):
            return True
        except socket.timeout:
            return False

    def login_pdu(self, keys, csg=1, nsg=3, transit=True, isid=0x400001370000, tsih=0,
                  cid=0, vmax=0, vmin=0, cont=False):
        flags = (0x80 if transit else 0) | (0x40 if cont else 0) | (csg << 2) | (nsg if transit else 0)
        b = bhs(OP_LOGIN, flags, itt=self.itt, f20=cid << 16, f24=self.cmdsn, f28=self.statsn + 1,
                immediate=True, f2=vmax, f3=vmin)
        b[8:14] = isid.to_bytes(6, "big")
        b[14:16] = tsih.to_bytes(2, "big")
        self.send(b, keys_to_text(keys) if isinstance(keys, list) else keys)
        rsp = self.recv()
        status = (rsp.bhs[36] << 8) | rsp.bhs[37]
        return status, text_to_keys(rsp.data), rsp

    def login(self, initiator, target=None, extra=(), discovery=False, **kw):
        keys = [("InitiatorName", initiator),
                ("SessionType", "Discovery" if discovery else "Normal")]
        if target:
            keys.append(("TargetName", target))
        keys += [("HeaderDigest", "None"), ("DataDigest", "None"),
                 ("MaxRecvDataSegmentLength", "262144"), ("InitialR2T", "Yes"),
                 ("ImmediateData", "Yes"), ("MaxBurstLength", "262144"),
                 ("FirstBurstLength", "65536"), ("MaxOutstandingR2T", "1")]
        # extra keys replace defaults of the same name, or are appended
        extra = list(extra)
        names = {k for k, _ in extra}
        keys = [kv for kv in keys if kv[0] not in names] + extra
        status, rkeys, rsp = self.login_pdu(keys, **kw)
        if status == 0 and rsp.bhs[1] & 0x80:
            self.expcmdsn = rsp.u32(28)
            self.cmdsn = self.expcmdsn
        return status, rkeys, rsp

    def scsi(self, cdb, read_len=0, write=None, lun=0, immediate_data=True, expect_r2t=False):
        """Send a SCSI command; returns (status, sense bytes, data-in)."""
        itt = self.next_itt()
        flags = 0x80 | 0x01  # F, SIMPLE
        edtl = read_len
        if read_len:
            flags |= 0x40
        if write is not None:
            flags |= 0x20
            edtl = len(write)
        cdbb = bytes(cdb) + b"\0" * (16 - len(cdb))
        b = bhs(OP_SCSI_CMD, flags, lun=lun, itt=itt, f20=edtl, f24=self.cmdsn,
                f28=self.statsn + 1, f32=cdbb)
        self.cmdsn += 1
        self.send(b, write if (write and immediate_data) else b"")
        data = b""
        while True:
            p = self.recv()
            if p.opcode == OP_DATA_IN:
                data += p.data
                if p.bhs[1] & 1:
                    return p.bhs[3], b"", data
            elif p.opcode == OP_R2T:
                off, ln, ttt = p.u32(40), p.u32(44), p.u32(20)
                chunk = write[off:off + ln]
                d = bhs(OP_DATA_OUT, 0x80, lun=lun, itt=itt, f20=ttt, f28=self.statsn + 1)
                d[40:44] = off.to_bytes(4, "big")
                self.send(d, chunk)
            elif p.opcode == OP_SCSI_RSP:
                sense = b""
                if len(p.data) >= 2:
                    n = int.from_bytes(p.data[:2], "big")
                    sense = p.data[2:2 + n]
                return p.bhs[3], sense, data
            elif p.opcode == OP_NOP_IN:
                continue
            else:
                raise RuntimeError("unexpected %r" % p)

    def tur(self):
        return self.scsi([0, 0, 0, 0, 0, 0])[0]

    def nop(self, data=b""):
        itt = self.next_itt()
        b = bhs(OP_NOP_OUT, 0x80, itt=itt, f20=RSVD, f24=self.cmdsn, f28=self.statsn + 1,
                immediate=True)
        self.send(b, data)
        return self.recv()
