# ovctl commit: A's changes become generation 2; B stays on generation 1
# with its data; generation 1 is unchanged; a connected client needs the daemon.
. "$CLI_LIB"
quiet ovctl init
head -c 2097152 /dev/zero | tr '\0' 'g' > raw
truncate -s 8M raw
quiet ovctl image create lab --from raw
quiet ovctl client add a --image lab
quiet ovctl client add b --image lab
quiet tool write a 4096 8192 65
quiet tool zero a 0 4096
quiet tool write a 6291456 4096 66
quiet tool write b 0 4096 98
gen1_before=$(sha256sum "$STORE/images/lab/gen/1.raw" | cut -d' ' -f1)
a_disk=$(tool sha256 a)
b_disk=$(tool sha256 b)
run ovctl commit a
gen1_after=$(sha256sum "$STORE/images/lab/gen/1.raw" | cut -d' ' -f1)
[ "$gen1_before" = "$gen1_after" ] && echo "generation 1 unchanged"
gen2=$(sha256sum "$STORE/images/lab/gen/2.raw" | cut -d' ' -f1)
[ "$gen2" = "$a_disk" ] && echo "generation 2 = a's disk before the commit"
[ "$(tool sha256 a)" = "$a_disk" ] && echo "a reads the same after the commit"
[ "$(tool sha256 b)" = "$b_disk" ] && echo "b reads the same after the commit"
stat -c '%a' "$STORE/images/lab/gen/2.raw"
run ovctl overlay info a
run ovctl overlay map b
run ovctl image info lab
run ovctl commit b --json
hold a
run ovctl commit a
unhold
run ovctl client add c --image lab
run ovctl commit nobody
ls "$STORE/tmp"
