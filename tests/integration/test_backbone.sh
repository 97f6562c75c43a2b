#!/usr/bin/env bash
# Several nodes (docs/architecture.md#several-nodes): two iothubd nodes on one database and
# a private Mosquitto as the message backbone. A device on node 1 publishes QoS 0 and 1
# telemetry: a service subscribed on node 2 gets each message once, in order; a backend
# connected to the backbone itself sees the same topics and reaches a device through it;
# retained messages cross nodes; a client may not publish node-to-node control topics; the
# metrics count it all. The broker restarted mid-stream: test_backbone_restart.sh.
. "$(dirname "$0")/backbone_lib.sh"

bb_start
expect "a private Mosquitto backbone starts" $?

URL=$(new_db bb)
node_conf n1 "$URL"
node_conf n2 "$URL"
"$IOTHUBD" -c "$T/n1.conf" init --token-file admin.token >init.out 2>&1
ADMIN=$(cat admin.token)
"$IOTHUBD" -c "$T/n1.conf" ca chain >trust.pem 2>/dev/null
node_start n1 && node_start n2
expect "two nodes start on one database and connect to the backbone" $?
grep -q "backbone: node n1, broker mqtt://127.0.0.1:$BB_PORT" n1.log
expect "node 1 logs its name and backbone" $?

# Provisioning through node 1's API.
BASE="https://127.0.0.1:${NODE_API[n1]}"
bearer "$ADMIN" POST /v1/products '{"name": "bb"}'
PK=$(jf product_key)
bearer "$ADMIN" POST /v1/devices "{\"product_key\": \"$PK\", \"serial_number\": \"BB-1\"}"
DEV=$(jf device_id) DEVSEC=$(jf device_secret)
bearer "$ADMIN" POST /v1/services '{"name": "reader", "publish": ["devices/+/commands/#", "iothub-nodes/#"], "subscribe": ["devices/+/telemetry", "devices/+/status"]}'
SVC=$(jf service_id) SVCSEC=$(jf service_secret)
[ -n "$DEV" ] && [ -n "$SVC" ]
expect "a device and a service provisioned on node 1" $?

N1=(127.0.0.1 "${NODE_MQTT[n1]}")
N2=(127.0.0.1 "${NODE_MQTT[n2]}")

# ---- telemetry: device on node 1 -> service on node 2 -------------------------------------
bg "${CLIENTS[@]}" sub "${N2[@]}" "$SVC" "$SVCSEC" 'devices/+/telemetry' 1 svc.out --seconds 40
SUB=$BG
wait_ready svc.out
expect "the service subscribes on node 2" $?
wait_metric n2 iothub_backbone_filters 1
expect "node 2 subscribes to devices/+/telemetry on the backbone (iothub_backbone_filters)" $?
# The SUBSCRIBE reaches the backbone a moment later: probe until one message crosses.
crossed=1
for i in $(seq 20); do
    "${CLIENTS[@]}" pub "${N1[@]}" "$DEV" "$DEVSEC" "devices/$DEV/telemetry" 1 1 "probe$i-" probe.acked
    if wait_line svc.out "probe$i-0" 1; then crossed=0; break; fi
done
expect "a QoS 1 message published on node 1 reaches the service on node 2" $crossed
: >acked1
"${CLIENTS[@]}" pub "${N1[@]}" "$DEV" "$DEVSEC" "devices/$DEV/telemetry" 1 200 "q1-" acked1
expect "200 QoS 1 messages from the device on node 1 are all acknowledged" $?
"${CLIENTS[@]}" pub "${N1[@]}" "$DEV" "$DEVSEC" "devices/$DEV/telemetry" 0 200 "q0-" acked0
"${CLIENTS[@]}" pub "${N1[@]}" "$DEV" "$DEVSEC" "devices/$DEV/telemetry" 1 1 "end-" acked_end
wait_line svc.out "end-0" 10
expect "the last message arrives" $?
grep -o ' q1-[0-9]*$' svc.out | tr -d ' ' >got1
seq 0 199 | sed 's/^/q1-/' >want1
cmp -s got1 want1
expect "the service on node 2 got the 200 QoS 1 messages exactly once, in order, at QoS 1" $?
[ "$(grep -c "^1 0 devices/$DEV/telemetry q1-" svc.out)" = 200 ]
expect "... each delivered at QoS 1 on the device's topic" $?
grep -o ' q0-[0-9]*$' svc.out | tr -d ' ' >got0
n0=$(wc -l <got0)
sort -t- -k2 -n -c got0 && [ "$(sort -u got0 | wc -l)" = "$n0" ] && [ "$n0" -ge 190 ]
expect "QoS 0: in order, no duplicates, (almost) all on loopback ($n0/200)" $?
[ "$(grep -c "^0 0 devices/$DEV/telemetry q0-" svc.out)" = "$(wc -l <got0)" ]
expect "... delivered at QoS 0" $?

