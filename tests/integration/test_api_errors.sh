#!/usr/bin/env bash
# The REST API's bad paths (SPEC §4): every refusal is an HTTP status with a JSON error code
# and leaves nothing half-written; SQL metacharacters are stored verbatim or refused; with
# PostgreSQL stopped the API answers 503 database_unavailable (the CA chain still 200) and
# recovers without a restart once PostgreSQL is back.
# test-lane: alone (it stops and starts the shared PostgreSQL; deploy/dev.sh runs nothing beside it)
. "$(dirname "$0")/api_lib.sh"

# ---- the private PostgreSQL of deploy/dev.sh, stopped and started as it does ------------
PGDIR=$(dirname "$PGSOCK")
pg_owner() { (cd / && if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi); }
pg_running() { pg_owner "$IOTHUB_TEST_PGBIN/pg_ctl" -D "$PGDIR/data" status >/dev/null 2>&1; }
pg_down() { pg_owner "$IOTHUB_TEST_PGBIN/pg_ctl" -D "$PGDIR/data" -m fast -w stop >/dev/null 2>&1; }
pg_up() {
    pg_owner "$IOTHUB_TEST_PGBIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/postgres.log" -w -t 60 \
        -o "-c listen_addresses='' -c unix_socket_directories='$PGDIR/sock' -c unix_socket_permissions=0700 -c fsync=off" \
        start >/dev/null 2>&1
}
# Later test scripts need PostgreSQL: whatever happens, leave it running.
trap 'stop_server >/dev/null 2>&1; pg_running || pg_up' EXIT

# state: the rows a refused call must not touch (counts, device statuses and secrets).
state() {
    sql "$URL" "SELECT concat_ws(' ', (SELECT count(*) FROM products), (SELECT count(*) FROM devices),
                  (SELECT count(*) FROM certificates), (SELECT count(*) FROM certificates WHERE status = 'revoked'),
                  (SELECT count(*) FROM crls), (SELECT count(*) FROM services), (SELECT count(*) FROM api_tokens),
                  (SELECT md5(string_agg(id || status || secret_hash, ',' ORDER BY id)) FROM devices))"
}
# unchanged NAME: passes when state() is still $SNAP.
unchanged() {
    [ "$(state)" = "$SNAP" ]
    expect "$1" $?
}

# Its refusals come faster than a guesser may try (docs/security.md "Credential guessing"):
# more free failures, so that they are answered, not throttled (test_abuse_auth tests that).
api_setup errors "auth_fail_free = 1000"
expect "iothubd init, then iothubd serve answers /healthz" $?
bearer "$ADMIN" POST /v1/products '{"name":"P1"}'
PK=$(jf product_key) PSECRET=$(jf product_secret)
bearer "$ADMIN" POST /v1/products '{"name":"P2"}'
PK2=$(jf product_key)
bearer "$ADMIN" POST /v1/tokens '{"name":"ops","role":"operator"}'
OP=$(jf token)
bearer "$ADMIN" POST /v1/devices "{\"product_key\":\"$PK\",\"serial_number\":\"SN-1\"}"
ID1=$(jf device_id) SEC1=$(jf device_secret)
bearer "$ADMIN" POST /v1/devices "{\"product_key\":\"$PK\",\"serial_number\":\"SN-2\"}"
ID2=$(jf device_id) SEC2=$(jf device_secret)
make_csr ec-p256 good
csr_body good.csr good.json
basic "$ID1:$SEC1" "/v1/devices/$ID1/activate" @good.json
jf_file certificate d1.pem
SERIAL1=$(jf serial)
[ -n "$PK" ] && [ -n "$PK2" ] && [ -n "$OP" ] && [ -n "$ID2" ] && [ -s d1.pem ]
expect "fixture: two products, an operator token, an active and a provisioned device" $?

