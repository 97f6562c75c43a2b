#!/usr/bin/env bash
# EST (RFC 7030) as a device integrator scripts it with curl and openssl (the commands of
# docs/ca.md "EST"): cacerts, csrattrs, simpleenroll with the device id and secret,
# simplereenroll with the current certificate, an MQTT connection with the result; and the
# refusals: wrong media type (415), bad base64 (400), a CSR naming another device (403), a
# revoked or superseded client certificate (403), no or wrong credentials (401).
. "$(dirname "$0")/api_lib.sh"

api_setup est
expect "serve starts" $?
EST="$BASE/.well-known/est"

bearer "$ADMIN" POST /v1/products '{"name": "est"}'
PK=$(jf product_key)
bearer "$ADMIN" POST /v1/devices "{\"product_key\": \"$PK\", \"serial_number\": \"est-1\"}"
ID=$(jf device_id) SECRET=$(jf device_secret)
bearer "$ADMIN" POST /v1/devices "{\"product_key\": \"$PK\", \"serial_number\": \"est-2\"}"
OTHER=$(jf device_id) OTHER_SECRET=$(jf device_secret)

# ---- cacerts and csrattrs: what the device fetches first ------------------------------------
curl -sS --cacert trust.pem -D cacerts.h "$EST/cacerts" | openssl base64 -d |
    openssl pkcs7 -inform DER -print_certs -out cacerts.pem
[ "$(grep -c 'BEGIN CERTIFICATE' cacerts.pem)" = 2 ] &&
    grep -qi '^content-type: application/pkcs7-mime' cacerts.h &&
    grep -q 'CN = iothub Root CA' cacerts.pem && grep -q 'CN = iothub Issuing CA' cacerts.pem
expect "cacerts: base64 PKCS#7 (application/pkcs7-mime) with the issuing CA and the root" $?

curl -sS --cacert cacerts.pem -D csrattrs.h "$EST/csrattrs" | openssl base64 -d >csrattrs.der
openssl asn1parse -inform DER -in csrattrs.der >csrattrs.txt
grep -qi '^content-type: application/csrattrs' csrattrs.h && grep -q id-ecPublicKey csrattrs.txt &&
    grep -q prime256v1 csrattrs.txt && grep -q secp384r1 csrattrs.txt &&
    grep -q rsaEncryption csrattrs.txt
expect "csrattrs: application/csrattrs naming EC P-256, P-384 and RSA (trusting cacerts.pem)" $?

# ---- simpleenroll: Basic device id + secret, base64 DER PKCS#10 --------------------------------
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout device.key \
    -subj "/CN=$ID" -outform DER 2>/dev/null | openssl base64 >device.b64
curl -sS --cacert cacerts.pem -u "$ID:$SECRET" -H 'Content-Type: application/pkcs10' \
    --data-binary @device.b64 -D enroll.h -o enroll.b64 "$EST/simpleenroll"
openssl base64 -d -in enroll.b64 | openssl pkcs7 -inform DER -print_certs -out device.pem
grep -q '^HTTP/[0-9.]* 200' enroll.h &&
    grep -qi '^content-type: application/pkcs7-mime; smime-type=certs-only' enroll.h &&
    [ "$(grep -c 'BEGIN CERTIFICATE' device.pem)" = 1 ] &&
    openssl verify -CAfile cacerts.pem -purpose sslclient device.pem >/dev/null &&
    openssl x509 -in device.pem -noout -subject | grep -q "CN = $ID" &&
    [ "$(openssl x509 -in device.pem -noout -pubkey | openssl sha256)" = \
      "$(openssl pkey -in device.key -pubout | openssl sha256)" ]
expect "simpleenroll: 200, one certificate for CN=<id> with the CSR's key, chaining to cacerts" $?
[ "$(count "devices WHERE id = '$ID' AND status = 'active'")" = 1 ] &&
    [ "$(count "audit_log WHERE action = 'device.activate' AND target = '$ID' AND details->>'protocol' = 'est'")" = 1 ]
expect "the device is active and the enrollment is audited as device.activate (protocol est)" $?

timeout 10 mosquitto_pub "${MQ[@]}" --cert device.pem --key device.key \
    -t "devices/$ID/telemetry" -m est -q 1 >pub.log 2>&1
expect "the enrolled certificate connects over mutual-TLS MQTT" $?

# ---- simplereenroll: the current certificate over TLS -----------------------------------------
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-384 -nodes -keyout device2.key \
    -subj "/CN=$ID" -outform DER 2>/dev/null | openssl base64 >device2.b64
curl -sS --cacert cacerts.pem --cert device.pem --key device.key \
    -H 'Content-Type: application/pkcs10' --data-binary @device2.b64 \
    "$EST/simplereenroll" | openssl base64 -d | openssl pkcs7 -inform DER -print_certs -out device2.pem
OLD=$(openssl x509 -in device.pem -noout -serial | cut -d= -f2)
[ -s device2.pem ] && openssl verify -CAfile cacerts.pem device2.pem >/dev/null &&
    [ "$(openssl x509 -in device2.pem -noout -pubkey | openssl sha256)" = \
      "$(openssl pkey -in device2.key -pubout | openssl sha256)" ] &&
    [ "$(count "certificates WHERE serial = '$OLD' AND revocation_reason = 4")" = 1 ]
expect "simplereenroll: a certificate for the new key, the presented one superseded" $?

curl -sS --cacert cacerts.pem --cert device.pem --key device.key -H 'Content-Type: application/pkcs10' \
    --data-binary @device.b64 -o body.out -w '%{http_code}' "$EST/simplereenroll" >status.out
