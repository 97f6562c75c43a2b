#!/usr/bin/env bash
# Staged firmware rollouts (issue 16) with simulated agents (rollout_sim.py: devices over
# MQTT with their id and secret) and images inserted by psql: device tags (PATCH, limits,
# audit), POST /v1/rollouts and its refusals, waves (a count then 100 %) with a pause between
# them, notices on devices/<id>/firmware/notice (contents, re-sent to a device that was
# offline when its wave started), state reports on devices/<id>/firmware/state (hostile ones
# refused and counted), GET /v1/rollouts/{id} and GET /v1/devices/{id}, pause (no new wave)
# and resume, one active rollout per device (409), completion, a rollout that halts by itself
# on its failure threshold (audited, metric), cancel, iothubctl rollouts / devices tag.
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/api_lib.sh"
PLAIN_PORT=$(free_port)
SIM_PID=

URL=$(new_db main) || exit 1
write_conf iothub.conf "$URL" "mqtt_plain_listen = 127.0.0.1:$PLAIN_PORT"
"$IOTHUBD" -c iothub.conf init --token-file admin.token >init.out 2>init.err
expect "iothubd init" $?
ADMIN=$(cat admin.token)
"$IOTHUBD" -c iothub.conf ca chain >trust.pem 2>/dev/null
start_server iothub.conf serve.log
expect "iothubd serve" $?
trap 'kill "$SIM_PID" 2>/dev/null; stop_server >/dev/null 2>&1' EXIT

bearer "$ADMIN" POST /v1/tokens '{"name": "ops", "role": "operator"}'
OPS=$(jf token)
bearer "$ADMIN" POST /v1/tokens '{"name": "audit", "role": "auditor"}'
AUDITOR=$(jf token)
bearer "$ADMIN" POST /v1/products '{"name": "Sensor"}'
PRODUCT=$(jf product_key)
bearer "$ADMIN" POST /v1/products '{"name": "Other"}'
OTHER=$(jf product_key)

# Eight devices of the product, one of the other product.
mkdir sim
for i in 1 2 3 4 5 6 7 8; do
    bearer "$ADMIN" POST /v1/devices "{\"serial_number\": \"SN-$i\", \"product_key\": \"$PRODUCT\"}"
    echo "$(jf device_id) $(jf device_secret)" >>ids
done
bearer "$ADMIN" POST /v1/devices "{\"serial_number\": \"SN-x\", \"product_key\": \"$OTHER\"}"
FOREIGN=$(jf device_id)
# Ordered by id: rollouts fill their waves in device id order.
sort ids >ids.sorted
mapfile -t DEV < <(cut -d' ' -f1 ids.sorted)

# The images: two versions of the product, one of the other product, one still uploading.
sql "$URL" "
INSERT INTO firmware_signers (name, subject, key_type, fingerprint, cert_der, not_before, not_after, created_by)
    VALUES ('maker', 'CN=maker', 'ec-p256', repeat('ab', 32), '\\x30', now(), now() + interval '1 year', 'test');
INSERT INTO firmware (product_id, version, version_key, size, sha256, signature, signer_id, hardware, min_version, status, created_by)
    SELECT p.id, v.version, v.key, 1048576, sha256(v.version::bytea), '\\x3045022100aa', s.id, '{rev-b}', '1.0.0', v.status, 'test'
    FROM products p, firmware_signers s,
         (VALUES ('1.1.0', '{1,1,0}'::int[], 'ready'), ('2.0.0', '{2,0,0}', 'ready'), ('2.1.0', '{2,1,0}', 'uploading')) v(version, key, status)
    WHERE p.product_key = '$PRODUCT';
INSERT INTO firmware (product_id, version, version_key, size, sha256, signature, signer_id, status, created_by)
    SELECT p.id, '9.0.0', '{9,0,0}', 10, sha256('x'), '\\x30', s.id, 'ready', 'test'
    FROM products p, firmware_signers s WHERE p.product_key = '$OTHER';" >fixture.out 2>&1
expect "fixture: a signer and four images" $?
FW1=$(sql "$URL" "SELECT id FROM firmware WHERE version = '1.1.0'")
FW2=$(sql "$URL" "SELECT id FROM firmware WHERE version = '2.0.0'")
FW_UPLOADING=$(sql "$URL" "SELECT id FROM firmware WHERE version = '2.1.0'")
FW_OTHER=$(sql "$URL" "SELECT id FROM firmware WHERE version = '9.0.0'")