# ---- authentication ---------------------------------------------------------------------
SNAP=$(state)
call POST /v1/devices -H 'Content-Type: application/json' --data-binary "{\"product_key\":\"$PK\",\"serial_number\":\"X-1\"}"
expect_error "no credentials: POST /v1/devices -> 401 unauthorized" 401 unauthorized
call GET /v1/devices
expect_error "no credentials: GET /v1/devices -> 401 unauthorized" 401 unauthorized
[ "$(header WWW-Authenticate)" = 'Bearer realm="iothub"' ]
expect "the 401 names the Bearer scheme (WWW-Authenticate)" $?
for tok in garbage "" "iothub_" "${ADMIN:0:30}" "${ADMIN}x" "iothub_0123456789abcdef_$(printf 'A%.0s' $(seq 43))" \
           "${ADMIN:0:-1}$([ "${ADMIN: -1}" = A ] && echo B || echo A)"; do
    bearer "$tok" POST /v1/products '{"name":"nope"}'
    expect_error "bearer \"${tok:0:40}\" (malformed, unknown or tampered) -> 401 unauthorized" 401 unauthorized
done
call GET /v1/devices -u "$ID1:$SEC1"
expect_error "Basic credentials on a bearer-only route -> 401 unauthorized" 401 unauthorized
basic "$ID2:$SEC1" "/v1/devices/$ID2/activate" @good.json
expect_error "activation with a wrong device secret -> 401 unauthorized" 401 unauthorized
[ "$(header WWW-Authenticate)" = 'Basic realm="iothub"' ]
expect "the 401 names the Basic scheme (WWW-Authenticate)" $?
basic "$ID1:$SEC1" "/v1/devices/$ID2/activate" @good.json
expect_error "activation with another device's credentials -> 403 forbidden" 403 forbidden
basic "00000000-0000-4000-8000-000000000000:$SEC1" /v1/devices/00000000-0000-4000-8000-000000000000/activate @good.json
expect_error "activation of an unknown device id -> 401 unauthorized" 401 unauthorized
bearer "$ADMIN" POST "/v1/devices/$ID2/activate" @good.json
expect_error "an admin token does not activate a device -> 401 unauthorized" 401 unauthorized
call POST "/v1/devices/$ID2/activate" -H 'Authorization: Basic !!!not-base64' \
    -H 'Content-Type: application/json' --data-binary @good.json
expect_error "malformed Basic credentials -> 401 unauthorized" 401 unauthorized
call POST "/v1/devices/$ID2/activate" -H "Authorization: Basic $(printf '%s' "$ID2" | base64 -w0)" \
    -H 'Content-Type: application/json' --data-binary @good.json
expect_error "Basic credentials without a password -> 401 unauthorized" 401 unauthorized
basic "$PK:wrong" /v1/devices '{"serial_number":"X-2"}'
expect_error "product claim with a wrong product secret -> 401 unauthorized" 401 unauthorized
basic "$PK:$PSECRET" /v1/devices "{\"product_key\":\"$PK2\",\"serial_number\":\"X-3\"}"
expect_error "product claim for another product -> 403 forbidden" 403 forbidden
basic "ffffffffffffffff:$PSECRET" /v1/devices '{"serial_number":"X-4"}'
expect_error "product claim with an unknown product key -> 401 unauthorized" 401 unauthorized
call GET /v1/devices -u "$PK:$PSECRET"
expect_error "product credentials do not list devices -> 401 unauthorized" 401 unauthorized
unchanged "refused credentials wrote nothing, changed no device"
# Refused anonymous calls: one row per source and minute with their count (written every 2 s).
refused() {
    sql "$URL" "SELECT coalesce(sum((details->>'$1')::int), 0) FROM audit_log
                WHERE action = 'auth.refused' AND actor = 'anonymous:-' AND source = '127.0.0.1'"
}
for _ in $(seq 50); do [ "$(refused unauthorized)" -ge 15 ] && break; sleep 0.1; done
[ "$(count "audit_log WHERE actor = 'anonymous:-' AND action <> 'auth.refused'")" = 0 ] &&
    [ "$(count "audit_log WHERE action = 'auth.refused'")" -le 2 ] &&
    [ "$(refused unauthorized)" -ge 15 ] && [ "$(refused forbidden)" = 1 ] &&
    [ "$(count "audit_log WHERE action = 'device.provision' AND result = '403 forbidden' AND actor = 'product:$PK'")" = 1 ]
