#!/usr/bin/env bash
# GET /metrics as an operator's Prometheus sees it: after real MQTT traffic over mutual TLS
# (mosquitto clients; QoS 0 and 1 telemetry to a service), failed handshakes (a certificate
# from an unknown CA, no certificate), and the revocation of a connected device, the counters
# moved by exactly what happened; the whole page parses as strict Prometheus text
# (prom_check.py); metrics_access = token refuses anonymous scrapes. The MQTT side's
# numbers come from a snapshot the loop publishes every second, hence the polling.
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/api_lib.sh"
CHECK="$PY $HERE/prom_check.py"

api_setup metrics
expect "iothubd init, then iothubd serve answers /healthz" $?

# scrape: GET /metrics anonymously into metrics.txt; returns non-zero unless 200.
scrape() {
    call GET /metrics "$@"
    cp "$T/body.out" metrics.txt
    [ "$STATUS" = 200 ]
}
# m SERIES: its value in metrics.txt (MISSING if absent; exits the test if unparseable).
m() { $CHECK metrics.txt "$1"; }
# metric_within SERIES OP N: scrapes until SERIES OP N holds (test(1) operators), up to 5 s.
metric_within() {
    local v
    for _ in $(seq 25); do
        scrape && v=$(m "$1") && [ "$v" != MISSING ] && [ "$v" "$2" "$3" ] && return 0
        sleep 0.2
    done
    return 1
}
# expect_m NAME SERIES OP N: expects SERIES OP N in metrics.txt, naming the value on failure.
expect_m() {
    local v
    v=$(m "$2")
    if [ "$v" != MISSING ] && [ "$v" "$3" "$4" ] 2>/dev/null; then ok "$1"; else not_ok "$1 ($2 = $v)"; fi
}

scrape
expect "GET /metrics answers 200 anonymously (metrics_access defaults to public)" $?
[ "$(header Content-Type)" = "text/plain; version=0.0.4" ]
expect "the content type is text/plain; version=0.0.4" $?
$CHECK metrics.txt >check.out 2>&1
rc=$?
expect "a fresh server's /metrics parses as Prometheus text ($(head -c 200 check.out))" $rc

# The checker itself refuses what Prometheus would refuse (or what breaks the conventions).
bad_page() { printf '%b' "$2" >bad.txt; if $CHECK bad.txt >/dev/null 2>&1; then not_ok "prom_check refuses $1"; else ok "prom_check refuses $1"; fi; }
bad_page "a sample before its TYPE" 'x_total 1\n'
bad_page "a counter not ending in _total" '# HELP x X.\n# TYPE x counter\nx 1\n'
bad_page "a malformed label set" '# HELP x_total X.\n# TYPE x_total counter\nx_total{a=b} 1\n'
bad_page "a repeated series" '# HELP x_total X.\n# TYPE x_total counter\nx_total 1\nx_total 2\n'
bad_page "non-cumulative histogram buckets" '# HELP h H.\n# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n'
bad_page "a +Inf bucket different from _count" '# HELP h H.\n# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 3\n'
printf '# HELP h H.\n# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\nh_sum 1.5\nh_count 2\n' >good.txt
[ "$($CHECK good.txt 'h_count')" = 2 ]
expect "prom_check accepts a well-formed histogram" $?

# ---- a device, a service and a device to revoke ---------------------------------------------
bearer "$ADMIN" POST /v1/products '{"name":"metrics sensor"}'
PK=$(jf product_key)
declare -A DEV
new_device() {
    local id secret
    bearer "$ADMIN" POST /v1/devices "{\"product_key\":\"$PK\",\"serial_number\":\"SN-$1\"}"
    [ "$STATUS" = 201 ] || return 1
    id=$(jf device_id) secret=$(jf device_secret)
    activate_as device "$id" "$secret" "$1" || return 1
    DEV[$1]=$id
}
new_device sensor && new_device revokee
expect "two devices provisioned and activated" $?
bearer "$ADMIN" POST /v1/services '{"name":"metrics-reader","subscribe":["devices/+/telemetry"]}'
SVC=$(jf service_id) SVCSEC=$(jf service_secret)
[ "$STATUS" = 201 ] && activate_as service "$SVC" "$SVCSEC" svc
expect "a service subscribing to devices/+/telemetry activated" $?
S=${DEV[sensor]} R=${DEV[revokee]}

