#!/usr/bin/env bash
# The REST API end to end, driven with curl and checked with openssl as a user would (SPEC
# §4, §5): products, tokens and roles, provisioning with a token and by product claim,
# listing, activation with `openssl req` CSRs, the served chain and CRL, supersession,
# revocation, reset, services, the audit trail, health and metrics.
. "$(dirname "$0")/api_lib.sh"

api_setup flow
expect "iothubd init, then iothubd serve answers /healthz" $?

# ---- TLS and the served chain -----------------------------------------------------------
call GET /v1/ca
[ "$STATUS" = 200 ] && cmp -s body.out trust.pem &&
    [ "$(header Content-Type)" = application/pem-certificate-chain ]
expect "GET /v1/ca serves, as PEM, the chain \`iothubd ca chain\` prints" $?
curl -sS --cacert trust.pem --resolve "localhost:$API_PORT:127.0.0.1" -o /dev/null \
    "https://localhost:$API_PORT/healthz" 2>curl-host.err
expect "the API certificate verifies for the name localhost with the chain" $?
env -u CURL_CA_BUNDLE -u SSL_CERT_FILE -u SSL_CERT_DIR curl -sS -o /dev/null "$BASE/healthz" 2>curl-notrust.err
[ $? = 60 ] && grep -q 'SSL certificate problem' curl-notrust.err && server_alive
expect "without the iothub chain curl refuses the API certificate (TLS is really verified)" $?
call GET '/v1/ca?format=p7b'
cp body.out chain.p7b
[ "$STATUS" = 200 ] && [[ $(header Content-Type) == application/pkcs7-mime* ]] &&
    openssl pkcs7 -inform DER -in chain.p7b -print_certs -out p7.pem 2>/dev/null &&
    [ "$(grep -c 'BEGIN CERTIFICATE' p7.pem)" = 2 ] &&
    diff <(grep -v '^subject=\|^issuer=\|^$' p7.pem | sort) <(sort trust.pem) >/dev/null
expect "GET /v1/ca?format=p7b: openssl pkcs7 -print_certs reads the same two certificates" $?