expect "refused state-changing calls are audited: a product's in a row, anonymous ones counted in one row per minute" $?

# ---- certificate requests ---------------------------------------------------------------
# pem_csr DER OUT: PEM armour around DER bytes, without openssl re-encoding them.
pem_csr() { { echo "-----BEGIN CERTIFICATE REQUEST-----"; base64 -w 64 "$1"; echo "-----END CERTIFICATE REQUEST-----"; } >"$2"; }
openssl req -in good.csr -outform DER -out good.der
perl -e 'local $/; $_ = <STDIN>; substr($_, -1, 1) = chr(ord(substr($_, -1, 1)) ^ 1); print' <good.der >sig.der
perl -e 'local $/; $_ = <STDIN>; my $i = index($_, "ignored"); substr($_, $i, 1) = "I"; print' <good.der >subj.der
pem_csr sig.der sig.csr
pem_csr subj.der subj.csr
make_csr rsa-1024 rsa1024
make_csr dsa dsa
make_csr ec-p521 p521
make_csr ed25519 ed25519
printf 'hello, I am not a certificate request\n' >text.csr
head -c 600 /dev/urandom >random.der
pem_csr random.der random.csr
SNAP=$(state)
for f in sig:invalid_csr:"a CSR with a tampered signature" subj:invalid_csr:"a CSR with a tampered subject (proof of possession)" \
         rsa1024:key_not_accepted:"an RSA-1024 CSR" dsa:key_not_accepted:"a DSA CSR" p521:key_not_accepted:"an EC P-521 CSR" \
         ed25519:key_not_accepted:"an Ed25519 CSR" text:invalid_csr:"non-PEM text as csr" random:invalid_csr:"PEM armour around random bytes"; do
    IFS=: read -r name code what <<<"$f"
    csr_body "$name.csr" "$name.json"
    basic "$ID2:$SEC2" "/v1/devices/$ID2/activate" "@$name.json"
    expect_error "$what -> 400 $code" 400 "$code"
done
csr_body d1.pem cert.json
basic "$ID2:$SEC2" "/v1/devices/$ID2/activate" @cert.json
expect_error "a certificate instead of a CSR -> 400 invalid_csr" 400 invalid_csr
basic "$ID2:$SEC2" "/v1/devices/$ID2/activate" '{"csr":""}'
expect_error "an empty csr -> 400 invalid_field" 400 invalid_field
basic "$ID2:$SEC2" "/v1/devices/$ID2/activate" '{"csr":42}'
expect_error "a csr that is not a string -> 400 invalid_field" 400 invalid_field
basic "$ID2:$SEC2" "/v1/devices/$ID2/activate" '{"certificate_request":"x"}'
expect_error "no csr field -> 400 missing_field" 400 missing_field
unchanged "refused CSRs issued nothing: no certificate, no CRL, the device still provisioned"
[ "$(count "audit_log WHERE action = 'device.activate' AND target = '$ID2' AND result = '400 key_not_accepted'")" = 4 ] &&
    [ "$(count "audit_log WHERE action = 'device.activate' AND target = '$ID2' AND result = '400 invalid_csr'")" = 5 ]
expect "refused activations are audited with their error code" $?

# ---- request bodies ---------------------------------------------------------------------
SNAP=$(state)
for body in 'not json' '[]' '"a string"' '{"name":"a","name":"b"}' '{"name":"a\u0000b"}' '{"name":' ''; do
    bearer "$ADMIN" POST /v1/products "$body"
    expect_error "body '${body:-(empty)}' -> 400 invalid_json" 400 invalid_json
