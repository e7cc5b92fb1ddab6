#!/bin/bash
# demo.sh — try ovgate on this machine in one command.
#
#   ./demo.sh              install missing Debian packages, build, make a demo store
#                          (./demo-store: a 64 MiB ext4 golden image "demo" with
#                          auto-enrolment on, and a client pc01), run ovgated on
#                          127.0.0.1 in the foreground and print how to attach.
#                          Ctrl-C stops it (ordered shutdown: overlays are flushed).
#   ./demo.sh --self-test  the same, then run the printed client commands, report,
#                          and stop.
#   ./demo.sh --fresh      throw the old ./demo-store away first.
#
# Ports: iSCSI 3260 and NBD 10809 when free, otherwise free ports chosen at
# start (printed). Everything stays in this directory: _build/demo, demo-store.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
self_test=0
fresh=0
for arg in "$@"; do
    case "$arg" in
    --self-test) self_test=1 ;;
    --fresh) fresh=1 ;;
    -h | --help)
        sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "demo.sh: unknown option $arg (see --help)" >&2
        exit 2
        ;;
    esac
done

build=_build/demo
store="$here/demo-store"
image=demo
client=pc01
client_iqn=iqn.2026-11.org.ovgate.demo:pc01
target=iqn.2026-11.org.ovgate:$image

step() { printf '\n== %s\n' "$*"; }

step "Installing missing Debian packages (contrib/dev/install-deps.sh)"
./contrib/dev/install-deps.sh

step "Building into $build"
if [ ! -f "$build/build.ninja" ]; then
    meson setup "$build" --buildtype=release >/dev/null
fi
meson compile -C "$build" ovgated ovctl >/dev/null
ovgated="$here/$build/proxy/ovgated"
ovctl="$here/$build/cli/ovctl"

if [ "$fresh" = 1 ] && [ -d "$store" ]; then
    step "Removing the old demo store"
    rm -rf "$store"
fi

if [ ! -d "$store/images/$image" ]; then
    step "Creating the demo store in $store"
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    mkdir -p "$work/tree/etc"
    cat >"$work/tree/README" <<'EOF'
This disk is the ovgate demo golden image (generation 1).
Every client sees it as its own writable disk: writes go to the client's
copy-on-write overlay in demo-store/clients/CLIENT/, never to this image.
EOF
    echo ovgate-demo >"$work/tree/etc/hostname"
    mkfs.ext4 -q -F -L ovgate-demo -d "$work/tree" "$work/golden.raw" 64M
    "$ovctl" --store "$store" init
    "$ovctl" --store "$store" image create "$image" --from "$work/golden.raw" --auto-enroll
    "$ovctl" --store "$store" client add "$client" --image "$image" --iqn "$client_iqn"
    rm -rf "$work"
    trap - EXIT
else
    step "Using the existing demo store in $store (--fresh starts over)"
fi

# The preferred port if it is free on 127.0.0.1, else 0 (ovgated picks one).
pick_port() {
    python3 - "$1" <<'EOF'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
    print(sys.argv[1])
except OSError:
    print(0)
EOF
}

run_dir=$(mktemp -d)
port_file="$run_dir/ports"
log="$run_dir/ovgated.log"
step "Starting ovgated"
daemon_args=(--store "$store" --listen-iscsi "127.0.0.1:$(pick_port 3260)"
    --listen-nbd "127.0.0.1:$(pick_port 10809)" --port-file "$port_file")
if [ "$self_test" = 1 ]; then
    "$ovgated" "${daemon_args[@]}" --log-level info 2>"$log" &
else
    "$ovgated" "${daemon_args[@]}" &
