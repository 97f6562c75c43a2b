#!/usr/bin/env bash
# CRL publication after revocations (issue 14, SPEC §5): a revocation commits without a CRL,
# the publisher issues a delta CRL (RFC 5280 §5.2.4) within 1 s, served at GET
# /v1/crl?delta=1; the base names it (Freshest CRL); `openssl verify -crl_check -use_deltas`
# takes base + delta; a burst is coalesced (at most one publication a second); a base past
# crl_base_hours is replaced; old CRL rows are pruned; with two nodes on one database one
# publishes at a time and nothing is published twice.
. "$(dirname "$0")/api_lib.sh"

URL=$(new_db crl) || exit 1
# crl_rebuild_max_entries = 0: deltas even for this small CRL (the default rebuilds a CRL of
# at most 10,000 entries whole at each publication; that case is checked at the end).
write_conf iothub.conf "$URL" "crl_history = 2" "log_level = debug" "crl_rebuild_max_entries = 0"
"$IOTHUBD" -c iothub.conf init --token-file admin.token >init.out 2>init.err
ADMIN=$(cat admin.token)
"$IOTHUBD" -c iothub.conf ca chain >trust.pem 2>/dev/null
awk '/BEGIN/ {n++} n == 1 {print > "issuing.pem"} n == 2 {print > "root.pem"}' trust.pem
start_server iothub.conf serve.log
expect "iothubd init, then iothubd serve answers /healthz" $?
ISSUING=$(sql "$URL" "SELECT id FROM cas WHERE role = 'issuing' AND active")

bearer "$ADMIN" POST /v1/products '{"name":"CRL"}'
PK=$(jf product_key)
# device NAME: provisions and activates a device; NAME.pem, NAME.key, ID_NAME, SERIAL_NAME.
declare -A DEV SER
device() {
    bearer "$ADMIN" POST /v1/devices "{\"product_key\":\"$PK\",\"serial_number\":\"SN-$1\"}"
    DEV[$1]=$(jf device_id)
    activate_as device "${DEV[$1]}" "$(jf device_secret)" "$1" &&
        SER[$1]=$(openssl x509 -in "$1.pem" -noout -serial | cut -d= -f2)
}
ok_devices=0
for d in a b c d1 d2 d3 e f; do device "$d" && ok_devices=$((ok_devices + 1)); done
[ "$ok_devices" = 8 ]
expect "eight devices activated" $?

# fetch WHAT NAME: GET /v1/crl[?delta=1] into NAME.der / NAME.pem / NAME.txt.
fetch() {
    local q=; [ "$1" = delta ] && q='?delta=1'
    call GET "/v1/crl$q" && [ "$STATUS" = 200 ] && cp body.out "$2.der" &&
        openssl crl -inform DER -in "$2.der" -out "$2.pem" 2>/dev/null &&
        openssl crl -in "$2.pem" -noout -text >"$2.txt"
}
listed() { grep -q "Serial Number: $2\$" "$1.txt"; }
# poll_delta SERIAL: GET /v1/crl?delta=1 until SERIAL is listed (5 s at most), into pd.*;
# one openssl per try, so that the polling itself stays fast on a loaded machine.
poll_delta() {
    local until=$((${EPOCHREALTIME/./} + 5000000))
    while [ "${EPOCHREALTIME/./}" -lt "$until" ]; do
        curl -sS --cacert trust.pem -o pd.der "$BASE/v1/crl?delta=1" 2>/dev/null &&
            openssl crl -inform DER -in pd.der -noout -text 2>/dev/null | grep -q "Serial Number: $1\$" &&
            return 0
        sleep 0.01
    done
    return 1
}
# verify_d CERT BASE DELTA: openssl verify with deltas.
verify_d() {
    openssl verify -x509_strict -crl_check -use_deltas -purpose sslclient -CAfile root.pem \
        -untrusted issuing.pem -CRLfile "$2.pem" -CRLfile "$3.pem" "$1.pem"
}

# ---- the base and its delta, as served --------------------------------------------------
fetch base base0 && fetch delta delta0
expect "GET /v1/crl and GET /v1/crl?delta=1 -> 200, DER CRLs openssl reads" $?
B0=$(crl_number base0.pem) D0=$(crl_number delta0.pem)
grep -q "X509v3 Freshest CRL:" base0.txt &&
    grep -A3 "X509v3 Freshest CRL:" base0.txt | grep -q "URI:https://localhost:$API_PORT/v1/crl?delta=1" &&
    ! grep -q "Delta CRL Indicator" base0.txt
expect "the base carries Freshest CRL -> https://localhost:$API_PORT/v1/crl?delta=1" $?
grep -q "X509v3 Delta CRL Indicator: critical" delta0.txt &&
    [ "$(grep -A1 'Delta CRL Indicator' delta0.txt | tail -n 1 | tr -d ' ')" = "$(printf '%X' "$B0")" ] &&
    [ "$D0" -gt "$B0" ] && ! grep -q "Freshest CRL" delta0.txt