done
[[ $(jf error.message) == *empty* ]]
expect "  ... the message says the body is empty" $?
call POST /v1/products -H "Authorization: Bearer $ADMIN" -H 'Content-Type: text/plain' --data-binary '{"name":"x"}'
expect_error "Content-Type text/plain -> 415 unsupported_media_type" 415 unsupported_media_type
call POST /v1/products -H "Authorization: Bearer $ADMIN" --data-binary '{"name":"x"}'
expect_error "a form Content-Type (curl's default) -> 415 unsupported_media_type" 415 unsupported_media_type
call POST /v1/products -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/jsonp' --data-binary '{"name":"x"}'
expect_error "Content-Type application/jsonp -> 415 unsupported_media_type" 415 unsupported_media_type
unchanged "malformed bodies wrote nothing"
call POST /v1/products -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json; charset=utf-8' --data-binary '{"name":"charset"}'
expect_status "Content-Type application/json; charset=utf-8 is accepted -> 201" 201

# Size limit: 64 KiB. A body of exactly 65536 bytes passes, one byte more does not.
"$PY" -c 'import sys; b = b"{\"name\":\"limit\"}"; sys.stdout.buffer.write(b + b" " * (65536 - len(b)))' >exact.json
"$PY" -c 'import sys; b = b"{\"name\":\"limit\"}"; sys.stdout.buffer.write(b + b" " * (65537 - len(b)))' >over.json
head -c 300000 /dev/zero | tr '\0' ' ' >big.json
bearer "$ADMIN" POST /v1/products @exact.json
expect_status "a body of exactly 64 KiB -> 201" 201
SNAP=$(state)
n413=0
for _ in 1 2 3 4 5 6 7 8; do
    bearer "$ADMIN" POST /v1/products @over.json
    [ "$STATUS" = 413 ] && [ "$(jf error.code)" = payload_too_large ] && n413=$((n413 + 1))
done
[ $n413 = 8 ]
expect "a body of 64 KiB + 1 -> 413 payload_too_large, every time (8 of 8, got $n413)" $?
bearer "$ADMIN" POST /v1/products @big.json
expect_error "a 300 kB body -> 413 payload_too_large" 413 payload_too_large
call POST /v1/products -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
    -H 'Transfer-Encoding: chunked' --data-binary @big.json
expect_error "a 300 kB chunked body -> 413 payload_too_large" 413 payload_too_large
head -c 3000000 /dev/zero | tr '\0' ' ' >huge.json
bearer "$ADMIN" POST /v1/products @huge.json
expect_error "a 3 MB body (curl sends Expect: 100-continue) -> 413 payload_too_large" 413 payload_too_large
unchanged "oversized bodies wrote nothing"

for c in "/v1/products|{}|name" "/v1/products|{\"name\":null}|name" \
         "/v1/devices|{\"product_key\":\"$PK\"}|serial_number" "/v1/devices|{\"serial_number\":\"X-5\"}|product_key" \
         "/v1/tokens|{\"name\":\"t\"}|role" "/v1/tokens|{\"role\":\"admin\"}|name" "/v1/services|{\"publish\":[]}|name"; do
    IFS='|' read -r path body field <<<"$c"
    bearer "$ADMIN" POST "$path" "$body"
    expect_error "POST $path $body -> 400 missing_field" 400 missing_field
    [[ $(jf error.message) == *"\"$field\""* ]]
    expect "  ... and the message names \"$field\"" $?
done
long=$(printf 'n%.0s' $(seq 201))
for c in "/v1/products|{\"name\":5}" "/v1/products|{\"name\":\"\"}" "/v1/products|{\"name\":\"$long\"}" \
         "/v1/products|{\"name\":\"tab\\there\"}" "/v1/products|{\"name\":[\"x\"]}" \
         "/v1/devices|{\"product_key\":\"$PK\",\"serial_number\":7}" \
         "/v1/tokens|{\"name\":\"t\",\"role\":\"root\"}" "/v1/tokens|{\"name\":\"t\",\"role\":\"Admin\"}"; do
    IFS='|' read -r path body <<<"$c"
    bearer "$ADMIN" POST "$path" "$body"
    expect_error "POST $path ${body:0:60} -> 400 invalid_field" 400 invalid_field
