#!/usr/bin/env bash
# Bulk revocation (POST /v1/revocations, GET /v1/revocations/{id}, iothubctl revoke): a job
# over a product revokes exactly that product's valid certificates (2,003: more than one
# chunk of 1,000) and its devices, closes the live MQTT session of an affected device on the
# way, leaves another product alone, reaches done with exact counters, publishes a CRL that
# lists them, and is audited; lists of serials and a CA window work; bad bodies get precise
# 400/404/422s; roles are enforced; iothubctl revoke --product P --issued-between T1 T2
# waits and prints the progress.
. "$(dirname "$0")/api_lib.sh"
CTL=$BUILD/iothubctl

api_setup bulk
expect "serve starts" $?
bearer "$ADMIN" POST /v1/tokens '{"name": "bulk-operator", "role": "operator"}'
OPERATOR=$(jf token)
bearer "$ADMIN" POST /v1/tokens '{"name": "bulk-auditor", "role": "auditor"}'
AUDITOR=$(jf token)
bearer "$ADMIN" POST /v1/products '{"name": "stolen batch"}'
PA=$(jf product_key)
bearer "$ADMIN" POST /v1/products '{"name": "other"}'
PB=$(jf product_key)
# new_active PRODUCT NAME: a device of PRODUCT activated with NAME.key/NAME.pem; NAME_ID.
new_active() {
    bearer "$ADMIN" POST /v1/devices "{\"product_key\": \"$1\", \"serial_number\": \"$2\"}"
    printf -v "$2_ID" '%s' "$(jf device_id)"
    activate_as device "$(jf device_id)" "$(jf device_secret)" "$2"
}
new_active "$PA" a1 && new_active "$PA" a2 && new_active "$PA" a3 && new_active "$PB" b1
expect "three devices of product A and one of product B activated" $?
# 2,000 more devices of product A with a valid certificate each, straight into the database.
sql "$URL" "
INSERT INTO devices (product_id, serial_number, secret_hash, status)
    SELECT p.id, 'seed-' || i, 'x', 'active' FROM products p, generate_series(1, 2000) i
    WHERE p.product_key = '$PA';
INSERT INTO certificates (serial, ca_id, kind, device_id, subject, der, not_before, not_after)
    SELECT upper(md5(d.id::text)), (SELECT id FROM cas WHERE role = 'issuing' AND active),
           'device', d.id, 'CN=' || d.id, '\x00', now(), now() + interval '300 days'
    FROM devices d WHERE d.serial_number LIKE 'seed-%';" >seed.out 2>&1
expect "2,000 more certificates of product A seeded" $?
valid_of() {
    count "certificates c JOIN devices d ON d.id = c.device_id JOIN products p ON p.id = d.product_id
           WHERE p.product_key = '$1' AND c.status = 'valid'"
}
[ "$(valid_of "$PA")" = 2003 ] && [ "$(valid_of "$PB")" = 1 ]
expect "product A has 2,003 valid certificates, product B 1" $?

# Live sessions: a1 (product A) and b1 (product B) subscribed.
sub a1 a1.sub -t "devices/$a1_ID/commands/#" -q 1
SUB_A=$SUB_PID
SUB_SECONDS=60 sub b1 b1.sub -t "devices/$b1_ID/commands/#" -q 1
SUB_B=$SUB_PID
[ -n "$SUB_A" ] && [ -n "$SUB_B" ] && kill -0 "$SUB_A" && kill -0 "$SUB_B"
expect "a1 and b1 hold live MQTT sessions" $?

