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
import json
import os
import platform
import re
import shutil
import signal
import statistics
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree

from benchutil import KIB, MIB, START, BenchError, Procs, log, make_base, run, warm  # noqa: E402
from loads import (CONCURRENT_QD, fio_nbd, iscsi_block_size, iscsi_perf,  # noqa: E402
                   qemu_img_bench, qemu_img_storm)
from servers import IMAGE, NbdkitCow, NbdkitMemory, Ovgated, QemuNbd, Tgtd  # noqa: E402

# qemu-img bench has no random mode: a stride of a prime number of blocks
# visits every block of a power-of-two sized image in scattered order.
STRIDE_PRIME = 7919
SRC_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

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
                 goals, precondition=False):
        self.ctx = ctx
        self.endpoint_of, self.rw, self.bs, self.qd, self.stride = \
            endpoint_of, rw, bs, qd, stride
        self.precondition = precondition
        self.counts = {}
        super().__init__(proto, name, "qemu-img bench", unit, servers, self._measure, goals,
                         prepare=self._calibrate)

    def _calibrate(self, key):
        ep = self.endpoint_of(key)
        if self.precondition:
            precondition(self.ctx, ep)
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


def precondition(ctx, ep):
    """Write the whole disk once, in order, 1 MiB at a time: sequential-write
    rows then measure every server on a disk it has fully written before (no
    first-write allocation in one server's runs and not another's), and on
    its own disk, which no random-write row has touched (4 KiB random writes
    leave the page cache of a file in 4 KiB folios, and overwriting those is
    about half as fast as writing large ones; a server that ran the random
    row faster would be handicapped for it). QD1: qemu's NBD client stalls on
    qemu-nbd at higher depths."""
    qemu_img_bench(ep, "write", MIB, 1, MIB, ctx.size // MIB, timeout=600)


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

    rd, wr, sw = ep("ird"), ep("iwr"), ep("isw")
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
                             sw, "write", MIB, 8, MIB, all_ok, precondition=True))
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


def nbd_single_rows(ctx, servers):
    """servers: key -> server with .nbd(i); ovgated's nbd() takes a client name."""
    keys = list(servers)
    stride = STRIDE_PRIME * 4 * KIB
    rows = []

    def ep(role):
        def of(key):
            if key == "ovgated":
                return servers[key].nbd(role)
            # The peers' overlay per process: the second one for the
            # sequential-write rows (see precondition()).
            return servers[key].nbd(1 if role == "nsw" and key != "memory" else 0)
        return of

    def fio(role, rw, bs, qd):
        return lambda key: fio_nbd(ctx, [ep(role)(key)], rw, bs, qd, ctx.secs)

    def goals(read, cow=(1.0, True)):
        g = [("nbdkit-cow",) + cow, ("qemu-nbd", 1.0, True)]
        if read:
            g.append(("memory", 0.7, False))
        return g

    qd1 = list(keys)                           # qemu-nbd is fine at QD1
    qdn = [k for k in keys if k != "qemu-nbd"]  # qemu 7.2 stalls on qemu-nbd at QD>=2
    specs = [
        ("4 KiB random read QD1 (IOPS)", "nrd", "randread", "read", 4 * KIB, 1, stride,
         goals(True)),
        ("4 KiB random read QD32 (IOPS)", "nrd", "randread", "read", 4 * KIB, 32, stride,
         goals(True, (1.3, False))),
        ("1 MiB sequential read QD8 (MB/s)", "nrd", "read", "read", MIB, 8, MIB, goals(True)),
        ("4 KiB random write QD32 (IOPS)", "nwr", "randwrite", "write", 4 * KIB, 32, stride,
         goals(False)),
        ("1 MiB sequential write QD8 (MB/s)", "nsw", "write", "write", MIB, 8, MIB,
         goals(False)),
    ]
    for name, role, fio_rw, qb_rw, bs, qd, qb_stride, g in specs:
        unit = "MB/s" if bs >= MIB else "IOPS"
        pre = None
        if role == "nsw":
            def pre(key, role=role):
                precondition(ctx, ep(role)(key))
        rows.append(Row("nbd", name, "fio nbd", unit, keys, fio(role, fio_rw, bs, qd), g,
                        prepare=pre))
        rows.append(QemuBenchRow(ctx, "nbd", name, unit, qd1 if qd == 1 else qdn, ep(role),
                                 qb_rw, bs, qd, qb_stride, g))
    return rows


