#!/usr/bin/env bash
# The issuing CA key in a PKCS#11 token (ca_key_store = pkcs11:..., docs/ca.md "Issuing CA
# key in an HSM"), against SoftHSM2 in a private token directory: `iothubd init` generates
# the key pair in the token, device certificates and CRLs are signed there and checked with
# openssl, a device connects over mTLS, the key is private, sensitive and never extractable,
# nothing of it is in PostgreSQL; a key made beforehand with pkcs11-tool is used as is; a
# wrong PIN, a missing module, token or object stop the daemon with a message naming the key.
. "$(dirname "$0")/api_lib.sh"

MODULE=/usr/lib/softhsm/libsofthsm2.so
if [ ! -e "$MODULE" ] || ! command -v pkcs11-tool >/dev/null; then
    not_ok "softhsm2 and opensc are installed (deploy/dev.sh installs them)"
    finish
fi
PIN=7391-hub-pin
mkdir -p tokens
echo "directories.tokendir = $T/tokens" >softhsm2.conf
export SOFTHSM2_CONF=$T/softhsm2.conf
softhsm2-util --init-token --free --label hub --pin "$PIN" --so-pin 5678-so >/dev/null 2>&1
expect "softhsm2-util --init-token makes a token \"hub\" in a private directory" $?
printf '%s\n' "$PIN" >pin.txt
chmod 600 pin.txt
P11=(pkcs11-tool --module "$MODULE" --token-label hub)

# ---- init generates the issuing key in the token ------------------------------------------
URL=$(new_db hsm)
STORE='pkcs11:token=hub;object=issuing-ca;id=%01'
write_conf iothub.conf "$URL" "ca_key_store = $STORE" "pkcs11_module = $MODULE" \
    "pkcs11_pin_file = $T/pin.txt"
"$IOTHUBD" -c iothub.conf init --token-file admin.token >init.out 2>init.err
expect "iothubd init with ca_key_store = $STORE" $?
ADMIN=$(cat admin.token 2>/dev/null)
[ "$(sql "$URL" "SELECT key_sealed IS NULL, key_uri FROM cas WHERE role = 'issuing' AND active")" = "t|$STORE" ] &&
    [ "$(sql "$URL" "SELECT key_sealed IS NOT NULL FROM cas WHERE role = 'root'")" = t ]
expect "cas: the issuing CA has key_uri and no key_sealed (the root stays sealed)" $?
"${P11[@]}" --login --pin "$PIN" --list-objects --type privkey >objects.txt 2>&1
grep -A4 'Private Key Object; EC' objects.txt | grep -q 'label: *issuing-ca' &&
    grep -A4 'label: *issuing-ca' objects.txt | grep -q 'Access: *sensitive, always sensitive, never extractable, local'
expect "pkcs11-tool: the issuing key is sensitive, never extractable, generated in the token" $?
"${P11[@]}" --list-objects --type privkey >public-view.txt 2>&1
! grep -q 'Private Key Object' public-view.txt
expect "without login the private key is invisible (CKA_PRIVATE)" $?

"$IOTHUBD" -c iothub.conf ca chain >trust.pem 2>/dev/null
awk '/BEGIN/ {n++} n == 1 {print > "issuing.pem"} n == 2 {print > "root.pem"}' trust.pem
"${P11[@]}" --read-object --type pubkey --label issuing-ca -o token-pub.der >/dev/null 2>&1
openssl pkey -pubin -inform DER -in token-pub.der -outform DER -out token-pub.spki 2>/dev/null &&
    openssl x509 -in issuing.pem -noout -pubkey | openssl pkey -pubin -outform DER -out cert-pub.spki 2>/dev/null &&
    cmp -s token-pub.spki cert-pub.spki && openssl verify -x509_strict -CAfile root.pem issuing.pem >/dev/null 2>&1
expect "the issuing CA certificate certifies the token's public key and verifies under the root" $?

start_server iothub.conf serve.log
expect "iothubd serve starts with the token key" $?

# ---- a device activates, connects, is revoked ----------------------------------------------
bearer "$ADMIN" POST /v1/products '{"name":"HSM sensor"}'
PK=$(jf product_key)
bearer "$ADMIN" POST /v1/devices "{\"product_key\":\"$PK\",\"serial_number\":\"SN-HSM-1\"}"
D=$(jf device_id) SECRET=$(jf device_secret)
activate_as device "$D" "$SECRET" dev
expect "a device activates with an openssl CSR (certificate signed through C_Sign)" $?
verify_cert_nocrl() { openssl verify -x509_strict -purpose sslclient -CAfile root.pem -untrusted issuing.pem "$1"; }
verify_cert_nocrl dev.pem >verify.out 2>&1
expect "openssl verify: the device certificate chains to the root through the token-signed CA" $?
pub dev -t "devices/$D/telemetry" -m hello -q 1
expect "mosquitto_pub connects over mTLS with that certificate and publishes" $?

