#!/usr/bin/env bash
# OCSP across `iothubd ca rotate`: the retired issuing CA keeps its own responder (a
# certificate of the old device stays good, then revoked after a REST revocation), the new
# issuing CA answers for its devices, and the root answers good for both issuing CAs. Each
# CA's answers are signed by a responder certificate that CA issued.
. "$(dirname "$0")/api_lib.sh"

api_setup ocsp_rot
expect "serve starts" $?
OCSP="https://127.0.0.1:$API_PORT/ocsp"
bearer "$ADMIN" POST /v1/products '{"name": "ocsp-rot"}'
PK=$(jf product_key)
# new_active NAME: a device provisioned and activated; NAME.pem, NAME_ID.
new_active() {
    bearer "$ADMIN" POST /v1/devices "{\"product_key\": \"$PK\", \"serial_number\": \"$1\"}"
    printf -v "$1_ID" '%s' "$(jf device_id)"
    activate_as device "$(jf device_id)" "$(jf device_secret)" "$1"
}
new_active old
expect "a device activated under the first issuing CA" $?
cp issuing.pem issuing1.pem

stop_server
"$IOTHUBD" -c iothub.conf ca rotate >rotate.out 2>&1
expect "ca rotate" $?
"$IOTHUBD" -c iothub.conf ca chain >trust2.pem 2>/dev/null
awk '/BEGIN/ {n++} n == 1' trust2.pem >issuing2.pem
cat trust2.pem issuing1.pem >all.pem
start_server iothub.conf serve2.log
expect "serve starts with a retired issuing CA" $?
new_active new
expect "a device activated under the new issuing CA" $?

# ask OUT ISSUER CERT: openssl ocsp with every CA of the hub as trust anchors.
ask() {
    openssl ocsp -url "$OCSP" -CAfile all.pem -issuer "$2" -cert "$3" -resp_text >"$1" 2>&1
}
ask old.out issuing1.pem old.pem
grep -q '^old.pem: good' old.out && grep -q 'Response verify OK' old.out &&
    grep -Eq 'CN ?= ?iothub Issuing CA OCSP Responder' old.out
expect "the retired issuing CA's responder: its device is good" $?
ask new.out issuing2.pem new.pem
grep -q '^new.pem: good' new.out && grep -q 'Response verify OK' new.out &&
    grep -Eq 'CN ?= ?iothub Issuing CA G2 OCSP Responder' new.out
expect "the new issuing CA's own responder: its device is good" $?
OLD_SERIAL=$(openssl x509 -in old.pem -noout -serial | cut -d= -f2)
openssl ocsp -url "$OCSP" -CAfile all.pem -issuer issuing2.pem -serial "0x$OLD_SERIAL" \
    -resp_text >cross.out 2>&1
grep -q "^0x$OLD_SERIAL: unknown" cross.out
expect "the old device's serial under the new CA's name: unknown (another CA issued it)" $?
grep -q "^0x$OLD_SERIAL: unknown" cross.out || head -c 3000 cross.out >&2
ask root1.out root.pem issuing1.pem && ask root2.out root.pem issuing2.pem
grep -q '^issuing1.pem: good' root1.out && grep -q '^issuing2.pem: good' root2.out
expect "the root's responder: both issuing CAs are good" $?

bearer "$ADMIN" POST "/v1/devices/$old_ID/revoke" '{"reason": "superseded"}'
expect_status "the old device is revoked through the API" 200
ask old2.out issuing1.pem old.pem
grep -q '^old.pem: revoked' old2.out && grep -q 'Reason: superseded' old2.out
expect "the retired CA's responder says revoked (superseded) at once" $?
[ "$(count "ocsp_signers")" -ge 5 ]
expect "responder certificates of both starts are in ocsp_signers" $?
stop_server
expect "serve stops cleanly" $?
finish
