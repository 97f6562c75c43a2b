#!/usr/bin/env bash
# PostgreSQL unreachable for 10 s while devices publish QoS 1 to an offline persistent
# session (issue 18, docs/mqtt.md#durability): iothubd reaches PostgreSQL through a loopback
# TCP proxy (test_faults.py proxy) that is cut, so only this test's iothubd loses it. The
# publishers' PUBACKs are held meanwhile (flow control slows them), the outage is logged
# once and shown in /metrics, messages to topics no persistent session wants are still
# acknowledged at once; once the proxy is back every held PUBACK arrives, and after a
# SIGKILL and a restart the backend receives every acknowledged message, in order.
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/api_lib.sh"
DC=("$PY" "$HERE/durable_client.py")
PROXY_PID= PUB_PID=
cleanup() {
    stop_server >/dev/null 2>&1
    [ -n "$PUB_PID" ] && kill "$PUB_PID" 2>/dev/null
    [ -n "$PROXY_PID" ] && kill "$PROXY_PID" 2>/dev/null
}
trap cleanup EXIT

URL=$(new_db durable_pg) || exit 1
DBNAME="${NAME}_durable_pg_$$"
PROXY_PORT=$(free_port)
python3 -u "$HERE/test_faults.py" proxy "$PROXY_PORT" "$PGSOCK/.s.PGSQL.5432" >proxy.out 2>proxy.err &
PROXY_PID=$!
for _ in $(seq 50); do grep -q ready proxy.out && break; sleep 0.1; done
PROXY_URL="postgresql://postgres@127.0.0.1:$PROXY_PORT/$DBNAME?sslmode=disable&connect_timeout=2"
write_conf init.conf "$URL"
"$IOTHUBD" -c init.conf init --token-file admin.token >init.out 2>init.err &&
    "$IOTHUBD" -c init.conf ca chain >trust.pem 2>/dev/null
ADMIN=$(cat admin.token)
write_conf iothub.conf "$PROXY_URL"
start_server iothub.conf serve.log
expect "iothubd serve, its database through a TCP proxy" $?

bearer "$ADMIN" POST /v1/products '{"name":"Outage"}'
PK=$(jf product_key)
declare -A DEV
ok_dev=0
for d in d1 d2 d3 d4; do
    bearer "$ADMIN" POST /v1/devices "{\"product_key\":\"$PK\",\"serial_number\":\"SN-$d\"}"
    DEV[$d]=$(jf device_id)
    activate_as device "${DEV[$d]}" "$(jf device_secret)" "$d" || ok_dev=1
done
bearer "$ADMIN" POST /v1/services '{"name":"backend","subscribe":["devices/+/telemetry"]}'
SVC=$(jf service_id)
[ "$ok_dev" = 0 ] && activate_as service "$SVC" "$(jf service_secret)" svc
expect "four devices and a backend service activated" $?
metric() {
    curl -sk "https://127.0.0.1:$API_PORT/metrics" | awk -v m="$1" '$1 == m {print $2}'
}

"${DC[@]}" backend trust.pem svc 127.0.0.1 "$MQTT_PORT" backend 'devices/+/telemetry' >backend.out 2>&1
expect "the backend's persistent session subscribes, then goes offline" $?

# ---- 10 s without PostgreSQL -------------------------------------------------------------------
kill -USR1 "$PROXY_PID"
T_CUT=$(date +%s.%N)
"${DC[@]}" publish trust.pem 127.0.0.1 "$MQTT_PORT" acked.json 100 \
    "d1:${DEV[d1]}" "d2:${DEV[d2]}" "d3:${DEV[d3]}" --pause paused.txt >pub.out 2>&1 &
PUB_PID=$!
for _ in $(seq 100); do [ -f paused.txt ] && break; sleep 0.1; done
[ -f paused.txt ]
expect "PostgreSQL cut: the publishers' PUBACKs are held (none for 2 s)" $?
for _ in $(seq 50); do [ "$(metric iothub_mqtt_store_up)" = 0 ] && break; sleep 0.2; done
[ "$(metric iothub_mqtt_store_up)" = 0 ] && [ "$(metric iothub_mqtt_store_pending_bytes)" -gt 0 ] &&
    [ "$(metric iothub_mqtt_store_outages_total)" = 1 ]
expect "/metrics: iothub_mqtt_store_up 0, records pending, one outage counted" $?
timeout 5 mosquitto_pub -h 127.0.0.1 -p "$MQTT_PORT" --cafile trust.pem --cert d4.pem --key d4.key \
    -t "devices/${DEV[d4]}/status" -q 1 -m "no persistent subscriber"
expect "meanwhile a QoS 1 message no persistent session subscribed to is acknowledged at once" $?
sleep "$("$PY" -c "import time; print(max(0.0, $T_CUT + 10 - time.time()))")"
kill -USR2 "$PROXY_PID"
wait "$PUB_PID"
PUB_PID=
N=$("$PY" -c 'import json,sys; print(sum(map(len, json.load(open(sys.argv[1])).values())))' acked.json)
[ "$N" = 300 ]
expect "PostgreSQL back after 10 s: every held PUBACK arrives (300 of 300)" $?
[ "$(grep -c 'PostgreSQL unreachable' serve.log)" = 1 ] && grep -q 'PostgreSQL reachable again' serve.log
expect "the outage is logged once, and its end" $?

kill -9 "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null
SERVER_PID=
start_server iothub.conf serve2.log
expect "iothubd killed (SIGKILL) and started again" $?
"${DC[@]}" receive trust.pem svc 127.0.0.1 "$MQTT_PORT" backend acked.json got.json >recv.out 2>&1
rc=$? # before the message: its $(...) would set $?
expect "the backend receives all 300 acknowledged messages, in order per device ($(tail -n 3 recv.out | tr '\n' ' '))" $rc
stop_server
expect "iothubd stops cleanly" $?
finish
