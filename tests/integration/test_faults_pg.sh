#!/usr/bin/env bash
# PostgreSQL lost under a running iothubd (issue 7): node A reaches PostgreSQL through a
# loopback TCP proxy (test_faults.py proxy) that can be cut (every connection closed, new
# ones refused) while node B, a second iothubd on other ports, keeps a direct connection.
# test_faults.py pg then checks, for a proxy cut (A only) and for pg_ctl stop/start (both):
# MQTT keeps flowing, REST answers 503 with a JSON error within 6 s, activations in flight
# leave no certificate the database does not list, everything recovers without a restart,
# presence writes resume, and a revocation A's feed missed is enforced once A is back.
# test-lane: alone (it stops and starts the shared PostgreSQL; deploy/dev.sh runs nothing beside it)
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/api_lib.sh"

# ---- the private PostgreSQL of deploy/dev.sh, stopped and started as it does ------------
PGDIR=$(dirname "$PGSOCK")
pg_owner() { (cd / && if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi); }
pg_running() { pg_owner "$IOTHUB_TEST_PGBIN/pg_ctl" -D "$PGDIR/data" status >/dev/null 2>&1; }
cat >pg_stop.sh <<EOF
cd / && $( [ "$(id -u)" = 0 ] && echo "runuser -u postgres --") "$IOTHUB_TEST_PGBIN/pg_ctl" -D "$PGDIR/data" -m fast -w stop
EOF
cat >pg_start.sh <<EOF
cd / && $( [ "$(id -u)" = 0 ] && echo "runuser -u postgres --") "$IOTHUB_TEST_PGBIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/postgres.log" -w -t 60 \
    -o "-c listen_addresses='' -c unix_socket_directories='$PGDIR/sock' -c unix_socket_permissions=0700 -c fsync=off" start
EOF
B_PID= PROXY_PID=
cleanup() {
    stop_server >/dev/null 2>&1
    [ -n "$B_PID" ] && kill "$B_PID" 2>/dev/null
    [ -n "$PROXY_PID" ] && kill "$PROXY_PID" 2>/dev/null
    # Later test scripts need PostgreSQL: whatever happens, leave it running.
    pg_running || bash pg_start.sh >/dev/null 2>&1
}
trap cleanup EXIT

# ---- node A behind the proxy, node B direct -------------------------------------------------
URL=$(new_db faults) || exit 1
DBNAME="${NAME}_faults_$$"
PROXY_PORT=$(free_port)
python3 -u "$HERE/test_faults.py" proxy "$PROXY_PORT" "$PGSOCK/.s.PGSQL.5432" >proxy.out 2>proxy.err &
PROXY_PID=$!
for _ in $(seq 50); do grep -q ready proxy.out && break; sleep 0.1; done
PROXY_URL="postgresql://postgres@127.0.0.1:$PROXY_PORT/$DBNAME?sslmode=disable"
psql "$PROXY_URL" -X -q -A -t -c 'SELECT 1' >/dev/null 2>&1
expect "the TCP proxy to PostgreSQL's Unix socket forwards connections" $?

write_conf init.conf "$URL"
"$IOTHUBD" -c init.conf init --token-file admin.token >init.out 2>init.err &&
    "$IOTHUBD" -c init.conf ca chain >trust.pem 2>/dev/null
expect "iothubd init" $?
ADMIN=$(cat admin.token)
write_conf a.conf "$PROXY_URL"
start_server a.conf a.log
expect "node A (iothubd serve, database through the proxy) answers /healthz" $?
B_API=$(free_port) B_MQTT=$(free_port)
{
    echo "db_url = $URL"
    echo "hostname = localhost,127.0.0.1"
    echo "api_listen = 127.0.0.1:$B_API"
    echo "mqtt_mtls_listen = 127.0.0.1:$B_MQTT"
} >b.conf
"$IOTHUBD" -c b.conf serve >b.log 2>&1 &
B_PID=$!
for _ in $(seq 150); do curl -sk -o /dev/null "https://127.0.0.1:$B_API/healthz" && break; sleep 0.1; done
curl -sS --cacert trust.pem -o /dev/null "https://127.0.0.1:$B_API/healthz"
expect "node B (another iothubd on the same database, direct) answers /healthz" $?

