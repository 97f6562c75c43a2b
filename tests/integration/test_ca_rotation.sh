#!/usr/bin/env bash
# Rotating the issuing CA (`iothubd ca rotate`): a new issuing CA under the same root signs
# from then on; certificates of the retired one keep working over MQTT and for renewal until
# they expire, its CRL is still published (GET /v1/crl?ca=SERIAL) and revocations of its
# certificates land there; the server certificate comes from the new CA.
. "$(dirname "$0")/api_lib.sh"

api_setup rotate || { not_ok "server starts"; finish; }
bearer "$ADMIN" POST /v1/products '{"name": "rotation"}'
PK=$(jf product_key)

declare -A DEV SECRET
# new_device NAME: provisions and activates a device (NAME.pem, NAME.key).
new_device() {
    bearer "$ADMIN" POST /v1/devices "{\"product_key\": \"$PK\", \"serial_number\": \"SN-$1\"}"
    DEV[$1]=$(jf device_id) SECRET[$1]=$(jf device_secret)
    activate_as device "${DEV[$1]}" "${SECRET[$1]}" "$1"
}
serial_of() { openssl x509 -in "$1" -noout -serial | cut -d= -f2; }
issuer_cn() { openssl x509 -in "$1" -noout -issuer -nameopt multiline | awk -F' = ' '/commonName/ {print $2}'; }
# mqtt_ok NAME: NAME's certificate gets through the mTLS handshake and CONNECT.
mqtt_ok() {
    timeout 10 mosquitto_pub --cafile root.pem -h 127.0.0.1 -p "$MQTT_PORT" --cert "$1.pem" \
        --key "$1.key" -t "devices/${DEV[$1]}/telemetry" -q 1 -m hello >>pub.log 2>&1
}

new_device old && new_device renewer
expect "two devices activated under the first issuing CA" $?
OLD_CA=$(openssl x509 -in issuing.pem -noout -serial | cut -d= -f2)
[ "$(issuer_cn old.pem)" = "iothub Issuing CA" ]
expect "their issuer is the first issuing CA" $?

stop_server
"$IOTHUBD" -c iothub.conf ca rotate >rotate.out 2>rotate.err
rc=$?
[ $rc = 0 ] && grep -q 'issuing CA rotated: "iothub Issuing CA G2"' rotate.out
expect "iothubd ca rotate creates \"iothub Issuing CA G2\"" $?
[ "$(sql "$URL" "SELECT count(*) FILTER (WHERE active), count(*) FROM cas WHERE role = 'issuing'")" = "1|2" ] &&
    [ "$(count "audit_log WHERE action = 'ca.rotate'")" = 1 ]
expect "one active and one retired issuing CA; the rotation is audited" $?
"$IOTHUBD" -c iothub.conf ca rotate extra >/dev/null 2>&1
[ $? = 2 ]
expect "ca rotate takes no argument" $?

start_server iothub.conf serve2.log
expect "serve starts with the new issuing CA" $?
"$IOTHUBD" -c iothub.conf ca chain >chain2.pem
awk '/BEGIN/ {n++} n == 1 {print > "issuing2.pem"}' chain2.pem
[ "$(openssl x509 -in issuing2.pem -noout -subject -nameopt multiline | awk -F' = ' '/commonName/ {print $2}')" = "iothub Issuing CA G2" ] &&
    openssl verify -CAfile root.pem issuing2.pem >/dev/null
expect "ca chain prints the new issuing CA, signed by the same root" $?
echo | openssl s_client -connect "127.0.0.1:$API_PORT" -CAfile root.pem -showcerts 2>/dev/null |
    openssl x509 -noout -issuer -nameopt multiline | grep -q 'iothub Issuing CA G2'
expect "the server certificate now comes from the new issuing CA" $?

mqtt_ok old
expect "a device certificate of the retired CA still connects over MQTT" $?
new_device new && [ "$(issuer_cn new.pem)" = "iothub Issuing CA G2" ] && mqtt_ok new
expect "a new activation is signed by the new CA and connects" $?
fetch_crl new-crl && openssl verify -x509_strict -crl_check -purpose sslclient -CAfile root.pem \
    -untrusted issuing2.pem -CRLfile new-crl.pem new.pem >/dev/null 2>&1
expect "the new certificate verifies with the new chain and GET /v1/crl" $?

