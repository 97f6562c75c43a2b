#!/usr/bin/env bash
# Quotas per principal (issue 19, item 1 and the first two rows of its table), attacked as
# they were tried: one device certificate, loopback, a real iothubd with the default quotas
# except a PUBLISH rate low enough to reach (mqtt_rate_msgs_per_s = 500, burst 1 s).
# test_abuse_quotas.py runs the attacks: 3,000 retained QoS 1 messages of 60 KB, 60,000
# subscriptions of ~1 KB filters, a QoS 1 flood over the rate while a bystander device
# (bystander.py) measures its PUBACK latency, and a CONNECT loop; it checks what was stored,
# the SUBACK codes, that the flooder is slowed and not disconnected, iothubd's RSS, and the
# refusals in /metrics. Here: the log lines (one per principal and quota per minute).
# test-lane: alone (it measures the bystander's latency and the daemon's memory)
. "$(dirname "$0")/api_lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)

# Under ASan, freed blocks wait in a 256 MB quarantine: the 2,983 refused 60 KB messages
# would all be there. A small one keeps RSS about what iothubd holds.
[ -n "${ASAN_OPTIONS:-}" ] && export ASAN_OPTIONS="$ASAN_OPTIONS:quarantine_size_mb=16"

URL=$(new_db abuse_quotas) &&
    write_conf iothub.conf "$URL" \
        "mqtt_rate_msgs_per_s = 500" \
        "mqtt_rate_burst_s = 1" &&
    "$IOTHUBD" -c iothub.conf init --token-file admin.token >init.out 2>init.err &&
    ADMIN=$(cat admin.token) &&
    "$IOTHUBD" -c iothub.conf ca chain >trust.pem 2>/dev/null &&
    start_server iothub.conf serve.log
expect "iothubd serves with the default quotas and mqtt_rate_msgs_per_s = 500" $?

bearer "$ADMIN" POST /v1/products '{"name":"quota sensor"}'
PK=$(jf product_key)
declare -A DEV
ok_devices=0
for d in attacker bystander; do
    bearer "$ADMIN" POST /v1/devices "{\"product_key\":\"$PK\",\"serial_number\":\"SN-$d\"}"
    id=$(jf device_id) secret=$(jf device_secret)
    activate_as device "$id" "$secret" "$d" || ok_devices=1
    DEV[$d]=$id
done
expect "two devices provisioned and activated (the attacker's certificate, a bystander's)" $ok_devices

cat >env.json <<EOF
{"pid": $SERVER_PID, "mqtt_port": $MQTT_PORT, "api_port": $API_PORT, "ca": "$T/trust.pem",
 "here": "$HERE", "dir": "$T",
 "attacker": {"id": "${DEV[attacker]}", "cert": "$T/attacker.pem", "key": "$T/attacker.key"},
 "bystander": {"id": "${DEV[bystander]}", "cert": "$T/bystander.pem", "key": "$T/bystander.key"},
 "rate_msgs": 500, "retained_bytes_per_principal": 1048576, "max_subscriptions": 1000,
 "connects_per_min": 60}
EOF
timeout 300 python3 -u "$HERE/test_abuse_quotas.py" env.json | tee quotas.out
rc=${PIPESTATUS[0]}
cp quotas.out "$BUILD/test_abuse_quotas.out" 2>/dev/null # the numbers of the last run (docs/security.md)
if [ "$rc" != 0 ]; then
    FAILED=$((FAILED + 1))
    grep -q '^not ok ' quotas.out || not_ok "test_abuse_quotas.py exited with status $rc"
fi

# The retained accounting across a restart: the attacker's retained message is restored from
# PostgreSQL and counted again (O(1) each), so it cannot store a full quota more.
stop_server
expect "iothubd stops cleanly after the attacks" $?
start_server iothub.conf serve2.log
expect "iothubd restarts (retained messages restored from PostgreSQL)" $?
sed -i "s/\"pid\": [0-9]*/\"pid\": $SERVER_PID/" env.json
timeout 60 python3 -u "$HERE/test_abuse_quotas.py" env.json restored | tee -a quotas.out
[ "${PIPESTATUS[0]}" = 0 ] || not_ok "test_abuse_quotas.py restored failed"
cp quotas.out "$BUILD/test_abuse_quotas.out" 2>/dev/null

A=${DEV[attacker]}
for key in mqtt_max_retained_bytes_per_principal mqtt_max_subscriptions mqtt_rate_msgs_per_s \
    mqtt_max_connects_per_min; do
    n=$(grep -c "device $A over quota $key " serve.log)
    [ "$n" -ge 1 ] && [ "$n" -le 2 ]
    expect "$key: refusals logged once a minute for the device, naming it ($n line(s))" $?
done
n=$(grep -c "device ${DEV[bystander]} over quota" serve.log)
[ "$n" = 0 ]
expect "the bystander was never refused" $?

stop_server
expect "iothubd stops cleanly after the restore check" $?
finish