STATUS=$(cat status.out) BODY=$(cat body.out)
expect_error "simplereenroll with the superseded certificate: 403 certificate_superseded" 403 certificate_superseded

# ---- refusals ------------------------------------------------------------------------------
# est_call NAME-OF-BODY-FILE CONTENT-TYPE [curl options]: a simpleenroll as the device.
est_call() {
    local file=$1 type=$2
    shift 2
    call POST /.well-known/est/simpleenroll -u "$ID:$SECRET" -H "Content-Type: $type" \
        --data-binary "@$file" "$@"
}
est_call device.b64 application/json
expect_error "a base64 CSR sent as application/json: 415" 415 unsupported_media_type
est_call device.b64 text/plain
expect_error "sent as text/plain: 415" 415 unsupported_media_type
printf 'MIIB@@@@not base64!' >bad.b64
est_call bad.b64 application/pkcs10
expect_error "a body that is not base64: 400 invalid_base64" 400 invalid_base64
printf 'QUJD=' >badpad.b64
est_call badpad.b64 application/pkcs10
expect_error "base64 with broken padding: 400 invalid_base64" 400 invalid_base64
: >empty.b64
est_call empty.b64 application/pkcs10
expect_error "an empty body: 400 invalid_base64" 400 invalid_base64
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout pem.key \
    -subj "/CN=$ID" 2>/dev/null | openssl base64 >pem.b64
est_call pem.b64 application/pkcs10
expect_error "base64 of a PEM request (not DER): 400 invalid_csr" 400 invalid_csr
head -c 300 /dev/urandom | openssl base64 >noise.b64
est_call noise.b64 application/pkcs10
expect_error "base64 of random bytes: 400 invalid_csr" 400 invalid_csr
{ openssl base64 -d -in device.b64; printf 'trailing'; } | openssl base64 >trail.b64
est_call trail.b64 application/pkcs10
expect_error "a DER request with trailing bytes: 400 invalid_csr" 400 invalid_csr
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-521 -nodes -keyout p521.key \
    -subj "/CN=$ID" -outform DER 2>/dev/null | openssl base64 >p521.b64
est_call p521.b64 application/pkcs10
expect_error "a P-521 key: 400 key_not_accepted" 400 key_not_accepted
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout steal.key \
    -subj "/CN=$OTHER" -outform DER 2>/dev/null | openssl base64 >steal.b64
before=$(count certificates)
est_call steal.b64 application/pkcs10
expect_error "a CSR whose CN names another device: 403 csr_subject_mismatch" 403 csr_subject_mismatch
[ "$(count certificates)" = "$before" ] &&
    [ "$(count "audit_log WHERE action = 'device.activate' AND result = '403 csr_subject_mismatch'")" = 1 ]
expect "nothing is issued for it, and the refusal is audited" $?
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout nocn.key \
    -subj "/O=whatever" -outform DER 2>/dev/null | openssl base64 -A >nocn.b64
call POST /.well-known/est/simpleenroll -u "$OTHER:$OTHER_SECRET" -H 'Content-Type: application/pkcs10' \
    --data-binary @nocn.b64
expect_status "a CSR without CN, base64 on one line, for the other device: 200" 200
openssl base64 -d -in body.out | openssl pkcs7 -inform DER -print_certs | grep -q "CN = $OTHER"
expect "its certificate names CN=<the other device> (the subject comes from iothub)" $?

call POST /.well-known/est/simpleenroll -H 'Content-Type: application/pkcs10' --data-binary @device.b64
expect_error "simpleenroll without credentials: 401" 401 unauthorized
grep -qi '^www-authenticate: Basic' headers.out
expect "with WWW-Authenticate: Basic" $?
est_call device.b64 application/pkcs10 -u "$ID:wrong-secret"
expect_error "with a wrong secret: 401" 401 unauthorized
call POST /.well-known/est/simpleenroll -u "$PK:x" -H 'Content-Type: application/pkcs10' --data-binary @device.b64
expect_error "with a product key as user: 401" 401 unauthorized
call POST /.well-known/est/simplereenroll -H 'Content-Type: application/pkcs10' --data-binary @device2.b64
expect_error "simplereenroll without a client certificate: 401" 401 client_certificate_required
call GET /.well-known/est/simpleenroll
expect_error "GET simpleenroll: 405" 405 method_not_allowed
call GET /.well-known/est/label/cacerts
expect_status "an EST label (not served): 404" 404

# A revoked client certificate.
SERIAL2=$(openssl x509 -in device2.pem -noout -serial | cut -d= -f2)
bearer "$ADMIN" POST "/v1/certificates/$SERIAL2/revoke" '{"reason": "keyCompromise"}'
expect_status "an operator revokes the current certificate" 200
call POST /.well-known/est/simplereenroll --cert device2.pem --key device2.key \
    -H 'Content-Type: application/pkcs10' --data-binary @device2.b64
expect_error "simplereenroll with the revoked certificate: 403 certificate_revoked" 403 certificate_revoked
bearer "$ADMIN" POST "/v1/devices/$OTHER/revoke" '{"reason": "keyCompromise"}'
call POST /.well-known/est/simpleenroll -u "$OTHER:$OTHER_SECRET" -H 'Content-Type: application/pkcs10' \
    --data-binary @nocn.b64
expect_error "simpleenroll of a revoked device: 403 device_revoked" 403 device_revoked

server_alive
expect "the server is still up" $?
stop_server
expect "serve stops cleanly" $?
finish
