#!/usr/bin/env bash
# Factory devices end to end (issue 15 item 3), as docs/ca.md "Factory device CAs" walks a
# maker through it: a factory CA made with openssl is registered with iothubctl (registration
# code, proof of possession) under a product; device certificates are signed offline on the
# "line" with `openssl ca`; a device connects over mTLS with mosquitto_pub/sub and no prior
# API call and is registered just in time (listed, audited, reachable by an API command on
# devices/<uuid5 id>/commands/...); policy approve (iothubctl) holds the next device pending
# until `iothubctl devices approve`; a CRL from `openssl ca -gencrl` uploaded with iothubctl
# refuses a device and closes its session; `device-cas disable` closes every session of the
# CA within about a second and refuses new ones, `enable` admits them again; POST
# /v1/devices/{id}/revoke works for factory devices; a device under an unknown CA is refused.
. "$(dirname "$0")/api_lib.sh"

api_setup factory
expect "iothubd init, then iothubd serve answers /healthz" $?
CTL() { "$BUILD/iothubctl" --url "$BASE" --cacert trust.pem --token-file admin.token "$@" >ctl.out 2>ctl.err; }
field() { "$PY" -c 'import json, sys; print(json.load(open("ctl.out"))[sys.argv[1]])' "$1"; }
# loads_reach N: iothubd has (re)loaded its device CAs N times (after each NOTIFY).
loads_reach() {
    for _ in $(seq 100); do
        [ "$(grep -c 'device CAs: ' serve.log)" -ge "$1" ] && return 0
        sleep 0.1
    done
    return 1
}
loads() { grep -c 'device CAs: ' serve.log; }
# ctl_ca ARGS...: iothubctl device-cas ARGS, then waits until iothubd reloaded its device CAs.
ctl_ca() {
    local n
    n=$(loads)
    CTL device-cas "$@" && loads_reach $((n + 1))
}
# lost OUT [TENTHS]: the mosquitto_sub writing OUT lost its connection within TENTHS/10 s.
lost() {
    for _ in $(seq "${2:-30}"); do
        grep -q 'connection was lost\|Connection Refused\|Error' "$1" 2>/dev/null && return 0
        sleep 0.05
        sleep 0.05
    done
    return 1
}
loads_reach 1 && CTL products create "Factory sensor" --json && PK=$(field product_key)
expect "device CAs loaded at start; iothubctl products create (the product of the factory CA)" $?

