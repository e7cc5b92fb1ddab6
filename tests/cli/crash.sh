# ovctl killed in the middle of a copy (SIGXFSZ from a file size limit: the
# kernel ends the process, no cleanup runs) leaves no half-done image or
# generation; the next commands work and gc removes the debris.
. "$CLI_LIB"
quiet ovctl init
head -c 4194304 /dev/zero | tr '\0' 'k' > big.raw
crash() { # run ovctl under a 1 MiB file size limit with SIGXFSZ's default action
    { (trap - XFSZ; ulimit -f 1024; exec "$OVCTL" "$@") > crash.out 2>&1; } 2>/dev/null
    echo "\$ ovctl $* (1 MiB file size limit) -> exit $?"
}
tmp_entries() { ls "$STORE/tmp"; }
crash image create big --from big.raw
tmp_entries
run ovctl image list
run ovctl image create big --from big.raw
quiet ovctl client add a --image big
quiet tool write a 0 65536 1
before=$(tool sha256 a)
crash commit a
tmp_entries
run ovctl image info big
run ovctl overlay map a
[ "$(tool sha256 a)" = "$before" ] && echo "a's disk is unchanged"
run ovctl gc
tmp_entries
run ovctl commit a
