"""Malformed NBD peers against a running ovgated, with raw sockets (TAP).

usage: nbd-negative.py PORT
Exports: lab (read-only image, 8 MiB) and lab/pc1 (client disk). Every case
expects the protocol's answer (an error reply, or a dropped connection where
proto.md leaves no other choice) and a server that keeps serving.
"""
import socket
import struct
import sys

PORT = int(sys.argv[1])
IHAVEOPT = 0x49484156454F5054
REP_MAGIC = 0x3e889045565a9
REQ_MAGIC = 0x25609513
SIMPLE_MAGIC = 0x67446698
ERR = 1 << 31
(EXPORT_NAME, ABORT, LIST, STARTTLS, INFO, GO, SR, LISTMETA, SETMETA) = (1, 2, 3, 5, 6, 7, 8, 9, 10)
READ, WRITE, DISC, FLUSH, TRIM = 0, 1, 2, 3, 4
SIZE = 8 << 20

count = 0
failed = 0


def ok(cond, desc):
    global count, failed
    count += 1
    if not cond:
        failed += 1
    print(("ok" if cond else "not ok") + f" {count} - {desc}")
    sys.stdout.flush()


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def closed(s):
    try:
        s.settimeout(5)
        return s.recv(1) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True


def connect(flags=3):
    s = socket.create_connection(("127.0.0.1", PORT), timeout=10)
    g = recv_exact(s, 18)
    assert g is not None
    if flags is not None:
        s.sendall(struct.pack(">I", flags))
    return s, g


def opt(s, o, data=b"", length=None):
    s.sendall(struct.pack(">QII", IHAVEOPT, o, len(data) if length is None else length) + data)


def reply(s):
    h = recv_exact(s, 20)
    if h is None:
        return None, None, None
    magic, o, typ, ln = struct.unpack(">QIII", h)
    assert magic == REP_MAGIC
    return o, typ, recv_exact(s, ln)


def name(x):
    return struct.pack(">I", len(x)) + x


def req(s, typ, off=0, ln=0, flags=0, handle=7, payload=b""):
    s.sendall(struct.pack(">IHHQQI", REQ_MAGIC, flags, typ, handle, off, ln) + payload)


def simple(s):
    h = recv_exact(s, 16)
    if h is None:
        return None, None
    magic, err, handle = struct.unpack(">IIQ", h)
    assert magic == SIMPLE_MAGIC
    return err, handle


def served():
    """A well-formed LIST still works."""
    s, _ = connect()
    opt(s, LIST)
    o, typ, data = reply(s)
    good = typ == 2 and data[4:7] == b"lab"
    o, typ, data = reply(s)
    s.close()
    return good and typ == 1


s, g = connect(None)
magic, opts, hflags = struct.unpack(">QQH", g)
ok(magic == 0x4e42444d41474943 and opts == IHAVEOPT and hflags == 3,
   "greeting: NBDMAGIC, IHAVEOPT, FIXED_NEWSTYLE|NO_ZEROES")
s.sendall(struct.pack(">I", 1 | 0x40))
ok(closed(s), "unknown client flag: connection dropped")

s, _ = connect(0)
ok(closed(s), "client without fixed newstyle: connection dropped")

s, _ = connect(None)
s.close()
s, _ = connect()
s.sendall(b"IHAVE")  # half an option header, then gone
s.close()
ok(served(), "half-open and truncated connections leave the server serving")

s, _ = connect()
s.sendall(struct.pack(">QII", 0x1122334455667788, LIST, 0))
ok(closed(s), "bad option magic: connection dropped")

s, _ = connect()
opt(s, GO, length=0xffffffff)
ok(closed(s), "4 GiB option length: dropped before reading or allocating it")

