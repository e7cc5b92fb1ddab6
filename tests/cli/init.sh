# ovctl init, global options, help, and a store that is missing or not a store.
. "$CLI_LIB"
run ovctl --version
run ovctl --help
run ovctl image create --help
run ovctl image list
run ovctl init
run ovctl init
run ovctl --store "$CLI_TMP/store" image list
run ovctl image list --store="$CLI_TMP/store"
mkdir "$CLI_TMP/other" && touch "$CLI_TMP/other/file"
run ovctl --store "$CLI_TMP/other" init
run ovctl --store "$CLI_TMP/other" image list
run ovctl --store "$CLI_TMP/nowhere" client list
touch "$CLI_TMP/plainfile"
run ovctl --store "$CLI_TMP/plainfile" init
mkdir "$CLI_TMP/bad" && printf '[store]\nformat-version=99\n' > "$CLI_TMP/bad/ovgate-store"
run ovctl --store "$CLI_TMP/bad" image list
ls "$STORE"
