# ovctl image create/list/info/set/remove, text and JSON.
. "$CLI_LIB"
quiet ovctl init
run ovctl image create lab --size 64M
# A raw file with data at the start and a hole after it: the hole stays a hole.
head -c 1048576 /dev/zero | tr '\0' 'x' > raw
truncate -s 8M raw
run ovctl image create web --from raw --auto-enroll
run ovctl image create tiny --size 512
run ovctl image list
run ovctl image list --json
run ovctl image info web
run ovctl image info web --json
cmp raw "$STORE/images/web/gen/1.raw" && echo "generation 1 of web equals raw"
stat -c '%a' "$STORE/images/web/gen/1.raw"
du_k=$(du -k "$STORE/images/web/gen/1.raw" | cut -f1)
[ "$du_k" -lt 2048 ] && echo "the hole stayed a hole"
run ovctl image set lab --auto-enroll on
run ovctl image set lab --auto-enroll=off
run ovctl image set lab --auto-enroll=maybe
run ovctl image set lab
run ovctl image remove tiny
run ovctl image remove tiny
run ovctl image list
