#!/usr/bin/env bash
# MQTT end to end with the mosquitto clients, as a device maker would try it (SPEC §4
# commands, §6): devices and a service provisioned and activated through the REST API with
# `openssl req` CSRs, then telemetry from devices to a service subscriber (QoS 0 and 1),
# commands from the REST API to a subscribed device, presence (connected, last_seen),
# retained messages, wills, the device ACL and refusal of revoked or missing certificates.
# The raw protocol details are in test_mqtt_protocol.py.
. "$(dirname "$0")/api_lib.sh"

api_setup mqtt
expect "iothubd init, then iothubd serve answers /healthz" $?

# ---- provisioning through the REST API -----------------------------------------------------
bearer "$ADMIN" POST /v1/products '{"name":"MQTT sensor"}'
PK=$(jf product_key)
bearer "$ADMIN" POST /v1/tokens '{"name":"mqtt-operator","role":"operator"}'
OPERATOR=$(jf token)
bearer "$ADMIN" POST /v1/tokens '{"name":"mqtt-provisioner","role":"provisioner"}'
PROVISIONER=$(jf token)

declare -A DEV
# new_device NAME: provisions a device, activates it with an `openssl req` CSR; NAME.pem,
# NAME.key, DEV[NAME] = its id.
new_device() {
    local id secret
    bearer "$ADMIN" POST /v1/devices "{\"product_key\":\"$PK\",\"serial_number\":\"SN-$1\"}"
    [ "$STATUS" = 201 ] || return 1
    id=$(jf device_id) secret=$(jf device_secret)
    activate_as device "$id" "$secret" "$1" || return 1
    DEV[$1]=$id
}
ok_devices=0
for d in sensor actuator forger revokee; do new_device $d || ok_devices=1; done
[ $ok_devices = 0 ]
expect "four devices provisioned and activated through the API" $?

bearer "$ADMIN" POST /v1/services '{"name":"telemetry-reader","publish":["devices/+/commands/#"],"subscribe":["devices/+/telemetry","devices/+/status"]}'
SVC=$(jf service_id) SVCSEC=$(jf service_secret)
[ "$STATUS" = 201 ] && make_csr ec-p256 svc && csr_body svc.csr svc.json &&
    basic "$SVC:$SVCSEC" "/v1/services/$SVC/activate" @svc.json && [ "$STATUS" = 201 ] &&
    jf_file certificate svc.pem
expect "a service (subscribe devices/+/telemetry, devices/+/status) created and activated" $?

# expect_api NAME RESULT: expect, naming the last API answer when it fails.
expect_api() { if [ "$2" = 0 ]; then ok "$1"; else not_ok "$1 (got $STATUS: $BODY)"; fi; }

# ---- mosquitto helpers ----------------------------------------------------------------------
SUB_FORMAT='%q %r %t %p'
# msgs OUT: the received messages of a subscriber's output.
msgs() { grep -E '^[0-2] [01] ' "$1"; }

S=${DEV[sensor]} A=${DEV[actuator]} F=${DEV[forger]} R=${DEV[revokee]}

# ---- telemetry: device -> service ---------------------------------------------------------
sub svc tele.out -t 'devices/+/telemetry' -q 1 -C 2 -W 10
expect "the service subscribes to devices/+/telemetry at QoS 1 (mosquitto_sub, SUBACK)" $?
pub sensor -t "devices/$S/telemetry" -q 0 -m 't=21.5'
rc0=$?
pub sensor -t "devices/$S/telemetry" -q 1 -m 't=22.0'
rc1=$?
end_sub
[ $rc0 = 0 ] && [ $rc1 = 0 ]
expect "mosquitto_pub with the device certificate publishes telemetry at QoS 0 and 1" $?
[ "$(msgs tele.out | sed -n 1p)" = "0 0 devices/$S/telemetry t=21.5" ]
expect "QoS 0 telemetry of the device reaches the service at QoS 0" $?
[ "$(msgs tele.out | sed -n 2p)" = "1 0 devices/$S/telemetry t=22.0" ]
expect "QoS 1 telemetry of the device reaches the service at QoS 1" $?

# The device ACL: another device's telemetry topic is dropped (the PUBLISH is still acked).
sub svc forged.out -t 'devices/+/telemetry' -q 1 -C 1 -W 10
pub forger -t "devices/$S/telemetry" -q 1 -m 'forged'
rc=$?
pub forger -t "devices/$F/telemetry" -q 1 -m 'genuine'
end_sub
[ $rc = 0 ] && [ "$(msgs forged.out)" = "1 0 devices/$F/telemetry genuine" ]
expect "a device publishing under another device's topic is dropped; its own topic is not" $?
grep -q "may not publish to \"devices/$S/telemetry\"" serve.log
expect "the dropped PUBLISH is logged" $?

# ---- retained telemetry ---------------------------------------------------------------------
pub sensor -t "devices/$S/telemetry" -q 1 -r -m 'last=23.1'
sub svc retained.out -t "devices/+/telemetry" -q 1 -C 1 -W 5
end_sub
[ "$(msgs retained.out)" = "1 1 devices/$S/telemetry last=23.1" ]
expect "a retained message reaches a later subscriber with the retain flag" $?
pub sensor -t "devices/$S/telemetry" -q 1 -r -n
sub svc cleared.out -t "devices/+/telemetry" -q 1 -C 1 -W 2
end_sub
[ -z "$(msgs cleared.out)" ]
expect "an empty retained message clears it: a later subscriber gets nothing" $?