fetch_crl crl1 && openssl crl -in crl1.pem -CAfile trust.pem -noout -verify 2>&1 | grep -q 'verify OK'
expect "the issuing CA's first CRL (signed in the token at init) verifies" $?
bearer "$ADMIN" POST "/v1/devices/$D/revoke" '{"reason":"keyCompromise"}'
expect_status "POST /v1/devices/{id}/revoke -> 200" 200
fetch_crl crl2 "$(openssl x509 -in dev.pem -noout -serial | cut -d= -f2)" &&
    openssl crl -in crl2.delta.pem -CAfile trust.pem -noout -verify 2>&1 | grep -q 'verify OK' &&
    [ "$(crl_number crl2.pem)" -gt "$(crl_number crl1.pem)" ]
expect "openssl crl -CAfile verifies the new CRL signed by the token key" $?
! verify_cert dev.pem crl2.pem >verify.out 2>&1 && grep -q 'certificate revoked' verify.out
expect "openssl verify -crl_check: the device certificate is revoked" $?
call GET /metrics
ok_sigs=$(sed -n 's/^iothub_ca_token_signatures_total{result="ok"} //p' body.out)
[ "${ok_sigs:-0}" -ge 3 ] && grep -q '^iothub_ca_token_sign_duration_seconds_count ' body.out
expect "/metrics counts the token signatures ($ok_sigs) and their latency" $?
stop_server

# ---- refusals name the key -----------------------------------------------------------------
printf 'wrong-pin\n' >bad-pin.txt
write_conf bad.conf "$URL" "ca_key_store = $STORE" "pkcs11_module = $MODULE" \
    "pkcs11_pin_file = $T/bad-pin.txt"
timeout 20 "$IOTHUBD" -c bad.conf serve >bad.out 2>&1
rc=$?
[ $rc != 0 ] && [ $rc != 124 ] && grep -q 'CA key pkcs11:token=hub;object=issuing-ca;id=%01: the token refused the PIN (CKR_PIN_INCORRECT)' bad.out
expect "serve with a wrong PIN stops: \"the token refused the PIN\", naming the key" $?
write_conf nomod.conf "$URL" "ca_key_store = $STORE" "pkcs11_module = $T/no-such-module.so" \
    "pkcs11_pin_file = $T/pin.txt"
timeout 20 "$IOTHUBD" -c nomod.conf serve >nomod.out 2>&1
[ $? = 1 ] && grep -q 'issuing-ca;id=%01: cannot load the PKCS#11 module' nomod.out
expect "serve with a missing module stops: \"cannot load the PKCS#11 module\"" $?
URL2=$(new_db notoken)
write_conf notoken.conf "$URL2" "ca_key_store = pkcs11:token=absent;object=issuing-ca" \
    "pkcs11_module = $MODULE" "pkcs11_pin_file = $T/pin.txt"
"$IOTHUBD" -c notoken.conf init --token-file nt.token >nt.out 2>&1
[ $? = 1 ] && grep -q 'token "absent" is not present' nt.out &&
    [ "$(sql "$URL2" "SELECT count(*) FROM cas")" = 0 ]
expect "init with an absent token stops: token \"absent\" is not present, no CA written" $?
"$IOTHUBD" -c iothub.conf init --token-file again.token >again.out 2>&1 &&
    grep -q 'already initialised' again.out
expect "init again with the token key: nothing changes" $?
! grep -rq -- "$PIN" init.out init.err serve.log bad.out nomod.out nt.out again.out &&
    [ "$(sql "$URL" "SELECT count(*) FROM cas WHERE key_uri LIKE '%$PIN%'")" = 0 ]
expect "the PIN is in no log and not in the database" $?

# ---- a key the maker made with pkcs11-tool -------------------------------------------------
"${P11[@]}" --login --pin "$PIN" --keypairgen --key-type EC:secp384r1 --label maker-ca --id 42 \
    >keygen.out 2>&1
