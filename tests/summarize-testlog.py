#!/usr/bin/env python3
"""Summarise meson's testlog.json as one line 'CONFIG: N passed, N failed, N skipped'.

With --total FILE, add up such lines and print the closing line
'N passed, N failed, N skipped' for the whole run.
"""
import json
import os
import re
import sys


def one(path):
    counts = {"OK": 0, "FAIL": 0, "SKIP": 0, "TIMEOUT": 0, "EXPECTEDFAIL": 0, "UNEXPECTEDPASS": 0, "ERROR": 0}
    try:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line:
                    r = json.loads(line).get("result", "ERROR")
                    counts[r] = counts.get(r, 0) + 1
    except FileNotFoundError:
        pass
    passed = counts["OK"] + counts["EXPECTEDFAIL"]
    failed = counts["FAIL"] + counts["TIMEOUT"] + counts["UNEXPECTEDPASS"] + counts["ERROR"]
    name = os.path.basename(os.path.dirname(os.path.dirname(path)))
    print(f"{name}: {passed} passed, {failed} failed, {counts['SKIP']} skipped")


def total(path):
    p = f_ = s = 0
    with open(path) as f:
        for line in f:
            m = re.search(r"(\d+) passed, (\d+) failed, (\d+) skipped", line)
            if m:
                p += int(m.group(1)); f_ += int(m.group(2)); s += int(m.group(3))
    print(f"{p} passed, {f_} failed, {s} skipped")


if __name__ == "__main__":
    if sys.argv[1] == "--total":
        total(sys.argv[2])
    else:
        one(sys.argv[1])
