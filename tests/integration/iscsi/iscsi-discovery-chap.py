#!/usr/bin/env python3
"""iscsi-discovery-chap.py PORT INITIATOR USER SECRET TUSER TSECRET — mutual
CHAP (RFC 7143 §12.1.3) on a discovery session, driven byte by byte: the
target must accept our response, answer our challenge with TUSER and
MD5(id || TSECRET || challenge), and then list targets. Exit 0 on success."""
import hashlib
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import iscsi_raw as ir  # noqa: E402

PORT, INI, USER, SECRET, TUSER, TSECRET = sys.argv[1:7]


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


c = ir.Conn(int(PORT))
st, keys, _ = c.login_pdu([("InitiatorName", INI), ("SessionType", "Discovery"),
                           ("AuthMethod", "CHAP")], csg=0, nsg=1, transit=False)
if st != 0 or keys.get("AuthMethod") != "CHAP":
    fail("AuthMethod: status 0x%04x keys %r" % (st, keys))
st, keys, _ = c.login_pdu([("CHAP_A", "5")], csg=0, nsg=1, transit=False)
if st != 0 or "CHAP_C" not in keys:
    fail("CHAP_A: status 0x%04x keys %r" % (st, keys))
cid = int(keys["CHAP_I"])
chal = bytes.fromhex(keys["CHAP_C"][2:])
resp = hashlib.md5(bytes([cid]) + SECRET.encode() + chal).digest()
my_id, my_chal = 77, os.urandom(16)
st, keys, rsp = c.login_pdu([("CHAP_N", USER), ("CHAP_R", "0x" + resp.hex()),
                             ("CHAP_I", str(my_id)), ("CHAP_C", "0x" + my_chal.hex())],
                            csg=0, nsg=1, transit=True)
if st != 0:
    fail("CHAP response refused: 0x%04x" % st)
want = hashlib.md5(bytes([my_id]) + TSECRET.encode() + my_chal).digest()
if keys.get("CHAP_N") != TUSER or keys.get("CHAP_R", "").lower() != "0x" + want.hex():
    fail("target's mutual answer %r" % keys)
st, keys, rsp = c.login_pdu([("HeaderDigest", "None"), ("DataDigest", "None")], csg=1, nsg=3)
if st != 0 or not rsp.bhs[1] & 0x80:
    fail("operational stage: 0x%04x" % st)
c.cmdsn = c.expcmdsn = rsp.u32(28)
b = ir.bhs(ir.OP_TEXT, 0x80, itt=0x77, f20=ir.RSVD, f24=c.cmdsn, f28=c.statsn + 1)
c.send(b, b"SendTargets=All\0")
p = c.recv()
if p.opcode != ir.OP_TEXT_RSP or b"TargetName=" not in p.data:
    fail("SendTargets after mutual CHAP: %r %r" % (p, p.data))
print("# mutual discovery CHAP, then", p.data.split(b"\0")[0].decode())
