#!/usr/bin/env bash
# N devices download one firmware image at once, each with its own client certificate, over
# N concurrent HTTPS connections (curl --parallel), while the server's RSS is sampled:
#   tests/bench/firmware_download.sh URL CA_FILE DEVICES FIRMWARE_ID N [SERVER_PID]
# DEVICES has a line per device: "cert CERTFILE KEYFILE" (its client certificate, as
# tests/bench/provision.sh makes them; the device id is the certificate's CN) or
# "basic DEVICE_ID SECRET" (HTTP Basic device credentials). The hub needs firmware_max_downloads >= N and api_max_connections /
# api_max_connections_per_ip above N (docs/BENCHMARKS.md#firmware-downloads). Prints one
# line of JSON: transfers by status, bytes, wall time, aggregate MB/s, server RSS (KiB)
# before, at its peak during, and after.
set -euo pipefail

if [ $# -lt 5 ]; then
    echo "usage: $0 URL CA_FILE DEVICES FIRMWARE_ID N [SERVER_PID]" >&2
    exit 2
fi
URL=${1%/} CA=$2 CSV=$3 FW=$4 N=$5 PID=${6:-}
[[ $N =~ ^[1-9][0-9]*$ ]] || { echo "N must be a positive number" >&2; exit 2; }
[ "$(wc -l <"$CSV")" -ge "$N" ] || { echo "$CSV has fewer than $N devices" >&2; exit 2; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"; [ -n "${SAMPLER:-}" ] && kill "$SAMPLER" 2>/dev/null; true' EXIT

rss() { [ -n "$PID" ] && awk '/^VmRSS/ {print $2}' "/proc/$PID/status" 2>/dev/null || echo 0; }

# curl configs of at most 250 transfers each (curl runs at most 300 in parallel): a section
# per device, separated by `next` (options do not carry over).
head -n "$N" "$CSV" | split -l 250 - "$WORK/part."
for part in "$WORK"/part.*; do
    i=0
    while read -r kind a b; do
        [ $((i++)) = 0 ] || echo next
        if [ "$kind" = cert ]; then
            id=$(openssl x509 -in "$a" -noout -subject -nameopt multiline | awk '/commonName/ {print $3}')
            printf 'cert = "%s"\nkey = "%s"\n' "$a" "$b"
        else
            id=$a
            printf 'user = "%s:%s"\n' "$a" "$b"
        fi
        printf 'url = "%s/v1/devices/%s/firmware/%s"\ncacert = "%s"\n' "$URL" "$id" "$FW" "$CA"
        printf 'output = "/dev/null"\nsilent\nshow-error\nwrite-out = "%%{http_code} %%{size_download}\\n"\n'
    done <"$part" >"$part.conf"
done

BEFORE=$(rss)
echo "$BEFORE" >"$WORK/rss"
if [ -n "$PID" ]; then
    (while :; do rss >>"$WORK/rss"; sleep 0.2; done) &
    SAMPLER=$!
fi
T0=$(date +%s.%N)
CURLS=()
for conf in "$WORK"/part.*.conf; do
    curl --parallel --parallel-immediate --parallel-max 250 -K "$conf" >"$conf.results" 2>"$conf.errors" &
    CURLS+=($!)
done
wait "${CURLS[@]}" || true
cat "$WORK"/part.*.results >"$WORK/results"
cat "$WORK"/part.*.errors | grep -v '^ *[0-9-]' >"$WORK/errors" || true
T1=$(date +%s.%N)
[ -n "${SAMPLER:-}" ] && kill "$SAMPLER" 2>/dev/null && wait "$SAMPLER" 2>/dev/null || true
SAMPLER=
sleep 1
AFTER=$(rss)
python3 - "$WORK/results" "$WORK/rss" "$T0" "$T1" "$BEFORE" "$AFTER" "$N" <<'PY'
import collections, json, sys
res, rssf, t0, t1, before, after, n = sys.argv[1:8]
status, total = collections.Counter(), 0
for line in open(res):
    code, size = line.split()
    status[code] += 1
    total += int(size)
wall = float(t1) - float(t0)
peak = max(int(x) for x in open(rssf).read().split() or ["0"])
print(json.dumps({"downloads": int(n), "status": dict(status), "bytes": total,
                  "wall_s": round(wall, 2), "aggregate_MBps": round(total / 1e6 / wall, 1),
                  "rss_kib": {"before": int(before), "peak": peak, "after": int(after)}}))
PY
[ -s "$WORK/errors" ] && sort "$WORK/errors" | uniq -c | sort -rn | head -5 >&2
exit 0
