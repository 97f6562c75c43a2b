#!/usr/bin/env bash
# Legacy devices next to modern ones (issue 15, item 5): server_key_types = ec-p256,rsa-2048
# puts an EC and an RSA server certificate side by side on the MQTT mTLS listener and the
# HTTPS API; the nine RSA-authenticated legacy suites (TLS_RSA / DHE_RSA / ECDHE_RSA with
# AES-128 CBC-SHA, CBC-SHA256, GCM-SHA256) work once listed in tls_ciphers, with an RSA or an
# EC device key, and are refused otherwise; forward secrecy wins over the client's order; a
# list no server key can serve stops the daemon at start with a message.
. "$(dirname "$0")/api_lib.sh"

LEGACY="TLS_RSA_WITH_AES_128_CBC_SHA,TLS_RSA_WITH_AES_128_CBC_SHA256,TLS_RSA_WITH_AES_128_GCM_SHA256"
LEGACY="$LEGACY,TLS_DHE_RSA_WITH_AES_128_CBC_SHA,TLS_DHE_RSA_WITH_AES_128_CBC_SHA256"
LEGACY="$LEGACY,TLS_DHE_RSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"
LEGACY="$LEGACY,TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256,TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
MODERN="TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"
# The same nine suites as OpenSSL names them, in the same order.
OSSL=(AES128-SHA AES128-SHA256 AES128-GCM-SHA256 DHE-RSA-AES128-SHA DHE-RSA-AES128-SHA256
      DHE-RSA-AES128-GCM-SHA256 ECDHE-RSA-AES128-SHA ECDHE-RSA-AES128-SHA256
      ECDHE-RSA-AES128-GCM-SHA256)

# ---- init: a second server key type is added by running init again ---------------------------
URL=$(new_db legacy)
write_conf iothub.conf "$URL"
"$IOTHUBD" -c iothub.conf init --token-file admin.token >init1.out 2>&1
expect "iothubd init with the default server_key_types" $?
ADMIN=$(cat admin.token)
"$IOTHUBD" -c iothub.conf ca chain >trust.pem 2>/dev/null
[ "$(count "certificates WHERE kind = 'server'")" = 1 ]
expect "one server certificate (ec-p256) by default" $?

write_conf legacy.conf "$URL" "server_key_types = ec-p256, rsa-2048" "tls_ciphers = $MODERN,$LEGACY"
timeout 60 "$IOTHUBD" -c legacy.conf serve >refused0.log 2>&1
[ $? = 1 ] && grep -q 'no valid rsa-2048 server certificate.*iothubd init' refused0.log
expect "serve refuses a server key type init has not created, naming it" $?
"$IOTHUBD" -c legacy.conf init --token-file admin.token >init2.out 2>&1 &&
    grep -q '1 CA/server certificate(s) created' init2.out
expect "init run again adds the rsa-2048 server certificate" $?
"$IOTHUBD" -c legacy.conf init --token-file admin.token >init3.out 2>&1 &&
    grep -q 'already initialised: nothing changed' init3.out
expect "a third init changes nothing" $?
ECSERVER=$(sql "$URL" "SELECT count(*) FROM certificates WHERE kind = 'server'")
[ "$ECSERVER" = 2 ]
expect "two server certificates (ec-p256 and rsa-2048) in the database" $?

start_server legacy.conf serve.log
expect "iothubd serves with both server keys and the nine legacy suites listed" $?

# Two devices: one with an RSA key, one with an EC key. The RSA one activates (and renews)
# with curl restricted to a static-RSA legacy suite.
bearer "$ADMIN" POST /v1/products '{"name":"logger"}'
PK=$(jf product_key)
bearer "$ADMIN" POST /v1/devices "{\"product_key\":\"$PK\",\"serial_number\":\"SN-rsa\"}"
RSA_ID=$(jf device_id) RSA_SECRET=$(jf device_secret)
bearer "$ADMIN" POST /v1/devices "{\"product_key\":\"$PK\",\"serial_number\":\"SN-ec\"}"
EC_ID=$(jf device_id) EC_SECRET=$(jf device_secret)
# legacy_call CIPHER METHOD PATH [curl options]: an API call restricted to one TLS 1.2 suite.
legacy_call() {
    local cipher=$1 method=$2 path=$3
    shift 3
    call "$method" "$path" --tls-max 1.2 --ciphers "$cipher" -w '%{http_code}' "$@"
}
make_csr rsa-2048 rsadev && csr_body rsadev.csr rsadev.json
legacy_call AES128-SHA POST "/v1/devices/$RSA_ID/activate" -u "$RSA_ID:$RSA_SECRET" \
    -H 'Content-Type: application/json' --data-binary @rsadev.json
