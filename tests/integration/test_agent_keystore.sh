#!/usr/bin/env bash
# iothub-device's encrypted key store (docs/device.md "Encrypted key store"): with a passphrase
# (file or command) enrollment writes key.pem as PKCS#8 PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC)
# that `openssl pkey -passin` reads and nothing reads without the passphrase; the agent
# connects (MQTT and the HTTPS renewal) with it and renews into an encrypted key; it reads a key
# `openssl pkcs8 -topk8 -v2 aes-256-cbc` wrote; a wrong passphrase stops it with a clear error;
# `key_store = enforced` refuses a plaintext key, stays enforced when the configuration drops
# it, and `iothub-device key migrate` encrypts the plaintext key in place.
. "$(dirname "$0")/api_lib.sh"

AGENT=$BUILD/iothub-device
api_setup agent_keystore
expect "iothubd init, then iothubd serve answers /healthz" $?

bearer "$ADMIN" POST /v1/products '{"name":"Keystore sensor"}'
PK=$(jf product_key)
declare -A ID
provision() {
    bearer "$ADMIN" POST /v1/devices "{\"product_key\":\"$PK\",\"serial_number\":\"SN-KS-$1\"}"
    [ "$STATUS" = 201 ] || return 1
    ID[$1]=$(jf device_id)
    (umask 077; printf '%s\n' "$(jf device_secret)" >"$1.secret")
}
provision a && provision b && provision c
expect "three devices provisioned" $?
enroll() { # enroll NAME [ARGS...]
    local n=$1
    shift
    timeout 60 "$AGENT" enroll --url "$BASE" --cacert trust.pem --mqtt "127.0.0.1:$MQTT_PORT" \
        --device-id "${ID[$n]}" --secret-file "$n.secret" --dir "$n" "$@" 2>"enroll_$n.err"
}
once() { # once NAME LOG [ARGS...]: one telemetry message over MQTT, exit status of the agent
    local n=$1 log=$2
    shift 2
    echo "hello from $n" | timeout 60 "$AGENT" run --dir "$n" --stdin --once "$@" 2>"$log"
}
pubkey_of_cert() { openssl x509 -in "$1/cert.pem" -noout -pubkey; }

PASS='correct horse battery staple'
(umask 077; printf '%s\n' "$PASS" >pass.txt)
printf 'key_passphrase_file = %s/pass.txt\n' "$T" >file.conf

# ---- passphrase file: encrypted at enrollment ---------------------------------------------------
enroll a --config file.conf
expect "enroll with key_passphrase_file" $?
head -n 1 a/key.pem | grep -qx -- '-----BEGIN ENCRYPTED PRIVATE KEY-----' &&
    ! grep -rqE -- '-----BEGIN (EC |RSA )?PRIVATE KEY-----' a