expect "pkcs11-tool --keypairgen makes a P-384 key \"maker-ca\"" $?
URL3=$(new_db maker)
write_conf maker.conf "$URL3" \
    "ca_key_store = pkcs11:token=hub;object=maker-ca?module-path=$MODULE&pin-source=file:$T/pin.txt"
"$IOTHUBD" -c maker.conf init --token-file maker.token >maker.out 2>&1 &&
    grep -q 'ec-p384 key found in the token' maker.out
expect "init (module and PIN in the URI) uses the existing key: \"found in the token\"" $?
"$IOTHUBD" -c maker.conf ca chain >maker-chain.pem 2>/dev/null
awk '/BEGIN/ {n++} n == 1 {print > "maker-issuing.pem"} n == 2 {print > "maker-root.pem"}' maker-chain.pem
# pkcs11-tool 0.23 cannot --read-object a P-384 public key: compare its EC_POINT (an OCTET
# STRING, 04 61 + the 97-byte point) with the end of the certificate's SubjectPublicKeyInfo.
token_point=$("${P11[@]}" --list-objects --type pubkey 2>/dev/null |
    awk '/EC_POINT:/ {pt = $2} /label: *maker-ca$/ {print pt}' | head -n 1)
cert_point=$(openssl x509 -in maker-issuing.pem -noout -pubkey | openssl pkey -pubin -outform DER 2>/dev/null |
    tail -c 97 | od -An -tx1 | tr -d ' \n')
[ -n "$cert_point" ] && [ "${token_point#0461}" = "$cert_point" ] &&
    openssl x509 -in maker-issuing.pem -noout -text | grep -q 'NIST CURVE: P-384' &&
    [ "$(sql "$URL3" "SELECT key_type FROM cas WHERE role = 'issuing'")" = ec-p384 ]
expect "the issuing CA certifies the maker's P-384 key (key_type recorded from the token)" $?
[ "$("${P11[@]}" --login --pin "$PIN" --list-objects --type privkey 2>/dev/null | grep -c 'Private Key Object')" = 2 ]
expect "no extra key was generated (two private keys in the token)" $?
"$IOTHUBD" -c maker.conf ca crl --format pem >maker-crl.pem 2>/dev/null &&
    openssl crl -in maker-crl.pem -CAfile maker-chain.pem -noout -verify 2>&1 | grep -q 'verify OK'
expect "the maker-key CA's CRL verifies with openssl" $?
"${P11[@]}" --login --pin "$PIN" --delete-object --type privkey --label maker-ca >/dev/null 2>&1
timeout 20 "$IOTHUBD" -c maker.conf serve >gone.out 2>&1
[ $? = 1 ] && grep -q 'the issuing CA key pkcs11:token=hub;object=maker-ca?module-path=.* is not in the token' gone.out
expect "serve after the object was deleted stops: \"the issuing CA key ... is not in the token\"" $?

# ---- rotation into a new token object ------------------------------------------------------
"$IOTHUBD" -c iothub.conf ca rotate >same.out 2>&1
[ $? = 1 ] && grep -q 'names the key of the active issuing CA: name a new object' same.out
expect "ca rotate with the active CA's own URI is refused" $?
STORE2='pkcs11:token=hub;object=issuing-ca-g2'
write_conf rot.conf "$URL" "ca_key_store = $STORE2" "pkcs11_module = $MODULE" "pkcs11_pin_file = $T/pin.txt"
"$IOTHUBD" -c rot.conf ca rotate >rot.out 2>&1 &&
    [ "$(sql "$URL" "SELECT key_uri FROM cas WHERE role = 'issuing' AND active")" = "$STORE2" ] &&
    [ "$(sql "$URL" "SELECT key_uri FROM cas WHERE role = 'issuing' AND NOT active")" = "$STORE" ] &&
    [ "$(sql "$URL" "SELECT count(*) FROM cas WHERE key_sealed IS NOT NULL")" = 1 ]
expect "ca rotate with a new object: the successor's key is generated in the token too" $?
"$IOTHUBD" -c rot.conf ca chain >rot-chain.pem 2>/dev/null
awk '/BEGIN/ {n++} n == 1 {print > "rot-issuing.pem"} n == 2 {print > "rot-root.pem"}' rot-chain.pem
openssl verify -x509_strict -CAfile root.pem rot-issuing.pem >/dev/null 2>&1 &&
    openssl x509 -in rot-issuing.pem -noout -subject | grep -q 'Issuing CA G2'
expect "the G2 issuing CA verifies under the same root" $?

finish