done
for reason in removeFromCRL certificateHold KeyCompromise 4 ''; do
    bearer "$OP" POST "/v1/devices/$ID1/revoke" "{\"reason\":$(json_str "$reason")}"
    if [ -z "$reason" ]; then
        expect_error "reason \"\" -> 400 invalid_field" 400 invalid_field
    else
        expect_error "reason \"$reason\" -> 400 invalid_reason" 400 invalid_reason
    fi
done
bearer "$OP" POST "/v1/certificates/$SERIAL1/revoke" '{"reason":"certificateHold"}'
expect_error "certificate revocation with reason certificateHold -> 400 invalid_reason" 400 invalid_reason
for q in "devices?limit=0" "devices?limit=abc" "devices?limit=1001" "devices?after=not-a-uuid" \
         "certificates?device_id=42" "crl?format=xml" "ca?format=der" "audit?before=0" "audit?before=x"; do
    bearer "$ADMIN" GET "/v1/$q"
    expect_error "GET /v1/$q -> 400 invalid_parameter" 400 invalid_parameter
done
[ "$(state)" = "$SNAP" ] && [ "$(count "products WHERE name IN ('charset', 'limit')")" = 2 ] &&
    [ "$(count "devices WHERE serial_number LIKE 'X-%'")" = 0 ] &&
    [ "$(count "certificates WHERE serial = '$SERIAL1' AND status = 'valid'")" = 1 ] &&
    [ "$(count "api_tokens WHERE name = 't'")" = 0 ]
expect "invalid fields and parameters wrote nothing (only the two accepted products exist)" $?

# ---- conflicts and unknown things -------------------------------------------------------
SNAP=$(state)
bearer "$ADMIN" POST /v1/devices "{\"product_key\":\"$PK\",\"serial_number\":\"SN-1\"}"
expect_error "a serial number twice -> 409 duplicate_serial" 409 duplicate_serial
basic "$PK:$PSECRET" /v1/devices '{"serial_number":"SN-2"}'
expect_error "a serial number twice by product claim -> 409 duplicate_serial" 409 duplicate_serial
bearer "$ADMIN" POST /v1/tokens '{"name":"ops","role":"auditor"}'
expect_error "a token name twice -> 409 conflict" 409 conflict
bearer "$ADMIN" POST /v1/devices '{"product_key":"0000000000000000","serial_number":"X-6"}'
expect_error "an unknown product key -> 404 product_not_found" 404 product_not_found
UNKNOWN=00000000-0000-4000-8000-000000000000
for p in "GET /v1/devices/$UNKNOWN" "POST /v1/devices/$UNKNOWN/revoke" "POST /v1/devices/$UNKNOWN/reset" \
         "GET /v1/devices/not-a-uuid" "POST /v1/devices/not-a-uuid/revoke" "POST /v1/devices/${UNKNOWN}0/reset" \
         "GET /v1/certificates/0123456789ABCDEF0123456789ABCDEF" "POST /v1/certificates/0123456789ABCDEF/revoke" \
         "GET /v1/certificates/XYZ" "POST /v1/certificates/$(printf 'A%.0s' $(seq 41))/revoke" \
         "GET /v1/nothing" "GET /v1/devices/" "GET /v2/devices" "GET /" "POST /v1/devices/$ID1/activate/again"; do
    bearer "$OP" $p
    expect_error "$p -> 404 not_found" 404 not_found
done
unchanged "conflicts and unknown ids wrote nothing"
bearer "$ADMIN" POST /v1/devices "{\"product_key\":\"$PK2\",\"serial_number\":\"SN-1\"}"
expect_status "the same serial number under another product -> 201" 201