# ---- tags -----------------------------------------------------------------------------------
for i in 0 1 2 3 4; do
    bearer "$OPS" PATCH "/v1/devices/${DEV[$i]}" '{"tags": ["beta", "site:lyon", "beta"]}'
    [ "$STATUS" = 200 ] || break
done
expect_status "PATCH /v1/devices/{id} {tags} by an operator: 200" 200
[ "$(jf tags)" = '["beta", "site:lyon"]' ]
rc=$?
expect "the tags are a set (a repeated tag kept once): $(jf tags)" $rc
bearer "$AUDITOR" PATCH "/v1/devices/${DEV[0]}" '{"tags": []}'
expect_error "an auditor may not tag devices" 403 forbidden
bearer "$OPS" PATCH "/v1/devices/${DEV[0]}" '{"tags": ["no spaces"]}'
expect_error "a tag with a space: 400" 400 invalid_field
bearer "$OPS" PATCH "/v1/devices/${DEV[0]}" "{\"tags\": [\"$(printf 'a%.0s' $(seq 65))\"]}"
expect_error "a tag of 65 characters: 400" 400 invalid_field
bearer "$OPS" PATCH "/v1/devices/${DEV[0]}" "{\"tags\": [$(seq -f '"t%g"' -s, 33)]}"
expect_error "33 tags: 400" 400 invalid_field
bearer "$OPS" PATCH "/v1/devices/${DEV[0]}" '{"tags": "beta"}'
expect_error "tags not an array: 400" 400 invalid_field
bearer "$OPS" PATCH "/v1/devices/${DEV[0]}" '{"tags": [], "status": "x"}'
expect_error "another field: 400" 400 invalid_field
bearer "$OPS" PATCH /v1/devices/00000000-0000-4000-8000-000000000000 '{"tags": []}'
expect_error "an unknown device: 404" 404 not_found
[ "$(sql "$URL" "SELECT count(*) FROM audit_log WHERE action = 'device.tag' AND result = 'ok'
                 AND details->'tags' = '[\"beta\", \"site:lyon\"]'")" = 5 ]
expect "tagging is audited with the new tags" $?
[ "$(sql "$URL" "SELECT count(*) FROM devices WHERE tags @> '{beta}'")" = 5 ]
expect "five devices tagged beta" $?

# ---- refusals of POST /v1/rollouts ------------------------------------------------------------
rollout() { bearer "${2:-$OPS}" POST /v1/rollouts "$1"; }
rollout "{\"firmware_id\": \"$FW1\", \"target\": {\"tag\": \"beta\"}}" "$AUDITOR"
expect_error "an auditor may not create a rollout" 403 forbidden
rollout '{"target": {"tag": "beta"}}'
expect_error "no firmware_id: 400" 400 missing_field
rollout "{\"firmware_id\": \"$FW1\"}"
expect_error "no target: 400" 400 missing_field
rollout "{\"firmware_id\": \"$FW1\", \"target\": {\"tag\": \"beta\", \"product_key\": \"$PRODUCT\"}}"
expect_error "two targets: 400" 400 invalid_field
rollout "{\"firmware_id\": \"$FW1\", \"target\": {\"tag\": \"beta\"}, \"waves\": [0]}"
expect_error "a wave of 0 devices: 400" 400 invalid_field
rollout "{\"firmware_id\": \"$FW1\", \"target\": {\"tag\": \"beta\"}, \"waves\": [\"101%\"]}"
expect_error "a wave of 101 %: 400" 400 invalid_field
rollout "{\"firmware_id\": \"$FW1\", \"target\": {\"tag\": \"beta\"}, \"waves\": [$(seq -s, 101)]}"
expect_error "101 waves: 400" 400 invalid_field
rollout "{\"firmware_id\": \"$FW1\", \"target\": {\"tag\": \"beta\"}, \"failure_threshold\": \"ten\"}"
expect_error "a failure threshold that is neither a count nor a percentage: 400" 400 invalid_field
rollout "{\"firmware_id\": \"$FW1\", \"target\": {\"tag\": \"beta\"}, \"wave_pause_s\": -1}"
expect_error "a negative pause: 400" 400 invalid_field
rollout "{\"firmware_id\": \"$FW1\", \"target\": {\"device_ids\": [\"${DEV[0]}\", \"${DEV[0]}\"]}}"
expect_error "a repeated device id: 400" 400 invalid_field
rollout '{"firmware_id": "00000000-0000-4000-8000-000000000000", "target": {"tag": "beta"}}'
expect_error "an unknown image: 404" 404 firmware_not_found
rollout "{\"firmware_id\": \"$FW_UPLOADING\", \"target\": {\"tag\": \"beta\"}}"
expect_error "an image still uploading: 422" 422 firmware_not_ready
rollout "{\"firmware_id\": \"$FW1\", \"target\": {\"product_key\": \"$OTHER\"}}"
expect_error "the image of another product: 422" 422 product_mismatch
rollout "{\"firmware_id\": \"$FW1\", \"target\": {\"device_ids\": [\"${DEV[0]}\", \"$FOREIGN\"]}}"
expect_error "a device of another product: 422" 422 unknown_devices
rollout "{\"firmware_id\": \"$FW1\", \"target\": {\"tag\": \"nobody\"}}"
expect_error "a tag no device has: 422" 422 empty_target
[ "$(sql "$URL" "SELECT count(*) FROM rollouts")" = 0 ]
expect "no refused rollout was stored" $?

