#!/bin/bash
# One writer per overlay: a second NBD connection to a client export is
# refused, unless the client's nbd-replace-stale is set, in which case the
# old connection is ended; readers of the image export are not limited.
. "$OVT_LIB"
. "$(dirname "$0")/nbd-lib.sh"
nbdt_require_python
ovt_init
ovt_make_image lab 8
ovt_add_client pc1 lab
ovt_start_daemon || exit 1
"$NBDT_PY" "$(dirname "$0")/nbd-writers.py" "$OVT_NBD_PORT" refuse | sed '/^1\.\./d'
rc=${PIPESTATUS[0]}
ovt_stop_daemon
printf '[client pc1]\nnbd-replace-stale=true\n' >"$OVT_DIR/replace.conf"
ovt_start_daemon --config "$OVT_DIR/replace.conf" || exit 1
# continue the TAP numbering of the first run
"$NBDT_PY" "$(dirname "$0")/nbd-writers.py" "$OVT_NBD_PORT" replace |
    awk '/^(not )?ok / { n = $0; sub(/^(not )?ok [0-9]+/, "", n);
                         printf "%s %d%s\n", ($1 == "not" ? "not ok" : "ok"), 4 + (++i), n; next }
         /^1\.\./ { next } { print }'
rc2=${PIPESTATUS[0]}
nbdt_stop_clean
echo "1..8"
[ "$rc" -eq 0 ] && [ "$rc2" -eq 0 ]
