#!/usr/bin/env python3
"""Side-by-side benchmark of ovgated against the peers it replaces.

One run measures, on loopback only and interleaved (A B A B ...):

  iSCSI  ovgated (client overlay)        vs tgtd serving the raw image
  NBD    ovgated (client overlay)        vs nbdkit file + cow filter,
                                            qemu-nbd with a qcow2 overlay,
                                            nbdkit memory (no-storage ceiling)

and prints one markdown table per protocol with medians, ratios ovgated/peer
and the goal of each row. docs/benchmarks.md explains every row and goal.

The script starts every server it measures itself, in a private temporary
directory, and stops exactly those processes (by PID) when it ends, also on
Ctrl-C. It never touches other tgtd/nbdkit/qemu-nbd processes.
"""

import argparse
import datetime
import errno
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

IMAGE = "bench"
TARGET_PREFIX = "iqn.2026-11.org.ovgate"
INITIATOR_PREFIX = "iqn.2026-11.org.ovgate.bench"
TGT_TARGET = "iqn.2026-11.org.ovgate.bench:tgtd"
# qemu-img bench has no random mode: a stride of a prime number of blocks
# visits every block of a power-of-two sized image in scattered order.
STRIDE_PRIME = 7919
KIB = 1024
MIB = 1024 * 1024
CONCURRENT_QD = 4  # queue depth of each initiator/client in the N-client rows

SRC_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class BenchError(Exception):
    pass


START = time.monotonic()


def log(msg):
    sys.stderr.write("[%6.1fs] %s\n" % (time.monotonic() - START, msg))
    sys.stderr.flush()


def free_port():
    """An unused loopback TCP port (the kernel's pick; tiny race accepted)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_tcp(port, proc_alive, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            pass
        if not proc_alive():
            raise BenchError("server exited before listening on port %d" % port)
        time.sleep(0.05)
    raise BenchError("nothing listens on 127.0.0.1:%d after %.0f s" % (port, timeout))


def pid_alive(pid):
    """True while pid exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def read_pidfile(path, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(path) as f:
                text = f.read().strip()
            if text:
                return int(text)
        except FileNotFoundError:
            pass
        time.sleep(0.05)
    raise BenchError("pid file %s did not appear" % path)


def run(cmd, timeout=120, env=None, check=True):
    """Run a command, return its CompletedProcess; raise with its stderr on failure."""
    try:
        cp = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                            timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        raise BenchError("timed out after %d s: %s" % (timeout, " ".join(cmd)))
    if check and cp.returncode != 0:
        raise BenchError("%s failed (exit %d): %s" % (
            " ".join(cmd), cp.returncode, (cp.stderr or cp.stdout).strip()[-800:]))
    return cp


class Procs:
    """Every process this script started, so that cleanup stops exactly those."""

    def __init__(self):
        self.children = []   # subprocess.Popen we wait for
        self.daemons = []    # (pid, name) of self-daemonizing servers (pid files)

    def popen(self, cmd, logpath, env=None):
        logf = open(logpath, "ab")
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                             env=env)
        logf.close()
        self.children.append(p)
        return p

    def adopt(self, pid, name):
        self.daemons.append((pid, name))

    def stop_child(self, p, grace=10.0):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(grace)
            except subprocess.TimeoutExpired:
                log("  %s (pid %d) ignored SIGTERM: SIGKILL" % (p.args[0], p.pid))
                p.kill()
                p.wait()
        if p in self.children:
            self.children.remove(p)

    def stop_daemon(self, pid, name, grace=10.0):
        if pid_alive(pid):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + grace
            while pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.02)
            if pid_alive(pid):
                log("  %s (pid %d) ignored SIGTERM: SIGKILL" % (name, pid))
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if (pid, name) in self.daemons:
            self.daemons.remove((pid, name))

    def stop_all(self):
        for pid, name in list(self.daemons):
            self.stop_daemon(pid, name)
        for p in list(self.children):
            self.stop_child(p)


# ---------------------------------------------------------------------------
# Files and page cache


