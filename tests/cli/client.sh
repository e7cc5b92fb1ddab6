# ovctl client add/list/info/remove; IQN, EUI and MAC formats.
. "$CLI_LIB"
quiet ovctl init
quiet ovctl image create lab --size 16M
run ovctl client add pc1 --image lab --iqn iqn.2026-11.org.example:pc1 --mac 52:54:00:AA:bb:01
run ovctl client add pc2 --image lab --iqn IQN.2026-11.org.Example:PC2 --iqn eui.0123456789ABCDEF --mac 52-54-00-aa-bb-02
run ovctl client add pc3 --image lab
run ovctl client list
run ovctl client list --json
run ovctl client info pc2
run ovctl client info pc1 --json
run ovctl image info lab
run ovctl image remove lab
run ovctl client remove pc3
run ovctl client remove pc3
run ovctl client info pc3
run ovctl client list
