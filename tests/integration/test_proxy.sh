#!/usr/bin/env bash
# PROXY protocol v2 behind the real HAProxy with the shipped deploy/haproxy.cfg (its three
# servers all pointing at one iothubd): clients bound to 127.0.0.2-5 reach iothubd through
# HAProxy on 127.0.0.1, and iothubd sees their real addresses in the audit trail, logs and
# per-address limits. Then raw sockets against the PROXY listeners (no header, malformed,
# truncated, oversized TLVs, UNIX family, untrusted peer), counted in /metrics, and the
# health check: a node draining after SIGTERM answers /healthz 503 and HAProxy takes it out.
. "$(dirname "$0")/api_lib.sh"

PC=("$PY" "$ROOT/tests/integration/proxy_client.py")
LB_MQTT=$(free_port) LB_API=$(free_port) LB_STATS=$(free_port)
HAPROXY_PID=
trap 'kill_sub >/dev/null 2>&1; [ -n "$HAPROXY_PID" ] && kill "$HAPROXY_PID" 2>/dev/null; stop_server >/dev/null 2>&1' EXIT

URL=$(new_db proxy)
write_conf iothub.conf "$URL" "log_level = debug" "mqtt_mtls_proxy_protocol = on" \
    "api_proxy_protocol = on" "proxy_trusted = 127.0.0.1, ::1" "proxy_header_timeout_ms = 1000" \
    "mqtt_max_handshakes_per_ip = 2" "api_max_connections_per_ip = 8" "shutdown_drain_s = 30"
"$IOTHUBD" -c iothub.conf init --token-file admin.token >init.out 2>init.err &&
    "$IOTHUBD" -c iothub.conf ca chain >trust.pem 2>/dev/null
expect "iothubd init" $?
ADMIN=$(cat admin.token)

write_conf notrust.conf "$URL" "mqtt_mtls_proxy_protocol = on"
timeout 20 "$IOTHUBD" -c notrust.conf serve >notrust.log 2>&1
[ $? = 1 ] && grep -q "proxy_trusted: a listener has the PROXY protocol on" notrust.log
expect "serve refuses to start with a PROXY listener and no proxy_trusted, naming the key" $?

# Direct health check with a PROXY v1 header (curl --haproxy-protocol), as from a proxy.
"$IOTHUBD" -c iothub.conf serve >serve.log 2>&1 &
SERVER_PID=$!
up=1
for _ in $(seq 150); do
    curl -sk --haproxy-protocol -o /dev/null "https://127.0.0.1:$API_PORT/healthz" && { up=0; break; }
    sleep 0.1
done
expect "iothubd serves /healthz to a client that sends a PROXY v1 header (curl --haproxy-protocol)" $up

LB_BIND=127.0.0.1 LB_MQTT_PORT=$LB_MQTT LB_API_PORT=$LB_API LB_STATS=127.0.0.1:$LB_STATS \
    NODE1=127.0.0.1 NODE2=127.0.0.1 NODE3=127.0.0.1 NODE1_MQTT_PORT=$MQTT_PORT \
    NODE2_MQTT_PORT=$MQTT_PORT NODE3_MQTT_PORT=$MQTT_PORT NODE1_API_PORT=$API_PORT \
    NODE2_API_PORT=$API_PORT NODE3_API_PORT=$API_PORT \
    haproxy -db -f "$ROOT/deploy/haproxy.cfg" >haproxy.log 2>&1 &
HAPROXY_PID=$!
# node_status BACKEND: HAProxy's view of node1 (UP, DOWN, ...) from its stats page.
node_status() {
    curl -s "http://127.0.0.1:$LB_STATS/stats;csv" | awk -F, -v b="$1" '$1 == b && $2 == "node1" {print $18}'
}
up=1
for _ in $(seq 100); do
    [ "$(node_status mqtt_nodes)" = UP ] && [ "$(node_status api_nodes)" = UP ] && { up=0; break; }
    sleep 0.1
done
expect "HAProxy (deploy/haproxy.cfg) sees the node UP: /healthz over HTTPS with a PROXY header" $up

