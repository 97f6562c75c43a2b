#!/usr/bin/env bash
# The OCSP responder (RFC 6960) at /ocsp, checked with `openssl ocsp` as a relying party
# would run it: good, then revoked (time and reason) after a REST revocation, unknown for a
# serial never issued, the nonce echoed, POST and GET, SHA-1 and SHA-256 CertIDs, a root
# answering for its issuing CA; malformed requests get malformedRequest, another CA
# unauthorized, a wrong media type 415, and the server survives it all. New certificates
# carry the Authority Information Access extension that points here.
. "$(dirname "$0")/api_lib.sh"

api_setup ocsp
expect "serve starts" $?
OCSP="https://127.0.0.1:$API_PORT/ocsp"

bearer "$ADMIN" POST /v1/products '{"name": "ocsp"}'
PK=$(jf product_key)
bearer "$ADMIN" POST /v1/devices "{\"product_key\": \"$PK\", \"serial_number\": \"SN-OCSP-1\"}"
DEV=$(jf device_id) SECRET=$(jf device_secret)
activate_as device "$DEV" "$SECRET" dev
expect "a device is activated" $?
SERIAL=$(openssl x509 -in dev.pem -noout -serial | cut -d= -f2)

# ---- AIA in the new certificate --------------------------------------------------------------
openssl x509 -in dev.pem -noout -text >dev.txt
grep -q 'Authority Information Access' dev.txt &&
    grep -q "OCSP - URI:https://localhost:$API_PORT/ocsp" dev.txt &&
    [ "$(openssl x509 -in dev.pem -noout -ocsp_uri)" = "https://localhost:$API_PORT/ocsp" ]
expect "the activated certificate carries AIA id-ad-ocsp -> https://localhost:$API_PORT/ocsp" $?

# on_fail FILE: shows FILE on stderr when the test just reported failed.
SEEN_FAILED=0
on_fail() {
    [ "$FAILED" -gt "$SEEN_FAILED" ] && { echo "--- $1" >&2; head -c 6000 "$1" >&2; }
    SEEN_FAILED=$FAILED
}

# ocsp OUT ARGS...: openssl ocsp against the responder, verifying with the served chain.
ocsp() {
    local out=$1
    shift
    openssl ocsp -url "$OCSP" -CAfile trust.pem -verify_other trust.pem -resp_text "$@" \
        >"$out" 2>&1
}

# ---- good, with a nonce, SHA-1 and SHA-256, POST ---------------------------------------------
ocsp good.out -issuer issuing.pem -cert dev.pem
grep -q "^dev.pem: good" good.out && grep -q 'Response verify OK' good.out &&
    grep -q 'OCSP Nonce' good.out && grep -q 'Responder Id: ' good.out &&
    grep -q 'Next Update: ' good.out
expect "openssl ocsp (POST, SHA-1, nonce): good, verified, nonce echoed, nextUpdate" $?
on_fail good.out
grep -q 'OCSP Signing' good.out && grep -q 'OCSP No Check' good.out &&
    grep -Eq 'CN ?= ?iothub Issuing CA OCSP Responder' good.out
expect "signed by a delegated responder certificate (OCSPSigning, ocsp-nocheck) of the issuing CA" $?
on_fail good.out
ocsp good256.out -issuer issuing.pem -sha256 -cert dev.pem -no_nonce
grep -q "^dev.pem: good" good256.out && grep -q 'Hash Algorithm: sha256' good256.out &&
    grep -q 'Response verify OK' good256.out
expect "a SHA-256 CertID without a nonce: good" $?

# ---- GET -----------------------------------------------------------------------------------
openssl ocsp -issuer issuing.pem -cert dev.pem -no_nonce -reqout get.req >/dev/null 2>&1
B64=$(base64 -w0 get.req | sed 's#/#%2F#g; s#+#%2B#g; s#=#%3D#g')
call GET "/ocsp/$B64"
[ "$STATUS" = 200 ] && grep -qi '^content-type: application/ocsp-response' headers.out &&
    grep -qi '^cache-control: max-age=' headers.out &&
    openssl ocsp -respin body.out -issuer issuing.pem -cert dev.pem -CAfile trust.pem \
        -verify_other trust.pem -no_nonce >get.out 2>&1 && grep -q '^dev.pem: good' get.out
expect "GET /ocsp/<base64>: good, application/ocsp-response, cacheable" $?
RAW=$(base64 -w0 get.req)
call GET "/ocsp/$RAW"
[ "$STATUS" = 200 ] && openssl ocsp -respin body.out -issuer issuing.pem -cert dev.pem \
    -CAfile trust.pem -verify_other trust.pem -no_nonce 2>/dev/null | grep -q '^dev.pem: good'
expect "GET with base64 not percent-encoded ('/' in the path) is answered too" $?

# ---- unknown: a serial never issued ----------------------------------------------------------
ocsp unknown.out -issuer issuing.pem -serial 0x4ABCDEF0123456789ABCDEF012345678
grep -q ": unknown" unknown.out && grep -q 'Response verify OK' unknown.out
expect "a serial never issued: unknown" $?

# ---- the root answers for its issuing CA -----------------------------------------------------
ocsp root.out -issuer root.pem -cert issuing.pem
grep -q "^issuing.pem: good" root.out && grep -Eq 'CN ?= ?iothub Root CA OCSP Responder' root.out
expect "the root's responder: the issuing CA is good" $?
on_fail root.out

