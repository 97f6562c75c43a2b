#!/usr/bin/env bash
# Factory device CAs over MQTT (issue 15 item 3): a maker's CA signs device certificates
# offline with plain openssl; once the CA is a row of device_cas (written here with psql, as
# the /v1/device-cas API does, then NOTIFY iothub_device_cas), its devices connect with
# mosquitto_pub/sub and no prior API call: registered just in time (device row, certificate
# row, audit), or held pending until approved; revoked through the API like ours (the live
# session closes); refused when the CA's CRL lists them, when the CA is disabled (their live
# sessions close within a second), when expired, or when their CA is unknown. Our own
# devices are unaffected throughout.
. "$(dirname "$0")/api_lib.sh"

api_setup jit
expect "iothubd init, then iothubd serve answers /healthz" $?
bearer "$ADMIN" POST /v1/products '{"name":"Factory sensor"}'
PK=$(jf product_key)
PID=$(sql "$URL" "SELECT id FROM products WHERE product_key = '$PK'")
bearer "$ADMIN" POST /v1/tokens '{"name":"jit-operator","role":"operator"}'
OPERATOR=$(jf token)

# ---- the maker's side: offline CAs and device certificates (plain openssl) --------------------
printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n' >dev.ext
# make_ca NAME: a self-signed P-256 device CA (NAME.pem, NAME.key) and its openssl ca files.
make_ca() {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1.key" \
        -out "$1.pem" -days 3650 -subj "/O=Maker/CN=$1 device CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null || return 1
    mkdir -p "$1.certs" && : >"$1.index" && echo 01 >"$1.crlnum" &&
        openssl rand -hex 8 | cut -c2- | tr a-f A-F | sed 's/^/7/' >"$1.serial" # serials differ by CA
    printf '[ca]\ndefault_ca = x\n[x]\ndatabase = %s.index\ncrlnumber = %s.crlnum\nserial = %s.serial\nnew_certs_dir = %s.certs\ndefault_md = sha256\ndefault_crl_days = 30\npolicy = any\nunique_subject = no\n[any]\ncommonName = supplied\n' \
        "$1" "$1" "$1" "$1" >"$1.cnf"
}
# make_dev NAME CA CN [openssl ca date options]: a device key and a certificate CA signs.
make_dev() {
    local name=$1 ca=$2 cn=$3
    shift 3
    [ $# -gt 0 ] || set -- -days 365
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$name.key" \
        -subj "/CN=$cn" -out "$name.csr" 2>/dev/null &&
        openssl ca -config "$ca.cnf" -batch -notext -in "$name.csr" -cert "$ca.pem" \
            -keyfile "$ca.key" -extfile dev.ext -out "$name.pem" "$@" >>openssl.log 2>&1
}
serial_of() { openssl x509 -in "$1.pem" -noout -serial | cut -d= -f2; }
fingerprint() { openssl x509 -in "$1.pem" -outform der | sha256sum | cut -d' ' -f1; }
# uuid_of CA CN: the device id the hub gives a device of CA with CN (docs/mqtt.md).
uuid_of() { python3 -c 'import sys, uuid; print(uuid.uuid5(uuid.NAMESPACE_URL, sys.argv[1] + "/" + sys.argv[2]))' "$(fingerprint "$1")" "$2"; }

# register_ca NAME POLICY: the row POST /v1/device-cas writes, and its NOTIFY; prints the id.
register_ca() {
    local hex id
    hex=$(openssl x509 -in "$1.pem" -outform der | od -An -v -tx1 | tr -d ' \n')
    id=$(sql "$URL" "INSERT INTO device_cas (product_id, subject, serial, fingerprint, cert_der,
                     not_before, not_after, registration, created_by)
                     VALUES ($PID, 'CN=$1 device CA', '$(serial_of "$1")', '$(fingerprint "$1")',
                     '\\x$hex', now(), now() + interval '10 years', '$2', 'test')
                     RETURNING id") || return 1
    sql "$URL" "NOTIFY iothub_device_cas, '$id'" || return 1
    echo "$id"
}
# loads_reach N [LOG]: waits until iothubd has loaded the device CAs N times (the log says so).
loads_reach() {
    for _ in $(seq 100); do
        [ "$(grep -c 'device CAs: ' "${2:-serve.log}")" -ge "$1" ] && return 0
        sleep 0.1
    done
    return 1
}
# lost OUT [TENTHS]: the mosquitto_sub writing OUT lost its connection within TENTHS/10 s.
lost() {
    for _ in $(seq "${2:-30}"); do
        grep -q 'connection was lost\|Connection Refused\|Error' "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}
refused_as() { grep -q "$1" pub.log; }

make_ca fab1 && make_ca fab2 && make_ca rogue
expect "three factory CAs made offline with openssl (cA=TRUE, keyCertSign)" $?
for d in 1 3 4 5; do make_dev d$d fab1 "SN-000$d" || break; done &&
    make_dev d2 fab2 SN-0002 && make_dev d6 fab2 SN-0006 && make_dev d7 rogue SN-0007 &&
    make_dev d8 fab1 SN-0008 -startdate 20200101000000Z -enddate 20200102000000Z
expect "device certificates signed by the factory CAs (one expired)" $?

FAB1=$(register_ca fab1 auto) && FAB2=$(register_ca fab2 approve) && loads_reach 2
expect "device CAs fab1 (auto) and fab2 (approve) registered with psql + NOTIFY, loaded by iothubd" $?

# ---- just-in-time registration ------------------------------------------------------------------
U1=$(uuid_of fab1 SN-0001)
sub d1 cmd.out -t "devices/$U1/commands/#" -q 1 -C 1 -W 10
rc=$?
bearer "$OPERATOR" POST "/v1/devices/$U1/commands" '{"name":"reboot","payload":"now"}'
[ $rc = 0 ] && [ "$STATUS" = 202 ] && end_sub && grep -q "devices/$U1/commands/reboot now" cmd.out
expect "a fab1 device connects with no API call and gets a command on devices/<uuid5>/commands/#" $?
[ "$(sql "$URL" "SELECT status, serial_number, device_ca_id, product_id FROM devices WHERE id = '$U1'")" = "active|SN-0001|$FAB1|$PID" ]
expect "its device row: active, serial_number = CN, device_ca_id, the CA's product" $?
[ "$(sql "$URL" "SELECT coalesce(ca_id::text, 'null'), device_ca_id, device_id, status, kind FROM certificates WHERE serial = '$(serial_of d1)'")" = "null|$FAB1|$U1|valid|device" ]
expect "its certificate row: ca_id NULL, device_ca_id set, valid" $?
[ "$(sql "$URL" "SELECT count(*) FROM audit_log WHERE action = 'device.registered_jit' AND target = '$U1' AND result = 'active'")" = 1 ]
expect "the registration is audited once (device.registered_jit)" $?
pub d1 -t "devices/$U1/telemetry" -m again
[ $? = 0 ] && [ "$(sql "$URL" "SELECT count(*) FROM devices WHERE device_ca_id = '$FAB1'")" = 1 ]
expect "a second connection finds the device (no second registration)" $?
pub d1 -t "devices/SN-0001/telemetry" -q 1 -m x
grep -q "may not publish to \"devices/SN-0001/telemetry\"" serve.log
expect "the device's ACL is its uuid, not its CN" $?

# ---- approval policy ----------------------------------------------------------------------------
U2=$(uuid_of fab2 SN-0002)
pub d2 -t "devices/$U2/telemetry" -m x
[ $? != 0 ] && refused_as 'not authori' &&
    [ "$(sql "$URL" "SELECT status FROM devices WHERE id = '$U2'")" = pending ] &&
    grep -q "device $U2 .*of device CA $FAB2 .*pending" serve.log
expect "a fab2 (approve) device is registered pending and refused (CONNACK not authorized, logged)" $?
pub d2 -t "devices/$U2/telemetry" -m x
[ $? != 0 ]
expect "still refused on the next attempt while pending" $?
bearer "$OPERATOR" POST "/v1/devices/$U2/approve"
if [ "$STATUS" = 404 ] || [ "$STATUS" = 405 ]; then # devca's route, not on this branch
    sql "$URL" "UPDATE devices SET status = 'active', activated_at = now() WHERE id = '$U2'" >/dev/null
fi
pub d2 -t "devices/$U2/telemetry" -m x
expect "once approved, the device connects" $?

# A serial already recorded (certificates.serial is unique over all issuers): refused.
serial_of d1 >fab2.serial && make_dev dup fab2 SN-DUP && pub dup -t x -m x
[ $? != 0 ] && refused_as 'not authori' && grep -q 'SN-DUP.* refused: its serial is recorded for another certificate' serve.log &&
    [ "$(sql "$URL" "SELECT count(*) FROM devices WHERE serial_number = 'SN-DUP'")" = 0 ]
expect "a fab2 certificate reusing a fab1 serial is refused at CONNECT (not authorized), logged" $?

# ---- revocation through the API -----------------------------------------------------------------
U3=$(uuid_of fab1 SN-0003)
sub d3 live3.out -t "devices/$U3/commands/#" -W 15
bearer "$OPERATOR" POST "/v1/devices/$U3/revoke" '{"reason":"keyCompromise"}'
[ "$STATUS" = 200 ] && lost live3.out
expect "POST /v1/devices/{id}/revoke on a JIT device closes its live session" $?
kill_sub
pub d3 -t "devices/$U3/telemetry" -m x
[ $? != 0 ] && hs_failures_reach revoked 1 &&
    [ "$(sql "$URL" "SELECT status FROM certificates WHERE serial = '$(serial_of d3)'")" = revoked ]
expect "and its reconnection is refused at the handshake (revoked)" $?
U5=$(uuid_of fab1 SN-0005)
pub d5 -t "devices/$U5/telemetry" -m x
bearer "$OPERATOR" POST "/v1/certificates/$(serial_of d5)/revoke" '{"reason":"superseded"}'
[ "$STATUS" = 200 ]
expect_status "POST /v1/certificates/{serial}/revoke on a device-CA certificate -> 200" 200
pub d5 -t "devices/$U5/telemetry" -m x
[ $? != 0 ]
expect "that certificate is refused afterwards" $?

# ---- the device CA's own CRL --------------------------------------------------------------------
U4=$(uuid_of fab1 SN-0004)
sub d4 live4.out -t "devices/$U4/commands/#" -W 15
openssl ca -config fab1.cnf -revoke d4.pem -keyfile fab1.key -cert fab1.pem >>openssl.log 2>&1 &&
    openssl ca -config fab1.cnf -gencrl -keyfile fab1.key -cert fab1.pem -out fab1.crl >>openssl.log 2>&1 &&
    CRL=$(openssl crl -in fab1.crl -outform der | od -An -v -tx1 | tr -d ' \n') &&
    sql "$URL" "UPDATE device_cas SET crl_der = '\\x$CRL' WHERE id = '$FAB1'" &&
    sql "$URL" "NOTIFY iothub_device_cas, '$FAB1'" && lost live4.out 20
expect "a fab1 CRL listing a connected device closes its session (within 2 s)" $?
kill_sub
pub d4 -t "devices/$U4/telemetry" -m x
rc=$?
tls_probe crl.out "$MQTT_PORT" trust.pem -cert d4.pem -key d4.key
[ $rc != 0 ] && grep -q 'alert certificate revoked' crl.out
expect "its reconnection is refused at the handshake (alert certificate revoked)" $?
pub d1 -t "devices/$U1/telemetry" -m x
expect "another fab1 device is unaffected by the CRL" $?

# ---- expired and unknown -------------------------------------------------------------------------
pub d8 -t x -m x
rc=$?
tls_probe exp.out "$MQTT_PORT" trust.pem -cert d8.pem -key d8.key
[ $rc != 0 ] && grep -q 'alert certificate expired' exp.out && hs_failures_reach expired 1
expect "an expired fab1 device certificate is refused at the handshake" $?
pub d7 -t x -m x
rc=$?
tls_probe unk.out "$MQTT_PORT" trust.pem -cert d7.pem -key d7.key
[ $rc != 0 ] && grep -q 'alert unknown ca' unk.out && hs_failures_reach unknown_ca 1 && server_alive
expect "a device of an unregistered CA is refused at the handshake (unknown ca)" $?

# ---- disabling a device CA -----------------------------------------------------------------------
U6=$(uuid_of fab2 SN-0006)
pub d6 -t "devices/$U6/telemetry" -m x # registers pending; approved at once below
sql "$URL" "UPDATE devices SET status = 'active', activated_at = now() WHERE id = '$U6'" >/dev/null
sub d6 live6.out -t "devices/$U6/commands/#" -W 15 && SUB6=$SUB_PID &&
    sub d2 live2.out -t "devices/$U2/commands/#" -W 15
expect "two fab2 devices connected" $?
# A TLS session of d2 to resume after the CA is disabled (resumption skips the verify callback).
sleep 1 | timeout 10 openssl s_client -connect "127.0.0.1:$MQTT_PORT" -CAfile trust.pem \
    -cert d2.pem -key d2.key -sess_out d2.sess >sess1.out 2>&1
t0=$(date +%s%N)
sql "$URL" "UPDATE device_cas SET status = 'disabled', disabled_at = now() WHERE id = '$FAB2';
            NOTIFY iothub_device_cas, '$FAB2'"
lost live2.out 20 && lost live6.out 20
rc=$? ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[ $rc = 0 ] && [ $ms -le 1000 ]
expect "disabling fab2 closes both live sessions within 1 s (${ms} ms, psql included)" $?
kill_sub
kill "${SUB6:-}" 2>/dev/null
pub d2 -t "devices/$U2/telemetry" -m x
rc=$?
tls_probe dis.out "$MQTT_PORT" trust.pem -cert d2.pem -key d2.key
[ $rc != 0 ] && grep -q 'alert unknown ca' dis.out
expect "a device of the disabled CA is refused at the handshake" $?
sleep 1 | timeout 10 openssl s_client -connect "127.0.0.1:$MQTT_PORT" -CAfile trust.pem \
    -cert d2.pem -key d2.key -sess_in d2.sess >sess2.out 2>&1
grep -q '^Reused' sess2.out && grep -q 'client refused: device CA disabled' serve.log
expect "a session ticket of the disabled CA's device resumes and is then refused" $?

# ---- audit of refusals, metrics, our devices ------------------------------------------------------
for _ in $(seq 30); do
    [ "$(sql "$URL" "SELECT count(DISTINCT details->>'reason') FROM audit_log WHERE action = 'mqtt.handshake_refused'")" -ge 4 ] && break
    sleep 0.1
done
[ "$(sql "$URL" "SELECT string_agg(DISTINCT details->>'reason', ',' ORDER BY details->>'reason') FROM audit_log WHERE action = 'mqtt.handshake_refused'")" = "device_ca_disabled,expired,revoked,unknown_ca" ]
expect "handshake refusals are audited with their reason (disabled CA, expired, revoked, unknown CA)" $?
[ "$(sql "$URL" "SELECT count(*) FROM audit_log WHERE action = 'mqtt.handshake_refused' AND target = '$FAB2' AND details->>'reason' = 'device_ca_disabled'")" -ge 1 ]
expect "the disabled CA's refusal names the CA" $?
for _ in $(seq 12); do # a burst of refused handshakes: audited at most 10 a second
    timeout 5 openssl s_client -connect "127.0.0.1:$MQTT_PORT" -CAfile trust.pem -cert d7.pem \
        -key d7.key </dev/null >/dev/null 2>&1
done
sleep 2
M=$(curl -sk "https://127.0.0.1:$API_PORT/metrics")
echo "$M" | grep -q '^iothub_tls_refusals_audited_total [1-9]' &&
    echo "$M" | grep -q '^iothub_jit_registrations_total{status="active"} [1-9]' &&
    echo "$M" | grep -q '^iothub_jit_registrations_total{status="pending"} 2' &&
    echo "$M" | grep -q '^iothub_device_cas_trusted 1$'
expect "metrics: refusals audited, JIT registrations by status, enabled device CAs" $?

bearer "$ADMIN" POST /v1/devices "{\"product_key\":\"$PK\",\"serial_number\":\"OURS-1\"}"
OURS=$(jf device_id)
activate_as device "$OURS" "$(jf device_secret)" ours && pub ours -t "devices/$OURS/telemetry" -m x
expect "a device of our own CA still activates and connects" $?
server_alive
expect "iothubd is still up" $?

# ---- the limit on queued lookups/registrations -----------------------------------------------
make_dev d9 fab1 SN-0009 && make_dev d10 fab1 SN-0010 && U9=$(uuid_of fab1 SN-0009) &&
    stop_server && echo "mqtt_max_registrations = 1" >>iothub.conf &&
    start_server iothub.conf serve2.log && loads_reach 1 serve2.log
expect "iothubd restarted with mqtt_max_registrations = 1" $?
# A transaction holding d9's device id makes its registration wait in PostgreSQL.
psql "$URL" -X -q -c "BEGIN; INSERT INTO devices (id, product_id, serial_number, secret_hash)
    VALUES ('$U9', $PID, 'SN-0009', 'x'); SELECT pg_sleep(4); ROLLBACK;" >/dev/null 2>&1 &
HOLD=$!
sleep 0.5
pub d9 -t "devices/$U9/telemetry" -m x &
P9=$!
sleep 1
: >pub.log
pub d10 -t x -m x
[ $? != 0 ] && grep -q 'unavailable' pub.log && grep -q 'already queued: refused (server unavailable)' serve2.log &&
    curl -sk "https://127.0.0.1:$API_PORT/metrics" | grep -q '^iothub_jit_refused_total{reason="busy"} 1$'
expect "over mqtt_max_registrations a new device gets CONNACK 3 (server unavailable), counted" $?
wait "$HOLD"
wait "$P9"
expect "the waiting registration completes once the database lets it (the device connects)" $?
finish
