#!/usr/bin/env bash
# Logs that cannot be forged (issue 19, item 5): client-supplied strings reach the text log
# with their control characters escaped, so a newline in one cannot start a line of its own.
# Tried as an attacker would: a Basic user name with a newline and a fake log line (REST), a
# request path with %0A (decoded by libmicrohttpd), and a device's MQTT PUBLISH topic and
# SUBSCRIBE filter with a newline, a carriage return and an ESC. Each fake line must appear
# escaped inside the real line, never at the start of a line.
. "$(dirname "$0")/api_lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)

api_setup abuse_log
expect "iothubd init, then iothubd serve answers /healthz" $?
bearer "$ADMIN" POST /v1/products '{"name":"log sensor"}'
PK=$(jf product_key)
bearer "$ADMIN" POST /v1/devices "{\"product_key\":\"$PK\",\"serial_number\":\"SN-log\"}"
ID=$(jf device_id) SECRET=$(jf device_secret)
activate_as device "$ID" "$SECRET" dev
expect "fixture: a device with its own certificate" $?

# What a forged line would start with (a user name ends at its first colon: dots there).
FAKE="2026-12-07T19.00.00.000Z error"
# ---- REST: a Basic user name (a product key claim) with a newline -----------------------------
cred=$(printf 'x\n%s FORGED-BASIC token leaked:pw' "$FAKE" | base64 -w0)
call POST /v1/devices -H "Authorization: Basic $cred" -H 'Content-Type: application/json' \
    --data-binary "{\"product_key\":\"$PK\",\"serial_number\":\"SN-x\"}"
expect_error "a Basic user name with a newline: 401 unauthorized" 401 unauthorized

# ---- REST: a path with an encoded newline, in a line the server does write (a refused request)
printf 'POST /v1/x%%0A%s%%20FORGED-PATH HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip\r\n\r\n' \
    "${FAKE// /%20}" >req_path.txt
"$PY" "$HERE/http_raw.py" "$API_PORT" trust.pem req_path.txt 2 >raw_path.json
grep -q '"status": 400' raw_path.json
expect "a path with %0A and a bad Transfer-Encoding: 400" $?

# ---- MQTT: a topic and a filter the device may not use, with control characters ------------
HERE="$HERE" "$PY" - "$T/trust.pem" "$T/dev.pem" "$T/dev.key" "$MQTT_PORT" "$ID" "$FAKE" <<'PY'
import os, sys
sys.path.insert(0, os.environ["HERE"])
from mqtt_raw import Conn, tls_context
ca, cert, key, port, dev, fake = sys.argv[1:7]
c = Conn("127.0.0.1", int(port), tls_context(ca, cert, key))
assert c.connect(dev)[1] == 0
c.publish("x\n%s FORGED-TOPIC\r\x1b[2K" % fake, b"hi", qos=1, pid=1)
codes = c.subscribe(2, [("y\n%s FORGED-FILTER" % fake, 0)])
assert codes == [0x80], codes
c.ping()
c.disconnect()
PY
expect "MQTT: a publish and a subscribe with a newline in the topic (dropped, 0x80)" $?

sleep 0.5
for f in FORGED-BASIC FORGED-PATH FORGED-TOPIC FORGED-FILTER; do
    line=$(grep -F "$f" serve.log | head -n 1)
    ! grep -q "^$FAKE $f" serve.log && ! grep -q "^$FAKE" serve.log && [[ $line == *'\n'"$FAKE $f"* ]]
    r=$?
    expect "$f: logged on the real line with \\n escaped, no forged line" $r
    [ $r = 0 ] || grep -F -e "$f" -e "$ID" serve.log >&2
done
grep -F FORGED-TOPIC serve.log | grep -qF '\r\x1b[2K'
expect "a carriage return and an ESC in a topic are escaped (\\r \\x1b)" $?
[ "$(grep -c '^[0-9]\{4\}-[0-9][0-9]-[0-9][0-9]T' serve.log)" = "$(wc -l <serve.log)" ]
expect "every line of the log starts with a timestamp" $?

stop_server
expect "iothubd stops cleanly" $?
finish