def nbd_multi_rows(ctx, servers):
    keys = list(servers)
    rows = []
    def endpoints(key, n):
        """n clients, each on its own overlay (the memory ceiling has none)."""
        s = servers[key]
        if key == "ovgated":
            return [s.nbd("nc%02d" % i) for i in range(n)]
        if key == "memory":
            return [s.nbd(0)] * n
        return [s.nbd(i) for i in range(n)]

    for n in ctx.concurrency:
        def measure(key, n=n):
            return fio_nbd(ctx, endpoints(key, n), "randread", 4 * KIB, CONCURRENT_QD,
                           ctx.secs)
        rows.append(Row("nbd", "%d clients, 4 KiB random read QD%d each (IOPS)"
                        % (n, CONCURRENT_QD), "fio nbd", "IOPS", keys, measure,
                        [("nbdkit-cow", 1.0, True), ("qemu-nbd", 1.0, True),
                         ("memory", 0.7, False)]))
    if ctx.concurrency:
        n = max(ctx.concurrency)

        def storm(key):
            return fio_nbd(ctx, endpoints(key, n), "read", 64 * KIB, CONCURRENT_QD, ctx.secs,
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
                 if ctx.load > (os.cpu_count() or 1) else ""),
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
    if errs or ctx.phase_errors:
        lines += ["", "Errors:", ""]
        lines += ["- %s" % e.replace("\n", " ")[:400] for e in ctx.phase_errors]
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
    p.add_argument("--secs", type=int, help="seconds per run (default 2)")
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
    a.secs = a.secs or (1 if a.quick else 2)
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


