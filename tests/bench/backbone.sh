#!/usr/bin/env bash
# The cost of a second node on the same machine (issue 18, docs/BENCHMARKS.md#several-nodes):
#   ./deploy/dev.sh bench --backbone [--before IOTHUBD] [--duration S] [--publishers N]
# One database on deploy/dev.sh's private PostgreSQL, N devices and a service enrolled
# (iothub-enroll), then `iothub-bench --mode publish --rate 0 -n N` (64 B, as fast as the
# publishers go) at QoS 0 and 1, the service subscribed to devices/+/telemetry:
#   single   one iothubd, no backbone (today's behaviour)
#   local    two nodes and a Mosquitto backbone; publishers and subscriber on node 1 (every
#            message is forwarded too; QoS 1 PUBACKs wait for the backbone's)
#   remote   publishers on node 1, the subscriber on node 2 (--sub-port): the path
#            node 1 -> Mosquitto -> node 2
# --before IOTHUBD: the two-node rows with that binary too (e.g. one built from main), on the
# same database, certificates and Mosquitto settings, just before the rows of this build.
# Everything on one machine: the three processes share its cores. Prints a markdown table.
set -euo pipefail

. "$(dirname "$0")/bench_lib.sh"
bench_init backbone
BEFORE= DURATION=8 PUBS=20
COMMAND="./deploy/dev.sh bench --backbone $*"
while [ $# -gt 0 ]; do
    case $1 in
        --before) BEFORE=${2:?--before needs an iothubd binary}; shift 2 ;;
        --duration) DURATION=${2:?--duration needs seconds}; shift 2 ;;
        --publishers) PUBS=${2:?--publishers needs a number}; shift 2 ;;
        *) echo "bench --backbone: unknown option $1" >&2; exit 2 ;;
    esac
done
cd "$TMP"
BB=$(free_port)
cat >mosquitto.conf <<CONF
listener $BB 127.0.0.1
allow_anonymous true
max_queued_messages 1000000
max_inflight_messages 1000
CONF
createdb -h "$PGSOCK" -U postgres iothub_backbone_bench
DB=iothub_backbone_bench
hub_conf single.conf $DB single "node_name = single"
hub_conf n1.conf $DB n1 "node_name = n1" "backbone = mqtt://127.0.0.1:$BB"
hub_conf n2.conf $DB n2 "node_name = n2" "backbone = mqtt://127.0.0.1:$BB"
"$BUILD/iothubd" -c single.conf init --token-file admin.token >"$OUT/init.log" 2>&1
"$BUILD/iothubd" -c single.conf ca chain >trust.pem
hub_serve "$BUILD/iothubd" single.conf single
hub_enroll single "$PUBS"
# bench LABEL QOS PORT [SUBPORT]
bench() {
    log "$1 QoS $2"
    bench_run "$OUT/$1-q$2.out" "$3" "$2" ${4:+--sub-port "$4"} -d "$DURATION"
    sleep 1
}
for q in 0 1; do bench single "$q" "${MQTT[single]}"; done
stop_all
# two LABEL IOTHUBD: two nodes and a fresh Mosquitto, subscriber on node 1 then on node 2.
two() {
    mosquitto -c mosquitto.conf >>"$OUT/mosquitto.log" 2>&1 &
    PIDS+=($!)
    sleep 0.5
    hub_serve "$2" n1.conf n1
    hub_serve "$2" n2.conf n2
    sleep 1
    for q in 0 1; do bench "$1-local" "$q" "${MQTT[n1]}"; done
    for q in 0 1; do bench "$1-remote" "$q" "${MQTT[n1]}" "${MQTT[n2]}"; done
    curl -sk "https://127.0.0.1:${API[n1]}/metrics" | grep '^iothub_backbone' >"$OUT/$1-n1-metrics.txt" || true
    curl -sk "https://127.0.0.1:${API[n2]}/metrics" | grep '^iothub_backbone' >"$OUT/$1-n2-metrics.txt" || true
    stop_all
}
[ -z "$BEFORE" ] || two before "$BEFORE"
two after "$BUILD/iothubd"

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
                    ("before: two nodes, publishers and subscriber on node 1", "before-local"),
                    ("before: two nodes, publishers on node 1, subscriber on node 2", "before-remote"),
                    ("two nodes, publishers and subscriber on node 1", "after-local"),
                    ("two nodes, publishers on node 1, subscriber on node 2", "after-remote")):
    for q in (0, 1):
        r = row("%s-q%d" % (name, q))
        if r:
            print("| %s | %d | %.0f | %s | %s | %d |" % (label, q, r[0], "%.0f" % r[1] if q else "-", r[2], r[3]))
print("\ncommand: `%s`; results in %s" % (command, out))
PY
