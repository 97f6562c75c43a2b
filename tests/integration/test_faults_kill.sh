#!/usr/bin/env bash
# kill -9 of iothubd during a burst of activations and revocations (issue 7), then a
# restart: every 2xx answered before the kill is in the database and in the CRL served after
# the restart (with its reason), nothing is left locked (advisory locks, row locks, idle
# transactions), `migrate` and `serve` start cleanly, and devices connect again while the
# revoked certificates stay refused.
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/api_lib.sh"

api_setup faults_kill
expect "iothubd init, then iothubd serve answers /healthz" $?
bearer "$ADMIN" POST /v1/products '{"name":"Kill"}'
PK=$(jf product_key)
bearer "$ADMIN" POST /v1/tokens '{"name":"kill-operator","role":"operator"}'
OPERATOR=$(jf token)
bearer "$ADMIN" POST /v1/devices "{\"product_key\":\"$PK\",\"serial_number\":\"STEADY\"}"
STEADY=$(jf device_id) STEADY_SECRET=$(jf device_secret)
activate_as device "$STEADY" "$STEADY_SECRET" steady && make_csr ec-p256 shared
expect "fixture: a product, an operator token, an activated device outside the burst" $?

"$PY" - <<JSON >env.json
import json
print(json.dumps({
    "ca": "$T/trust.pem", "admin": "$ADMIN", "operator": "$OPERATOR", "db_url": "$URL",
    "product_key": "$PK", "csr": "$T/shared.csr", "key": "$T/shared.key",
    "a": {"api": $API_PORT, "mqtt": $MQTT_PORT}, "server_pid": $SERVER_PID,
    "activators": 4, "targets": 48, "kill_after": 2.5}))
JSON
# run_py NAME ARGS...: test_faults.py with its ok/not ok lines passed through.
run_py() {
    timeout 300 python3 -u "$HERE/test_faults.py" "$@" | tee -a py.out
    local rc=${PIPESTATUS[0]}
    if [ "$rc" != 0 ] && ! grep -q '^not ok ' py.out; then
        not_ok "test_faults.py $1 exited with status $rc"
    fi
    [ "$rc" = 0 ] || FAILED=$((FAILED + 1))
}

# ---- the burst and the kill -----------------------------------------------------------------
run_py burst env.json results.json
wait "$SERVER_PID"
rc=$?
SERVER_PID=
[ "$rc" = 137 ]
expect "iothubd died of SIGKILL (exit status $rc)" $?

# The killed process's database sessions end (their transactions roll back, their locks go).
# ours: the sessions other than this query's, on this script's database.
ours() {
    sql "$URL" "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
                  AND pid <> pg_backend_pid()"
}
for _ in $(seq 50); do [ "$(ours)" = 0 ] && break; sleep 0.1; done
[ "$(ours)" = 0 ]
expect "every database session of the killed iothubd has ended" $?
[ "$(sql "$URL" "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database
                 WHERE d.datname = current_database() AND l.locktype = 'advisory'")" = 0 ]
expect "no advisory lock is left behind" $?
timeout 30 "$IOTHUBD" -c iothub.conf migrate >migrate.out 2>&1
expect "iothubd migrate runs at once after the kill (migration lock free, schema complete)" $?

start_server iothub.conf serve2.log
expect "iothubd serve restarts cleanly" $?
! grep -qi 'error\|fatal' serve2.log
expect "the restarted iothubd logs no error" $?

# ---- nothing answered 2xx is lost -------------------------------------------------------------
run_py verify env.json results.json
run_py refused env.json results.json "every certificate revoked in the burst is refused at the MQTT handshake after the restart"
run_py connect env.json "$STEADY" steady.pem steady.key "a device outside the burst connects and publishes after the restart"

# A device of the burst activates again: the answer supersedes exactly the certificate the
# database holds as valid for it, and the new certificate connects.
read -r B1 B1_SECRET < <("$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))["burst_devices"][0]
print(d["id"], d["secret"])' results.json)
BEFORE=$(sql "$URL" "SELECT coalesce(string_agg(serial, ',' ORDER BY serial), '') FROM certificates
                     WHERE device_id = '$B1' AND status = 'valid'")
activate_as device "$B1" "$B1_SECRET" again &&
    [ "$("$PY" -c 'import json, sys; print(",".join(sorted(json.load(open(sys.argv[1]))["superseded"])))' body.out)" = "$BEFORE" ]
expect "a burst device activates again after the restart; it supersedes the certificate the database lists ($BEFORE)" $?
run_py connect env.json "$B1" again.pem again.key "its new certificate connects and publishes"

# The CA row and the certificates are not left locked: a revocation answers at once.
UNREVOKED=$(sql "$URL" "SELECT serial FROM certificates WHERE kind = 'device' AND status = 'valid'
                        AND device_id NOT IN ('$STEADY', '$B1') ORDER BY serial LIMIT 1")
start=$(date +%s%N)
bearer "$OPERATOR" POST "/v1/certificates/$UNREVOKED/revoke" '{"reason":"keyCompromise"}'
ms=$((($(date +%s%N) - start) / 1000000))
[ -n "$UNREVOKED" ] && [ "$STATUS" = 200 ] && [ "$ms" -lt 3000 ] &&
    fetch_crl after "$UNREVOKED" && [ "$(crl_reason after.pem "$UNREVOKED")" = "Key Compromise" ]
expect "a revocation after the restart answers 200 in $ms ms and its CRL lists it" $?

stop_server
expect "iothubd stops cleanly" $?
finish
