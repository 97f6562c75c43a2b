#!/usr/bin/env bash
# iothub side by side with Mosquitto on this machine, in one run (docs/BENCHMARKS.md):
#   ./deploy/dev.sh bench [--devices N] [--quick] [--duration S] [--tsung SCENARIO]
# deploy/dev.sh installs what is missing (tsung, mosquitto), builds, starts a private
# PostgreSQL and calls this script with IOTHUB_BENCH_PGSOCK, IOTHUB_BENCH_BUILD and
# IOTHUB_BENCH_TMP set. This script starts iothubd (`init`, `serve`), enrolls N devices and a
# service through the REST API (iothub-enroll), starts Mosquitto on the same server
# certificate and key, trusting the same CA chain and iothub's CRL, then measures both with
# iothub-bench and prints a markdown table (metric | iothub | Mosquitto | ratio) with the
# machine and the command. Everything listens on loopback only; every process started here
# is stopped by its PID on exit. Logs and JSON results stay in .dev/bench/<time>/.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${IOTHUB_BENCH_BUILD:?run through ./deploy/dev.sh bench}
PGSOCK=${IOTHUB_BENCH_PGSOCK:?run through ./deploy/dev.sh bench}
TMP=${IOTHUB_BENCH_TMP:?run through ./deploy/dev.sh bench}
BENCH=$BUILD/tests/bench/iothub-bench
ENROLL=$BUILD/tests/bench/iothub-enroll
IDENTITY=$BUILD/tests/bench/iothub-server-identity
IOTHUBD=$BUILD/iothubd
PROBE=$ROOT/tests/bench/revoke_probe.py
COMMAND="./deploy/dev.sh bench $*"

DEVICES=10000 QUICK=0 DURATION= TSUNG=
while [ $# -gt 0 ]; do
    case $1 in
        --devices) DEVICES=${2:?--devices needs a number}; shift 2 ;;
        --quick) QUICK=1; shift ;;
        --duration) DURATION=${2:?--duration needs seconds}; shift 2 ;;
        --tsung) TSUNG=${2:?--tsung needs a scenario: connect, telemetry or reconnect}; shift 2 ;;
        -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench: unknown option $1 (--devices N, --quick, --duration S, --tsung SCENARIO)" >&2
           exit 2 ;;
    esac
done
if [ "$QUICK" = 1 ]; then
    [[ " $COMMAND " == *" --devices "* ]] || DEVICES=300
    DURATION=${DURATION:-3}
fi
DURATION=${DURATION:-10}
[[ $DEVICES =~ ^[1-9][0-9]*$ ]] && [ "$DEVICES" -ge 20 ] || { echo "bench: --devices must be a number >= 20" >&2; exit 2; }
[[ $DURATION =~ ^[1-9][0-9]*$ ]] || { echo "bench: --duration must be a positive integer" >&2; exit 2; }
case $TSUNG in
    ''|connect|telemetry|reconnect) ;;
    *) echo "bench: --tsung: unknown scenario \"$TSUNG\" (connect, telemetry, reconnect)" >&2; exit 2 ;;
esac

OUT=$ROOT/.dev/bench/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT"
log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] error: %s\n' "$*" >&2; exit 1; }

# File descriptors: N connections on each server and in the one client process.
want_fd=$((DEVICES * 2 + 4096))
ulimit -Hn "$want_fd" 2>/dev/null || true
ulimit -Sn "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -Sn)" -ge $((DEVICES + 200)) ] ||
    die "RLIMIT_NOFILE is $(ulimit -Sn), $DEVICES devices need $((DEVICES + 200)) (raise the hard limit)"

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
API_PORT=$(free_port) HUB_PORT=$(free_port) MOSQ_PORT=$(free_port)
# Source addresses: iothubd admits 32 handshakes at a time per address.
SOURCES=127.0.0.1-127.0.0.8
# Handshakes in progress at once while N devices connect: more only queue on a busy server
# (192 made the p99 of connect + handshake 6.6 s on 2 shared cores, and 5 of 10,000 failed).
RAMP=64