# ---- the simulated fleet: devices 0-3 online, 4 offline ----------------------------------------
i=0
while read -r id secret; do
    behavior=ok
    [ "$id" = "${DEV[5]}" ] && behavior=fail
    echo "$id $secret $behavior 1.0.0" >>sim/devices
    i=$((i + 1))
done <ids.sorted
for i in 0 1 2 3 5; do touch "sim/${DEV[$i]}.online"; done
"$PY" "$HERE/rollout_sim.py" "$PLAIN_PORT" sim 2>sim.err &
SIM_PID=$!
ready() { for i in 0 1 2 3 5; do [ -e "sim/${DEV[$i]}.ready" ] || return 1; done; }
wait_for 30 ready
expect "five simulated agents connected and subscribed" $?
versions() { [ "$(sql "$URL" "SELECT count(*) FROM devices WHERE firmware_version = '1.0.0'")" = 5 ]; }
wait_for 20 versions
expect "their \"running\" reports set devices.firmware_version" $?

# ---- rollout A: tag beta (devices 0-4), waves [2, 100%], a pause of 5 s ------------------------
rollout "{\"firmware_id\": \"$FW1\", \"target\": {\"tag\": \"beta\"}, \"waves\": [2, \"100%\"],
          \"wave_pause_s\": 5, \"failure_threshold\": 2}"
expect_status "POST /v1/rollouts: 201" 201
A=$(jf rollout_id)
[ "$(jf device_count)" = 5 ] && [ "$(jf state)" = running ] && [ "$(jf per_wave.0.devices)" = 2 ] &&
    [ "$(jf per_wave.1.devices)" = 3 ] && [ "$(jf failure_threshold)" = 2 ]
expect "5 devices in two waves of 2 and 3, running" $?
[ "$(sql "$URL" "SELECT count(*) FROM audit_log WHERE action = 'rollout.create' AND target = '$A'")" = 1 ]
expect "the creation is audited" $?
rollout "{\"firmware_id\": \"$FW2\", \"target\": {\"device_ids\": [\"${DEV[2]}\", \"${DEV[6]}\"]}}"
expect_error "a device already in an active rollout: 409" 409 device_busy

installed() { [ "$(sql "$URL" "SELECT count(*) FROM rollout_devices WHERE rollout_id = '$A'
                                AND wave = $1 AND state = 'installed'")" = "$2" ]; }
wait_for 30 installed 0 2
expect "wave 1: both devices notified, downloaded, installed" $?
N0=$(head -n 1 "sim/${DEV[0]}.notices")
"$PY" -c '
import json, sys
n = json.loads(sys.argv[1])
assert n["rollout_id"] == sys.argv[2] and n["firmware_id"] == sys.argv[3], n
assert n["version"] == "1.1.0" and n["size"] == 1048576 and len(n["sha256"]) == 64, n
assert n["signer"] == "ab" * 32 and n["signature"] == "MEUCIQCq", n
assert n["hardware"] == ["rev-b"] and n["min_version"] == "1.0.0", n
assert n["url"].endswith("/v1/devices/%s/firmware/%s" % (sys.argv[4], sys.argv[3])), n
assert n["url"].startswith("https://localhost:"), n' "$N0" "$A" "$FW1" "${DEV[0]}" 2>notice.err
expect "the notice carries the manifest and the download URL (firmware contract)" $?
[ ! -e "sim/${DEV[2]}.notices" ]
expect "wave 2's devices have no notice yet" $?

