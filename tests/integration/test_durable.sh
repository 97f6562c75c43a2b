#!/usr/bin/env bash
# Nothing acknowledged is lost across restarts (issue 18, docs/mqtt.md#durability): a
# backend's persistent session (clean session 0) is offline while three devices publish at
# QoS 1; iothubd is restarted gracefully, then killed with SIGKILL mid-stream; each time the
# backend reconnects and receives every message a publisher got a PUBACK for, in order per
# publisher. Also restored: a command queued for an offline device, retained messages, and
# a persistent session's QoS 2 inbound state (a PUBLISH resent after the restart is not
# delivered twice). Clean sessions and QoS 0 never touch the database.
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/api_lib.sh"
DC=("$PY" "$HERE/durable_client.py")
SUB_PID=
trap 'stop_server >/dev/null 2>&1; [ -n "$SUB_PID" ] && kill "$SUB_PID" 2>/dev/null' EXIT

api_setup durable
expect "iothubd init, then iothubd serve answers /healthz" $?

bearer "$ADMIN" POST /v1/products '{"name":"Durable sensor"}'
PK=$(jf product_key)
declare -A DEV
new_device() {
    bearer "$ADMIN" POST /v1/devices "{\"product_key\":\"$PK\",\"serial_number\":\"SN-$1\"}"
    [ "$STATUS" = 201 ] || return 1
    DEV[$1]=$(jf device_id)
    activate_as device "${DEV[$1]}" "$(jf device_secret)" "$1"
}
ok_dev=0
for d in d1 d2 d3; do new_device $d || ok_dev=1; done
bearer "$ADMIN" POST /v1/services '{"name":"backend","publish":["devices/+/commands/#"],"subscribe":["devices/+/telemetry","devices/+/status"]}'
SVC=$(jf service_id)
[ "$ok_dev" = 0 ] && [ "$STATUS" = 201 ] && activate_as service "$SVC" "$(jf service_secret)" svc
expect "three devices and a backend service activated through the API" $?
PUBS=("d1:${DEV[d1]}" "d2:${DEV[d2]}" "d3:${DEV[d3]}")

metric() {
    curl -sk "https://127.0.0.1:$API_PORT/metrics" | awk -v m="$1" '$1 == m {print $2}'
}
restart() {
    stop_server && start_server iothub.conf "serve.$1.log"
}

# ---- clean sessions and QoS 0: no database --------------------------------------------------
timeout 20 mosquitto_sub -h 127.0.0.1 -p "$MQTT_PORT" --cafile trust.pem --cert svc.pem \
    --key svc.key -i clean-sub -t 'devices/+/telemetry' -q 1 -C 2 -W 15 >clean.out 2>&1 &
SUB_PID=$!
sleep 1
for q in 0 1; do
    mosquitto_pub -h 127.0.0.1 -p "$MQTT_PORT" --cafile trust.pem --cert d1.pem --key d1.key \
        -t "devices/${DEV[d1]}/telemetry" -q $q -m "clean-$q"
done
wait "$SUB_PID"
rc=$?
SUB_PID=
sleep 1.5
[ "$rc" = 0 ] && [ "$(wc -l <clean.out)" = 2 ] &&
    [ "$(sql "$URL" "SELECT (SELECT count(*) FROM mqtt_messages) + (SELECT count(*) FROM mqtt_queue)
                      + (SELECT count(*) FROM mqtt_sessions)")" = 0 ] &&
    [ "$(metric iothub_mqtt_store_writes_total)" = 0 ]
expect "a clean session's QoS 0 and QoS 1 traffic writes nothing to PostgreSQL" $?

# ---- graceful restart ------------------------------------------------------------------------
"${DC[@]}" backend trust.pem svc 127.0.0.1 "$MQTT_PORT" backend 'devices/+/telemetry' >backend.out 2>&1 &&
    [ "$(sql "$URL" "SELECT count(*) FROM mqtt_subscriptions
                     WHERE session_key = 's:$SVC/backend' AND filter = 'devices/+/telemetry'")" = 1 ]
