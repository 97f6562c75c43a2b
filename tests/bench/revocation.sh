#!/usr/bin/env bash
# Revocation at scale (issue 14, docs/BENCHMARKS.md):
#   ./deploy/dev.sh bench-revocation [--levels "0 100000 1000000"] [--revocations K] [--quick]
# deploy/dev.sh builds, starts a private PostgreSQL and calls this script with
# IOTHUB_BENCH_PGSOCK, IOTHUB_BENCH_BUILD and IOTHUB_BENCH_TMP set. For each level L (revoked
# certificates already in the database, inserted with generate_series), it forces a new base
# CRL (its entries, size, build time), then times K sequential REST revocations over one
# keep-alive connection (tests/bench/revocation.py), the delta CRL that follows (entries, size,
# build time, and how long after the last answer its serial is served) and the database
# growth over those K revocations. Prints a markdown table; logs stay in .dev/bench/<time>/.
# --quick: levels "0 10000", 200 revocations.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${IOTHUB_BENCH_BUILD:?run through ./deploy/dev.sh bench-revocation}
PGSOCK=${IOTHUB_BENCH_PGSOCK:?run through ./deploy/dev.sh bench-revocation}
TMP=${IOTHUB_BENCH_TMP:?run through ./deploy/dev.sh bench-revocation}
IOTHUBD=$BUILD/iothubd
COMMAND="./deploy/dev.sh bench-revocation $*"

LEVELS="0 100000 1000000" K=1000
while [ $# -gt 0 ]; do
    case $1 in
        --levels) LEVELS=${2:?--levels needs a list}; shift 2 ;;
        --revocations) K=${2:?--revocations needs a number}; shift 2 ;;
        --quick) LEVELS="0 10000" K=200; shift ;;
        -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench-revocation: unknown option $1" >&2; exit 2 ;;
    esac
done
[[ $K =~ ^[1-9][0-9]*$ ]] || { echo "bench-revocation: --revocations must be a positive integer" >&2; exit 2; }

OUT=$ROOT/.dev/bench/revocation-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT"
log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] error: %s\n' "$*" >&2; exit 1; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

DB=bench_revocation_$$
createdb -h "$PGSOCK" -U postgres "$DB"
URL="postgresql:///$DB?host=$PGSOCK&user=postgres"
sql() { psql "$URL" -X -q -A -t -v ON_ERROR_STOP=1 -c "$1"; }
PORT=$(free_port) MQTT=$(free_port)
export IOTHUB_MASTER_KEY="revocation benchmark master passphrase"
cat >"$OUT/iothub.conf" <<CONF
db_url = $URL
hostname = localhost,127.0.0.1
api_listen = 127.0.0.1:$PORT
mqtt_mtls_listen = 127.0.0.1:$MQTT
log_level = debug
CONF
"$IOTHUBD" -c "$OUT/iothub.conf" init --token-file "$OUT/admin.token" >"$OUT/init.log" 2>&1 || die "init failed ($OUT/init.log)"
"$IOTHUBD" -c "$OUT/iothub.conf" ca chain >"$OUT/trust.pem"
"$IOTHUBD" -c "$OUT/iothub.conf" serve >"$OUT/serve.log" 2>&1 &
PID=$!
trap 'kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; dropdb -h "$PGSOCK" -U postgres "$DB" 2>/dev/null' EXIT
for _ in $(seq 300); do
    curl -sk -o /dev/null "https://127.0.0.1:$PORT/healthz" && break
    kill -0 "$PID" 2>/dev/null || die "iothubd serve exited ($OUT/serve.log)"
    sleep 0.1
