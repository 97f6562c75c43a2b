#!/usr/bin/env bash
# OCSP responses per second (docs/BENCHMARKS.md#ocsp-responses): tests/bench/ocsp_bench.py
# with CLIENTS keep-alive HTTPS connections against /ocsp, in three modes (a fresh nonce per
# request: signed each time; the same request by POST and by GET: served from the signed-
# response cache). Every answer must be a successful OCSPResponse (the client counts the
# others as bad). Smoke run in the suite (2 s per mode); for the numbers:
#   IOTHUB_OCSP_BENCH_SECONDS=20 IOTHUB_OCSP_BENCH_CLIENTS=4 IOTHUB_OCSP_BENCH_OUT=/tmp/ocsp.json \
#       ./deploy/dev.sh test bench_ocsp
. "$(dirname "$0")/api_lib.sh"

SECS=${IOTHUB_OCSP_BENCH_SECONDS:-2}
CLIENTS=${IOTHUB_OCSP_BENCH_CLIENTS:-2}
OUT=${IOTHUB_OCSP_BENCH_OUT:-$T/bench.json}

api_setup bench_ocsp
expect "serve starts" $?
bearer "$ADMIN" POST /v1/products '{"name": "ocsp-bench"}'
PK=$(jf product_key)
bearer "$ADMIN" POST /v1/devices "{\"product_key\": \"$PK\", \"serial_number\": \"SN-B1\"}"
activate_as device "$(jf device_id)" "$(jf device_secret)" dev
expect "a device is activated" $?
openssl ocsp -issuer issuing.pem -cert dev.pem -no_nonce -reqout req.der >/dev/null 2>&1
expect "the request is written by openssl ocsp" $?

: >"$OUT"
for mode in nonce plain get; do
    "$PY" "$ROOT/tests/bench/ocsp_bench.py" "$BASE/ocsp" trust.pem req.der "$SECS" "$CLIENTS" \
        "$mode" >"$mode.json" 2>"$mode.err"
    cat "$mode.json" >>"$OUT"
    "$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
sys.exit(0 if d["responses"] > 0 and d["bad"] == 0 else 1)' "$mode.json" 2>/dev/null
    rc=$?
    expect "$mode: $(cat "$mode.json" 2>/dev/null || head -c 300 "$mode.err")" $rc
done
call GET /metrics
grep -q 'iothub_ocsp_cache_hits_total [1-9]' body.out
expect "the plain and GET modes were served from the cache" $?
server_alive
expect "the server still serves" $?
stop_server
expect "serve stops cleanly" $?
finish
