#!/bin/bash
# contrib/dnsmasq/ovgate.conf is valid for the dnsmasq of Debian 12:
# `dnsmasq --test` parses it (dnsmasq-base is unpacked into the e2e cache,
# not installed). The QEMU guests get DHCP/TFTP from QEMU, so this is the
# only check of the dnsmasq example.
# shellcheck source=tests/integration/common/ovgate-test-lib.sh
. "$OVT_LIB"
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/e2e/e2e-debs.sh
. "$here/e2e-debs.sh"

ovt_require apt-get apt-cache dpkg-deb flock
cache="${E2E_CACHE:-${MESON_BUILD_ROOT:?}/e2e-cache}/dnsmasq"
mkdir -p "$cache"
exec 9>"$cache/lock"
flock 9
if [ ! -x "$cache/root/usr/sbin/dnsmasq" ]; then
    rc=0
    debs_init "$cache/apt" || rc=$?
    if [ $rc -ne 0 ]; then
        echo "1..0 # SKIP no Debian package lists"
        exit 77
    fi
    mapfile -t libs < <(debs_library_closure dnsmasq-base | sort -u)
    rc=0
    debs_fetch "$cache/debs" dnsmasq-base "${libs[@]}" || rc=$?
    if [ $rc -eq 77 ]; then
        echo "1..0 # SKIP dnsmasq-base cannot be downloaded"
        exit 77
    fi
    [ $rc -eq 0 ] || exit 1
    rm -rf "$cache/root.new"
    for p in dnsmasq-base "${libs[@]}"; do
        dpkg-deb -x "$(debs_file "$cache/debs" "$p")" "$cache/root.new"
    done
    rm -rf "$cache/root"
    mv "$cache/root.new" "$cache/root"
fi
exec 9>&-
plan 2

dnsmasq_run() {
    LD_LIBRARY_PATH="$cache/root/lib/x86_64-linux-gnu:$cache/root/usr/lib/x86_64-linux-gnu" \
        "$cache/root/usr/sbin/dnsmasq" "$@"
}

conf="$here/../../contrib/dnsmasq/ovgate.conf"
ovt_check "dnsmasq --test accepts contrib/dnsmasq/ovgate.conf" \
    dnsmasq_run --test --conf-file="$conf"
# The same check must fail on a broken file, or it proves nothing.
ovt_init
sed 's/^dhcp-range=.*/dhcp-range=not-an-address/' "$conf" >"$OVT_DIR/broken.conf"
ovt_check "dnsmasq --test rejects a broken copy" \
    sh -c '! "$@" >/dev/null 2>&1' _ env \
    LD_LIBRARY_PATH="$cache/root/lib/x86_64-linux-gnu:$cache/root/usr/lib/x86_64-linux-gnu" \
    "$cache/root/usr/sbin/dnsmasq" --test --conf-file="$OVT_DIR/broken.conf"
ovt_done
