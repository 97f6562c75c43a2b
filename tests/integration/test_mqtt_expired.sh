#!/usr/bin/env bash
# An expired device certificate, signed by our own issuing CA, is refused at the MQTT
# handshake while a valid device keeps publishing.
. "$(dirname "$0")/api_lib.sh"

api_setup expired
expect "server starts" $?
bearer "$ADMIN" POST /v1/products '{"name": "expiry"}'
PK=$(jf product_key)
M=(-h 127.0.0.1 -p "$MQTT_PORT" --cafile trust.pem)

# The expired one: issued through the CA code with a validity of 0 days.
bearer "$ADMIN" POST /v1/devices "{\"product_key\": \"$PK\", \"serial_number\": \"OLD-1\"}"
OLD=$(jf device_id)
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout old.key \
    -subj /CN=x -out old.csr 2>/dev/null
"$CA_TOOL" iothub.conf issue "$OLD" "$PK" old.csr 0 >old.pem 2>issue.err
expect "a certificate valid until now is issued" $?
sleep 2
end=$(date -d "$(openssl x509 -in old.pem -noout -enddate | cut -d= -f2)" +%s)
[ "$end" -lt "$(date +%s)" ]
expect "it has expired" $?

# A valid one, activated through the API.
bearer "$ADMIN" POST /v1/devices "{\"product_key\": \"$PK\", \"serial_number\": \"NEW-1\"}"
NEW=$(jf device_id)
NEW_SECRET=$(jf device_secret)
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout new.key \
    -subj /CN=x -out new.csr 2>/dev/null
csr_body new.csr new.json
basic "$NEW:$NEW_SECRET" "/v1/devices/$NEW/activate" @new.json
jf certificate >new.pem

timeout 10 mosquitto_pub "${M[@]}" --cert old.pem --key old.key -t "devices/$OLD/telemetry" \
    -m 1 >old.out 2>&1
rc=$?
[ $rc != 0 ] && hs_failures_reach expired 1 && server_alive
expect "the expired certificate is refused (counted as expired; iothubd still up)" $?
grep -qi "expired" serve.log
expect "the log says the certificate expired" $?
tls_probe old-probe.out "$MQTT_PORT" trust.pem -cert old.pem -key old.key
grep -q 'alert certificate expired' old-probe.out && server_alive
expect "its handshake ends with the TLS alert certificate expired; iothubd still up" $?
timeout 10 mosquitto_pub "${M[@]}" --cert new.pem --key new.key -q 1 -t "devices/$NEW/telemetry" \
    -m 1 >new.out 2>&1
expect "a valid device still publishes" $?

stop_server
finish
