#!/usr/bin/env bash
# Soak under abuse (issue 19, docs/security.md#soak): mixed normal and abusive load for a
# given time, reporting iothubd's memory and a bystander device's latency as it goes:
#   ./deploy/dev.sh soak [MINUTES]            (default 5; IOTHUB_SOAK_SECONDS overrides)
# A fresh database on deploy/dev.sh's private PostgreSQL, `init`, `serve` (default limits),
# 7 devices and a service (tests/bench/provision.sh): 4 devices publish QoS 1 telemetry and
# the service, subscribed, receives it; one device's stolen certificate floods retained
# messages, subscriptions and publishes while wrong secrets are guessed on the REST API and
# smuggling requests are sent (tests/bench/soak_clients.py); one device is the bystander
# (tests/bench/soak_bystander.py, QoS 1 every 20 ms on one connection, every sample
# logged), its PUBACK round trips taken per interval (IOTHUB_SOAK_INTERVAL, default 10 s). Prints one "[soak] t=" line per interval (RSS, the
# bystander's PUBACK p50/p99/max) and a "[soak] summary:" line; keeps the logs in
# .dev/soak/<time>/.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${IOTHUB_BENCH_BUILD:?run through ./deploy/dev.sh soak}
PGSOCK=${IOTHUB_BENCH_PGSOCK:?run through ./deploy/dev.sh soak}
TMP=${IOTHUB_BENCH_TMP:?run through ./deploy/dev.sh soak}
MINUTES=${1:-5}
[[ $MINUTES =~ ^[0-9]+([.][0-9]+)?$ ]] || { echo "soak: MINUTES must be a number (got \"$MINUTES\")" >&2; exit 2; }
SECONDS_TOTAL=${IOTHUB_SOAK_SECONDS:-$(awk -v m="$MINUTES" 'BEGIN {printf "%d", m * 60}')}
INTERVAL=${IOTHUB_SOAK_INTERVAL:-10}
[ "$SECONDS_TOTAL" -ge "$INTERVAL" ] || { echo "soak: at least one interval ($INTERVAL s) is needed" >&2; exit 2; }
log() { printf '[soak] %s\n' "$*"; }
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
OUT=${IOTHUB_SOAK_OUT:-$ROOT/.dev/soak/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
HUB_PID= LOAD_PID= BY_PID=
stop_all() {
    local p
    for p in $BY_PID $LOAD_PID $HUB_PID; do kill -TERM "$p" 2>/dev/null || true; done
    for p in $BY_PID $LOAD_PID $HUB_PID; do wait "$p" 2>/dev/null || true; done
    BY_PID= LOAD_PID= HUB_PID=
}
trap stop_all EXIT
export IOTHUB_MASTER_KEY="soak master passphrase $$"

W=$TMP/soak
mkdir -p "$W"
cd "$W"
API=$(free_port) MQTT=$(free_port)
createdb -h "$PGSOCK" -U postgres iothub_soak
cat >iothub.conf <<CONF
db_url = postgresql:///iothub_soak?host=$PGSOCK&user=postgres
api_listen = 127.0.0.1:$API
mqtt_mtls_listen = 127.0.0.1:$MQTT
hostname = localhost,127.0.0.1
CONF
"$BUILD/iothubd" -c iothub.conf init --token-file admin.token >"$OUT/init.log" 2>&1
"$BUILD/iothubd" -c iothub.conf ca chain >trust.pem
T_INIT=$SECONDS
"$BUILD/iothubd" -c iothub.conf serve >"$OUT/iothubd.log" 2>&1 &
HUB_PID=$!
for _ in $(seq 300); do
    body=$(curl -sk "https://127.0.0.1:$API/healthz" || true)
    [[ -n $body && $body != *'"starting"'* ]] && break
    sleep 0.1
done
T_SERVE=$SECONDS
bash "$ROOT/tests/bench/provision.sh" "https://127.0.0.1:$API" admin.token trust.pem 6 certs >"$OUT/provision.log" 2>&1
id_of() { openssl x509 -noout -subject -nameopt multiline -in "certs/dev-$1.pem" | sed -n 's/ *commonName *= *//p'; }

python3 - "$W" "$MQTT" "$API" "$SECONDS_TOTAL" "$OUT/load.json" "$(id_of 1)" "$(id_of 2)" "$(id_of 3)" "$(id_of 4)" "$(id_of 6)" <<'PY' >load-env.json
import json, sys
w, mqtt, api, secs, out = sys.argv[1:6]
ids = sys.argv[6:]
dev = lambda i, n: {"id": ids[i], "cert": "%s/certs/dev-%d.pem" % (w, n), "key": "%s/certs/dev-%d.key" % (w, n)}
print(json.dumps({"ca": w + "/trust.pem", "mqtt_port": mqtt, "api_port": api, "seconds": secs, "out": out,
                  "devices": [dev(i, i + 1) for i in range(4)],
                  "service": {"cert": w + "/certs/service.pem", "key": w + "/certs/service.key"},
                  "attacker": dev(4, 6)}))
PY
BYSTANDER=$(id_of 5)
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$HUB_PID/status" 2>/dev/null || echo 0; }

log "set up in ${SECONDS} s (init ${T_INIT} s, serve $((T_SERVE - T_INIT)) s, 6 devices + a service $((SECONDS - T_SERVE)) s); iothubd pid $HUB_PID, ${SECONDS_TOTAL} s of load, a line every ${INTERVAL} s; logs in $OUT"
# bystander_line FROM TO: the RSS and the bystander's samples between two `date +%s.%N`.
bystander_line() {
    python3 - "$OUT/bystander.txt" "$1" "$2" "$(rss_kb)" <<'PY'
import sys
lo, hi = float(sys.argv[2]), float(sys.argv[3])
ms, errors = [], 0
for l in open(sys.argv[1]):
    p = l.split()
    if len(p) == 2 and lo <= float(p[0]) < hi:
        if p[1] == "error":
            errors += 1
        else:
            ms.append(float(p[1]))
ms.sort()
pct = lambda q: "%.1f" % ms[min(len(ms) - 1, int(len(ms) * q))] if ms else "-"
print("rss=%.1fMB bystander n=%d p50=%sms p99=%sms max=%sms errors=%d" % (
    int(sys.argv[4]) / 1024, len(ms), pct(0.5), pct(0.99), "%.1f" % ms[-1] if ms else "-", errors))
PY
}
: >"$OUT/intervals.txt"
: >"$OUT/bystander.txt"
python3 "$ROOT/tests/bench/soak_bystander.py" trust.pem certs/dev-5.pem certs/dev-5.key "$MQTT" \
    "$BYSTANDER" "$OUT/bystander.txt" 20 2>"$OUT/bystander.log" &
BY_PID=$!
for _ in $(seq 100); do [ -s "$OUT/bystander.txt" ] && break; sleep 0.1; done
from=$(date +%s.%N)
sleep 3
RSS0=$(rss_kb)
BASE=$(bystander_line "$from" "$(date +%s.%N)")
log "t=0s $BASE (3 s before the load)"
python3 "$ROOT/tests/bench/soak_clients.py" load-env.json >"$OUT/load.log" 2>&1 &
LOAD_PID=$!
t=0 from=$(date +%s.%N)
while [ "$t" -lt "$SECONDS_TOTAL" ]; do
    step=$INTERVAL
    [ $((t + step)) -le "$SECONDS_TOTAL" ] || step=$((SECONDS_TOTAL - t))
    sleep "$step"
    t=$((t + step))
    to=$(date +%s.%N)
    kill -0 "$HUB_PID" 2>/dev/null || { log "t=${t}s iothubd is gone (exit, see $OUT/iothubd.log)"; break; }
    rss=$(rss_kb)
    line=$(bystander_line "$from" "$to")
    from=$to
    echo "$t $rss $line" >>"$OUT/intervals.txt"
    log "t=${t}s $line"
done
kill -TERM "$BY_PID" 2>/dev/null || true
wait "$BY_PID" 2>/dev/null || true
BY_PID=
wait "$LOAD_PID" 2>/dev/null || true
LOAD_PID=
sleep 1
RSS_END=$(rss_kb)
python3 - "$OUT/intervals.txt" "$RSS0" "$RSS_END" "$OUT/load.json" "$BASE" <<'PY'
import json, re, sys
base = re.search(r"p99=([0-9.]+)ms", sys.argv[5])
rows = [l.split(" ", 2) for l in open(sys.argv[1]) if l.strip()]
rss = [int(r[1]) for r in rows]
p99 = [float(m.group(1)) for r in rows for m in [re.search(r"p99=([0-9.]+)ms", r[2])] if m]
mb = lambda k: "%.1f" % (k / 1024)
print("[soak] summary: rss start %sMB max %sMB end %sMB; bystander p99 before %s ms, max under load %s ms (intervals: %d)" % (
    mb(int(sys.argv[2])), mb(max(rss + [int(sys.argv[2])])), mb(int(sys.argv[3])),
    base.group(1) if base else "-", "%.1f" % max(p99) if p99 else "-", len(rows)))
try:
    s = json.load(open(sys.argv[4]))
    print("[soak] load: normal %d acked (%d errors), backend received %d; attacker: %d retained, "
          "%d filters (%d granted, %d refused), %d flood publishes, %d disconnects; REST guesses %d %s; "
          "smuggling %d %s" % (
              s["normal_acked"], s["normal_errors"], s["backend_received"], s["retained_sent"],
              s["subscribe_sent"], s["sub_granted"], s["sub_refused"], s["flood_sent"],
              s["attacker_closed"], s["guess_sent"], json.dumps(s["guess_status"]),
              s["smuggle_sent"], json.dumps(s["smuggle_status"])))
except Exception as e:
    print("[soak] load: no counters (%s)" % e)
PY
