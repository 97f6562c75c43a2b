#!/usr/bin/env bash
# test-lane: alone
# The firmware download benchmark (docs/BENCHMARKS.md#firmware-downloads): DEVICES devices
# download one SIZE_MB image at once (tests/bench/firmware_download.sh): CERT_DEVICES of them
# activated through the API (provision.sh) download with their client certificate, the rest
# are copies of one provisioned device made in SQL (same product and secret hash: thousands
# of activations take longer than the benchmark) and download with Basic credentials. By
# default a smoke run (20 devices, 2 MB) that checks every download is complete; the
# documented numbers come from
#   IOTHUB_FW_BENCH_DEVICES=1000 IOTHUB_FW_BENCH_MB=10 IOTHUB_FW_BENCH_OUT=/tmp/fw-bench.json \
#       ./deploy/dev.sh test bench_firmware
. "$(dirname "$0")/api_lib.sh"

DEVICES=${IOTHUB_FW_BENCH_DEVICES:-20}
MB=${IOTHUB_FW_BENCH_MB:-2}
URL=$(new_db bench) || exit 1
write_conf iothub.conf "$URL" "api_max_connections = $((DEVICES + 64))" \
    "api_max_connections_per_ip = $((DEVICES + 64))" "firmware_max_downloads = $DEVICES" \
    "api_idle_timeout_s = 120" "api_header_timeout_s = 120" "log_level = warn"
"$IOTHUBD" -c iothub.conf init --token-file admin.token >init.out 2>&1 &&
    "$IOTHUBD" -c iothub.conf ca chain >trust.pem 2>/dev/null
ADMIN=$(cat admin.token)
start_server iothub.conf serve.log
expect "serve starts (firmware_max_downloads = $DEVICES)" $?

CERT_DEVICES=${IOTHUB_FW_BENCH_CERT_DEVICES:-10}
[ "$CERT_DEVICES" -le "$DEVICES" ] || CERT_DEVICES=$DEVICES
PROVISION_JOBS=4 bash "$ROOT/tests/bench/provision.sh" "$BASE" admin.token trust.pem "$CERT_DEVICES" certs \
    >provision.log 2>&1
expect "provision.sh: $CERT_DEVICES devices activated" $?
PK=$(openssl x509 -in certs/dev-1.pem -noout -subject -nameopt multiline | awk '/organizationName/ {print $3}')
tail -n +2 certs/devices.csv | tr ',' ' ' | sed 's/^/cert /' >devices.txt
bearer "$ADMIN" POST /v1/devices "{\"product_key\": \"$PK\", \"serial_number\": \"basic-model\"}"
MODEL=$(jf device_id) SECRET=$(jf device_secret)
sql "$URL" "INSERT INTO devices (product_id, serial_number, secret_hash)
            SELECT product_id, 'basic-' || i, secret_hash FROM devices, generate_series(2, $((DEVICES - CERT_DEVICES))) i
            WHERE id = '$MODEL'" >/dev/null
sql "$URL" "SELECT 'basic ' || id || ' $SECRET' FROM devices WHERE serial_number LIKE 'basic-%'" |
    head -n $((DEVICES - CERT_DEVICES)) >>devices.txt
[ "$(wc -l <devices.txt)" = "$DEVICES" ]
expect "$DEVICES devices: $CERT_DEVICES with certificates, the others with Basic credentials" $?

openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout signer.key \
    -subj "/CN=bench signer" -days 2 -addext "basicConstraints=critical,CA:FALSE" \
    -addext "keyUsage=digitalSignature" -out signer.pem 2>/dev/null
"$PY" -c 'import json; print(json.dumps({"name": "bench", "certificate": open("signer.pem").read()}))' >signer.json
bearer "$ADMIN" POST /v1/firmware-signers @signer.json
SIGNER=$(jf id)
head -c $((MB * 1048576)) /dev/urandom >image.bin
openssl dgst -sha256 -sign signer.key -out image.sig image.bin
"$BUILD/iothubctl" --url "$BASE" --cacert trust.pem --token-file admin.token --json \
    firmware upload image.bin --product "$PK" --firmware-version 1.0.0 --signature image.sig \
    --signer "$SIGNER" >upload.json 2>upload.err
FW=$("$PY" -c 'import json; print(json.load(open("upload.json"))["id"])' 2>/dev/null)
[ -n "$FW" ]
rc=$?
[ $rc = 0 ] || cat upload.err upload.json >&2
expect "a $MB MiB image uploaded with iothubctl" $rc

bash "$ROOT/tests/bench/firmware_download.sh" "$BASE" trust.pem devices.txt "$FW" "$DEVICES" \
    "$SERVER_PID" >bench.json 2>bench.err
call GET /metrics
grep '^iothub_firmware' body.out >metrics.txt
cat bench.json bench.err metrics.txt
[ -z "${IOTHUB_FW_BENCH_OUT:-}" ] || cat bench.json bench.err metrics.txt serve.log >"$IOTHUB_FW_BENCH_OUT"
DEV1=$(openssl x509 -in certs/dev-1.pem -noout -subject -nameopt multiline | awk '/commonName/ {print $3}')
call GET "/v1/devices/$DEV1/firmware/$FW" --cert certs/dev-1.pem --key certs/dev-1.key -o /dev/null
echo "one download of dev-1 ($DEV1, $FW): $STATUS $(head -c 200 curl.err)"
"$PY" - bench.json "$DEVICES" $((MB * 1048576)) <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
n, size = int(sys.argv[2]), int(sys.argv[3])
sys.exit(0 if d["status"] == {"200": n} and d["bytes"] == n * size else 1)
PY
expect "$DEVICES concurrent downloads all complete (200, $DEVICES x $MB MiB)" $?
grep -qx "iothub_firmware_cache_reads_total{result=\"miss\"} $((MB * 4))" metrics.txt
expect "each of the $((MB * 4)) chunks was read from the database once (the chunk cache served the rest)" $?
server_alive
expect "the server is alive" $?
stop_server
expect "serve stops cleanly" $?
finish
