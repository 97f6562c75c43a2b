# Sourced by the benchmarks deploy/dev.sh runs against its private PostgreSQL
# (tests/bench/durability.sh, tests/bench/backbone.sh): the environment it sets, iothubd
# configurations, servers started and stopped by PID, enrolment and one iothub-bench run.
#   bench_init NAME       checks the environment; OUT = .dev/bench/NAME-<UTC time>
#   hub_conf FILE DB NAME [LINES...]  writes an iothubd configuration on fresh ports:
#                         API[NAME], MQTT[NAME]; LINES are appended as they are
#   hub_serve IOTHUBD FILE NAME  starts `serve` (log in $OUT/NAME-iothubd.log), waits for
#                         /healthz; its PID goes in PIDS
#   stop_all              stops every server started (SIGTERM, then waits)
#   hub_enroll NAME N     enrols N devices and a service through NAME's API (certs/)
#   bench_run OUTFILE PORT QOS [ARGS...]  iothub-bench --mode publish as fast as it goes
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
declare -A API MQTT
PIDS=()

bench_init() {
    BUILD=${IOTHUB_BENCH_BUILD:?run through ./deploy/dev.sh bench}
    PGSOCK=${IOTHUB_BENCH_PGSOCK:?run through ./deploy/dev.sh bench}
    TMP=${IOTHUB_BENCH_TMP:?run through ./deploy/dev.sh bench}
    BENCH=$BUILD/tests/bench/iothub-bench
    ENROLL=$BUILD/tests/bench/iothub-enroll
    OUT=$ROOT/.dev/bench/$1-$(date -u +%Y%m%dT%H%M%SZ)
    mkdir -p "$OUT"
    export IOTHUB_MASTER_KEY="bench master passphrase $$"
    trap stop_all EXIT
}

log() { printf '[bench] %s\n' "$*" >&2; }

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

hub_conf() {
    local file=$1 db=$2 name=$3 l
    shift 3
    API[$name]=$(free_port) MQTT[$name]=$(free_port)
    {
        echo "db_url = postgresql:///$db?host=$PGSOCK&user=postgres"
        echo "api_listen = 127.0.0.1:${API[$name]}"
        echo "mqtt_mtls_listen = 127.0.0.1:${MQTT[$name]}"
        echo "hostname = localhost,127.0.0.1"
        echo "log_level = warn"
        for l in "$@"; do echo "$l"; done
    } >"$file"
}

hub_serve() {
    "$1" -c "$2" serve >>"$OUT/$3-iothubd.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 300); do
        curl -sk -o /dev/null "https://127.0.0.1:${API[$3]}/healthz" && return 0
        sleep 0.05
    done
}

stop_all() {
    local p
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    PIDS=()
}

hub_enroll() {
    "$ENROLL" --url "https://127.0.0.1:${API[$1]}" --token-file admin.token --ca trust.pem \
        -n "$2" --out certs -c 8 2>"$OUT/$1-enroll.log"
}

bench_run() {
    local out=$1 port=$2 qos=$3
    shift 3
    "$BENCH" --host 127.0.0.1 --port "$port" --ca trust.pem --certs certs/devices.csv --json \
        --mode publish --service-cert certs/service.pem --service-key certs/service.key \
        -n "$PUBS" --qos "$qos" --rate 0 "$@" >"$out" 2>&1 || true
}
