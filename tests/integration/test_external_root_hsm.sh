#!/usr/bin/env bash
# Issue 15's "done when", first half (docs/ca.md "With the issuing key in an HSM"): the root's
# key lives only on the maker's machine (openssl) and the issuing CA's key only in SoftHSM2.
# init --external-root makes the issuing key in the token and signs its CSR there, the maker
# signs the CSRs with the printed commands, ca import checks the token key and installs the
# issuing CA by key_uri, serve signs device certificates and CRLs through the token, a
# device activates and connects over mTLS, its certificate chains to the maker's root, and
# the database holds no private key of either CA.
. "$(dirname "$0")/api_lib.sh"

MODULE=/usr/lib/softhsm/libsofthsm2.so
if [ ! -e "$MODULE" ] || ! command -v pkcs11-tool >/dev/null; then
    not_ok "softhsm2 and opensc are installed (deploy/dev.sh installs them)"
    finish
fi
PIN=4821-ext-pin
mkdir -p tokens maker
echo "directories.tokendir = $T/tokens" >softhsm2.conf
export SOFTHSM2_CONF=$T/softhsm2.conf
softhsm2-util --init-token --free --label hub --pin "$PIN" --so-pin 9876-so >/dev/null 2>&1
expect "softhsm2-util --init-token makes a token \"hub\" in a private directory" $?
printf '%s\n' "$PIN" >pin.txt
chmod 600 pin.txt
P11=(pkcs11-tool --module "$MODULE" --token-label hub --login --pin "$PIN")

# ---- the maker's root, on "their machine" (openssl only) --------------------------------------
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout maker/root.key \
    -subj "/O=Maker Inc/CN=Maker Root CA" -days 3650 -sha256 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out maker/root.pem 2>/dev/null
expect "the maker's root is made with openssl on their machine" $?

# ---- step 1: the issuing key in the token, the server key sealed ------------------------------
URL=$(new_db exthsm)
STORE='pkcs11:token=hub;object=issuing-ca;id=%01'
write_conf iothub.conf "$URL" "ca_key_store = $STORE" "pkcs11_module = $MODULE" \
    "pkcs11_pin_file = $T/pin.txt"
"$IOTHUBD" -c iothub.conf init --external-root --csr-dir csr --token-file admin.token \
    >init.out 2>init.err
expect "iothubd init --external-root with ca_key_store = $STORE" $?
[ "$(sql "$URL" "SELECT key_sealed IS NULL, key_uri FROM pending_keys WHERE role = 'issuing'")" = "t|$STORE" ] &&
    [ "$(sql "$URL" "SELECT key_sealed IS NOT NULL, key_uri IS NULL FROM pending_keys WHERE role = 'server'")" = "t|t" ]
expect "pending_keys: the issuing key by URI (no sealed key), the server key sealed" $?
"${P11[@]}" --list-objects --type privkey >objects.txt 2>&1
grep -A4 'label: *issuing-ca' objects.txt | grep -q 'Access: *sensitive, always sensitive, never extractable, local'
expect "pkcs11-tool: the issuing key was generated in the token, sensitive, never extractable" $?
"${P11[@]}" --read-object --type pubkey --label issuing-ca -o token-pub.der >/dev/null 2>&1 &&
    openssl pkey -pubin -inform DER -in token-pub.der -outform DER -out token-pub.spki 2>/dev/null &&
    openssl req -in csr/issuing-ca.csr -noout -verify 2>&1 | grep -q 'verify OK' &&
    openssl req -in csr/issuing-ca.csr -noout -pubkey | openssl pkey -pubin -outform DER -out csr-pub.spki 2>/dev/null &&
    cmp -s token-pub.spki csr-pub.spki
expect "issuing-ca.csr carries the token's public key and its signature (made by C_Sign) verifies" $?
cp csr/issuing-ca.csr first.csr
"$IOTHUBD" -c iothub.conf init --external-root --csr-dir csr --token-file again.token >init2.out 2>&1 &&
    openssl req -in csr/issuing-ca.csr -noout -pubkey | cmp -s - <(openssl req -in first.csr -noout -pubkey) &&
    [ "$("${P11[@]}" --list-objects --type privkey 2>/dev/null | grep -c 'Private Key Object')" = 1 ]
expect "init --external-root again keeps the token key (same public key, no second key)" $?
(umask 077; printf 'rekeyed passphrase\n' >new.key)
"$IOTHUBD" -c iothub.conf rekey --new-master-key-file new.key >rekey.out 2>rekey.err &&
    grep -q '^1 sealed key(s) re-encrypted' rekey.out
expect "iothubd rekey re-seals only the server's pending key (the token key is skipped)" $?
export IOTHUB_MASTER_KEY="rekeyed passphrase"

