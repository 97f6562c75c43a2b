#!/usr/bin/env bash
# Bulk revocation benchmark (issue 14, docs/BENCHMARKS.md "Bulk revocation"): N devices of one
# product, each with a valid certificate (seeded with generate_series), plus 5 activated
# devices holding live MQTT sessions; one POST /v1/revocations over the product; the wall
# time from the POST to state done, GET /healthz latency on a kept-alive connection before
# and during the job, the sessions closed. N = IOTHUB_BULK_BENCH_DEVICES (default 3,000: a
# smoke run in the ordinary suite); IOTHUB_BULK_BENCH_OUT gets the JSON line.
. "$(dirname "$0")/api_lib.sh"
N=${IOTHUB_BULK_BENCH_DEVICES:-3000}
[[ $N =~ ^[1-9][0-9]*$ ]] || { not_ok "IOTHUB_BULK_BENCH_DEVICES must be a number"; finish; }

api_setup benchrev
expect "serve starts" $?
bearer "$ADMIN" POST /v1/products '{"name": "bench batch"}'
PK=$(jf product_key)
LIVE=5
for i in $(seq $LIVE); do
    bearer "$ADMIN" POST /v1/devices "{\"product_key\": \"$PK\", \"serial_number\": \"live-$i\"}"
    printf -v "ID$i" '%s' "$(jf device_id)"
    activate_as device "$(jf device_id)" "$(jf device_secret)" "live$i" || break
done
expect "$LIVE devices activated" $?
t=$(date +%s.%N)
sql "$URL" "
INSERT INTO devices (product_id, serial_number, secret_hash, status)
    SELECT p.id, 'bench-' || i, 'x', 'active' FROM products p, generate_series(1, $N) i
    WHERE p.product_key = '$PK';
INSERT INTO certificates (serial, ca_id, kind, device_id, subject, der, not_before, not_after)
    SELECT upper(md5(d.id::text)), (SELECT id FROM cas WHERE role = 'issuing' AND active),
           'device', d.id, 'CN=' || d.id, '\x00', now(), now() + interval '300 days'
    FROM devices d WHERE d.serial_number LIKE 'bench-%';
ANALYZE;" >seed.out 2>&1
rc=$?
expect "$N devices and certificates seeded in $(echo "$(date +%s.%N) - $t" | bc | cut -c1-5) s" $rc

PIDS=()
for i in $(seq $LIVE); do
    timeout 600 mosquitto_sub "${MQ[@]}" --cert "live$i.pem" --key "live$i.key" \
        -t "devices/$(eval echo "\$ID$i")/commands/#" >"sub$i.out" 2>&1 &
    PIDS+=($!)
done
sleep 2
alive() { local n=0; for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && n=$((n + 1)); done; echo $n; }
[ "$(alive)" = $LIVE ]
expect "$LIVE live MQTT sessions" $?
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; stop_server >/dev/null 2>&1' EXIT

PROBE=$ROOT/tests/bench/healthz_probe.py
"$PY" "$PROBE" "$BASE" trust.pem stop-idle 3 >idle.json
: >running
"$PY" "$PROBE" "$BASE" trust.pem stop-busy >busy.json &
PROBE_PID=$!
t0=$(date +%s.%N)
bearer "$ADMIN" POST /v1/revocations "{\"product_key\": \"$PK\", \"reason\": \"keyCompromise\"}"
JOB=$(jf id)
closed_at=
while :; do
    bearer "$ADMIN" GET "/v1/revocations/$JOB"
    [ -z "$closed_at" ] && [ "$(alive)" = 0 ] && closed_at=$(date +%s.%N)
    case $(jf state) in done | failed) break ;; esac
    sleep 0.2
done
t1=$(date +%s.%N)
touch stop-busy
wait $PROBE_PID
for _ in $(seq 50); do [ "$(alive)" = 0 ] && break; sleep 0.1; done
[ -z "$closed_at" ] && [ "$(alive)" = 0 ] && closed_at=$(date +%s.%N)
STATE=$(jf state) TOTAL=$(jf total) DONE=$(jf done)
SECS=$(echo "$t1 - $t0" | bc)
RESULT=$(printf '{"devices": %s, "total": %s, "done": %s, "state": "%s", "seconds": %.2f, "per_second": %.0f, "sessions_closed_after_s": %s, "healthz_idle": %s, "healthz_during": %s, "load": "%s"}' \
    "$N" "$TOTAL" "$DONE" "$STATE" "$SECS" "$(echo "$DONE / $SECS" | bc -l)" \
    "$([ -n "$closed_at" ] && echo "$closed_at - $t0" | bc | cut -c1-5 || echo null)" \
    "$(cat idle.json)" "$(cat busy.json)" "$(cut -d' ' -f1-3 /proc/loadavg)")
echo "# $RESULT"
[ -n "${IOTHUB_BULK_BENCH_OUT:-}" ] && echo "$RESULT" >"$IOTHUB_BULK_BENCH_OUT"
[ "$STATE" = done ] && [ "$DONE" = $((N + LIVE)) ] &&
    [ "$(count "certificates WHERE status = 'valid' AND kind = 'device'")" = 0 ]
expect "the job revoked all $((N + LIVE)) certificates in $SECS s" $?
[ "$(alive)" = 0 ]
expect "every live session of the product was closed" $?
server_alive
expect "the server is still up" $?
stop_server
expect "serve stops cleanly" $?
finish
