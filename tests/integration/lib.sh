# Shared helpers for integration tests: a fresh database per test script in the private
# PostgreSQL that deploy/dev.sh started, a config file, and ok/not ok reporting.
# shellcheck shell=bash
set -u
: "${IOTHUB_TEST_ROOT:?run through ./deploy/dev.sh test}"
ROOT=$IOTHUB_TEST_ROOT
BUILD=$IOTHUB_TEST_BUILD
IOTHUBD=$BUILD/iothubd
CA_TOOL=$BUILD/tests/tools/ca_tool
PGSOCK=$IOTHUB_TEST_PGSOCK
NAME=$(basename "$0" .sh)
T=$(mktemp -d "$IOTHUB_TEST_TMP/$NAME.XXXXXX")
export IOTHUB_MASTER_KEY="integration-test master passphrase"
FAILED=0

ok() { echo "ok - $*"; }
not_ok() { echo "not ok - $*"; FAILED=$((FAILED + 1)); }

# check NAME CMD...: passes when CMD exits 0.
check() {
    local name=$1; shift
    if "$@" >>"$T/check.log" 2>&1; then ok "$name"; else not_ok "$name"; echo "  command failed: $*" >&2; fi
}

# expect NAME CONDITION-RESULT: passes when the previous test expression was true.
expect() {
    local name=$1 result=$2
    if [ "$result" = 0 ]; then ok "$name"; else not_ok "$name"; fi
}

# new_db NAME: creates a database and prints its URL.
new_db() {
    local db="${NAME}_$1_$$"
    createdb -h "$PGSOCK" -U postgres "$db" || return 1
    echo "postgresql:///$db?host=$PGSOCK&user=postgres"
}

# sql URL QUERY: runs a query, unaligned tuples-only output.
sql() {
    psql "$1" -X -q -A -t -v ON_ERROR_STOP=1 -c "$2"
}

# free_port: prints a TCP port nothing listens on (loopback).
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
API_PORT=$(free_port)
MQTT_PORT=$(free_port)

# write_conf FILE URL [extra lines...]: API on 127.0.0.1:$API_PORT.
write_conf() {
    local file=$1 url=$2; shift 2
    {
        echo "db_url = $url"
        echo "hostname = localhost,127.0.0.1"
        echo "api_listen = 127.0.0.1:$API_PORT"
        echo "mqtt_mtls_listen = 127.0.0.1:$MQTT_PORT"
        for l in "$@"; do echo "$l"; done
    } >"$file"
}

# start_server CONF LOG: starts `iothubd serve` in the background, waits until /healthz
# answers; sets SERVER_PID. Returns non-zero if it did not come up within 60 s.
start_server() {
    "$IOTHUBD" -c "$1" serve >"$2" 2>&1 &
    SERVER_PID=$!
    # Up once /healthz answers and no longer says "starting" (the MQTT state restored and the
    # listeners accepting); a 503 for a database that is down still counts as up.
    # Up to 60 s: under a loaded suite unsealing the keys alone can take 15 s.
    local body
    for _ in $(seq 600); do
        body=$(curl -sk "https://127.0.0.1:$API_PORT/healthz") &&
            [[ $body != *'"starting"'* ]] && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# stop_server: SIGTERM and wait; returns the exit status.
stop_server() {
    [ -n "${SERVER_PID:-}" ] || return 0
    kill -TERM "$SERVER_PID" 2>/dev/null
    wait "$SERVER_PID"
    local rc=$?
    SERVER_PID=
    return $rc
}
trap 'stop_server >/dev/null 2>&1' EXIT

finish() { exit $((FAILED > 0)); }

# wait_for SECONDS CMD...: runs CMD every 0.1 s until it succeeds (0) or SECONDS pass (1).
wait_for() {
    local n=$(($1 * 10))
    shift
    for _ in $(seq "$n"); do "$@" && return 0; sleep 0.1; done
    return 1
}
# wait_line FILE PATTERN SECONDS: until FILE has a line matching the grep PATTERN.
wait_line() { wait_for "$3" grep -q -- "$2" "$1" 2>/dev/null; }

# ---- refusals: the reason, and a server that is still there --------------------------------
# A refusal checked only by a client's exit status also passes when the server crashed: these
# let a test assert what the client was told and that the server survived.

# server_alive: the iothubd of start_server still runs and answers /healthz with 200.
server_alive() {
    kill -0 "${SERVER_PID:-0}" 2>/dev/null &&
        [ "$(curl -sk -o /dev/null -w '%{http_code}' "https://127.0.0.1:$API_PORT/healthz")" = 200 ]
}

# tls_probe OUT PORT CAFILE [s_client options...]: an openssl s_client handshake with
# 127.0.0.1:PORT that sends nothing and gives the server 1 s to answer; OUT gets the output,
# where a refusal shows its TLS alert ("alert certificate revoked").
tls_probe() {
    local out=$1 port=$2 ca=$3
    shift 3
    sleep 1 | timeout 10 openssl s_client -connect "127.0.0.1:$port" -CAfile "$ca" "$@" >"$out" 2>&1
}

# hs_failures_reach REASON N: waits up to 10 s until iothubd's /metrics counts at least N
# failed handshakes on the mTLS listener for REASON (no_certificate, unknown_ca, expired,
# revoked, bad_certificate ...; the counters are a snapshot taken every few seconds).
hs_failures_reach() {
    local v
    for _ in $(seq 100); do
        v=$(curl -sk "https://127.0.0.1:$API_PORT/metrics" |
            sed -n "s/^iothub_tls_handshake_failures_total{listener=\"mtls\",reason=\"$1\"} //p")
        [ -n "$v" ] && [ "${v%.*}" -ge "$2" ] && return 0
        sleep 0.1
    done
    return 1
}
