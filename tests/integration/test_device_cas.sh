#!/usr/bin/env bash
# Factory device CAs over the REST API (issue 15 item 3), with certificates made by openssl
# as a maker would: registration codes, registration with proof of possession and each
# refusal (wrong code, verification certificate not signed by the CA's key or expired, CA
# without cA=TRUE or keyCertSign, duplicate, per-product cap), roles, enable/disable, the
# NOTIFY of every change, CRL upload (good, bad signature, older number) and fetch from the
# CA's distribution point (python http.server), approval of pending devices, iothubctl.
. "$(dirname "$0")/api_lib.sh"

CRL_PORT=$(free_port)
URL=$(new_db devca) || exit 1
write_conf iothub.conf "$URL" "device_ca_crl_refresh = 2" "device_ca_max_per_product = 3"
"$IOTHUBD" -c iothub.conf init --token-file admin.token >init.out 2>init.err &&
    ADMIN=$(cat admin.token) &&
    "$IOTHUBD" -c iothub.conf ca chain >trust.pem 2>/dev/null &&
    start_server iothub.conf serve.log
expect "iothubd init and serve (device_ca_crl_refresh = 2, device_ca_max_per_product = 3)" $?

# ---- the maker's side: an openssl configuration with the profiles used below ------------
mkdir -p cadb && : >cadb/index.txt && echo 01 >cadb/serial && echo 01 >cadb/crlnumber
cat >maker.cnf <<'CNF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca]
default_ca = factory
[factory]
database = cadb/index.txt
new_certs_dir = cadb
serial = cadb/serial
crlnumber = cadb/crlnumber
default_md = sha256
default_crl_days = 7
policy = any
unique_subject = no
[any]
commonName = supplied
[ca_ok]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[ca_not_ca]
basicConstraints = critical,CA:FALSE
keyUsage = critical,keyCertSign,cRLSign
[ca_no_certsign]
basicConstraints = critical,CA:TRUE
keyUsage = critical,digitalSignature,cRLSign
[leaf]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
CNF
# make_ca NAME PROFILE SUBJECT: NAME.key (EC P-256) and NAME.pem, self-signed.
make_ca() {
    openssl req -x509 -config maker.cnf -extensions "$2" -newkey ec \
        -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1.key" -out "$1.pem" -days 365 \
        -subj "$3" 2>>openssl.err
}
# verification NAME CA CODE [openssl x509 options]: NAME.pem with CN=CODE signed by CA.key.
verification() {
    local name=$1 ca=$2 code=$3
    shift 3
    openssl req -new -config maker.cnf -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$name.key" -subj "/CN=$code" -out "$name.csr" 2>>openssl.err &&
        openssl x509 -req -in "$name.csr" -CA "$ca.pem" -CAkey "$ca.key" -set_serial "0x$RANDOM$RANDOM" \
            -days 1 -extfile maker.cnf -extensions leaf -out "$name.pem" "$@" 2>>openssl.err
}
# register_body OUT PRODUCT CA VERIFICATION [registration [crl_url]]
register_body() {
    "$PY" -c '
import json, sys
b = {"product_key": sys.argv[2], "ca_certificate": open(sys.argv[3]).read(),
     "verification_certificate": open(sys.argv[4]).read()}
if len(sys.argv) > 5: b["registration"] = sys.argv[5]
if len(sys.argv) > 6: b["crl_url"] = sys.argv[6]
json.dump(b, open(sys.argv[1], "w"))' "$@"
}
new_code() {
    bearer "$ADMIN" POST /v1/device-cas/registration-codes && jf code
}
audit_result() { # audit_result ACTION: the result column of the newest row of ACTION
    sql "$URL" "SELECT result FROM audit_log WHERE action = '$1' ORDER BY id DESC LIMIT 1"
}

bearer "$ADMIN" POST /v1/products '{"name":"Sensor"}'
PK=$(jf product_key)
bearer "$ADMIN" POST /v1/tokens '{"name":"ci-auditor","role":"auditor"}'
AUDITOR=$(jf token)
bearer "$ADMIN" POST /v1/tokens '{"name":"ci-operator","role":"operator"}'
OPERATOR=$(jf token)
make_ca fca ca_ok "/O=Maker/CN=Factory CA 1" && make_ca other ca_ok "/O=Maker/CN=Factory CA 1" &&
    make_ca notca ca_not_ca "/O=Maker/CN=Not a CA" &&
    make_ca nosign ca_no_certsign "/O=Maker/CN=No keyCertSign"
expect "openssl: a factory CA, another key under the same name, a CA:FALSE and a no-keyCertSign certificate" $?

