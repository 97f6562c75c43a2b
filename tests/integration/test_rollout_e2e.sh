#!/usr/bin/env bash
# test-lane: alone
# Issue 16's "done when", end to end with real clients: a maker signs images offline
# (openssl dgst -sha256 -sign) and uploads them (a tampered image, a wrong signer and a
# downgrade are refused at upload); 50 running iothub-device agents (enrolled with their own
# keys, mutual TLS) get a rollout in two waves and install it through their hooks; one agent's
# health check fails after its install (it rolls back to its previous slot and reports
# rolled_back), one agent's install hook fails (failed), one agent's download is cut midway by
# a proxy (it resumes with Range and installs); crafted notices with a wrong SHA-256, an
# untrusted signer and a downgrade, published by a service, are refused on the device; a second
# rollout halts by itself when its failure threshold is crossed. Runs alone: 50 agents and
# their downloads load the machine.
. "$(dirname "$0")/api_lib.sh"
AGENT=$BUILD/iothub-device
N=50
PROXY_PORT=$(free_port)
AGENT_PIDS=()
PROXY_PID=
cleanup() {
    for p in "${AGENT_PIDS[@]}" $PROXY_PID; do kill "$p" 2>/dev/null; done
    kill_sub >/dev/null 2>&1
    stop_server >/dev/null 2>&1
}
trap cleanup EXIT

URL=$(new_db e2e) || exit 1
write_conf iothub.conf "$URL" "api_max_connections_per_ip = 1000" "mqtt_max_handshakes_per_ip = 1000"
"$IOTHUBD" -c iothub.conf init --token-file admin.token >init.out 2>init.err
ADMIN=$(cat admin.token)
"$IOTHUBD" -c iothub.conf ca chain >trust.pem 2>/dev/null
start_server iothub.conf serve.log
expect "iothubd init and serve" $?

# ---- the maker: a signer, images signed offline ------------------------------------------------
signer() {
    openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1.key" \
        -subj "/CN=$1 firmware signer" -days 30 -addext basicConstraints=critical,CA:FALSE \
        -addext keyUsage=critical,digitalSignature -out "$1.pem" 2>/dev/null &&
        openssl x509 -in "$1.pem" -outform DER | sha256sum | cut -c1-64 >"$1.fp"
}
signer maker && signer rogue
"$PY" -c 'import json, sys; print(json.dumps({"name": "maker", "certificate": open("maker.pem").read()}))' >maker.json
bearer "$ADMIN" POST /v1/firmware-signers @maker.json
expect_status "the maker's signer is registered" 201
SIGNER=$(jf id)
bearer "$ADMIN" POST /v1/products '{"name": "Field sensor"}'
PK=$(jf product_key)
upload() { # upload FILE SIG VERSION
    call POST "/v1/firmware?product_key=$PK&version=$3&signer=$SIGNER&hardware=rev-b" \
        -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/octet-stream' \
        -H "X-Firmware-Signature: $(base64 -w0 "$2")" --data-binary "@$1"
}
head -c 1200000 /dev/urandom >fw-1.1.0.bin
head -c 300000 /dev/urandom >fw-2.0.0.bin
head -c 300000 /dev/urandom >fw-1.0.5.bin
for v in 1.1.0 2.0.0 1.0.5; do openssl dgst -sha256 -sign maker.key -out "fw-$v.sig" "fw-$v.bin"; done
openssl dgst -sha256 -sign rogue.key -out rogue.sig fw-2.0.0.bin
cp fw-2.0.0.bin tampered.bin && printf 'X' | dd of=tampered.bin bs=1 seek=1000 conv=notrunc 2>/dev/null
upload fw-1.1.0.bin fw-1.1.0.sig 1.1.0
expect_status "a signed image (1.1.0) is uploaded" 201
FW1=$(jf id)
upload tampered.bin fw-2.0.0.sig 2.0.0
expect_error "at upload: a tampered image is refused" 422 signature_invalid
upload fw-2.0.0.bin rogue.sig 2.0.0
expect_error "at upload: an image signed by another key than the signer's is refused" 422 signature_invalid
upload fw-1.0.5.bin fw-1.0.5.sig 1.0.5
expect_error "at upload: a downgrade is refused" 422 version_not_newer
upload fw-2.0.0.bin fw-2.0.0.sig 2.0.0
expect_status "a second signed image (2.0.0) is uploaded" 201
FW2=$(jf id)

