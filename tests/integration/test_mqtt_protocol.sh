#!/usr/bin/env bash
# MQTT protocol checks over raw TLS sockets (test_mqtt_protocol.py, Python standard library
# only) against a real `iothubd serve`. Here: devices and services provisioned and activated
# through the REST API with `openssl req` CSRs, a superseded certificate (re-activation), a
# certificate from another CA, and an expired certificate from the issuing CA; their paths
# go to the Python script in a JSON file.
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/api_lib.sh"

api_setup mqtt_protocol
expect "iothubd init, then iothubd serve answers /healthz" $?

bearer "$ADMIN" POST /v1/products '{"name":"Protocol probe"}'
PK=$(jf product_key)
bearer "$ADMIN" POST /v1/tokens '{"name":"protocol-operator","role":"operator"}'
OPERATOR=$(jf token)

declare -A DEV SECRET
# activate NAME: activates device NAME with a new `openssl req` CSR (NAME.key, NAME.csr)
# into NAME.pem.
activate() {
    activate_as device "${DEV[$1]}" "${SECRET[$1]}" "$1"
}
# provision NAME: POST /v1/devices; sets DEV[NAME] and SECRET[NAME].
provision() {
    bearer "$ADMIN" POST /v1/devices "{\"product_key\":\"$PK\",\"serial_number\":\"SN-$1\"}"
    [ "$STATUS" = 201 ] || return 1
    DEV[$1]=$(jf device_id) SECRET[$1]=$(jf device_secret)
}
# new_device NAME: provisions and activates a device.
new_device() { provision "$1" && activate "$1"; }
NAMES=(a b c w k k2 m t q r s)
ok_devices=0
for d in "${NAMES[@]}"; do new_device "$d" || { ok_devices=1; echo "device $d: $STATUS $BODY" >&2; }; done
[ $ok_devices = 0 ]
expect "${#NAMES[@]} devices provisioned and activated through the API" $?

# Re-activation: the first certificate of s is superseded.
mv s.pem s_old.pem && mv s.key s_old.key && activate s && [ "$(jf superseded)" != "[]" ]
expect "device s re-activated: its first certificate is superseded" $?

# new_service NAME JSON: creates and activates a service into NAME.pem/NAME.key.
declare -A SVC
new_service() {
    local id secret
    bearer "$ADMIN" POST /v1/services "$2"
    [ "$STATUS" = 201 ] || return 1
    id=$(jf service_id) secret=$(jf service_secret)
    activate_as service "$id" "$secret" "$1" && SVC[$1]=$id
}
new_service svc1 '{"name":"backend","publish":["devices/+/commands/#","!devices/+/commands/forbidden"],"subscribe":["devices/#","!devices/+/secret"]}'
expect "service svc1 (devices/# but !devices/+/secret) created and activated" $?
new_service svc2 '{"name":"dollar","publish":["$test/#","test/#"],"subscribe":["#","$test/#"]}'
expect "service svc2 (\$test/# and #) created and activated" $?

# ---- certificates the API would not issue -------------------------------------------------
# Another CA: a client certificate with the CN and O of device a.
cat >other.cnf <<'EOF'
[client]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
EOF
openssl req -new -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout other_root.key \
    -subj "/CN=Other Root" -days 30 -out other_root.pem 2>/dev/null &&
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout other.key \
        -subj "/CN=${DEV[a]}/O=$PK" -out other.csr 2>/dev/null &&
    openssl x509 -req -in other.csr -CA other_root.pem -CAkey other_root.key -set_serial 0x5A01 \
        -days 30 -extfile other.cnf -extensions client -out other.pem 2>/dev/null
expect "a client certificate for device a from another CA (openssl)" $?

# Expired, from the issuing CA: the CA is only reachable through our code, so ca_tool (the
# daemon's ca/ and db/ code) issues a 1-day certificate to a provisioned device (e) with its
# clock set 3 days back by an LD_PRELOAD time() shim (the CA uses time(2) for the validity
# period). Not activated through the API: a device holds one valid certificate at a time.
cat >fake_time.c <<'EOF'
#include <stdlib.h>
#include <time.h>
time_t time(time_t *t)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    const char *back = getenv("FAKE_TIME_BACK");
    time_t v = ts.tv_sec - (back ? atol(back) : 0);
    if (t)
        *t = v;
    return v;
}
EOF
write_conf expired.conf "$URL" "device_cert_days = 1"
provision e && cc -shared -fPIC -o fake_time.so fake_time.c 2>cc.err &&
    make_csr ec-p256 expired &&
    LD_PRELOAD=$T/fake_time.so FAKE_TIME_BACK=$((3 * 86400)) \
        "$CA_TOOL" expired.conf issue "${DEV[e]}" "$PK" expired.csr >expired.pem 2>ca_tool.err &&
    ! openssl x509 -in expired.pem -noout -checkend 0 >/dev/null &&
    openssl verify -no_check_time -CAfile root.pem -untrusted issuing.pem -purpose sslclient \
        expired.pem >verify.out 2>&1
expect "an expired certificate of device e from the issuing CA (chain verifies, not valid now)" $?

# ---- the protocol checks --------------------------------------------------------------------
python3 - "$T" <<EOF >env.json
import json, sys
t = sys.argv[1]
devs = {n: {"id": i, "cert": t + "/" + n + ".pem", "key": t + "/" + n + ".key"}
        for n, i in zip("${!DEV[*]}".split(), "${DEV[*]}".split())}
svcs = {n: {"id": i, "cert": t + "/" + n + ".pem", "key": t + "/" + n + ".key"}
        for n, i in zip("${!SVC[*]}".split(), "${SVC[*]}".split())}
env = {"mqtt_port": $MQTT_PORT, "api_port": $API_PORT, "ca": t + "/trust.pem", "operator": "$OPERATOR",
       "server_pid": $SERVER_PID, "log": t + "/serve.log",
       "devices": devs, "services": svcs,
       "other_ca": {"cert": t + "/other.pem", "key": t + "/other.key"},
       "superseded": {"cert": t + "/s_old.pem", "key": t + "/s_old.key"},
       "expired": {"cert": t + "/expired.pem", "key": t + "/expired.key"}}
print(json.dumps(env, indent=1))
EOF
timeout 300 python3 -u "$HERE/test_mqtt_protocol.py" env.json | tee protocol.out
rc=${PIPESTATUS[0]}
if [ "$rc" != 0 ]; then
    FAILED=$((FAILED + 1))
    grep -q '^not ok ' protocol.out || not_ok "test_mqtt_protocol.py exited with status $rc"
fi

stop_server
expect "iothubd stops cleanly" $?
finish
