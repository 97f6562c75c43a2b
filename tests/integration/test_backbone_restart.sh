#!/usr/bin/env bash
# The backbone broker restarted mid-stream (docs/architecture.md#several-nodes): a device on
# node 1 publishes QoS 1 telemetry while the Mosquitto between the nodes is stopped and
# started again (persistence on, as a production broker runs). Nothing the device got a
# PUBACK for is lost for the service subscribed on node 2, nothing arrives twice, the order
# holds; both nodes reconnect and node 2 keeps receiving (its subscription is back).
. "$(dirname "$0")/backbone_lib.sh"

bb_start
expect "a private Mosquitto backbone starts" $?
URL=$(new_db bbr)
node_conf n1 "$URL"
node_conf n2 "$URL"
"$IOTHUBD" -c "$T/n1.conf" init --token-file admin.token >init.out 2>&1
ADMIN=$(cat admin.token)
node_start n1 n2
expect "two nodes start and connect to the backbone" $?

BASE="https://127.0.0.1:${NODE_API[n1]}"
"$IOTHUBD" -c "$T/n1.conf" ca chain >trust.pem 2>/dev/null
bearer "$ADMIN" POST /v1/products '{"name": "bbr"}'
PK=$(jf product_key)
bearer "$ADMIN" POST /v1/devices "{\"product_key\": \"$PK\", \"serial_number\": \"BBR-1\"}"
DEV=$(jf device_id) DEVSEC=$(jf device_secret)
bearer "$ADMIN" POST /v1/services '{"name": "reader", "subscribe": ["devices/+/telemetry"]}'
SVC=$(jf service_id) SVCSEC=$(jf service_secret)
N1=(127.0.0.1 "${NODE_MQTT[n1]}")
N2=(127.0.0.1 "${NODE_MQTT[n2]}")

bg "${CLIENTS[@]}" sub "${N2[@]}" "$SVC" "$SVCSEC" 'devices/+/telemetry' 1 svc.out --seconds 90
wait_ready svc.out
crossed=1
for i in $(seq 20); do
    "${CLIENTS[@]}" pub "${N1[@]}" "$DEV" "$DEVSEC" "devices/$DEV/telemetry" 1 1 "probe$i-" probe.acked
    if wait_line svc.out "probe$i-0" 1; then crossed=0; break; fi
done
expect "telemetry from node 1 reaches the service on node 2" $crossed

# 300 QoS 1 messages, one every 10 ms; the backbone goes away after the 60th acknowledgement.
: >acked
bg "${CLIENTS[@]}" pub "${N1[@]}" "$DEV" "$DEVSEC" "devices/$DEV/telemetry" 1 300 "m" acked --pace 10
PUB=$BG
for _ in $(seq 300); do [ "$(wc -l <acked)" -ge 60 ] && break; sleep 0.05; done
bb_stop
down_at=$(wc -l <acked)
sleep 1
held=$(wc -l <acked)
[ "$held" -le $((down_at + 1)) ]
expect "while the backbone is down the device gets no more PUBACKs ($down_at, then $held)" $?
bb_start
expect "the backbone starts again on the same port and persistence file" $?
wait "$PUB"
expect "the device's 300 messages are all acknowledged in the end" $?
wait_line svc.out "^1 0 devices/$DEV/telemetry m299$" 30
expect "the last message reaches node 2" $?

grep -o ' m[0-9]*$' svc.out | tr -d ' m' >got
# comm needs its inputs in collating order (sort, not sort -n).
sort acked | comm -23 - <(sort -u got) | sort -n >lost
lost=$(wc -l <lost)
# The backbone's Mosquitto keeps the node's session across its restart (backbone_lib.sh runs
# it as the test's user so its persistence file is written); forwards wait for the
# reconnection and are re-sent until the backbone acknowledges them.
[ "$lost" = 0 ]
rc=$?
expect "no acknowledged message is lost ($lost missing of $(wc -l <acked)$([ "$lost" = 0 ] || echo ": $(sed 's/^/m/' lost | head -n 5 | tr '\n' ' ')"))" $rc
[ "$(sort -n got | uniq -d | wc -l)" = 0 ]
expect "none is delivered twice" $?
sort -n -c got
expect "they arrive in the order they were published" $?
wait_metric n1 iothub_backbone_connects_total 2 && wait_metric n2 iothub_backbone_connects_total 2
expect "both nodes reconnected (iothub_backbone_connects_total 2)" $?
grep -q "backbone: connection to 127.0.0.1:$BB_PORT lost" n1.log
expect "the lost connection is logged" $?
# New traffic after the restart: node 2's subscription is (still or again) on the broker.
"${CLIENTS[@]}" pub "${N1[@]}" "$DEV" "$DEVSEC" "devices/$DEV/telemetry" 1 1 "after-" after.acked
wait_line svc.out "after-0" 10
expect "a message published after the restart crosses too" $?
[ "$(metric n1 iothub_backbone_held)" = 0 ]
expect "nothing is held any more on node 1" $?

node_stop n2
expect "node 2 stops cleanly" $?
node_stop n1
expect "node 1 stops cleanly" $?
finish
