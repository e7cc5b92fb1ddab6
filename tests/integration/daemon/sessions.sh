#!/bin/bash
# Sessions seen from the control socket: status lists a connected client;
# an online commit leaves it running on the new generation with the same
# bytes; reset is refused while it is connected and ends its session with force;
# kick ends it; a client whose store entry disappears loses its session at
# the next rescan; a forced reset of an iSCSI initiator that logs straight
# back in resets it under its new session.
. "$OVT_LIB"
ovt_require python3 nbdsh qemu-io
plan 18
ovt_make_image lab 8 || { not_ok "image created"; ovt_done; }
ovt_add_client pc01 lab iqn.2026-11.test:pc01 || { not_ok "client pc01"; ovt_done; }
ovt_start_daemon || { not_ok "daemon started"; ovt_done; }
ok "daemon started"

# A client that writes once, then reads every 100 ms until the server ends it.
holder_n=0
holder_start() {
    holder_n=$((holder_n + 1))
    holder_out="$OVT_DIR/holder.$holder_n.out"
    nbdsh -u "$(ovt_nbd_url lab/pc01)" -c - >"$holder_out" 2>&1 <<'EOF_PY' &
import time
h.pwrite(b"x" * 4096, 0)
print("connected", flush=True)
try:
    for i in range(600):
        if h.pread(512, 0) != b"x" * 512:
            print("mismatch", flush=True)
        time.sleep(0.1)
    print("still connected", flush=True)
except Exception as e:
    print("ended:", e, flush=True)
EOF_PY
    holder=$!
    ovt_on_exit "kill $holder 2>/dev/null"
    for _ in $(seq 100); do grep -q connected "$holder_out" && return 0; sleep 0.1; done
    return 1
}
holder_ended() { # wait up to 15 s for the holder to see its session end
    for _ in $(seq 150); do
        if ! kill -0 "$holder" 2>/dev/null; then
            grep -q "ended:" "$holder_out"
            return
        fi
        sleep 0.1
    done
    return 1
}
check() { # DESC RESPONSE EXPR
    if python3 -c 'import json,sys; r=json.loads(sys.argv[1]); sys.exit(0 if eval(sys.argv[2]) else 1)' "$2" "$3"; then
        ok "$1"
    else
        not_ok "$1 (got: $2)"
    fi
}

ovt_check "NBD client connected" holder_start
check "status lists the NBD session of pc01" "$(ovt_ctl '{"cmd":"status"}')" \
    'len(r["sessions"]) == 1 and r["sessions"][0]["client"] == "pc01" and r["sessions"][0]["protocol"] == "nbd" and r["sessions"][0]["write_bytes"] >= 4096'
check "online commit while connected publishes generation 2" \
    "$(ovt_ctl '{"cmd":"commit","client":"pc01"}')" 'r["ok"] and r["generation"] == 2'
sleep 0.5
check "after the commit the session runs on generation 2" "$(ovt_ctl '{"cmd":"status"}')" \
    'len(r["sessions"]) == 1 and r["sessions"][0]["generation"] == 2'
holder_fine() { kill -0 "$holder" && ! grep -q -e mismatch -e ended "$holder_out"; }
ovt_check "the committed client still sees its own bytes" holder_fine
check "reset without force is refused while connected" \
    "$(ovt_ctl '{"cmd":"reset","client":"pc01"}')" 'not r["ok"] and "session" in r["error"]'
check "reset with force" "$(ovt_ctl '{"cmd":"reset","client":"pc01","force":true}')" 'r["ok"]'
ovt_check "forced reset ended the session" holder_ended

ovt_check "NBD client reconnected" holder_start
check "kick ends one session" "$(ovt_ctl '{"cmd":"kick","client":"pc01"}')" \
    'r["ok"] and r["kicked"] == 1'
ovt_check "kicked client saw its session end" holder_ended

# The client's entry disappears from the store while it is connected (as if
# edited by another gateway sharing the store): the rescan ends the session.
ovt_check "NBD client reconnected" holder_start
mv "$OVT_STORE/clients/pc01" "$OVT_DIR/pc01.moved"
ovt_check "removed client's session ends at the next rescan" holder_ended
mv "$OVT_DIR/pc01.moved" "$OVT_STORE/clients/pc01"

# iSCSI: QEMU's initiator logs straight back in after its session is ended.
# A forced reset must still happen and must not wait out its timeout; the
# new session then reads the image's head generation (generation 2, which
# the online commit above made from "x" * 4096 at offset 0), not 0x33.
qemu-io --image-opts "driver=raw,file.driver=iscsi,file.transport=tcp,file.portal=127.0.0.1:$OVT_ISCSI_PORT,file.target=$(ovt_target lab),file.lun=0,file.initiator-name=iqn.2026-11.test:pc01" \
    -c 'write -P 0x33 0 4k' -c 'sleep 4000' -c 'read -P 0x78 0 4k' >"$OVT_DIR/qemu-io.out" 2>&1 &
qio=$!
ovt_on_exit "kill $qio 2>/dev/null"
# (qemu-io's output is block-buffered: watch the daemon's status instead)
iscsi_wrote() {
    ovt_ctl '{"cmd":"status"}' | python3 -c 'import json,sys; r=json.load(sys.stdin); sys.exit(not any(s["protocol"] == "iscsi" and s["write_ops"] >= 1 for s in r["sessions"]))'
}
for _ in $(seq 100); do iscsi_wrote && break; sleep 0.1; done
start=$(date +%s)
check "forced reset of a connected iSCSI client" \
    "$(ovt_ctl '{"cmd":"reset","client":"pc01","force":true}')" 'r["ok"]'
ovt_check "... without waiting for a disk close that never comes" test $(($(date +%s) - start)) -lt 10
wait "$qio"
read_head() {
    grep -q '^read 4096/4096' "$OVT_DIR/qemu-io.out" &&
        ! grep -q 'verification failed' "$OVT_DIR/qemu-io.out"
}
ovt_check "the initiator logged back in and reads the reset disk" read_head
ovt_check "daemon stops cleanly" ovt_stop_daemon
ovt_done