SUB_FORMAT='%q %t %p'

# ---- traffic: QoS 0 and QoS 1 from the sensor to the service ----------------------------------
sub svc svc.out -t "devices/+/telemetry" -q 1 -C 2
expect "the service subscribes (QoS 1)" $?
pub sensor -t "devices/$S/telemetry" -m 'hello-q0' -q 0 && pub sensor -t "devices/$S/telemetry" -m 'hello-q1' -q 1
expect "the sensor publishes once at QoS 0 and once at QoS 1" $?
for _ in $(seq 50); do kill -0 "$SUB_PID" 2>/dev/null || break; sleep 0.1; done
wait "$SUB_PID" 2>/dev/null
grep -q 'hello-q1' svc.out
expect "the service received both messages" $?

# ---- failed handshakes ------------------------------------------------------------------------
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout stranger.key \
    -out stranger.pem -days 2 -subj "/CN=$S" -addext extendedKeyUsage=clientAuth >/dev/null 2>&1
pub stranger -t "devices/$S/telemetry" -m x
[ $? != 0 ]
expect "a client certificate from an unknown CA is refused" $?
timeout 10 mosquitto_pub "${MQ[@]}" -t "devices/$S/telemetry" -m x >nocert.out 2>&1
[ $? != 0 ]
expect "a client without a certificate is refused" $?

# ---- revocation of a connected device ---------------------------------------------------------
sub revokee live.out -t "devices/$R/commands/#" -q 1 -W 15
expect "the device to revoke is connected" $?
bearer "$ADMIN" POST "/v1/devices/$R/revoke" '{"reason":"keyCompromise"}'
expect_status "the device is revoked through the API" 200
for _ in $(seq 30); do grep -q 'connection was lost' live.out && break; sleep 0.1; done
grep -q 'connection was lost' live.out
expect "the revoked device's session is closed" $?
kill "$SUB_PID" 2>/dev/null
wait "$SUB_PID" 2>/dev/null

# ---- the numbers ------------------------------------------------------------------------------
# Each worker loop publishes its counters on its own tick: under load one may lag the others.
metric_within 'iothub_revocation_sessions_closed_total' -ge 1 &&
    metric_within 'iothub_mqtt_connections{listener="mtls"}' -eq 0 &&
    metric_within 'iothub_tls_handshakes_total{listener="mtls",result="full"}' -ge 4 &&
    metric_within 'iothub_mqtt_connections_accepted_total{listener="mtls"}' -ge 4
expect "the snapshot catches up within 5 s (revocation counted, every connection gone, every handshake counted)" $?
$CHECK metrics.txt >check.out 2>&1
rc=$?
expect "/metrics after traffic parses as strict Prometheus text ($(head -c 200 check.out))" $rc
cp metrics.txt metrics-after.txt

F='{listener="mtls",result="full"}'
expect_m "handshakes: exactly 4 full (service, 2 publishers, revokee)" "iothub_tls_handshakes_total$F" -eq 4
expect_m "handshakes: one failure for the unknown CA" \
    'iothub_tls_handshake_failures_total{listener="mtls",reason="unknown_ca"}' -eq 1
expect_m "handshakes: one failure for the missing certificate" \
    'iothub_tls_handshake_failures_total{listener="mtls",reason="no_certificate"}' -eq 1
expect_m "handshakes: failed total counts both" \
    'iothub_tls_handshakes_total{listener="mtls",result="failed"}' -ge 2
full=$(m "iothub_tls_handshakes_total$F")
res=$(m 'iothub_tls_handshakes_total{listener="mtls",result="resumed"}')
expect_m "handshake duration histogram counts every successful handshake" \
    'iothub_tls_handshake_duration_seconds_count{listener="mtls"}' -eq $((full + res))