expect "the backend's persistent session and its subscription are stored" $?

"${DC[@]}" publish trust.pem 127.0.0.1 "$MQTT_PORT" acked1.json 100 "${PUBS[@]}" >pub1.out 2>&1
[ "$(python3 -c 'import json,sys; print(sum(map(len, json.load(open(sys.argv[1])).values())))' acked1.json)" = 300 ]
expect "three devices publish 100 QoS 1 messages each to the offline backend: 300 PUBACKs" $?
[ "$(sql "$URL" "SELECT count(*) FROM mqtt_queue WHERE session_key = 's:$SVC/backend'")" = 300 ]
expect "the 300 deliveries are queued in PostgreSQL once acknowledged" $?

# a command for an offline device with a persistent session; a retained status
"$PY" - "$HERE" trust.pem d2 "$MQTT_PORT" "${DEV[d2]}" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
from mqtt_raw import Conn, tls_context
c = Conn("127.0.0.1", int(sys.argv[4]), tls_context(sys.argv[2], sys.argv[3] + ".pem", sys.argv[3] + ".key"))
c.connect("d2", clean=False)
assert c.subscribe(1, [("devices/%s/commands/#" % sys.argv[5], 1)]) == [1]
c.publish("devices/%s/status" % sys.argv[5], "online-42", qos=1, retain=True, pid=9)
c.disconnect()
PY
bearer "$ADMIN" POST "/v1/devices/${DEV[d2]}/commands" '{"name":"reboot","payload":"now"}'
[ "$STATUS" = 202 ] && [ "$(jf delivered)" = false ]
expect "a command for the offline device d2 (persistent session) is accepted, not delivered" $?

restart graceful
expect "iothubd stopped (SIGTERM) and started again" $?
grep -q "restored 2 persistent session(s), 2 subscription(s), 301 queued deliveries, 0 QoS 2 packet id(s), 1 retained" serve.graceful.log
expect "the restart restored 2 sessions, 2 subscriptions, 301 deliveries and 1 retained message (log)" $?
"${DC[@]}" receive trust.pem svc 127.0.0.1 "$MQTT_PORT" backend acked1.json got1.json >recv1.out 2>&1
rc=$? # before the message: its $(...) would set $?
expect "after the restart the backend receives all 300 acknowledged messages, in order per device ($(cat recv1.out | tail -n 3 | tr '\n' ' '))" $rc

"$PY" - "$HERE" trust.pem "$MQTT_PORT" "${DEV[d2]}" <<'PY' >after.out 2>&1
import sys
sys.path.insert(0, sys.argv[1])
from mqtt_raw import Conn, tls_context, PUBACK, ack_pkt
ca, port, dev = sys.argv[2], int(sys.argv[3]), sys.argv[4]
c = Conn("127.0.0.1", port, tls_context(ca, "d2.pem", "d2.key"))
present, rc = c.connect("d2", clean=False)
p = c.publishes(1, 5)
assert present == 1 and len(p) == 1, (present, p)
assert p[0].topic == "devices/%s/commands/reboot" % dev and p[0].payload == b"now", p[0]
c.send(ack_pkt(PUBACK, p[0].pid))
c.disconnect()
print("command ok")
s = Conn("127.0.0.1", port, tls_context(ca, "svc.pem", "svc.key"))
s.connect("status-reader")
s.subscribe(1, [("devices/+/status", 1)])
r = s.publishes(1, 5)
assert len(r) == 1 and r[0].retain and r[0].payload == b"online-42", r
s.disconnect()
print("retained ok")
PY
grep -q "command ok" after.out
expect "the device reconnects after the restart and receives the command queued while it was offline" $?
grep -q "retained ok" after.out
expect "a retained message published before the restart is sent to a new subscriber after it" $?