bearer "$OPS" POST "/v1/rollouts/$A/pause"
expect_status "pause during the pause between waves: 200" 200
[ "$(jf state)" = paused ]
expect "the rollout is paused" $?
bearer "$OPS" POST "/v1/rollouts/$A/pause"
expect_error "pausing a paused rollout: 409" 409 invalid_state
# past the end of the wave pause (a rollout paused before its wave settled never settles)
past_pause() {
    [ "$(sql "$URL" "SELECT coalesce(now() > wave_settled_at + interval '6 s', true) FROM rollouts
                     WHERE id = '$A'")" = t ]
}
wait_for 20 past_pause
[ "$(sql "$URL" "SELECT current_wave FROM rollouts WHERE id = '$A'")" = 0 ] && [ ! -e "sim/${DEV[2]}.notices" ]
expect "paused: the second wave did not start after the pause" $?
bearer "$OPS" POST "/v1/rollouts/$A/resume"
expect_status "resume: 200" 200
wait_for 30 installed 1 2
expect "wave 2: the two online devices installed" $?
[ "$(sql "$URL" "SELECT state FROM rollout_devices WHERE rollout_id = '$A' AND device_id = '${DEV[4]}'")" = pending ]
expect "the offline device's row stays pending" $?
bearer "$AUDITOR" GET "/v1/devices/${DEV[4]}"
[ "$(jf rollout.state)" = pending ] && [ "$(jf rollout.rollout_id)" = "$A" ] && [ "$(jf rollout.version)" = 1.1.0 ]
expect "GET /v1/devices/{id} shows the device's rollout state" $?
touch "sim/${DEV[4]}.online"
wait_for 30 installed 1 3
expect "the offline device got its notice on connecting and installed" $?
completed() { [ "$(sql "$URL" "SELECT state FROM rollouts WHERE id = '$A'")" = completed ]; }
wait_for 15 completed
expect "rollout A completed" $?
bearer "$AUDITOR" GET "/v1/rollouts/$A?limit=2"
[ "$(jf counts.installed)" = 5 ] && [ "$(jf per_wave.1.counts.installed)" = 3 ] &&
    [ "$(jf devices.0.state)" = installed ] && [ -n "$(jf next_after)" ] && [ "$(jf state)" = completed ]
expect "GET /v1/rollouts/{id}: counts per state and per wave, a page of devices" $?
bearer "$AUDITOR" GET "/v1/rollouts/$A?after=$(jf next_after)&limit=1000"
[ "$(jf devices.2.device_id)" = "${DEV[4]}" ] && [ "$(jf next_after)" = null ]
expect "the next page of devices" $?
bearer "$AUDITOR" GET "/v1/devices/${DEV[0]}"
[ "$(jf firmware_version)" = 1.1.0 ] && [ "$(jf rollout.state)" = installed ] && [ "$(jf tags.0)" = beta ]
expect "GET /v1/devices/{id}: reported version, tags, installed" $?
bearer "$OPS" POST "/v1/rollouts/$A/cancel"
expect_error "cancelling a completed rollout: 409" 409 invalid_state

# ---- hostile state reports ---------------------------------------------------------------------
send() { cat >"sim/$1.tmp" && mv "sim/$1.tmp" "sim/$1.send"; } # send ID <PAYLOAD: published by ID's agent
printf '{"rollout_id": "%s", "state": "exploded"}' "$A" | send "${DEV[0]}"
wait_for 20 grep -q "firmware/state refused: unknown state" serve.log
expect "an unknown state is refused and logged" $?
head -c 3000 /dev/zero | tr '\0' ' ' | send "${DEV[1]}"
printf '{"rollout_id": "%s", "state": "installed", "version": "1.1.0; DROP"}' "$A" | send "${DEV[2]}"
rejected() { curl -sk "$BASE/metrics" >"$T/metrics.out"; grep -q '^iothub_rollout_state_reports_total{result="rejected"} 2$' "$T/metrics.out"; }
dropped() { curl -sk "$BASE/metrics" | grep -q '^iothub_rollout_state_reports_total{result="dropped"} 1$'; }
wait_for 30 rejected && wait_for 10 dropped
expect "malformed reports counted as rejected, a 3000-byte one as dropped" $?
[ "$FAILED" = 0 ] || grep rollout_state_reports "$T/metrics.out" >&2

