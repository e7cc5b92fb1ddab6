"""Processes, files and the page cache for bench/run-bench.py.

Every process the benchmark starts goes through Procs, so that cleanup stops
exactly those (by PID) and nothing else on the machine.
"""

import errno
import itertools
import os
import signal
import socket
import subprocess
import sys
import time

KIB = 1024
MIB = 1024 * 1024


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


_pidfiles = itertools.count()


def new_pidfile(work, name):
    """A pid-file path no earlier server used: a daemon's parent may return
    before the daemon writes its pid, and a stale file of the same name would
    then name a process that has already gone (and leak the new one)."""
    return os.path.join(work, "%s.%d.pid" % (name, next(_pidfiles)))


def read_pidfile(path, timeout=30.0):
    """The pid a daemon wrote to path, once that process is alive and was
    started with path on its command line (so it is the one we started)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(path) as f:
                pid = int(f.read().strip())
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                if path.encode() in f.read():
                    return pid
        except (FileNotFoundError, ProcessLookupError, ValueError):
            pass
        time.sleep(0.02)
    raise BenchError("pid file %s did not name a running server within %.0f s"
                     % (path, timeout))


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

    def stop_all(self, work=None):
        for pid, name in list(self.daemons):
            self.stop_daemon(pid, name)
        for p in list(self.children):
            self.stop_child(p)
        if work:
            self.sweep(work)

    def sweep(self, work):
        """Last resort: a server whose pid we never learnt (interrupted right
        after it forked) still names our private directory on its command
        line, so it can only be one we started. Stop those, by PID."""
        me = os.getpid()
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == me:
                continue
            try:
                with open("/proc/%s/cmdline" % entry, "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if any(work.encode() in a for a in argv) and pid_alive(int(entry)):
                name = os.path.basename(argv[0].decode(errors="replace"))
                log("  %s (pid %s) was left running: stopping it" % (name, entry))
                self.stop_daemon(int(entry), name)



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
    (the development VMs run a reclaim daemon that drops pages untouched for
    about a minute)."""
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


def tail(path, n=15):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:]).strip()
    except OSError:
        return ""
