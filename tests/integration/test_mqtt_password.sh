#!/usr/bin/env bash
# MQTT with device id + device secret as username/password: on TLS without client
# certificates (mqtt_tls_listen) and on plain TCP (mqtt_plain_listen), with mosquitto clients.
# test-lane: alone (it times how fast a reset closes a live session (within 1 s); deploy/dev.sh runs nothing beside it)
. "$(dirname "$0")/api_lib.sh"

TLS_PORT=$(free_port)
PLAIN_PORT=$(free_port)
URL=$(new_db pw)
write_conf iothub.conf "$URL" "mqtt_tls_listen = 127.0.0.1:$TLS_PORT" \
    "mqtt_plain_listen = 127.0.0.1:$PLAIN_PORT"
"$IOTHUBD" -c iothub.conf init --token-file admin.token >init.out 2>&1
ADMIN=$(cat admin.token)
"$IOTHUBD" -c iothub.conf ca chain >trust.pem 2>/dev/null
start_server iothub.conf serve.log
expect "serve starts with the password listeners" $?
# /healthz answers as soon as the API is up; the MQTT listeners start right after it, so
# their announcement may follow by a moment (seen under ASan): wait up to 5 s for it.
announced=1
for _ in $(seq 50); do
    if grep -q "MQTT (TLS, device id + secret) listening on 127.0.0.1:$TLS_PORT" serve.log &&
        grep -q "plain TCP (no encryption, labs only) listening on 127.0.0.1:$PLAIN_PORT" serve.log; then
        announced=0
        break
    fi
    sleep 0.1
done
expect "both listeners are announced, the plain one with a warning" $announced

bearer "$ADMIN" POST /v1/products '{"name": "pw"}'
PK=$(jf product_key)
bearer "$ADMIN" POST /v1/devices "{\"product_key\": \"$PK\", \"serial_number\": \"PW-1\"}"
ID=$(jf device_id)
SECRET=$(jf device_secret)
TLS=(-h 127.0.0.1 -p "$TLS_PORT" --cafile trust.pem)
PLAIN=(-h 127.0.0.1 -p "$PLAIN_PORT")

# wait_connected: polls GET /v1/devices/$ID for up to 5 s; returns 0 once it says connected.
wait_connected() {
    for _ in $(seq 50); do
        bearer "$ADMIN" GET "/v1/devices/$ID"
        [ "$(jf connected)" = true ] && return 0
        sleep 0.1
    done
    return 1
}

# A command reaches a device on the TLS password listener.
timeout 10 mosquitto_sub "${TLS[@]}" -u "$ID" -P "$SECRET" -q 1 -C 1 \
    -t "devices/$ID/commands/#" >cmd.out 2>cmd.err &
sub=$!
wait_connected
expect "a device connected with id + secret shows connected" $?
bearer "$ADMIN" POST "/v1/devices/$ID/commands" '{"name": "blink", "payload": "3"}'
[ "$STATUS" = 202 ] && [ "$(jf delivered)" = true ]
expect "a command to it answers 202 delivered" $?
wait $sub
rc=$?
[ $rc = 0 ] && [ "$(cat cmd.out)" = 3 ]
expect "the device receives the command payload" $?

# Plain TCP: the right secret publishes, a wrong one gets CONNACK 4.
timeout 10 mosquitto_pub "${PLAIN[@]}" -u "$ID" -P "$SECRET" -q 1 -t "devices/$ID/telemetry" -m 1 \
    >plain.out 2>&1
expect "plain TCP with the device secret publishes at QoS 1" $?
timeout 10 mosquitto_pub "${PLAIN[@]}" -u "$ID" -P "not-the-secret" -t "devices/$ID/telemetry" -m 1 \
    >wrong.out 2>&1
rc=$?
[ $rc != 0 ] && grep -q "bad user name or password" wrong.out
expect "a wrong secret is refused with CONNACK 4" $?
timeout 10 mosquitto_pub "${PLAIN[@]}" -u "00000000-0000-0000-0000-000000000000" -P x -t a -m 1 \
    >unknown.out 2>&1