BASE="https://127.0.0.1:$LB_API"
# lb METHOD PATH BIND [JSON]: an admin call through HAProxy from source address BIND.
lb() {
    if [ $# -ge 4 ]; then
        call "$1" "$2" --interface "$3" -H "Authorization: Bearer $ADMIN" \
            -H 'Content-Type: application/json' --data-binary "$4"
    else
        call "$1" "$2" --interface "$3" -H "Authorization: Bearer $ADMIN"
    fi
}

# ---- the API through HAProxy: the audit trail names the real client ------------------------
lb POST /v1/products 127.0.0.2 '{"name":"behind a proxy"}'
expect_status "POST /v1/products from 127.0.0.2 through HAProxy -> 201" 201
PK=$(jf product_key)
src=$(sql "$URL" "SELECT source FROM audit_log WHERE action LIKE '%product%' ORDER BY id DESC LIMIT 1")
[ "$src" = 127.0.0.2 ]
expect "the audit row's source is the client (127.0.0.2), not HAProxy (got '$src')" $?

lb POST /v1/devices 127.0.0.2 "{\"product_key\":\"$PK\",\"serial_number\":\"SN-LB\"}"
DEV=$(jf device_id) SECRET=$(jf device_secret)
activate_as device "$DEV" "$SECRET" dev
expect "a device provisioned and activated through HAProxy" $?

# ---- MQTT (mutual TLS) through HAProxy ---------------------------------------------------------
"${PC[@]}" mqtt 127.0.0.1 "$LB_MQTT" 127.0.0.2 trust.pem dev.pem dev.key "devices/$DEV/telemetry" >mqtt1.out 2>&1
expect "a device from 127.0.0.2 connects through HAProxy (mTLS passthrough) and publishes QoS 1" $?
grep -Eq "tls 127\.0\.0\.2:[0-9]+: handshake done" serve.log
expect "iothubd logs the device's handshake from 127.0.0.2, its real address" $?

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout rogue.key \
    -out rogue.pem -subj /CN=rogue -days 1 2>/dev/null
"${PC[@]}" mqtt 127.0.0.1 "$LB_MQTT" 127.0.0.4 trust.pem rogue.pem rogue.key t >rogue.out 2>&1
[ $? != 0 ] && grep -Eq "tls 127\.0\.0\.4:[0-9]+: client (certificate )?refused" serve.log
expect "a certificate of an unknown CA from 127.0.0.4 is refused and logged with 127.0.0.4" $?

# ---- the per-address handshake cap counts the real address -------------------------------------
# refused_mtls: iothub_mqtt_connections_refused_total{listener="mtls"}.
metric() {
    curl -s --cacert trust.pem "$BASE/metrics" | awk -v m="$1" '$1 == m {print $2}'
}
before=$(metric 'iothub_mqtt_connections_refused_total{listener="mtls"}')
"${PC[@]}" hold 127.0.0.1 "$LB_MQTT" 127.0.0.3 2 8 >hold.out 2>&1 &
HOLD=$!
sleep 1.5
third=$("${PC[@]}" raw 127.0.0.1 "$LB_MQTT" 127.0.0.3 "" 2)
[ "$third" = closed ]
expect "a third handshake from 127.0.0.3 (mqtt_max_handshakes_per_ip = 2) is closed at once" $?
"${PC[@]}" mqtt 127.0.0.1 "$LB_MQTT" 127.0.0.2 trust.pem dev.pem dev.key "devices/$DEV/telemetry" >mqtt2.out 2>&1
expect "meanwhile the device from 127.0.0.2 still connects: the cap is per client, not per proxy" $?
kill "$HOLD" 2>/dev/null; wait "$HOLD" 2>/dev/null
after=$before
for _ in $(seq 30); do
    after=$(metric 'iothub_mqtt_connections_refused_total{listener="mtls"}')
    [ "${after:-0}" -gt "${before:-0}" ] && break
    sleep 0.2
done
[ "${after:-0}" -gt "${before:-0}" ]
expect "the refusal is counted in iothub_mqtt_connections_refused_total ($before -> $after)" $?

# The API's per-client connection limit (api_max_connections_per_ip = 8) counts the client too.
"${PC[@]}" hold 127.0.0.1 "$LB_API" 127.0.0.3 8 6 >hold-api.out 2>&1 &
HOLD=$!
sleep 1.5
code3=$(curl -s --cacert trust.pem --interface 127.0.0.3 --max-time 5 -o /dev/null -w '%{http_code}' "$BASE/healthz")
code2=$(curl -s --cacert trust.pem --interface 127.0.0.2 --max-time 5 -o /dev/null -w '%{http_code}' "$BASE/healthz")
kill "$HOLD" 2>/dev/null; wait "$HOLD" 2>/dev/null
[ "$code3" = 000 ] && [ "$code2" = 200 ]
expect "API: 8 connections held from 127.0.0.3 -> its 9th is refused ($code3), 127.0.0.2 is served ($code2)" $?

# ---- raw sockets straight to the PROXY listeners ------------------------------------------------
raw() { "${PC[@]}" raw 127.0.0.1 "$MQTT_PORT" "$@"; }
hdr() { "${PC[@]}" v2 "$1"; }
[ "$(raw 127.0.0.1 "$(hdr tcp4)" 1)" = open ]
expect "a valid PROXY v2 header (TCP4) from a trusted proxy: the connection waits for TLS" $?
[ "$(raw 127.0.0.1 "$(hdr local)" 1)" = open ]
expect "a PROXY v2 LOCAL header (a proxy's own health check) is accepted" $?
# A TLS ClientHello's first bytes, without any header.
[ "$(raw 127.0.0.1 16030100a5010000a10303 2)" = closed ]
expect "a connection without a PROXY header (a TLS ClientHello) is closed" $?
[ "$(raw 127.0.0.1 0d0a0d0a000d0a5155495421 2)" = closed ]
expect "a wrong v2 signature is closed" $?
for k in badver unix bigtlv tlvbad; do
    [ "$(raw 127.0.0.1 "$(hdr $k)" 2)" = closed ]
    expect "a malformed v2 header ($k) is closed" $?
done
[ "$(raw 127.0.0.1 "$(hdr truncated)" 3)" = closed ]
expect "a truncated header is closed after proxy_header_timeout_ms" $?
[ "$(raw 127.0.0.1 "$(printf 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\nX' | od -An -tx1 | tr -d ' \n')" 1)" = open ]
expect "a valid PROXY v1 line is accepted too" $?
[ "$(raw 127.0.0.1 "$(printf 'PROXY TCP4 1.2.3.400 5.6.7.8 1 2\r\n' | od -An -tx1 | tr -d ' \n')" 2)" = closed ]
expect "a v1 line with a bad address is closed" $?
[ "$(raw 127.0.0.5 "$(hdr tcp4)" 2)" = closed ]
expect "a valid header from an address outside proxy_trusted (127.0.0.5) is closed" $?

m_ok=1
for _ in $(seq 30); do
    mal=$(metric 'iothub_mqtt_proxy_refused_total{listener="mtls",reason="malformed"}')
    tmo=$(metric 'iothub_mqtt_proxy_refused_total{listener="mtls",reason="timeout"}')
    unt=$(metric 'iothub_mqtt_proxy_refused_total{listener="mtls",reason="untrusted"}')
    [ "${mal:-0}" -ge 7 ] && [ "${tmo:-0}" -ge 1 ] && [ "${unt:-0}" -ge 1 ] && { m_ok=0; break; }
    sleep 0.2
done
expect "iothub_mqtt_proxy_refused_total counts them (malformed $mal, timeout $tmo, untrusted $unt)" $m_ok

code=$(curl -sk -o /dev/null -w '%{http_code}' --max-time 5 "https://127.0.0.1:$API_PORT/healthz")
[ "$code" = 000 ]
expect "the API refuses a client without a PROXY header (got HTTP $code)" $?
code=$(curl -sk -o /dev/null -w '%{http_code}' --max-time 5 --interface 127.0.0.5 --haproxy-protocol "https://127.0.0.1:$API_PORT/healthz")
[ "$code" = 000 ]
expect "the API refuses a PROXY header from outside proxy_trusted (got HTTP $code)" $?
am=$(curl -s --cacert trust.pem "$BASE/metrics" | grep -E '^iothub_api_proxy_refused_total\{reason="(malformed|untrusted)"\} [1-9]' | wc -l)
[ "$am" = 2 ]
expect "iothub_api_proxy_refused_total counts both (malformed, untrusted)" $?
curl -s --cacert trust.pem "$BASE/metrics" >metrics.txt && "$PY" "$ROOT/tests/integration/prom_check.py" metrics.txt
expect "/metrics with the PROXY counters is well-formed Prometheus text (prom_check.py)" $?

# ---- health: a draining node is taken out ------------------------------------------------------
# hc [ENV...]: the container image's health check (deploy/entrypoint.sh) against this node.
hc() { env IOTHUB_API_LISTEN="127.0.0.1:$API_PORT" "$@" sh "$ROOT/deploy/entrypoint.sh" healthcheck; }
hc IOTHUB_API_PROXY_PROTOCOL=on && ! hc
expect "the entry point's health check passes with IOTHUB_API_PROXY_PROTOCOL=on (PROXY header), fails without" $?
kill -TERM "$SERVER_PID"
code=
for _ in $(seq 50); do
    code=$(curl -s --cacert trust.pem -o /dev/null -w '%{http_code}' "$BASE/healthz")
    [ "$code" = 503 ] && break
    sleep 0.1
done
[ "$code" = 503 ]
expect "after SIGTERM (shutdown_drain_s = 30) /healthz answers 503 (draining)" $?
! hc IOTHUB_API_PROXY_PROTOCOL=on
expect "the entry point's health check fails while the node drains" $?
down=1
for _ in $(seq 100); do
    [ "$(node_status mqtt_nodes)" = DOWN ] && [ "$(node_status api_nodes)" = DOWN ] && { down=0; break; }
    sleep 0.1
done
expect "HAProxy marks the draining node DOWN for MQTT and the API" $down
kill "$HAPROXY_PID"; wait "$HAPROXY_PID" 2>/dev/null; HAPROXY_PID=
kill -TERM "$SERVER_PID"
wait "$SERVER_PID"
expect "a second SIGTERM stops the draining node at once, cleanly" $?
SERVER_PID=
finish