[ "$STATUS" = 201 ] && jf_file certificate rsadev.pem
expect "an RSA-only client (curl --ciphers AES128-SHA) activates a device over the API" $?
legacy_call AES128-SHA POST "/v1/devices/$RSA_ID/activate" -u "$RSA_ID:$RSA_SECRET" \
    -H 'Content-Type: application/json' --data-binary @rsadev.json
[ "$STATUS" = 201 ] && jf_file certificate rsadev.pem
expect "... and renews its certificate the same way" $?
legacy_call DHE-RSA-AES128-SHA GET /v1/crl
[ "$STATUS" = 200 ] && openssl crl -inform DER -in body.out -noout 2>/dev/null
expect "... and fetches GET /v1/crl over DHE_RSA" $?
activate_as device "$EC_ID" "$EC_SECRET" ecdev
expect "the EC device activates (default suites)" $?

# hs PORT CIPHER WHO: a TLS 1.2 handshake offering only CIPHER, with WHO's certificate;
# prints the suite negotiated (OpenSSL name) or nothing. (s_client says "New, SSLv3, Cipher
# is AES128-SHA" for the SHA-1 suites: the version there is the suite's oldest.)
hs() {
    timeout 10 openssl s_client -connect "127.0.0.1:$1" -tls1_2 -cipher "$2" -CAfile trust.pem \
        -cert "$3.pem" -key "$3.key" </dev/null 2>/dev/null |
        sed -n 's/^New, [A-Za-z0-9.]*, Cipher is \(.*\)$/\1/p' | head -n 1
}

bad=""
for c in "${OSSL[@]}"; do
    for who in rsadev ecdev; do
        for port in "$MQTT_PORT" "$API_PORT"; do
            got=$(hs "$port" "$c" "$who")
            [ "$got" = "$c" ] || bad="$bad $c/$who/$([ "$port" = "$MQTT_PORT" ] && echo mqtt || echo api)=${got:-refused}"
        done
    done
done
[ -z "$bad" ]
expect "all nine legacy suites negotiate with an RSA and an EC device key, on MQTT and the API (failures:${bad:- none})" $?

got=$(hs "$MQTT_PORT" ECDHE-ECDSA-AES128-GCM-SHA256 ecdev)
[ "$got" = ECDHE-ECDSA-AES128-GCM-SHA256 ]
expect "a modern ECDSA suite on the same listener (the EC server certificate)" $?
timeout 10 openssl s_client -connect "127.0.0.1:$MQTT_PORT" -tls1_2 -cipher AES128-SHA \
    -CAfile trust.pem -cert rsadev.pem -key rsadev.key -showcerts </dev/null 2>/dev/null |
    openssl x509 -noout -text 2>/dev/null | grep -q 'Public Key Algorithm: rsaEncryption'
expect "the legacy client gets the RSA server certificate" $?
timeout 10 openssl s_client -connect "127.0.0.1:$MQTT_PORT" -tls1_2 \
    -cipher ECDHE-ECDSA-AES128-GCM-SHA256 -CAfile trust.pem -cert ecdev.pem -key ecdev.key \
    </dev/null 2>/dev/null | openssl x509 -noout -text 2>/dev/null |
    grep -q 'Public Key Algorithm: id-ecPublicKey'
expect "the modern client gets the EC server certificate" $?
pub ecdev -i "$EC_ID" -t "devices/$EC_ID/telemetry" -m modern -q 1
expect "mosquitto_pub with an EC certificate and default suites publishes on the same listener" $?

for port in "$MQTT_PORT" "$API_PORT"; do
    got=$(hs "$port" AES128-SHA:DHE-RSA-AES128-SHA:ECDHE-RSA-AES128-SHA rsadev)
    [ "$got" = ECDHE-RSA-AES128-SHA ]
    expect "forward secrecy preferred on port $port: RSA, DHE_RSA, ECDHE_RSA offered in that order -> $got" $?
    got=$(hs "$port" AES128-GCM-SHA256:DHE-RSA-AES128-GCM-SHA256 rsadev)
    [ "$got" = DHE-RSA-AES128-GCM-SHA256 ]
    expect "... RSA then DHE_RSA offered on port $port -> $got" $?
done