for m in "DELETE /v1/devices/$ID1|GET, HEAD, PATCH" "PUT /v1/products|POST, GET, HEAD" "GET /v1/devices/$ID1/activate|POST" \
         "POST /v1/crl|GET, HEAD" "PATCH /v1/tokens|POST, GET, HEAD"; do
    IFS='|' read -r p allow <<<"$m"
    bearer "$ADMIN" $p
    expect_error "${p% *} ${p#* } -> 405 method_not_allowed" 405 method_not_allowed
    [ "$(header Allow)" = "$allow" ]
    expect "  ... with Allow: $allow" $?
done

# Ids are case-insensitive in paths and credentials; answers, certificate subjects and the
# audit trail use the canonical lower-case form.
UP=${ID1^^}
basic "$UP:$SEC1" "/v1/devices/$UP/activate" @good.json
[ "$STATUS" = 201 ] && jf_file certificate up.pem
expect "activation with the device id in upper case (path and Basic user) -> 201" $?
subj=$(openssl x509 -in up.pem -noout -subject -nameopt RFC2253)
[ "$subj" = "subject=CN=$ID1,O=$PK" ] || [ "$subj" = "subject=O=$PK,CN=$ID1" ]
expect "  ... the certificate's CN is the device id as the API gave it (lower case)" $?
bearer "$OP" GET "/v1/devices/$UP"
[ "$STATUS" = 200 ] && [ "$(jf device_id)" = "$ID1" ] && [ "$(jf certificates.0.subject)" = "CN=$ID1, O=$PK" ]
expect "GET /v1/devices/{id in upper case} -> 200, the canonical id" $?
[ "$(count "audit_log WHERE target = '$UP' OR actor = 'device:$UP'")" = 0 ] &&
    [ "$(count "audit_log WHERE action = 'device.activate' AND target = '$ID1' AND actor = 'device:$ID1'")" = 2 ]
expect "the audit trail records the canonical id" $?

# ---- SQL metacharacters, backslashes, unicode -------------------------------------------
EVIL=("'; DROP TABLE devices; --" "Robert'); DROP TABLE products; --" "x' OR '1'='1"
      'backslash \ \\ \n \'"'"' "double" quotes' '$1 $$ E'"'"'\x41'"'"' ::uuid /* */ %s %n'
      "Ünïcødé ☃ 🚀 日本語 עברית" '%_*?[]{}()<>|&;`$(id)`')
SNAP=$(state)
last_product=$(sql "$URL" "SELECT max(id) FROM products") last_token=$(sql "$URL" "SELECT max(id) FROM api_tokens")
i=0 echoed=1 refused=1
for v in "${EVIL[@]}"; do
    i=$((i + 1))
    bearer "$ADMIN" POST /v1/products "{\"name\":$(json_str "$v")}"
    [ "$STATUS" = 201 ] && [ "$(jf name)" = "$v" ] || echoed=0
    bearer "$ADMIN" POST /v1/tokens "{\"name\":$(json_str "tok$i $v"),\"role\":\"auditor\"}"
    tok=$(jf token)
    [ "$STATUS" = 201 ] && [ "$(jf name)" = "tok$i $v" ] || echoed=0
    bearer "$tok" GET /v1/products
    [ "$STATUS" = 200 ] || echoed=0
    bearer "$ADMIN" POST /v1/services "{\"name\":$(json_str "svc$i $v"),\"publish\":[$(json_str "x/$i/#")]}"
    [ "$STATUS" = 201 ] && [ "$(jf name)" = "svc$i $v" ] || echoed=0
    bearer "$ADMIN" POST /v1/devices "{\"product_key\":\"$PK\",\"serial_number\":$(json_str "$v")}"
    [ "$STATUS" = 400 ] && [ "$(jf error.code)" = invalid_field ] || refused=0
    bearer "$ADMIN" POST /v1/devices "{\"product_key\":$(json_str "$v"),\"serial_number\":\"X-7\"}"
    [ "$STATUS" = 404 ] && [ "$(jf error.code)" = product_not_found ] || refused=0
    bearer "$OP" POST "/v1/devices/$ID1/revoke" "{\"reason\":$(json_str "$v")}"
    [ "$STATUS" = 400 ] && [ "$(jf error.code)" = invalid_reason ] || refused=0
    basic "$v:$PSECRET" /v1/devices '{"serial_number":"X-8"}'
    [ "$STATUS" = 401 ] || refused=0
