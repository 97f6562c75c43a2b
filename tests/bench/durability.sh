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
#            in PostgreSQL before its PUBACK
# Prints a markdown table (messages received by the subscriber per second, PUBACKs per second).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${IOTHUB_BENCH_BUILD:?run through ./deploy/dev.sh bench --durability}
PGSOCK=${IOTHUB_BENCH_PGSOCK:?run through ./deploy/dev.sh bench --durability}
TMP=${IOTHUB_BENCH_TMP:?run through ./deploy/dev.sh bench --durability}
BENCH=$BUILD/tests/bench/iothub-bench
ENROLL=$BUILD/tests/bench/iothub-enroll
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
log() { printf '[bench] %s\n' "$*" >&2; }
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
OUT=$ROOT/.dev/bench/durability-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT"
HUB_PID=
stop_hub() {
    [ -n "$HUB_PID" ] || return 0
    kill -TERM "$HUB_PID" 2>/dev/null || true
    wait "$HUB_PID" 2>/dev/null || true
    HUB_PID=
}
trap stop_hub EXIT
export IOTHUB_MASTER_KEY="bench master passphrase $$"

# run LABEL IOTHUBD MODES...: one server, one database, the modes in order.
run() {
    local label=$1 hubd=$2
    shift 2
    local w=$TMP/$label api mqtt
    mkdir -p "$w"
    cd "$w"
    api=$(free_port) mqtt=$(free_port)
    createdb -h "$PGSOCK" -U postgres "iothub_dur_$label"
    cat >iothub.conf <<CONF
db_url = postgresql:///iothub_dur_$label?host=$PGSOCK&user=postgres
api_listen = 127.0.0.1:$api
mqtt_mtls_listen = 127.0.0.1:$mqtt
hostname = localhost,127.0.0.1
log_level = warn
CONF
    # the offline session must keep every message of the run (the default keeps 1,000)
    [ "$label" = before ] || echo "mqtt_max_queued = 10000000" >>iothub.conf
    "$hubd" -c iothub.conf init --token-file admin.token >"$OUT/$label-init.log" 2>&1
    "$hubd" -c iothub.conf ca chain >trust.pem
    "$hubd" -c iothub.conf serve >>"$OUT/$label-iothubd.log" 2>&1 &
    HUB_PID=$!
    for _ in $(seq 300); do curl -sk -o /dev/null "https://127.0.0.1:$api/healthz" && break; sleep 0.05; done
    "$ENROLL" --url "https://127.0.0.1:$api" --token-file admin.token --ca trust.pem \
        -n "$PUBS" --out certs -c 8 2>"$OUT/$label-enroll.log"
    local common=(--host 127.0.0.1 --port "$mqtt" --ca trust.pem --certs certs/devices.csv --json
                  --mode publish --service-cert certs/service.pem --service-key certs/service.key
                  -n "$PUBS" --qos 1 --rate 0)
    for mode in "$@"; do
        log "$label: $mode"
        case $mode in
            clean) "$BENCH" "${common[@]}" -d "$DURATION" >"$OUT/$label-$mode.out" 2>&1 || true ;;
            online) "$BENCH" "${common[@]}" -d "$DURATION" --session bench-online >"$OUT/$label-$mode.out" 2>&1 || true ;;
            offline)
                "$BENCH" "${common[@]}" -d 1 --session bench-offline >"$OUT/$label-offline-setup.out" 2>&1 || true
                sleep 2
                "$BENCH" "${common[@]}" -d "$DURATION" >"$OUT/$label-$mode.out" 2>&1 || true ;;
        esac
        sleep 2
    done
    curl -sk "https://127.0.0.1:$api/metrics" | grep '^iothub_mqtt_store' >"$OUT/$label-metrics.txt" || true
    stop_hub
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
