#!/usr/bin/env bash
# Provisions and activates N devices and one telemetry service through the REST API, for
# iothub-bench:
#   tests/bench/provision.sh URL TOKEN_FILE CA_FILE N OUT_DIR
# URL is the API base (https://127.0.0.1:8443), TOKEN_FILE holds an admin or provisioner
# token (`./deploy/dev.sh run` writes .dev/admin.token and .dev/ca.pem). Writes, in OUT_DIR:
# dev-I.pem / dev-I.key (I = 1..N; keys EC P-256, mode 0600), devices.csv ("certfile,keyfile"
# with absolute paths), service.pem / service.key (a service allowed to subscribe to
# devices/+/telemetry). Devices are created and activated PROVISION_JOBS (default 4) at a time.
set -euo pipefail

if [ $# -ne 5 ]; then
    echo "usage: $0 URL TOKEN_FILE CA_FILE N OUT_DIR" >&2
    exit 2
fi
URL=${1%/} TOKEN_FILE=$2 CA=$3 N=$4 OUT=$5
[[ $N =~ ^[1-9][0-9]*$ ]] || { echo "provision: N must be a positive number (got \"$N\")" >&2; exit 2; }
[ -r "$TOKEN_FILE" ] || { echo "provision: cannot read the token file $TOKEN_FILE" >&2; exit 2; }
[ -r "$CA" ] || { echo "provision: cannot read the CA file $CA" >&2; exit 2; }
command -v jq >/dev/null || { echo "provision: jq is needed (apt-get install jq)" >&2; exit 2; }
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
CA=$(cd "$(dirname "$CA")" && pwd)/$(basename "$CA")
umask 077
# The token goes to curl through a header file, never on a command line.
HDR="$OUT/.auth-header"
printf 'Authorization: Bearer %s\n' "$(tr -d '\r\n' <"$TOKEN_FILE")" >"$HDR"
trap 'rm -f "$HDR"' EXIT
export URL CA OUT HDR

# api METHOD PATH BODY [curl options]: prints the body; fails (with the answer on stderr)
# unless the status is 2xx.
api() {
    local method=$1 path=$2 body=$3 out status
    shift 3
    out=$(mktemp "$OUT/.answer.XXXXXX")
    status=$(curl -sS --cacert "$CA" -X "$method" -o "$out" -w '%{http_code}' \
        -H 'Content-Type: application/json' --data-binary "$body" "$@" "$URL$path") || status=000
    if [[ $status != 2?? ]]; then
        echo "provision: $method $path -> $status: $(head -c 300 "$out")" >&2
        rm -f "$out"
        return 1
    fi
    cat "$out"
    rm -f "$out"
}

# activate KIND ID SECRET NAME: EC P-256 key NAME.key and CSR, POST /v1/KINDs/ID/activate
# with Basic ID:SECRET (curl reads it from a config on stdin); certificate to NAME.pem.
activate() {
    local kind=$1 id=$2 secret=$3 name=$OUT/$4
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$name.key" \
        -subj "/CN=$id" -out "$name.csr" 2>/dev/null || { echo "provision: openssl req failed" >&2; return 1; }
    jq -Rs '{csr: .}' <"$name.csr" >"$name.json"
    printf 'user = "%s:%s"\n' "$id" "$secret" |
        api POST "/v1/${kind}s/$id/activate" "@$name.json" -K - | jq -r .certificate >"$name.pem.tmp"
    grep -q 'BEGIN CERTIFICATE' "$name.pem.tmp" || { echo "provision: no certificate for $id" >&2; return 1; }
    mv "$name.pem.tmp" "$name.pem"
    rm -f "$name.csr" "$name.json"
}

# device I PRODUCT_KEY: provisions and activates device I (dev-I.pem, dev-I.key).
device() {
    local i=$1 pk=$2 ans id secret
    ans=$(api POST /v1/devices "{\"product_key\":\"$pk\",\"serial_number\":\"BENCH-$STAMP-$i\"}" -H "@$HDR") || return 1
    id=$(jq -r .device_id <<<"$ans")
    secret=$(jq -r .device_secret <<<"$ans")
    activate device "$id" "$secret" "dev-$i"
}
export -f api activate device

STAMP=$(date +%s)-$$
export STAMP
pk=$(api POST /v1/products "{\"name\":\"bench-$STAMP\"}" -H "@$HDR" | jq -r .product_key)
echo "provision: product $pk; $N devices, ${PROVISION_JOBS:-4} at a time" >&2

failed=0
# shellcheck disable=SC2016 # $1 and $2 are the inner shell's arguments
seq 1 "$N" | xargs -P "${PROVISION_JOBS:-4}" -I{} bash -c 'device "$1" "$2"' _ {} "$pk" || failed=1

svc=$(api POST /v1/services "{\"name\":\"bench-reader-$STAMP\",\"publish\":[\"devices/+/commands/#\"],\"subscribe\":[\"devices/+/telemetry\"]}" -H "@$HDR")
activate service "$(jq -r .service_id <<<"$svc")" "$(jq -r .service_secret <<<"$svc")" service || failed=1

{
    echo "certfile,keyfile"
    for i in $(seq 1 "$N"); do
        [ -s "$OUT/dev-$i.pem" ] && echo "$OUT/dev-$i.pem,$OUT/dev-$i.key"
    done
} >"$OUT/devices.csv"
have=$(($(wc -l <"$OUT/devices.csv") - 1))
echo "provision: $have of $N devices activated; $OUT/devices.csv, $OUT/service.pem" >&2
[ "$failed" = 0 ] && [ "$have" = "$N" ]