# ---- roles and bad bodies ------------------------------------------------------------------
call POST /v1/revocations -H 'Content-Type: application/json' --data-binary "{\"product_key\": \"$PA\"}"
expect_error "without a token: 401" 401 unauthorized
bearer "$AUDITOR" POST /v1/revocations "{\"product_key\": \"$PA\"}"
expect_error "as an auditor: 403" 403 forbidden
b() { bearer "$OPERATOR" POST /v1/revocations "$1"; }
b '{}'
expect_error "no selection: 400 missing_field" 400 missing_field
b "{\"product_key\": \"$PA\", \"serials\": [\"AB\"]}"
expect_error "two selections: 400 invalid_field" 400 invalid_field
b "{\"product_key\": \"$PA\", \"color\": 1}"
expect_error "an unknown field: 400 invalid_field" 400 invalid_field
b '{"device_ids": "x"}'
expect_error "device_ids not an array: 400 invalid_field" 400 invalid_field
b '{"device_ids": []}'
expect_error "an empty list: 400 invalid_field" 400 invalid_field
b '{"device_ids": ["not-a-uuid"]}'
expect_error "a device id that is not a UUID: 400 invalid_field" 400 invalid_field
python3 -c 'import json, uuid; print(json.dumps({"device_ids": [str(uuid.uuid4()) for _ in range(1001)]}))' >big.json
b @big.json
expect_error "1,001 device ids: 400 invalid_field" 400 invalid_field
b '{"serials": ["XYZ"]}'
expect_error "a serial that is not hex: 400 invalid_field" 400 invalid_field
b "{\"device_ids\": [\"$a1_ID\"], \"issued_after\": \"2026-01-01T00:00:00Z\"}"
expect_error "a window with a list: 400 invalid_field" 400 invalid_field
b "{\"product_key\": \"$PA\", \"issued_after\": \"yesterday\"}"
expect_error "a time that is not RFC 3339: 400 invalid_field" 400 invalid_field
b "{\"product_key\": \"$PA\", \"issued_after\": \"2026-02-30T00:00:00Z\"}"
expect_error "February 30th: 400 invalid_field" 400 invalid_field
b "{\"product_key\": \"$PA\", \"issued_after\": \"2026-03-01T00:00:00Z\", \"issued_before\": \"2026-03-01T00:00:00Z\"}"
expect_error "an empty window: 400 invalid_field" 400 invalid_field
b "{\"product_key\": \"$PA\", \"reason\": \"tired\"}"
expect_error "an unknown reason: 400 invalid_reason" 400 invalid_reason
b "{\"product_key\": \"$PA\", \"reason\": \"superseded\"}"
expect_error "reason superseded: 400 invalid_reason" 400 invalid_reason
b '{"product_key": "no-such-product"}'
expect_error "an unknown product: 404 product_not_found" 404 product_not_found
b '{"ca": "0123ABCD"}'
expect_error "an unknown CA: 404 ca_not_found" 404 ca_not_found
b "{\"device_ids\": [\"$a1_ID\", \"00000000-0000-4000-8000-000000000000\"]}"
expect_error "an unknown device id: 422 unknown_devices" 422 unknown_devices
grep -q 00000000-0000-4000-8000-000000000000 body.out
expect "the answer names it" $?
call POST /v1/revocations -H "Authorization: Bearer $OPERATOR" -H 'Content-Type: text/plain' \
    --data-binary "{\"product_key\": \"$PA\"}"
expect_error "text/plain: 415" 415 unsupported_media_type
[ "$(count revocation_jobs)" = 0 ] && [ "$(valid_of "$PA")" = 2003 ]
expect "no refusal created a job or revoked anything" $?

# ---- a job over product A ---------------------------------------------------------------------
t0=$(date +%s.%N)
b "{\"product_key\": \"$PA\", \"reason\": \"keyCompromise\"}"
expect_status "an operator's job over product A: 202" 202
JOB=$(jf id)
grep -qi "^location: /v1/revocations/$JOB" headers.out && [ "$(jf state)" = queued ] &&
    [ "$(jf reason)" = keyCompromise ]
expect "with Location: /v1/revocations/<id>, state queued, reason keyCompromise" $?
for _ in $(seq 300); do
    bearer "$AUDITOR" GET "/v1/revocations/$JOB"
    [ "$(jf state)" = done ] && break
    sleep 0.1
done
t1=$(date +%s.%N)
[ "$(jf state)" = done ] && [ "$(jf total)" = 2003 ] && [ "$(jf done)" = 2003 ] &&
    [ "$(jf skipped)" = 0 ] && [ "$(jf failed)" = 0 ] && [ "$(jf remaining)" = 0 ] &&
    [ "$(jf created_by)" = bulk-operator ] && [ "$(jf finished_at)" != null ]
