#!/usr/bin/env bash
# Three nodes through two outages (issue 18), with devices publishing QoS 1 all along:
# PostgreSQL unreachable for 10 s under every node (a TCP proxy cut: every connection closed,
# new ones refused) while a backend's persistent session is offline — what was acknowledged
# reaches the backend once it reconnects, none lost, and the nodes register again; then the
# backbone broker restarted while the backend is online on node 1 and the devices publish on
# node 2 — every acknowledged message reaches it.
# test-lane: alone (many processes; CPU-bound under load)
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/cluster_lib.sh"

DEVICES=${CLUSTER_DEVICES:-50}
# Every device arrives from HAProxy's address (127.0.0.1): the per-address limits go up.
CLUSTER_CONF=("mqtt_max_handshakes = 512" "mqtt_max_handshakes_per_ip = 512"
              "mqtt_max_unauthenticated = 1000" "mqtt_max_queued = 20000")
PROXY_PID=
trap 'cluster_cleanup >/dev/null 2>&1; [ -n "$PROXY_PID" ] && kill "$PROXY_PID" 2>/dev/null' EXIT
take_port PROXY_PORT
python3 -u "$HERE/test_faults.py" proxy "$PROXY_PORT" "$PGSOCK/.s.PGSQL.5432" >proxy.out 2>proxy.err &
PROXY_PID=$!
wait_for 5 grep -q ready proxy.out
NODE_DB_URL="postgresql://postgres@127.0.0.1:$PROXY_PORT/${NAME}_outages_$$?sslmode=disable"
cluster_setup outages 3 && haproxy_start
expect "three nodes (database through a TCP proxy), a mosquitto backbone, HAProxy" $?

bearer "$ADMIN" POST /v1/products '{"name":"Outage sensor"}'
PK=$(jf product_key)
CL="$PY $HERE/cluster_clients.py"
$CL provision "$BASE" trust.pem "$ADMIN" "$PK" "$DEVICES" creds.txt 2>provision.err &&
    bearer "$ADMIN" POST /v1/services '{"name":"backend","publish":[],"subscribe":["devices/+/telemetry"]}' &&
    SVC=$(jf service_id) SVCSEC=$(jf service_secret) && make_csr ec-p256 svc &&
    csr_body svc.csr svc.json && basic "$SVC:$SVCSEC" "/v1/services/$SVC/activate" @svc.json &&
    [ "$STATUS" = 201 ] && jf_file certificate svc.pem
expect "$DEVICES devices and a backend service provisioned" $?

# diagnose: what a failure needs explained: the stored sessions, their queues, and each
# node's session decisions (takeover, fresh or continued, fencing, store outages).
diagnose() {
    sql "$URL" "SELECT 'stored: ' || key || ' owner=' || coalesce(owner, '-') || ' offline_at=' ||
        coalesce(offline_at::text, '-') || ' queued=' || (SELECT count(*) FROM mqtt_queue q
        WHERE q.session_key = s.key) FROM mqtt_sessions s" 2>&1 | sed 's/^/# /'
    local i
    for i in 1 2 3; do
        grep -E 'takeover:|mqtt: session s:|fenc|mqtt store:' "node$i.log" | sed "s/^/# n$i: /"
    done
}

# check ACKED RECEIVED: every acknowledged message received, in order per publisher.
check() {
    $PY - "$1" "$2" >"$2.check" 2>&1 <<'EOF'
import sys
acked = {l.split()[0]: int(l.split()[1]) for l in open(sys.argv[1]) if l.strip()}
seen = {}
for l in open(sys.argv[2]):
    p = l.split()
    if len(p) == 2 and p[0] in acked:
        seen.setdefault(p[0], []).append(int(p[1]))
lost = disorder = 0
for d, n in acked.items():
    got = seen.get(d, [])
    disorder += any(b < a for a, b in zip(got, got[1:]))
    lost += len(set(range(1, n + 1)) - set(got))
print("acked", sum(acked.values()), "received", sum(len(v) for v in seen.values()),
      "lost", lost, "out-of-order publishers", disorder)
sys.exit(1 if lost or disorder or sum(acked.values()) == 0 else 0)
EOF
    local rc=$?
    echo "# $(tail -n 1 "$2.check")" >&2
    [ $rc = 0 ] || grep -E '^(CONNACK|DISCONNECTED|NOT SUBSCRIBED)' "$2" | sed 's/^/# backend: /' >&2
    [ $rc = 0 ] || diagnose >&2
    return $rc
}