rc=$?
[ $rc != 0 ] && grep -q "bad user name or password" unknown.out
expect "an unknown device id is refused with CONNACK 4" $?
timeout 10 mosquitto_pub "${PLAIN[@]}" -t "devices/$ID/telemetry" -m 1 >anon.out 2>&1
rc=$?
[ $rc != 0 ] && grep -q "bad user name or password" anon.out
expect "no credentials at all is refused with CONNACK 4" $?
timeout 10 mosquitto_pub "${TLS[@]}" -u "$ID" -P "$SECRET" -t "devices/other/telemetry" -m 1 -q 1 \
    >acl.out 2>&1
grep -q "may not publish to \"devices/other/telemetry\"" serve.log
expect "the device ACL applies to password sessions too" $?

# Revocation and reset close password sessions at once and refuse new CONNECTs.
timeout 10 mosquitto_sub "${PLAIN[@]}" -u "$ID" -P "$SECRET" -t "devices/$ID/#" >live.out 2>&1 &
sub=$!
sleep 1
start=$(date +%s%N)
bearer "$ADMIN" POST "/v1/devices/$ID/reset"
NEW_SECRET=$(jf device_secret)
for _ in $(seq 40); do grep -q "revoked or reset" serve.log && break; sleep 0.05; done
ms=$((($(date +%s%N) - start) / 1000000))
grep -q "closing device $ID: device revoked or reset" serve.log && [ "$ms" -lt 1000 ]
expect "a reset closes the live password session within 1 s (${ms} ms)" $?
kill $sub 2>/dev/null
wait $sub 2>/dev/null
timeout 10 mosquitto_pub "${PLAIN[@]}" -u "$ID" -P "$SECRET" -t "devices/$ID/t" -m 1 >old.out 2>&1
rc=$?
[ $rc != 0 ] && grep -q "bad user name or password" old.out
expect "the secret from before the reset is refused" $?
timeout 10 mosquitto_pub "${PLAIN[@]}" -u "$ID" -P "$NEW_SECRET" -t "devices/$ID/t" -m 1 >new.out 2>&1
expect "the new secret connects" $?
# A revocation closes a live password session too: the server logs why, and the client
# loses its connection (its reconnect is refused) long before its own timeout.
timeout 20 mosquitto_sub "${PLAIN[@]}" -u "$ID" -P "$NEW_SECRET" -t "devices/$ID/#" \
    >live2.out 2>&1 &
sub=$!
wait_connected
expect "a device connected with its new secret shows connected" $?
closed=$(grep -c "closing device $ID: device revoked or reset" serve.log)
start=$(date +%s%N)
bearer "$ADMIN" POST "/v1/devices/$ID/revoke" '{"reason": "keyCompromise"}'
[ "$STATUS" = 200 ]
expect "the device is revoked (REST)" $?
for _ in $(seq 40); do
    [ "$(grep -c "closing device $ID: device revoked or reset" serve.log)" -gt "$closed" ] && break
    sleep 0.05
done
ms=$((($(date +%s%N) - start) / 1000000))
[ "$(grep -c "closing device $ID: device revoked or reset" serve.log)" = $((closed + 1)) ] &&
    [ "$ms" -lt 1000 ]
expect "a revocation closes the live password session within 1 s, logged as revoked (${ms} ms)" $?
for _ in $(seq 100); do kill -0 $sub 2>/dev/null || break; sleep 0.05; done
! kill -0 $sub 2>/dev/null
expect "the password client loses its session (it ends before its timeout)" $?
kill $sub 2>/dev/null
wait $sub 2>/dev/null
rc=$?
[ $rc != 124 ] && grep -qi "bad user name or password\|not authori[sz]ed\|connection lost\|refused" live2.out
ok_rc=$?
expect "the client reports the lost session and its refused reconnect (exit $rc: $(tr '\n' ' ' <live2.out | head -c 120))" $ok_rc
timeout 10 mosquitto_pub "${PLAIN[@]}" -u "$ID" -P "$NEW_SECRET" -t "devices/$ID/t" -m 1 >rev.out 2>&1
rc=$?
[ $rc != 0 ] && grep -q "bad user name or password" rev.out
expect "a revoked device is refused" $?

stop_server
expect "serve stops cleanly" $?
finish
