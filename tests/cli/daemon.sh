# ovctl against the real ovgated: status, a connected client (NBD, nbdsh)
# refusing an offline reset, online commit, forced reset through the daemon.
# Skips (77) when ovgated is not built or nbdsh is missing.
. "$CLI_LIB"
# nbdsh runs "python3" from PATH: prefer the system one, which has libnbd's module.
export PATH="/usr/bin:$PATH"
[ -x "${OVGATED:-}" ] && nbdsh -c pass >/dev/null 2>&1 || exit 77
quiet ovctl init
quiet ovctl image create lab --size 8M
quiet ovctl client add pc1 --image lab
quiet ovctl client add pc2 --image lab
"$OVGATED" --store "$STORE" --listen-iscsi none --listen-nbd 127.0.0.1:0 \
    --port-file "$CLI_TMP/ports" --log-level info </dev/null 2>"$CLI_TMP/ovgated.log" &
DAEMON=$!
stop_all() {
    cleanup_hold
    [ -n "${HOLDER:-}" ] && kill "$HOLDER" 2>/dev/null && wait "$HOLDER" 2>/dev/null
    kill "$DAEMON" 2>/dev/null && wait "$DAEMON" 2>/dev/null
}
trap stop_all EXIT
for _ in $(seq 200); do [ -s "$CLI_TMP/ports" ] && break; sleep 0.05; done
[ -s "$CLI_TMP/ports" ] || { echo "ovgated did not start:"; cat "$CLI_TMP/ovgated.log"; exit 1; }
PORT=$(awk '$1 == "nbd" { n = split($2, a, ":"); print a[n]; exit }' "$CLI_TMP/ports")

# pc1 connects, writes 8 KiB, flushes and stays connected until its session ends.
nbdsh -u "nbd://127.0.0.1:$PORT/lab/pc1" -c - > "$CLI_TMP/holder.out" 2>&1 <<'PY' &
import time
h.pwrite(b"c" * 8192, 65536)
h.flush()
print("connected", flush=True)
try:
    for i in range(300):
        h.pread(512, 0)
        time.sleep(0.1)
except Exception:
    pass
PY
HOLDER=$!
for _ in $(seq 100); do grep -q connected "$CLI_TMP/holder.out" && break; sleep 0.1; done

columns() { awk 'NF >= 4 { print $1, $2, $3, $4; next } { print }'; }
echo "\$ ovctl status (client, image, generation, protocol)"
ovctl status | columns
run ovctl overlay info pc1
run ovctl client info pc1
run ovctl reset pc1
run ovctl client remove pc1
run ovctl reset --all
run ovctl commit pc1
run ovctl image info lab
n=$(tail -c +65537 "$STORE/images/lab/gen/2.raw" | head -c 8192 | tr -d c | wc -c)
[ "$n" -eq 0 ] && echo "generation 2 holds pc1's flushed write"
run ovctl overlay map pc1
run ovctl reset pc1 --force
for _ in $(seq 100); do kill -0 "$HOLDER" 2>/dev/null || break; sleep 0.1; done
kill -0 "$HOLDER" 2>/dev/null && echo "the holder is still connected" || echo "pc1's session ended"
wait "$HOLDER" 2>/dev/null
HOLDER=""
echo "\$ ovctl status (client, image, generation, protocol)"
ovctl status | columns
run ovctl overlay map pc1
run ovctl gc