s, _ = connect()
opt(s, GO, b"\0" * 70000)
o, typ, msg = reply(s)
ok(o == GO and typ == ERR + 9, "70000-byte option: NBD_REP_ERR_TOO_BIG after skipping it")
opt(s, 200, b"junk")
o, typ, msg = reply(s)
ok(typ == ERR + 1, "unknown option: NBD_REP_ERR_UNSUP")
opt(s, INFO, b"\0\0\0")
o, typ, msg = reply(s)
ok(typ == ERR + 3, "truncated NBD_OPT_INFO: NBD_REP_ERR_INVALID")
opt(s, GO, struct.pack(">I", 1000) + b"lab" + b"\0\0")
o, typ, msg = reply(s)
ok(typ == ERR + 3, "NBD_OPT_GO name length beyond the payload: NBD_REP_ERR_INVALID")
opt(s, GO, name(b"lab\0x") + b"\0\0")
o, typ, msg = reply(s)
ok(typ == ERR + 3, "export name with a NUL: NBD_REP_ERR_INVALID")
opt(s, SETMETA, name(b"lab") + struct.pack(">I", 1) + name(b"base:allocation"))
o, typ, msg = reply(s)
ok(typ == ERR + 3, "SET_META_CONTEXT before structured replies: NBD_REP_ERR_INVALID")
opt(s, STARTTLS)
o, typ, msg = reply(s)
ok(typ == ERR + 2, "STARTTLS without TLS configured: NBD_REP_ERR_POLICY")
opt(s, GO, name(b"lab/nobody") + b"\0\0")
o, typ, msg = reply(s)
ok(typ == ERR + 6 and b"nobody" in msg, "GO of an unknown export: NBD_REP_ERR_UNKNOWN with a message")
opt(s, SR, b"x")
o, typ, msg = reply(s)
ok(typ == ERR + 3, "STRUCTURED_REPLY with data: NBD_REP_ERR_INVALID")
opt(s, ABORT)
o, typ, msg = reply(s)
ok(typ == 1 and closed(s), "ABORT: ACK, then the server closes")

s, _ = connect()
opt(s, EXPORT_NAME, b"no-such-image")
ok(closed(s), "EXPORT_NAME of an unknown export: dropped (no error reply exists)")

# transmission on the client export (EXPORT_NAME, NO_ZEROES)
s, _ = connect()
opt(s, EXPORT_NAME, b"lab/pc1")
info = recv_exact(s, 10)
size, tflags = struct.unpack(">QH", info)
ok(size == SIZE and tflags & 1 and not tflags & 2, "EXPORT_NAME lab/pc1: size and writable flags")
req(s, READ, 0, 512, flags=1 << 12, handle=1)
ok(simple(s) == (22, 1), "read with an unknown flag: EINVAL")
req(s, 99, handle=2)
ok(simple(s) == (22, 2), "unknown command: EINVAL")
req(s, WRITE, SIZE - 10, 4096, handle=3, payload=b"\xee" * 4096)
ok(simple(s) == (28, 3), "write past the end: ENOSPC, payload consumed")
big = (32 << 20) + 512
req(s, WRITE, 0, big, handle=4)
s.sendall(b"\xdd" * big)
ok(simple(s) == (22, 4), "write larger than the 32 MiB maximum: EINVAL, payload consumed")
req(s, READ, 0, 4096, handle=5)
err, h = simple(s)
data = recv_exact(s, 4096)
ok(err == 0 and h == 5 and data is not None and b"\xdd" not in data and b"\xee" not in data,
   "connection still in step; refused writes wrote nothing")
req(s, FLUSH, 4096, 0, handle=6)
ok(simple(s) == (22, 6), "flush with a non-zero offset: EINVAL")
req(s, WRITE, 0, 4096, handle=8)  # header and part of the payload, then gone
s.sendall(b"x" * 100)
s.close()
ok(served(), "a connection that dies inside a write payload leaves the server serving")

s, _ = connect()
opt(s, EXPORT_NAME, b"lab")
size, tflags = struct.unpack(">QH", recv_exact(s, 10))
ok(tflags & 2 and tflags & (1 << 8), "EXPORT_NAME lab: read-only, multi-conn")
req(s, WRITE, 0, 512, handle=9, payload=b"\xcc" * 512)
ok(simple(s) == (1, 9), "write to the read-only image export: EPERM")
req(s, TRIM, 0, 512, handle=10)
ok(simple(s) == (1, 10), "trim on the read-only image export: EPERM")
req(s, READ, SIZE, 1, handle=11)
ok(simple(s) == (22, 11), "read past the end: EINVAL")
s.sendall(b"\0" * 28)
ok(closed(s), "bad request magic: connection dropped")

socks = [connect(None)[0] for _ in range(20)]
for x in socks:
    x.close()
ok(served(), "20 connections abandoned mid-greeting: still serving")
print(f"1..{count}")
sys.exit(1 if failed else 0)
