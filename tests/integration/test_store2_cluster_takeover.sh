#!/usr/bin/env bash
# The flush barrier of a takeover (issue 18, server/takeover.h): a node asked to release a
# persistent session answers only once its store has committed every record queued before
# the release, so the node taking it over loads the session as it was. Two nodes, one
# PostgreSQL, no backbone. The store's commit is made slow on purpose (a test transaction
# holds a table lock for a second) right when the client reconnects to the other node:
#  - a subscription added on node 1 just before reconnecting to node 2 is there on node 2;
#  - deliveries acknowledged on node 1 just before are not sent again by node 2;
#  - messages queued for the offline backend on node 1 all reach it on node 2, once, in order.
. "$(dirname "$0")/cluster_lib.sh"

BB_PORT=
cluster_setup store2 2
expect "iothubd init, two nodes serve /healthz" $?

bearer "$ADMIN" POST /v1/products '{"name":"Barrier sensor"}'
PK=$(jf product_key)
bearer "$ADMIN" POST /v1/devices "{\"product_key\":\"$PK\",\"serial_number\":\"SN-1\"}"
D=$(jf device_id) DSEC=$(jf device_secret)
activate_as device "$D" "$DSEC" dev &&
    bearer "$ADMIN" POST /v1/services '{"name":"backend","publish":[],"subscribe":["devices/+/telemetry","devices/+/status"]}' &&
    SVC=$(jf service_id) SVCSEC=$(jf service_secret) && make_csr ec-p256 svc &&
    csr_body svc.csr svc.json && basic "$SVC:$SVCSEC" "/v1/services/$SVC/activate" @svc.json &&
    [ "$STATUS" = 201 ] && jf_file certificate svc.pem
expect "a device and a backend service provisioned and activated" $?

