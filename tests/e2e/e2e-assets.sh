#!/bin/bash
# e2e-assets.sh CACHE_DIR — builds, once, what the end-to-end tests boot:
#
#   CACHE_DIR/vmlinuz          Debian's kernel (package of linux-image-amd64)
#   CACHE_DIR/initramfs.img    busybox + iscsistart + nbd-client + modules +
#                              contrib/initramfs/ovgate-init as /init (cpio newc, gzip)
#   CACHE_DIR/golden.raw       ext4 golden image: busybox, /sbin/init =
#                              tests/e2e/guest-init, /etc/golden-marker
#   CACHE_DIR/ipxe/            TFTP root: vmlinuz, initramfs.img, ovgate.ipxe,
#                              ovgate-sanboot.ipxe
#   CACHE_DIR/bootdisk.raw     a whole bootable disk for iPXE `sanboot`: MBR
#                              (syslinux), partition 1 FAT with syslinux, the
#                              kernel, the initramfs and syslinux.cfg (command
#                              line ovgate.iscsi=ibft root=/dev/sda2), partition 2
#                              = golden.raw; CACHE_DIR/bootdisk.root-offset holds
#                              partition 2's byte offset
#
# Packages come from the Debian archive with `apt-get download` and are
# unpacked with `dpkg -x` into CACHE_DIR; nothing is installed on the host.
# Downloads are kept in CACHE_DIR/debs so reruns are fast; the outputs are
# rebuilt when this script or the files it packs change (CACHE_DIR/stamp).
# Several tests may call this at once: a lock file serialises them.
#
# Exit status: 0 ready, 77 when a tool or the package archive is missing
# (the caller skips), 1 on any other failure.
set -euo pipefail

cache=${1:?usage: e2e-assets.sh CACHE_DIR}
here=$(cd "$(dirname "$0")" && pwd)
contrib=$(cd "$here/../../contrib" && pwd)

skip() {
    echo "e2e-assets: SKIP: $*" >&2
    exit 77
}

for tool in apt-get apt-cache dpkg-deb cpio gzip mkfs.ext4 readelf sha256sum flock python3; do
    command -v "$tool" >/dev/null || skip "$tool is not installed"
done

mkdir -p "$cache"
exec 9>"$cache/lock"
flock 9

inputs="$here/e2e-assets.sh $here/e2e-debs.sh $contrib/initramfs/ovgate-init $contrib/initramfs/ovgate-udhcpc
        $here/guest-init $contrib/ipxe/ovgate.ipxe $contrib/ipxe/ovgate-sanboot.ipxe"
# shellcheck disable=SC2086
want=$(cat $inputs | sha256sum | cut -d' ' -f1)
if [ -f "$cache/stamp" ] && [ "$(cat "$cache/stamp")" = "$want" ]; then
    exit 0
fi
rm -f "$cache/stamp"
started=$(date +%s)

# Packages ---------------------------------------------------------------

# shellcheck source=tests/e2e/e2e-debs.sh
. "$here/e2e-debs.sh"

rc=0
debs_init "$cache/apt" || rc=$?
[ $rc -eq 0 ] || skip "no Debian package lists"

# Prints the package that linux-image-amd64 depends on (the real kernel).
kernel_package() {
    apt-cache "${debs_apt_opts[@]}" depends linux-image-amd64 2>/dev/null |
        awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ {print $2; exit}'
}

kpkg=$(kernel_package)
[ -n "$kpkg" ] || skip "apt-cache knows no linux-image-amd64 (run apt-get update)"
tools=(busybox-static open-iscsi nbd-client)
# For the sanboot disk; their programs need only libc.
disktools=(syslinux syslinux-common mtools dosfstools)
mapfile -t libs < <(debs_library_closure open-iscsi nbd-client | sort -u)
rc=0
debs_fetch "$cache/debs" "$kpkg" "${tools[@]}" "${disktools[@]}" "${libs[@]}" || rc=$?
[ $rc -ne 77 ] || skip "cannot download the packages"
[ $rc -eq 0 ] || exit 1

work=$(mktemp -d "$cache/work.XXXXXX")
trap 'rm -rf "$work"' EXIT
pkgroot=$work/pkgroot
mkdir -p "$pkgroot"
for p in "${tools[@]}" "${disktools[@]}" "${libs[@]}"; do
    dpkg-deb -x "$(debs_file "$cache/debs" "$p")" "$pkgroot"
done
kroot=$work/kernel
mkdir -p "$kroot"
dpkg-deb -x "$(debs_file "$cache/debs" "$kpkg")" "$kroot"
kver=$(ls "$kroot/lib/modules" | head -n 1)
moddir=$kroot/lib/modules/$kver

