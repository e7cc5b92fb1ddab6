# ovctl reset: offline, a connected client (with and without --force, no
# daemon running), --all, and reset onto a newer head.
. "$CLI_LIB"
quiet ovctl init
quiet ovctl image create lab --size 8M
quiet ovctl client add pc1 --image lab
quiet ovctl client add pc2 --image lab
quiet tool write pc1 0 65536 1
quiet tool write pc2 0 65536 2
run ovctl overlay map pc1
run ovctl reset pc1
run ovctl overlay map pc1
hold pc2
run ovctl reset pc2
run ovctl reset pc2 --force
run ovctl reset --all
run ovctl overlay map pc2
unhold
run ovctl reset --all
run ovctl overlay map pc2
run ovctl reset
run ovctl reset pc1 --all
run ovctl reset nobody
quiet ovctl client remove pc1
quiet ovctl client remove pc2
run ovctl reset --all
