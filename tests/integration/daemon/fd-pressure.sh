#!/bin/bash
# Scale findings S1 and S2: a daemon short of file descriptors refuses a
# registered client with a retryable answer, and recovers by itself.
#   S2: started with a soft RLIMIT_NOFILE below the hard one, ovgated raises
#       the soft limit to the hard one and logs it.
#   S1: with the soft limit lowered (prlimit on the running daemon) so that
#       the accepted socket is the last descriptor it may open, the store
#       lookups of a login fail with EMFILE. iSCSI must answer 0x0302 Out of
#       resources (status class 3, which initiators retry; RFC 7143
#       §11.13.5), not 0x0203 Not found or 0x0202 Authorization failure; NBD
#       must say the export is unavailable because of a server-side failure
#       and log a warning naming the cause. Once the limit is back, the same
#       client logs in over both protocols.
. "$OVT_LIB"
ovt_require python3 nbdsh prlimit
plan 15
HERE_ISCSI="$MESON_SOURCE_ROOT/tests/integration/iscsi"
export HERE_ISCSI
IQN=iqn.2026-11.test:pc01
ovt_make_image lab 8 || { not_ok "image created"; ovt_done; }
ovt_add_client pc01 lab "$IQN" || { not_ok "client pc01"; ovt_done; }
T=$(ovt_target lab)

# Start under a soft limit of 256 (the hard limit stays as it is): the
# wrapper execs, so OVT_PID is ovgated's own PID.
hard=$(ulimit -Hn)
real_ovgated=$OVGATED
OVGATED="$OVT_DIR/ovgated-soft-limit"
printf '#!/bin/sh\nulimit -Sn 256 || exit 1\nexec "%s" "$@"\n' "$real_ovgated" >"$OVGATED"
chmod +x "$OVGATED"
ovt_start_daemon || { not_ok "daemon started"; ovt_done; }
ok "daemon started with a soft limit of 256 (hard limit $hard)"

soft_now() {
    awk '/^Max open files/ { print $4; exit }' "/proc/$OVT_PID/limits"
}
if [ "$hard" = unlimited ] || [ "$hard" -le 256 ]; then
    ok "# SKIP the hard limit ($hard) leaves nothing to raise"
else
    ovt_check "ovgated raised its soft limit to the hard one ($(soft_now) = $hard)" \
        test "$(soft_now)" = "$hard"
fi
ovt_check "the raised limit is logged with the session room" \
    grep -q "info: .*file descriptor limit .* (was 256): room for about" "$OVT_LOG"

# Baseline: unknown names keep their class-2 answers.
python3 - "$OVT_ISCSI_PORT" "$T" "$IQN" >"$OVT_DIR/baseline.out" 2>&1 <<'PYEOF'
import os, sys
sys.path.insert(0, os.environ["HERE_ISCSI"])
import iscsi_raw as ir
port, target, iqn = int(sys.argv[1]), sys.argv[2], sys.argv[3]
c = ir.Conn(port)
print("nosuch 0x%04x" % c.login(iqn, target.rsplit(":", 1)[0] + ":nosuch")[0])
c.close()
c = ir.Conn(port)
print("stranger 0x%04x" % c.login("iqn.2026-11.test:stranger", target)[0])
c.close()
PYEOF
ovt_check "no pressure: an unknown target is still 0x0203" grep -qx "nosuch 0x0203" "$OVT_DIR/baseline.out"
ovt_check "no pressure: an unknown initiator is still 0x0202" \
    grep -qx "stranger 0x0202" "$OVT_DIR/baseline.out"

# Under pressure: one python driver sets the limit, logs in over iSCSI and
# NBD, and puts the limit back. The daemon's periodic store rescan may hold
# a descriptor for a moment, so an attempt whose connection is never
# accepted is retried with a freshly measured limit.
python3 - "$OVT_PID" "$OVT_ISCSI_PORT" "$OVT_NBD_PORT" "$T" "$IQN" "$hard" \
    >"$OVT_DIR/pressure.out" 2>&1 <<'PYEOF'