# ---- step 2: the maker signs with the printed commands, the hub imports ------------------------
cp csr/*.csr csr/*.ext maker/
(cd maker && grep '^  openssl ' ../init.out | sed 's/^  //' >sign.sh && sh sign.sh 2>/dev/null)
openssl verify -x509_strict -CAfile maker/root.pem maker/issuing.pem >/dev/null 2>&1
expect "the printed openssl commands sign the CSRs with the maker's root" $?
"$IOTHUBD" -c iothub.conf ca import --root maker/root.pem --issuing maker/issuing.pem \
    --server maker/server.pem >import.out 2>import.err
expect "iothubd ca import checks the token key and installs the certificates" $?
[ "$(sql "$URL" "SELECT key_sealed IS NULL, key_uri IS NULL FROM cas WHERE role = 'root'")" = "t|t" ] &&
    [ "$(sql "$URL" "SELECT key_sealed IS NULL, key_uri FROM cas WHERE role = 'issuing' AND active")" = "t|$STORE" ] &&
    [ "$(count pending_keys)" = 0 ]
expect "psql: no private key of the root nor of the issuing CA in the database (key_uri only)" $?

"$IOTHUBD" -c iothub.conf ca chain >trust.pem 2>/dev/null
awk '/BEGIN/ {n++} n == 1 {print > "issuing.pem"} n == 2 {print > "root.pem"}' trust.pem
start_server iothub.conf serve.log
expect "iothubd serve starts (keyless root, issuing key in the token)" $?

# ---- a device -------------------------------------------------------------------------------------
ADMIN=$(cat admin.token)
bearer "$ADMIN" POST /v1/products '{"name":"HSM + external root"}'
PK=$(jf product_key)
bearer "$ADMIN" POST /v1/devices "{\"product_key\":\"$PK\",\"serial_number\":\"SN-XH-1\"}"
D=$(jf device_id) SECRET=$(jf device_secret)
activate_as device "$D" "$SECRET" dev
expect "a device activates with an openssl CSR (its certificate signed through C_Sign)" $?
openssl verify -x509_strict -purpose sslclient -CAfile maker/root.pem -untrusted issuing.pem dev.pem \
    >verify.out 2>&1
expect "openssl verify: the device certificate chains to the maker's root" $?
MQ=(--cafile maker/root.pem -h 127.0.0.1 -p "$MQTT_PORT")
pub dev -t "devices/$D/telemetry" -m hello -q 1
expect "mosquitto_pub connects over mTLS (trusting only the maker's root) and publishes" $?

fetch_crl crl1
bearer "$ADMIN" POST "/v1/devices/$D/revoke" '{"reason":"keyCompromise"}'
expect_status "POST /v1/devices/{id}/revoke -> 200" 200
fetch_crl crl2 "$(openssl x509 -in dev.pem -noout -serial | cut -d= -f2)" &&
    openssl crl -in crl2.delta.pem -CAfile issuing.pem -noout -verify 2>&1 | grep -q 'verify OK' &&
    [ "$(crl_number crl2.pem)" -gt "$(crl_number crl1.pem)" ]
expect "openssl crl: the new CRL is signed by the token key" $?
! openssl verify -x509_strict -crl_check -purpose sslclient -CAfile maker/root.pem \
    -untrusted issuing.pem -CRLfile crl2.pem -use_deltas -CRLfile crl2.delta.pem dev.pem >verify.out 2>&1 &&
    grep -q 'certificate revoked' verify.out
expect "openssl verify -crl_check: the device certificate is revoked" $?
call GET /metrics
ok_sigs=$(sed -n 's/^iothub_ca_token_signatures_total{result="ok"} //p' body.out)
[ "${ok_sigs:-0}" -ge 2 ]
expect "/metrics counts the token signatures of serve ($ok_sigs)" $?
stop_server

# ---- a rotation through the maker, the successor in the token --------------------------------------
"$IOTHUBD" -c iothub.conf ca rotate --external --csr-dir rot >rot-same.out 2>&1
[ $? != 0 ] && grep -q 'names the key of the active issuing CA' rot-same.out
expect "ca rotate --external refuses the active issuing key's URI" $?
STORE2='pkcs11:token=hub;object=issuing-ca-2;id=%02'
write_conf iothub.conf "$URL" "ca_key_store = $STORE2" "pkcs11_module = $MODULE" \
    "pkcs11_pin_file = $T/pin.txt"
"$IOTHUBD" -c iothub.conf ca rotate --external --csr-dir rot >rot.out 2>&1 &&
    [ "$(sql "$URL" "SELECT key_sealed IS NULL, key_uri FROM pending_keys WHERE role = 'issuing'")" = "t|$STORE2" ]
expect "ca rotate --external makes the successor's key in the token under the new object" $?
cp rot/*.csr rot/*.ext maker/
(cd maker && grep '^  openssl ' ../rot.out | sed 's/^  //' | sed 's/-out \([a-z]*\)\.pem/-out \1-2.pem/' >sign2.sh &&
    sh sign2.sh 2>/dev/null)
cp -a tokens tokens.saved
"${P11[@]}" --delete-object --type privkey --label issuing-ca-2 >/dev/null 2>&1
"$IOTHUBD" -c iothub.conf ca import --issuing maker/issuing-2.pem --server maker/server-2.pem \
    >gone.out 2>&1
[ $? != 0 ] && grep -q "ca import refused: the pending issuing key $STORE2 is not in the token; nothing changed" gone.out &&
    [ "$(count pending_keys)" = 2 ] && [ "$(sql "$URL" "SELECT key_uri FROM cas WHERE role = 'issuing' AND active")" = "$STORE" ]
expect "ca import refuses when the pending key is gone from the token (nothing changed)" $?
rm -rf tokens && mv tokens.saved tokens
"$IOTHUBD" -c iothub.conf ca import --issuing maker/issuing-2.pem --server maker/server-2.pem \
    >import2.out 2>&1 &&
    [ "$(sql "$URL" "SELECT key_uri FROM cas WHERE role = 'issuing' AND active")" = "$STORE2" ] &&
    [ "$(count "cas WHERE key_sealed IS NOT NULL")" = 0 ]
expect "ca import installs the successor by its token URI; still no CA key in the database" $?
"$IOTHUBD" -c iothub.conf ca import --issuing maker/issuing.pem --server maker/server.pem \
    >import3.out 2>&1
[ $? != 0 ] && grep -q 'no keys wait for certificates' import3.out
expect "importing again is refused (no pending keys)" $?

! grep -rq -- "$PIN" init.out init.err init2.out import.out import.err serve.log rot.out import2.out &&
    [ "$(count "cas WHERE key_uri LIKE '%$PIN%'")" = 0 ]
expect "the PIN is in no output and not in the database" $?
finish
