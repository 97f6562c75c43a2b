# Helpers for the REST API tests (test_api_*.sh): a server set up with `iothubd init`, trusted
# through the chain `iothubd ca chain` prints (out of band, as an operator would copy it),
# and curl calls that keep the status, the headers and the body of the last answer.
# shellcheck shell=bash
. "$(dirname "$0")/lib.sh"
cd "$T" || exit 1

BASE="https://127.0.0.1:$API_PORT"
# Debian's python3 (deploy/dev.sh installs it) starts in a tenth of the time a version
# manager's shim takes, and these tests run it for most answers.
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

# api_setup NAME [CONFIG-LINE...]: database, config (with the extra lines), `iothubd init`,
# trust anchor (trust.pem, issuing.pem, root.pem), `iothubd serve`. Sets URL and ADMIN (the
# bootstrap admin token).
api_setup() {
    URL=$(new_db "$1") || return 1
    write_conf iothub.conf "$URL" "${@:2}"
    "$IOTHUBD" -c iothub.conf init --token-file admin.token >init.out 2>init.err || return 1
    ADMIN=$(cat admin.token)
    "$IOTHUBD" -c iothub.conf ca chain >trust.pem 2>/dev/null || return 1
    awk '/BEGIN/ {n++} n == 1 {print > "issuing.pem"} n == 2 {print > "root.pem"}' trust.pem
    start_server iothub.conf serve.log
}

# call METHOD PATH [curl options...]: sets STATUS and BODY; the body is in body.out, the
# response headers in headers.out.
call() {
    local method=$1 path=$2
    shift 2
    : >"$T/body.out"
    STATUS=$(curl -sS --cacert "$T/trust.pem" -X "$method" -D "$T/headers.out" -o "$T/body.out" \
        -w '%{http_code}' "$@" "$BASE$path" 2>"$T/curl.err")
    BODY=$(head -c 4000 "$T/body.out" | tr -d '\0')
}

# bearer TOKEN METHOD PATH [JSON]: a call with a bearer token and an optional JSON body
# ("@file" reads the body from a file).
bearer() {
    local token=$1 method=$2 path=$3
    if [ $# -ge 4 ]; then
        call "$method" "$path" -H "Authorization: Bearer $token" \
            -H 'Content-Type: application/json' --data-binary "$4"
    else
        call "$method" "$path" -H "Authorization: Bearer $token"
    fi
}

# basic USER:PASSWORD PATH JSON: a POST with HTTP Basic credentials and a JSON body.
basic() {
    call POST "$2" -u "$1" -H 'Content-Type: application/json' --data-binary "$3"
}

# jf FIELD: a field of the last JSON answer ("a.b.0.c"); strings raw, the rest as JSON.
jf() {
    "$PY" -c '
import json, sys
v = json.load(open(sys.argv[1]))
for k in filter(None, sys.argv[2].split(".")):
    v = v[int(k)] if isinstance(v, list) else v.get(k) if isinstance(v, dict) else None
print(v if isinstance(v, str) else json.dumps(v))' "$T/body.out" "$1" 2>/dev/null
}

# jf_file FIELD FILE: writes a string field of the last answer to FILE, byte for byte.
jf_file() {
    "$PY" -c '
import json, sys
open(sys.argv[3], "w").write(json.load(open(sys.argv[1]))[sys.argv[2]])' "$T/body.out" "$1" "$2"
}

# json_str VALUE: VALUE as a JSON string literal (UTF-8 as is).
json_str() {
    "$PY" -c 'import json, sys; print(json.dumps(sys.argv[1], ensure_ascii=False))' "$1"
}

# csr_body CSR-FILE OUT: writes {"csr": "<contents of CSR-FILE>"} to OUT.
csr_body() {
    "$PY" -c '
import json, sys
json.dump({"csr": open(sys.argv[1], encoding="latin-1").read()}, open(sys.argv[2], "w"))' "$1" "$2"
}

# make_csr TYPE NAME [SUBJECT]: NAME.key and NAME.csr (PEM) from `openssl req`.
make_csr() {
    local opts
    case $1 in
        ec-p256) opts=(-newkey ec -pkeyopt ec_paramgen_curve:P-256) ;;
        ec-p384) opts=(-newkey ec -pkeyopt ec_paramgen_curve:P-384) ;;
        ec-p521) opts=(-newkey ec -pkeyopt ec_paramgen_curve:P-521) ;;
        rsa-*) opts=(-newkey "rsa:${1#rsa-}") ;;
        ed25519) opts=(-newkey ed25519) ;;
        dsa) openssl dsaparam -genkey -out "$2.key" 2048 2>/dev/null || return 1
             opts=(-key "$2.key") ;;
    esac
    openssl req -new "${opts[@]}" -nodes -keyout "$2.key" -subj "${3:-/CN=ignored}" \
        -out "$2.csr" 2>/dev/null
}

# activate_as KIND ID SECRET NAME: a new EC P-256 key (NAME.key) and CSR, POST
# /v1/KINDs/ID/activate with Basic ID:SECRET; the certificate goes to NAME.pem.
activate_as() {
    make_csr ec-p256 "$4" && csr_body "$4.csr" "$4.json" || return 1
    basic "$2:$3" "/v1/$1s/$2/activate" "@$4.json"
    [ "$STATUS" = 201 ] && jf_file certificate "$4.pem"
}

# expect_status NAME STATUS: passes when the last answer had STATUS.
expect_status() {
    if [ "$STATUS" = "$2" ]; then ok "$1"; else not_ok "$1 (got $STATUS: $BODY)"; fi
}

