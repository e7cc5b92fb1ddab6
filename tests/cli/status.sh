# ovctl status against a control socket: no daemon, and an answering one
# (a stand-in speaking ctl-proto.h's JSON lines, so the table and JSON
# output are checked without starting ovgated).
. "$CLI_LIB"
quiet ovctl init
run ovctl status
run ovctl --socket "$CLI_TMP/none.sock" status
python3 - "$STORE/ovgated.sock" <<'PY' &
import json, os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1]); s.listen(4)
s.settimeout(20)  # never outlive the test if ovctl does not come
open(sys.argv[1] + ".ready", "w").close()
answers = [
    {"ok": True, "sessions": [
        {"client": "pc1", "image": "lab", "generation": 3, "protocol": "iscsi",
         "peer": "127.0.0.1:50000", "initiator": "iqn.2026-11.org.example:pc1",
         "since": 1795000000, "read_ops": 10, "read_bytes": 40960, "write_ops": 2,
         "write_bytes": 1048576, "zero_ops": 0, "flush_ops": 1, "errors": 0}]},
    {"ok": True, "sessions": []},
    {"ok": False, "error": "client pc9 has no session"},
    {"ok": True, "sessions": []},
]
for a in answers:
    c, _ = s.accept()
    req = c.makefile().readline()
    json.loads(req)
    c.sendall((json.dumps(a) + "\n").encode())
    c.close()
PY
PY_PID=$!
for _ in $(seq 100); do [ -e "$STORE/ovgated.sock.ready" ] && break; sleep 0.05; done
run ovctl status
run ovctl status
quiet ovctl client list
quiet ovctl image create lab --size 1M
quiet ovctl client add pc9 --image lab
hold pc9
run ovctl reset pc9 --force
unhold
run ovctl status --json
wait "$PY_PID"