done
[ $echoed = 1 ]
expect "product, token and service names with quotes, SQL, backslashes and unicode -> 201, echoed verbatim" $?
sql "$URL" "SELECT name FROM products WHERE id > $last_product ORDER BY id" >stored.txt &&
    sql "$URL" "SELECT name FROM api_tokens WHERE id > $last_token ORDER BY id" >>stored.txt &&
    sql "$URL" "SELECT name FROM services ORDER BY created_at, name" >>stored.txt &&
    { printf '%s\n' "${EVIL[@]}"; i=0; for v in "${EVIL[@]}"; do i=$((i + 1)); echo "tok$i $v"; done
      i=0; for v in "${EVIL[@]}"; do i=$((i + 1)); echo "svc$i $v"; done; } >expected.txt &&
    cmp -s stored.txt expected.txt
expect "... and stored verbatim" $?
[ $refused = 1 ]
expect "the same strings as serial_number -> 400 invalid_field, as product_key -> 404, as reason -> 400, as Basic user -> 401" $?
bearer "$ADMIN" GET /v1/products
"$PY" -c '
import json, sys
names = {p["name"] for p in json.load(open("body.out"))["products"]}
missing = set(sys.argv[1:]) - names
assert not missing, missing' "${EVIL[@]}" 2>>check.log
expect "GET /v1/products lists those names verbatim" $?
bearer "$OP" GET "/v1/devices/%27%3B%20DROP%20TABLE%20devices%3B%20--"
expect_error "a device id of SQL in the path -> 404 not_found" 404 not_found
bearer "$OP" GET "/v1/devices?after=%27%20OR%201%3D1%20--"
expect_error "SQL in ?after= -> 400 invalid_parameter" 400 invalid_parameter
bearer "$ADMIN" POST /v1/devices "{\"product_key\":\"$PK\",\"serial_number\":\"Ok-1_2.3:4/5\"}"
expect_status "a serial number of letters, digits and -_.:/ -> 201" 201
[ "$(sql "$URL" "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename IN
                 ('products', 'devices', 'services', 'certificates', 'crls', 'cas', 'api_tokens', 'audit_log')")" = 8 ] &&
    [ "$(count devices)" = $(( $(echo "$SNAP" | cut -d' ' -f2) + 1 )) ] &&
    [ "$(count "devices WHERE serial_number NOT SIMILAR TO '[A-Za-z0-9._:/-]+'")" = 0 ]
expect "every table still exists; only valid serial numbers were stored" $?

SERVER_SERIAL=$(sql "$URL" "SELECT serial FROM certificates WHERE kind = 'server'")
bearer "$ADMIN" POST "/v1/certificates/$SERVER_SERIAL/revoke" '{"reason":"keyCompromise"}'
expect_error "revoking the gateway's own TLS certificate -> 409 server_certificate" 409 server_certificate
[ "$(sql "$URL" "SELECT status FROM certificates WHERE serial = '$SERVER_SERIAL'")" = valid ]
expect "the server certificate stays valid" $?