rc=$?
expect "an auditor sees it done: total 2003, done 2003, skipped 0, failed 0 ($(echo "$t1 - $t0" | bc) s)" $rc
[ "$(valid_of "$PA")" = 0 ] && [ "$(valid_of "$PB")" = 1 ] &&
    [ "$(count "certificates WHERE status = 'revoked' AND revocation_reason = 1")" = 2003 ] &&
    [ "$(count "devices d JOIN products p ON p.id = d.product_id WHERE p.product_key = '$PA' AND d.status <> 'revoked'")" = 0 ] &&
    [ "$(count "devices d JOIN products p ON p.id = d.product_id WHERE p.product_key = '$PB' AND d.status = 'active'")" = 1 ] &&
    [ "$(count "certificates WHERE kind = 'server' AND status = 'valid'")" -ge 1 ]
expect "exactly product A's certificates are revoked (keyCompromise) and its devices; B and the server certificate untouched" $?
for _ in $(seq 50); do kill -0 "$SUB_A" 2>/dev/null || break; sleep 0.1; done
! kill -0 "$SUB_A" 2>/dev/null && kill -0 "$SUB_B" 2>/dev/null
expect "a1's live session was closed; b1's is still up" $?
# The publisher's CRLs: the complete one and its delta (a revocation may be in either).
A2_SERIAL=$(openssl x509 -in a2.pem -noout -serial | cut -d= -f2)
for _ in $(seq 20); do
    fetch_crl crl "$A2_SERIAL" || break
    for f in crl.pem crl.delta.pem; do [ -f $f ] && openssl crl -in $f -noout -text; done |
        awk '/Serial Number:/ {print $3}' | sort -u >crl.serials
    [ "$(wc -l <crl.serials)" -ge 2003 ] && break
    sleep 0.5
done
[ "$(wc -l <crl.serials)" -ge 2003 ] && grep -qx "$A2_SERIAL" crl.serials &&
    ! grep -qx "$(openssl x509 -in b1.pem -noout -serial | cut -d= -f2)" crl.serials
expect "the CRLs (complete + delta) list A's 2,003 certificates and not B's" $?
[ "$(count "audit_log WHERE action = 'revocation.create' AND actor = 'token:bulk-operator' AND target = '$JOB' AND result = 'ok'")" = 1 ] &&
    [ "$(count "audit_log WHERE action = 'revocation.complete' AND target = '$JOB' AND (details->>'done')::int = 2003")" = 1 ] &&
    [ "$(count "audit_log WHERE action = 'revocation.create' AND result = '403 forbidden'")" = 1 ]
rc=$?
expect "audited: the creation, the completion with its counts, the auditor's refusal" $rc

[ "$(count revocation_job_items)" = 0 ]
expect "the job's items are gone" $?

# ---- serials, a CA window, lookups -------------------------------------------------------------
B1_SERIAL=$(openssl x509 -in b1.pem -noout -serial | cut -d= -f2)
b "{\"serials\": [\"$(tr A-F a-f <<<"$B1_SERIAL")\", \"$(openssl x509 -in a3.pem -noout -serial | cut -d= -f2)\"]}"
expect_status "a job over two serials (one lower-case, one already revoked): 202" 202
JOB2=$(jf id)
for _ in $(seq 100); do bearer "$OPERATOR" GET "/v1/revocations/$JOB2"; [ "$(jf state)" = done ] && break; sleep 0.1; done
[ "$(jf state)" = done ] && [ "$(jf total)" = 1 ] && [ "$(jf done)" = 1 ] &&
    [ "$(count "certificates WHERE serial = '$B1_SERIAL' AND status = 'revoked'")" = 1 ] &&
    [ "$(count "devices WHERE id = '$b1_ID' AND status = 'active'")" = 1 ]
expect "it revokes b1's certificate (total 1: the revoked one is not selected); the device stays active" $?
for _ in $(seq 50); do kill -0 "$SUB_B" 2>/dev/null || break; sleep 0.1; done
! kill -0 "$SUB_B" 2>/dev/null
expect "b1's live session is closed" $?
b '{"ca": "issuing", "issued_after": "2099-01-01T00:00:00Z"}'
JOB3=$(jf id)
for _ in $(seq 100); do bearer "$OPERATOR" GET "/v1/revocations/$JOB3"; [ "$(jf state)" = done ] && break; sleep 0.1; done
[ "$(jf state)" = done ] && [ "$(jf total)" = 0 ] && [ "$(jf selector.ca)" = issuing ]
expect "a CA window in the future selects nothing and is done" $?
bearer "$AUDITOR" GET /v1/revocations/00000000-0000-4000-8000-000000000000
expect_error "an unknown job: 404" 404 not_found
bearer "$AUDITOR" GET /v1/revocations/nope
expect_error "a job id that is not a UUID: 404" 404 not_found