# ---- registration codes ---------------------------------------------------------------
bearer "$ADMIN" POST /v1/device-cas/registration-codes
CODE=$(jf code)
[ "$STATUS" = 201 ] && [[ $CODE =~ ^[0-9a-f]{64}$ ]] &&
    [ "$(sql "$URL" "SELECT expires_at > now() + interval '50 minutes' AND expires_at < now() + interval '70 minutes' FROM device_ca_codes WHERE code = '$CODE'")" = t ]
expect "POST /v1/device-cas/registration-codes -> 201 {code: 64 hex, expires_at in 1 h}" $?
bearer "$AUDITOR" POST /v1/device-cas/registration-codes
expect_error "auditor: registration code -> 403 forbidden" 403 forbidden

# ---- refusals -------------------------------------------------------------------------
verification wrongcode fca "$(printf '%064d' 7)" && register_body b.json "$PK" fca.pem wrongcode.pem
bearer "$ADMIN" POST /v1/device-cas @b.json
expect_error "verification certificate with a code never issued -> 422 verification_code_unknown" 422 verification_code_unknown
[ "$(audit_result device_ca.register)" = "422 verification_code_unknown" ]
expect "the refusal is audited (actor, action, result)" $?

verification notsigned other "$CODE" && register_body b.json "$PK" fca.pem notsigned.pem
bearer "$ADMIN" POST /v1/device-cas @b.json
expect_error "verification certificate signed by another key (same issuer name) -> 422 verification_signature_invalid" 422 verification_signature_invalid

openssl req -new -config maker.cnf -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout expired.key -subj "/CN=$CODE" -out expired.csr 2>>openssl.err &&
    openssl ca -batch -config maker.cnf -cert fca.pem -keyfile fca.key -in expired.csr \
        -out expired.pem -startdate 20200101000000Z -enddate 20200102000000Z -notext \
        -extensions leaf >>openssl.err 2>&1 && register_body b.json "$PK" fca.pem expired.pem
bearer "$ADMIN" POST /v1/device-cas @b.json
expect_error "expired verification certificate (openssl ca -startdate/-enddate in 2020) -> 422 verification_expired" 422 verification_expired

verification v_notca notca "$CODE" && register_body b.json "$PK" notca.pem v_notca.pem
bearer "$ADMIN" POST /v1/device-cas @b.json
expect_error "CA certificate with basicConstraints CA:FALSE -> 422 ca_not_ca" 422 ca_not_ca
verification v_nosign nosign "$CODE" && register_body b.json "$PK" nosign.pem v_nosign.pem
bearer "$ADMIN" POST /v1/device-cas @b.json
expect_error "CA certificate whose keyUsage lacks keyCertSign -> 422 ca_no_keycertsign" 422 ca_no_keycertsign
"$PY" -c '
import json; b = json.load(open("b.json")); b["ca_certificate"] += "trailing"; json.dump(b, open("b2.json", "w"))'
bearer "$ADMIN" POST /v1/device-cas @b2.json
expect_error "text after the PEM block -> 422 ca_certificate_malformed (strict parsing)" 422 ca_certificate_malformed
[ "$(count "device_ca_codes WHERE code = '$CODE' AND used_at IS NULL")" = 1 ] &&
    [ "$(count device_cas)" = 0 ]
expect "after the refusals nothing is registered and the code is still unused" $?

# ---- registration ---------------------------------------------------------------------
verification good fca "$CODE" && register_body reg.json "$PK" fca.pem good.pem
bearer "$AUDITOR" POST /v1/device-cas @reg.json
expect_error "auditor: POST /v1/device-cas -> 403 forbidden" 403 forbidden
# A psql session LISTENs from here on; it prints what it received after each later command.
mkfifo listen.fifo
psql "$URL" -X -q <listen.fifo >notify.out 2>&1 &
LISTENER=$!
exec 7>listen.fifo
echo "LISTEN iothub_device_cas; LISTEN iothub_device_approved; SELECT 'listening';" >&7
for _ in $(seq 50); do grep -q listening notify.out && break; sleep 0.1; done
# notified CHANNEL PAYLOAD: how many notifications of PAYLOAD on CHANNEL so far.
notified() {
    local before
    before=$(grep -c flush notify.out)
    echo "SELECT 'flush';" >&7
    for _ in $(seq 50); do [ "$(grep -c flush notify.out)" -gt "$before" ] && break; sleep 0.1; done
    grep -c "\"$1\" with payload \"$2\"" notify.out
}
bearer "$ADMIN" POST /v1/device-cas @reg.json
CA1=$(jf id)
FP=$(openssl x509 -in fca.pem -outform DER | sha256sum | cut -d' ' -f1)
[ "$STATUS" = 201 ] && [ "$(jf product_key)" = "$PK" ] && [ "$(jf fingerprint)" = "$FP" ] &&
    [ "$(jf status)" = enabled ] && [ "$(jf registration)" = auto ] &&
    [[ $(jf subject) == *"Factory CA 1"* ]] && [ -n "$(jf not_after)" ]