# ---- 50 agents ----------------------------------------------------------------------------------
cat >install.sh <<EOF
#!/bin/sh
[ -e $T/flags/install-fail-\$IOTHUB_DEVICE_ID ] && { echo "flash write error at block 7"; exit 4; }
cmp -s "\$1" $T/fw-\$2.bin || { echo "not the uploaded image"; exit 5; }
echo "\$IOTHUB_DEVICE_ID \$2 \$3" >>$T/installs.log
EOF
cat >health.sh <<EOF
#!/bin/sh
[ -e $T/flags/health-fail-\$IOTHUB_DEVICE_ID ] && { echo "sensor bus does not answer"; exit 1; }
exit 0
EOF
printf '#!/bin/sh\nexit 0\n' >rollback.sh
chmod +x install.sh health.sh rollback.sh
mkdir flags
cat >agent.conf <<EOF
hardware = rev-b
firmware_version = 1.0.0
firmware_install_hook = $T/install.sh
firmware_health_hook = $T/health.sh
firmware_rollback_hook = $T/rollback.sh
firmware_download_attempts = 5
EOF
provision_one() { # provision_one I: prints "id secret"
    curl -sS --cacert trust.pem -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
        --data-binary "{\"product_key\": \"$PK\", \"serial_number\": \"E2E-$1\"}" "$BASE/v1/devices" |
        "$PY" -c 'import json, sys; d = json.load(sys.stdin); print(d["device_id"], d["device_secret"])'
}
export -f provision_one
export ADMIN PK BASE PY
seq 0 $((N - 1)) | xargs -P 8 -I{} bash -c 'provision_one {}' >devices.txt 2>provision.err
sort devices.txt >devices.sorted
mapfile -t DEV < <(cut -d' ' -f1 devices.sorted)
[ "${#DEV[@]}" = $N ]
expect "$N devices provisioned" $?
enroll_one() { # enroll_one ID SECRET
    mkdir -p "a-$1" && printf '%s\n' "$2" >"a-$1.secret" &&
        timeout 60 "$AGENT" enroll --url "$BASE" --cacert trust.pem --mqtt "127.0.0.1:$MQTT_PORT" \
            --device-id "$1" --secret-file "a-$1.secret" --dir "a-$1" --config agent.conf \
            2>"a-$1.enroll.log"
}
export -f enroll_one
export AGENT BASE MQTT_PORT
xargs -P 8 -L 1 bash -c 'enroll_one "$0" "$1"' <devices.sorted
[ "$(sql "$URL" "SELECT count(*) FROM devices WHERE status = 'active'")" = $N ]
expect "$N agents enrolled (own EC keys, certificates by activation)" $?

# DEV[3]: health check fails after the install (rolls back); DEV[20]: install hook fails;
# DEV[10]: its downloads go through a proxy that cuts the first big transfer midway.
touch "flags/health-fail-${DEV[3]}" "flags/install-fail-${DEV[20]}"
"$PY" "$(dirname "$0")/cut_proxy.py" "$PROXY_PORT" 400000 proxy.log 2>proxy.err &
PROXY_PID=$!
start_agent() { # start_agent INDEX
    local d=${DEV[$1]} env=()
    [ "$1" = 10 ] && env=(env "https_proxy=http://127.0.0.1:$PROXY_PORT")
    "${env[@]}" "$AGENT" run --dir "a-$d" --config agent.conf --telemetry-command 'echo {}' \
        --interval 3600 2>>"a-$d.log" &
    AGENT_PIDS[$1]=$!
}
for i in $(seq 0 $((N - 1))); do start_agent "$i"; done
running() { [ "$(sql "$URL" "SELECT count(*) FROM devices WHERE firmware_version = '1.0.0'")" = $N ]; }
wait_for 40 running
expect "all $N agents connected and reported running 1.0.0" $?

