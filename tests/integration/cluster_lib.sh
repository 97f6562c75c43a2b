# Helpers for the several-node tests (test_cluster*.sh): N iothubd nodes on one PostgreSQL
# database, a private mosquitto as the message backbone, HAProxy in TCP mode in front.
# Node i (1..N) has API port NODE_API[i], MQTT (mTLS) port NODE_MQTT[i], MQTT (TLS, id +
# secret) port NODE_TLS[i], its log node$i.log and its name n$i. The REST helpers of
# api_lib.sh talk to the node chosen with `on_node i` (node 1 at first).
# shellcheck shell=bash
. "$(dirname "$0")/api_lib.sh"

declare -a NODE_API NODE_MQTT NODE_TLS NODE_PID NODE_DB # NODE_DB[i]: node i's db_url (else NODE_DB_URL, else URL)

# ---- cheaper helpers: a python3 start costs 1-2 s on a loaded machine (load 10 on 2 cores),
# and these tests ran ~40 of them (free_port, jf, jf_file, csr_body) before their first check.
# Ports: one python3 for all of a test's ports; `take_port VAR` sets VAR to the next one.
mapfile -t PORT_POOL < <("$PY" -c '
import socket
ss = [socket.socket() for _ in range(40)]
for s in ss:
    s.bind(("127.0.0.1", 0))
print("\n".join(str(s.getsockname()[1]) for s in ss))')
PORT_NEXT=0
take_port() {
    if [ "$PORT_NEXT" -lt "${#PORT_POOL[@]}" ]; then
        printf -v "$1" '%s' "${PORT_POOL[$PORT_NEXT]}"
        PORT_NEXT=$((PORT_NEXT + 1))
    else
        printf -v "$1" '%s' "$(free_port)"
    fi
}
# jf, jf_file and csr_body of api_lib.sh with jq (same output: strings raw, the rest as
# compact JSON; a missing field is null).
jf() {
    jq -r --arg p "$1" 'getpath($p | split(".") | map(select(. != "") | (tonumber? // .)))
        | if type == "string" then . else tojson end' "$T/body.out" 2>/dev/null
}
jf_file() { jq -j --arg k "$1" '.[$k]' "$T/body.out" >"$2"; }
csr_body() { jq -Rs '{csr: .}' <"$1" >"$2"; }

take_port BB_PORT
BB_PID=
HAP_PID=
take_port HAP_MQTT
take_port HAP_TLS
take_port HAP_API
CLUSTER_N=0
CLUSTER_CONF=() # extra config lines for every node
BACKBONE_KEY=0  # the build knows the backbone key (server/backbone.c)
grep -qa backbone_max_queued "$IOTHUBD" && BACKBONE_KEY=1

# on_node I: the REST helpers (call, bearer ...) and MQ (mosquitto clients) go to node I.
on_node() {
    BASE="https://127.0.0.1:${NODE_API[$1]}"
    API_PORT=${NODE_API[$1]}
    MQ=(--cafile trust.pem -h 127.0.0.1 -p "${NODE_MQTT[$1]}")
}

# node_conf I: writes node$I.conf.
node_conf() {
    local i=$1
    {
        echo "db_url = ${NODE_DB[$i]:-${NODE_DB_URL:-$URL}}"
        echo "hostname = localhost,127.0.0.1"
        echo "api_listen = 127.0.0.1:${NODE_API[$i]}"
        echo "mqtt_mtls_listen = 127.0.0.1:${NODE_MQTT[$i]}"
        echo "mqtt_tls_listen = 127.0.0.1:${NODE_TLS[$i]}"
        echo "workers = 1"
        [ -n "$BB_PORT" ] && [ "$BACKBONE_KEY" = 1 ] && echo "backbone = mqtt://127.0.0.1:$BB_PORT"
        for l in "${CLUSTER_CONF[@]}"; do echo "$l"; done
    } >"node$i.conf"
}

# node_launch I: starts node I (its name n$I) in the background.
node_launch() {
    node_conf "$1"
    IOTHUB_NODE_NAME="n$1" "$IOTHUBD" -c "node$1.conf" serve >>"node$1.log" 2>&1 &
    NODE_PID[$1]=$!
}
# node_start I: starts node I unless launched, waits until its /healthz answers 200 (not 503
# "starting": its MQTT listeners accept then). Up to 180 s: unsealing the keys (PBKDF2) took
# 31 s with three nodes starting at once under load 12; it returns as soon as the node is up.
node_start() {
    local i=$1
    [ -n "${NODE_PID[$i]:-}" ] || node_launch "$i"
    for _ in $(seq 1800); do
        curl -skf -o /dev/null "https://127.0.0.1:${NODE_API[$i]}/healthz" && return 0
        kill -0 "${NODE_PID[$i]}" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# node_stop I [SIGNAL]: stops node I (TERM, or the signal given: KILL for a crash).
node_stop() {
    local i=$1 sig=${2:-TERM}
    [ -n "${NODE_PID[$i]:-}" ] || return 0
    kill "-$sig" "${NODE_PID[$i]}" 2>/dev/null
    wait "${NODE_PID[$i]}" 2>/dev/null
    NODE_PID[$i]=
}

# backbone_start: a private mosquitto on 127.0.0.1:BB_PORT (persistence in bb/).
backbone_start() {
    mkdir -p bb
    cat >bb/mosquitto.conf <<EOF
listener $BB_PORT 127.0.0.1
allow_anonymous true
persistence true
# As root Mosquitto drops to user mosquitto, which cannot write in $T: persistence would
# silently do nothing and a restart would lose the nodes' sessions. Ignored when not root.
user $(id -un)
persistence_location $T/bb/
max_queued_messages 0
max_inflight_messages 0
EOF
    mosquitto -c bb/mosquitto.conf >>bb/mosquitto.log 2>&1 &
    BB_PID=$!
    for _ in $(seq 50); do
        (exec 3<>"/dev/tcp/127.0.0.1/$BB_PORT") 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}
backbone_stop() {
    [ -n "$BB_PID" ] || return 0
    kill "-${1:-TERM}" "$BB_PID" 2>/dev/null
    wait "$BB_PID" 2>/dev/null
    BB_PID=
}

# haproxy_start: HAProxy in TCP mode: HAP_MQTT (mTLS), HAP_TLS (id + secret) and HAP_API to
# every node, health-checked on /healthz; a node that stops answering leaves at once.
haproxy_start() {
    {
        printf 'global\n    maxconn 4000\ndefaults\n    mode tcp\n    timeout connect 2s\n'
        printf '    timeout client 120s\n    timeout server 120s\n    retries 3\n'
        printf '    option redispatch\n'
        printf '    default-server inter 500ms fall 1 rise 1\n'
        local name port
        for name in mqtt:HAP_MQTT:NODE_MQTT tls:HAP_TLS:NODE_TLS api:HAP_API:NODE_API; do
            IFS=: read -r fe fport bport <<<"$name"
            printf 'frontend %s\n    bind 127.0.0.1:%s\n    default_backend %s_nodes\n' \
                "$fe" "${!fport}" "$fe"
            printf 'backend %s_nodes\n    balance roundrobin\n' "$fe"
            printf '    option httpchk GET /healthz\n'
            for i in $(seq "$CLUSTER_N"); do
                eval "port=\${$bport[$i]}"
                printf '    server n%s 127.0.0.1:%s check check-ssl verify none port %s\n' \
                    "$i" "$port" "${NODE_API[$i]}"
            done
        done
    } >haproxy.cfg
    haproxy -f haproxy.cfg -db >haproxy.log 2>&1 &
    HAP_PID=$!
    for _ in $(seq 50); do
        (exec 3<>"/dev/tcp/127.0.0.1/$HAP_API") 2>/dev/null && return 0
        kill -0 "$HAP_PID" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

cluster_cleanup() {
    local i
    for i in $(seq "$CLUSTER_N"); do node_stop "$i" KILL; done
    [ -n "$HAP_PID" ] && kill "$HAP_PID" 2>/dev/null && wait "$HAP_PID" 2>/dev/null
    backbone_stop KILL
    kill_sub
    # CLUSTER_KEEP=DIR keeps the logs and files of the run (debugging).
    [ -n "${CLUSTER_KEEP:-}" ] && rm -rf "$CLUSTER_KEEP" && cp -r "$T" "$CLUSTER_KEEP"
}
trap 'cluster_cleanup >/dev/null 2>&1' EXIT

# cluster_setup NAME N: database, `iothubd init`, trust.pem, ADMIN, the backbone (unless
# BB_PORT is emptied first) and N nodes started. Returns non-zero if any step failed.
cluster_setup() {
    local i
    CLUSTER_N=$2
    URL=$(new_db "$1") || return 1
    for i in $(seq "$CLUSTER_N"); do
        take_port "NODE_API[$i]"
        take_port "NODE_MQTT[$i]"
        take_port "NODE_TLS[$i]"
    done
    node_conf 1
    "$IOTHUBD" -c node1.conf init --token-file admin.token >init.out 2>init.err || return 1
    ADMIN=$(cat admin.token)
    "$IOTHUBD" -c node1.conf ca chain >trust.pem 2>/dev/null || return 1
    awk '/BEGIN/ {n++} n == 1 {print > "issuing.pem"} n == 2 {print > "root.pem"}' trust.pem
    if [ -n "$BB_PORT" ]; then backbone_start || return 1; fi
    for i in $(seq "$CLUSTER_N"); do node_launch "$i"; done
    for i in $(seq "$CLUSTER_N"); do node_start "$i" || return 1; done
    on_node 1
}

# metric_of I NAME: a metric's value on node I (NAME may carry labels).
metric_of() {
    curl -sk "https://127.0.0.1:${NODE_API[$1]}/metrics" | awk -v n="$2" '$1 == n {print $2}'
}

# connections_at_least N: the nodes' MQTT connections (iothub_mqtt_connections, every
# listener) add up to N or more.
connections_at_least() {
    local i total=0 n
    for i in $(seq "$CLUSTER_N"); do
        [ -n "${NODE_PID[$i]:-}" ] || continue
        n=$(curl -sk "https://127.0.0.1:${NODE_API[$i]}/metrics" |
            awk '$1 ~ /^iothub_mqtt_connections\{/ {s += $2} END {print s + 0}')
        total=$((total + n))
    done
    [ "$total" -ge "$1" ]
}

