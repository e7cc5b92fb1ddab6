"""Small TAP helpers shared by the NBD integration scripts (python3-libnbd)."""
import sys

import nbd

_count = 0
_failed = 0


def ok(cond, desc):
    global _count, _failed
    _count += 1
    if cond:
        print(f"ok {_count} - {desc}")
    else:
        _failed += 1
        print(f"not ok {_count} - {desc}")
    sys.stdout.flush()
    return cond


def diag(text):
    print("# " + str(text).replace("\n", "\n# "))


def done():
    print(f"1..{_count}")
    sys.exit(1 if _failed else 0)


def nbd_errno(fn, *args, **kwargs):
    """Runs fn; returns the NBD error name it failed with, or None."""
    try:
        fn(*args, **kwargs)
    except nbd.Error as e:
        return e.errno or e.string
    return None


def connect(port, export, structured=True, meta=True, opt_mode=False, tls=None):
    h = nbd.NBD()
    h.set_export_name(export)
    h.set_strict_mode(0)  # let invalid requests reach the server
    h.set_request_structured_replies(structured)
    if meta:
        h.add_meta_context("base:allocation")
        h.add_meta_context("ovgate:overlay")
    if opt_mode:
        h.set_opt_mode(True)
    if tls:
        tls(h)
    h.connect_tcp("127.0.0.1", str(port))
    return h


def extents(h, count, offset, flags=0):
    """Block status as {context: [(length, flags), ...]}."""
    out = {}

    def cb(metacontext, off, entries, err):
        out[metacontext] = list(zip(entries[0::2], entries[1::2]))
        return 0

    h.block_status(count, offset, cb, flags)
    return out