# ---- rollout 1: two waves ------------------------------------------------------------------------
bearer "$ADMIN" POST /v1/rollouts "{\"firmware_id\": \"$FW1\", \"target\": {\"product_key\": \"$PK\"},
    \"waves\": [5, \"100%\"], \"wave_pause_s\": 1, \"failure_threshold\": 5}"
expect_status "rollout 1: $N devices, waves [5, 100%]" 201
R1=$(jf rollout_id)
settled() {
    [ "$(sql "$URL" "SELECT count(*) FROM rollout_devices WHERE rollout_id = '$R1'
                     AND state IN ('installed', 'failed', 'rolled_back')")" = $N ]
}
wait_for 90 settled
expect "rollout 1: every device reached a final state" $?
bearer "$ADMIN" GET "/v1/rollouts/$R1"
[ "$(jf counts.installed)" = $((N - 2)) ] && [ "$(jf counts.rolled_back)" = 1 ] && [ "$(jf counts.failed)" = 1 ]
rc=$?
expect "rollout 1: $((N - 2)) installed, 1 rolled back, 1 failed ($(jf counts))" $rc
[ "$(jf per_wave.0.devices)" = 5 ] && [ "$(jf per_wave.1.devices)" = $((N - 5)) ]
expect "rollout 1 ran in two waves of 5 and $((N - 5))" $?
completed() { [ "$(sql "$URL" "SELECT state FROM rollouts WHERE id = '$R1'")" = completed ]; }
wait_for 5 completed
expect "rollout 1 completed" $?
bearer "$ADMIN" GET "/v1/rollouts/$R1?state=rolled_back"
[ "$(jf devices.0.device_id)" = "${DEV[3]}" ] && case "$(jf devices.0.reason)" in *"sensor bus does not answer"*) true ;; *) false ;; esac
expect "the agent whose health check failed rolled back and reported why" $?
bearer "$ADMIN" GET "/v1/devices/${DEV[3]}"
[ "$(jf firmware_version)" = 1.0.0 ] && [ "$(jf rollout.state)" = rolled_back ]
expect "GET /v1/devices/{id}: the rolled-back device still runs 1.0.0" $?
bearer "$ADMIN" GET "/v1/rollouts/$R1?state=failed"
[ "$(jf devices.0.device_id)" = "${DEV[20]}" ] && case "$(jf devices.0.reason)" in *"flash write error"*) true ;; *) false ;; esac
expect "the agent whose install hook failed reported failed with the hook's message" $?
grep -q "cut after 400000 bytes" proxy.log && grep -q "firmware download resumes at byte" "a-${DEV[10]}.log" &&
    [ "$(sql "$URL" "SELECT state FROM rollout_devices WHERE rollout_id = '$R1' AND device_id = '${DEV[10]}'")" = installed ]
expect "the download cut midway resumed (Range) and the image installed" $?
[ "$(sql "$URL" "SELECT count(*) FROM devices WHERE firmware_version = '1.1.0'")" = $((N - 2)) ]
expect "$((N - 2)) devices report running 1.1.0" $?
[ "$(grep -c ' 1.1.0 ' installs.log)" = $((N - 1)) ]
expect "the install hook got the uploaded image $((N - 1)) times (the failed one excluded)" $?

