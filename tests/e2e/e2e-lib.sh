# shellcheck shell=bash
# e2e-lib.sh — sourced by the end-to-end tests after ovgate-test-lib.sh.
#
# Boots real Linux guests under QEMU (TCG) with their root file system on
# ovgated, and reads clients' disks back through the daemon.
#
#   e2e_setup [bootdisk]      skip (77) unless QEMU and the e2fsprogs tools are
#                             there, build/reuse the cached kernel, initramfs and
#                             golden image (e2e-assets.sh), create image $E2E_IMAGE
#                             ("lab") from the golden image (or from the bootable
#                             disk for sanboot: root file system in partition 2)
#                             and start the daemon (extra options: $E2E_DAEMON_ARGS)
#   e2e_client NAME [IQN]     add client NAME of $E2E_IMAGE with IQN (default
#                             $(e2e_iqn NAME))
#   e2e_iqn NAME              prints the client's initiator name
#   e2e_mac NAME              prints the MAC of NAME's virtual NIC
#   e2e_boot_start NAME HOW CMDLINE...   start a guest in the background;
#                             HOW is iscsi (direct kernel boot, iscsistart),
#                             nbd (direct kernel boot, nbd-client), ipxe (the
#                             NIC's iPXE ROM, contrib/ipxe/ovgate.ipxe, iBFT) or
#                             sanboot (iPXE ROM, contrib/ipxe/ovgate-sanboot.ipxe:
#                             the disk's own boot loader and command line);
#                             CMDLINE: extra kernel arguments (not for sanboot);
#                             E2E_IPXE_SETTINGS: more lines for boot.ipxe;
#                             E2E_IPXE_MAC_IQN=1: leave initiator-iqn to
#                             ovgate.ipxe's default (derived from the MAC)
#   e2e_boot_wait NAME        wait (bounded) for that guest to power off; prints
#                             the boot time; fails if it did not finish (quietly
#                             with E2E_EXPECT_FAIL=1, for boots meant to fail)
#   e2e_boot NAME HOW CMDLINE...   both
#   e2e_booted NAME           true when NAME's last boot ran to the end
#   e2e_guest NAME WHAT       prints the guest's "OVGATE-GUEST: WHAT ..." lines
#                             (WHAT without the prefix), e.g. e2e_guest a token
#   e2e_read_disk NAME [IQN]  copy NAME's disk through the daemon (iSCSI, with
#                             NAME's initiator name or IQN, CHAP USER:SECRET from
#                             $E2E_CHAP when set) to $E2E_DISK (its root file
#                             system only, for a bootable disk), check that file
#                             system (e2fsck -fn)
#   e2e_disk_file PATH        prints PATH from $E2E_DISK (debugfs)
#   e2e_gen_sums              prints sha256 of every generation file of the store
#   e2e_like TEXT PATTERN     true when TEXT matches the shell glob PATTERN
#
# Logs: $OVT_DIR/NAME.log (serial console); on failure the last lines of each
# are printed as TAP comments. Every QEMU started here is bounded by timeout(1)
# (E2E_BOOT_TIMEOUT seconds) and stopped by PID on exit; every host-side
# client of the daemon by E2E_HOST_TIMEOUT. Once a guest has not finished,
# later boots of the same test fail at once instead of hanging again.

E2E_IMAGE=${E2E_IMAGE:-lab}
E2E_TARGET="$OVT_IQN_PREFIX:$E2E_IMAGE"
E2E_ROOT_OFFSET=0
E2E_BOOT_TIMEOUT=${E2E_BOOT_TIMEOUT:-150}
E2E_HOST_TIMEOUT=${E2E_HOST_TIMEOUT:-120}
E2E_PIDS=""
E2E_BROKEN=0
E2E_HERE=$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")" && pwd)
# no_timer_check: under TCG on a loaded host the kernel's IO-APIC timer check
# can miss its window and panic ("IO-APIC + timer doesn't work").
E2E_CMDLINE_BASE="console=ttyS0 panic=-1 loglevel=4 no_timer_check rw ovgate.onfail=poweroff"