expect "the delta: critical Delta CRL Indicator = the base's cRLNumber ($B0), its own number $D0 after it" $?
openssl crl -in delta0.pem -CAfile trust.pem -noout -verify 2>&1 | grep -q 'verify OK'
expect "the delta's signature verifies with the issuing CA" $?
call GET '/v1/crl?delta=1&format=pem'
[ "$STATUS" = 200 ] && cmp -s body.out delta0.pem
expect "GET /v1/crl?delta=1&format=pem -> the same delta in PEM" $?
call GET '/v1/crl?delta=2'
expect_error "GET /v1/crl?delta=2 -> 400 invalid_parameter" 400 invalid_parameter
call GET '/v1/crl?ca=root&delta=1'
[ "$STATUS" = 200 ] && cp body.out root-delta.der &&
    openssl crl -inform DER -in root-delta.der -noout -text | grep -q "Delta CRL Indicator"
expect "GET /v1/crl?ca=root&delta=1 -> the root's delta CRL" $?

# ---- one revocation: committed without a CRL, the delta follows within 1 s ----------------
crls_before=$(count "crls WHERE ca_id = $ISSUING")
t0=${EPOCHREALTIME/./}
bearer "$ADMIN" POST "/v1/devices/${DEV[a]}/revoke" '{"reason":"keyCompromise"}'
t_api=${EPOCHREALTIME/./}
[ "$STATUS" = 200 ]
expect "POST /v1/devices/{id}/revoke -> 200 ($(((t_api - t0) / 1000)) ms)" $?
poll_delta "${SER[a]}" && seen=${EPOCHREALTIME/./} || seen=99999999999999
ms=$(((seen - t_api) / 1000))
[ "$ms" -le 1000 ]
expect "the revoked serial is in GET /v1/crl?delta=1 within 1 s of the committed revocation ($ms ms)" $?
echo "# revocation answered -> serial in the delta CRL: $ms ms" >&2
lat=$(sed -n 's/.*CRL publisher: [0-9]* CRL(s) published \([0-9]*\) ms after the revocation notice.*/\1/p' serve.log | head -n 1)
[ -n "$lat" ] && [ "$lat" -le 1000 ]
expect "server side: the delta was published ${lat:-?} ms after the revocation's NOTIFY" $?
fetch delta delta1
[ "$(crl_reason delta1.pem "${SER[a]}")" = "Key Compromise" ] &&
    [ "$(crl_number delta1.pem)" -gt "$D0" ]
expect "the delta lists it with reasonCode keyCompromise and a higher cRLNumber" $?
fetch base base1 && [ "$(crl_number base1.pem)" = "$B0" ] && ! listed base1 "${SER[a]}"
expect "the base is unchanged (no complete CRL rebuilt for a revocation)" $?
verify_d a base1 delta1 >verify.out 2>&1
[ $? != 0 ] && grep -q 'certificate revoked' verify.out
expect "openssl verify -crl_check -use_deltas (base + delta) refuses the revoked certificate" $?
verify_cert a.pem base1.pem >verify.out 2>&1
expect "(the base alone still accepts it: the delta is what carries the revocation)" $?
verify_d b base1 delta1 >verify.out 2>&1
expect "openssl verify -crl_check -use_deltas accepts a valid certificate" $?

# ---- a burst: coalesced, at most one publication a second ----------------------------------
n_before=$(crl_number delta1.pem)
t0=${EPOCHREALTIME/./}
for d in d1 d2 d3; do
    bearer "$ADMIN" POST "/v1/certificates/${SER[$d]}/revoke" '{"reason":"superseded"}'
    [ "$STATUS" = 200 ] || echo "revoke $d: $STATUS $BODY" >&2
done
all=
while [ $((${EPOCHREALTIME/./} - t0)) -lt 6000000 ]; do
    if fetch delta delta2; then
        all=1
        for d in d1 d2 d3; do listed delta2 "${SER[$d]}" || all=; done
        [ -n "$all" ] && break
    fi
    sleep 0.05
done
el=$(((${EPOCHREALTIME/./} - t0) / 1000))
[ -n "$all" ] && listed delta2 "${SER[a]}"
expect "three revocations in a row: all in the delta after $el ms (and the first one still)" $?
pubs=$(($(crl_number delta2.pem) - n_before))
[ "$pubs" -ge 1 ] && [ "$pubs" -le $((el / 1000 + 2)) ]
expect "coalesced: $pubs publication(s) for 3 revocations in $el ms (at most one a second)" $?
sql "$URL" "SELECT crl_number, extract(epoch FROM created_at) FROM crls WHERE ca_id = $ISSUING
            AND base_number IS NOT NULL ORDER BY crl_number" >gaps.txt
awk -F'|' 'NR > 1 && $2 - prev < 0.99 {bad = 1} {prev = $2} END {exit bad}' gaps.txt
expect "no two deltas of the CA recorded less than a second apart" $?

# ---- pruning: the current base and delta plus crl_history = 2 ------------------------------
kept=$(count "crls WHERE ca_id = $ISSUING")
[ "$kept" -le 4 ] && [ "$(count "crls WHERE ca_id = $ISSUING AND crl_number = $B0")" = 1 ] &&
    [ "$(count "crls WHERE ca_id = $ISSUING AND crl_number = $(crl_number delta2.pem)")" = 1 ]