fi
pid=$!
# shellcheck disable=SC2317 # called from the EXIT trap
stop() {
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    rm -rf "$run_dir"
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for _ in $(seq 200); do
    [ -s "$port_file" ] && break
    kill -0 "$pid" 2>/dev/null || { echo "ovgated exited; see its messages above" >&2; exit 1; }
    sleep 0.05
done
[ -s "$port_file" ] || { echo "ovgated did not start within 10 s" >&2; exit 1; }
iscsi_port=$(awk '$1 == "iscsi" { sub(/.*:/, "", $2); print $2 }' "$port_file")
nbd_port=$(awk '$1 == "nbd" { sub(/.*:/, "", $2); print $2 }' "$port_file")
portal=127.0.0.1:$iscsi_port
# nbdsh runs "python3" from PATH; when that one lacks libnbd's bindings (a
# pyenv or venv interpreter first on PATH), name the system one instead.
nbdsh=nbdsh
if ! python3 -c 'import nbd' >/dev/null 2>&1 && /usr/bin/python3 -c 'import nbd' >/dev/null 2>&1; then
    nbdsh="/usr/bin/python3 -m nbd"
fi
qemu_iscsi="driver=raw,file.driver=iscsi,file.transport=tcp,file.portal=$portal,file.target=$target,file.lun=0,file.initiator-name=$client_iqn"

cat <<EOF

ovgated is running (pid $pid): iSCSI on $portal, NBD on 127.0.0.1:$nbd_port
store: $store    image: $image (auto-enrolment on)    client: $client ($client_iqn)

-- iSCSI (libiscsi tools, QEMU) --
  iscsi-ls -s -i $client_iqn iscsi://$portal
  iscsi-inq -i $client_iqn iscsi://$portal/$target/0
  qemu-img info --image-opts $qemu_iscsi
  qemu-img convert -O raw --image-opts $qemu_iscsi /tmp/pc01.raw && debugfs -R 'cat /README' /tmp/pc01.raw
  # any other initiator name is enrolled as a new client on its first login:
  iscsi-ls -s -i iqn.2026-11.org.ovgate.demo:pc02 iscsi://$portal

-- NBD (libnbd tools, QEMU): export IMAGE/CLIENT, or IMAGE read-only --
  nbdinfo --list nbd://127.0.0.1:$nbd_port
  nbdinfo nbd://127.0.0.1:$nbd_port/$image/$client
  $nbdsh -u nbd://127.0.0.1:$nbd_port/$image/$client -c 'h.pwrite(b"hello", 0); h.flush()'
  qemu-img info nbd://127.0.0.1:$nbd_port/$image

-- open-iscsi (a real initiator; needs the iscsi_tcp kernel module) --
  iscsiadm -m discovery -t sendtargets -p $portal
  iscsiadm -m node -T $target -p $portal --login

-- the store and the running daemon --
  $ovctl --store $store status
  $ovctl --store $store client list
  $ovctl --store $store reset $client --force
  $ovctl --store $store commit $client

Stop with Ctrl-C (overlays are flushed and closed).
EOF

if [ "$self_test" = 0 ]; then
    wait "$pid"
    exit $?
fi

# --self-test: run the commands above and report each.
step "Self-test of the printed commands"
failed=0
try() {
    local desc=$1
    shift
    if out=$("$@" 2>&1); then
        echo "ok     $desc"
    else
        echo "FAILED $desc"
        printf '%s\n' "$out" | sed 's/^/       /' | tail -n 15
        failed=1
    fi
}
scratch=$(mktemp -d)
try "iscsi-ls" iscsi-ls -s -i "$client_iqn" "iscsi://$portal"
try "iscsi-inq" iscsi-inq -i "$client_iqn" "iscsi://$portal/$target/0"
try "qemu-img info over iSCSI" qemu-img info --image-opts "$qemu_iscsi"
try "qemu-img convert over iSCSI" qemu-img convert -O raw --image-opts "$qemu_iscsi" "$scratch/pc01.raw"
try "README in the copied disk" sh -c "debugfs -R 'cat /README' '$scratch/pc01.raw' 2>/dev/null | grep -q 'ovgate demo golden image'"
try "auto-enrolment of a new initiator" iscsi-ls -s -i iqn.2026-11.org.ovgate.demo:pc02 "iscsi://$portal"
try "nbdinfo --list" nbdinfo --list "nbd://127.0.0.1:$nbd_port"
try "nbdinfo" nbdinfo "nbd://127.0.0.1:$nbd_port/$image/$client"
# shellcheck disable=SC2086 # $nbdsh may be "python3 -m nbd"
try "nbdsh write + flush" $nbdsh -u "nbd://127.0.0.1:$nbd_port/$image/$client" -c 'h.pwrite(b"hello", 0); h.flush()'
try "qemu-img info over NBD (read-only image)" qemu-img info "nbd://127.0.0.1:$nbd_port/$image"
try "ovctl status" "$ovctl" --store "$store" status
try "ovctl client list" "$ovctl" --store "$store" client list
try "ovctl commit (online)" "$ovctl" --store "$store" commit "$client"
try "ovctl reset --force" "$ovctl" --store "$store" reset "$client" --force
rm -rf "$scratch"
if [ "$failed" = 0 ]; then
    echo "self-test: every printed command worked"
else
    echo "self-test: some commands failed; ovgated's log:"
    tail -n 40 "$log" | sed 's/^/       /'
fi
exit "$failed"
