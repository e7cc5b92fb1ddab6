#!/bin/bash
# NBD over TLS: PSK keys (psktool) and X.509 certificates (certtool), with
# nbd-require-tls; a client export bound to one TLS identity; clients
# without TLS or with another identity refused; credentials reloaded on
# SIGHUP.
. "$OVT_LIB"
. "$(dirname "$0")/nbd-lib.sh"
ovt_require psktool certtool nbdinfo nbdcopy cmp
nbdt_require_python
plan 19
ovt_init
D=$OVT_DIR
nbdt_make_base "$D/base.raw" 8 2
ovt_make_image_from lab "$D/base.raw"
ovt_add_client pc1 lab
ovt_add_client pc2 lab

# ---- PSK ----
psktool -u alice -p "$D/keys.psk" >/dev/null 2>&1
psktool -u bob -p "$D/keys.psk" >/dev/null 2>&1
psktool -u eve -p "$D/eve.psk" >/dev/null 2>&1
cat >"$D/psk.conf" <<CONF
[ovgated]
tls-psk-file=$D/keys.psk
nbd-require-tls=true
[client pc1]
nbd-tls-identity=alice
CONF
ovt_start_daemon --config "$D/psk.conf" || exit 1
P=$OVT_NBD_PORT
psk_url() { echo "nbds://$1@127.0.0.1:$P/$2?tls-psk-file=$3"; }

ovt_check "PSK: no TLS is refused (FORCEDTLS)" \
    sh -c "! nbdinfo 'nbd://127.0.0.1:$P/lab' >/dev/null 2>&1"
out=$(nbdinfo "$(psk_url alice lab "$D/keys.psk")" 2>&1)
ovt_check "PSK: alice reads the image export over TLS" grep -q 'with TLS' <<<"$out"
"$NBDT_PY" -c "import sys; open(sys.argv[1],'wb').write(bytes([0x5a])*(1<<20))" "$D/a.raw"
ovt_check "PSK: alice writes her client export" \
    nbdt_quiet nbdcopy "$D/a.raw" "$(psk_url alice lab/pc1 "$D/keys.psk")"
ovt_check "PSK: and reads it back" \
    sh -c "nbdcopy '$(psk_url alice lab/pc1 "$D/keys.psk")' '$D/a-out.raw' &&
           cmp -n 1048576 '$D/a.raw' '$D/a-out.raw'"
ovt_check "PSK: bob may not open alice's client export" \
    sh -c "! nbdinfo '$(psk_url bob lab/pc1 "$D/keys.psk")' >/dev/null 2>&1"
ovt_check "PSK: bob may use an unbound client export" \
    nbdt_quiet nbdinfo "$(psk_url bob lab/pc2 "$D/keys.psk")"
ovt_check "PSK: an unknown identity fails the handshake" \
    sh -c "! nbdinfo '$(psk_url eve lab "$D/eve.psk")' >/dev/null 2>&1"
ovt_check "PSK: the daemon still serves after refusals" \
    nbdt_quiet nbdinfo "$(psk_url alice lab "$D/keys.psk")"
ovt_stop_daemon

# ---- X.509 ----
mkdir -p "$D/pki" "$D/c-pc1" "$D/c-none" "$D/c-rogue"
cd "$D/pki" || exit 1
gen_key() { certtool --generate-privkey --key-type=ecdsa --outfile "$1" >/dev/null 2>&1; }
printf 'cn = "ovgate test CA"\nca\ncert_signing_key\nexpiration_days = 30\n' >ca.tmpl
printf 'cn = "rogue CA"\nca\ncert_signing_key\nexpiration_days = 30\n' >rogue.tmpl
printf 'cn = "localhost"\ndns_name = "localhost"\nip_address = "127.0.0.1"\ntls_www_server\nsigning_key\nencryption_key\nexpiration_days = 30\n' >server.tmpl
printf 'cn = "pc1-client"\ntls_www_client\nsigning_key\nencryption_key\nexpiration_days = 30\n' >client.tmpl
gen_key ca-key.pem
certtool --generate-self-signed --load-privkey ca-key.pem --template ca.tmpl \
    --outfile ca-cert.pem >/dev/null 2>&1