# ---- rollout B: halts on its failure threshold -------------------------------------------------
# Devices 5 (fails), 6 and 7 (offline); threshold 1 failure.
rollout "{\"firmware_id\": \"$FW2\", \"target\": {\"device_ids\": [\"${DEV[5]}\", \"${DEV[6]}\", \"${DEV[7]}\"]},
          \"waves\": [\"100%\"], \"failure_threshold\": 1}"
expect_status "rollout B: 201" 201
B=$(jf rollout_id)
halted() { [ "$(sql "$URL" "SELECT state FROM rollouts WHERE id = '$B'")" = halted ]; }
wait_for 30 halted
expect "rollout B halted by itself when device 5 failed" $?
bearer "$AUDITOR" GET "/v1/rollouts/$B?state=failed"
[ "$(jf counts.failed)" = 1 ] && [ "$(jf devices.0.reason)" = "install hook exited with status 1" ] &&
    case "$(jf reason)" in *"1 devices failed"*) true ;; *) false ;; esac
expect "GET shows the halt's reason and the device's failure reason" $?
[ "$(sql "$URL" "SELECT count(*) FROM audit_log WHERE action = 'rollout.halt' AND target = '$B'")" = 1 ]
expect "the halt is audited" $?
gauges() {
    curl -sk "$BASE/metrics" >metrics.out
    grep -q '^iothub_rollout_halts_total 1$' metrics.out &&
        grep -q "^iothub_rollout_info{rollout=\"$B\",state=\"halted\"} 1$" metrics.out &&
        grep -q "^iothub_rollout_devices{rollout=\"$A\",state=\"installed\"} 5$" metrics.out
}
wait_for 20 gauges
expect "metrics: halts, per-rollout device states" $?
touch "sim/${DEV[6]}.online"
sleep 3
[ ! -e "sim/${DEV[6]}.notices" ]
expect "a halted rollout sends nothing to a device that connects" $?
bearer "$OPS" POST "/v1/rollouts/$B/resume"
expect_error "a halted rollout cannot be resumed" 409 invalid_state

# ---- rollout C: cancel; then the device may join another rollout --------------------------------
rollout "{\"firmware_id\": \"$FW2\", \"target\": {\"device_ids\": [\"${DEV[7]}\"]}}"
expect_status "a halted rollout's devices may join a new one" 201
C=$(jf rollout_id)
bearer "$OPS" POST "/v1/rollouts/$C/cancel"
[ "$STATUS" = 200 ] && [ "$(jf state)" = cancelled ] && [ "$(jf counts.skipped)" = 1 ]
expect "cancel: the pending device is skipped" $?
[ "$(sql "$URL" "SELECT count(*) FROM audit_log WHERE action IN ('rollout.pause', 'rollout.resume',
                 'rollout.cancel') AND result = 'ok'")" = 3 ]
expect "pause, resume and cancel are audited" $?

# ---- listing and iothubctl ---------------------------------------------------------------------
bearer "$AUDITOR" GET "/v1/rollouts?limit=2"
[ "$(jf rollouts.0.rollout_id)" = "$C" ] && [ "$(jf rollouts.1.rollout_id)" = "$B" ]
expect "GET /v1/rollouts: newest first" $?
bearer "$AUDITOR" GET "/v1/rollouts?before=$(jf next_before)"
[ "$(jf rollouts.0.rollout_id)" = "$A" ]
expect "GET /v1/rollouts: the next page" $?
CTL=("$BUILD/iothubctl" --url "$BASE" --cacert trust.pem --token "$OPS")
"${CTL[@]}" devices tag "${DEV[7]}" lab night >ctl.out 2>&1 && grep -q night ctl.out
expect "iothubctl devices tag" $?
"${CTL[@]}" --json rollouts create --firmware "$FW2" --tag night --waves 1,100% \
    --failure-threshold 10% >ctl.json 2>&1
D=$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["rollout_id"])' ctl.json)
expect "iothubctl --json rollouts create" $?
"${CTL[@]}" rollouts pause "$D" >ctl.out 2>&1 && "${CTL[@]}" rollouts show "$D" >ctl.out 2>&1 &&
    grep -q paused ctl.out
expect "iothubctl rollouts pause / show" $?
"${CTL[@]}" rollouts cancel "$D" >ctl.out 2>&1 && "${CTL[@]}" rollouts list >ctl.out 2>&1 &&
    grep -q "$D" ctl.out
expect "iothubctl rollouts cancel / list" $?

server_alive
expect "iothubd still serves" $?
finish
