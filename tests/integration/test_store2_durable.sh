#!/usr/bin/env bash
# Durability gaps of issue 18 closed (docs/mqtt.md#durability): the QoS 2 outbound state of a
# persistent session (PUBREC received, PUBREL sent) survives kill -9, so the subscriber gets
# PUBREL for that packet id after the restart and never the PUBLISH again (MQTT 3.1.1 4.4);
# a command answered 202 for an offline persistent device survives kill -9 right after the
# 202; a persistent session's expiry counts from its disconnection across restarts (a
# session whose expiry passed while iothubd was down is deleted at start with its queue and
# counted; one with time left keeps only that time).
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/api_lib.sh"
trap 'stop_server >/dev/null 2>&1' EXIT

api_setup store2
expect "iothubd init, then iothubd serve answers /healthz" $?

bearer "$ADMIN" POST /v1/products '{"name":"Store2 sensor"}'
PK=$(jf product_key)
declare -A DEV
new_device() {
    bearer "$ADMIN" POST /v1/devices "{\"product_key\":\"$PK\",\"serial_number\":\"SN-$1\"}"
    [ "$STATUS" = 201 ] || return 1
    DEV[$1]=$(jf device_id)
    activate_as device "${DEV[$1]}" "$(jf device_secret)" "$1"
}
ok_dev=0
for d in d1 d2; do new_device $d || ok_dev=1; done
bearer "$ADMIN" POST /v1/services '{"name":"backend","publish":["devices/+/commands/#"],"subscribe":["devices/+/telemetry"]}'
SVC=$(jf service_id)
[ "$ok_dev" = 0 ] && [ "$STATUS" = 201 ] && activate_as service "$SVC" "$(jf service_secret)" svc
expect "two devices and a backend service activated through the API" $?

metric() { # NAME (with labels, as printed)
    curl -sk "https://127.0.0.1:$API_PORT/metrics" | awk -v m="$1" '$1 == m {print $2}'
}
sql_is() { # VALUE SQL: the query (run again on each call) answers VALUE
    [ "$(sql "$URL" "$2")" = "$1" ]
}
kill9() {
    kill -9 "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null
    SERVER_PID=
}
raw() { # python code using mqtt_raw, with CA, PORT, SVC, D1, D2 set
    "$PY" - "$HERE" trust.pem "$MQTT_PORT" "$SVC" "${DEV[d1]}" "${DEV[d2]}" <<PY
import sys, time
sys.path.insert(0, sys.argv[1])
from mqtt_raw import *
CA, PORT, SVC, D1, D2 = sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
def conn(name):
    return Conn("127.0.0.1", PORT, tls_context(CA, name + ".pem", name + ".key"))
$1
PY
}

# ---- QoS 2 outbound state across kill -9 ---------------------------------------------------
raw '
s = conn("svc")
s.connect("q2", clean=False)
assert s.subscribe(1, [("devices/+/telemetry", 2)]) == [2]
d = conn("d1")
d.connect("d1")
d.send(publish_pkt("devices/%s/telemetry" % D1, "once", 2, pid=3))
assert d.expect(PUBREC, 5).pid == 3
d.send(ack_pkt(PUBREL, 3))
assert d.expect(PUBCOMP, 5).pid == 3
d.disconnect()
p = s.expect(PUBLISH, 5)
assert p.qos == 2 and p.payload == b"once", p
s.send(ack_pkt(PUBREC, p.pid))
assert s.expect(PUBREL, 5).pid == p.pid
open("q2.pid", "w").write(str(p.pid))
print("pubrel", p.pid)
# no PUBCOMP: the connection stays open until iothubd is killed
open("q2.ready", "w").write("1")
time.sleep(30)
' >q2a.out 2>&1 &
Q2A=$!
wait_for 15 test -s q2.ready && # PUBREL goes out once the state is stored: no waiting here
    sql_is "2 $(cat q2.pid)" "SELECT state || ' ' || packet_id FROM mqtt_queue
                                   WHERE session_key = 's:$SVC/q2'"
rc=$?
expect "the subscriber's PUBREC came, PUBREL $(cat q2.pid 2>/dev/null) came once state 2 and the packet id were stored" $rc
kill9
kill "$Q2A" 2>/dev/null
wait "$Q2A" 2>/dev/null
start_server iothub.conf serve.q2.log
expect "iothubd killed with -9 (no PUBCOMP came) and started again" $?
raw '
s = conn("svc")
present, rc = s.connect("q2", clean=False)
assert present == 1 and rc == 0, (present, rc)
p = s.read(5)
assert p is not None and p.type == PUBREL, p
print("first packet PUBREL", p.pid)
s.send(ack_pkt(PUBCOMP, p.pid))
extra = s.read(2)
assert extra is None, extra
s.disconnect()
s = conn("svc")
present, rc = s.connect("q2", clean=False)
assert present == 1 and s.read(1.5) is None
s.disconnect()
print("exactly once")
conn("svc").connect("q2")  # a clean start ends the session (not left to expire below)
' >q2b.out 2>&1
grep -q "first packet PUBREL $(cat q2.pid)" q2b.out
rc=$?
expect "after the restart the subscriber gets PUBREL $(cat q2.pid) first, not the PUBLISH again ($(tr '\n' ' ' <q2b.out))" $rc
grep -q "exactly once" q2b.out &&
    wait_for 5 sql_is 0 "SELECT count(*) FROM mqtt_queue WHERE session_key = 's:$SVC/q2'"