expect_m "PUBLISH in at QoS 0: exactly 1" 'iothub_mqtt_publish_received_total{qos="0"}' -eq 1
expect_m "PUBLISH in at QoS 1: exactly 1" 'iothub_mqtt_publish_received_total{qos="1"}' -eq 1
expect_m "PUBLISH in at QoS 2: none" 'iothub_mqtt_publish_received_total{qos="2"}' -eq 0
expect_m "PUBLISH out at QoS 0 (to the service): exactly 1" 'iothub_mqtt_publish_sent_total{qos="0"}' -eq 1
expect_m "PUBLISH out at QoS 1 (to the service): exactly 1" 'iothub_mqtt_publish_sent_total{qos="1"}' -eq 1
expect_m "MQTT bytes received counted (> 2 PUBLISHes)" 'iothub_mqtt_received_bytes_total' -gt 40
expect_m "MQTT bytes sent counted" 'iothub_mqtt_sent_bytes_total' -gt 20
expect_m "nothing dropped" 'iothub_mqtt_messages_dropped_total{reason="queue_full"}' -eq 0
expect_m "connections accepted on mtls: exactly 4" 'iothub_mqtt_connections_accepted_total{listener="mtls"}' -eq 4
expect_m "connections closed after DISCONNECT: exactly 3 (2 publishers, the service)" \
    'iothub_mqtt_connections_closed_total{reason="normal"}' -eq 3
expect_m "connections closed by revocation: exactly 1" \
    'iothub_mqtt_connections_closed_total{reason="revoked"}' -eq 1
expect_m "sessions closed by revocation: exactly 1" 'iothub_revocation_sessions_closed_total' -eq 1
expect_m "revoked serial set holds the revoked certificate" 'iothub_revocation_serials' -ge 1
expect_m "revocation feed is up" 'iothub_revocation_feed_up' -eq 1
expect_m "revocation feed never reconnected" 'iothub_revocation_feed_reconnects_total' -eq 0
age=$(m iothub_revocation_feed_last_load_age_seconds)
[ "$age" != MISSING ] && $PY -c "import sys; sys.exit(not 0 <= float('$age') < 600)"
expect "seconds since the feed's last load is present and plausible ($age)" $?
expect_m "no unauthenticated connection left" 'iothub_mqtt_unauthenticated_connections{listener="mtls"}' -eq 0
expect_m "no session queue left" 'iothub_mqtt_queued_messages' -eq 0
expect_m "database query histogram counted queries" 'iothub_db_query_duration_seconds_count' -gt 0
expect_m "database pool size is 8" 'iothub_db_pool_connections{state="max"}' -eq 8
expect_m "database pool: at most this scrape's own connection in use" \
    'iothub_db_pool_connections{state="in_use"}' -le 1
expect_m "no database query failed" 'iothub_db_query_failures_total{reason="unavailable"}' -eq 0
expect_m "HTTP 2xx answers counted" 'iothub_http_responses_total{code="2xx"}' -gt 5

# ---- metrics_access = token -----------------------------------------------------------------
stop_server
expect "iothubd stops cleanly" $?
cp iothub.conf bad.conf
echo "metrics_access = sometimes" >>bad.conf
timeout 10 "$IOTHUBD" -c bad.conf serve >bad.out 2>&1
rc=$?
[ $rc != 0 ] && grep -q 'metrics_access' bad.out && grep -q 'public or token' bad.out
expect "metrics_access = sometimes is refused at start with a precise error" $?
echo "metrics_access = token" >>iothub.conf
start_server iothub.conf serve2.log
expect "iothubd serve starts with metrics_access = token" $?
call GET /metrics
expect_error "metrics_access = token: an anonymous scrape gets 401" 401 unauthorized
[ -n "$(header WWW-Authenticate)" ]
expect "the 401 names the Bearer scheme" $?
bearer "$ADMIN" POST /v1/tokens '{"name":"prometheus","role":"auditor"}'
AUDITOR=$(jf token)
bearer "$AUDITOR" GET /metrics
cp "$T/body.out" metrics.txt
[ "$STATUS" = 200 ] && [ "$(m 'iothub_revocation_feed_up')" != MISSING ]
expect "metrics_access = token: an auditor token scrapes (200, Prometheus text)" $?
stop_server
expect "iothubd stops cleanly again" $?
finish