# ---- PostgreSQL stopped mid-run ---------------------------------------------------------
SNAP=$(state) AUDIT_MAX=$(sql "$URL" "SELECT max(id) FROM audit_log")
pg_down && ! pg_running
expect "PostgreSQL stopped (pg_ctl -m fast stop)" $?
bearer "$OP" GET /v1/devices
expect_error "GET /v1/devices -> 503 database_unavailable" 503 database_unavailable
bearer "$OP" GET "/v1/devices/$ID1"
expect_error "GET /v1/devices/{id} -> 503 database_unavailable" 503 database_unavailable
bearer "$ADMIN" POST /v1/products '{"name":"during the outage"}'
expect_error "POST /v1/products -> 503 database_unavailable" 503 database_unavailable
basic "$ID2:$SEC2" "/v1/devices/$ID2/activate" @good.json
expect_error "device activation -> 503 database_unavailable" 503 database_unavailable
basic "$PK:$PSECRET" /v1/devices '{"serial_number":"OUTAGE-1"}'
expect_error "product claim -> 503 database_unavailable" 503 database_unavailable
call GET /v1/crl
expect_error "GET /v1/crl -> 503 database_unavailable" 503 database_unavailable
call GET /healthz
[ "$STATUS" = 503 ] && [ "$(jf database)" = down ]
expect "GET /healthz -> 503 {database: down}" $?
call GET /v1/ca
[ "$STATUS" = 200 ] && cmp -s body.out trust.pem
expect "GET /v1/ca -> 200, the chain served from memory" $?
call GET '/v1/ca?format=p7b'
[ "$STATUS" = 200 ] && openssl pkcs7 -inform DER -in body.out -print_certs -noout >/dev/null 2>&1
expect "GET /v1/ca?format=p7b -> 200" $?
call GET /metrics
[ "$STATUS" = 200 ] && [ "$(awk '$1 == "iothub_http_responses_total{code=\"5xx\"}" {print $2}' body.out)" -ge 7 ]
expect "GET /metrics -> 200 and counts the 5xx answers" $?
kill -0 "$SERVER_PID"
expect "iothubd keeps running while PostgreSQL is down" $?

pg_up && pg_running
expect "PostgreSQL started again (same options as deploy/dev.sh)" $?
[ "$(state)" = "$SNAP" ]
expect "nothing was written during the outage" $?
call GET /healthz
[ "$STATUS" = 200 ] && [ "$(jf database)" = up ]
expect "GET /healthz -> 200 again, without restarting iothubd" $?
bearer "$OP" GET /v1/devices
expect_status "GET /v1/devices -> 200 again" 200
bearer "$ADMIN" POST /v1/products '{"name":"after the outage"}'
expect_status "POST /v1/products -> 201 again" 201
basic "$ID2:$SEC2" "/v1/devices/$ID2/activate" @good.json
[ "$STATUS" = 201 ] && jf_file certificate d2.pem
expect "device activation -> 201 again" $?
bearer "$OP" POST "/v1/devices/$ID2/revoke" '{"reason":"keyCompromise"}'
expect_status "device revocation -> 200 again" 200
D2_SERIAL=$(openssl x509 -in d2.pem -noout -serial | cut -d= -f2)
fetch_crl after "$D2_SERIAL" && [ "$(crl_reason after.pem "$D2_SERIAL")" = "Key Compromise" ]
expect "GET /v1/crl -> the CRL published after the outage lists the revocation" $?
[ "$(sql "$URL" "SELECT string_agg(action || ' ' || result, ', ' ORDER BY id) FROM audit_log WHERE id > $AUDIT_MAX")" = \
  "product.create ok, device.activate ok, device.revoke ok" ]
expect "the calls after the outage are audited" $?

# A restart no request saw: every pooled connection is stale, none may answer 503.
pids=()
for i in $(seq 12); do
    curl -sS --cacert trust.pem -o /dev/null -H "Authorization: Bearer $OP" "$BASE/v1/devices" &
    pids+=($!)
done
wait "${pids[@]}" # not a bare wait: iothubd is a child too
pg_down && pg_up && pg_running
expect "PostgreSQL restarted while the API was idle" $?
codes=""
for i in $(seq 10); do
    bearer "$OP" GET /v1/devices
    codes="$codes $STATUS"
done
[ "$codes" = "$(printf ' 200%.0s' $(seq 10))" ]
expect "after an idle restart every call answers 200 at once (got:$codes)" $?

stop_server
expect "iothubd stops cleanly" $?
finish