# ---- the maker: a factory CA, its registration with proof of possession ------------------------
mkdir -p line && : >line/index && echo 1000 >line/serial && echo 01 >line/crlnumber
cat >factory.cnf <<'CNF'
[ca]
default_ca = line
[line]
database = line/index
new_certs_dir = line
serial = line/serial
crlnumber = line/crlnumber
default_md = sha256
default_days = 365
default_crl_days = 7
policy = any
unique_subject = no
[any]
commonName = supplied
[factory_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[device]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
CNF
for ca in factory_ca rogue_ca; do
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$ca.key" \
        -out "$ca.pem" -days 3650 -subj "/O=Maker/CN=$ca" -config factory.cnf \
        -extensions factory_ca 2>>openssl.log || break
done
CTL device-cas code --json && CODE=$(field code) &&
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout verification.key \
        -subj "/CN=$CODE" -out verification.csr 2>>openssl.log &&
    openssl x509 -req -in verification.csr -CA factory_ca.pem -CAkey factory_ca.key \
        -set_serial 0x0fce -days 1 -extfile factory.cnf -extensions device \
        -out verification.pem 2>>openssl.log &&
    ctl_ca register --product "$PK" factory_ca.pem verification.pem auto --json &&
    FAB=$(field id) && [ "$(field registration)" = auto ]
expect "iothubctl device-cas code + register (verification certificate CN=code signed by the CA key)" $?

# ---- the line: device certificates signed offline -------------------------------------------------
# line_sign NAME CN [CA]: NAME.key and NAME.pem, signed by CA (factory_ca) with openssl ca.
line_sign() {
    local ca=${3:-factory_ca}
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1.key" \
        -subj "/CN=$2" -out "$1.csr" 2>>openssl.log &&
        openssl ca -config factory.cnf -batch -notext -extensions device -in "$1.csr" \
            -cert "$ca.pem" -keyfile "$ca.key" -out "$1.pem" >>openssl.log 2>&1
}
serial_of() { openssl x509 -in "$1.pem" -noout -serial | cut -d= -f2; }
# uuid_of CN: the id a factory device computes offline (docs/mqtt.md): uuid5(NAMESPACE_URL,
# "<SHA-256 of the CA certificate DER, lower hex>/<CN>").
FP=$(openssl x509 -in factory_ca.pem -outform der | sha256sum | cut -d' ' -f1)
uuid_of() { "$PY" -c 'import sys, uuid; print(uuid.uuid5(uuid.NAMESPACE_URL, sys.argv[1] + "/" + sys.argv[2]))' "$FP" "$1"; }
line_sign d1 SN-0001 && line_sign d2 SN-0002 && line_sign d3 SN-0003 &&
    line_sign d4 SN-0004 && line_sign d9 SN-0009 rogue_ca
expect "five device certificates signed on the line with openssl ca, no API call" $?

# ---- first connection: just-in-time registration ------------------------------------------------
U1=$(uuid_of SN-0001) U2=$(uuid_of SN-0002) U3=$(uuid_of SN-0003) U4=$(uuid_of SN-0004)
sub d1 cmd.out -t "devices/$U1/commands/#" -q 1 -C 1 -W 10
rc=$?
[ $rc = 0 ] && CTL commands send "$U1" x "hello factory" && end_sub &&
    grep -q "devices/$U1/commands/x hello factory" cmd.out
expect "SN-0001 connects with no prior API call; iothubctl commands send reaches devices/<uuid5>/commands/x" $?
pub d3 -t "devices/$U3/telemetry" -m first && pub d4 -t "devices/$U4/telemetry" -m first
expect "SN-0003 and SN-0004 connect and publish on their uuid5 topics" $?
bearer "$ADMIN" GET /v1/devices
"$PY" -c '
import json, sys
d = {x["device_id"]: x for x in json.load(open("body.out"))["devices"]}
for u in sys.argv[2:]:
    assert d[u]["status"] == "active" and d[u]["device_ca_id"] == sys.argv[1], d.get(u)' "$FAB" "$U1" "$U3" "$U4"
expect "GET /v1/devices lists them active, with device_ca_id" $?
bearer "$ADMIN" GET "/v1/devices/$U1"
[ "$STATUS" = 200 ] && [ "$(jf serial_number)" = SN-0001 ] && [ "$(jf device_ca_id)" = "$FAB" ] &&
    [ "$(jf certificates.0.serial)" = "$(serial_of d1)" ] && [ "$(jf certificates.0.device_ca_id)" = "$FAB" ]
expect "GET /v1/devices/{id}: serial number = CN, its certificate naming the device CA" $?
CTL devices show "$U1" && grep -q "^device ca: *$FAB" ctl.out && grep -q "^serial number: *SN-0001" ctl.out &&
    CTL certs show "$(serial_of d1)" && grep -q "^device ca: *$FAB" ctl.out
expect "iothubctl devices show / certs show name the device CA" $?
bearer "$ADMIN" GET "/v1/certificates/$(serial_of d1)"
[ "$STATUS" = 200 ] && [ "$(jf device_ca_id)" = "$FAB" ] && [ "$(jf device_id)" = "$U1" ] &&
    [ "$(jf status)" = valid ] && [ "$(jf certificate | openssl x509 -noout -fingerprint)" = "$(openssl x509 -in d1.pem -noout -fingerprint)" ] ||
    echo "GET /v1/certificates/$(serial_of d1): $STATUS $BODY" >&2
expect "GET /v1/certificates/{serial}: device_ca_id, device_id, the PEM signed on the line" $?
bearer "$ADMIN" GET "/v1/audit?limit=100"
"$PY" -c '
import json, sys
a = [e for e in json.load(open("body.out"))["entries"] if e["action"] == "device.registered_jit"]
assert sorted(e["target"] for e in a) == sorted(sys.argv[1:]), a' "$U1" "$U3" "$U4"
expect "GET /v1/audit shows one device.registered_jit per device" $?
CTL device-cas show "$FAB" --json && [ "$(field devices)" = 3 ]
expect "iothubctl device-cas show counts the CA's 3 devices" $?

# ---- policy approve: the next device waits for an operator -----------------------------------------
ctl_ca registration "$FAB" approve --json && [ "$(field registration)" = approve ]
expect "iothubctl device-cas registration ID approve (PATCH), reloaded by iothubd" $?
pub d2 -t "devices/$U2/telemetry" -m x
[ $? != 0 ] && tail -3 pub.log | grep -q 'not authori'
expect "SN-0002 is refused with CONNACK not authorized" $?
CTL devices list --pending --json && "$PY" -c '
import json, sys
d = json.load(open("ctl.out"))["devices"]
assert [(x["device_id"], x["device_ca_id"], x["status"]) for x in d] == [(sys.argv[1], sys.argv[2], "pending")], d' "$U2" "$FAB"
expect "iothubctl devices list --pending (GET /v1/devices?status=pending) lists it, and only it" $?
pub d1 -t "devices/$U1/telemetry" -m x
expect "an already registered device still connects under policy approve" $?
CTL devices approve "$U2" && pub d2 -t "devices/$U2/telemetry" -m x
expect "iothubctl devices approve, then SN-0002 connects" $?

# ---- the CA's CRL -----------------------------------------------------------------------------------
sub d2 live2.out -t "devices/$U2/commands/#" -W 20
openssl ca -config factory.cnf -revoke d2.pem -cert factory_ca.pem -keyfile factory_ca.key >>openssl.log 2>&1 &&
    openssl ca -config factory.cnf -gencrl -cert factory_ca.pem -keyfile factory_ca.key -out factory.crl >>openssl.log 2>&1 &&
    ctl_ca crl upload "$FAB" factory.crl && lost live2.out 20
expect "a CRL from openssl ca -gencrl, uploaded with iothubctl, closes SN-0002's live session" $?
kill_sub
pub d2 -t "devices/$U2/telemetry" -m x
rc=$?
tls_probe crl.out "$MQTT_PORT" trust.pem -cert d2.pem -key d2.key
[ $rc != 0 ] && grep -q 'alert certificate revoked' crl.out
expect "SN-0002 is refused at the handshake afterwards (certificate revoked)" $?
pub d1 -t "devices/$U1/telemetry" -m x
expect "SN-0001, not on the CRL, still connects" $?

# ---- disable / enable the CA --------------------------------------------------------------------------
sub d1 live1.out -t "devices/$U1/commands/#" -W 20 && SUB1=$SUB_PID &&
    sub d3 live3.out -t "devices/$U3/commands/#" -W 20 &&
    bearer "$ADMIN" GET "/v1/devices/$U1" && [ "$(jf connected)" = true ]
expect "two devices of the CA connected (GET /v1/devices/{id}: connected true)" $?
n=$(loads) t0=$(date +%s%N)
CTL device-cas disable "$FAB" && lost live1.out 20 && lost live3.out 20
rc=$? ms=$((($(date +%s%N) - t0) / 1000000))
[ $rc = 0 ] && [ $ms -le 1500 ]
expect "iothubctl device-cas disable closes both sessions in ${ms} ms (iothubctl start included)" $?
kill_sub
kill "${SUB1:-}" 2>/dev/null
loads_reach $((n + 1)) && pub d1 -t "devices/$U1/telemetry" -m x
rc=$?
tls_probe dis.out "$MQTT_PORT" trust.pem -cert d1.pem -key d1.key
[ $rc != 0 ] && grep -q 'alert unknown ca' dis.out
expect "a new connection of the disabled CA's device is refused at the handshake" $?
ctl_ca enable "$FAB" && pub d1 -t "devices/$U1/telemetry" -m x
expect "iothubctl device-cas enable: the device is accepted again" $?

# ---- revocation through the API, an unknown CA -------------------------------------------------------------
sub d3 live3b.out -t "devices/$U3/commands/#" -W 20
bearer "$ADMIN" POST "/v1/devices/$U3/revoke" '{"reason":"keyCompromise"}'
[ "$STATUS" = 200 ] && [ "$(jf revoked.0)" = "$(serial_of d3)" ] && lost live3b.out 20
expect "POST /v1/devices/{id}/revoke revokes the factory certificate and closes the session" $?
kill_sub
pub d3 -t "devices/$U3/telemetry" -m x
[ $? != 0 ] && bearer "$ADMIN" GET "/v1/devices/$U3" && [ "$(jf status)" = revoked ] &&
    [ "$(jf certificates.0.status)" = revoked ]
expect "the revoked device is refused; GET /v1/devices/{id} shows it revoked" $?
pub d9 -t x -m x
rc=$?
tls_probe unk.out "$MQTT_PORT" trust.pem -cert d9.pem -key d9.key
[ $rc != 0 ] && grep -q 'alert unknown ca' unk.out &&
    [ "$(sql "$URL" "SELECT count(*) FROM devices WHERE serial_number = 'SN-0009'")" = 0 ]
expect "a device under an unregistered CA is refused at the handshake, not registered" $?
# refusals_audited: GET /v1/audit shows the handshake refusals of the disabled CA (naming
# it) and of the unknown CA (written off the loop, at most 10 a second: polled up to 10 s).
refusals_audited() {
    bearer "$ADMIN" GET "/v1/audit?limit=200" && "$PY" -c '
import json, sys
r = {(e["target"], (e["details"] or {}).get("reason")) for e in json.load(open("body.out"))["entries"]
     if e["action"] == "mqtt.handshake_refused"}
assert (sys.argv[1], "device_ca_disabled") in r and any(x[1] == "unknown_ca" for x in r), r' "$FAB" 2>"${1:-/dev/null}"
}
for _ in $(seq 100); do refusals_audited && break; sleep 0.1; done
refusals_audited /dev/stderr
expect "GET /v1/audit shows the refusals: disabled CA (naming it), unknown CA" $?
pub d4 -t "devices/$U4/telemetry" -m x && server_alive
expect "SN-0004 still connects; iothubd is up" $?
finish