# ---- processes: every PID started here is stopped on exit ----------------------------------
HUB_PID= MOSQ_PID= SUB_PID=
stop_pid() { # stop_pid PID: SIGTERM, wait up to 20 s, then SIGKILL
    local pid=$1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    stop_pid "$SUB_PID"
    stop_pid "$MOSQ_PID"
    stop_pid "$HUB_PID"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

W=$TMP/work
mkdir -p "$W"
chmod 0755 "$W"
cd "$W"

# ---- iothubd -----------------------------------------------------------------------------
export IOTHUB_MASTER_KEY="bench master passphrase $$"
createdb -h "$PGSOCK" -U postgres iothub_bench
cat >iothub.conf <<CONF
db_url = postgresql:///iothub_bench?host=$PGSOCK&user=postgres
api_listen = 127.0.0.1:$API_PORT
mqtt_mtls_listen = 127.0.0.1:$HUB_PORT
hostname = localhost,127.0.0.1
log_level = warn
CONF

start_hub() {
    "$IOTHUBD" -c iothub.conf serve >>"$OUT/iothubd.log" 2>&1 &
    HUB_PID=$!
    for _ in $(seq 300); do
        curl -sk -o /dev/null "https://127.0.0.1:$API_PORT/healthz" && return 0
        kill -0 "$HUB_PID" 2>/dev/null || die "iothubd stopped at start: $(tail -n 5 "$OUT/iothubd.log")"
        sleep 0.05
    done
    die "iothubd did not answer /healthz within 15 s"
}
"$IOTHUBD" -c iothub.conf init --token-file admin.token >"$OUT/init.log" 2>&1 || die "iothubd init failed: $(tail -n 3 "$OUT/init.log")"
"$IOTHUBD" -c iothub.conf ca chain >trust.pem
start_hub
log "iothubd $("$IOTHUBD" --version 2>&1 | head -n 1) on 127.0.0.1:$HUB_PORT (API $API_PORT), pid $HUB_PID"

# ---- devices -----------------------------------------------------------------------------
t=$SECONDS
"$ENROLL" --url "https://127.0.0.1:$API_PORT" --token-file admin.token --ca trust.pem \
    -n "$DEVICES" --out certs -c 32 2>"$OUT/enroll.log" || die "enrollment failed: $(tail -n 3 "$OUT/enroll.log")"
ENROLL_S=$((SECONDS - t))
ENROLL_LINE=$(tail -n 1 "$OUT/enroll.log" | sed 's/; [^;]*devices.csv$//')
log "$ENROLL_LINE"
SVC_ID=$(openssl x509 -in certs/service.pem -noout -subject -nameopt multiline | awk '/commonName/ {print $3}')

# ---- Mosquitto: same server certificate and key, same CA chain, iothub's CRL ---------------
"$IDENTITY" iothub.conf server.pem server.key 2>"$OUT/identity.log" || die "cannot export the server identity: $(cat "$OUT/identity.log")"
fetch_crl() {
    curl -sS --cacert trust.pem -o crl.der "https://127.0.0.1:$API_PORT/v1/crl" &&
        openssl crl -inform DER -in crl.der -out crl.pem.tmp && mv crl.pem.tmp crl.pem
}
fetch_crl || die "cannot fetch GET /v1/crl"
cat >acl <<ACL
# devices: their own subtree only (iothub: devices/<id>/#)
pattern readwrite devices/%u/#
user $SVC_ID
topic read devices/+/telemetry
topic write devices/+/commands/#
ACL
# The suites iothubd offers by default (net/tls_ctx.c), in OpenSSL's names and order.
CIPHERS=ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-CHACHA20-POLY1305
cat >mosquitto.conf <<CONF
# Written by tests/bench/compare.sh: the equivalent of iothubd's mTLS listener.
per_listener_settings false
persistence false
max_connections -1
max_inflight_messages 32
max_queued_messages 1000
log_dest stderr
log_type error
log_type warning
connection_messages false
acl_file $W/acl
listener $MOSQ_PORT 127.0.0.1
cafile $W/trust.pem
certfile $W/server.pem
keyfile $W/server.key
crlfile $W/crl.pem
require_certificate true
use_identity_as_username true
tls_version tlsv1.2
ciphers $CIPHERS
CONF
[ "$(id -u)" = 0 ] && echo "user root" >>mosquitto.conf

start_mosq() {
    mosquitto -c mosquitto.conf >>"$OUT/mosquitto.log" 2>&1 &
    MOSQ_PID=$!
    for _ in $(seq 100); do
        ss -Hltn "sport = :$MOSQ_PORT" | grep -q . && return 0
        kill -0 "$MOSQ_PID" 2>/dev/null || die "mosquitto stopped at start: $(tail -n 5 "$OUT/mosquitto.log")"
        sleep 0.05
    done
    die "mosquitto did not listen within 5 s"
}
start_mosq
MOSQ_VERSION=$( (mosquitto -h 2>&1 || true) | sed -n 's/^mosquitto version \([^ ]*\).*/\1/p' | head -n 1)
log "mosquitto $MOSQ_VERSION on 127.0.0.1:$MOSQ_PORT, pid $MOSQ_PID"

if [ -n "$TSUNG" ]; then
    # tsung scenario against both (deploy/tsung/run.sh prints both summaries)
    export TSUNG_HUB_PORT=$HUB_PORT TSUNG_MOSQ_PORT=$MOSQ_PORT TSUNG_CA=$W/trust.pem
    export TSUNG_CERTS=$W/certs TSUNG_OUT=$OUT
    if [ "$QUICK" = 1 ]; then
        export TSUNG_HOLD=${TSUNG_HOLD:-3} TSUNG_COUNT=${TSUNG_COUNT:-3}
    fi
    bash "$ROOT/deploy/tsung/run.sh" "$TSUNG" "$DEVICES" | tee "$OUT/tsung-$TSUNG.md"
    log "results and logs: $OUT"
    exit 0
fi

# ---- measurements ------------------------------------------------------------------------
# bench NAME PORT ARGS...: iothub-bench --json; the JSON line to $OUT/NAME.json.
bench() {
    local name=$1 port=$2
    shift 2
    log "$name"
    "$BENCH" --host 127.0.0.1 --port "$port" --ca trust.pem --certs certs/devices.csv --json \
        --source "$SOURCES" "$@" >"$OUT/$name.out" 2>"$OUT/$name.err" || true
    tail -n 1 "$OUT/$name.out" | grep '^{' >"$OUT/$name.json" || echo '{}' >"$OUT/$name.json"
}
PUBS=$((DEVICES < 100 ? DEVICES : 100))
LAT_RATE=$([ "$QUICK" = 1 ] && echo 500 || echo 2000)
SVC=(--service-cert certs/service.pem --service-key certs/service.key)

# run_suite NAME PORT PID: every bench mode against one server. Idle first, so that the RSS
# before is that of a server that has held no MQTT connection yet (an allocator keeps what
# earlier runs freed, which would make the per-connection figure look smaller).
run_suite() {
    local s=$1 port=$2 pid=$3
    bench "$s-idle" "$port" --mode idle -n "$DEVICES" -d "$DURATION" --server-pid "$pid" \
        -c "$RAMP" --timeout 60
    bench "$s-handshake" "$port" --mode handshake -c 32 -d "$DURATION"
    bench "$s-resume" "$port" --mode resume -c 32 -d "$DURATION"
    # Latency before the floods: a server may still be draining a flood when the next run starts.
    bench "$s-qos0-lat" "$port" --mode publish "${SVC[@]}" -n "$PUBS" --qos 0 --rate "$LAT_RATE" -d "$DURATION"
    bench "$s-qos1-lat" "$port" --mode publish "${SVC[@]}" -n "$PUBS" --qos 1 --rate "$LAT_RATE" -d "$DURATION"
    bench "$s-qos0-max" "$port" --mode publish "${SVC[@]}" -n "$PUBS" --qos 0 --rate 0 -d "$DURATION"
    sleep 3
    bench "$s-qos1-max" "$port" --mode publish "${SVC[@]}" -n "$PUBS" --qos 1 --rate 0 -d "$DURATION"
    sleep 3
}
run_suite hub "$HUB_PORT" "$HUB_PID"
run_suite mosq "$MOSQ_PORT" "$MOSQ_PID"

# ---- re-admission after a restart -----------------------------------------------------------
# N devices connected; the server is stopped (SIGTERM) and started again; the devices come back.
# With `iothub-bench --mode readmit` (it keeps each device's TLS session and reconnects with
# back-off): time from the first drop to the last CONNACK. Without it: time from the stop to
# the end of `--mode idle -n N` started once the server is back (full handshakes).
restart_hub() { stop_pid "$HUB_PID"; start_hub; }
restart_mosq() { stop_pid "$MOSQ_PID"; start_mosq; }
READMIT_MODE=idle-full-handshakes
"$BENCH" --help 2>&1 | grep -q 'readmit' && READMIT_MODE=bench-readmit
readmit() { # readmit NAME PORT RESTART-FUNCTION
    local s=$1 port=$2 restart=$3 t0 t1 pid
    log "$s-readmit ($READMIT_MODE)"
    if [ "$READMIT_MODE" = bench-readmit ]; then
        "$BENCH" --host 127.0.0.1 --port "$port" --ca trust.pem --certs certs/devices.csv --json \
            --source "$SOURCES" --mode readmit -n "$DEVICES" --wait 600 -c "$RAMP" \
            -d $((DEVICES / 40 + 60)) --timeout 60 >"$OUT/$s-readmit.out" 2>"$OUT/$s-readmit.err" &
        pid=$!
        while kill -0 "$pid" 2>/dev/null && ! grep -q 'waiting for the server to drop' "$OUT/$s-readmit.err"; do
            sleep 0.2
        done
        t0=$(date +%s.%N)
        "$restart"
        t1=$(date +%s.%N)
        wait "$pid" || true
        tail -n 1 "$OUT/$s-readmit.out" | grep '^{' >"$OUT/$s-readmit.json" || echo '{}' >"$OUT/$s-readmit.json"
    else
        t0=$(date +%s.%N)
        "$restart"
        t1=$(date +%s.%N)
        pid=$([ "$s" = hub ] && echo "$HUB_PID" || echo "$MOSQ_PID")
        bench "$s-readmit" "$port" --mode idle -n "$DEVICES" -d 1 --server-pid "$pid" -c "$RAMP" \
            --timeout 60
    fi
    python3 - "$OUT/$s-readmit.json" "$t0" "$t1" "$READMIT_MODE" <<'PY'
import json, sys
p, t0, t1, mode = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
d = json.load(open(p))
d["restart_s"] = t1 - t0
if mode != "bench-readmit" and "connect_s" in d:
    d["readmit_s"] = d["restart_s"] + d["connect_s"]
    d["readmitted"] = d.get("held")
json.dump(d, open(p, "w"))
PY
}
readmit hub "$HUB_PORT" restart_hub
readmit mosq "$MOSQ_PORT" restart_mosq

# ---- revocation of a live session ------------------------------------------------------------
# The last two devices: iothub's is revoked while connected to iothubd; Mosquitto's is revoked
# through iothub's API while connected to Mosquitto, then Mosquitto's crlfile is replaced by
# the new CRL and Mosquitto gets SIGHUP (its configuration reload).
dev_id() { sed -n "s/^$1,//p" certs/ids.csv; }
P=(--ca trust.pem --api "https://127.0.0.1:$API_PORT" --token-file admin.token --watch 5)
log "hub-revoke"
python3 "$PROBE" "${P[@]}" --host 127.0.0.1 --port "$HUB_PORT" --cert "certs/dev-$DEVICES.pem" \
    --key "certs/dev-$DEVICES.key" --device-id "$(dev_id "$DEVICES")" >"$OUT/hub-revoke.json" 2>"$OUT/hub-revoke.err" || true
python3 "$PROBE" --connect-only --ca trust.pem --host 127.0.0.1 --port "$HUB_PORT" \
    --cert "certs/dev-$DEVICES.pem" --key "certs/dev-$DEVICES.key" >"$OUT/hub-revoke-new.json" 2>&1 || true
log "mosq-revoke"
M=$((DEVICES - 1))
# Run by the probe right after the API call answered: the new CRL into Mosquitto's crlfile,
# a new handshake of the revoked device, SIGHUP (Mosquitto's reload), a new handshake again.
NEWCONN=(--connect-only --ca trust.pem --host 127.0.0.1 --port "$MOSQ_PORT" --cert "certs/dev-$M.pem" --key "certs/dev-$M.key")
cat >mosq-after.sh <<AFTER
sleep 1.1
cd '$W' && curl -sS --cacert trust.pem -o crl.der https://127.0.0.1:$API_PORT/v1/crl &&
    openssl crl -inform DER -in crl.der -out crl.pem
python3 '$PROBE' ${NEWCONN[*]} >'$OUT/mosq-revoke-new-nohup.json' 2>&1
kill -HUP $MOSQ_PID
sleep 1
python3 '$PROBE' ${NEWCONN[*]} >'$OUT/mosq-revoke-new.json' 2>&1
AFTER
python3 "$PROBE" "${P[@]}" --host 127.0.0.1 --port "$MOSQ_PORT" --cert "certs/dev-$M.pem" \
    --key "certs/dev-$M.key" --device-id "$(dev_id "$M")" --after "bash $W/mosq-after.sh" --watch 8 \
    >"$OUT/mosq-revoke.json" 2>"$OUT/mosq-revoke.err" || true

# ---- the table ---------------------------------------------------------------------------
HUB_VERSION=$("$IOTHUBD" --version 2>&1 | head -n 1)
MBED=$(dpkg-query -W -f='${Version}' libmbedtls14 2>/dev/null || dpkg-query -W -f='${Version}' libmbedtls-dev 2>/dev/null || echo '?')
OSSL=$(openssl version | awk '{print $2}')
export OUT DEVICES DURATION QUICK COMMAND PUBS LAT_RATE ENROLL_LINE READMIT_MODE HUB_VERSION
export MOSQ_VERSION MBED OSSL SOURCES RAMP
python3 "$ROOT/tests/bench/table.py" | tee "$OUT/table.md"
log "results and logs: $OUT"
