"""Load generators for bench/run-bench.py: the real clients.

Each returns one figure: IOPS, or MB/s (10^6 bytes per second).
"""

import json
import os
import re
import subprocess
import time

from benchutil import KIB, MIB, BenchError, run

CONCURRENT_QD = 4  # queue depth of each initiator/client in the N-client rows



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
