# shellcheck shell=bash
# e2e-debs.sh — sourced by e2e-assets.sh and test-dnsmasq-config.sh: fetch
# Debian packages into a cache with `apt-get download` (nothing is installed).
#
#   debs_init STATE_DIR          use the system's package lists, or, when they
#                                 lack the packages (a fresh container, no apt-get
#                                 update), a private copy in STATE_DIR fetched with
#                                 apt-get update (root not needed; the host's apt
#                                 state is not touched); returns 77 when neither works
#   debs_library_closure PKG...   prints the lib* packages PKG... need, recursively
#   debs_fetch DIR PKG...         downloads the PKGs not yet in DIR; returns 77
#                                 when apt cannot (no archive, no network)
#   debs_file DIR PKG             prints the path of PKG's .deb in DIR

debs_apt_opts=()
[ "$(id -u)" -ne 0 ] || debs_apt_opts=(-o APT::Sandbox::User=root)

debs_init() {
    apt-cache show busybox-static >/dev/null 2>&1 && return 0
    mkdir -p "$1/lists/partial" "$1/cache/archives/partial"
    debs_apt_opts+=(-o "Dir::State::Lists=$1/lists" -o "Dir::Cache=$1/cache")
    if ! apt-cache "${debs_apt_opts[@]}" show busybox-static >/dev/null 2>&1; then
        echo "e2e: the system's package lists lack the guest packages: apt-get update into $1" >&2
        apt-get "${debs_apt_opts[@]}" update >&2 || {
            echo "e2e: apt-get update failed (no network to the Debian archive?)" >&2
            return 77
        }
    fi
}

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
        mapfile -t frontier < <(apt-cache "${debs_apt_opts[@]}" depends --no-recommends --no-suggests --no-conflicts \
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
