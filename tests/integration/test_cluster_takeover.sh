#!/usr/bin/env bash
# Session takeover across nodes (issue 18), two nodes on one PostgreSQL, no backbone needed:
# a backend's persistent session (clean session 0) offline on node 1 continues on node 2 with
# the messages queued meanwhile (node 1 asked over NOTIFY, releases it, node 2 loads it from
# PostgreSQL); the same client connecting back to node 1 while online on node 2 closes the
# node 2 connection; node 1 killed with -9 while it holds the session offline: messages
# published on node 2 meanwhile are queued for it by node 2 (the directory of sessions held
# elsewhere) and the backend gets them all on node 2 (the dead owner's session taken at once).
. "$(dirname "$0")/cluster_lib.sh"

BB_PORT=
cluster_setup takeover 2
expect "iothubd init, two nodes serve /healthz" $?

bearer "$ADMIN" POST /v1/products '{"name":"Takeover sensor"}'
PK=$(jf product_key)
bearer "$ADMIN" POST /v1/devices "{\"product_key\":\"$PK\",\"serial_number\":\"SN-1\"}"
D=$(jf device_id) DSEC=$(jf device_secret)
activate_as device "$D" "$DSEC" dev &&
    bearer "$ADMIN" POST /v1/services '{"name":"backend","publish":[],"subscribe":["devices/+/telemetry"]}' &&
    SVC=$(jf service_id) SVCSEC=$(jf service_secret) && make_csr ec-p256 svc &&
    csr_body svc.csr svc.json && basic "$SVC:$SVCSEC" "/v1/services/$SVC/activate" @svc.json &&
    [ "$STATUS" = 201 ] && jf_file certificate svc.pem
expect "a device and a backend service provisioned and activated" $?

CL="$PY $(dirname "$0")/cluster_clients.py"
backend() { # NODE SECONDS OUT: the backend's persistent session (client id be1) on NODE
    $CL backend 127.0.0.1 "${NODE_MQTT[$1]}" trust.pem svc.pem svc.key be1 "$2" "$3"
}
publish() { # NODE FIRST LAST: QoS 1 telemetry "m<N>" from the device through NODE
    local n
    for n in $(seq "$2" "$3"); do
        timeout 10 mosquitto_pub --cafile trust.pem -h 127.0.0.1 -p "${NODE_MQTT[$1]}" \
            --cert dev.pem --key dev.key -q 1 -t "devices/$D/telemetry" -m "m$n" || return 1
    done
}
got() { grep -c "^m[0-9]" "$1"; }
in_order() { # OUT FIRST LAST: m FIRST..LAST each once, in order
    [ "$(grep '^m[0-9]' "$1" | tr '\n' ' ')" = "$(seq -f 'm%g' "$2" "$3" | tr '\n' ' ')" ]
}

# ---- offline on node 1, continued on node 2 ------------------------------------------------
backend 1 0 b1.out
[ "$(sql "$URL" "SELECT owner FROM mqtt_sessions WHERE key = 's:$SVC/be1'")" = n1 ]
expect "the backend's persistent session is stored with owner n1" $?
publish 1 1 5
expect "the device publishes m1..m5 (QoS 1) on node 1 while the backend is away" $?
backend 2 3 b2.out
grep -q 'CONNACK 0 present=1' b2.out && in_order b2.out 1 5
expect "the backend reconnects to node 2: session present, m1..m5 in order" $?
[ "$(metric_of 2 iothub_takeover_requests_total)" -ge 1 ] &&
    [ "$(metric_of 1 iothub_takeover_released_total)" -ge 1 ] &&
    grep -q "takeover: node n2 takes session s:$SVC/be1" node1.log
expect "node 2 asked node 1 (NOTIFY), node 1 released it (counted, logged)" $?
[ "$(sql "$URL" "SELECT owner FROM mqtt_sessions WHERE key = 's:$SVC/be1'")" = n2 ]
expect "the session's owner is now n2" $?

# ---- online on node 2, taken back by node 1 ------------------------------------------------
backend 2 20 b3.out &
B3=$!
wait_for 5 grep -qs CONNACK b3.out
backend 1 2 b4.out
wait "$B3"
grep -q 'DISCONNECTED' b3.out && grep -q 'CONNACK 0 present=1' b4.out
expect "connecting to node 1 while online on node 2 closes the node 2 connection; session present" $?
publish 1 6 6 && backend 1 2 b5.out && in_order b5.out 6 6
expect "the session lives on node 1 again (m6 delivered there)" $?

# ---- node 1 killed while it holds the session offline --------------------------------------
[ "$(sql "$URL" "SELECT owner FROM mqtt_sessions WHERE key = 's:$SVC/be1'")" = n1 ] &&
    wait_for 5 test "$(metric_of 2 iothub_directory_subscriptions)" -ge 1
expect "node 2's directory lists the backend's subscription held on node 1" $?
publish 1 7 8
node_stop 1 KILL
publish 2 9 12
expect "node 1 killed with -9; the device publishes m9..m12 on node 2" $?
backend 2 3 b6.out
grep -q 'CONNACK 0 present=1' b6.out && in_order b6.out 7 12
expect "the backend on node 2 gets m7..m12 in order (node 1's queue and node 2's directory rows)" $?
[ "$(metric_of 2 iothub_takeover_dead_owner_total)" -ge 1 ] &&
    [ "$(metric_of 2 iothub_directory_deliveries_total)" -ge 4 ]
expect "counted: a dead owner's session taken, directory deliveries written by node 2" $?

node_stop 2
expect "node 2 stops" $?
finish