# ---- fixture: a product, tokens, a service, devices -----------------------------------------
bearer "$ADMIN" POST /v1/products '{"name":"Faults"}'
PK=$(jf product_key)
bearer "$ADMIN" POST /v1/tokens '{"name":"faults-operator","role":"operator"}'
OPERATOR=$(jf token)
bearer "$ADMIN" POST /v1/services \
    '{"name":"backend","publish":["devices/+/commands/#"],"subscribe":["devices/#"]}'
SVC_ID=$(jf service_id) SVC_SECRET=$(jf service_secret)
activate_as service "$SVC_ID" "$SVC_SECRET" svc
expect "fixture: a product, an operator token, an activated service" $?

DEVICES="{}"
# device NAME [activate]: provisions NAME (and a CSR NAME.csr); activates it when asked.
device() {
    local id secret serial=""
    bearer "$ADMIN" POST /v1/devices "{\"product_key\":\"$PK\",\"serial_number\":\"SN-$1\"}"
    [ "$STATUS" = 201 ] || return 1
    id=$(jf device_id) secret=$(jf device_secret)
    if [ "${2:-}" = activate ]; then
        activate_as device "$id" "$secret" "$1" || return 1
        serial=$(jf serial)
    else
        make_csr ec-p256 "$1" || return 1
    fi
    DEVICES=$("$PY" -c '
import json, sys
d = json.loads(sys.argv[1])
n, i, s, t, ser = sys.argv[2:7]
d[n] = {"id": i, "secret": s, "cert": t + "/" + n + ".pem", "key": t + "/" + n + ".key",
        "csr": t + "/" + n + ".csr", "serial": ser}
print(json.dumps(d))' "$DEVICES" "$1" "$id" "$secret" "$T" "$serial")
}
rc=0
for n in d1 v1 v2 p1 p2 p3; do device "$n" activate || rc=1; done
for n in spare w1 w2 w3 w4 w5 w6; do device "$n" || rc=1; done
expect "fixture: 6 activated devices, 7 provisioned ones with CSRs" $rc

"$PY" - <<EOF >env.json
import json
print(json.dumps({
    "ca": "$T/trust.pem", "admin": "$ADMIN", "operator": "$OPERATOR", "db_url": "$URL",
    "a": {"api": $API_PORT, "mqtt": $MQTT_PORT}, "b": {"api": $B_API, "mqtt": $B_MQTT},
    "service": {"id": "$SVC_ID", "cert": "$T/svc.pem", "key": "$T/svc.key"},
    "devices": json.loads('$DEVICES'), "proxy_pid": $PROXY_PID,
    "pg_ctl": {"stop": ["bash", "$T/pg_stop.sh"], "start": ["bash", "$T/pg_start.sh"]}}))
EOF

# ---- the scenario ---------------------------------------------------------------------------
timeout 400 python3 -u "$HERE/test_faults.py" pg env.json | tee pg.out
rc=${PIPESTATUS[0]}
if [ "$rc" != 0 ]; then
    FAILED=$((FAILED + 1))
    grep -q '^not ok ' pg.out || not_ok "test_faults.py pg exited with status $rc"
fi
pg_running
expect "PostgreSQL is running again" $?

kill -0 "$SERVER_PID" && kill -0 "$B_PID"
expect "neither node exited during the outages" $?
! grep -q 'AddressSanitizer\|runtime error' a.log b.log
expect "no sanitizer report in the nodes' logs" $?
stop_server
expect "node A stops cleanly" $?
kill "$B_PID" && wait "$B_PID"
expect "node B stops cleanly" $?
B_PID=
finish
