# shellcheck shell=bash
# e2e-debs.sh — sourced by e2e-assets.sh and test-dnsmasq-config.sh: fetch
# Debian packages into a cache with `apt-get download` (nothing is installed).
#
#   debs_library_closure PKG...   prints the lib* packages PKG... need, recursively
#   debs_fetch DIR PKG...         downloads the PKGs not yet in DIR; returns 77
#                                 when apt cannot (no archive, no network)
#   debs_file DIR PKG             prints the path of PKG's .deb in DIR

debs_apt_opts=()
[ "$(id -u)" -ne 0 ] || debs_apt_opts=(-o APT::Sandbox::User=root)

debs_library_closure() {
    # Breadth first, one apt-cache run per level (apt-cache is slow to start).
    local frontier=("$@") seen=" " next p
    while [ ${#frontier[@]} -gt 0 ]; do
        next=()
        for p in "${frontier[@]}"; do
            case "$seen" in *" $p "*) continue ;; esac
            seen="$seen$p "
            case "$p" in lib*) echo "$p" ;; esac
            next+=("$p")
        done
        [ ${#next[@]} -gt 0 ] || break
        mapfile -t frontier < <(apt-cache depends --no-recommends --no-suggests --no-conflicts \
            --no-breaks --no-replaces --no-enhances "${next[@]}" 2>/dev/null |
            awk '($1 == "Depends:" || $1 == "PreDepends:") && $2 ~ /^lib/ {print $2}' | sort -u)
    done
}

debs_fetch() {
    local dir=$1 p missing=()
    shift
    mkdir -p "$dir"
    for p in "$@"; do
        ls "$dir/${p}_"*.deb >/dev/null 2>&1 || missing+=("$p")
    done
    [ ${#missing[@]} -gt 0 ] || return 0
    echo "e2e: downloading ${missing[*]}" >&2
    (cd "$dir" && apt-get download "${debs_apt_opts[@]}" "${missing[@]}") >&2 || {
        echo "e2e: apt-get download ${missing[*]} failed (run apt-get update; network to the Debian archive?)" >&2
        return 77
    }
}

debs_file() {
    local f
    for f in "$1/${2}_"*.deb; do
        [ -e "$f" ] && { echo "$f"; return 0; }
    done
    return 1
}