expect "PUBCOMP ends the delivery (its row deleted); nothing is sent again: exactly once" $?

# ---- a command's 202 survives kill -9 ------------------------------------------------------
raw '
c = conn("d2")
c.connect("d2", clean=False)
assert c.subscribe(1, [("devices/%s/commands/#" % D2, 1)]) == [1]
c.disconnect()
'
bearer "$ADMIN" POST "/v1/devices/${DEV[d2]}/commands" '{"name":"reboot","payload":"k9"}'
C202=$STATUS
kill9
[ "$C202" = 202 ]
expect "a command for the offline device d2 (persistent session) answered 202, iothubd killed with -9 at once" $?
start_server iothub.conf serve.cmd.log
raw '
c = conn("d2")
present, rc = c.connect("d2", clean=False)
p = c.publishes(1, 5)
assert present == 1 and len(p) == 1 and p[0].payload == b"k9", (present, p)
c.send(ack_pkt(PUBACK, p[0].pid))
c.disconnect()
print("command ok")
conn("d2").connect("d2")  # a clean start ends the session
' >cmd.out 2>&1
grep -q "command ok" cmd.out
rc=$?
expect "after the restart the device receives the command ($(tr '\n' ' ' <cmd.out))" $rc

# ---- session expiry across restarts --------------------------------------------------------
stop_server
write_conf iothub.conf "$URL" "mqtt_session_expiry = 120"
start_server iothub.conf serve.exp.log
expect "iothubd restarted with mqtt_session_expiry = 120" $?
raw '
for cid in ("old", "mid", "young"):
    s = conn("svc")
    s.connect(cid, clean=False)
    assert s.subscribe(1, [("devices/+/telemetry", 1)]) == [1]
    if cid == "young":
        open("young.online", "w").write("1")
        time.sleep(3)
    s.disconnect()
d = conn("d1")
d.connect("d1")
d.send(publish_pkt("devices/%s/telemetry" % D1, "queued", 1, pid=4))
assert d.expect(PUBACK, 5).pid == 4
d.disconnect()
' >exp1.out 2>&1 &
EXP=$!
wait_for 10 test -s young.online
wait_for 2 sql_is t "SELECT offline_at IS NULL FROM mqtt_sessions WHERE key = 's:$SVC/young'"
ONLINE=$?
wait "$EXP"
rc=$?
[ "$rc" = 0 ] && [ "$ONLINE" = 0 ] &&
    wait_for 5 sql_is 3 "SELECT count(*) FROM mqtt_sessions WHERE key LIKE 's:$SVC/%'
                                   AND key <> 's:$SVC/q2' AND offline_at IS NOT NULL" &&
    [ "$(sql "$URL" "SELECT count(*) FROM mqtt_queue WHERE session_key IN
                     ('s:$SVC/old', 's:$SVC/mid', 's:$SVC/young')")" = 3 ]
expect "three persistent sessions: offline_at empty while connected, stored at disconnection; a message queued for each" $?
stop_server
# The node was down for a while: old disconnected 300 s ago (expired), mid 110 s ago (10 s left).
sql "$URL" "UPDATE mqtt_sessions SET offline_at = now() - interval '300 seconds' WHERE key = 's:$SVC/old';
            UPDATE mqtt_sessions SET offline_at = now() - interval '110 seconds' WHERE key = 's:$SVC/mid'" >/dev/null
start_server iothub.conf serve.exp2.log
expect "iothubd started again" $?
grep -q "session s:$SVC/old expired while stored" serve.exp2.log &&
    [ "$(metric 'iothub_mqtt_store_restored{kind="expired"}')" -ge 1 ] &&
    [ "$(metric iothub_mqtt_sessions_expired_total)" -ge 1 ]
expect "the session whose expiry passed while iothubd was down is dropped at start (logged, counted)" $?
wait_for 5 sql_is 0 "SELECT (SELECT count(*) FROM mqtt_sessions WHERE key = 's:$SVC/old')
                               + (SELECT count(*) FROM mqtt_queue WHERE session_key = 's:$SVC/old')
                               + (SELECT count(*) FROM mqtt_subscriptions WHERE session_key = 's:$SVC/old')"
expect "its row, queue and subscriptions are deleted from PostgreSQL" $?
wait_for 30 grep -q "session s:$SVC/mid expired" serve.exp2.log
expect "the session with 10 s left expires within 30 s of the start (or at it), not 120 s after it" $?
raw '
for cid, want in (("old", 0), ("young", 1)):
    s = conn("svc")
    present, rc = s.connect(cid, clean=False)
    got = s.publishes(1, 3) if want else []
    assert present == want and len(got) == want, (cid, present, got)
    s.disconnect()
print("present ok")
' >exp3.out 2>&1
grep -q "present ok" exp3.out
rc=$?
expect "old reconnects to no session (present 0); young keeps its session and its message ($(tr '\n' ' ' <exp3.out))" $rc

stop_server
expect "iothubd stops cleanly (SIGTERM)" $?
finish
