# ovctl overlay info/map and ovctl check on an overlay with data and zeros.
. "$CLI_LIB"
quiet ovctl init
head -c 4194304 /dev/zero | tr '\0' 'b' > raw
quiet ovctl image create lab --from raw
quiet ovctl client add pc1 --image lab
run ovctl overlay info pc1
run ovctl overlay map pc1
quiet tool write pc1 0 8192 97
quiet tool write pc1 1048576 4096 98
quiet tool zero pc1 2097152 65536
run ovctl overlay info pc1
run ovctl overlay map pc1
run ovctl overlay map pc1 --json
run ovctl overlay info pc1 --json
ovctl check pc1 > check.out 2>&1; echo "check exit $?"; tail -n 1 check.out
hold pc1
run ovctl overlay info pc1
run ovctl check pc1
unhold
run ovctl overlay info nobody
# Damage the second header copy: check finds it (exit 1), --repair fixes it.
# (The report's detail lines belong to the overlay library: only the verdict is compared.)
printf 'XXXXXXXX' | dd of="$STORE/clients/pc1/overlay.ovl" bs=1 seek=4096 conv=notrunc status=none
verdict() { "$@" > check.out 2>&1; echo "\$ $* -> exit $?"; tail -n 1 check.out; }
verdict ovctl check pc1
verdict ovctl check pc1 --repair
verdict ovctl check pc1
run ovctl overlay map pc1
