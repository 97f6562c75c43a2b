#!/usr/bin/env bash
# The cost of durability (issue 18, docs/BENCHMARKS.md#durability): QoS 1 as fast as the
# publishers go, with and without persistent subscribers:
#   ./deploy/dev.sh bench --durability [--before IOTHUBD] [--duration S] [--publishers N]
# For each iothubd (the one built here, and --before, e.g. one built from main), a fresh
# database on deploy/dev.sh's private PostgreSQL (fsync on), `init`, `serve`, N devices and a
# service (iothub-enroll), then `iothub-bench --mode publish --qos 1 --rate 0 -n N`:
#   clean    the service subscribes with a clean session (nothing touches PostgreSQL)
#   online   the subscriber is a persistent session (--session): each message is written to
#            PostgreSQL before its PUBACK, delivered, and its queue row deleted
#   offline  a persistent session subscribed to devices/+/telemetry is offline (made by a 1 s
#            run with --session) beside the clean subscriber: every message is queued for it
#            in PostgreSQL before its PUBACK (iothubd restarted with mqtt_max_queued =
#            10000000 first, so that the offline session keeps them all)
# Prints a markdown table (messages received by the subscriber per second, PUBACKs per second).
set -euo pipefail

. "$(dirname "$0")/bench_lib.sh"
bench_init durability
BEFORE= DURATION=8 PUBS=40
COMMAND="./deploy/dev.sh bench --durability $*"
while [ $# -gt 0 ]; do
    case $1 in
        --before) BEFORE=${2:?--before needs an iothubd binary}; shift 2 ;;
        --duration) DURATION=${2:?--duration needs seconds}; shift 2 ;;
        --publishers) PUBS=${2:?--publishers needs a number}; shift 2 ;;
        *) echo "bench --durability: unknown option $1" >&2; exit 2 ;;
    esac
done

# run LABEL IOTHUBD MODES...: one server, one database, the modes in order.
run() {
    local label=$1 hubd=$2 w=$TMP/$1
    shift 2
    mkdir -p "$w"
    cd "$w"
    createdb -h "$PGSOCK" -U postgres "iothub_dur_$label"
    hub_conf iothub.conf "iothub_dur_$label" "$label"
    "$hubd" -c iothub.conf init --token-file admin.token >"$OUT/$label-init.log" 2>&1
    "$hubd" -c iothub.conf ca chain >trust.pem
    hub_serve "$hubd" iothub.conf "$label"
    hub_enroll "$label" "$PUBS"
    local port=${MQTT[$label]}
    for mode in "$@"; do
        log "$label: $mode"
        case $mode in
            clean) bench_run "$OUT/$label-$mode.out" "$port" 1 -d "$DURATION" ;;
            online) bench_run "$OUT/$label-$mode.out" "$port" 1 -d "$DURATION" --session bench-online ;;
            offline)
                # the offline session must keep every message of the run (the default keeps
                # 1,000, and then acknowledges at once what it drops)
                stop_all
                echo "mqtt_max_queued = 10000000" >>iothub.conf
                hub_serve "$hubd" iothub.conf "$label"
                bench_run "$OUT/$label-offline-setup.out" "$port" 1 -d 1 --session bench-offline
                sleep 2
                bench_run "$OUT/$label-$mode.out" "$port" 1 -d "$DURATION" ;;
        esac
        sleep 2
    done
    curl -sk "https://127.0.0.1:${API[$label]}/metrics" | grep '^iothub_mqtt_store' >"$OUT/$label-metrics.txt" || true
    stop_all
    cd "$OUT"
}

[ -z "$BEFORE" ] || run before "$BEFORE" clean
run after "$BUILD/iothubd" clean online offline

python3 - "$OUT" "$COMMAND" "$DURATION" "$PUBS" <<'PY'
import json, os, sys
out, command, duration, pubs = sys.argv[1:5]
def row(name):
    try:
        j = json.loads(open(os.path.join(out, name + ".out")).read().strip().splitlines()[-1])
    except Exception:
        return None
    d = j["duration_s"] or 1
    return j["received_rate"], j["acked"] / d, j["errors"]
print("| QoS 1, %s publishers, 64 B, %s s | received/s | PUBACKs/s | errors |" % (pubs, duration))
print("|---|---:|---:|---:|")
for label, name in (("before (main), clean subscriber", "before-clean"),
                    ("after, clean subscriber", "after-clean"),
                    ("after, online persistent subscriber", "after-online"),
                    ("after, offline persistent subscriber (+ a clean one)", "after-offline")):
    r = row(name)
    if r:
        print("| %s | %.0f | %.0f | %d |" % (label, r[0], r[1], r[2]))
print("\ncommand: `%s`; results in %s" % (command, out))
PY
