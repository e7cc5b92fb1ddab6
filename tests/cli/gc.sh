# ovctl gc: keeps generations a client sits on and heads; removes the rest
# and leftovers of interrupted commands.
. "$CLI_LIB"
quiet ovctl init
quiet ovctl image create lab --size 8M
quiet ovctl client add a --image lab
quiet ovctl client add b --image lab
quiet tool write a 0 4096 1
run ovctl gc
quiet ovctl commit a
run ovctl gc
run ovctl image info lab
run ovctl reset b
run ovctl gc
run ovctl image info lab
ls "$STORE/images/lab/gen"
# Debris of an interrupted command: an unlocked temporary, an orphan raw.
mkdir "$STORE/tmp/image-abc123" && touch "$STORE/tmp/image-abc123/x"
touch "$STORE/images/lab/gen/7.raw" "$STORE/images/lab/image.conf.tmp-Ab12Cd" "$STORE/clients/a/overlay.ovl.tmp-Ef34Gh"
run ovctl gc
ls "$STORE/tmp" "$STORE/images/lab" "$STORE/images/lab/gen" "$STORE/clients/a"
run ovctl gc
