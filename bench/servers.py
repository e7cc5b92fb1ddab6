"""The servers bench/run-bench.py measures: ovgated and its peers.

Each knows how to start, stop, which files to warm before a measurement, and
its endpoints (what a client connects to).
"""

import os
import shutil
import subprocess
import time

from benchutil import BenchError, free_port, new_pidfile, read_pidfile, run, tail, wait_tcp

IMAGE = "bench"
TARGET_PREFIX = "iqn.2026-11.org.ovgate"
INITIATOR_PREFIX = "iqn.2026-11.org.ovgate.bench"
TGT_TARGET = "iqn.2026-11.org.ovgate.bench:tgtd"


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
            # tgt 1.0.85 ignores SIGTERM while targets exist. Offline,
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
            pidfile = new_pidfile(self.ctx.work, "nbdkit-cow")
            # Debian's nbdkit -f dies with its parent; use its daemon mode.
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
            pidfile = new_pidfile(self.ctx.work, "qemu-nbd")
            # Without --shared/--persistent it serves one client.
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
        pidfile = new_pidfile(self.ctx.work, "nbdkit-memory")
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