v=""
for _ in $(seq 50); do
    v=$(curl -sk "https://127.0.0.1:$API_PORT/metrics" |
        sed -n 's/^iothub_tls_handshakes_by_suite_total{listener="mtls",suite="TLS-RSA-WITH-AES-128-CBC-SHA"} //p')
    [ -n "$v" ] && [ "$v" -ge 2 ] && break
    sleep 0.1
done
[ -n "$v" ] && [ "$v" -ge 2 ]
expect "handshakes are counted per negotiated suite (TLS-RSA-WITH-AES-128-CBC-SHA: ${v:-none})" $?

kill -HUP "$SERVER_PID"
sleep 0.5
got=$(hs "$MQTT_PORT" DHE-RSA-AES128-GCM-SHA256 rsadev)
[ "$got" = DHE-RSA-AES128-GCM-SHA256 ] && server_alive
expect "after SIGHUP the legacy suites still negotiate" $?
stop_server
expect "iothubd stops" $?

# ---- without the opt-in: the legacy suites are refused, modern clients still served ----------
write_conf default.conf "$URL" "server_key_types = ec-p256,rsa-2048"
start_server default.conf serve2.log
expect "iothubd serves with both keys and the default tls_ciphers" $?
bad=""
for c in "${OSSL[@]}"; do
    case $c in ECDHE-RSA-AES128-GCM-SHA256) continue ;; esac # a default (modern) suite
    for port in "$MQTT_PORT" "$API_PORT"; do
        got=$(hs "$port" "$c" rsadev)
        [ -z "$got" ] || bad="$bad $c/$port=$got"
    done
done
[ -z "$bad" ]
expect "without the opt-in the eight CBC / non-ECDHE legacy suites are refused on both ports (accepted:${bad:- none})" $?
got=$(hs "$MQTT_PORT" ECDHE-RSA-AES128-GCM-SHA256 rsadev)
[ "$got" = ECDHE-RSA-AES128-GCM-SHA256 ]
expect "... while ECDHE_RSA with AES-GCM (a default suite) uses the RSA certificate" $?
pub ecdev -i "$EC_ID" -t "devices/$EC_ID/telemetry" -m modern -q 1
expect "... and mosquitto_pub still connects" $?
stop_server
expect "iothubd stops" $?

# ---- a list no server key can serve: refused at start, with the key and the suites -------------
# refused CONF LOG: serve exits with status 1 (not killed by the timeout).
refused() {
    timeout 60 "$IOTHUBD" -c "$1" serve >"$2" 2>&1
    [ $? = 1 ]
}
write_conf rsaonly.conf "$URL" "server_key_types = ec-p256" \
    "tls_ciphers = TLS_RSA_WITH_AES_128_CBC_SHA, TLS_DHE_RSA_WITH_AES_128_GCM_SHA256"
refused rsaonly.conf refused1.log &&
    grep 'tls_ciphers: no listed cipher suite can be served' refused1.log | grep 'EC P-256' |
    grep -q 'TLS-RSA-WITH-AES-128-CBC-SHA, TLS-DHE-RSA-WITH-AES-128-GCM-SHA256'
expect "only RSA suites with server_key_types = ec-p256: refused at start, naming the key and the suites" $?
write_conf econly.conf "$URL" "server_key_types = rsa-2048" \
    "tls_ciphers = TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"
refused econly.conf refused2.log &&
    grep 'tls_ciphers: no listed cipher suite can be served' refused2.log | grep 'RSA 2048' |
    grep -q 'TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256'
expect "only ECDSA suites with server_key_types = rsa-2048: refused at start, naming the key and the suite" $?
write_conf badtype.conf "$URL" "server_key_types = ec-p256, rsa-4096"
"$IOTHUBD" -c badtype.conf serve >badtype.log 2>&1
[ $? != 0 ] && grep -q 'badtype.conf:5: bad value for server_key_types' badtype.log
expect "server_key_types refuses rsa-4096 with the line" $?

# ---- rotation: a new issuing CA re-issues a server certificate of every type --------------------
"$IOTHUBD" -c legacy.conf ca rotate >rotate.out 2>&1
new=$(sql "$URL" "SELECT count(*) FROM certificates c JOIN cas a ON a.id = c.ca_id
                  WHERE c.kind = 'server' AND a.role = 'issuing' AND a.active")
[ "$new" = 2 ]
expect "iothubd ca rotate issues both server certificates from the new issuing CA ($new)" $?
finish