e2e_iqn() {
    echo "iqn.2026-11.org.ovgate.client:$1"
}

e2e_stop_guests() {
    for e2e_p in $E2E_PIDS; do
        kill -TERM "$e2e_p" 2>/dev/null || true
    done
    for e2e_p in $E2E_PIDS; do
        wait "$e2e_p" 2>/dev/null || true
    done
    E2E_PIDS=""
}

e2e_setup() {
    ovt_require qemu-system-x86_64 qemu-img debugfs e2fsck timeout sha256sum
    E2E_CACHE="${E2E_CACHE:-${MESON_BUILD_ROOT:?}/e2e-cache}"
    e2e_rc=0
    "$E2E_HERE/e2e-assets.sh" "$E2E_CACHE" || e2e_rc=$?
    if [ "$e2e_rc" -eq 77 ]; then
        echo "1..0 # SKIP kernel/initramfs packages unavailable (see above)"
        exit 77
    elif [ "$e2e_rc" -ne 0 ]; then
        echo "Bail out! building the guest kernel/initramfs/golden image failed"
        exit 1
    fi
    ovt_init
    ovt_on_exit e2e_stop_guests
    e2e_src="$E2E_CACHE/golden.raw"
    if [ "${1:-}" = bootdisk ]; then
        e2e_src="$E2E_CACHE/bootdisk.raw"
        E2E_ROOT_OFFSET=$(cat "$E2E_CACHE/bootdisk.root-offset")
    fi
    ovt_make_image_from "$E2E_IMAGE" "$e2e_src" >/dev/null || {
        echo "Bail out! ovctl image create failed"
        exit 1
    }
    # shellcheck disable=SC2086 # E2E_DAEMON_ARGS: extra words for ovgated
    ovt_start_daemon ${E2E_DAEMON_ARGS:-} || {
        echo "Bail out! ovgated did not start"
        exit 1
    }
}

e2e_client() {
    ovt_add_client "$1" "$E2E_IMAGE" "${2:-$(e2e_iqn "$1")}" >/dev/null
}

# A MAC per client name, so iBFT/iPXE see different machines.
e2e_mac() {
    printf '%s' "$1" | sha256sum | sed 's/^\(..\)\(..\)\(..\).*/52:54:00:\1:\2:\3/'
}

# e2e_qemu LOG QEMU-ARGS... — run QEMU bounded by timeout(1). Called in the
# background: exec makes the background job's PID timeout's own, so that
# stopping that PID stops QEMU too.
e2e_qemu() {
    e2e_log=$1
    shift
    exec timeout --kill-after=5 "$E2E_BOOT_TIMEOUT" qemu-system-x86_64 -accel tcg -m 512 \
        -nographic -no-reboot -monitor none -serial "file:$e2e_log" "$@" \
        </dev/null >"$e2e_log.qemu" 2>&1
}

