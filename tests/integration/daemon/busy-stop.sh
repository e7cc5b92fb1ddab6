#!/bin/bash
# Stopping the daemon while clients are busy:
#  - SIGTERM while three NBD clients write and flush in a loop: exit 0
#    within a bound, and every write a client saw acknowledged reads back
#    after a restart;
#  - SIGTERM while a control-socket commit runs: the commit completes or not
#    at all, the daemon exits 0, the store opens again;
#  - kill -9 with clients attached: the overlay locks die with the process,
#    so after a restart every client's overlay opens again and flushed data
#    is there.
. "$OVT_LIB"
ovt_require python3 nbdsh
plan 11
ovt_make_image lab 16 || { not_ok "image created"; ovt_done; }
for c in pc01 pc02 pc03; do
    ovt_add_client $c lab "iqn.2026-11.test:$c" || { not_ok "client $c"; ovt_done; }
done
ovt_start_daemon || { not_ok "daemon started"; ovt_done; }
ok "daemon started"

# A writer: writes 4 KiB blocks tagged with its name and a round number,
# flushes, and records the last round the server acknowledged. It runs
# until the server hangs up (or 90 s pass), and never fails on that.
writer() { # NAME EXPORT SLOT CONNS
    nbdsh -c - >"$OVT_DIR/w-$1.out" 2>&1 <<EOF_PY &
import nbd, os, time
hs = []
for i in range($4):
    x = nbd.NBD()
    x.connect_uri("$(ovt_nbd_url "$2")")
    hs.append(x)
print("connected", flush=True)
r = 0
end = time.time() + 90
try:
    while time.time() < end:
        r += 1
        for i, x in enumerate(hs):
            x.pwrite(("%s-%d-%08d" % ("$1", i, r)).encode().ljust(4096, b"."),
                     ($3 * 64 + i * 16 + r % 16) * 4096)
            x.flush()
        with open("$OVT_DIR/w-$1.tmp", "w") as f:
            f.write(str(r))
        os.replace("$OVT_DIR/w-$1.tmp", "$OVT_DIR/w-$1.last")  # never seen empty
except nbd.Error:
    pass
EOF_PY
    echo $!
}
w1=$(writer pc01 lab/pc01 0 1)
w2=$(writer pc02 lab/pc02 1 1)
w3=$(writer pc03 lab/pc03 2 1)
ovt_on_exit "kill $w1 $w2 $w3 2>/dev/null"
for _ in $(seq 300); do
    [ -s "$OVT_DIR/w-pc01.last" ] && [ -s "$OVT_DIR/w-pc02.last" ] && [ -s "$OVT_DIR/w-pc03.last" ] && break
    sleep 0.1
done
sleep 0.5
ovt_check "three clients write and flush" \
    test -s "$OVT_DIR/w-pc01.last" -a -s "$OVT_DIR/w-pc02.last" -a -s "$OVT_DIR/w-pc03.last"
start=$(date +%s%N)
ovt_check "SIGTERM during the writes: exit 0" ovt_stop_daemon
took=$((($(date +%s%N) - start) / 1000000))
diag "stopped in $took ms"
ovt_check "stopped within 10 s" test "$took" -lt 10000
wait "$w1" "$w2" "$w3" 2>/dev/null

# What each writer last saw acknowledged must read back (round r is at
# block (slot*64 + conn*16 + r%16) and is the latest write there).
verify() { # NAME EXPORT SLOT CONNS
    nbdsh -u "$(ovt_nbd_url "$2")" -c "
r = int(open('$OVT_DIR/w-$1.last').read())
for i in range($4):
    want = ('%s-%d-%08d' % ('$1', i, r)).encode().ljust(4096, b'.')
    got = h.pread(4096, ($3 * 64 + i * 16 + r % 16) * 4096)
    assert got == want, (i, r, got[:32])
"
}
ovt_start_daemon || { not_ok "daemon restarted"; ovt_done; }
ovt_check "after the restart pc01's acknowledged writes are there" \
    verify pc01 lab/pc01 0 1
ovt_check "pc02's and pc03's too" eval "verify pc02 lab/pc02 1 1 && verify pc03 lab/pc03 2 1"

# SIGTERM while a commit runs in a control-socket worker.
nbdsh -u "$(ovt_nbd_url lab/pc01)" -c 'h.pwrite(b"c" * (8 << 20), 0); h.flush()'
(ovt_ctl '{"cmd":"commit","client":"pc01"}' >"$OVT_DIR/commit.out" 2>&1) &
ctlpid=$!
sleep 0.05
ovt_check "SIGTERM during a commit: exit 0" ovt_stop_daemon
wait "$ctlpid" 2>/dev/null
diag "commit answer: $(cat "$OVT_DIR/commit.out")"
ovt_start_daemon || { not_ok "daemon restarted after the commit"; ovt_done; }
ovt_check "pc01 reads its data after the interrupted/finished commit" \
    nbdsh -u "$(ovt_nbd_url lab/pc01)" -c 'assert h.pread(4096, 8 << 19) == b"c" * 4096'

# kill -9 with clients attached, then restart.
w1=$(writer pc01 lab/pc01 0 1)
w2=$(writer pc02 lab/pc02 1 1)
ovt_on_exit "kill $w1 $w2 2>/dev/null"
rm -f "$OVT_DIR/w-pc01.last" "$OVT_DIR/w-pc02.last"
for _ in $(seq 300); do
    [ -s "$OVT_DIR/w-pc01.last" ] && [ -s "$OVT_DIR/w-pc02.last" ] && break
    sleep 0.1
done
ovt_kill_daemon
wait "$w1" "$w2" 2>/dev/null
ovt_check "writers were running at kill -9" test -s "$OVT_DIR/w-pc01.last" -a -s "$OVT_DIR/w-pc02.last"
ovt_start_daemon || { not_ok "daemon restarted after kill -9"; ovt_done; }
ovt_check "after kill -9 every overlay opens again and flushed writes are there" \
    eval "verify pc01 lab/pc01 0 1 && verify pc02 lab/pc02 1 1"
ovt_check "clean stop at the end" ovt_stop_daemon
ovt_done
