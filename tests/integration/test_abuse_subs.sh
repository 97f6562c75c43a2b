#!/usr/bin/env bash
# Subscriptions in constant time (issue 19, item 2 and the third row of its table): with one
# device certificate, 24,000 distinct filters in blocks of 8,000 (SUBSCRIBE packets of 50,
# 1,000 retained messages stored first) while a bystander device publishes QoS 1 every 50
# ms (abuse_subs.py). Each block must take about as long as the first (adding a filter
# costs the same with 0 or 16,000 in the session; before the filter set the third block
# took 8x the first), and the bystander's PUBACK p50 and p99 stay under generous bounds for
# a loaded CI host (a p99 over it is measured once more). Then abuse_subs_check.py: duplicates, unsubscribe / subscribe again,
# retained delivery on exact and wildcard filters, a persistent session's filters.
# test-lane: alone (it measures a bystander's latency; deploy/dev.sh runs nothing beside it)
. "$(dirname "$0")/api_lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
# The bystander's bound is generous for a loaded CI host (measured there: p99 6-30 ms with
# the burst, 1-3 ms without); an ASan + UBSan build runs the broker 2-3x slower.
BYSTANDER_P99_MS=${BYSTANDER_P99_MS:-50} BYSTANDER_P50_MS=${BYSTANDER_P50_MS:-20}
if [ "${IOTHUB_SANITIZERS:-0}" = 1 ]; then
    BYSTANDER_P99_MS=$((BYSTANDER_P99_MS * 3)) BYSTANDER_P50_MS=$((BYSTANDER_P50_MS * 3))
fi
# ABUSE_SUBS_IOTHUBD: another iothubd binary (the "before" figures of docs/BENCHMARKS.md);
# ABUSE_SUBS_ARGS: more options of abuse_subs.py (--resend 4: retained copies again and again).
IOTHUBD=${ABUSE_SUBS_IOTHUBD:-$IOTHUBD}

# The quotas of issue 19 (mqtt_max_subscriptions, 1,000 by default, and retained messages
# per principal) refuse such a burst by default: here they are raised, as for a gateway with
# many filters, so that the structure itself is measured. Set only when this tree has them.
QUOTAS=()
if grep -q '`mqtt_max_subscriptions`' "$ROOT/docs/configuration.md"; then
    QUOTAS=("mqtt_max_subscriptions = 100000" "mqtt_max_retained_per_principal = 10000")
fi
URL=$(new_db abuse_subs) &&
    write_conf iothub.conf "$URL" "${QUOTAS[@]}" &&
    "$IOTHUBD" -c iothub.conf init --token-file admin.token >init.out 2>init.err &&
    ADMIN=$(cat admin.token) &&
    "$IOTHUBD" -c iothub.conf ca chain >trust.pem 2>/dev/null &&
    start_server iothub.conf serve.log
expect "iothubd init, then iothubd serve answers /healthz (quotas raised: ${QUOTAS[*]:-none here})" $?

bearer "$ADMIN" POST /v1/products '{"name":"subscription burst"}'
PK=$(jf product_key)
declare -A DEV
ok_devices=0
for d in attacker bystander checker; do
    bearer "$ADMIN" POST /v1/devices "{\"product_key\":\"$PK\",\"serial_number\":\"SN-$d\"}"
    id=$(jf device_id) secret=$(jf device_secret)
    activate_as device "$id" "$secret" "$d" || ok_devices=1
    DEV[$d]=$id
done
[ $ok_devices = 0 ]
expect "three devices provisioned and activated (attacker, bystander, checker)" $?

cat >env.json <<EOF
{"ca": "$T/trust.pem", "port": $MQTT_PORT,
 "attacker": {"id": "${DEV[attacker]}", "cert": "$T/attacker.pem", "key": "$T/attacker.key"},
 "bystander": {"id": "${DEV[bystander]}", "cert": "$T/bystander.pem", "key": "$T/bystander.key"},
 "checker": {"id": "${DEV[checker]}", "cert": "$T/checker.pem", "key": "$T/checker.key"}}
EOF

SECONDS=0
# shellcheck disable=SC2086
timeout 150 "$PY" -u "$HERE/abuse_subs.py" env.json --out burst.json ${ABUSE_SUBS_ARGS:-} | tee burst.out
expect "the burst ran: 24,000 filters in 3 blocks of 8,000 while the bystander published" \
    "${PIPESTATUS[0]}"
# shellcheck disable=SC2046
read -r B1 B2 B3 P50 P99 MAX N REFUSED < <("$PY" -c '
import json; r = json.load(open("burst.json")); b = r["blocks_s"]; d = r["during"]
print(*b, d["p50_ms"], d["p99_ms"], d["max_ms"], d["n"], r["refused"])' 2>/dev/null)
echo "# blocks ${B1:-?} ${B2:-?} ${B3:-?} s; bystander p50 ${P50:-?} p99 ${P99:-?} max ${MAX:-?} ms (n=${N:-?})"
[ "${REFUSED:-1}" = 0 ]
expect "all 24,000 filters granted" $?
"$PY" -c "import sys; sys.exit(not ($B3 < 2 * $B1 + 0.5 and $B2 < 2 * $B1 + 0.5))" 2>/dev/null
expect "each block of 8,000 takes about as long as the first (${B1}, ${B2}, ${B3} s: < 2x + 0.5 s)" $?
"$PY" -c "import sys; sys.exit(not ($P50 < $BYSTANDER_P50_MS and $N >= 20))" 2>/dev/null
expect "bystander PUBACK p50 ${P50} ms < ${BYSTANDER_P50_MS} ms during the burst (before the filter set: ~200 ms)" $?
# p99 of ~90 samples is their worst one: a single stall of this shared host (seen before the
# burst too) decides it. So a second run (the retained messages stored already) may confirm.
p99_ok() { "$PY" -c "import sys; sys.exit(not ($1 < $BYSTANDER_P99_MS))" 2>/dev/null; }
P99_RUNS=$P99
if ! p99_ok "$P99"; then
    # shellcheck disable=SC2086
    timeout 150 "$PY" -u "$HERE/abuse_subs.py" env.json --retained 0 --out burst2.json \
        ${ABUSE_SUBS_ARGS:-} | tee burst2.out
    P99=$("$PY" -c 'import json; print(json.load(open("burst2.json"))["during"]["p99_ms"])' \
        2>/dev/null)
    P99_RUNS="$P99_RUNS, then ${P99:-?}"
fi
p99_ok "${P99:-1e9}"
expect "bystander PUBACK p99 < ${BYSTANDER_P99_MS} ms during the burst (${P99_RUNS} ms; max ${MAX}, n=${N})" $?

echo "# burst: ${SECONDS} s"
SECONDS=0
timeout 120 "$PY" -u "$HERE/abuse_subs_check.py" env.json | tee check.out
echo "# checks: ${SECONDS} s" | tee -a check.out
rc=${PIPESTATUS[0]}
if [ "$rc" != 0 ]; then
    grep -q '^not ok ' check.out || not_ok "abuse_subs_check.py exited with status $rc"
    FAILED=$((FAILED + $(grep -c '^not ok ' check.out)))
fi

# ABUSE_SUBS_OUT=DIR keeps the figures (the test's directory is removed).
[ -n "${ABUSE_SUBS_OUT:-}" ] && cp burst*.out burst*.json check.out "$ABUSE_SUBS_OUT/"

server_alive
expect "iothubd still serves after the burst" $?
stop_server
expect "iothubd stops cleanly" $?
finish