def make_ctx(args):
    ctx = Ctx()
    ctx.quick, ctx.runs, ctx.secs, ctx.size = args.quick, args.runs, args.secs, args.size
    ctx.concurrency, ctx.row_filter = args.concurrency, args.row_filter
    ctx.boot_set = min(64 * MIB, ctx.size // 4)  # what one client reads to boot
    ctx.done_rows = []
    ctx.phase_errors = []
    ctx.ov_bench = None
    ctx.strikes = {}
    ctx.load = os.getloadavg()[0]
    ctx.procs = Procs()
    ctx.revision = "not measured (--peers-only)" if args.peers_only else git_revision()
    ctx.started = []
    return ctx


def ovgated_binaries(args):
    """(ovgated, ovctl) paths, building them unless --no-build; (None, None)
    with --peers-only."""
    if args.peers_only:
        return None, None
    if not args.no_build:
        return build_ovgated(args.build)
    paths = find_ovgated(args.build)
    for path in paths:
        if not os.access(path, os.X_OK):
            raise BenchError("%s not found (build it, or drop --no-build)" % path)
    return paths


def start(ctx, server, *a):
    ctx.started.append(server)
    server.start(*a)
    return server


def stop(ctx, server):
    server.stop()
    ctx.started.remove(server)


def phase(ctx, name, fn, *a):
    """Run one part of the benchmark; a setup failure is reported and the
    other parts still run."""
    try:
        fn(ctx, *a)
    except BenchError as e:
        log("%s: %s" % (name, e))
        ctx.phase_errors.append("%s: %s" % (name, e))


def phase_ov_bench(ctx, path):
    if not os.access(path, os.X_OK):
        log("%s not built: overlay rows left out" % path)
        return
    run_ov_bench(ctx, path)


def phase_iscsi(ctx, ov):
    tgt = start(ctx, Tgtd(ctx), ctx.base)
    servers = {"ovgated": ov, "tgtd": tgt} if ov else {"tgtd": tgt}
    ctx.block_sizes = {key: iscsi_block_size(s.iscsi("ird")) for key, s in servers.items()}
    measure_rows(ctx, iscsi_rows(ctx, servers), servers)
    stop(ctx, tgt)


def phase_nbd(ctx, ov):
    mem = start(ctx, NbdkitMemory(ctx), ctx.base)
    cow = start(ctx, NbdkitCow(ctx, 2), ctx.base)  # the second for sequential writes
    qn = start(ctx, QemuNbd(ctx, 2), ctx.base)
    servers = {"nbdkit-cow": cow, "qemu-nbd": qn, "memory": mem}
    if ov:
        servers = dict(ovgated=ov, **servers)
    measure_rows(ctx, nbd_single_rows(ctx, servers), servers)
    stop(ctx, cow)
    stop(ctx, qn)
    if ctx.concurrency:
        # One nbdkit and one qemu-nbd process per client: each its own overlay.
        n = max(ctx.concurrency)
        servers["nbdkit-cow"] = start(ctx, NbdkitCow(ctx, n), ctx.base)
        servers["qemu-nbd"] = start(ctx, QemuNbd(ctx, n), ctx.base)
        measure_rows(ctx, nbd_multi_rows(ctx, servers), servers)
    stop(ctx, mem)


def write_outputs(ctx, args):
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


def main(argv):
    args = parse_args(argv)
    ctx = make_ctx(args)
    require_tools(["qemu-img", "fio", "nbdkit", "nbdcopy", "qemu-nbd", "tgtd", "tgtadm",
                   "iscsi-perf", "iscsi-readcapacity16"])
    ovgated_bin, ovctl_bin = ovgated_binaries(args)

    parent = args.workdir or os.environ.get("TMPDIR") or "/var/tmp"
    ctx.work = tempfile.mkdtemp(prefix="ovgate-bench.", dir=parent)
    ctx.base = os.path.join(ctx.work, "base.raw")
    log("work directory %s" % ctx.work)

    def on_signal(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_signal)

    n = max(ctx.concurrency) if ctx.concurrency else 0
    # Each protocol has its own clients, so every row starts on overlays
    # that only its own protocol's earlier rows have touched.
    clients = [p + c for p in ("i", "n")
               for c in ["rd", "wr", "sw"] + ["c%02d" % i for i in range(n)]]
    interrupted = False
    try:
        log("creating the %d MiB base image" % (ctx.size // MIB))
        make_base(ctx.base, ctx.size)
        ov = None
        if ovgated_bin:
            ov = Ovgated(ctx, ovgated_bin, ovctl_bin, clients)
            log("ovctl: image %s and %d clients" % (IMAGE, len(clients)))
            ov.setup(ctx.base)
            start(ctx, ov)
        if ov and not args.no_ov_bench and not args.only:
            phase(ctx, "ov-bench", phase_ov_bench, os.path.join(args.build, "bench", "ov-bench"))
        if args.only in (None, "iscsi"):
            phase(ctx, "iSCSI", phase_iscsi, ov)
        if args.only in (None, "nbd"):
            phase(ctx, "NBD", phase_nbd, ov)
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted: stopping the servers this script started")
    finally:
        for s in reversed(ctx.started):
            try:
                s.stop()
            except Exception as e:  # keep stopping the others
                log("stopping %s: %s" % (s.label, e))
        ctx.procs.stop_all(ctx.work)
        if args.keep:
            log("kept %s" % ctx.work)
        else:
            shutil.rmtree(ctx.work, ignore_errors=True)

    write_outputs(ctx, args)
    if interrupted:
        return 130
    # A smoke test fails on any error; missed goals are results, not errors.
    return 1 if ctx.phase_errors or any(r.errors for r in ctx.done_rows) else 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BenchError as e:
        log("run-bench: %s" % e)
        sys.exit(1)
