#!/bin/sh
# Side-by-side benchmark: ovgated vs tgtd, nbdkit+cow, qemu-nbd+qcow2.
# See docs/benchmarks.md. Usage: bench/run-bench.sh [--quick] [--out FILE] ...
exec python3 "$(dirname "$0")/run-bench.py" "$@"