def make_base(path, size):
    """A raw image filled with non-zero data, so that reads move real bytes."""
    block = bytearray(os.urandom(MIB))
    with open(path, "wb") as f:
        for i in range(size // MIB):
            block[0:8] = (i + 1).to_bytes(8, "little")
            f.write(block)


def warm(paths):
    """Read files fully so the page cache holds them right before a measurement
    (MACHINE-NOTES: a reclaim daemon drops pages untouched for about a minute)."""
    buf = bytearray(4 * MIB)
    for top in paths:
        files = []
        if os.path.isdir(top):
            for d, _, names in os.walk(top):
                files.extend(os.path.join(d, n) for n in names)
        else:
            files.append(top)
        for path in files:
            try:
                if os.path.isfile(path):
                    warm_file(path, buf)
            except OSError:
                pass


def warm_file(path, buf):
    """Read the data extents of one file; holes are skipped (overlays are
    sparse files as large as the disk, and reading zeros warms nothing)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        end = os.fstat(fd).st_size
        off = 0
        while off < end:
            try:
                off = os.lseek(fd, off, os.SEEK_DATA)
                hole = os.lseek(fd, off, os.SEEK_HOLE)
            except OSError as e:
                if e.errno == errno.ENXIO:  # no data after off
                    break
                hole = end  # no SEEK_DATA on this file system: read it all
            while off < hole:
                n = os.preadv(fd, [memoryview(buf)[:min(len(buf), hole - off)]], off)
                if n <= 0:
                    break
                off += n
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------
# Servers. Each knows how to start, stop, what to warm, and its endpoints.


class IscsiEndpoint:
    def __init__(self, port, target, lun, initiator):
        self.port, self.target, self.lun, self.initiator = port, target, lun, initiator

    def url(self):
        return "iscsi://127.0.0.1:%d/%s/%d" % (self.port, self.target, self.lun)

    def qemu_args(self):
        opts = ("driver=raw,file.driver=iscsi,file.transport=tcp,file.portal=127.0.0.1:%d,"
                "file.target=%s,file.lun=%d,file.initiator-name=%s"
                % (self.port, self.target, self.lun, self.initiator))
        return ["--image-opts", opts]


class NbdEndpoint:
    def __init__(self, port, export):
        self.port, self.export = port, export

    def url(self):
        return "nbd://127.0.0.1:%d/%s" % (self.port, self.export)

    def qemu_args(self):
        return ["-f", "raw", self.url()]


def initiator(client):
    return "%s:%s" % (INITIATOR_PREFIX, client)


class Ovgated:
    label = "ovgated"

    def __init__(self, ctx, ovgated, ovctl, clients):
        self.ctx, self.bin, self.ovctl = ctx, ovgated, ovctl
        self.store = os.path.join(ctx.work, "store")
        self.clients = clients
        self.proc = None

    def _ovctl(self, *args):
        return run([self.ovctl, "--store", self.store] + list(args), timeout=300)

    def setup(self, base):
        os.makedirs(self.store, exist_ok=True)
        self._ovctl("init")
        self._ovctl("image", "create", IMAGE, "--from", base)
        for c in self.clients:
            self._ovctl("client", "add", c, "--image", IMAGE, "--iqn", initiator(c))

    def start(self):
        portfile = os.path.join(self.ctx.work, "ovgated.ports")
        cmd = [self.bin, "--store", self.store, "--listen-iscsi", "127.0.0.1:0",
               "--listen-nbd", "127.0.0.1:0", "--port-file", portfile,
               "--control-socket", os.path.join(self.ctx.work, "ovgated.sock"),
               "--log-level", "warning"]
        self.log = os.path.join(self.ctx.work, "ovgated.log")
        self.proc = self.ctx.procs.popen(cmd, self.log)
        deadline = time.monotonic() + 30
        ports = {}
        while time.monotonic() < deadline and not ("iscsi" in ports and "nbd" in ports):
            if self.proc.poll() is not None:
                raise BenchError("ovgated exited (%d): %s" % (self.proc.returncode,
                                                              tail(self.log)))
            try:
                with open(portfile) as f:
                    for line in f:
                        parts = line.split()
                        if len(parts) >= 2:
                            ports[parts[0]] = int(parts[1].rsplit(":", 1)[1])
            except (FileNotFoundError, ValueError):
                pass
            time.sleep(0.05)
        if "iscsi" not in ports or "nbd" not in ports:
            raise BenchError("ovgated wrote no usable port file: %s" % tail(self.log))
        self.iscsi_port, self.nbd_port = ports["iscsi"], ports["nbd"]

    def stop(self):
        if self.proc:
            self.ctx.procs.stop_child(self.proc, grace=20)
            self.proc = None

    def warm_paths(self):
        return [self.store]

    def death_note(self):
        """Why measurements fail if ovgated itself has gone, else ''."""
        if self.proc and self.proc.poll() is not None:
            return " [ovgated exited with %d: %s]" % (self.proc.returncode, tail(self.log, 5))
        return ""

    def iscsi(self, client):
        return IscsiEndpoint(self.iscsi_port, "%s:%s" % (TARGET_PREFIX, IMAGE), 0,
                             initiator(client))

    def nbd(self, client):
        return NbdEndpoint(self.nbd_port, "%s/%s" % (IMAGE, client))


class Tgtd:
    """tgtd serving a copy of the raw base (it has no copy-on-write; the copy
    keeps the golden image unmodified by the write rows)."""
    label = "tgtd"

    def __init__(self, ctx):
        self.ctx = ctx
        self.raw = os.path.join(ctx.work, "tgtd.raw")
        self.proc = None

    def _adm(self, *args, check=True):
        return run(["tgtadm", "-C", str(self.cport)] + list(args), timeout=60, check=check)

    def start(self, base):
        shutil.copyfile(base, self.raw)
        self.port = free_port()
        # The control port only names tgtd's unix socket (/var/run/tgtd/
        # socket.N, N <= 32767); pick one nobody uses.
        self.cport = 20000 + self.port % 12000
        while os.path.exists(self._socket()):
            self.cport += 1
        self.proc = self.ctx.procs.popen(
            ["tgtd", "-f", "-C", str(self.cport), "--iscsi",
             "portal=127.0.0.1:%d" % self.port],
            os.path.join(self.ctx.work, "tgtd.log"))
        wait_tcp(self.port, lambda: self.proc.poll() is None)
        self._adm("--lld", "iscsi", "--op", "new", "--mode", "target", "--tid", "1",
                  "-T", TGT_TARGET)
        self._adm("--lld", "iscsi", "--op", "new", "--mode", "logicalunit", "--tid", "1",
                  "--lun", "1", "-b", self.raw)
        self._adm("--lld", "iscsi", "--op", "bind", "--mode", "target", "--tid", "1",
                  "-I", "ALL")

    def stop(self):
        if not self.proc:
            return
        if self.proc.poll() is None:
            # MACHINE-NOTES: tgtd ignores SIGTERM while targets exist. Offline,
            # delete the target, then ask it to exit; SIGTERM/SIGKILL of our own
            # PID only as the last resort.
            self._adm("--op", "update", "--mode", "sys", "--name", "State", "-v", "offline",
                      check=False)
            self._adm("--lld", "iscsi", "--op", "delete", "--mode", "target", "--tid", "1",
                      "--force", check=False)
            self._adm("--op", "delete", "--mode", "system", check=False)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        self.ctx.procs.stop_child(self.proc, grace=5)
        self.proc = None
        for path in (self._socket(), self._socket() + ".lock"):
            if os.path.exists(path):  # ours: it did not exist before start()
                os.unlink(path)

    def _socket(self):
        return "/var/run/tgtd/socket.%d" % self.cport

    def warm_paths(self):
        return [self.raw]

    def iscsi(self, client):
        return IscsiEndpoint(self.port, TGT_TARGET, 1, initiator(client))


class NbdkitCow:
    """N nbdkit processes, each `file` plugin on the base + its own `cow`
    overlay (the cow filter keeps one overlay per nbdkit process)."""
    label = "nbdkit+cow"

    def __init__(self, ctx, n):
        self.ctx, self.n = ctx, n
        self.pids, self.ports = [], []

    def start(self, base):
        env = dict(os.environ, TMPDIR=self.ctx.work)  # where cow puts its overlay
        for i in range(self.n):
            port = free_port()
            pidfile = os.path.join(self.ctx.work, "nbdkit-cow-%d.pid" % i)
            # MACHINE-NOTES: nbdkit -f dies with its parent; use its daemon mode.
            run(["nbdkit", "-P", pidfile, "-i", "127.0.0.1", "-p", str(port),
                 "--filter=cow", "file", base], env=env)
            pid = read_pidfile(pidfile)
            self.ctx.procs.adopt(pid, "nbdkit")
            self.pids.append(pid)
            self.ports.append(port)

    def stop(self):
        for pid in self.pids:
            self.ctx.procs.stop_daemon(pid, "nbdkit")
        self.pids, self.ports = [], []

    def warm_paths(self):
        return [self.ctx.base]

    def nbd(self, i):
        return NbdEndpoint(self.ports[i], "")


class QemuNbd:
    """N qemu-nbd processes, each serving its own qcow2 overlay on the raw base."""
    label = "qemu-nbd+qcow2"

    def __init__(self, ctx, n):
        self.ctx, self.n = ctx, n
        self.pids, self.ports, self.files = [], [], []

    def start(self, base):
        for i in range(self.n):
            ov = os.path.join(self.ctx.work, "qemu-nbd-%d.qcow2" % i)
            if os.path.exists(ov):
                os.unlink(ov)
            run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", base, "-F", "raw", ov])
            port = free_port()
            pidfile = os.path.join(self.ctx.work, "qemu-nbd-%d.pid" % i)
            # MACHINE-NOTES: without --shared/--persistent it serves one client.
            run(["qemu-nbd", "--fork", "--pid-file=" + pidfile, "-b", "127.0.0.1",
                 "-p", str(port), "-x", "ov", "-f", "qcow2", "--shared=8", "--persistent",
                 ov])
            pid = read_pidfile(pidfile)
            self.ctx.procs.adopt(pid, "qemu-nbd")
            self.pids.append(pid)
            self.ports.append(port)
            self.files.append(ov)

    def stop(self):
        for pid in self.pids:
            self.ctx.procs.stop_daemon(pid, "qemu-nbd")
        for ov in self.files:
            if os.path.exists(ov):
                os.unlink(ov)
        self.pids, self.ports, self.files = [], [], []

    def warm_paths(self):
        return [self.ctx.base] + self.files

    def nbd(self, i):
        return NbdEndpoint(self.ports[i], "ov")


class NbdkitMemory:
    """nbdkit `memory` plugin holding a copy of the base: the protocol ceiling
    of an NBD server with no storage behind it."""
    label = "memory"

    def __init__(self, ctx):
        self.ctx = ctx
        self.pid = None

    def start(self, base):
        self.port = free_port()
        pidfile = os.path.join(self.ctx.work, "nbdkit-memory.pid")
        run(["nbdkit", "-P", pidfile, "-i", "127.0.0.1", "-p", str(self.port), "memory",
             str(os.path.getsize(base))])
        self.pid = read_pidfile(pidfile)
        self.ctx.procs.adopt(self.pid, "nbdkit")
        # Real bytes in it, so that reads copy data rather than zero-fill holes.
        run(["nbdcopy", base, self.nbd(0).url()], timeout=600)

    def stop(self):
        if self.pid:
            self.ctx.procs.stop_daemon(self.pid, "nbdkit")
            self.pid = None

    def warm_paths(self):
        return []

    def nbd(self, i):
        return NbdEndpoint(self.port, "")


def tail(path, n=15):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:]).strip()
    except OSError:
        return ""


# ---------------------------------------------------------------------------
# Load generators. Each returns one figure: IOPS, or MB/s (10^6 bytes).


def qemu_img_bench(ep, rw, bs, qd, stride, count, timeout):
    """Seconds qemu-img bench takes for `count` requests."""
    cmd = ["qemu-img", "bench", "-c", str(count), "-d", str(qd), "-s", str(bs),
           "-S", str(stride)]
    if rw == "write":
        cmd.append("-w")
    cp = run(cmd + ep.qemu_args(), timeout=timeout)
    m = re.search(r"Run completed in ([0-9.]+) seconds", cp.stdout)
    if not m:
        raise BenchError("qemu-img bench printed no result: %s" % cp.stdout.strip()[-300:])
    return max(float(m.group(1)), 1e-6)


def iscsi_block_size(ep):
    cp = run(["iscsi-readcapacity16", "-i", ep.initiator, ep.url()], timeout=60)
    m = re.search(r"LOGICAL BLOCK LENGTH IN BYTES:\s*(\d+)", cp.stdout)
    if not m:
        raise BenchError("iscsi-readcapacity16 printed no block length: %s" % cp.stdout)
    return int(m.group(1))


def iscsi_perf(eps, bs, qd, random, secs):
    """Aggregate IOPS of one iscsi-perf process per endpoint, started together."""
    procs = []
    for i, ep in enumerate(eps):
        blocks = max(1, bs // ep.block_size)
        cmd = ["iscsi-perf", "-i", ep.initiator, "-m", str(qd), "-b", str(blocks),
               "-t", str(secs)]
        if random:
            cmd.append("-r")
        procs.append(subprocess.Popen(cmd + [ep.url()], stdin=subprocess.DEVNULL,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True))
    total = 0
    errors = []
    try:
        for p in procs:
            try:
                out, _ = p.communicate(timeout=secs + 45)
            except subprocess.TimeoutExpired:
                p.kill()
                out, _ = p.communicate()
            found = re.findall(r"iops average (\d+)", out)
            if p.returncode != 0 or not found:
                errors.append("exit %s: %s" % (p.returncode, out.strip()[-300:]))
            else:
                total += int(found[-1])
    finally:
        for p in procs:  # interrupted: end the clients we started
            if p.poll() is None:
                p.kill()
                p.wait()
    if errors:
        raise BenchError("iscsi-perf failed on %d of %d initiators: %s"
                         % (len(errors), len(eps), errors[0]))
    return total


def fio_nbd(ctx, eps, rw, bs, qd, secs, once=None):
    """fio's nbd engine, one job (one NBD connection) per endpoint, summed.
    With once=BYTES each job reads its first BYTES once instead of running
    for secs; the figure is then total bytes / the slowest job's time."""
    jobfile = os.path.join(ctx.work, "job.fio")
    outfile = os.path.join(ctx.work, "fio.json")
    lines = ["[global]", "ioengine=nbd", "rw=%s" % rw, "bs=%d" % bs, "iodepth=%d" % qd,
             "thread=1", "group_reporting=1", "randrepeat=0", "norandommap=1"]
    if once:
        lines += ["size=%d" % once]
        secs = 120
    else:
        lines += ["time_based=1", "runtime=%d" % secs]
    for i, ep in enumerate(eps):
        lines += ["[c%d]" % i, "uri=%s" % ep.url()]
    with open(jobfile, "w") as f:
        f.write("\n".join(lines) + "\n")
    if os.path.exists(outfile):
        os.unlink(outfile)
    run(["fio", "--output-format=json", "--output=" + outfile, jobfile], timeout=secs + 45)
    with open(outfile) as f:
        text = f.read()
    # The nbd engine prints "fio: connected to NBD server" into the output too.
    try:
        data = json.loads(text[text.index("{"):])
    except ValueError:
        raise BenchError("fio wrote no JSON result: %s" % text[-300:])
    if any(j.get("error") for j in data["jobs"]):
        raise BenchError("fio reported an error: %s" % data["jobs"])
    side = "write" if "write" in rw else "read"
    if bs >= MIB or once:
        return sum(j[side]["bw_bytes"] for j in data["jobs"]) / 1e6
    return sum(j[side]["iops"] for j in data["jobs"])


# ---------------------------------------------------------------------------
# Rows


class Row:
    """One line of a table: a workload measured by one tool on several servers.

    measure(server_key) returns one figure; goals are (peer_key, min_ratio,
    strict) checked on median(ovgated) / median(peer)."""

    def __init__(self, proto, name, tool, unit, servers, measure, goals, prepare=None):
        self.proto, self.name, self.tool, self.unit = proto, name, tool, unit
        self.servers, self.measure, self.goals = servers, measure, goals
        self.prepare = prepare
        self.results = {k: [] for k in servers}
        self.errors = {}

    def median(self, key):
        vals = self.results.get(key) or []
        return statistics.median(vals) if vals else None

    def ratio(self, key):
        a, b = self.median("ovgated"), self.median(key)
        if a is None or not b:
            return None
        return a / b


class QemuBenchRow(Row):
    """qemu-img bench counts requests, not time: a short probe per server
    (discarded; it also warms the connection path) sizes the count so that a
    run lasts about `secs` seconds."""

    def __init__(self, ctx, proto, name, unit, servers, endpoint_of, rw, bs, qd, stride,
                 goals):
        self.ctx = ctx
        self.endpoint_of, self.rw, self.bs, self.qd, self.stride = \
            endpoint_of, rw, bs, qd, stride
        self.counts = {}
        super().__init__(proto, name, "qemu-img bench", unit, servers, self._measure, goals,
                         prepare=self._calibrate)

    def _calibrate(self, key):
        ep = self.endpoint_of(key)
        count = max(self.qd * 4, (4 * MIB) // self.bs)
        while True:
            secs = qemu_img_bench(ep, self.rw, self.bs, self.qd, self.stride, count,
                                  timeout=45)
            if secs >= 0.25 or count >= 50_000_000:
                break
            count *= 4
        self.counts[key] = max(self.qd, int(count / secs * self.ctx.secs))

    def _measure(self, key):
        count = self.counts[key]
        secs = qemu_img_bench(self.endpoint_of(key), self.rw, self.bs, self.qd, self.stride,
                              count, timeout=int(self.ctx.secs * 10 + 45))
        if self.bs >= MIB:
            return count * self.bs / secs / 1e6
        return count / secs


def iscsi_rows(ctx, servers):
    """servers: key -> server with .iscsi(client)."""
    keys = list(servers)
    stride = STRIDE_PRIME * 4 * KIB
    all_ok = [("tgtd", 1.0, False)]
    rows = []

    def ep(client):
        def of(key):
            e = servers[key].iscsi(client)
            e.block_size = ctx.block_sizes[key]
            return e
        return of

    def perf(client_list, bs, qd, random):
        return lambda key: iscsi_perf([ep(c)(key) for c in client_list], bs, qd, random,
                                      ctx.secs)

    rd, wr = ep("ird"), ep("iwr")
    rows.append(Row("iscsi", "4 KiB random read QD1 (IOPS)", "iscsi-perf", "IOPS", keys,
                    perf(["ird"], 4 * KIB, 1, True), [("tgtd", 2.0, False)]))
    rows.append(QemuBenchRow(ctx, "iscsi", "4 KiB random read QD1 (IOPS)", "IOPS", keys, rd,
                             "read", 4 * KIB, 1, stride, [("tgtd", 2.0, False)]))
    rows.append(Row("iscsi", "4 KiB random read QD32 (IOPS)", "iscsi-perf", "IOPS", keys,
                    perf(["ird"], 4 * KIB, 32, True), [("tgtd", 1.5, False)]))
    rows.append(QemuBenchRow(ctx, "iscsi", "4 KiB random read QD32 (IOPS)", "IOPS", keys, rd,
                             "read", 4 * KIB, 32, stride, [("tgtd", 1.5, False)]))
    rows.append(Row("iscsi", "1 MiB sequential read QD8 (MB/s)", "iscsi-perf", "MB/s", keys,
                    lambda key: perf(["ird"], MIB, 8, False)(key) * MIB / 1e6,
                    [("tgtd", 2.0, False)]))
    rows.append(QemuBenchRow(ctx, "iscsi", "1 MiB sequential read QD8 (MB/s)", "MB/s", keys,
                             rd, "read", MIB, 8, MIB, [("tgtd", 2.0, False)]))
    rows.append(QemuBenchRow(ctx, "iscsi", "4 KiB random write QD32 (IOPS)", "IOPS", keys, wr,
                             "write", 4 * KIB, 32, stride, all_ok))
    rows.append(QemuBenchRow(ctx, "iscsi", "1 MiB sequential write QD8 (MB/s)", "MB/s", keys,
                             wr, "write", MIB, 8, MIB, all_ok))
    for n in ctx.concurrency:
        clients = ["ic%02d" % i for i in range(n)]
        rows.append(Row("iscsi", "%d initiators, 4 KiB random read QD%d each (IOPS)"
                        % (n, CONCURRENT_QD), "iscsi-perf", "IOPS", keys,
                        perf(clients, 4 * KIB, CONCURRENT_QD, True), all_ok))
    if ctx.concurrency:
        n = max(ctx.concurrency)
        rows.append(Row("iscsi", storm_name(ctx, n), "qemu-img bench", "MB/s", keys,
                        lambda key: qemu_img_storm([ep("ic%02d" % i)(key) for i in range(n)],
                                                   ctx.boot_set, ctx.secs),
                        all_ok))
    return rows


def storm_name(ctx, n):
    return ("boot storm: %d clients each read the same %d MiB once, 64 KiB QD%d (MB/s)"
            % (n, ctx.boot_set // MIB, CONCURRENT_QD))


def qemu_img_storm(eps, set_bytes, secs):
    """N qemu-img bench processes started together, each reading the first
    set_bytes of its disk once in order: aggregate MB/s over the wall time
    until the last one is done (logins included, as in a real boot)."""
    bs = 64 * KIB
    t0 = time.monotonic()
    procs = [subprocess.Popen(["qemu-img", "bench", "-c", str(set_bytes // bs), "-d",
                               str(CONCURRENT_QD), "-s", str(bs)] + ep.qemu_args(),
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for ep in eps]
    errors = []
    try:
        for p in procs:
            try:
                out, _ = p.communicate(timeout=max(0.0, t0 + secs * 10 + 60 - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                out, _ = p.communicate()
            if p.returncode != 0 or "Run completed" not in out:
                errors.append("exit %s: %s" % (p.returncode, out.strip()[-300:]))
        wall = time.monotonic() - t0
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    if errors:
        raise BenchError("qemu-img bench failed on %d of %d clients: %s"
                         % (len(errors), len(eps), errors[0]))
    return len(eps) * set_bytes / wall / 1e6


def nbd_single_rows(ctx, servers):
    """servers: key -> server with .nbd(i); ovgated's nbd() takes a client name."""
    keys = list(servers)
    stride = STRIDE_PRIME * 4 * KIB
    rows = []

    def ep(role):
        def of(key):
            if key == "ovgated":
                return servers[key].nbd(role)
            return servers[key].nbd(0)
        return of

    def fio(role, rw, bs, qd):
        return lambda key: fio_nbd(ctx, [ep(role)(key)], rw, bs, qd, ctx.secs)

    def goals(read, cow=(1.0, True)):
        g = [("nbdkit-cow",) + cow, ("qemu-nbd", 1.0, True)]
        if read:
            g.append(("memory", 0.7, False))
        return g

    qd1 = [k for k in keys]                    # qemu-nbd is fine at QD1
    qdn = [k for k in keys if k != "qemu-nbd"]  # MACHINE-NOTES: qemu stalls at QD>=2
    specs = [
        ("4 KiB random read QD1 (IOPS)", "nrd", "randread", "read", 4 * KIB, 1, stride,
         goals(True)),
        ("4 KiB random read QD32 (IOPS)", "nrd", "randread", "read", 4 * KIB, 32, stride,
         goals(True, (1.3, False))),
        ("1 MiB sequential read QD8 (MB/s)", "nrd", "read", "read", MIB, 8, MIB, goals(True)),
        ("4 KiB random write QD32 (IOPS)", "nwr", "randwrite", "write", 4 * KIB, 32, stride,
         goals(False)),
        ("1 MiB sequential write QD8 (MB/s)", "nwr", "write", "write", MIB, 8, MIB,
         goals(False)),
    ]
    for name, role, fio_rw, qb_rw, bs, qd, qb_stride, g in specs:
        unit = "MB/s" if bs >= MIB else "IOPS"
        rows.append(Row("nbd", name, "fio nbd", unit, keys, fio(role, fio_rw, bs, qd), g))
        rows.append(QemuBenchRow(ctx, "nbd", name, unit, qd1 if qd == 1 else qdn, ep(role),
                                 qb_rw, bs, qd, qb_stride, g))
    return rows


def nbd_multi_rows(ctx, servers):
    keys = list(servers)
    rows = []
    for n in ctx.concurrency:
        def measure(key, n=n):
            s = servers[key]
            if key == "ovgated":
                eps = [s.nbd("nc%02d" % i) for i in range(n)]
            elif key == "memory":
                eps = [s.nbd(0)] * n
            else:
                eps = [s.nbd(i) for i in range(n)]
            return fio_nbd(ctx, eps, "randread", 4 * KIB, CONCURRENT_QD, ctx.secs)
        rows.append(Row("nbd", "%d clients, 4 KiB random read QD%d each (IOPS)"
                        % (n, CONCURRENT_QD), "fio nbd", "IOPS", keys, measure,
                        [("nbdkit-cow", 1.0, True), ("qemu-nbd", 1.0, True),
                         ("memory", 0.7, False)]))
    if ctx.concurrency:
        n = max(ctx.concurrency)

        def storm(key):
            s = servers[key]
            if key == "ovgated":
                eps = [s.nbd("nc%02d" % i) for i in range(n)]
            elif key == "memory":
                eps = [s.nbd(0)] * n
            else:
                eps = [s.nbd(i) for i in range(n)]
            return fio_nbd(ctx, eps, "read", 64 * KIB, CONCURRENT_QD, ctx.secs,
                           once=ctx.boot_set)
        rows.append(Row("nbd", storm_name(ctx, n), "fio nbd", "MB/s", keys, storm,
                        [("nbdkit-cow", 1.0, True), ("qemu-nbd", 1.0, True),
                         ("memory", 0.7, False)]))
    return rows


def measure_rows(ctx, rows, servers):
    """Interleave servers run by run (A B A B ...), warming each one's files
    right before its measurement. A server that fails a row is dropped from
    that row (the error goes into the report) and the run goes on."""
    caught = (BenchError, OSError, ValueError, KeyError)

    def failed(row, key, live, e):
        note = getattr(servers[key], "death_note", lambda: "")()
        row.errors[key] = str(e) + note
        live.remove(key)
        log("  %s: %s%s" % (key, e, note))

    for row in rows:
        if ctx.row_filter and not any(f in row.name or f in row.tool
                                      for f in ctx.row_filter):
            continue
        log("[%s] %s — %s" % (row.proto, row.name, row.tool))
        live = []
        for key in row.servers:
            if ctx.strikes.get(key, 0) >= 2:  # a hung server costs a timeout per row
                row.errors[key] = "skipped: it failed the two rows before"
            else:
                live.append(key)
        tried = list(live)
        if row.prepare:
            for key in list(live):
                try:
                    warm(servers[key].warm_paths())
                    row.prepare(key)
                except caught as e:
                    failed(row, key, live, e)
        for i in range(ctx.runs):
            for key in list(live):
                warm(servers[key].warm_paths())
                try:
                    v = row.measure(key)
                except caught as e:
                    failed(row, key, live, e)
                    continue
                row.results[key].append(v)
                log("  run %d/%d %-14s %12s %s" % (i + 1, ctx.runs, key, fmt(v), row.unit))
        for key in tried:
            ctx.strikes[key] = ctx.strikes.get(key, 0) + 1 if key in row.errors else 0
        ctx.done_rows.append(row)


def run_ov_bench(ctx, path):
    """bench/ov-bench (the overlay library against plain pread/pwrite, in one
    process): its read and write lines become rows, its flush lines notes."""
    cmd = [path, "--dir", ctx.work] + (["--quick"] if ctx.quick else [])
    log("[overlay] %s" % " ".join(cmd))
    cp = run(cmd, timeout=900)
    specs = [
        ("4 KiB random read, empty overlay (IOPS)", "pread() of the base",
         r"4k random read.*?overlay ([0-9.]+) IOPS, pread ([0-9.]+) IOPS", 0.9),
        ("4 KiB random write, empty overlay, no flush (IOPS)", "pwrite() to a sparse file",
         r"4k random write.*?overlay ([0-9.]+) IOPS, pwrite[^0-9]*([0-9.]+) IOPS", 0.5),
    ]
    rows = []
    for name, plain, pattern, goal in specs:
        m = re.search(pattern, cp.stdout)
        if not m:
            raise BenchError("ov-bench printed no result for %r: %s" % (name, cp.stdout[-400:]))
        rows.append((name, plain, float(m.group(1)), float(m.group(2)), goal))
    ctx.ov_bench = {"rows": rows,
                    "notes": [l for l in cp.stdout.splitlines() if l.startswith("flush")]}
    for l in cp.stdout.splitlines():
        log("  " + l)


# ---------------------------------------------------------------------------
# Report


def fmt(v):
    if v is None:
        return "—"
    if v >= 100:
        return "{:,.0f}".format(v)
    return "{:.1f}".format(v)


def goal_text(row, labels):
    parts, verdicts = [], []
    for peer, minimum, strict in row.goals:
        if peer not in row.servers:
            continue
        r = row.ratio(peer)
        op = ">" if strict else "≥"
        parts.append("%s %.1fx %s" % (op, minimum, labels[peer]))
        if r is None:
            verdicts.append(None)
        else:
            verdicts.append(r > minimum if strict else r >= minimum)
    if not parts:
        return "—", None
    if any(v is None for v in verdicts):
        verdict = "not measured"
    else:
        verdict = "**met**" if all(verdicts) else "**missed**"
    return "%s: %s" % (", ".join(parts), verdict), verdicts


def table(ctx, proto, peers, labels):
    rows = [r for r in ctx.done_rows if r.proto == proto]
    if not rows:
        return []
    head = ["row", "tool", "ovgated"] + [labels[p] for p in peers] + \
        ["ovgated/%s" % labels[p] for p in peers] + ["goal"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r.name, r.tool, cell(r, "ovgated")]
        cells += [cell(r, p) for p in peers]
        for p in peers:
            ratio = r.ratio(p)
            cells.append("—" if ratio is None else "%.2fx" % ratio)
        cells.append(goal_text(r, labels)[0])
        out.append("| " + " | ".join(cells) + " |")
    return out


def cell(row, key):
    if key not in row.servers:
        return "n/a"
    if key in row.errors and not row.results[key]:
        return "error"
    m = row.median(key)
    text = fmt(m)
    if m and "QD1 " in row.name and row.unit == "IOPS":
        text += " (%.0f µs)" % (1e6 / m)  # QD1: IOPS is 1 / round-trip time
    vals = row.results[key]
    if m and len(vals) > 1:
        text += " ±%.0f%%" % (50.0 * (max(vals) - min(vals)) / m)  # half the range
    return text


def report(ctx):
    labels = {"ovgated": "ovgated", "tgtd": "tgtd", "nbdkit-cow": "nbdkit+cow",
              "qemu-nbd": "qemu-nbd+qcow2", "memory": "nbdkit memory"}
    lines = ["# ovgate side-by-side benchmark", "",
             "- date: %s" % datetime.datetime.now(datetime.timezone.utc)
             .strftime("%Y-%m-%d %H:%M UTC"),
             "- machine: %s, %d CPUs, kernel %s" % (platform.machine(), os.cpu_count(),
                                                   platform.release()),
             "- ovgate: %s" % ctx.revision,
             "- load average when the run started: %.1f%s" % (
                 ctx.load, " — the machine was busy: expect noisy figures"
                 if ctx.load > 1.5 else ""),
             "- base image: %d MiB raw, non-zero data; page cache warmed before each "
             "measurement" % (ctx.size // MIB),
             "- the whole run took %.1f minutes" % ((time.monotonic() - START) / 60),
             "- %d run(s) of ~%d s per server and row, interleaved; figures are medians "
             "(± half the range of the runs); ratios compare medians from this run%s" % (
                 ctx.runs, ctx.secs, " (--quick: smoke test, not a measurement)"
                 if ctx.quick else ""),
             ""]
    iscsi = table(ctx, "iscsi", ["tgtd"], labels)
    if iscsi:
        lines += ["## iSCSI: ovgated (client overlay) vs tgtd (raw file)", ""] + iscsi + [""]
    nbd = table(ctx, "nbd", ["nbdkit-cow", "qemu-nbd", "memory"], labels)
    if nbd:
        lines += ["## NBD: ovgated (client overlay) vs nbdkit file+cow, qemu-nbd qcow2 "
                  "overlay, nbdkit memory ceiling", ""] + nbd + [""]
    if ctx.ov_bench:
        lines += ["## Overlay library: bench/ov-bench (in process, overlay vs plain file)",
                  "", "| row | overlay | plain file | overlay/plain | goal |",
                  "|---|---|---|---|---|"]
        for name, plain, a, b, goal in ctx.ov_bench["rows"]:
            r = a / b
            lines.append("| %s | %s | %s (%s) | %.2fx | ≥ %.1fx: %s |" % (
                name, fmt(a), fmt(b), plain, r, goal, "**met**" if r >= goal else "**missed**"))
        if ctx.ov_bench["notes"]:
            lines += ["", "Flush cost (median):", "", "```"] + ctx.ov_bench["notes"] + ["```"]
        lines.append("")
    met = missed = 0
    if ctx.ov_bench:
        for name, plain, a, b, goal in ctx.ov_bench["rows"]:
            if a / b >= goal:
                met += 1
            else:
                missed += 1
    for r in ctx.done_rows:
        _, verdicts = goal_text(r, labels)
        if verdicts and all(v is not None for v in verdicts):
            if all(verdicts):
                met += 1
            else:
                missed += 1
    lines.append("Goals: %d row(s) met, %d missed." % (met, missed))
    errs = [(r, k, e) for r in ctx.done_rows for k, e in r.errors.items()]
    if errs:
        lines += ["", "Errors:", ""]
        for r, k, e in errs:
            lines.append("- %s / %s / %s: %s" % (r.name, r.tool, k, e.replace("\n", " ")[:300]))
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------
# Driver


def find_ovgated(build):
    ovgated = os.path.join(build, "proxy", "ovgated")
    ovctl = os.path.join(build, "cli", "ovctl")
    return ovgated, ovctl


def build_ovgated(build):
    ovgated, ovctl = find_ovgated(build)
    if not os.path.isdir(os.path.join(build, "meson-private")):
        log("setting up %s (release build)" % build)
        run(["meson", "setup", build, "-Dbuildtype=release"], timeout=600).check_returncode()
    log("building ovgated, ovctl and ov-bench in %s" % build)
    run(["meson", "compile", "-C", build, "ovgated", "ovctl"], timeout=1800)
    cp = run(["meson", "compile", "-C", build, "ov-bench"], timeout=1800, check=False)
    if cp.returncode != 0:
        log("ov-bench did not build; its rows are left out: %s" % cp.stdout.strip()[-300:])
    for path in (ovgated, ovctl):
        if not os.access(path, os.X_OK):
            raise BenchError("%s was not built" % path)
    return ovgated, ovctl


def require_tools(names):
    missing = [n for n in names if not shutil.which(n)]
    if missing:
        raise BenchError("missing tools: %s (see docs/benchmarks.md)" % " ".join(missing))


def git_revision():
    cp = run(["git", "-C", SRC_ROOT, "describe", "--always", "--dirty"], check=False)
    return cp.stdout.strip() or "unknown"


class Ctx:
    pass


def parse_args(argv):
    p = argparse.ArgumentParser(description="ovgated vs tgtd, nbdkit+cow, qemu-nbd+qcow2, "
                                "side by side on loopback (docs/benchmarks.md)")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: 1 run of 1 s per server and row, 256 MiB image")
    p.add_argument("--out", help="also write the markdown report to this file")
    p.add_argument("--json", help="write every run's figure to this JSON file")
    p.add_argument("--runs", type=int, help="runs per server and row (default 3)")
    p.add_argument("--secs", type=int, help="seconds per run (default 3)")
    p.add_argument("--size", type=int, help="base image size in MiB (default 1024)")
    p.add_argument("--clients", default="8,32",
                   help="concurrent client counts (default 8,32)")
    p.add_argument("--only", choices=["iscsi", "nbd"], help="one protocol only")
    p.add_argument("--rows", help="comma-separated substrings: only matching rows")
    p.add_argument("--build", default=os.path.join(SRC_ROOT, "_build", "bench"),
                   help="ovgate build directory (set up and compiled if needed)")
    p.add_argument("--no-build", action="store_true",
                   help="use --build as it is, do not run meson compile")
    p.add_argument("--no-ov-bench", action="store_true",
                   help="skip the overlay micro-benchmark (bench/ov-bench)")
    p.add_argument("--peers-only", action="store_true",
                   help="measure the peers only (no ovgated; for debugging the script)")
    p.add_argument("--workdir", default=None,
                   help="parent of the temporary directory (default $TMPDIR or /var/tmp)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    a = p.parse_args(argv)
    a.runs = a.runs or (1 if a.quick else 3)
    a.secs = a.secs or (1 if a.quick else 3)
    a.size = (a.size or (256 if a.quick else 1024)) * MIB
    if a.runs < 1 or a.secs < 1 or a.size < 16 * MIB:
        p.error("--runs and --secs must be >= 1 and --size >= 16")
    try:
        a.concurrency = [int(x) for x in a.clients.split(",") if x]
    except ValueError:
        p.error("--clients takes numbers, e.g. 8,32")
    if any(n < 1 or n > 256 for n in a.concurrency):
        p.error("--clients: each count must be 1..256")
    a.row_filter = [f for f in (a.rows or "").split(",") if f]
    return a


def main(argv):
    args = parse_args(argv)
    ctx = Ctx()
    ctx.quick, ctx.runs, ctx.secs, ctx.size = args.quick, args.runs, args.secs, args.size
    ctx.concurrency, ctx.row_filter = args.concurrency, args.row_filter
    ctx.boot_set = min(64 * MIB, ctx.size // 4)  # what one client reads to boot
    ctx.done_rows = []
    ctx.ov_bench = None
    ctx.strikes = {}
    ctx.load = os.getloadavg()[0]
    ctx.procs = Procs()
    ctx.revision = "not measured (--peers-only)" if args.peers_only else git_revision()

    tools = ["qemu-img", "fio", "nbdkit", "nbdcopy", "qemu-nbd", "tgtd", "tgtadm",
             "iscsi-perf", "iscsi-readcapacity16"]
    require_tools(tools)
    ovgated_bin = ovctl_bin = None
    if not args.peers_only:
        if args.no_build:
            ovgated_bin, ovctl_bin = find_ovgated(args.build)
            for path in (ovgated_bin, ovctl_bin):
                if not os.access(path, os.X_OK):
                    raise BenchError("%s not found (build it, or drop --no-build)" % path)
        else:
            ovgated_bin, ovctl_bin = build_ovgated(args.build)

    parent = args.workdir or os.environ.get("TMPDIR") or "/var/tmp"
    ctx.work = tempfile.mkdtemp(prefix="ovgate-bench.", dir=parent)
    ctx.base = os.path.join(ctx.work, "base.raw")
    log("work directory %s" % ctx.work)

    def on_signal(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_signal)

    maxc = max(ctx.concurrency) if ctx.concurrency else 0
    # Each protocol has its own clients, so every row starts on overlays
    # that only its own protocol's earlier rows have touched.
    clients = [p + c for p in ("i", "n")
               for c in ["rd", "wr"] + ["c%02d" % i for i in range(maxc)]]
    started = []

    def start(server, *a):
        started.append(server)
        server.start(*a)
        return server

    def stop(server):
        server.stop()
        started.remove(server)

    interrupted = False
    try:
        log("creating the %d MiB base image" % (ctx.size // MIB))
        make_base(ctx.base, ctx.size)
        ov = None
        if not args.peers_only:
            ov = Ovgated(ctx, ovgated_bin, ovctl_bin, clients)
            log("ovctl: image %s and %d clients" % (IMAGE, len(clients)))
            ov.setup(ctx.base)
            start(ov)

        ov_bench = os.path.join(args.build, "bench", "ov-bench")
        if not args.peers_only and not args.no_ov_bench and not args.only:
            if os.access(ov_bench, os.X_OK):
                try:
                    run_ov_bench(ctx, ov_bench)
                except BenchError as e:
                    log("ov-bench: %s" % e)
            else:
                log("%s not built: overlay rows left out" % ov_bench)

        if args.only in (None, "iscsi"):
            tgt = start(Tgtd(ctx), ctx.base)
            servers = {"ovgated": ov, "tgtd": tgt} if ov else {"tgtd": tgt}
            ctx.block_sizes = {}
            for key, s in servers.items():
                ctx.block_sizes[key] = iscsi_block_size(s.iscsi("ird"))
            measure_rows(ctx, iscsi_rows(ctx, servers), servers)
            stop(tgt)

        if args.only in (None, "nbd"):
            mem = start(NbdkitMemory(ctx), ctx.base)
            cow = start(NbdkitCow(ctx, 1), ctx.base)
            qn = start(QemuNbd(ctx, 1), ctx.base)
            servers = {"nbdkit-cow": cow, "qemu-nbd": qn, "memory": mem}
            if ov:
                servers = dict(ovgated=ov, **servers)
            measure_rows(ctx, nbd_single_rows(ctx, servers), servers)
            stop(cow)
            stop(qn)
            if ctx.concurrency:
                cow = start(NbdkitCow(ctx, maxc), ctx.base)
                qn = start(QemuNbd(ctx, maxc), ctx.base)
                servers.update({"nbdkit-cow": cow, "qemu-nbd": qn})
                measure_rows(ctx, nbd_multi_rows(ctx, servers), servers)
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted: stopping the servers this script started")
    finally:
        for s in reversed(started):
            try:
                s.stop()
            except Exception as e:  # keep stopping the others
                log("stopping %s: %s" % (s.label, e))
        ctx.procs.stop_all()
        if args.keep:
            log("kept %s" % ctx.work)
        else:
            shutil.rmtree(ctx.work, ignore_errors=True)

    text = report(ctx)
    sys.stdout.write(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump([{"proto": r.proto, "row": r.name, "tool": r.tool, "unit": r.unit,
                        "runs": r.results, "errors": r.errors} for r in ctx.done_rows],
                      f, indent=1)
    return 130 if interrupted else 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BenchError as e:
        log("run-bench: %s" % e)
        sys.exit(1)
