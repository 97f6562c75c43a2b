#!/usr/bin/env bash
# Floods and slow clients (GitHub issue 7, part 4): while a device keeps publishing QoS 1 to
# itself over mutual TLS, iothubd takes 2,000 connections that never finish their TLS
# handshake, a slowloris on the HTTPS API and bursts of garbage; the device's latency, the
# daemon's memory and descriptors, and the closing of every attacking connection are checked
# by test_floods.py. Short limits below keep each attack to a few seconds.
# test-lane: alone (it measures the device's latency and the daemon's memory under 2,000 sockets; deploy/dev.sh runs nothing beside it)
. "$(dirname "$0")/api_lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)

# 2,000 attacking sockets on each side, plus the rest.
ulimit -n "$(ulimit -Hn)" 2>/dev/null
[ "$(ulimit -n)" -ge 5000 ]
rc=$?
expect "open file limit raised to $(ulimit -n) (at least 5000)" $rc

PLAIN_PORT=$(free_port)
URL=$(new_db floods) &&
    write_conf iothub.conf "$URL" \
        "mqtt_plain_listen = 127.0.0.1:$PLAIN_PORT" \
        "mqtt_handshake_timeout_ms = 2000" \
        "mqtt_max_handshakes = 256" \
        "mqtt_max_handshakes_per_ip = 16" \
        "mqtt_max_unauthenticated = 512" \
        "mqtt_connect_timeout_s = 2" \
        "api_max_connections = 200" \
        "api_max_connections_per_ip = 20" \
        "api_idle_timeout_s = 6" \
        "api_header_timeout_s = 3" &&
    "$IOTHUBD" -c iothub.conf init --token-file admin.token >init.out 2>init.err &&
    ADMIN=$(cat admin.token) &&
    "$IOTHUBD" -c iothub.conf ca chain >trust.pem 2>/dev/null &&
    start_server iothub.conf serve.log
expect "iothubd serves with short flood limits (handshake 2 s, CONNECT 2 s, headers 3 s)" $?

bearer "$ADMIN" POST /v1/products '{"name":"flood sensor"}'
PK=$(jf product_key)
declare -A DEV
ok_devices=0
for d in dev1 dev2; do
    bearer "$ADMIN" POST /v1/devices "{\"product_key\":\"$PK\",\"serial_number\":\"SN-$d\"}"
    id=$(jf device_id) secret=$(jf device_secret)
    activate_as device "$id" "$secret" "$d" || ok_devices=1
    DEV[$d]=$id
done
expect "two devices provisioned and activated through the API (own certificates)" $ok_devices

cat >env.json <<EOF
{"pid": $SERVER_PID, "mqtt_port": $MQTT_PORT, "plain_port": $PLAIN_PORT,
 "api_port": $API_PORT, "ca": "$T/trust.pem",
 "device": {"id": "${DEV[dev1]}", "cert": "$T/dev1.pem", "key": "$T/dev1.key"},
 "device2": {"id": "${DEV[dev2]}", "cert": "$T/dev2.pem", "key": "$T/dev2.key"},
 "mqtt_handshake_timeout_ms": 2000, "mqtt_max_handshakes_per_ip": 16,
 "mqtt_connect_timeout_s": 2, "mqtt_max_unauthenticated": 512,
 "api_header_timeout_s": 3, "api_idle_timeout_s": 6,
 "api_max_connections_per_ip": 20}
EOF
timeout 240 python3 -u "$HERE/test_floods.py" env.json | tee floods.out
rc=${PIPESTATUS[0]}
if [ "$rc" != 0 ]; then
    FAILED=$((FAILED + 1))
    grep -q '^not ok ' floods.out || not_ok "test_floods.py exited with status $rc"
fi

grep -q 'connection(s) refused over the limits' serve.log
expect "the refusals were logged (rate-limited warning)" $?
grep -q 'whose request was not complete' serve.log
expect "the slowloris closes were logged" $?

stop_server
expect "iothubd stops cleanly after the attacks" $?
finish
