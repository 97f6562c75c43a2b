# Helpers for test_backbone*.sh: a private Mosquitto as the message backbone and several
# iothubd nodes on one database (docs/architecture.md#several-nodes).
# shellcheck shell=bash
. "$(dirname "$0")/api_lib.sh"

CLIENTS=("$PY" "$(dirname "$0")/backbone_clients.py")
BB_PORT=$(free_port)
BB_PID=
declare -A NODE_PID NODE_API NODE_MQTT

# bb_start: Mosquitto on 127.0.0.1:$BB_PORT with its own config (persistence in $T/bb, so
# a restart keeps the nodes' sessions); sets BB_PID once it accepts connections.
bb_start() {
    mkdir -p "$T/bb"
    cat >"$T/bb/mosquitto.conf" <<CONF
listener $BB_PORT 127.0.0.1
allow_anonymous true
persistence true
# As root Mosquitto drops to user mosquitto, which cannot write in $T: persistence would
# silently do nothing and a restart would lose the nodes' sessions. Ignored when not root.
user $(id -un)
persistence_location $T/bb/
max_queued_messages 100000
max_inflight_messages 100
log_dest file $T/bb/mosquitto.log
log_type error
log_type warning
log_type notice
CONF
    mosquitto -c "$T/bb/mosquitto.conf" >>"$T/bb/stdout.log" 2>&1 &
    BB_PID=$!
    for _ in $(seq 100); do
        timeout 2 mosquitto_pub -h 127.0.0.1 -p "$BB_PORT" -t probe -n 2>/dev/null && return 0
        kill -0 "$BB_PID" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

# bb_stop: SIGTERM (Mosquitto saves its persistence file) and wait.
bb_stop() {
    [ -n "$BB_PID" ] || return 0
    kill -TERM "$BB_PID" 2>/dev/null
    wait "$BB_PID" 2>/dev/null
    BB_PID=
}

# node_conf NAME URL [extra lines...]: NAME.conf for node NAME (its own API and plain MQTT
# ports, the backbone, node_name = NAME).
node_conf() {
    local name=$1 url=$2
    shift 2
    NODE_API[$name]=$(free_port)
    NODE_MQTT[$name]=$(free_port)
    {
        echo "db_url = $url"
        echo "hostname = localhost,127.0.0.1"
        echo "api_listen = 127.0.0.1:${NODE_API[$name]}"
        echo "mqtt_mtls_listen = off"
        echo "mqtt_plain_listen = 127.0.0.1:${NODE_MQTT[$name]}"
        echo "backbone = mqtt://127.0.0.1:$BB_PORT"
        echo "node_name = $name"
        echo "workers = 1"
        for l in "$@"; do echo "$l"; done
    } >"$T/$name.conf"
}

# node_start NAME...: iothubd serve with NAME.conf (log NAME.log) for each NAME, all at
# once; waits for each one's /healthz and backbone connection (at most 30 s in all).
node_start() {
    local name
    for name in "$@"; do
        "$IOTHUBD" -c "$T/$name.conf" serve >>"$T/$name.log" 2>&1 &
        NODE_PID[$name]=$!
    done
    for name in "$@"; do
        for _ in $(seq 300); do
            if curl -sk -o /dev/null "https://127.0.0.1:${NODE_API[$name]}/healthz" &&
                grep -q "backbone: connected" "$T/$name.log"; then
                continue 2
            fi
            kill -0 "${NODE_PID[$name]}" 2>/dev/null || return 1
            sleep 0.1
        done
        return 1
    done
}

# node_stop NAME: SIGTERM and wait; returns its exit status.
node_stop() {
    local pid=${NODE_PID[$1]:-}
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null
    wait "$pid"
    local rc=$?
    NODE_PID[$1]=
    return $rc
}

# metric NAME SERIES: a series' value on node NAME's /metrics (empty when absent).
metric() {
    curl -sk "https://127.0.0.1:${NODE_API[$1]}/metrics" | awk -v s="$2" '$1 == s {print $2}'
}

# wait_metric NAME SERIES MIN: waits up to 10 s until SERIES >= MIN on node NAME (the MQTT
# side's metrics are a snapshot taken every second).
wait_metric() {
    local v
    for _ in $(seq 100); do
        v=$(metric "$1" "$2")
        [ -n "$v" ] && [ "${v%.*}" -ge "$3" ] && return 0
        sleep 0.1
    done
    return 1
}

BG_PIDS=()
# bg CMD...: runs CMD in the background, remembered for the cleanup; sets BG.
bg() {
    "$@" &
    BG=$!
    BG_PIDS+=("$BG")
}

# wait_ready FILE: waits up to 10 s for a subscriber's READY line.
wait_ready() {
    for _ in $(seq 200); do
        grep -q '^READY' "$1" 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}

# wait_line FILE REGEX [SECONDS]: waits until a line of FILE matches.
wait_line() {
    for _ in $(seq $((${3:-10} * 20))); do
        grep -qE "$2" "$1" 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}

backbone_cleanup() {
    local p
    for p in "${BG_PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${!NODE_PID[@]}"; do node_stop "$p" >/dev/null 2>&1; done
    bb_stop
}
trap 'backbone_cleanup' EXIT