done
TOKEN=$(cat "$OUT/admin.token")
CA=$(sql "SELECT id FROM cas WHERE role = 'issuing' AND active")
curl -sS --cacert "$OUT/trust.pem" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    --data '{"name":"bench"}' "https://127.0.0.1:$PORT/v1/products" >/dev/null
PRODUCT=$(sql "SELECT id FROM products LIMIT 1")
HOLDER=$(sql "INSERT INTO devices (product_id, serial_number, secret_hash, status)
              VALUES ($PRODUCT, 'bench-holder', 'x', 'revoked') RETURNING id")

# newest KIND (base|delta): "number|entries|bytes" of the CA's newest CRL of that kind.
newest() {
    local cond="base_number IS NULL"
    [ "$1" = delta ] && cond="base_number IS NOT NULL"
    sql "SELECT crl_number || '|' || entries || '|' || octet_length(der) FROM crls
         WHERE ca_id = $CA AND $cond ORDER BY crl_number DESC LIMIT 1"
}
# built_ms NUMBER: the build time the publisher logged for CRL #NUMBER.
built_ms() {
    sed -n "s/.*CRL #$1 .*bytes in \([0-9.]*\) ms.*/\1/p" "$OUT/serve.log" | tail -n 1
}
# phases NUMBER: "read X, built and signed Y, stored Z" as logged for base CRL #NUMBER.
phases() {
    sed -n "s/.*CRL #$1 .*ms: \(read [^)]*\)).*/\1/p" "$OUT/serve.log" | tail -n 1
}

ROWS=()
have=0
for level in $LEVELS; do
    [[ $level =~ ^[0-9]+$ ]] && [ "$level" -ge "$have" ] || die "--levels must be increasing numbers"
    if [ "$level" -gt "$have" ]; then
        log "inserting $((level - have)) revoked certificates (generate_series)"
        t=$(date +%s%N)
        sql "INSERT INTO certificates (serial, ca_id, kind, device_id, subject, der, not_before,
                                       not_after, status, revoked_at, revocation_reason)
             SELECT upper(md5('bench-revoked-' || g)), $CA, 'device', '$HOLDER', 'CN=bench', '\x00',
                    now() - interval '30 days', now() + interval '300 days', 'revoked',
                    now() - interval '2 days' + g * interval '1 millisecond', 1
             FROM generate_series($((have + 1)), $level) g; ANALYZE certificates;" >/dev/null
        log "inserted in $((($(date +%s%N) - t) / 1000000)) ms"
        have=$level
    fi
    # A new base now: the inserted rows predate the current one's watermark.
    before=$(newest base | cut -d'|' -f1)
    sql "UPDATE crls SET this_update = this_update - interval '13 hours',
                         next_update = next_update - interval '13 hours'
         WHERE ca_id = $CA AND crl_number = $before; NOTIFY iothub_revocation, 'bench'" >/dev/null
    for _ in $(seq 1200); do
        [ "$(newest base | cut -d'|' -f1)" != "$before" ] && break
        sleep 0.1
    done
    IFS='|' read -r bnum bentries bbytes <<<"$(newest base)"
    [ "$bnum" != "$before" ] || die "no new base CRL within 120 s ($OUT/serve.log)"
    bms=$(built_ms "$bnum")
    log "level $level: base CRL #$bnum, $bentries entries, $bbytes bytes, built in ${bms:-?} ms ($(phases "$bnum"))"
    sleep 1.1 # the one-second rule: the revocations' first delta is not delayed by the base

    sql "WITH d AS (INSERT INTO devices (product_id, serial_number, secret_hash, status)
                    SELECT $PRODUCT, 'bench-$level-' || g, 'x', 'active' FROM generate_series(1, $K) g
                    RETURNING id)
         INSERT INTO certificates (serial, ca_id, kind, device_id, subject, der, not_before, not_after)
         SELECT upper(md5(d.id::text)), $CA, 'device', d.id, 'CN=' || d.id, '\x00',
                now() - interval '1 day', now() + interval '300 days' FROM d RETURNING serial" \
        >"$OUT/serials-$level.txt"
    sql "CHECKPOINT" >/dev/null
    size0=$(sql "SELECT pg_database_size(current_database())")
    log "level $level: $K REST revocations"
    small=; [ $((level + K)) -le 10000 ] && small=base # crl_rebuild_max_entries: rebuilt whole
    python3 "$ROOT/tests/bench/revocation.py" "$PORT" "$OUT/trust.pem" "$TOKEN" \
        "$OUT/serials-$level.txt" $small >"$OUT/revocations-$level.json"
    sql "CHECKPOINT" >/dev/null
    size1=$(sql "SELECT pg_database_size(current_database())")
    IFS='|' read -r dnum dentries dbytes <<<"$(newest delta)"
    dms=$(built_ms "$dnum")
    read -r mean median p95 to_delta < <(python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
print(r["mean_ms"], r["median_ms"], r["p95_ms"], r["to_delta_ms"])' "$OUT/revocations-$level.json")
    growth=$(((size1 - size0) * 1000 / K / 1024))
    log "level $level: mean $mean ms, median $median ms, p95 $p95 ms; delta #$dnum $dentries entries $dbytes bytes (${dms:-?} ms); served ${to_delta} ms after the last answer; +$growth KiB per 1,000"
    ROWS+=("$level|$mean|$median|$p95|$bentries|$bbytes|${bms:-?}|$dentries|$dbytes|${dms:-?}|$to_delta|$growth")
done

base_mean=$(echo "${ROWS[0]}" | cut -d'|' -f2)
{
    echo "Command: \`$COMMAND\` ($(nproc) cores, $(date -u +%Y-%m-%d), load average $(cut -d' ' -f1 /proc/loadavg))"
    echo
    echo "| revoked already | REST revocation mean / median / p95 (ms) | ratio to 0 | base CRL: entries, size, build | delta CRL: entries, size, build | last revocation → served in a CRL | DB growth per 1,000 revocations |"
    echo "|---|---|---|---|---|---|---|"
    for r in "${ROWS[@]}"; do
        IFS='|' read -r level mean median p95 be bb bms de db dms td growth <<<"$r"
        ratio=$(python3 -c "print('%.2f' % ($mean / $base_mean))")
        echo "| $(printf "%'d" "$level") | $mean / $median / $p95 | $ratio | $(printf "%'d" "$be"), $(python3 -c "print('%.2f MB' % ($bb / 1e6))"), $bms ms | $(printf "%'d" "$de"), $(python3 -c "print('%.1f KB' % ($db / 1e3))"), $dms ms | $td ms | $(printf "%'d" "$growth") KiB |"
    done
} | tee "$OUT/table.md"
