#!/usr/bin/env python3
"""Writes the seed corpora of the NBD fuzzers (corpus/handshake,
corpus/transmission). Run from this folder after changing a seed; the
generated files are committed."""
import os
import struct

IHAVEOPT = 0x49484156454F5054
REQ = 0x25609513
FIXED, NOZ = 1, 2
(EXPORT_NAME, ABORT, LIST, STARTTLS, INFO, GO, SR, LISTMETA, SETMETA) = (1, 2, 3, 5, 6, 7, 8, 9, 10)
READ, WRITE, DISC, FLUSH, TRIM, CACHE, WZ, BS = range(8)
FUA, NO_HOLE, DF, REQ_ONE, FAST_ZERO = 1, 2, 4, 8, 16


def opt(o, data=b""):
    return struct.pack(">QII", IHAVEOPT, o, len(data)) + data


def name(s):
    b = s.encode()
    return struct.pack(">I", len(b)) + b


def info(export, infos=()):
    return name(export) + struct.pack(">H", len(infos)) + b"".join(struct.pack(">H", i) for i in infos)


def meta(export, queries):
    return name(export) + struct.pack(">I", len(queries)) + b"".join(name(q) for q in queries)


def req(typ, off=0, length=0, flags=0, handle=1, payload=b""):
    return struct.pack(">IHHQQI", REQ, flags, typ, handle, off, length) + payload


def write(folder, fname, data):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, fname), "wb") as f:
        f.write(data)


flags = struct.pack(">I", FIXED | NOZ)
hs = "corpus/handshake"
write(hs, "list-abort", flags + opt(LIST) + opt(ABORT))
write(hs, "full-go", flags + opt(SR) + opt(LISTMETA, meta("img/c1", [])) +
      opt(SETMETA, meta("img/c1", ["base:allocation", "ovgate:overlay"])) +
      opt(INFO, info("img", (1, 2, 3))) + opt(GO, info("img/c1", (0, 3))) +
      req(READ, 0, 4096) + req(BS, 0, 65536, REQ_ONE) + req(DISC))
write(hs, "export-name", struct.pack(">I", FIXED) + opt(EXPORT_NAME, b"img") +
      req(READ, 512, 512) + req(DISC))
write(hs, "starttls", flags + opt(STARTTLS) + b"\x16\x03\x01\x00\x05hello")
write(hs, "unknown-and-bad", flags + opt(99, b"xyz") + opt(INFO, b"\x00\x00\xff\xff") +
      opt(SETMETA, meta("img", ["base:"] * 3)) + opt(GO, info("nope")) +
      opt(LIST, b"x") + struct.pack(">QII", IHAVEOPT, GO, 70000) + b"\0" * 100)
write(hs, "not-fixed", struct.pack(">I", 0) + opt(LIST))
write(hs, "tls-export", flags + opt(GO, info("img/tls", (2,))) + opt(ABORT))

tx = "corpus/transmission"
write(tx, "all-commands", req(READ, 0, 65536) + req(READ, 4096, 100, DF) +
      req(WRITE, 0, 512, FUA, payload=b"\xa5" * 512) + req(FLUSH) + req(TRIM, 8192, 8192) +
      req(WZ, 16384, 20000, NO_HOLE | FAST_ZERO) + req(BS, 0, 65536) +
      req(BS, 4096, 8192, REQ_ONE) + req(CACHE, 0, 131072) + req(READ, 0, 131072) + req(DISC))
write(tx, "invalid", req(READ, 0, 512, 1 << 9) + req(READ, 1 << 40, 512) +
      req(WRITE, 262100, 100, payload=b"\0" * 100) + req(42) + req(FLUSH, 1, 1) +
      req(BS, 0, 0) + req(READ, 0, 0) + req(DISC))
write(tx, "bad-magic", req(READ, 0, 512) + b"NOTMAGIC" + b"\0" * 20)
write(tx, "short-write", req(WRITE, 0, 4096, payload=b"\x01" * 100))
write(tx, "oversized-write", req(WRITE, 0, (32 << 20) + 1, payload=b"\x02" * 1000))