expect "old CRL rows pruned: $kept kept (the current base, the current delta, 2 of history)" $?

# ---- a base past crl_base_hours is replaced at the next publication ------------------------
sql "$URL" "UPDATE crls SET this_update = this_update - interval '13 hours', watermark = watermark - interval '13 hours',
            next_update = next_update - interval '13 hours' WHERE ca_id = $ISSUING AND crl_number = $B0" >/dev/null
bearer "$ADMIN" POST "/v1/devices/${DEV[c]}/revoke" '{"reason":"cessationOfOperation"}'
t0=${EPOCHREALTIME/./}
seen=
while [ $((${EPOCHREALTIME/./} - t0)) -lt 5000000 ]; do
    fetch base base3 && [ "$(crl_number base3.pem)" -gt "$B0" ] && listed base3 "${SER[c]}" &&
        { seen=${EPOCHREALTIME/./}; break; }
    sleep 0.02
done
ms=$(((${seen:-99999999999999} - t0) / 1000))
[ -n "$seen" ] && listed base3 "${SER[a]}" && listed base3 "${SER[d3]}" && [ "$ms" -le 2000 ]
expect "a base older than crl_base_hours (12 h) is rebuilt at the next publication ($ms ms), complete" $?
fetch delta delta3 && B3=$(crl_number base3.pem) &&
    [ "$(grep -A1 'Delta CRL Indicator' delta3.txt | tail -n 1 | tr -d ' ')" = "$(printf '%X' "$B3")" ]
expect "its delta names the new base" $?
verify_d c base3 delta3 >verify.out 2>&1
[ $? != 0 ] && grep -q 'certificate revoked' verify.out && verify_d e base3 delta3 >/dev/null 2>&1
expect "openssl verify -use_deltas with the new pair: revoked refused, valid accepted" $?
[ "$(count "crls WHERE ca_id = $ISSUING AND crl_number = $B0")" = 0 ]
expect "the replaced base is pruned once out of the history" $?

# ---- two nodes on one database: one publisher per CA at a time -----------------------------
API2=$(free_port) MQTT2=$(free_port)
printf 'db_url = %s\nhostname = localhost,127.0.0.1\napi_listen = 127.0.0.1:%s\nmqtt_mtls_listen = 127.0.0.1:%s\ncrl_rebuild_max_entries = 0\n' \
    "$URL" "$API2" "$MQTT2" >node2.conf
"$IOTHUBD" -c node2.conf serve >serve2.log 2>&1 &
PID2=$!
trap 'kill "$PID2" 2>/dev/null; stop_server >/dev/null 2>&1' EXIT
for _ in $(seq 150); do
    curl -sk -o /dev/null "https://127.0.0.1:$API2/healthz" && break
    sleep 0.1
done
before=$(sql "$URL" "SELECT max(crl_number) FROM crls WHERE ca_id = $ISSUING")
sleep 1.1
bearer "$ADMIN" POST "/v1/devices/${DEV[f]}/revoke" '{}'
seen=
for _ in $(seq 100); do
    fetch delta delta4 && listed delta4 "${SER[f]}" && { seen=1; break; }
    sleep 0.05
done
sleep 1.5 # both nodes' publishers have seen the NOTIFY and acted
after=$(sql "$URL" "SELECT max(crl_number) FROM crls WHERE ca_id = $ISSUING")
[ -n "$seen" ] && [ $((after - before)) = 1 ]
expect "two nodes, one revocation: exactly one delta published ($before -> $after)" $?
kill "$PID2" 2>/dev/null
wait "$PID2" 2>/dev/null

grep -q "published issuing CA delta CRL" serve.log && ! grep -qi "CRL publication failed" serve.log serve2.log
expect "the publisher logged its deltas and no failure" $?

# ---- the default: a small CRL is rebuilt whole, so GET /v1/crl itself is within 1 s ----------
stop_server
write_conf iothub.conf "$URL" "crl_history = 2"
start_server iothub.conf serve3.log
sleep 1.1
bearer "$ADMIN" POST "/v1/devices/${DEV[b]}/revoke" '{"reason":"keyCompromise"}'
t0=${EPOCHREALTIME/./}
seen=
while [ $((${EPOCHREALTIME/./} - t0)) -lt 5000000 ]; do
    curl -sS --cacert trust.pem -o pb.der "$BASE/v1/crl" 2>/dev/null &&
        openssl crl -inform DER -in pb.der -noout -text 2>/dev/null | grep -q "Serial Number: ${SER[b]}\$" &&
        { seen=${EPOCHREALTIME/./}; break; }
    sleep 0.01
done
ms=$(((${seen:-99999999999999} - t0) / 1000))
[ -n "$seen" ] && [ "$ms" -le 1000 ]
expect "crl_rebuild_max_entries (default 10,000): the complete CRL at GET /v1/crl lists the revocation within 1 s ($ms ms)" $?
server_alive
expect "the server is still up" $?
finish