# expect_error NAME STATUS CODE: passes when the last answer was STATUS with the JSON error
# {"error": {"code": CODE, "message": "<non-empty>"}}.
expect_error() {
    local got
    got=$("$PY" -c '
import json, sys
e = json.load(open(sys.argv[1]))["error"]
print(e["code"] if e["message"] else "")' "$T/body.out" 2>/dev/null)
    if [ "$STATUS" = "$2" ] && [ "$got" = "$3" ]; then
        ok "$1"
    else
        not_ok "$1 (got $STATUS: $BODY)"
    fi
}

# header NAME: value of a header of the last answer (CR stripped).
header() {
    grep -i "^$1:" "$T/headers.out" | head -n 1 | cut -d: -f2- | sed 's/^ //' | tr -d '\r'
}

# count QUERY-TAIL: SELECT count(*) FROM QUERY-TAIL.
count() {
    sql "$URL" "SELECT count(*) FROM $1"
}

# fetch_crl NAME [SERIAL]: GET /v1/crl (the complete CRL) into NAME.der and NAME.pem, and GET
# /v1/crl?delta=1 (its delta CRL) into NAME.delta.der and NAME.delta.pem. With SERIAL, fetches
# again (5 s at most) until one of them lists it: a revocation reaches the delta CRL through
# the publisher, within a second of its commit, not in the revocation's answer.
fetch_crl() {
    local until=$((${EPOCHREALTIME/./} + 5000000))
    while :; do
        call GET /v1/crl && [ "$STATUS" = 200 ] && cp body.out "$1.der" &&
            openssl crl -inform DER -in "$1.der" -out "$1.pem" 2>/dev/null || return 1
        rm -f "$1.delta.der" "$1.delta.pem"
        call GET '/v1/crl?delta=1'
        if [ "$STATUS" = 200 ]; then
            cp body.out "$1.delta.der" &&
                openssl crl -inform DER -in "$1.delta.der" -out "$1.delta.pem" 2>/dev/null || return 1
        fi
        { [ -z "${2:-}" ] || [ -n "$(crl_reason "$1.pem" "$2")" ]; } && return 0
        [ "${EPOCHREALTIME/./}" -lt "$until" ] || return 1
        sleep 0.05
    done
}

# crl_number CRL.pem: the cRLNumber as a decimal number (of CRL.delta.pem when fetch_crl
# wrote one: the newer of the two).
crl_number() {
    local f=$1
    [ "${f%.pem}" != "$f" ] && [ -f "${f%.pem}.delta.pem" ] && f=${f%.pem}.delta.pem
    echo $(($(openssl crl -in "$f" -noout -crlnumber | cut -d= -f2)))
}

# crl_reason CRL.pem SERIAL: the reason openssl prints for SERIAL ("none" without a reason
# code, empty when the serial is not listed), in CRL.pem or else its CRL.delta.pem.
crl_reason() {
    local files=("$1") f r
    [ "${1%.pem}" != "$1" ] && [ -f "${1%.pem}.delta.pem" ] && files+=("${1%.pem}.delta.pem")
    for f in "${files[@]}"; do
        r=$(openssl crl -in "$f" -noout -text | awk -v s="$2" '
            /Serial Number:/ {cur = ($3 == s); if (cur) found = 1; next}
            cur && /CRL Reason Code/ {getline; gsub(/^ +| +$/, ""); print; done = 1; exit}
            END {if (found && !done) print "none"}')
        [ -n "$r" ] && { echo "$r"; return; }
    done
}

# verify_cert CERT.pem CRL.pem: openssl verify with the served chain and CRL (and its delta,
# CRL.delta.pem, when fetch_crl wrote one: -use_deltas).
verify_cert() {
    local delta=()
    [ -f "${2%.pem}.delta.pem" ] && delta=(-use_deltas -CRLfile "${2%.pem}.delta.pem")
    openssl verify -x509_strict -crl_check -purpose sslclient -CAfile root.pem \
        -untrusted issuing.pem -CRLfile "$2" "${delta[@]}" "$1"
}

# ---- mosquitto clients as WHO (WHO.pem, WHO.key) -----------------------------------------------
MQ=(--cafile trust.pem -h 127.0.0.1 -p "$MQTT_PORT")
SUB_PID=
SUB_FORMAT='%t %p' # mosquitto_sub -F: what sub writes per message
SUB_SECONDS=20     # how long a subscriber may live
# sub WHO OUT ARGS...: mosquitto_sub as WHO in the background (at most SUB_SECONDS), one
# SUB_FORMAT line per message (plus -d debug lines) to OUT; returns once its SUBACK came
# (stdout line-buffered to see it). Sets SUB_PID.
sub() {
    local who=$1 out=$2
    shift 2
    timeout "$SUB_SECONDS" stdbuf -oL mosquitto_sub -d "${MQ[@]}" --cert "$who.pem" \
        --key "$who.key" -F "$SUB_FORMAT" "$@" >"$out" 2>&1 &
    SUB_PID=$!
    for _ in $(seq 100); do
        grep -q 'received SUBACK' "$out" && return 0
        kill -0 "$SUB_PID" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}
# end_sub: waits for the subscriber started last (it exits by -C or -W).
end_sub() {
    [ -n "$SUB_PID" ] && wait "$SUB_PID" 2>/dev/null
    SUB_PID=
}
kill_sub() {
    [ -n "$SUB_PID" ] && kill "$SUB_PID" 2>/dev/null
    end_sub
}
# pub WHO ARGS...: mosquitto_pub as WHO (at most 10 s); its output goes to pub.log.
pub() {
    local who=$1
    shift
    echo "---- pub as $who: $*" >>pub.log
    timeout 10 mosquitto_pub "${MQ[@]}" --cert "$who.pem" --key "$who.key" "$@" >>pub.log 2>&1
}
trap 'kill_sub >/dev/null 2>&1; stop_server >/dev/null 2>&1' EXIT