# ---- iothubctl revoke --product P --issued-between T1 T2 ------------------------------------------
bearer "$ADMIN" POST /v1/products '{"name": "window"}'
PC=$(jf product_key)
sql "$URL" "
INSERT INTO devices (product_id, serial_number, secret_hash, status)
    SELECT p.id, 'win-' || i, 'x', 'active' FROM products p, generate_series(1, 30) i
    WHERE p.product_key = '$PC';
INSERT INTO certificates (serial, ca_id, kind, device_id, subject, der, not_before, not_after, created_at)
    SELECT upper(md5(d.id::text)), (SELECT id FROM cas WHERE role = 'issuing' AND active),
           'device', d.id, 'CN=' || d.id, '\x00', now(), now() + interval '300 days',
           CASE WHEN d.serial_number IN ('win-1', 'win-2', 'win-3', 'win-4', 'win-5', 'win-6',
                'win-7', 'win-8', 'win-9', 'win-10') THEN timestamptz '2026-06-15T00:00:00Z'
                ELSE timestamptz '2026-01-15T00:00:00Z' END
    FROM devices d WHERE d.serial_number LIKE 'win-%';" >seed2.out 2>&1
"$CTL" --url "$BASE" --cacert trust.pem --token "$OPERATOR" revoke --product "$PC" \
    --issued-between 2026-06-01T00:00:00Z 2026-07-01T00:00:00Z --reason cessationOfOperation \
    >ctl.out 2>ctl.err
rc=$?
[ $rc = 0 ] && grep -q ': queued$' ctl.out && grep -q ': done 10/10 revoked (skipped 0, failed 0)$' ctl.out &&
    [ "$(valid_of "$PC")" = 20 ] &&
    [ "$(count "certificates c JOIN devices d ON d.id = c.device_id WHERE d.serial_number IN ('win-1', 'win-10') AND c.status = 'revoked' AND c.revocation_reason = 5")" = 2 ]
rc=$?
expect "iothubctl revoke --product --issued-between: exit 0, progress printed, exactly the 10 of June revoked" $rc
[ $rc = 0 ] || { echo "# valid $(valid_of "$PC")"; sed 's/^/# /' ctl.out ctl.err seed2.out; }
printf '%s\n# a comment\n%s\n' "$(openssl x509 -in a1.pem -noout -serial | cut -d= -f2)" \
    "$(sql "$URL" "SELECT c.serial FROM certificates c JOIN devices d ON d.id = c.device_id WHERE d.serial_number = 'win-20'")" >serials.txt
"$CTL" --url "$BASE" --cacert trust.pem --token "$OPERATOR" revoke --serials-file serials.txt >ctl.out 2>ctl.err
rc=$?
[ $rc = 0 ] && grep -q ': done 1/1 revoked' ctl.out && [ "$(valid_of "$PC")" = 19 ]
rc=$?
expect "iothubctl revoke --serials-file: one valid serial of two, done 1/1" $rc
[ $rc = 0 ] || { echo "# valid $(valid_of "$PC")"; sed 's/^/# /' ctl.out ctl.err serials.txt; }
"$CTL" --url "$BASE" --cacert trust.pem --token "$OPERATOR" revoke --product "$PC" --issued-between 2026-06-01T00:00:00Z >ctl.out 2>ctl.err
[ $? = 2 ] && grep -q 'needs two times' ctl.err
expect "iothubctl revoke --issued-between with one time: usage error (exit 2)" $?
"$CTL" --url "$BASE" --cacert trust.pem --token "$AUDITOR" revoke --product "$PC" >ctl.out 2>ctl.err
[ $? = 1 ] && grep -q 'forbidden' ctl.err
expect "iothubctl revoke as an auditor: refused (exit 1)" $?

kill_sub
server_alive
expect "the server is still up" $?
stop_server
expect "serve stops cleanly" $?
finish
