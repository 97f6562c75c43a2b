#!/usr/bin/env bash
# The cost of a second node on the same machine (issue 18, docs/BENCHMARKS.md#several-nodes):
#   ./deploy/dev.sh bench --backbone [--duration S] [--publishers N]
# One database on deploy/dev.sh's private PostgreSQL, N devices and a service enrolled
# (iothub-enroll), then `iothub-bench --mode publish --rate 0 -n N` (64 B, as fast as the
# publishers go) at QoS 0 and 1, the service subscribed to devices/+/telemetry:
#   single   one iothubd, no backbone (today's behaviour)
#   local    two nodes and a Mosquitto backbone; publishers and subscriber on node 1 (every
#            message is forwarded too; QoS 1 PUBACKs wait for the backbone's)
#   remote   publishers on node 1, the subscriber on node 2 (--sub-port): the path
#            node 1 -> Mosquitto -> node 2
# Everything on one machine: the three processes share its cores. Prints a markdown table.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${IOTHUB_BENCH_BUILD:?run through ./deploy/dev.sh bench --backbone}
PGSOCK=${IOTHUB_BENCH_PGSOCK:?run through ./deploy/dev.sh bench --backbone}
TMP=${IOTHUB_BENCH_TMP:?run through ./deploy/dev.sh bench --backbone}
BENCH=$BUILD/tests/bench/iothub-bench
ENROLL=$BUILD/tests/bench/iothub-enroll
DURATION=8 PUBS=20
COMMAND="./deploy/dev.sh bench --backbone $*"
while [ $# -gt 0 ]; do
    case $1 in
        --duration) DURATION=${2:?--duration needs seconds}; shift 2 ;;
        --publishers) PUBS=${2:?--publishers needs a number}; shift 2 ;;
        *) echo "bench --backbone: unknown option $1" >&2; exit 2 ;;
    esac
done
log() { printf '[bench] %s\n' "$*" >&2; }
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
OUT=$ROOT/.dev/bench/backbone-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT"
PIDS=()
stop_all() {
    local p
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    PIDS=()
}
trap stop_all EXIT
export IOTHUB_MASTER_KEY="bench master passphrase $$"
cd "$TMP"
BB=$(free_port)
cat >mosquitto.conf <<CONF
listener $BB 127.0.0.1
allow_anonymous true
max_queued_messages 1000000
max_inflight_messages 1000
CONF
createdb -h "$PGSOCK" -U postgres iothub_backbone_bench
URL="postgresql:///iothub_backbone_bench?host=$PGSOCK&user=postgres"
declare -A API MQTT
# conf NAME [lines...]: NAME.conf
conf() {
    local name=$1
    shift
    API[$name]=$(free_port) MQTT[$name]=$(free_port)
    {
        echo "db_url = $URL"
        echo "api_listen = 127.0.0.1:${API[$name]}"
        echo "mqtt_mtls_listen = 127.0.0.1:${MQTT[$name]}"
        echo "hostname = localhost,127.0.0.1"
        echo "log_level = warn"
        echo "node_name = $name"
        for l in "$@"; do echo "$l"; done
    } >"$name.conf"
}
serve() {
    "$BUILD/iothubd" -c "$1.conf" serve >>"$OUT/$1-iothubd.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 300); do curl -sk -o /dev/null "https://127.0.0.1:${API[$1]}/healthz" && break; sleep 0.05; done
}
conf single
conf n1 "backbone = mqtt://127.0.0.1:$BB"
conf n2 "backbone = mqtt://127.0.0.1:$BB"
"$BUILD/iothubd" -c single.conf init --token-file admin.token >"$OUT/init.log" 2>&1
"$BUILD/iothubd" -c single.conf ca chain >trust.pem
serve single
"$ENROLL" --url "https://127.0.0.1:${API[single]}" --token-file admin.token --ca trust.pem \
    -n "$PUBS" --out certs -c 8 2>"$OUT/enroll.log"
# bench LABEL QOS PORT [SUBPORT]
bench() {
    log "$1 QoS $2"
    "$BENCH" --host 127.0.0.1 --port "$3" ${4:+--sub-port "$4"} --ca trust.pem \
        --certs certs/devices.csv --json --mode publish --service-cert certs/service.pem \
        --service-key certs/service.key -n "$PUBS" --qos "$2" --rate 0 -d "$DURATION" \
        >"$OUT/$1-q$2.out" 2>&1 || true
    sleep 1
}
for q in 0 1; do bench single "$q" "${MQTT[single]}"; done
stop_all
mosquitto -c mosquitto.conf >"$OUT/mosquitto.log" 2>&1 &
PIDS+=($!)
sleep 0.5
serve n1
serve n2
sleep 1
for q in 0 1; do bench local "$q" "${MQTT[n1]}"; done
for q in 0 1; do bench remote "$q" "${MQTT[n1]}" "${MQTT[n2]}"; done
curl -sk "https://127.0.0.1:${API[n1]}/metrics" | grep '^iothub_backbone' >"$OUT/n1-metrics.txt" || true
curl -sk "https://127.0.0.1:${API[n2]}/metrics" | grep '^iothub_backbone' >"$OUT/n2-metrics.txt" || true
stop_all

python3 - "$OUT" "$COMMAND" "$DURATION" "$PUBS" <<'PY'
import json, os, sys
out, command, duration, pubs = sys.argv[1:5]
def row(name):
    try:
        j = json.loads(open(os.path.join(out, name + ".out")).read().strip().splitlines()[-1])
    except Exception:
        return None
    d = j["duration_s"] or 1
    return j["received_rate"], j.get("acked", 0) / d, j.get("lost", 0), j["errors"]
print("| %s publishers, 64 B, %s s | QoS | received/s | PUBACKs/s | lost | errors |" % (pubs, duration))
print("|---|---:|---:|---:|---:|---:|")
for label, name in (("one node, no backbone", "single"),
                    ("two nodes, publishers and subscriber on node 1", "local"),
                    ("two nodes, publishers on node 1, subscriber on node 2", "remote")):
    for q in (0, 1):
        r = row("%s-q%d" % (name, q))
        if r:
            print("| %s | %d | %.0f | %s | %s | %d |" % (label, q, r[0], "%.0f" % r[1] if q else "-", r[2], r[3]))
print("\ncommand: `%s`; results in %s" % (command, out))
PY