import os, socket, subprocess, sys, time
sys.path.insert(0, os.environ["HERE_ISCSI"])
import iscsi_raw as ir
import nbd

pid, iport, nport, target, iqn, hard = sys.argv[1:7]
iport, nport = int(iport), int(nport)


def lowest_free():
    """The lowest descriptor number free in the daemon, once it is stable."""
    last = None
    for _ in range(100):
        used = {int(x) for x in os.listdir("/proc/%s/fd" % pid)}
        n = 0
        while n in used:
            n += 1
        if n == last:
            return n
        last = n
        time.sleep(0.05)
    raise RuntimeError("the daemon's descriptors never settled")


def set_soft(value):
    subprocess.run(["prlimit", "--pid", pid, "--nofile=%s:" % value], check=True)


def squeeze():
    # Room for exactly one more descriptor: the accepted socket.
    set_soft(lowest_free() + 1)


def iscsi_attempt():
    c = ir.Conn(iport, timeout=3.0)
    try:
        return c.login(iqn, target)[0]
    finally:
        c.close()


def nbd_attempt():
    h = nbd.NBD()
    h.set_opt_mode(True)
    h.connect_tcp("127.0.0.1", str(nport))
    h.set_export_name("lab/pc01")
    try:
        h.opt_go()
        return "connected"
    except nbd.Error as e:
        return "refused: %s" % e.string
    finally:
        del h


def under_pressure(name, attempt):
    for _ in range(5):
        squeeze()
        try:
            result = attempt()
        except (socket.timeout, EOFError, ConnectionError, nbd.Error) as e:
            print("# %s attempt not answered (%s), retrying" % (name, e), flush=True)
            set_soft(hard)
            time.sleep(0.3)
            continue
        set_soft(hard)
        return result
    set_soft(hard)
    return "never answered"


status = under_pressure("iscsi", iscsi_attempt)
print("pressure iscsi %s" % (("0x%04x" % status) if isinstance(status, int) else status),
      flush=True)
print("pressure nbd %s" % under_pressure("nbd", nbd_attempt), flush=True)
set_soft(hard)
print("after iscsi 0x%04x" % iscsi_attempt(), flush=True)
print("after nbd %s" % nbd_attempt(), flush=True)
PYEOF
sed 's/^/# /' "$OVT_DIR/pressure.out"
ovt_check "under EMFILE: iSCSI login of a registered client gets 0x0302 Out of resources" \
    grep -qx "pressure iscsi 0x0302" "$OVT_DIR/pressure.out"
ovt_check "under EMFILE: never 0x0202/0x0203 for it" \
    bash -c "! grep -Eq 'pressure iscsi 0x020[23]' '$OVT_DIR/pressure.out'"
ovt_check "under EMFILE: NBD_OPT_GO of lab/pc01 is refused" \
    grep -q "^pressure nbd refused" "$OVT_DIR/pressure.out"
ovt_check "the iSCSI refusal is logged with its cause" \
    grep -Eq "login of $IQN refused \(0x0302\): .*Too many open files" "$OVT_LOG"
ovt_check "the registry logs the failed lookup at warning level" \
    grep -Eq "warning: ovgate-reg: store lookup failed: .*Too many open files" "$OVT_LOG"
ovt_check "the NBD refusal is a warning naming the cause" \
    grep -Eq "warning: ovgate-nbd: .*export 'lab/pc01' refused for a server-side failure: .*Too many open files" \
    "$OVT_LOG"
ovt_check "the NBD refusal is logged at default levels (notice)" \
    grep -Eq "notice: ovgate-nbd: .*NBD_OPT_GO 'lab/pc01' refused: export 'lab/pc01' is unavailable for now" \
    "$OVT_LOG"
ovt_check "pressure gone: the same initiator logs in (0x0000)" \
    grep -qx "after iscsi 0x0000" "$OVT_DIR/pressure.out"
ovt_check "pressure gone: NBD_OPT_GO of lab/pc01 succeeds" \
    grep -qx "after nbd connected" "$OVT_DIR/pressure.out"
ovt_check "ovgated stops cleanly" ovt_stop_daemon
ovt_done
