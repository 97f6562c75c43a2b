#!/usr/bin/env bash
# Smoke test of the load tool (tests/bench/): provision.sh provisions and activates devices
# and a service through the REST API, then iothub-bench runs each mode for about two seconds
# with tiny numbers against a real iothubd (readmit: across a restart of iothubd) and its
# --json summary must be sane. No timing
# thresholds: this checks that the tool works and reports honestly, not how fast anything is.
. "$(dirname "$0")/api_lib.sh"

BENCH=$BUILD/tests/bench/iothub-bench
PROVISION=$ROOT/tests/bench/provision.sh
DEVICES=20

api_setup bench
expect "iothubd init, then iothubd serve answers /healthz" $?

PROVISION_JOBS=3 bash "$PROVISION" "$BASE" admin.token trust.pem $DEVICES certs >provision.log 2>&1
rc=$?
[ $rc = 0 ] && [ "$(wc -l <certs/devices.csv)" = $((DEVICES + 1)) ] &&
    [ -s certs/service.pem ] && [ -s certs/service.key ] &&
    [ "$(count "certificates WHERE revoked_at IS NULL")" -ge $((DEVICES + 1)) ] 2>/dev/null
expect "provision.sh: $DEVICES devices and a service activated through the API, devices.csv written" $?
[ "$(stat -c %a certs/dev-1.key)" = 600 ] && ! grep -rq "$ADMIN" certs provision.log
expect "provision.sh: private keys are 0600 and the token is left nowhere" $?

B=("$BENCH" --host 127.0.0.1 --port "$MQTT_PORT" --ca trust.pem --certs certs/devices.csv --json)

# jcheck NAME OUT EXPR: EXPR (Python, over d = the JSON line of OUT) must hold.
jcheck() {
    local name=$1 out=$2 expr=$3
    if "$PY" -c '
import json, sys
d = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
sys.exit(0 if eval("(" + sys.argv[2] + ")") else 1)' "$out" "$expr" 2>>"$T/check.log"; then
        ok "$name"
    else
        not_ok "$name (got: $(tail -n 1 "$out" | head -c 600))"
    fi
}

# ---- handshake and resume -----------------------------------------------------------------
"${B[@]}" --mode handshake -c 2 -d 2 >hs.out 2>hs.err
rc=$?
[ $rc = 0 ]
expect "iothub-bench --mode handshake -c 2 -d 2 exits 0" $?
jcheck "handshake: rate > 0, 0 failures, latency percentiles ordered" hs.out \
    'd["mode"] == "handshake" and d["rate"] > 0 and d["handshakes"] > 0 and d["failures"] == 0
     and 0 < d["latency_ms"]["p50"] <= d["latency_ms"]["p99"] <= d["latency_ms"]["max"]'

"${B[@]}" --mode resume -c 2 -d 2 >resume.out 2>resume.err
jcheck "resume: rate > 0, 0 failures, resumed ratio > 0.9" resume.out \
    'd["mode"] == "resume" and d["rate"] > 0 and d["failures"] == 0 and d["resumed_ratio"] > 0.9'

# A certificate the server does not trust: every handshake fails, and says why.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout rogue.key \
    -subj "/CN=rogue" -days 1 -out rogue.pem 2>/dev/null
echo "rogue.pem,rogue.key" >rogue.csv
"$BENCH" --host 127.0.0.1 --port "$MQTT_PORT" --ca trust.pem --certs rogue.csv --json \
    --mode handshake -c 1 -d 1 >rogue.out 2>rogue.err
jcheck "handshake with an untrusted certificate: 0 handshakes, failures counted with a reason" \
    rogue.out 'd["handshakes"] == 0 and d["failures"] > 0 and
               any("tls" in k or "closed" in k for k in d["failure_reasons"])'

# ---- idle ------------------------------------------------------------------------------
# A PINGREQ every second (keepalive 2); at the end each connection may have one unanswered.
"${B[@]}" --mode idle -n $DEVICES -d 3 --keepalive 2 --source 127.0.0.1-127.0.0.2 \
    --server-pid "$SERVER_PID" >idle.out 2>idle.err &
IDLE_PID=$!
sources=
for _ in $(seq 50); do
    est=$(ss -Htn state established "( dport = :$MQTT_PORT )" 2>/dev/null)
    if [ "$(wc -l <<<"$est")" -ge $DEVICES ]; then
        sources=$(awk '{print $3}' <<<"$est" | sed 's/:[0-9]*$//' | sort -u | tr '\n' ' ')
        break
    fi
    sleep 0.1
done
wait $IDLE_PID
rc=$?
[ $rc = 0 ]
expect "iothub-bench --mode idle -n $DEVICES exits 0" $?
[ "$sources" = "127.0.0.1 127.0.0.2 " ]
expect "idle: the connections come from the two --source addresses (ss: $sources)" $?
jcheck "idle: held == $DEVICES, 0 errors, keepalive pings answered, server RSS read" idle.out \
    "d['held'] == $DEVICES and d['connected'] == $DEVICES and d['errors'] == 0
     and d['pongs'] > 0 and d['pings'] - d['pongs'] <= d['held'] and d['rss_after_kb'] > 0
     and d['connect_rate'] > 0"