# Kernel modules -----------------------------------------------------------
# Debian's package ships no modules.dep (depmod runs at install time), so the
# dependencies are read from each module's .modinfo: "depends=" and the
# "softdep=pre:" entries (ext4 and libcrc32c want crc32c).

declare -A modpath
while IFS= read -r f; do
    n=${f##*/}
    n=${n%.ko}
    modpath[${n//-/_}]=$f
done < <(find "$moddir/kernel" -name '*.ko')

modinfo_field() {
    tr '\0' '\n' <"$1" | sed -n "s/^$2=//p"
}

declare -A modseen
modorder=()
add_module() {
    local name=${1//-/_} f d
    [ -z "${modseen[$name]:-}" ] || return 0
    modseen[$name]=1
    f=${modpath[$name]:-}
    if [ -z "$f" ] && [ "${2:-}" = soft ]; then
        # A soft dependency may name a crypto alias ("crc32c"), not a module:
        # the modules that provide it are in the list below explicitly.
        return 0
    elif [ -z "$f" ]; then
        # Built into the kernel: nothing to load.
        grep -q "/${name}.ko\$" "$moddir/modules.builtin" ||
            grep -q "/${1}.ko\$" "$moddir/modules.builtin" ||
            { echo "e2e-assets: module $1 not found in $kver" >&2; exit 1; }
        return 0
    fi
    for d in $(modinfo_field "$f" depends | tr ',' ' '); do
        add_module "$d"
    done
    for d in $(modinfo_field "$f" softdep | sed -n 's/^pre: *//p'); do
        add_module "$d" soft
    done
    modorder+=("$name")
}
for m in virtio_pci virtio_net crc32c_generic libcrc32c crc16 mbcache jbd2 ext4 sd_mod \
    scsi_transport_iscsi libiscsi libiscsi_tcp iscsi_tcp iscsi_ibft nbd; do
    add_module "$m"
done

# Initramfs ----------------------------------------------------------------

ird=$work/initramfs
mkdir -p "$ird"/{bin,sbin,dev,proc,sys,run,tmp,newroot,etc,lib/x86_64-linux-gnu,lib64}
mkdir -p "$ird/lib/modules/$kver"
ln -s bin "$ird/usr"
cp "$pkgroot/bin/busybox" "$ird/bin/busybox"
ln -s busybox "$ird/bin/sh"
cp "$pkgroot/sbin/iscsistart" "$ird/sbin/"
cp "$pkgroot/sbin/iscsid" "$ird/sbin/"
cp "$pkgroot/sbin/nbd-client" "$ird/sbin/"
install -m 0755 "$contrib/initramfs/ovgate-init" "$ird/init"
install -m 0755 "$contrib/initramfs/ovgate-udhcpc" "$ird/bin/ovgate-udhcpc"
: >"$ird/lib/modules/ovgate.order"
for m in "${modorder[@]}"; do
    cp "${modpath[$m]}" "$ird/lib/modules/$kver/"
    echo "/lib/modules/$kver/${modpath[$m]##*/}" >>"$ird/lib/modules/ovgate.order"
done
printf 'root:x:0:0:root:/:/bin/sh\n' >"$ird/etc/passwd"

# Shared libraries of the dynamic binaries, found in the unpacked
# packages by their DT_NEEDED entries, recursively.
find_lib() {
    local d
    for d in "$pkgroot/lib/x86_64-linux-gnu" "$pkgroot/usr/lib/x86_64-linux-gnu"; do
        [ -e "$d/$1" ] && { echo "$d/$1"; return 0; }
    done
    return 1
}
declare -A libseen
add_libs() {
    local lib f
    for lib in $(readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
        [ -z "${libseen[$lib]:-}" ] || continue
        libseen[$lib]=1
        f=$(find_lib "$lib") || { echo "e2e-assets: $lib (needed by ${1##*/}) is in no unpacked package" >&2; exit 1; }
        cp -L "$f" "$ird/lib/x86_64-linux-gnu/$lib"
        add_libs "$f"
    done
}
add_libs "$ird/sbin/iscsistart"
add_libs "$ird/sbin/iscsid"
add_libs "$ird/sbin/nbd-client"
cp -L "$(find_lib ld-linux-x86-64.so.2)" "$ird/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
ln -s ../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 "$ird/lib64/ld-linux-x86-64.so.2"

(cd "$ird" && find . -print0 | LC_ALL=C sort -z |
    cpio --null --create --format=newc --owner=0:0 --quiet) | gzip -6 >"$work/initramfs.img"

# Golden image -------------------------------------------------------------

tree=$work/golden
mkdir -p "$tree"/{bin,sbin,etc,dev,proc,sys,tmp,var/lib/ovgate-test}
cp "$pkgroot/bin/busybox" "$tree/bin/busybox"
for applet in $("$pkgroot/bin/busybox" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$tree/bin/$applet"
done
install -m 0755 "$here/guest-init" "$tree/sbin/init"
echo "ovgate golden image generation 1" >"$tree/etc/golden-marker"
printf 'root:x:0:0:root:/:/bin/sh\n' >"$tree/etc/passwd"
printf 'root:x:0:\n' >"$tree/etc/group"
mkfs.ext4 -q -F -b 4096 -L golden -E root_owner=0:0 -d "$tree" "$work/golden.raw" 64M >/dev/null

# TFTP root for the firmware path ----------------------------------------

mkdir -p "$work/ipxe"
cp "$kroot/boot/vmlinuz-$kver" "$work/vmlinuz"
cp "$work/vmlinuz" "$work/initramfs.img" "$work/ipxe/"
cp "$contrib/ipxe/ovgate.ipxe" "$work/ipxe/"

cp "$contrib/ipxe/ovgate-sanboot.ipxe" "$work/ipxe/"

# Bootable disk for sanboot --------------------------------------------------
# syslinux installs through mtools on image files, so nothing is mounted.

disk_tools_path="$pkgroot/usr/bin:$pkgroot/sbin:$pkgroot/usr/sbin:$PATH"
cat >"$work/syslinux.cfg" <<EOF
DEFAULT ovgate
PROMPT 0
TIMEOUT 0
LABEL ovgate
  KERNEL vmlinuz
  INITRD initramfs.img
  APPEND console=ttyS0 panic=-1 loglevel=4 no_timer_check rw ovgate.onfail=poweroff ovgate.iscsi=ibft root=/dev/sda2 ovgate.test.client=sanboot ovgate.test.token=sanboot-ok
EOF
PATH=$disk_tools_path mkfs.fat -C -F 16 -n OVBOOT "$work/fat.img" $((40 * 1024)) >/dev/null
PATH=$disk_tools_path mcopy -i "$work/fat.img" "$work/vmlinuz" "$work/initramfs.img" \
    "$work/syslinux.cfg" ::/
fat_sectors=$(($(stat -c %s "$work/fat.img") / 512))
root_sectors=$(($(stat -c %s "$work/golden.raw") / 512))
p1=2048
p2=$((p1 + fat_sectors))
truncate -s $(((p2 + root_sectors) * 512)) "$work/bootdisk.raw"
dd if="$pkgroot/usr/lib/syslinux/mbr/mbr.bin" of="$work/bootdisk.raw" conv=notrunc status=none
# MBR partition table (LBA only): 1 = FAT16 (0x06, active), 2 = Linux (0x83).
python3 - "$work/bootdisk.raw" "$p1" "$fat_sectors" "$p2" "$root_sectors" <<'EOF'
import struct, sys
path, p1, n1, p2, n2 = sys.argv[1], *map(int, sys.argv[2:])
def entry(active, ptype, start, count):
    chs = b"\xfe\xff\xff"
    return struct.pack("<B3sB3sII", 0x80 if active else 0, chs, ptype, chs, start, count)
with open(path, "r+b") as f:
    f.seek(446)
    f.write(entry(True, 0x06, p1, n1) + entry(False, 0x83, p2, n2) + bytes(32) + b"\x55\xaa")
EOF
dd if="$work/fat.img" of="$work/bootdisk.raw" bs=512 seek=$p1 conv=notrunc status=none
dd if="$work/golden.raw" of="$work/bootdisk.raw" bs=512 seek=$p2 conv=notrunc status=none
PATH=$disk_tools_path syslinux --offset $((p1 * 512)) --install "$work/bootdisk.raw"
echo $((p2 * 512)) >"$work/bootdisk.root-offset"

rm -rf "$cache/ipxe"
mv "$work/vmlinuz" "$work/initramfs.img" "$work/golden.raw" "$work/ipxe" \
    "$work/bootdisk.raw" "$work/bootdisk.root-offset" "$cache/"
echo "$kver" >"$cache/kernel-version"
echo "$want" >"$cache/stamp"
echo "e2e-assets: kernel $kver, initramfs $(du -k "$cache/initramfs.img" | cut -f1) KiB," \
    "${#modorder[@]} modules, built in $(($(date +%s) - started)) s" >&2