KEY="s:$SVC/be"
sql_is() { [ "$(sql "$URL" "$2")" = "$1" ]; }
raw() { # python code using mqtt_raw; conn(name, node) opens a connection to node 1 or 2
    "$PY" - "$(dirname "$0")" trust.pem "${NODE_MQTT[1]}" "${NODE_MQTT[2]}" "$D" "$URL" <<PY
import subprocess, sys, time
sys.path.insert(0, sys.argv[1])
from mqtt_raw import *
CA, PORTS, D, URL = sys.argv[2], {1: int(sys.argv[3]), 2: int(sys.argv[4])}, sys.argv[5], sys.argv[6]
def held(table):
    """Whether a test transaction holds its EXCLUSIVE lock on table now."""
    q = ("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname"
         " = '%s' AND l.mode = 'ExclusiveLock' AND l.granted" % table)
    return subprocess.run(["psql", URL, "-X", "-A", "-t", "-c", q], capture_output=True,
                          text=True).stdout.strip() == "1"
def lock(table):
    """A transaction holding an EXCLUSIVE lock on table for 1.5 s (reads go on, the stores'
    writes to it wait), once it is granted."""
    p = subprocess.Popen(["psql", URL, "-X", "-q", "-c", "BEGIN; LOCK TABLE %s IN EXCLUSIVE MODE;"
                          " SELECT pg_sleep(1.5); COMMIT;" % table],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not held(table):
        assert p.poll() is None, "the lock was not taken"
        time.sleep(0.02)
    return p
def conn(name, node):
    return Conn("127.0.0.1", PORTS[node], tls_context(CA, name + ".pem", name + ".key"))
def backend(node):
    """The backend's persistent session on node; a refused takeover (CONNACK 3) is retried."""
    for _ in range(5):
        c = conn("svc", node)
        present, rc = c.connect("be", clean=False)
        if rc == 0:
            return c, present
        c.close()
        time.sleep(0.5)
    raise AssertionError("CONNACK %d" % rc)
def take(c, n, timeout):
    """Up to n PUBLISHes (payloads), each acknowledged."""
    got = c.publishes(n, timeout)
    for p in got:
        c.send(ack_pkt(PUBACK, p.pid))
    return [p.payload.decode() for p in got]
def device_publish(node, payloads, topic="telemetry"):
    d = conn("dev", node)
    d.connect("dev")
    for i, m in enumerate(payloads):
        d.send(publish_pkt("devices/%s/%s" % (D, topic), m, 1, pid=i + 1))
        assert d.expect(PUBACK, 5).pid == i + 1
    d.disconnect()
$1
PY
}

# ---- queued on node 1 while offline, continued on node 2 at once ----------------------------
raw '
c, present = backend(1)
assert c.subscribe(1, [("devices/+/telemetry", 1)]) == [1]
c.disconnect()
device_publish(1, ["m%d" % i for i in range(1, 6)])
c, present = backend(2)  # at once, no pause
got = take(c, 5, 5)
assert present == 1 and got == ["m1", "m2", "m3", "m4", "m5"], (present, got)
more = take(c, 1, 1)
assert more == [], more
time.sleep(0.2)
c.disconnect()
print("queue complete")
' >q.out 2>&1
grep -q "queue complete" q.out
rc=$?
expect "m1..m5 acknowledged for the offline backend on node 1 reach it on node 2 at once, in order, once ($(tail -n 1 q.out))" $rc

# ---- a subscription recorded on node 1 while its store is slow ------------------------------
raw '
c, present = backend(2)
c.disconnect()
c, present = backend(1)  # the session comes back to node 1
c.disconnect()
' >back.out 2>&1 && wait_for 5 sql_is n1 "SELECT owner FROM mqtt_sessions WHERE key = '$KEY'"
expect "the backend's session is back on node 1 (owner n1)" $?
raw '
c, present = backend(1)
LOCKED = "mqtt_subscriptions"
lock(LOCKED)
assert c.subscribe(2, [("devices/+/status", 1)]) == [1]
c.disconnect()
t0 = time.monotonic()
c, present = backend(2)  # at once: node 1 has not committed the subscription yet
print("takeover %.0f ms" % ((time.monotonic() - t0) * 1000), flush=True)
assert not held(LOCKED), "node 2 took the session before node 1 committed"
device_publish(2, ["s1"], "status")
got = take(c, 1, 5)
assert present == 1 and got == ["s1"], (present, got)
time.sleep(0.2)
c.disconnect()
print("subscription kept")
' >sub.out 2>&1
grep -q "subscription kept" sub.out &&
    sql_is 1 "SELECT count(*) FROM mqtt_subscriptions WHERE session_key = '$KEY' AND filter = 'devices/+/status'"
rc=$?
expect "a subscription made on node 1 while its store is slow is there on node 2, which waited for it ($(tail -n 1 sub.out))" $rc

# ---- deliveries acknowledged on node 1 while its store is slow ------------------------------
raw '
c, present = backend(1)
device_publish(1, ["a1", "a2", "a3"])
got = c.publishes(3, 5)
assert [p.payload.decode() for p in got] == ["a1", "a2", "a3"], got
LOCKED = "mqtt_queue"
lock(LOCKED)
for p in got:
    c.send(ack_pkt(PUBACK, p.pid))
time.sleep(0.2)
c.disconnect()
c, present = backend(2)  # at once: node 1 has not committed the PUBACKs yet
assert not held(LOCKED), "node 2 took the session before node 1 committed"
again = take(c, 1, 2)
assert present == 1 and again == [], again
c.disconnect()
print("no redelivery")
' >ack.out 2>&1
grep -q "no redelivery" ack.out &&
    wait_for 5 sql_is 0 "SELECT count(*) FROM mqtt_queue WHERE session_key = '$KEY'"
rc=$?
expect "deliveries acknowledged on node 1 just before reconnecting to node 2 are not sent again ($(tail -n 1 ack.out))" $rc

REL=$(metric_of 1 iothub_takeover_released_total) TMO=$(metric_of 2 iothub_takeover_timeouts_total)
[ "$REL" -ge 3 ] && [ "$TMO" = 0 ]
expect "node 1 released the session each time ($REL), node 2 never timed out waiting ($TMO)" $?

node_stop 1 && node_stop 2
expect "both nodes stop" $?
finish