# ---- publish -----------------------------------------------------------------------------
SVC=(--service-cert certs/service.pem --service-key certs/service.key)
"${B[@]}" --mode publish "${SVC[@]}" -n 5 --qos 0 --rate 50 -d 2 >pub0.out 2>pub0.err
jcheck "publish QoS 0 at 50 msg/s, 5 devices -> service: sent > 0, received > 0, 0 errors" \
    pub0.out 'd["qos"] == 0 and d["sent"] > 0 and 0 < d["received"] <= d["sent"]
              and d["errors"] == 0 and d["latency_ms"]["max"] > 0'
"${B[@]}" --mode publish "${SVC[@]}" -n 5 --qos 1 --rate 50 -d 2 >pub1.out 2>pub1.err
jcheck "publish QoS 1 at 50 msg/s: received == acked == sent, 0 lost, 0 errors" pub1.out \
    'd["qos"] == 1 and d["sent"] > 0 and d["received"] == d["sent"] == d["acked"]
     and d["lost"] == 0 and d["errors"] == 0'
"${B[@]}" --mode publish --sub self -n 5 --qos 1 --rate 50 -d 1 >pubself.out 2>pubself.err
jcheck "publish QoS 1, each device subscribed to its own topic: received == sent" pubself.out \
    'd["subscriber"] == "self" and d["sent"] > 0 and d["received"] == d["sent"] and d["errors"] == 0'
"${B[@]}" --mode fanout "${SVC[@]}" -n $DEVICES --qos 1 --rate 20 -d 2 >fan1.out 2>fan1.err
jcheck "fanout QoS 1 at 20 msg/s, 1 device -> $DEVICES service subscribers: every message to every subscriber" \
    fan1.out 'd["mode"] == "fanout" and d["subscribers"] == '$DEVICES' and d["sent"] > 0
              and d["deliveries"] == d["sent"] * '$DEVICES' and d["lost"] == 0
              and d["acked"] == d["sent"] and d["errors"] == 0'
"${B[@]}" --mode fanout "${SVC[@]}" -n $DEVICES --qos 0 --rate 20 -d 2 >fan0.out 2>fan0.err
jcheck "fanout QoS 0 at 20 msg/s to $DEVICES subscribers: deliveries <= sent x subscribers, 0 errors" \
    fan0.out 'd["qos"] == 0 and d["sent"] > 0 and 0 < d["deliveries"] <= d["sent"] * '$DEVICES'
              and d["errors"] == 0'

# ---- readmit: the devices come back after a restart of iothubd -----------------------------
# readmit RUN [SQL]: iothub-bench --mode readmit in the background; once it says the devices
# are connected, iothubd is stopped, SQL (if any) run, and iothubd started again.
readmit() {
    "${B[@]}" --mode readmit -n $DEVICES -c 8 --backoff 0.5 -d 30 --wait 30 >"$1.out" 2>"$1.err" &
    local pid=$! up=1
    for _ in $(seq 100); do grep -q "waiting for the server to drop them" "$1.err" && break; sleep 0.1; done
    if grep -q "waiting for the server to drop them" "$1.err"; then
        stop_server
        [ -z "${2:-}" ] || sql "$URL" "$2" >/dev/null
        start_server iothub.conf "serve-$1.log" && up=0
    fi
    wait $pid
    READMIT_RC=$?
    return $up
}
readmit readmit1
expect "readmit: $DEVICES devices connected, iothubd restarted under them" $?
[ "$READMIT_RC" = 0 ]
expect "iothub-bench --mode readmit exits 0" $?
jcheck "readmit: all $DEVICES dropped and re-admitted, resumed == $DEVICES, 0 full, 0 failures" \
    readmit1.out "d['mode'] == 'readmit' and d['connected'] == $DEVICES and d['dropped'] == $DEVICES
     and d['readmitted'] == $DEVICES and d['resumed'] == $DEVICES and d['full'] == 0
     and d['failures'] == 0 and 0 < d['first_back_s'] <= d['readmit_s'] and not d['stopped_early']"
# The ticket keys deleted while iothubd is down (as before they were kept): full handshakes.
readmit readmit2 "DELETE FROM ticket_keys"
jcheck "readmit with the ticket keys gone: re-admitted == $DEVICES, all by full handshakes" \
    readmit2.out "d['readmitted'] == $DEVICES and d['resumed'] == 0 and d['full'] == $DEVICES
     and d['failures'] == 0"

# ---- bad input -------------------------------------------------------------------------------
"${B[@]}" --mode idle -n $((DEVICES + 1)) >toomany.out 2>toomany.err
rc=$?
[ $rc = 2 ] && grep -q "need $((DEVICES + 1)) device certificates" toomany.err
expect "idle with more connections than certificates: exit 2 and a precise error" $?
"$BENCH" --mode publish --ca trust.pem --certs certs/devices.csv >nosvc.out 2>nosvc.err
rc=$?
[ $rc = 2 ] && grep -q "needs --service-cert" nosvc.err
expect "publish without a subscriber certificate: exit 2 and a precise error" $?
"$BENCH" --mode fanout -n 2 --ca trust.pem --certs certs/devices.csv >nosvcf.out 2>nosvcf.err
rc=$?
[ $rc = 2 ] && grep -q "fanout needs" nosvcf.err
expect "fanout without a subscriber certificate: exit 2 and a precise error" $?

stop_server
expect "iothubd stops cleanly" $?
finish