expect "POST /v1/device-cas -> 201 {id, product_key, subject, fingerprint (SHA-256 of the DER), not_after, status, registration}" $?
[ "$(count "device_ca_codes WHERE code = '$CODE' AND used_at IS NOT NULL")" = 1 ] &&
    [ "$(audit_result device_ca.register)" = ok ]
expect "the code is marked used and the registration audited" $?
[ "$(notified iothub_device_cas "$CA1")" = 1 ]
expect "the registration is announced: NOTIFY iothub_device_cas '<id>'" $?
bearer "$ADMIN" POST /v1/device-cas @reg.json
expect_error "the same code again -> 422 verification_code_used" 422 verification_code_used
CODE2=$(new_code) && verification good2 fca "$CODE2" && register_body reg2.json "$PK" fca.pem good2.pem
bearer "$ADMIN" POST /v1/device-cas @reg2.json
expect_error "the same CA with a fresh code -> 409 device_ca_exists" 409 device_ca_exists
[ "$(count "device_ca_codes WHERE code = '$CODE2' AND used_at IS NULL")" = 1 ]
expect "a refused registration leaves its code unused (one transaction)" $?

# ---- reading: auditors list what the hub trusts ---------------------------------------
bearer "$AUDITOR" GET /v1/device-cas
jf_file_ca() { "$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["device_cas"][0]["certificate_pem"], end="")' body.out; }
[ "$STATUS" = 200 ] && [ "$(jf device_cas.0.id)" = "$CA1" ] && jf_file_ca >listed.pem &&
    [ "$(openssl x509 -in listed.pem -outform DER | sha256sum | cut -d' ' -f1)" = "$FP" ]
expect "auditor: GET /v1/device-cas lists the CA with its PEM (openssl reads the same certificate)" $?
bearer "$AUDITOR" GET "/v1/device-cas/$CA1"
[ "$STATUS" = 200 ] && [ "$(jf fingerprint)" = "$FP" ] && [ "$(jf crl_number)" = null ]
expect "auditor: GET /v1/device-cas/{id}" $?
bearer "$AUDITOR" GET /v1/device-cas/00000000-0000-0000-0000-000000000000
expect_error "GET of an unknown id -> 404 not_found" 404 not_found

# ---- disable / enable -----------------------------------------------------------------
bearer "$AUDITOR" PATCH "/v1/device-cas/$CA1" '{"status":"disabled"}'
expect_error "auditor: PATCH -> 403 forbidden" 403 forbidden
bearer "$ADMIN" PATCH "/v1/device-cas/$CA1" '{"status":"paused"}'
expect_error "PATCH {status: paused} -> 400 invalid_field" 400 invalid_field
bearer "$ADMIN" PATCH "/v1/device-cas/$CA1" '{"status":"disabled"}'
[ "$STATUS" = 200 ] && [ "$(jf status)" = disabled ] && [ "$(jf disabled_at)" != null ] &&
    [ "$(audit_result device_ca.update)" = ok ]
expect "PATCH {status: disabled} -> 200, audited" $?
bearer "$ADMIN" PATCH "/v1/device-cas/$CA1" '{"status":"enabled","registration":"approve"}'
[ "$STATUS" = 200 ] && [ "$(jf status)" = enabled ] && [ "$(jf disabled_at)" = null ] &&
    [ "$(jf registration)" = approve ]
expect "PATCH {status: enabled, registration: approve} -> 200" $?
[ "$(notified iothub_device_cas "$CA1")" = 3 ]
expect "each PATCH is announced on iothub_device_cas" $?

# ---- CRL upload -----------------------------------------------------------------------
openssl ca -gencrl -config maker.cnf -cert fca.pem -keyfile fca.key -out crl1.pem >>openssl.err 2>&1 &&
    openssl ca -gencrl -config maker.cnf -cert fca.pem -keyfile fca.key -out crl2.pem >>openssl.err 2>&1 &&
    openssl ca -gencrl -config maker.cnf -cert other.pem -keyfile other.key -out crlbad.pem >>openssl.err 2>&1 &&
    openssl crl -in crl2.pem -outform DER -out crl2.der
expect "openssl ca -gencrl: CRLs number 1 and 2 of the factory CA, and one by another key" $?
call PUT "/v1/device-cas/$CA1/crl" -H "Authorization: Bearer $ADMIN" \
    -H 'Content-Type: application/pkix-crl' --data-binary @crl2.der
[ "$STATUS" = 200 ] && [ "$(jf crl_number)" = 2 ] &&
    [ "$(sql "$URL" "SELECT crl_number FROM device_cas WHERE id = '$CA1'")" = 2 ] &&
    [ "$(audit_result device_ca.crl)" = ok ]
expect "PUT /v1/device-cas/{id}/crl (DER) -> 200 {crl_number: 2}, stored, audited" $?
[ "$(notified iothub_device_cas "$CA1")" = 4 ]
expect "the stored CRL is announced on iothub_device_cas" $?
call PUT "/v1/device-cas/$CA1/crl" -H "Authorization: Bearer $ADMIN" --data-binary @crl1.pem
expect_error "an older CRL (number 1, PEM) -> 409 crl_not_newer" 409 crl_not_newer
call PUT "/v1/device-cas/$CA1/crl" -H "Authorization: Bearer $ADMIN" --data-binary @crlbad.pem
expect_error "a CRL signed by another key under the same name -> 422 crl_signature_invalid" 422 crl_signature_invalid
[ "$(audit_result device_ca.crl)" = "422 crl_signature_invalid" ]
expect "the refused CRL is audited" $?

# ---- CRL fetch from the distribution point ----------------------------------------------
mkdir -p www && openssl ca -gencrl -config maker.cnf -cert fca.pem -keyfile fca.key -out www/crl3.pem >>openssl.err 2>&1
(cd www && exec python3 -m http.server "$CRL_PORT" --bind 127.0.0.1 >../http.log 2>&1) &
HTTPD=$!
make_ca fca2 ca_ok "/O=Maker/CN=Factory CA 2"
CODE3=$(new_code) && verification good3 fca2 "$CODE3" &&
    register_body reg3.json "$PK" fca2.pem good3.pem approve "http://127.0.0.1:$CRL_PORT/crl-fca2.pem"
bearer "$ADMIN" POST /v1/device-cas @reg3.json
CA2=$(jf id)
[ "$STATUS" = 201 ] && [ "$(jf registration)" = approve ]
expect "a second CA (registration approve, crl_url on a local http.server) -> 201" $?
openssl ca -gencrl -config maker.cnf -cert fca2.pem -keyfile fca2.key -out www/crl-fca2.pem >>openssl.err 2>&1
for _ in $(seq 60); do
    [ "$(sql "$URL" "SELECT crl_number IS NOT NULL FROM device_cas WHERE id = '$CA2'")" = t ] && break
    sleep 0.2
done
[ "$(sql "$URL" "SELECT crl_number FROM device_cas WHERE id = '$CA2'")" -ge 1 ] 2>/dev/null &&
    grep -q "GET /crl-fca2.pem" http.log
expect "the daemon fetches the CA's CRL from crl_url and stores it" $?
curl -sk "https://127.0.0.1:$API_PORT/metrics" >metrics.out
grep -q '^iothub_device_ca_crl_fetches_total [1-9]' metrics.out &&
    grep -q '^iothub_device_cas_registered_total 2$' metrics.out
expect "/metrics counts CRL fetches and registrations" $?
kill "$HTTPD" 2>/dev/null; wait "$HTTPD" 2>/dev/null
for _ in $(seq 100); do
    grep -q "CRL fetch from http://127.0.0.1:$CRL_PORT/crl-fca2.pem failed" serve.log && break
    sleep 0.2
done
grep -q '^iothub_device_ca_crl_fetch_failures_total [1-9]' <(curl -sk "https://127.0.0.1:$API_PORT/metrics") &&
    grep -q "CRL fetch from http://127.0.0.1:$CRL_PORT/crl-fca2.pem failed" serve.log
expect "with the distribution point down, the failed fetch is logged and counted" $?

# ---- per-product cap ------------------------------------------------------------------
make_ca fca3 ca_ok "/O=Maker/CN=Factory CA 3" && make_ca fca4 ca_ok "/O=Maker/CN=Factory CA 4"
CODE4=$(new_code) && verification g4 fca3 "$CODE4" && register_body r4.json "$PK" fca3.pem g4.pem
bearer "$ADMIN" POST /v1/device-cas @r4.json
expect_status "a third CA of the product -> 201" 201
CODE5=$(new_code) && verification g5 fca4 "$CODE5" && register_body r5.json "$PK" fca4.pem g5.pem
bearer "$ADMIN" POST /v1/device-cas @r5.json
expect_error "a fourth CA with device_ca_max_per_product = 3 -> 409 device_ca_limit" 409 device_ca_limit

# ---- pending devices ------------------------------------------------------------------
bearer "$ADMIN" POST /v1/devices "{\"product_key\":\"$PK\",\"serial_number\":\"SN-P1\"}"
DEV=$(jf device_id)
sql "$URL" "UPDATE devices SET status = 'pending', device_ca_id = '$CA2' WHERE id = '$DEV'" >/dev/null
bearer "$AUDITOR" GET '/v1/devices?status=pending'
[ "$STATUS" = 200 ] && [ "$(jf devices.0.device_id)" = "$DEV" ] &&
    [ "$("$PY" -c 'import json; print(len(json.load(open("body.out"))["devices"]))')" = 1 ]
expect "GET /v1/devices?status=pending lists the pending device only" $?
bearer "$AUDITOR" POST "/v1/devices/$DEV/approve"
expect_error "auditor: approve -> 403 forbidden" 403 forbidden
bearer "$OPERATOR" POST "/v1/devices/$DEV/approve"
[ "$STATUS" = 200 ] && [ "$(jf status)" = active ] &&
    [ "$(sql "$URL" "SELECT status FROM devices WHERE id = '$DEV'")" = active ] &&
    [ "$(audit_result device.approve)" = ok ]
expect "operator: POST /v1/devices/{id}/approve -> 200 active, audited" $?
[ "$(notified iothub_device_approved "$DEV")" = 1 ]
expect "the approval is announced: NOTIFY iothub_device_approved '<device id>'" $?
exec 7>&-
wait "$LISTENER"
bearer "$OPERATOR" POST "/v1/devices/$DEV/approve"
expect_error "approving it again -> 409 device_not_pending" 409 device_not_pending

# ---- iothubctl ------------------------------------------------------------------------
CTL() { "$BUILD/iothubctl" --url "$BASE" --cacert trust.pem --token-file admin.token "$@" >ctl.out 2>ctl.err; }
CTL device-cas code --json && C6=$("$PY" -c 'import json; print(json.load(open("ctl.out"))["code"])') &&
    [[ $C6 =~ ^[0-9a-f]{64}$ ]]
expect "iothubctl device-cas code --json" $?
bearer "$ADMIN" PATCH "/v1/device-cas/$CA1" '{"status":"disabled"}' >/dev/null
verification g6 fca4 "$C6" && CTL device-cas register --product "$PK" fca4.pem g6.pem auto &&
    grep -q "^status: *enabled" ctl.out
expect "iothubctl device-cas register --product KEY CA VERIFICATION auto" $?
CTL device-cas list && grep -q "Factory CA 4" ctl.out && grep -q "$CA2" ctl.out
expect "iothubctl device-cas list" $?
CTL device-cas show "$CA2" --pem && openssl x509 -in ctl.out -noout -subject | grep -q "Factory CA 2"
expect "iothubctl device-cas show ID --pem" $?
CTL device-cas disable "$CA2" && grep -q "^status: *disabled" ctl.out &&
    CTL device-cas enable "$CA2" --json && [ "$("$PY" -c 'import json; print(json.load(open("ctl.out"))["status"])')" = enabled ]
expect "iothubctl device-cas disable / enable --json" $?
CTL device-cas crl upload "$CA1" crl1.pem; [ $? = 1 ] && grep -q crl_not_newer ctl.err
expect "iothubctl device-cas crl upload of an older CRL exits 1 with crl_not_newer" $?
openssl ca -gencrl -config maker.cnf -cert fca.pem -keyfile fca.key -out crl9.pem >>openssl.err 2>&1 &&
    openssl crl -in crl9.pem -outform DER -out crl9.der && CTL device-cas crl upload "$CA1" crl9.der &&
    grep -q "^crl number: *[0-9]" ctl.out
expect "iothubctl device-cas crl upload ID FILE.der" $?
bearer "$ADMIN" POST /v1/devices "{\"product_key\":\"$PK\",\"serial_number\":\"SN-P2\"}"
DEV2=$(jf device_id)
sql "$URL" "UPDATE devices SET status = 'pending', device_ca_id = '$CA2' WHERE id = '$DEV2'" >/dev/null
CTL devices approve "$DEV2" && grep -q "^status: *active" ctl.out
expect "iothubctl devices approve ID" $?
server_alive
expect "the server is still up" $?
stop_server
expect "iothubd stops cleanly (the CRL fetcher thread ends)" $?
finish