# ---- commands: REST API -> device -----------------------------------------------------------
sub actuator cmd.out -t "devices/$A/commands/#" -q 1 -C 2 -W 15
expect "the device subscribes to devices/<id>/commands/# at QoS 1" $?
bearer "$OPERATOR" GET "/v1/devices/$A"
[ "$STATUS" = 200 ] && [ "$(jf connected)" = true ]
expect_api "GET /v1/devices/{id} while connected: \"connected\": true" $?
bearer "$OPERATOR" POST "/v1/devices/$A/commands" '{"name":"reboot","payload":"now"}'
[ "$STATUS" = 202 ] && [ "$(jf delivered)" = true ]
expect_api "operator: POST /v1/devices/{id}/commands {reboot, now} -> 202 {delivered: true}" $?
bearer "$ADMIN" POST "/v1/devices/$A/commands" '{"name":"set-interval","payload":"30"}'
[ "$STATUS" = 202 ] && [ "$(jf delivered)" = true ]
expect_api "admin: POST /v1/devices/{id}/commands -> 202 {delivered: true}" $?
bearer "$PROVISIONER" POST "/v1/devices/$A/commands" '{"name":"reboot","payload":"no"}'
[ "$STATUS" = 403 ]
expect_api "provisioner: POST /v1/devices/{id}/commands -> 403" $?
end_sub
[ "$(msgs cmd.out | sed -n 1p)" = "1 0 devices/$A/commands/reboot now" ]
expect "the device receives the command on devices/<id>/commands/reboot at QoS 1" $?
[ "$(msgs cmd.out | sed -n 2p)" = "1 0 devices/$A/commands/set-interval 30" ] &&
    [ "$(msgs cmd.out | wc -l)" = 2 ]
expect "the second command follows; the provisioner's was not published" $?

# After the subscriber left: offline, last_seen written (within ~1-2 s).
seen=
for _ in $(seq 40); do
    bearer "$OPERATOR" GET "/v1/devices/$A"
    seen=$(jf last_seen)
    [ "$(jf connected)" = false ] && [ "$seen" != null ] && [ -n "$seen" ] && break
    sleep 0.1
done
[ "$(jf connected)" = false ] && [[ $seen =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$ ]]
expect "after the device disconnected: \"connected\": false and last_seen set ($seen)" $?
bearer "$OPERATOR" POST "/v1/devices/$A/commands" '{"name":"reboot","payload":"now"}'
[ "$STATUS" = 202 ] && [ "$(jf delivered)" = false ]
expect_api "a command to the offline device -> 202 {delivered: false}" $?

# ---- will -----------------------------------------------------------------------------------
sub svc will.out -t 'devices/+/status' -q 1 -C 2 -W 10
WATCH_PID=$SUB_PID
# A clean DISCONNECT (mosquitto_pub ends with one) discards the will; then a plain message.
pub sensor -t "devices/$S/telemetry" -m x --will-topic "devices/$S/status" \
    --will-payload crashed --will-qos 1
pub sensor -t "devices/$S/status" -q 1 -m online
# No `timeout` wrapper: SIGKILL must reach mosquitto_sub itself (stdbuf execs it).
stdbuf -oL mosquitto_sub "${MQ[@]}" --cert sensor.pem --key sensor.key -t "devices/$S/commands/#" \
    --will-topic "devices/$S/status" --will-payload offline --will-qos 1 -d >willer.out 2>&1 &
WILLER=$!
for _ in $(seq 100); do grep -q 'received SUBACK' willer.out && break; sleep 0.05; done
{ kill -KILL $WILLER; wait $WILLER; } 2>/dev/null
SUB_PID=$WATCH_PID
end_sub
[ "$(msgs will.out | sed -n 1p)" = "1 0 devices/$S/status online" ]
expect "a device that disconnects cleanly: its will is not published" $?
[ "$(msgs will.out | sed -n 2p)" = "1 0 devices/$S/status offline" ]
expect "a device killed without DISCONNECT: its will reaches the service" $?

# ---- certificates ---------------------------------------------------------------------------
timeout 10 mosquitto_pub "${MQ[@]}" -t "devices/$S/telemetry" -m x >nocert.out 2>&1
[ $? != 0 ] && hs_failures_reach no_certificate 1 && server_alive
expect "mosquitto_pub without a client certificate is refused (counted as no_certificate; iothubd still up)" $?
sub revokee live.out -t "devices/$R/commands/#" -q 1 -W 15
bearer "$OPERATOR" POST "/v1/devices/$R/revoke" '{"reason":"keyCompromise"}'
[ "$STATUS" = 200 ]
expect_api "operator revokes a connected device -> 200" $?
for _ in $(seq 30); do grep -q 'connection was lost' live.out && break; sleep 0.1; done
grep -q 'connection was lost' live.out
expect "the revoked device's mosquitto_sub loses its connection (within 3 s)" $?
kill_sub
pub revokee -t "devices/$R/telemetry" -m x
[ $? != 0 ] && hs_failures_reach revoked 1 && server_alive
expect "mosquitto_pub with the revoked certificate is refused (counted as revoked; iothubd still up)" $?
tls_probe revoked.out "$MQTT_PORT" trust.pem -cert revokee.pem -key revokee.key
grep -q 'alert certificate revoked' revoked.out &&
    grep -Eq 'client (certificate )?refused: .*revoked' serve.log && server_alive
expect "the revoked certificate's handshake ends with the alert certificate revoked, logged; iothubd still up" $?

stop_server
expect "iothubd stops cleanly" $?
finish
