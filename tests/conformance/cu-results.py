#!/usr/bin/env python3
"""Summarise iscsi-test-cu verbose output: pass/fail/skip per test.

CUnit counts a test that printed "[SKIPPED]" as passed, so skips are counted
here from the output. Usage:
  cu-results.py OUTPUT [--family FAMILY] [--not-applicable FILE]
Prints one line per test (TAP-like) and a summary; exits 1 when a test
failed or was skipped without being listed in the not-applicable file.
"""
import re
import sys


def parse(path, family):
    results = {}  # "FAMILY.Suite.Test" -> [state, first skip/fail message]
    suite = None
    cur = None
    for line in open(path, errors="replace"):
        m = re.match(r"Suite: (\S+)", line)
        if m:
            suite = m.group(1)
            cur = None
            continue
        m = re.match(r"\s*Test: (\S+) \.\.\.(.*)", line)
        if m:
            cur = "%s.%s.%s" % (family, suite, m.group(1))
            results[cur] = ["passed?", ""]
            line = m.group(2)
        if cur is None:
            continue
        entry = results[cur]
        if "[SKIPPED]" in line and entry[0] != "FAILED":
            entry[0] = "SKIPPED"
            entry[1] = entry[1] or line.strip()
        if re.search(r"\bFAILED\s*$", line) and "[FAILED]" not in line.split("FAILED")[-1]:
            if line.strip().endswith("FAILED") and not line.strip().startswith("["):
                entry[0] = "FAILED"
        if "[FAILED]" in line and not entry[1]:
            entry[1] = line.strip()
        if re.search(r"passed\s*$", line) and entry[0] == "passed?":
            entry[0] = "passed"
        if re.search(r"^passed", line.strip()) and entry[0] == "passed?":
            entry[0] = "passed"
    return results


def main():
    args = sys.argv[1:]
    family = "SCSI"
    na_file = None
    out = args[0]
    if "--family" in args:
        family = args[args.index("--family") + 1]
    if "--not-applicable" in args:
        na_file = args[args.index("--not-applicable") + 1]
    na = {}
    if na_file:
        for line in open(na_file):
            line = line.strip()
            if line and not line.startswith("#"):
                name, _, why = line.partition(" ")
                na[name] = why.strip()
    res = parse(out, family)
    passed = failed = skipped = unexpected = 0
    n = 0
    for name, (state, msg) in res.items():
        n += 1
        if state == "FAILED":
            failed += 1
            print("not ok %d - %s %s" % (n, name, msg[:150]))
        elif state == "SKIPPED":
            skipped += 1
            if name in na:
                print("ok %d - %s # SKIP %s" % (n, name, na[name]))
            else:
                unexpected += 1
                print("not ok %d - %s unexpected skip: %s" % (n, name, msg[:150]))
        elif state == "passed":
            passed += 1
            print("ok %d - %s" % (n, name))
        else:
            failed += 1
            print("not ok %d - %s (no result: crashed or timed out)" % (n, name))
    print("1..%d" % n)
    print("# %s: %d tests, %d passed, %d failed, %d skipped (%d not in the not-applicable list)"
          % (family, n, passed, failed, skipped, unexpected))
    return 1 if failed or unexpected or n == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