# ---- products and tokens ----------------------------------------------------------------
bearer "$ADMIN" POST /v1/products '{"name":"Thermostat"}'
PK=$(jf product_key) PSECRET=$(jf product_secret)
[ "$STATUS" = 201 ] && [[ $PK =~ ^[0-9a-f]{16}$ ]] && [ ${#PSECRET} -ge 16 ] &&
    [ "$(jf name)" = Thermostat ]
expect "POST /v1/products (admin) -> 201 {product_key, product_secret, name}" $?
[ "$(count "products WHERE product_key = '$PK' AND name = 'Thermostat'
            AND strpos(secret_hash, '$PSECRET') = 0")" = 1 ]
expect "the product is stored, its secret only as a hash" $?

declare -A TOK
for role in operator provisioner auditor; do
    bearer "$ADMIN" POST /v1/tokens "{\"name\":\"ci-$role\",\"role\":\"$role\"}"
    TOK[$role]=$(jf token)
    [ "$STATUS" = 201 ] && [ "$(jf role)" = "$role" ] && [ "$(jf name)" = "ci-$role" ] &&
        [[ ${TOK[$role]} =~ ^iothub_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$ ]]
    expect "admin creates a $role token -> 201 {token, name, role}" $?
done
[ "$(count "api_tokens WHERE role IN ('operator', 'provisioner', 'auditor')")" = 3 ]
expect "the three tokens are stored" $?

# ---- roles ------------------------------------------------------------------------------
bearer "${TOK[auditor]}" GET /v1/products
[ "$STATUS" = 200 ] && [ "$(jf products.0.product_key)" = "$PK" ] && [ "$(jf products.0.devices)" = 0 ]
expect "auditor: GET /v1/products lists the product" $?
bearer "${TOK[auditor]}" POST /v1/devices "{\"product_key\":\"$PK\",\"serial_number\":\"SN-AUD\"}"
expect_error "auditor: POST /v1/devices -> 403 forbidden" 403 forbidden
bearer "${TOK[auditor]}" POST /v1/products '{"name":"by auditor"}'
expect_error "auditor: POST /v1/products -> 403 forbidden" 403 forbidden
bearer "${TOK[provisioner]}" POST /v1/tokens '{"name":"by-provisioner","role":"admin"}'
expect_error "provisioner: POST /v1/tokens -> 403 forbidden" 403 forbidden
bearer "${TOK[operator]}" POST /v1/products '{"name":"by operator"}'
expect_error "operator: POST /v1/products -> 403 forbidden" 403 forbidden
bearer "${TOK[operator]}" POST /v1/tokens '{"name":"by-operator","role":"auditor"}'
expect_error "operator: POST /v1/tokens -> 403 forbidden" 403 forbidden
bearer "${TOK[operator]}" POST /v1/services '{"name":"by-operator"}'
expect_error "operator: POST /v1/services -> 403 forbidden" 403 forbidden
[ "$(count products)" = 1 ] && [ "$(count api_tokens)" = 4 ] && [ "$(count services)" = 0 ] &&
    [ "$(count devices)" = 0 ]
expect "refused calls wrote no product, token, service or device" $?

# ---- provisioning -----------------------------------------------------------------------
# provision TOKEN SERIAL: POST /v1/devices; sets ID and SECRET.
provision() {
    bearer "$1" POST /v1/devices "{\"product_key\":\"$PK\",\"serial_number\":\"$2\"}"
    ID=$(jf device_id) SECRET=$(jf device_secret)
}
uuid_re='^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
provision "$ADMIN" SN-0001
[ "$STATUS" = 201 ] && [[ $ID =~ $uuid_re ]] && [ ${#SECRET} -ge 16 ] &&
    [ "$(jf status)" = provisioned ]
expect "admin token: POST /v1/devices -> 201 {device_id, device_secret, status: provisioned}" $?
[ "$(count "devices WHERE id = '$ID' AND serial_number = 'SN-0001' AND status = 'provisioned'
            AND strpos(secret_hash, '$SECRET') = 0")" = 1 ]
expect "the device is stored, its secret only as a hash" $?
provision "${TOK[provisioner]}" SN-0002
expect_status "provisioner token: POST /v1/devices -> 201" 201
provision "${TOK[operator]}" SN-0003
expect_status "operator token: POST /v1/devices -> 201" 201
basic "$PK:$PSECRET" /v1/devices '{"serial_number":"SN-0004"}'
CLAIMED=$(jf device_id)
[ "$STATUS" = 201 ] && [[ $CLAIMED =~ $uuid_re ]] && [ "$(jf status)" = provisioned ] &&
    [ "$(jf product_key)" = "$PK" ]
expect "product claim (Basic product_key:product_secret) -> 201 under that product" $?
basic "$PK:$PSECRET" /v1/devices "{\"product_key\":\"$PK\",\"serial_number\":\"SN-0005\"}"
expect_status "product claim naming its own product_key -> 201" 201
provision "$ADMIN" SN-0001
expect_error "the same serial twice -> 409 duplicate_serial" 409 duplicate_serial
[ "$(count devices)" = 5 ]
expect "five devices are stored" $?

bearer "${TOK[auditor]}" GET "/v1/devices/$CLAIMED"
"$PY" -c '
import json, sys
d = json.load(open("body.out"))
assert set(d) >= {"device_id", "product_key", "serial_number", "status", "connected", "last_seen", "certificates"}, d
assert d["device_id"] == sys.argv[1] and d["product_key"] == sys.argv[2], d
assert d["serial_number"] == "SN-0004" and d["status"] == "provisioned", d
assert d["connected"] is False and d["last_seen"] is None and d["certificates"] == [], d' "$CLAIMED" "$PK" 2>>check.log &&
    [ "$STATUS" = 200 ]
expect "GET /v1/devices/{id} -> {device_id, product_key, serial_number, status, connected, last_seen, certificates}" $?

# Pagination: limit 2, follow next_after until it is null.
after='' pages=0 ok_pages=1
: >listed.txt
while [ $pages -lt 10 ]; do
    bearer "${TOK[auditor]}" GET "/v1/devices?limit=2${after:+&after=$after}"
    pages=$((pages + 1))
    [ "$STATUS" = 200 ] || { ok_pages=0; break; }
    "$PY" -c '
import json
d = json.load(open("body.out"))
assert len(d["devices"]) <= 2
for x in d["devices"]: print(x["device_id"])' >>listed.txt || ok_pages=0
    after=$(jf next_after)
    [ "$after" = null ] && break
    [ "$after" = "$(tail -n 1 listed.txt)" ] || ok_pages=0
done
sql "$URL" "SELECT id FROM devices ORDER BY id" >all.txt
[ $ok_pages = 1 ] && [ $pages = 3 ] && cmp -s listed.txt all.txt
expect "GET /v1/devices?limit=2&after=: 3 pages, next_after chains them, every device once, in order" $?
bearer "${TOK[auditor]}" GET "/v1/devices?limit=1000"
[ "$STATUS" = 200 ] && [ "$(jf next_after)" = null ] &&
    [ "$("$PY" -c 'import json; print(len(json.load(open("body.out"))["devices"]))')" = 5 ]
expect "GET /v1/devices?limit=1000 -> all five, next_after null" $?

# ---- activation -------------------------------------------------------------------------
fetch_crl crl0
expect "GET /v1/crl -> a DER CRL openssl reads" $?
[ "$(header Content-Type)" = application/pkix-crl ]
expect "the CRL is served as application/pkix-crl" $?
openssl crl -in crl0.pem -CAfile trust.pem -noout -verify 2>&1 | grep -q 'verify OK'
expect "the served CRL verifies with the served chain" $?
call GET '/v1/crl?format=pem'
[ "$STATUS" = 200 ] && cmp -s body.out crl0.pem
expect "GET /v1/crl?format=pem -> the same CRL in PEM" $?

declare -A DEV SEC SERIAL
for key in ec-p256 ec-p384 rsa-2048; do
    provision "$ADMIN" "SN-$key"
    DEV[$key]=$ID SEC[$key]=$SECRET
    make_csr "$key" "$key" "/CN=someone-else/O=not-the-product"
    csr_body "$key.csr" "$key.json"
    basic "$ID:$SECRET" "/v1/devices/$ID/activate" "@$key.json"
    SERIAL[$key]=$(jf serial)
    [ "$STATUS" = 201 ] && [[ ${SERIAL[$key]} =~ ^[0-7][0-9A-F]{31}$ ]] &&
        jf_file certificate "$key.pem" && jf_file ca_chain "$key.chain" &&
        [[ $(jf not_before) =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$ ]] &&
        [[ $(jf not_after) =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$ ]] &&
        [ "$(jf superseded)" = "[]" ]
    expect "[$key] POST /v1/devices/{id}/activate (Basic device_id:device_secret) -> 201 {certificate, ca_chain, serial, not_before, not_after}" $?
    cmp -s "$key.chain" trust.pem
    expect "[$key] ca_chain is the served chain" $?
    fetch_crl "crl-$key" && verify_cert "$key.pem" "crl-$key.pem" >verify.out 2>&1
    expect "[$key] openssl verify -crl_check accepts the certificate with the served chain and CRL" $?
    subj=$(openssl x509 -in "$key.pem" -noout -subject -nameopt RFC2253)
    [ "$subj" = "subject=CN=$ID,O=$PK" ] || [ "$subj" = "subject=O=$PK,CN=$ID" ]
    expect "[$key] subject is CN=<device id>, O=<product key>, whatever the CSR asked" $?
    cmp -s <(openssl x509 -in "$key.pem" -noout -pubkey) <(openssl pkey -in "$key.key" -pubout)
    expect "[$key] the certificate holds the CSR's public key" $?
    [ "$(openssl x509 -in "$key.pem" -noout -serial | cut -d= -f2)" = "${SERIAL[$key]}" ]
    expect "[$key] the serial in the answer is the certificate's" $?
    bearer "${TOK[auditor]}" GET "/v1/devices/$ID"
    [ "$(jf status)" = active ] && [ "$(jf certificates.0.serial)" = "${SERIAL[$key]}" ] &&
        [ "$(jf certificates.0.status)" = valid ]
    expect "[$key] the device is active and shows its valid certificate" $?
done
[ "$(count "certificates WHERE kind = 'device' AND status = 'valid'")" = 3 ]
expect "three valid device certificates are stored" $?

# CRL caching headers, before the next revocation changes the (delta) CRL.
call GET '/v1/crl?delta=1'
ETAG=$(header ETag) MODIFIED=$(header Last-Modified)
[ -n "$ETAG" ] && [ -n "$MODIFIED" ] && date -d "$MODIFIED" >/dev/null 2>&1 &&
    [ -n "$(header Expires)" ]
expect "GET /v1/crl has ETag, Last-Modified (a date) and Expires" $?
call GET '/v1/crl?delta=1' -H "If-None-Match: $ETAG"
[ "$STATUS" = 304 ] && [ ! -s body.out ] && [ "$(header ETag)" = "$ETAG" ]
expect "If-None-Match with the current ETag -> 304 without a body" $?

# ---- re-activation supersedes -----------------------------------------------------------
D=${DEV[ec-p256]} OLD=${SERIAL[ec-p256]}
n_before=$(crl_number crl-rsa-2048.pem)
make_csr ec-p256 again
csr_body again.csr again.json
basic "$D:${SEC[ec-p256]}" "/v1/devices/$D/activate" @again.json
NEW=$(jf serial)
[ "$STATUS" = 201 ] && [ "$NEW" != "$OLD" ] && [ "$(jf superseded)" = "[\"$OLD\"]" ] &&
    jf_file certificate again.pem
expect "re-activation -> 201 with a new serial, superseded: [the first serial]" $?
bearer "${TOK[auditor]}" GET "/v1/certificates/$OLD"
[ "$STATUS" = 200 ] && [ "$(jf status)" = revoked ] && [ "$(jf revocation_reason)" = superseded ] &&
    [[ $(jf revoked_at) =~ ^[0-9-]{10}T[0-9:]{8}Z$ ]] && jf_file certificate old-from-api.pem &&
    cmp -s old-from-api.pem ec-p256.pem
expect "GET /v1/certificates/{first serial}: revoked, reason superseded, same PEM" $?
fetch_crl crl1 "$OLD"
[ "$(crl_reason crl1.pem "$OLD")" = Superseded ] && [ "$(crl_number crl1.pem)" -gt "$n_before" ]
expect "the served delta CRL lists the first serial as Superseded with a higher cRLNumber" $?
call GET '/v1/crl?delta=1' -H "If-None-Match: $ETAG"
[ "$STATUS" = 200 ] && [ "$(header ETag)" != "$ETAG" ]
expect "after a revocation the old ETag gets 200 and a new ETag" $?
! verify_cert ec-p256.pem crl1.pem >verify.out 2>&1 && grep -q 'certificate revoked' verify.out
expect "openssl verify -crl_check refuses the superseded certificate" $?
verify_cert again.pem crl1.pem >verify.out 2>&1
expect "openssl verify -crl_check accepts the new certificate" $?
[ "$(count "certificates WHERE device_id = '$D' AND status = 'valid'")" = 1 ] &&
    [ "$(count "certificates WHERE device_id = '$D'")" = 2 ]
expect "the device holds one valid certificate of two" $?

# ---- device revocation ------------------------------------------------------------------
n_before=$(crl_number crl1.pem)
bearer "${TOK[operator]}" POST "/v1/devices/$D/revoke" '{"reason":"keyCompromise"}'
[ "$STATUS" = 200 ] && [ "$(jf status)" = revoked ] && [ "$(jf reason)" = keyCompromise ] &&
    [ "$(jf revoked)" = "[\"$NEW\"]" ]
expect "operator: POST /v1/devices/{id}/revoke {reason: keyCompromise} -> 200, its certificate revoked" $?
fetch_crl crl2 "$NEW"
[ "$(crl_reason crl2.pem "$NEW")" = "Key Compromise" ] && [ "$(crl_number crl2.pem)" -gt "$n_before" ]
expect "the served CRL lists the serial with Key Compromise and a higher cRLNumber" $?
! verify_cert again.pem crl2.pem >verify.out 2>&1 && grep -q 'certificate revoked' verify.out
expect "openssl verify -crl_check now fails: certificate revoked" $?
bearer "${TOK[auditor]}" GET "/v1/devices/$D"
[ "$(jf status)" = revoked ] && [ "$(jf certificates.0.status)" = revoked ] &&
    [ "$(jf certificates.1.status)" = revoked ]
expect "GET /v1/devices/{id}: status revoked, every certificate revoked" $?
certs_before=$(count certificates) crls_before=$(count crls)
make_csr ec-p256 third
csr_body third.csr third.json
basic "$D:${SEC[ec-p256]}" "/v1/devices/$D/activate" @third.json
expect_error "activation of a revoked device -> 403 device_revoked" 403 device_revoked
[ "$(count certificates)" = "$certs_before" ] && [ "$(count crls)" = "$crls_before" ] &&
    [ "$(sql "$URL" "SELECT status FROM devices WHERE id = '$D'")" = revoked ]
expect "the refused activation issued nothing and left the device revoked" $?
bearer "${TOK[operator]}" POST "/v1/devices/$D/revoke" '{"reason":"keyCompromise"}'
expect_error "revoking the device again -> 409 already_revoked" 409 already_revoked
bearer "${TOK[provisioner]}" POST "/v1/devices/${DEV[ec-p384]}/revoke" '{"reason":"keyCompromise"}'
expect_error "provisioner: POST /v1/devices/{id}/revoke -> 403 forbidden" 403 forbidden
bearer "${TOK[provisioner]}" POST "/v1/devices/${DEV[ec-p384]}/reset"
expect_error "provisioner: POST /v1/devices/{id}/reset -> 403 forbidden" 403 forbidden
[ "$(sql "$URL" "SELECT status FROM devices WHERE id = '${DEV[ec-p384]}'")" = active ] &&
    [ "$(count "certificates WHERE serial = '${SERIAL[ec-p384]}' AND status = 'valid'")" = 1 ]
expect "the provisioner's refused calls changed nothing" $?

# ---- reset ------------------------------------------------------------------------------
bearer "${TOK[operator]}" POST "/v1/devices/$D/reset"
NEWSEC=$(jf device_secret)
[ "$STATUS" = 200 ] && [ "$(jf status)" = provisioned ] && [ ${#NEWSEC} -ge 16 ] &&
    [ "$NEWSEC" != "${SEC[ec-p256]}" ]
expect "operator: POST /v1/devices/{id}/reset -> 200 {device_secret (new), status: provisioned}" $?
basic "$D:${SEC[ec-p256]}" "/v1/devices/$D/activate" @third.json
expect_error "the old device secret is refused -> 401 unauthorized" 401 unauthorized
basic "$D:$NEWSEC" "/v1/devices/$D/activate" @third.json
[ "$STATUS" = 201 ] && jf_file certificate third.pem && fetch_crl crl3 &&
    verify_cert third.pem crl3.pem >verify.out 2>&1
expect "the new secret activates; the new certificate verifies with the current CRL" $?
[ "$(sql "$URL" "SELECT status FROM devices WHERE id = '$D'")" = active ]
expect "the reset device is active again" $?

# ---- revocation by serial ---------------------------------------------------------------
S=${SERIAL[ec-p384]}
bearer "${TOK[operator]}" POST "/v1/certificates/${S,,}/revoke" '{"reason":"affiliationChanged"}'
[ "$STATUS" = 200 ] && [ "$(jf serial)" = "$S" ] && [ "$(jf status)" = revoked ] &&
    [ "$(jf reason)" = affiliationChanged ]
expect "POST /v1/certificates/{serial, lower case}/revoke {reason: affiliationChanged} -> 200" $?
bearer "${TOK[operator]}" POST "/v1/certificates/$S/revoke" '{"reason":"keyCompromise"}'
expect_error "revoking the certificate twice -> 409 already_revoked" 409 already_revoked
bearer "${TOK[auditor]}" GET "/v1/certificates/$S"
[ "$(jf status)" = revoked ] && [ "$(jf revocation_reason)" = affiliationChanged ]
expect "GET /v1/certificates/{serial} keeps the first reason" $?
S2=${SERIAL[rsa-2048]}
bearer "${TOK[operator]}" POST "/v1/certificates/$S2/revoke" '{"reason":"cessationOfOperation"}'
expect_status "POST /v1/certificates/{serial}/revoke {reason: cessationOfOperation} -> 200" 200
bearer "$ADMIN" POST "/v1/certificates/$OLD/revoke"
expect_error "a certificate revoked as superseded cannot be revoked again -> 409" 409 already_revoked
provision "$ADMIN" SN-unspecified
make_csr ec-p256 unspec
csr_body unspec.csr unspec.json
basic "$ID:$SECRET" "/v1/devices/$ID/activate" @unspec.json
S3=$(jf serial)
call POST "/v1/certificates/$S3/revoke" -H "Authorization: Bearer ${TOK[operator]}"
[ "$STATUS" = 200 ] && [ "$(jf reason)" = unspecified ]
expect "revocation without a body -> reason unspecified" $?
fetch_crl crl4 "$S3"
[ "$(crl_reason crl4.pem "$S")" = "Affiliation Changed" ] &&
    [ "$(crl_reason crl4.pem "$S2")" = "Cessation Of Operation" ] &&
    [ "$(crl_reason crl4.pem "$S3")" = none ] && [ "$(crl_reason crl4.pem "$OLD")" = Superseded ]
expect "the CRL carries each reason (none for unspecified, RFC 5280)" $?
! verify_cert ec-p384.pem crl4.pem >/dev/null 2>&1 && ! verify_cert rsa-2048.pem crl4.pem >/dev/null 2>&1
expect "openssl verify -crl_check refuses both certificates revoked by serial" $?
bearer "${TOK[auditor]}" GET "/v1/certificates?device_id=$D"
[ "$STATUS" = 200 ] && "$PY" -c '
import json, sys
c = json.load(open("body.out"))["certificates"]
assert len(c) == 3 and all(x["device_id"] == sys.argv[1] for x in c), c
assert [x["status"] for x in c].count("valid") == 1, c
assert all(x["certificate"].startswith("-----BEGIN CERTIFICATE-----") for x in c), c' "$D" 2>>check.log
expect "GET /v1/certificates?device_id= lists the device's three certificates with PEM" $?

# ---- services ---------------------------------------------------------------------------
bearer "$ADMIN" POST /v1/services '{"name":"billing","publish":["devices/+/commands/#","!devices/+/commands/reboot"],"subscribe":["devices/+/telemetry","$SYS/#"]}'
SVC=$(jf service_id) SVCSEC=$(jf service_secret)
[ "$STATUS" = 201 ] && [[ $SVC =~ $uuid_re ]] && [ ${#SVCSEC} -ge 16 ] &&
    [ "$(jf publish)" = '["devices/+/commands/#", "!devices/+/commands/reboot"]' ] &&
    [ "$(jf subscribe)" = '["devices/+/telemetry", "$SYS/#"]' ]
expect "POST /v1/services with publish/subscribe patterns -> 201 {service_id, service_secret}" $?
[ "$(sql "$URL" "SELECT publish::text || ' ' || subscribe::text FROM services WHERE id = '$SVC'")" = \
  '{devices/+/commands/#,!devices/+/commands/reboot} {devices/+/telemetry,$SYS/#}' ]
expect "the service's patterns are stored in order" $?
for bad in 'a/#/b' 'a+' '#a' 'a/b#' '+/x+' '' '!'; do
    bearer "$ADMIN" POST /v1/services "{\"name\":\"bad\",\"publish\":[\"ok/#\"],\"subscribe\":[$(json_str "$bad")]}"
    expect_error "service pattern \"$bad\" -> 400 invalid_field" 400 invalid_field
done
bearer "$ADMIN" POST /v1/services '{"name":"bad","publish":"a/b"}'
expect_error "publish that is not an array -> 400 invalid_field" 400 invalid_field
bearer "$ADMIN" POST /v1/services '{"name":"billing"}'
expect_error "a second service named billing -> 409 conflict" 409 conflict
[ "$(count services)" = 1 ]
expect "refused services are not stored" $?
make_csr ec-p256 svc
csr_body svc.csr svc.json
basic "$SVC:$SVCSEC" "/v1/services/$SVC/activate" @svc.json
[ "$STATUS" = 201 ] && jf_file certificate svc.pem && fetch_crl crl5 &&
    verify_cert svc.pem crl5.pem >verify.out 2>&1
expect "service activation (Basic service_id:service_secret) -> 201, certificate verifies" $?
subj=$(openssl x509 -in svc.pem -noout -subject -nameopt RFC2253)
[ "$subj" = "subject=CN=$SVC,O=services" ] || [ "$subj" = "subject=O=services,CN=$SVC" ]
expect "the service certificate's subject is CN=<service id>, O=services" $?
[ "$(sql "$URL" "SELECT status FROM services WHERE id = '$SVC'")" = active ] &&
    [ "$(count "certificates WHERE service_id = '$SVC' AND kind = 'service'")" = 1 ]
expect "the service is active and its certificate recorded" $?
basic "$SVC:wrong-secret" "/v1/services/$SVC/activate" @svc.json
expect_error "service activation with a wrong secret -> 401 unauthorized" 401 unauthorized
basic "${DEV[rsa-2048]}:${SEC[rsa-2048]}" "/v1/services/${DEV[rsa-2048]}/activate" @svc.json
expect_error "device credentials do not activate a service -> 401 unauthorized" 401 unauthorized

# ---- audit ------------------------------------------------------------------------------
# Refused anonymous calls are counted into one row per source and minute, written every 2 s.
for _ in $(seq 50); do [ "$(count "audit_log WHERE action = 'auth.refused'")" -ge 1 ] && break; sleep 0.1; done
bearer "${TOK[auditor]}" GET '/v1/audit?limit=1000'
cp body.out audit.json
expect_status "auditor: GET /v1/audit -> 200" 200
# audited ACTION ACTOR ROLE RESULT [TARGET]: an entry matches, with source 127.0.0.1.
audited() {
    "$PY" -c '
import json, sys
a = sys.argv[1:]
for e in json.load(open("audit.json"))["entries"]:
    if [e["action"], e["actor"], e["role"], e["result"]] == a[:4] and \
       (len(a) < 5 or e["target"] == a[4]) and e["source"] == "127.0.0.1" and e["at"].endswith("Z"):
        sys.exit(0)
sys.exit(1)' "$@"
}
audited product.create token:bootstrap-admin admin ok "$PK" &&
    audited token.create token:bootstrap-admin admin ok ci-operator &&
    audited device.provision token:bootstrap-admin admin ok "${DEV[ec-p256]}" &&
    audited device.provision token:ci-provisioner provisioner ok &&
    audited device.provision "product:$PK" product ok "$CLAIMED" &&
    audited device.activate "device:$D" device ok "$D" &&
    audited device.revoke token:ci-operator operator ok "$D" &&
    audited device.reset token:ci-operator operator ok "$D" &&
    audited certificate.revoke token:ci-operator operator ok "$S" &&
    audited service.create token:bootstrap-admin admin ok "$SVC" &&
    audited service.activate "service:$SVC" service ok "$SVC"
expect "the audit lists every successful action with actor, role, target and source 127.0.0.1" $?
audited device.provision token:ci-auditor auditor "403 forbidden" &&
    audited device.activate "device:$D" device "403 device_revoked" "$D" &&
    audited device.revoke token:ci-operator operator "409 already_revoked" "$D" &&
    audited device.provision token:bootstrap-admin admin "409 duplicate_serial" &&
    audited certificate.revoke token:ci-operator operator "409 already_revoked" "$S" &&
    audited service.create token:bootstrap-admin admin "400 invalid_field" &&
    audited auth.refused anonymous:- anonymous refused
expect "failed state-changing calls are audited with their status and error code (anonymous ones counted per source and minute)" $?
"$PY" -c '
import json
e = [x for x in json.load(open("audit.json"))["entries"] if x["action"] == "device.revoke" and x["result"] == "ok"][0]
assert e["details"] == {"reason": "keyCompromise", "serials": [e["details"]["serials"][0]]}, e' 2>>check.log
expect "the device.revoke entry details the reason and serials" $?
! grep -qF -e "$PSECRET" -e "${SEC[ec-p384]}" -e "$NEWSEC" -e "$SVCSEC" -e "${ADMIN:24}" audit.json
expect "no secret appears in the audit trail" $?
bearer "${TOK[auditor]}" GET '/v1/audit?limit=2'
first=$(jf entries.0.id) next=$(jf next_before)
[ "$STATUS" = 200 ] && [ "$next" = "$(jf entries.1.id)" ] && [ "$next" -lt "$first" ]
expect "GET /v1/audit?limit=2 -> the two newest entries and next_before" $?
bearer "${TOK[auditor]}" GET "/v1/audit?limit=2&before=$next"
[ "$STATUS" = 200 ] && [ "$(jf entries.0.id)" -lt "$next" ]
expect "GET /v1/audit?before=next_before continues with older entries" $?

# ---- health and metrics -----------------------------------------------------------------
call GET /healthz
[ "$STATUS" = 200 ] && [ "$(jf status)" = ok ] && [ "$(jf database)" = up ]
expect "GET /healthz -> 200 {status: ok, database: up}" $?
call HEAD /healthz -I
expect_status "HEAD /healthz -> 200" 200
call GET /metrics
[ "$STATUS" = 200 ] && [[ $(header Content-Type) == text/plain* ]] &&
    grep -q '^# TYPE iothub_http_responses_total counter$' body.out &&
    [ "$(awk '$1 == "iothub_http_responses_total{code=\"2xx\"}" {print $2}' body.out)" -gt 50 ] &&
    [ "$(awk '$1 == "iothub_http_responses_total{code=\"4xx\"}" {print $2}' body.out)" -gt 10 ]
expect "GET /metrics: Prometheus text with iothub_http_responses_total by class" $?
[ "$(awk '$1 == "iothub_devices_provisioned_total" {print $2}' body.out)" = "$(count devices)" ] &&
    [ "$(awk '$1 == "iothub_certificates_issued_total" {print $2}' body.out)" = "$(count "certificates WHERE kind <> 'server'")" ] &&
    [ "$(awk '$1 == "iothub_certificates_revoked_total" {print $2}' body.out)" = "$(count "certificates WHERE status = 'revoked'")" ] &&
    [ "$(awk '$1 == "iothub_api_auth_failures_total" {print $2}' body.out)" -ge 3 ]
expect "metrics count provisioned devices, issued and revoked certificates, auth failures" $?

stop_server
expect "iothubd stops cleanly" $?
finish
