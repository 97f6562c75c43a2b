#!/usr/bin/env bash
# Runs one tsung scenario against iothubd, then the same against Mosquitto, and prints both
# summaries side by side. Called by tests/bench/compare.sh (`./deploy/dev.sh bench --tsung
# SCENARIO [--devices N] [--quick]`), which has started both servers and enrolled the devices:
#   deploy/tsung/run.sh connect|telemetry|reconnect USERS
# Environment from compare.sh: TSUNG_HUB_PORT, TSUNG_MOSQ_PORT, TSUNG_CA, TSUNG_CERTS (the
# enrolled devices and service.pem), TSUNG_OUT (logs). Scenario knobs (render.sh options):
# TSUNG_RATE (arrivals/s, 100), TSUNG_HOLD (10), TSUNG_COUNT, TSUNG_INTERVAL (1), TSUNG_QOS (0).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SCEN=${1:?usage: run.sh connect|telemetry|reconnect USERS}
USERS=${2:?usage: run.sh connect|telemetry|reconnect USERS}
: "${TSUNG_HUB_PORT:?} ${TSUNG_MOSQ_PORT:?} ${TSUNG_CA:?} ${TSUNG_CERTS:?} ${TSUNG_OUT:?}"
command -v tsung >/dev/null || { echo "tsung: not installed (apt-get install tsung)" >&2; exit 2; }
export ERL_MAX_PORTS=$(($(ulimit -n) > 65536 ? $(ulimit -n) : 65536))
SUB_PID=
trap '[ -n "$SUB_PID" ] && kill "$SUB_PID" 2>/dev/null; true' EXIT

# one NAME PORT: renders, runs tsung (and the telemetry subscriber), writes NAME.json.
one() {
    local name=$1 port=$2 dir=$TSUNG_OUT/tsung-$SCEN-$1 t0 t1 rc=0
    mkdir -p "$dir/log"
    bash "$HERE/render.sh" "$SCEN" "$TSUNG_CERTS" "$dir" --port "$port" --ca "$TSUNG_CA" \
        --users "$USERS" --rate "${TSUNG_RATE:-100}" --hold "${TSUNG_HOLD:-10}" \
        ${TSUNG_COUNT:+--count "$TSUNG_COUNT"} --interval "${TSUNG_INTERVAL:-1}" \
        --qos "${TSUNG_QOS:-0}" >/dev/null
    if [ "$SCEN" = telemetry ]; then
        # The service: mosquitto_sub on devices/+/telemetry, one line per message.
        stdbuf -oL mosquitto_sub -h 127.0.0.1 -p "$port" --cafile "$TSUNG_CA" \
            --cert "$TSUNG_CERTS/service.pem" --key "$TSUNG_CERTS/service.key" \
            -t 'devices/+/telemetry' -q 1 -F '%t' >"$dir/received.txt" 2>"$dir/sub.err" &
        SUB_PID=$!
        sleep 1
    fi
    echo "[tsung] $SCEN against $name (127.0.0.1:$port), $USERS devices" >&2
    t0=$(date +%s.%N)
    timeout 3600 tsung -f "$dir/$SCEN.xml" -l "$dir/log" start >"$dir/tsung.out" 2>&1 || rc=$?
    t1=$(date +%s.%N)
    if [ -n "$SUB_PID" ]; then
        sleep 2
        kill "$SUB_PID" 2>/dev/null || true
        wait "$SUB_PID" 2>/dev/null || true
        SUB_PID=
    fi
    python3 "$HERE/summary.py" "$dir" "$t0" "$t1" "$rc" >"$TSUNG_OUT/tsung-$SCEN-$name.json"
}
one iothub "$TSUNG_HUB_PORT"
one mosquitto "$TSUNG_MOSQ_PORT"
python3 "$HERE/summary.py" --table "$SCEN" "$USERS" "$TSUNG_OUT/tsung-$SCEN-iothub.json" \
    "$TSUNG_OUT/tsung-$SCEN-mosquitto.json"