# ---- revoked after a REST revocation, at once ------------------------------------------------
bearer "$ADMIN" POST "/v1/devices/$DEV/revoke" '{"reason": "keyCompromise"}'
expect_status "REST revocation of the device" 200
ocsp revoked.out -issuer issuing.pem -cert dev.pem
REVOKED_AT=$(date -u -d "@$(sql "$URL" "SELECT floor(extract(epoch FROM revoked_at))::bigint FROM certificates WHERE serial = '$SERIAL'")" '+%b %e %H:%M:%S %Y GMT')
grep -q "^dev.pem: revoked" revoked.out && grep -q 'Reason: keyCompromise' revoked.out &&
    grep -q "Revocation Time: $REVOKED_AT" revoked.out
expect "after the revocation: revoked, reason keyCompromise, the revocation time ($REVOKED_AT)" $?
on_fail revoked.out
call GET "/ocsp/$B64"
openssl ocsp -respin body.out -issuer issuing.pem -cert dev.pem -CAfile trust.pem \
    -verify_other trust.pem -no_nonce 2>/dev/null | grep -q '^dev.pem: revoked'
expect "GET of the same request as before (cached while good) now says revoked" $?

# ---- refusals ------------------------------------------------------------------------------
# ocsp_status FILE: the responseStatus of an OCSPResponse (decimal).
ocsp_status() { openssl asn1parse -inform DER -in "$1" 2>/dev/null | awk '/ENUMERATED/ {print $NF; exit}' | sed 's/^://'; }
call POST /ocsp -H 'Content-Type: application/ocsp-request' --data-binary 'garbage'
[ "$STATUS" = 200 ] && [ "$(ocsp_status body.out)" = 01 ]
expect "garbage POSTed: malformedRequest (1)" $?
head -c 20 get.req >trunc.req
call POST /ocsp -H 'Content-Type: application/ocsp-request' --data-binary @trunc.req
[ "$STATUS" = 200 ] && [ "$(ocsp_status body.out)" = 01 ]
expect "a truncated request: malformedRequest" $?
call POST /ocsp -H 'Content-Type: application/ocsp-request' --data-binary ''
[ "$STATUS" = 200 ] && [ "$(ocsp_status body.out)" = 01 ]
expect "an empty body: malformedRequest" $?
call GET '/ocsp/not%20base64!'
[ "$STATUS" = 200 ] && [ "$(ocsp_status body.out)" = 01 ]
expect "GET with a path that is not base64: malformedRequest" $?
call POST /ocsp -H 'Content-Type: application/json' --data-binary @get.req
expect_error "POST with Content-Type application/json: 415" 415 unsupported_media_type
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout other.key \
    -subj '/CN=Other CA' -out other.pem -days 2 2>/dev/null
openssl ocsp -issuer other.pem -serial 0x01 -no_nonce -reqout other.req >/dev/null 2>&1
call POST /ocsp -H 'Content-Type: application/ocsp-request' --data-binary @other.req
[ "$STATUS" = 200 ] && [ "$(ocsp_status body.out)" = 06 ]
expect "a CA this hub does not hold: unauthorized (6)" $?
openssl ocsp -issuer issuing.pem -sha384 -cert dev.pem -no_nonce -reqout sha384.req >/dev/null 2>&1
call POST /ocsp -H 'Content-Type: application/ocsp-request' --data-binary @sha384.req
[ "$STATUS" = 200 ] && [ "$(ocsp_status body.out)" = 06 ]
expect "a SHA-384 CertID (not served): unauthorized" $?
# bit flips of a real request: every answer is an OCSPResponse, the server lives on
API_PORT=$API_PORT python3 - get.req <<'PY' >flips.out
import http.client, os, random, ssl, sys
ctx = ssl.create_default_context(cafile="trust.pem")
ctx.check_hostname = False
conn = http.client.HTTPSConnection("127.0.0.1", int(os.environ["API_PORT"]), context=ctx, timeout=10)
req = open(sys.argv[1], "rb").read()
random.seed(7)
bad = 0
for i in range(300):
    b = bytearray(req)
    for _ in range(random.randint(1, 3)):
        b[random.randrange(len(b))] = random.randrange(256)
    conn.request("POST", "/ocsp", body=bytes(b), headers={"Content-Type": "application/ocsp-request"})
    r = conn.getresponse()
    body = r.read()
    if r.status != 200 or body[:1] != b"\x30":
        bad += 1
print("non-OCSP answers:", bad)
PY
grep -q 'non-OCSP answers: 0' flips.out && server_alive
expect "300 mutated requests: each answered with an OCSPResponse, the server still serves" $?
on_fail flips.out

# ---- metrics ---------------------------------------------------------------------------------
call GET /metrics
grep -q 'iothub_ocsp_responses_total{status="successful"} [1-9]' body.out &&
    grep -q 'iothub_ocsp_responses_total{status="malformedRequest"} [1-9]' body.out &&
    grep -q 'iothub_ocsp_certificates_total{status="revoked"} [1-9]' body.out
expect "/metrics counts OCSP responses and statuses" $?
[ "$(count "ocsp_signers")" -ge 2 ]
expect "the responder certificates are recorded in ocsp_signers" $?

stop_server
expect "serve stops cleanly" $?
finish
