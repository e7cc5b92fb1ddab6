# Bad input: every case gets one "ovctl: error:" line, a non-zero exit code,
# and leaves the store as it was.
. "$CLI_LIB"
quiet ovctl init
quiet ovctl image create lab --size 1M
quiet ovctl client add pc1 --image lab --iqn iqn.2026-11.org.example:pc1 --mac 52:54:00:00:00:01
run ovctl
run ovctl frobnicate
run ovctl image
run ovctl image frobnicate
run ovctl --bogus image list
run ovctl --store= init
run ovctl init --store=
run ovctl --store
run ovctl image list --bogus
run ovctl image list extra
run ovctl image create
run ovctl image create bad/name --size 1M
run ovctl image create .hidden --size 1M
run ovctl image create x --size 1000
run ovctl image create x --size 0
run ovctl image create x --size -5M
run ovctl image create x --size 12Q
run ovctl image create x --size 99999999999T
run ovctl image create x
run ovctl image create x --size 1M --from raw
run ovctl image create x --from missing.raw
printf 'abc' > odd.raw
run ovctl image create x --from odd.raw
run ovctl image create x --from .
run ovctl image create lab --size 1M
run ovctl image info nope
run ovctl client add pc2 --image nope
run ovctl client add pc2
run ovctl client add pc1 --image lab
run ovctl client add pc2 --image lab --iqn iqn.2026-11.org.example:pc1
run ovctl client add pc2 --image lab --iqn IQN.2026-11.ORG.EXAMPLE:PC1
run ovctl client add pc2 --image lab --mac 52:54:00:00:00:01
run ovctl client add pc2 --image lab --iqn iqn.26-11.org.example
run ovctl client add pc2 --image lab --iqn iqn.2026-13.org.example
run ovctl client add pc2 --image lab --iqn eui.12345
run ovctl client add pc2 --image lab --iqn "iqn.2026-11.org.example:a b"
run ovctl client add pc2 --image lab --mac 52:54:00:00:00
run ovctl client add pc2 --image lab --mac 52:54-00:00:00:01
run ovctl client add pc2 --image lab --mac zz:54:00:00:00:01
run ovctl client add pc2 --image lab --iqn eui.0123456789abcdef --iqn EUI.0123456789ABCDEF
run ovctl client remove nope
run ovctl image remove lab
# A copy that fails midway (file size limit: like a full disk) leaves no image.
head -c 4194304 /dev/zero | tr '\0' 'z' > big.raw
(trap '' XFSZ; ulimit -f 1024; "$OVCTL" image create big --from big.raw) 2>&1 | sed 's/: [A-Z][a-z ]*$/: ERRNO/'
echo "exit ${PIPESTATUS[0]}"
(trap '' XFSZ; ulimit -f 1024; "$OVCTL" image create big --size 4M) > /dev/null 2>&1
run ovctl image list
run ovctl client list
ls "$STORE/tmp" "$STORE/images" "$STORE/clients"