expect "key.pem is an ENCRYPTED PRIVATE KEY; no plaintext key anywhere in the state directory" $?
openssl asn1parse -in a/key.pem >a.asn1 2>/dev/null && grep -q ':PBES2' a.asn1 && grep -q ':PBKDF2' a.asn1 &&
    grep -q ':hmacWithSHA256' a.asn1 && grep -q ':aes-256-cbc' a.asn1 &&
    [ $((16#$(awk '/prim: INTEGER/ {sub(/.*:/, ""); print; exit}' a.asn1))) -ge 600000 ]
expect "openssl asn1parse: PBES2, PBKDF2 with hmacWithSHA256 and >= 600000 iterations, AES-256-CBC" $?
[ "$(openssl pkey -in a/key.pem -passin file:pass.txt -pubout 2>/dev/null)" = "$(pubkey_of_cert a)" ]
expect "openssl pkey -passin file:pass.txt reads it: the certificate's key" $?
! openssl pkey -in a/key.pem -passin pass:wrong-passphrase -noout 2>/dev/null &&
    ! openssl pkey -in a/key.pem -passin pass: -noout 2>/dev/null
expect "openssl refuses it with a wrong or an empty passphrase" $?
once a run_a.err --config file.conf && grep -q "published 12 bytes" run_a.err
expect "the agent connects over MQTT with the encrypted key (decrypted in memory) and publishes" $?
! grep -qF "$PASS" enroll_a.err run_a.err
expect "the passphrase is in no log" $?
old_serial=$(openssl x509 -in a/cert.pem -noout -serial)
once a renew_a.err --config file.conf --renew-before 400 &&
    grep -q "certificate renewed" renew_a.err && [ "$(openssl x509 -in a/cert.pem -noout -serial)" != "$old_serial" ] &&
    head -n 1 a/key.pem | grep -qx -- '-----BEGIN ENCRYPTED PRIVATE KEY-----' &&
    [ "$(openssl pkey -in a/key.pem -passin file:pass.txt -pubout 2>/dev/null)" = "$(pubkey_of_cert a)" ]
expect "a renewal authenticated by the encrypted key writes the new key encrypted too" $?
printf 'not the passphrase\n' >wrong.txt
printf 'key_passphrase_file = %s/wrong.txt\n' "$T" >wrong.conf
once a run_wrong.err --config wrong.conf
rc=$?
[ $rc = 1 ] && grep -q "a/key.pem does not decrypt with the configured passphrase" run_wrong.err
expect "a wrong passphrase stops the agent (exit $rc) with an error naming the key file" $?
once a run_none.err
rc=$?
[ $rc = 1 ] && grep -q "a/key.pem is encrypted: configure key_passphrase_file or key_passphrase_command" run_none.err
expect "no passphrase configured: exit $rc, the error says what to configure" $?

# ---- passphrase command -------------------------------------------------------------------------
cat >secret-helper.sh <<EOF
#!/bin/sh
# stands in for a TPM or secure element helper: the passphrase on its first line
printf 'from-the-helper-%s\nsecond line ignored\n' "\$(cat $T/helper.seed)"
EOF
chmod +x secret-helper.sh
echo 4242 >helper.seed
printf 'key_passphrase_command = %s/secret-helper.sh\n' "$T" >cmd.conf
enroll b --config cmd.conf && once b run_b.err --config cmd.conf
expect "enroll and run with key_passphrase_command" $?
[ "$(openssl pkey -in b/key.pem -passin pass:from-the-helper-4242 -pubout 2>/dev/null)" = "$(pubkey_of_cert b)" ]
expect "the key is encrypted with the first line of the command's output" $?
! grep -q "from-the-helper" enroll_b.err run_b.err
expect "the command's passphrase is not logged" $?

# ---- enforced mode and migration ----------------------------------------------------------------
enroll c
expect "enroll without a passphrase (plaintext key, as before)" $?
grep -q -- '-----BEGIN EC PRIVATE KEY-----' c/key.pem
expect "the key is plaintext SEC1" $?
printf 'key_store = enforced\nkey_passphrase_file = %s/pass.txt\n' "$T" >enforced.conf
once c run_enf.err --config enforced.conf
rc=$?
[ $rc = 1 ] && grep -q "c/key.pem is a plaintext private key and the key store is enforced: refusing it" run_enf.err &&
    ! grep -q "connected to" run_enf.err && [ "$(cat c/key_store)" = enforced ]
expect "key_store = enforced refuses the plaintext key (exit $rc, names the file); recorded in STATE/key_store" $?
once c run_enf2.err --config file.conf
rc=$?
[ $rc = 1 ] && grep -q "plaintext private key and the key store is enforced" run_enf2.err
expect "a configuration without key_store = enforced does not turn it off (exit $rc)" $?
once c run_enf3.err
rc=$?
[ $rc = 1 ] && grep -q "the key store is enforced but no key_passphrase_file or key_passphrase_command" run_enf3.err
expect "enforced without any passphrase: refuses to start (exit $rc)" $?
IOTHUB_DEVICE_SECRET=$(cat c.secret) timeout 60 "$AGENT" enroll --url "$BASE" --cacert trust.pem \
    --device-id "${ID[c]}" --dir c --force 2>enroll_enf.err
rc=$?
[ $rc = 1 ] && grep -q "enforced but no key_passphrase" enroll_enf.err && grep -q 'BEGIN EC PRIVATE KEY' c/key.pem
expect "enrollment into an enforced directory without a passphrase is refused (no plaintext key written)" $?
"$AGENT" key status --dir c --config enforced.conf >status_c.out 2>&1
rc=$?
[ $rc = 1 ] && grep -q "^key_store: *enforced" status_c.out && grep -q "^key.pem *plaintext" status_c.out
expect "key status: enforced, key.pem plaintext, exit $rc" $?
pub_before=$(openssl pkey -in c/key.pem -pubout)
"$AGENT" key migrate --dir c --config enforced.conf >migrate.out 2>migrate.err
expect "iothub-device key migrate succeeds" $?
head -n 1 c/key.pem | grep -qx -- '-----BEGIN ENCRYPTED PRIVATE KEY-----' &&
    [ "$(openssl pkey -in c/key.pem -passin file:pass.txt -pubout 2>/dev/null)" = "$pub_before" ] &&
    [ "$(stat -c %a c/key.pem)" = 600 ] && ! ls c | grep -q tmp && ! grep -rq 'BEGIN EC PRIVATE KEY' c
expect "migrate encrypted the same key in place (mode 0600, no temporary or plaintext copy left)" $?
"$AGENT" key migrate --dir c --config enforced.conf >migrate2.out 2>&1 && grep -q "already encrypted" migrate2.out
expect "migrate again: already encrypted, exit 0" $?
once c run_mig.err --config enforced.conf && grep -q "published" run_mig.err
expect "after migration the enforced agent connects" $?
"$AGENT" key status --dir c --config enforced.conf >status_c2.out 2>&1 &&
    grep -q "^key.pem *encrypted (PKCS#8 PBES2), the passphrase opens it" status_c2.out
expect "key status: encrypted, the passphrase opens it, exit 0" $?

# ---- a key openssl encrypted ------------------------------------------------------------------
openssl pkey -in c/key.pem -passin file:pass.txt -out c.plain.pem 2>/dev/null &&
    openssl pkcs8 -topk8 -v2 aes-256-cbc -in c.plain.pem -passout file:pass.txt -out c/key.pem &&
    rm -f c.plain.pem
expect "openssl pkcs8 -topk8 -v2 aes-256-cbc re-encrypts the key" $?
once c run_ossl.err --config enforced.conf && grep -q "published" run_ossl.err
expect "the agent reads openssl's PBES2 key and connects with it" $?
"$AGENT" status --dir c >status_plain.out 2>&1 && grep -q "^key_type: *ec-p256 (encrypted)" status_plain.out
expect "iothub-device status shows the key type of an encrypted key without the passphrase" $?
finish