# ---- kill -9 mid-stream ------------------------------------------------------------------------
"${DC[@]}" backend trust.pem svc 127.0.0.1 "$MQTT_PORT" backend 'devices/+/telemetry' >>backend.out 2>&1
"${DC[@]}" publish trust.pem 127.0.0.1 "$MQTT_PORT" acked2.json 300 "${PUBS[@]}" --kill "$SERVER_PID" --after 250 >pub2.out 2>&1
wait "$SERVER_PID" 2>/dev/null
SERVER_PID=
N2=$(python3 -c 'import json,sys; print(sum(map(len, json.load(open(sys.argv[1])).values())))' acked2.json)
[ "$N2" -ge 250 ] && [ "$N2" -lt 900 ]
expect "iothubd killed with SIGKILL while the devices publish ($N2 PUBACKs received before)" $?
start_server iothub.conf serve.kill.log
expect "iothubd starts again after SIGKILL" $?
"${DC[@]}" receive trust.pem svc 127.0.0.1 "$MQTT_PORT" backend acked2.json got2.json >recv2.out 2>&1
rc=$? # before the message: its $(...) would set $?
expect "after kill -9 the backend receives every acknowledged message, in order per device ($(tail -n 3 recv2.out | tr '\n' ' '))" $rc

# ---- QoS 2 inbound state ------------------------------------------------------------------------
"${DC[@]}" backend trust.pem svc 127.0.0.1 "$MQTT_PORT" backend 'devices/+/telemetry' >>backend.out 2>&1
"$PY" - "$HERE" trust.pem "$MQTT_PORT" "${DEV[d3]}" <<'PY' >qos2a.out 2>&1
import sys
sys.path.insert(0, sys.argv[1])
from mqtt_raw import Conn, tls_context, PUBREC, publish_pkt
c = Conn("127.0.0.1", int(sys.argv[3]), tls_context(sys.argv[2], "d3.pem", "d3.key"))
c.connect("d3", clean=False)
c.send(publish_pkt("devices/%s/telemetry" % sys.argv[4], "5000", 2, pid=7))
assert c.expect(PUBREC, 5).pid == 7
c.close()  # no PUBREL: the exchange is left half done
print("pubrec")
PY
sleep 1
[ "$(sql "$URL" "SELECT count(*) FROM mqtt_incoming WHERE session_key = 'd:${DEV[d3]}' AND packet_id = 7")" = 1 ]
expect "a QoS 2 PUBLISH of a persistent session, PUBREC sent: its packet id is stored" $?
kill -9 "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null
SERVER_PID=
start_server iothub.conf serve.qos2.log
"$PY" - "$HERE" trust.pem "$MQTT_PORT" "${DEV[d3]}" <<'PY' >qos2b.out 2>&1
import sys
sys.path.insert(0, sys.argv[1])
from mqtt_raw import Conn, tls_context, PUBREC, PUBREL, PUBCOMP, ack_pkt, publish_pkt
c = Conn("127.0.0.1", int(sys.argv[3]), tls_context(sys.argv[2], "d3.pem", "d3.key"))
present, rc = c.connect("d3", clean=False)
assert present == 1, "no session"
c.send(publish_pkt("devices/%s/telemetry" % sys.argv[4], "5000", 2, pid=7, dup=True))
assert c.expect(PUBREC, 5).pid == 7
c.send(ack_pkt(PUBREL, 7))
assert c.expect(PUBCOMP, 5).pid == 7
c.disconnect()
print("completed")
PY
echo '{"'"${DEV[d3]}"'": [5000]}' >acked3.json
"${DC[@]}" receive trust.pem svc 127.0.0.1 "$MQTT_PORT" backend acked3.json got3.json >recv3.out 2>&1 &&
    grep -q completed qos2b.out && grep -q '"received": 1' got3.json
rc=$? # before the message: its $(...) would set $?
expect "after kill -9 the resent QoS 2 PUBLISH completes and the backend gets it exactly once ($(tr '\n' ' ' <got3.json))" $rc

stop_server
expect "iothubd stops cleanly (SIGTERM)" $?
finish