# ---- metrics --------------------------------------------------------------------------------
wait_metric n1 'iothub_backbone_forwarded_total{qos="1"}' 201 && wait_metric n2 'iothub_backbone_received_total{qos="1"}' 201
expect "node 1 counts its forwards and node 2 what it received (iothub_backbone_*_total)" $?
[ "$(metric n1 iothub_backbone_connected)" = 1 ] && [ "$(metric n1 iothub_backbone_held)" = 0 ]
expect "iothub_backbone_connected 1, nothing held once acknowledged" $?
curl -sk "https://127.0.0.1:${NODE_API[n2]}/metrics" >metrics.txt && "$PY" "$(dirname "$0")/prom_check.py" metrics.txt >/dev/null
expect "the /metrics page with the backbone's families still parses" $?

# ---- a backend on the backbone itself -------------------------------------------------------
bg "${CLIENTS[@]}" sub 127.0.0.1 "$BB_PORT" - - 'devices/+/telemetry' 1 backend.out --v5 --seconds 20 --count 3
wait_ready backend.out
for i in 0 1 2; do "${CLIENTS[@]}" pub "${N1[@]}" "$DEV" "$DEVSEC" "devices/$DEV/telemetry" 1 1 "be$i-" be.acked; done
wait_line backend.out "be2-0" 10 && grep -q "^1 0 devices/$DEV/telemetry be0-0" backend.out
expect "a backend subscribed on the backbone sees the device's telemetry on the same topic" $?
bg "${CLIENTS[@]}" sub "${N1[@]}" "$DEV" "$DEVSEC" "devices/$DEV/commands/#" 1 dev.out --seconds 20 --count 1
wait_ready dev.out && wait_metric n1 iothub_backbone_filters 1
sleep 0.5
mosquitto_pub -h 127.0.0.1 -p "$BB_PORT" -V 5 -q 1 -t "devices/$DEV/commands/reboot" -m now
wait_line dev.out "commands/reboot now" 10
expect "a command a backend publishes on the backbone reaches the device on node 1" $?

# ---- retained -------------------------------------------------------------------------------
"${CLIENTS[@]}" pub "${N1[@]}" "$DEV" "$DEVSEC" "devices/$DEV/status" 1 1 "online-" ret.acked --retain
"${CLIENTS[@]}" sub "${N2[@]}" "$SVC" "$SVCSEC" 'devices/+/status' 1 status.out --seconds 10 --count 1
# Node 2 did not subscribe to devices/+/status before: the backbone sends it the retained
# message with the SUBACK, and node 2 routes it to the new subscriber as it arrives.
grep -qE "^1 [01] devices/$DEV/status online-0" status.out
expect "a retained status published on node 1 reaches a later subscriber on node 2" $?
"${CLIENTS[@]}" sub "${N2[@]}" "$SVC" "$SVCSEC" 'devices/+/status' 1 status2.out --seconds 10 --count 1
grep -q "^1 1 devices/$DEV/status online-0" status2.out
expect "... and the next subscriber on node 2 gets it from node 2's retained store, retained" $?

# ---- control topics are the nodes' own ----------------------------------------------------
timeout 10 mosquitto_sub -h 127.0.0.1 -p "$BB_PORT" -V 5 -t 'iothub-nodes/#' -v -W 3 >ctl.out 2>&1 &
CTL=$!
BG_PIDS+=("$CTL")
sleep 0.3
"${CLIENTS[@]}" pub "${N1[@]}" "$SVC" "$SVCSEC" "iothub-nodes/forged" 1 1 "x" ctl.acked
wait "$CTL"
! grep -q forged ctl.out
expect "a client's publish under iothub-nodes/ is not forwarded to the backbone" $?

kill "$SUB" 2>/dev/null
node_stop n2
expect "node 2 stops cleanly (exit 0)" $?
node_stop n1
expect "node 1 stops cleanly (exit 0)" $?
finish