# ---- PostgreSQL unreachable for 10 s -----------------------------------------------------------
$CL backend 127.0.0.1 "${NODE_MQTT[1]}" trust.pem svc.pem svc.key backend 0 pg.out
expect "the backend subscribes (persistent, QoS 1) and goes away" $?
$CL publishers 127.0.0.1 "$HAP_TLS" trust.pem creds.txt 24 acked1.txt 1 2>pub1.err &
PUBS=$!
# The cut comes while they publish: once half of them are connected (at least 2 s in).
sleep 2
wait_for 30 connections_at_least $((DEVICES / 2))
kill -USR1 "$PROXY_PID"
echo "# $(date +%T.%N) PostgreSQL cut" >&2
sleep 10
kill -USR2 "$PROXY_PID"
echo "# $(date +%T.%N) PostgreSQL back" >&2
wait "$PUBS"
reg() { for i in 1 2 3; do [ "$(metric_of "$i" iothub_cluster_node_registered)" = 1 ] || return 1; done; }
wait_for 15 reg
expect "PostgreSQL cut for 10 s under the three nodes: all registered again afterwards" $?
$CL backend 127.0.0.1 "$HAP_MQTT" trust.pem svc.pem svc.key backend 60 pg.out devices/+/telemetry acked1.txt
# The backend's first CONNECT after the outage may land on a node whose MQTT lookup
# connection the cut closed: that node used to refuse it (its first query failed), and the
# backend, which then left as soon as paho had reconnected it elsewhere, took only what
# came in that instant (32 of 389 once, 33 of 383, 32 of 555): read as a lost session
# until the rest arrived in the next phase. The node now resets such a connection first
# (test_faults_pg checks it) and the backend retries a refused CONNECT, as consumers do.
check acked1.txt pg.out
expect "the backend gets every message acknowledged before, during and after the outage" $?

# ---- the backbone restarted ----------------------------------------------------------------
if ! curl -sk "https://127.0.0.1:${NODE_API[1]}/metrics" | grep -q '^iothub_backbone'; then
    ok "# SKIP the backbone restarted: the backbone is not wired in this build"
else
    $CL backend 127.0.0.1 "${NODE_MQTT[1]}" trust.pem svc.pem svc.key backend 120 bb.out &
    BE=$!
    wait_for 10 grep -qs CONNACK bb.out
    $CL publishers 127.0.0.1 "${NODE_TLS[2]}" trust.pem creds.txt 16 acked2.txt 1 2>pub2.err &
    PUBS=$!
    sleep 2
    wait_for 30 connections_at_least $((DEVICES / 2 + 1))
    backbone_stop TERM
    sleep 2
    backbone_start
    echo "# $(date +%T.%N) backbone restarted" >&2
    wait "$PUBS"
    # The backend was online all along: once nothing more comes for 1 s it goes; what it did
    # not receive is in its session: it reconnects and leaves once every acknowledged
    # message came (at most 20 s).
    quiet() { local a b; a=$(stat -c %s bb.out); sleep 1; b=$(stat -c %s bb.out); [ "$a" = "$b" ]; }
    for _ in $(seq 15); do quiet && break; done
    kill "$BE" 2>/dev/null
    wait "$BE" 2>/dev/null
    $CL backend 127.0.0.1 "${NODE_MQTT[1]}" trust.pem svc.pem svc.key backend 20 bb.out \
        devices/+/telemetry acked2.txt
    # The backbone keeps the nodes' sessions across its restart (persistence): node 1's
    # filters and what was queued for it survive, nothing waits for a SUBSCRIBE.
    [ "$(metric_of 1 iothub_backbone_sessions_lost_total)" = 0 ] &&
        [ "$(metric_of 1 iothub_backbone_connects_total)" -ge 2 ]
    expect "backbone broker restarted: node 1 reconnected and the backbone had kept its session" $?
    check acked2.txt bb.out
    expect "backbone broker restarted: the backend on node 1 gets every message acknowledged on node 2" $?
    held_none() { [ "$(metric_of 2 iothub_backbone_held)" = 0 ]; }
    wait_for 10 held_none
    expect "node 2 holds no publisher's acknowledgement afterwards" $?
fi

for i in 1 2 3; do node_stop "$i"; done
finish