e2e_boot_start() {
    e2e_name=$1
    e2e_how=$2
    shift 2
    e2e_args="$E2E_CMDLINE_BASE ovgate.test.client=$e2e_name $*"
    e2e_log="$OVT_DIR/$e2e_name.log"
    # Keep the console of an earlier boot of the same guest for diagnosis.
    [ ! -f "$e2e_log" ] || mv "$e2e_log" "$e2e_log.$(date +%s%N)"
    if [ "$E2E_BROKEN" = 1 ]; then
        # An earlier guest did not finish: later boots would most likely hang
        # the same way, each for the whole E2E_BOOT_TIMEOUT. Fail them fast.
        eval "E2E_PID_$e2e_name="
        return 0
    fi
    e2e_mac=$(e2e_mac "$e2e_name")
    case "$e2e_how" in
    iscsi)
        e2e_qemu "$e2e_log" -netdev user,id=n0 \
            -device "virtio-net-pci,netdev=n0,mac=$e2e_mac,romfile=" \
            -kernel "$E2E_CACHE/vmlinuz" -initrd "$E2E_CACHE/initramfs.img" \
            -append "$e2e_args ovgate.iscsi=10.0.2.2:$OVT_ISCSI_PORT:$E2E_TARGET:$(e2e_iqn "$e2e_name")" &
        ;;
    nbd)
        e2e_qemu "$e2e_log" -netdev user,id=n0 \
            -device "virtio-net-pci,netdev=n0,mac=$e2e_mac,romfile=" \
            -kernel "$E2E_CACHE/vmlinuz" -initrd "$E2E_CACHE/initramfs.img" \
            -append "$e2e_args ovgate.nbd=10.0.2.2:$OVT_NBD_PORT:$E2E_IMAGE/$e2e_name" &
        ;;
    ipxe | sanboot)
        # TFTP root: the cached kernel, initramfs and contrib/ipxe scripts,
        # plus a first script that sets this machine's settings and chains
        # ovgate.ipxe or ovgate-sanboot.ipxe.
        e2e_tftp="$OVT_DIR/tftp-$e2e_name"
        mkdir -p "$e2e_tftp"
        ln -sf "$E2E_CACHE/ipxe/vmlinuz" "$E2E_CACHE/ipxe/initramfs.img" \
            "$E2E_CACHE/ipxe/ovgate.ipxe" "$E2E_CACHE/ipxe/ovgate-sanboot.ipxe" "$e2e_tftp/"
        e2e_script=ovgate.ipxe
        [ "$e2e_how" = ipxe ] || e2e_script=ovgate-sanboot.ipxe
        cat >"$e2e_tftp/boot.ipxe" <<EOF
#!ipxe
set ovgate-port $OVT_ISCSI_PORT
set ovgate-image $E2E_IMAGE
$([ "${E2E_IPXE_MAC_IQN:-0}" = 1 ] || echo "set initiator-iqn $(e2e_iqn "$e2e_name")")
set ovgate-cmdline $e2e_args
${E2E_IPXE_SETTINGS:-}
chain $e2e_script
EOF
        # reboot-timeout: when nothing boots, SeaBIOS reboots after 1 s and
        # -no-reboot ends QEMU, instead of waiting for the timeout.
        e2e_qemu "$e2e_log" -boot n,reboot-timeout=1000 \
            -netdev "user,id=n0,tftp=$e2e_tftp,bootfile=boot.ipxe" \
            -device "virtio-net-pci,netdev=n0,disable-legacy=on,mac=$e2e_mac" &
        ;;
    *)
        echo "Bail out! e2e_boot_start: unknown boot method $e2e_how"
        exit 1
        ;;
    esac
    eval "E2E_PID_$e2e_name=$!"
    eval "E2E_T0_$e2e_name=$(date +%s%N)"
    E2E_PIDS="$E2E_PIDS $!"
}