# Renewal with a certificate of the retired CA moves the device to the new one.
RENEWER_OLD=$(serial_of renewer.pem)
make_csr ec-p256 renewed && csr_body renewed.csr renewed.json
call POST "/v1/devices/${DEV[renewer]}/renew" --cert renewer.pem --key renewer.key \
    -H 'Content-Type: application/json' --data-binary @renewed.json
[ "$STATUS" = 201 ] && jf_file certificate renewed.pem && [ "$(issuer_cn renewed.pem)" = "iothub Issuing CA G2" ]
expect "renewal with a retired-CA certificate gets one from the new CA (got $STATUS)" $?
RENEWED_SERIAL=$(serial_of renewed.pem)
# The answer was lost: the same request again gets the same certificate back, 200.
call POST "/v1/devices/${DEV[renewer]}/renew" --cert renewer.pem --key renewer.key \
    -H 'Content-Type: application/json' --data-binary @renewed.json
[ "$STATUS" = 200 ] && [ "$(jf serial)" = "$RENEWED_SERIAL" ] &&
    [ "$(count "certificates WHERE device_id = '${DEV[renewer]}' AND status = 'valid'")" = 1 ]
expect "a renewal retried after a lost answer gets the same certificate again (200)" $?
make_csr ec-p256 other && csr_body other.csr other.json
call POST "/v1/devices/${DEV[renewer]}/renew" --cert renewer.pem --key renewer.key \
    -H 'Content-Type: application/json' --data-binary @other.json
expect_error "a superseded certificate with a CSR for another key is refused" 403 certificate_superseded
mv renewed.pem renewer.pem && mv renewed.key renewer.key

# Revoking a retired-CA certificate updates that CA's CRL, which stays published.
OLD_SERIAL=$(serial_of old.pem)
bearer "$ADMIN" POST "/v1/certificates/$OLD_SERIAL/revoke" '{"reason": "keyCompromise"}'
expect_status "a retired-CA certificate is revoked" 200
for _ in $(seq 100); do # the retired CA's CRLs follow within a second
    call GET "/v1/crl?ca=$OLD_CA&format=pem"
    cp body.out old-crl.pem
    call GET "/v1/crl?ca=$OLD_CA&delta=1&format=pem"
    cp body.out old-crl.delta.pem
    [ -n "$(crl_reason old-crl.pem "$OLD_SERIAL")" ] && break
    sleep 0.05
done
[ "$STATUS" = 200 ] && [ "$(crl_reason old-crl.pem "$OLD_SERIAL")" = "Key Compromise" ] &&
    openssl crl -in old-crl.delta.pem -noout -issuer | grep -q 'CN = iothub Issuing CA$' &&
    openssl crl -in old-crl.delta.pem -noout -CAfile issuing.pem 2>&1 | grep -q 'verify OK' &&
    openssl crl -in old-crl.pem -noout -text | grep -A3 'Freshest CRL' | grep -q "ca=$OLD_CA&delta=1"
expect "GET /v1/crl?ca=<retired serial>(&delta=1) lists it with its reason, signed by the retired CA" $?
[ "$(crl_reason old-crl.pem "$RENEWER_OLD")" = "Superseded" ]
expect "the renewed device's old certificate is on the retired CA's CRL as superseded" $?
fetch_crl new-crl2 && [ -z "$(crl_reason new-crl2.pem "$OLD_SERIAL")" ]
expect "the new CA's CRL does not list it" $?
! mqtt_ok old
expect "the revoked retired-CA certificate is refused over MQTT" $?
tls_probe old-probe.out "$MQTT_PORT" root.pem -cert old.pem -key old.key
grep -q 'alert certificate revoked' old-probe.out && server_alive
expect "its handshake ends with the TLS alert certificate revoked; iothubd still up" $?
call GET "/v1/crl?ca=0123456789ABCDEF"
expect_error "an unknown CA serial is 404" 404 not_found

# After a restart both CRLs are still there and the retired CA is still trusted.
stop_server
start_server iothub.conf serve3.log
mqtt_ok renewer && ! mqtt_ok old
expect "after a restart: renewed device connects, revoked one is refused" $?
tls_probe old-probe2.out "$MQTT_PORT" root.pem -cert old.pem -key old.key
grep -q 'alert certificate revoked' old-probe2.out && server_alive
expect "after the restart too its handshake ends with the alert certificate revoked" $?
stop_server
finish