gen_key rogue-key.pem
certtool --generate-self-signed --load-privkey rogue-key.pem --template rogue.tmpl \
    --outfile rogue-cert.pem >/dev/null 2>&1
gen_key server-key.pem
certtool --generate-certificate --load-privkey server-key.pem --load-ca-certificate ca-cert.pem \
    --load-ca-privkey ca-key.pem --template server.tmpl --outfile server-cert.pem >/dev/null 2>&1
gen_key "$D/c-pc1/client-key.pem"
certtool --generate-certificate --load-privkey "$D/c-pc1/client-key.pem" \
    --load-ca-certificate ca-cert.pem --load-ca-privkey ca-key.pem --template client.tmpl \
    --outfile "$D/c-pc1/client-cert.pem" >/dev/null 2>&1
gen_key "$D/c-rogue/client-key.pem"
certtool --generate-certificate --load-privkey "$D/c-rogue/client-key.pem" \
    --load-ca-certificate rogue-cert.pem --load-ca-privkey rogue-key.pem --template client.tmpl \
    --outfile "$D/c-rogue/client-cert.pem" >/dev/null 2>&1
cp ca-cert.pem "$D/c-pc1/"
cp ca-cert.pem "$D/c-none/"
cp ca-cert.pem "$D/c-rogue/"
cd - >/dev/null || exit 1
ovt_check "X.509: test PKI generated" test -s "$D/c-pc1/client-cert.pem"

cat >"$D/x509.conf" <<CONF
[ovgated]
tls-cert=$D/pki/server-cert.pem
tls-key=$D/pki/server-key.pem
tls-ca=$D/pki/ca-cert.pem
nbd-require-tls=true
[client pc1]
nbd-tls-identity=CN=pc1-client
CONF
ovt_start_daemon --config "$D/x509.conf" || exit 1
P=$OVT_NBD_PORT
x_url() { echo "nbds://127.0.0.1:$P/$1?tls-certificates=$2"; }
ovt_check "X.509: no TLS is refused" sh -c "! nbdinfo 'nbd://127.0.0.1:$P/lab' >/dev/null 2>&1"
ovt_check "X.509: image export without a client certificate" \
    nbdt_quiet nbdinfo "$(x_url lab "$D/c-none")"
ovt_check "X.509: pc1's certificate opens pc1's export" \
    sh -c "nbdcopy '$(x_url lab/pc1 "$D/c-pc1")' '$D/x-out.raw' &&
           cmp -n 1048576 '$D/a.raw' '$D/x-out.raw'"
ovt_check "X.509: no client certificate, no client export" \
    sh -c "! nbdinfo '$(x_url lab/pc1 "$D/c-none")' >/dev/null 2>&1"
ovt_check "X.509: a certificate from another CA does not open pc1's export" \
    sh -c "! nbdinfo '$(x_url lab/pc1 "$D/c-rogue")' >/dev/null 2>&1"
ovt_check "X.509: the daemon still serves after refusals" nbdt_quiet nbdinfo "$(x_url lab "$D/c-pc1")"

# ---- reload: switch the running daemon to the PSK configuration ----
cp "$D/psk.conf" "$D/x509.conf"
kill -HUP "$OVT_PID"
reloaded=1
for _ in $(seq 1 50); do
    if nbdinfo "$(psk_url alice lab "$D/keys.psk")" >/dev/null 2>&1; then
        reloaded=0
        break
    fi
    sleep 0.1
done
ovt_check "reload: new connections use the reloaded PSK credentials" test "$reloaded" = 0
ovt_check "reload: X.509 clients are refused afterwards" \
    sh -c "! nbdinfo '$(x_url lab "$D/c-pc1")' >/dev/null 2>&1"
ovt_check "reload: the log says so" grep -q 'NBD TLS credentials reloaded' "$OVT_LOG"
ovt_check "daemon stops cleanly" ovt_stop_daemon
ovt_done