e2e_boot_wait() {
    e2e_name=$1
    e2e_pid="" e2e_t0=0
    eval "e2e_pid=\$E2E_PID_$e2e_name"
    eval "e2e_t0=\$E2E_T0_$e2e_name"
    if [ -z "$e2e_pid" ]; then
        diag "guest $e2e_name was not started: an earlier guest did not finish"
        return 1
    fi
    e2e_rc=0
    wait "$e2e_pid" || e2e_rc=$?
    E2E_PIDS=$(echo "$E2E_PIDS" | tr ' ' '\n' | grep -vx "$e2e_pid" | tr '\n' ' ')
    e2e_log="$OVT_DIR/$e2e_name.log"
    # The console's last write is the guest's power-off: its time is the end
    # of this boot even when the wait starts later (guests booting together).
    e2e_end=$(stat -c %.9Y "$e2e_log" 2>/dev/null | tr -d .) || e2e_end=""
    [ -n "$e2e_end" ] || e2e_end=$(date +%s%N)
    e2e_ms=$(((e2e_end - e2e_t0) / 1000000))
    eval "E2E_MS_$e2e_name=$e2e_ms"
    if [ "$e2e_rc" -ne 0 ] || ! grep -q '^OVGATE-GUEST: done' "$e2e_log"; then
        # E2E_EXPECT_FAIL=1: a boot meant to fail (the caller checks how).
        [ "${E2E_EXPECT_FAIL:-0}" != 1 ] || return 1
        E2E_BROKEN=1
        diag "guest $e2e_name did not finish (QEMU status $e2e_rc after $e2e_ms ms); console:"
        tr -d '\033\r' <"$e2e_log" | tail -n 40 | sed 's/^/#   /'
        sed 's/^/#   qemu: /' "$e2e_log.qemu" 2>/dev/null | tail -n 5
        return 1
    fi
    diag "guest $e2e_name: boot to power-off took $((e2e_ms / 1000)).$(printf '%03d' $((e2e_ms % 1000))) s" \
        "(guest uptime at init: $(e2e_guest "$e2e_name" uptime))"
    return 0
}

e2e_boot() {
    e2e_boot_start "$@"
    e2e_boot_wait "$1"
}

# e2e_booted NAME — the guest's last boot ran to the end (checks that read
# what a guest did not see must first know that it booted).
e2e_booted() {
    grep -q '^OVGATE-GUEST: done' "$OVT_DIR/$1.log" 2>/dev/null
}

e2e_guest() {
    tr -d '\r' <"$OVT_DIR/$1.log" | sed -n "s/^OVGATE-GUEST: $2 *//p"
}

e2e_read_disk() {
    E2E_DISK="$OVT_DIR/disk-$1.raw"
    rm -f "$E2E_DISK"
    e2e_opts="driver=raw,file.driver=iscsi,file.transport=tcp,file.portal=127.0.0.1:$OVT_ISCSI_PORT,file.target=$E2E_TARGET,file.lun=0,file.initiator-name=${2:-$(e2e_iqn "$1")}"
    e2e_secret=()
    if [ -n "${E2E_CHAP:-}" ]; then
        e2e_secret=(--object "secret,id=e2echap,data=${E2E_CHAP#*:}")
        e2e_opts="$e2e_opts,file.user=${E2E_CHAP%%:*},file.password-secret=e2echap"
    fi
    timeout "$E2E_HOST_TIMEOUT" qemu-img convert "${e2e_secret[@]}" -O raw --image-opts "$e2e_opts" \
        "$E2E_DISK" || {
        diag "qemu-img could not read client $1's disk"
        return 1
    }
    if [ "$E2E_ROOT_OFFSET" -ne 0 ]; then
        # Keep only the root file system (a partition of a bootable disk).
        dd if="$E2E_DISK" of="$E2E_DISK.root" bs=1M iflag=skip_bytes \
            skip="$E2E_ROOT_OFFSET" status=none && mv "$E2E_DISK.root" "$E2E_DISK" || return 1
    fi
    e2fsck -fn "$E2E_DISK" >"$OVT_DIR/e2fsck-$1.log" 2>&1 || {
        diag "client $1's file system is not clean:"
        sed 's/^/#   /' "$OVT_DIR/e2fsck-$1.log" | tail -n 10
        return 1
    }
}

e2e_disk_file() {
    debugfs -R "cat $1" "$E2E_DISK" 2>/dev/null
}

e2e_gen_sums() {
    (cd "$OVT_STORE" && sha256sum images/*/gen/*.raw)
}

# e2e_like TEXT PATTERN — true when TEXT matches the shell glob PATTERN.
e2e_like() {
    # shellcheck disable=SC2254
    case "$1" in
    $2) return 0 ;;
    esac
    return 1
}
