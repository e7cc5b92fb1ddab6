#!/bin/bash
# Writes that a client never flushed are flushed by the ordered shutdown on
# SIGTERM: after a restart they read back, over NBD and over iSCSI.
. "$OVT_LIB"
ovt_require python3 nbdsh qemu-io
plan 7
ovt_make_image lab 8 || { not_ok "image created"; ovt_done; }
ovt_add_client pc01 lab iqn.2026-11.test:pc01 || { not_ok "client pc01"; ovt_done; }
ovt_add_client pc02 lab iqn.2026-11.test:pc02 || { not_ok "client pc02"; ovt_done; }
ovt_start_daemon || { not_ok "daemon started"; ovt_done; }
ok "daemon started"

# NBD: write without flush, and keep the connection open while SIGTERM comes
# (the client waits until the file "release" appears or the server hangs up).
nbdsh -u "$(ovt_nbd_url lab/pc01)" -c - >"$OVT_DIR/nbd-writer.out" 2>&1 <<EOF_PY &
import os, time
h.pwrite(b"ovgate-flush-test" * 241, 65536)
print("written", flush=True)
for i in range(300):
    if os.path.exists("$OVT_DIR/release"):
        break
    time.sleep(0.1)
EOF_PY
writer=$!
ovt_on_exit "kill $writer 2>/dev/null"
for _ in $(seq 100); do grep -q written "$OVT_DIR/nbd-writer.out" && break; sleep 0.1; done
ovt_check "NBD client wrote (no flush) and stays connected" grep -q written "$OVT_DIR/nbd-writer.out"

# iSCSI: qemu-io with cache=unsafe never sends SYNCHRONIZE CACHE; it logs
# out before the SIGTERM, so this covers the close on the last logout.
qio() { # qemu-io as initiator pc02; output kept out of the TAP stream
    qemu-io "$@" --image-opts "driver=raw,file.driver=iscsi,file.transport=tcp,file.portal=127.0.0.1:$OVT_ISCSI_PORT,file.target=$(ovt_target lab),file.lun=0,file.initiator-name=iqn.2026-11.test:pc02" \
        >>"$OVT_DIR/qemu-io.out" 2>&1
}
ovt_check "iSCSI client wrote without SYNCHRONIZE CACHE and logged out" \
    qio --cache unsafe -c 'write -P 0x5a 1M 64k'

ovt_check "SIGTERM with a connected client: clean exit" ovt_stop_daemon
touch "$OVT_DIR/release"
wait "$writer" 2>/dev/null

ovt_start_daemon || { not_ok "daemon restarted"; ovt_done; }
ok "daemon restarted"
ovt_check "NBD data is there after the restart" nbdsh -u "$(ovt_nbd_url lab/pc01)" -c \
    'assert h.pread(17 * 241, 65536) == b"ovgate-flush-test" * 241'
ovt_check "iSCSI data is there after the restart" qio -c 'read -P 0x5a 1M 64k'
ovt_done