# ---- crafted notices, refused on the device -------------------------------------------------------
bearer "$ADMIN" POST /v1/services '{"name": "fw-tool", "publish": ["devices/+/firmware/notice"], "subscribe": []}'
activate_as service "$(jf service_id)" "$(jf service_secret)" svc
expect "a service allowed to publish notices" $?
D0=${DEV[0]}
crafted() { # crafted ROLLOUT VERSION FIRMWARE_ID SHA256 SIGNER_FP SIGFILE
    "$PY" -c '
import base64, json, sys
r, v, fw, sha, fp, sig, dev, base = sys.argv[1:9]
print(json.dumps({"rollout_id": r, "firmware_id": fw, "version": v, "size": 300000, "sha256": sha,
                  "signature": base64.b64encode(open(sig, "rb").read()).decode(), "signer": fp,
                  "url": "%s/v1/devices/%s/firmware/%s" % (base, dev, fw), "hardware": [],
                  "min_version": None}))' "$@" "$D0" "https://localhost:$API_PORT" >crafted.json
    pub svc -t "devices/$D0/firmware/notice" -q 1 -f crafted.json
}
SHA2=$(sha256sum <fw-2.0.0.bin | cut -c1-64)
crafted 11111111-1111-4111-8111-111111111111 2.0.0 "$FW2" "$(printf '0%.0s' $(seq 64))" "$(cat maker.fp)" fw-2.0.0.sig
wait_for 20 grep -q "rollout 11111111-1111-4111-8111-111111111111.*sha256" "a-$D0.log"
expect "on the device: a notice whose SHA-256 is not the image's is refused" $?
crafted 22222222-2222-4222-8222-222222222222 2.0.0 "$FW2" "$SHA2" "$(cat rogue.fp)" rogue.sig
wait_for 20 grep -q "rollout 22222222-2222-4222-8222-222222222222.*not a trusted firmware signer" "a-$D0.log"
expect "on the device: a notice from an untrusted signer is refused" $?
crafted 33333333-3333-4333-8333-333333333333 1.0.5 "$FW2" "$SHA2" "$(cat maker.fp)" fw-2.0.0.sig
wait_for 20 grep -q "rollout 33333333-3333-4333-8333-333333333333.*not newer" "a-$D0.log"
expect "on the device: a downgrade (1.0.5 < 1.1.0) is refused" $?
[ "$(grep -c "^$D0 " installs.log)" = 1 ]
expect "none of the crafted notices reached the install hook" $?

# ---- rollout 2: halts by itself --------------------------------------------------------------------
for i in $(seq 40 49); do
    bearer "$ADMIN" PATCH "/v1/devices/${DEV[$i]}" '{"tags": ["canary"]}'
done
touch "flags/install-fail-${DEV[40]}" "flags/install-fail-${DEV[41]}" "flags/install-fail-${DEV[42]}"
bearer "$ADMIN" POST /v1/rollouts "{\"firmware_id\": \"$FW2\", \"target\": {\"tag\": \"canary\"},
    \"waves\": [\"100%\"], \"failure_threshold\": \"20%\"}"
expect_status "rollout 2: the 10 canary devices, threshold 20 %" 201
R2=$(jf rollout_id)
halted() { [ "$(sql "$URL" "SELECT state FROM rollouts WHERE id = '$R2'")" = halted ]; }
wait_for 40 halted
expect "rollout 2 halted by itself when 2 of 10 devices failed" $?
bearer "$ADMIN" GET "/v1/rollouts/$R2"
case "$(jf reason)" in *"threshold 20%"*) true ;; *) false ;; esac
rc=$?
expect "its reason names the threshold: $(jf reason)" $rc
[ "$(sql "$URL" "SELECT count(*) FROM audit_log WHERE action = 'rollout.halt' AND target = '$R2'")" = 1 ]
expect "the halt is audited" $?
curl -sk "$BASE/metrics" | grep -q '^iothub_rollout_halts_total 1$'
expect "the halt is counted in /metrics" $?

server_alive
expect "iothubd still serves" $?
finish
