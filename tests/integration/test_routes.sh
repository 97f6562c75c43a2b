#!/usr/bin/env bash
# Role x route: every route of the real route table (printed by tests/tools/route_table),
# called without credentials, with a token of every role, and with the principal's own
# credentials where the route takes a device's or service's. Placeholders are filled with
# ids that exist, so authentication and authorisation decide: 401 without credentials where
# the route needs them, 403 for a role below the route's minimum, and neither 401 nor 403
# where the credentials suffice. A route added to the table is covered without a change
# here (a new kind of {} segment falls back to a device id).
. "$(dirname "$0")/api_lib.sh"

ROUTE_TABLE=$BUILD/tests/tools/route_table
ROLES=(auditor provisioner operator admin)
rank() { case $1 in auditor) echo 1 ;; provisioner) echo 2 ;; operator) echo 3 ;; admin) echo 4 ;; *) echo 0 ;; esac; }

"$ROUTE_TABLE" >routes.tsv
[ "$(wc -l <routes.tsv)" -ge 20 ] && ! grep -qv $'^[A-Z]*\t/[^\t]*\t[a-z_]*\t[a-z-]*$' routes.tsv
rc=$?
expect "route_table prints the route table as METHOD PATTERN AUTH MIN_ROLE ($(wc -l <routes.tsv) routes)" $rc
grep -q $'^POST\t/v1/certificates/{}/revoke\trole\toperator$' routes.tsv &&
    grep -q $'^POST\t/v1/devices/{}/commands\trole\toperator$' routes.tsv
expect "the table has certificate revocation and commands for operators and above" $?

api_setup routes
expect "serve starts" $?

# ---- what the placeholders name -------------------------------------------------------------
declare -A TOKEN
for role in "${ROLES[@]}"; do
    bearer "$ADMIN" POST /v1/tokens "{\"name\": \"routes-$role\", \"role\": \"$role\"}"
    TOKEN[$role]=$(jf token)
done
bearer "$ADMIN" POST /v1/tokens '{"name": "routes-victim", "role": "auditor"}'
VICTIM_TOKEN=$(jf token_id)
bearer "$ADMIN" POST /v1/products '{"name": "routes"}'
PK=$(jf product_key)
# new_device VAR: provisions a device; VAR gets its id, VAR_SECRET its secret.
new_device() {
    bearer "$ADMIN" POST /v1/devices "{\"product_key\": \"$PK\", \"serial_number\": \"$1\"}"
    printf -v "$1" '%s' "$(jf device_id)"
    printf -v "$1_SECRET" '%s' "$(jf device_secret)"
}
new_device BASIC_DEV  # activated with its Basic credentials
new_device CERT_DEV   # renewed with its client certificate
new_device VICTIM_DEV # revoked, reset and commanded by tokens
new_device SERIAL_DEV # its certificate is revoked by serial
activate_as device "$CERT_DEV" "$CERT_DEV_SECRET" certdev &&
    activate_as device "$SERIAL_DEV" "$SERIAL_DEV_SECRET" serialdev
expect "two devices activated" $?
VICTIM_SERIAL=$(jf serial)
bearer "$ADMIN" POST /v1/services '{"name": "routes-basic", "subscribe": ["devices/+/telemetry"]}'
BASIC_SVC=$(jf service_id) BASIC_SVC_SECRET=$(jf service_secret)
bearer "$ADMIN" POST /v1/services '{"name": "routes-cert", "subscribe": ["devices/+/telemetry"]}'
CERT_SVC=$(jf service_id)
activate_as service "$CERT_SVC" "$(jf service_secret)" certsvc
expect "a service activated" $?
make_csr ec-p256 fresh && csr_body fresh.csr fresh.json

# fill PATTERN AUTH: the path with each {} replaced by an id of the right kind.
fill() {
    local p=$1 id
    case $p in
        /v1/tokens/{}*) id=$VICTIM_TOKEN ;;
        /v1/certificates/{}*) id=$VICTIM_SERIAL ;;
        /v1/services/{}*) if [ "$2" = service_cert ]; then id=$CERT_SVC; else id=$BASIC_SVC; fi ;;
        *) case $2 in device) id=$BASIC_DEV ;; device_cert) id=$CERT_DEV ;; *) id=$VICTIM_DEV ;; esac ;;
    esac
    echo "${p//\{\}/$id}"
}

# send METHOD PATH [curl options...]: the call, with a JSON body on POST (a fresh CSR:
# activation and renewal then succeed when the credentials do).
send() {
    local method=$1 path=$2
    shift 2
    if [ "$method" = POST ]; then
        call "$method" "$path" "$@" -H 'Content-Type: application/json' --data-binary @fresh.json
    else
        call "$method" "$path" "$@"
    fi
}

# refused NAME STATUS: the last answer was STATUS with the error code of a refusal.
refused() {
    local code
    code=$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["error"]["code"])' \
        "$T/body.out" 2>/dev/null)
    case $STATUS:$code in
        401:unauthorized | 401:client_certificate_required | 403:forbidden) [ "$STATUS" = "$2" ] ;;
        *) false ;;
    esac
    local rc=$?
    expect "$1 (got $STATUS: $(head -c 160 <<<"$BODY"))" $rc
}
# allowed NAME: the last answer was neither 401 nor 403 (nor a failure to answer).
allowed() {
    [ "$STATUS" != 401 ] && [ "$STATUS" != 403 ] && [ "$STATUS" != 000 ] && [ "$STATUS" -lt 500 ]
    expect "$1 (got $STATUS)" $?
}

# check_routes TABLE: the whole matrix for the routes of TABLE.
check_routes() {
    local method pattern auth min path role
    while IFS=$'\t' read -r method pattern auth min; do
        path=$(fill "$pattern" "$auth")
        send "$method" "$path"
        if [ "$auth" = none ]; then allowed "$method $pattern without credentials is served"
        else refused "$method $pattern without credentials is 401" 401; fi
        for role in "${ROLES[@]}"; do
            send "$method" "$path" -H "Authorization: Bearer ${TOKEN[$role]}"
            case $auth in
                none) allowed "$method $pattern as $role is served" ;;
                role | provision)
                    [ "$auth" = provision ] && min=provisioner
                    if [ "$(rank "$role")" -ge "$(rank "$min")" ]; then
                        allowed "$method $pattern as $role ($min+) is allowed"
                    else
                        refused "$method $pattern as $role ($min+) is 403" 403
                    fi ;;
                *) refused "$method $pattern with the $role token is 401 ($auth credentials only)" 401 ;;
            esac
        done
        case $auth in
            device) send "$method" "$path" -u "$BASIC_DEV:$BASIC_DEV_SECRET"
                    allowed "$method $pattern with the device's own credentials is allowed" ;;
            service) send "$method" "$path" -u "$BASIC_SVC:$BASIC_SVC_SECRET"
                     allowed "$method $pattern with the service's own credentials is allowed" ;;
            device_cert) send "$method" "$path" --cert certdev.pem --key certdev.key
                         allowed "$method $pattern with the device's certificate is allowed" ;;
            service_cert) send "$method" "$path" --cert certsvc.pem --key certsvc.key
                          allowed "$method $pattern with the service's certificate is allowed" ;;
            provision) send "$method" "$path" -u "$PK:wrong"
                       refused "$method $pattern with wrong product credentials is 401" 401 ;;
        esac
    done <"$1"
}

check_routes routes.tsv >matrix.out
cat matrix.out
grep -q "^ok - POST /v1/certificates/{}/revoke as auditor (operator+) is 403" matrix.out &&
    grep -q "^ok - POST /v1/devices/{}/commands as auditor (operator+) is 403" matrix.out
expect "an auditor is refused certificate revocation and commands (403)" $?
grep -q "^ok - POST /v1/certificates/{}/revoke as operator (operator+) is allowed (got 200)" matrix.out
expect "an operator revokes the certificate (200)" $?
[ "$(count "certificates WHERE serial = '$VICTIM_SERIAL' AND status = 'revoked'")" = 1 ] &&
    [ "$(count "audit_log WHERE action = 'certificate.revoke' AND result = '403 forbidden'")" = 2 ] &&
    [ "$(count "audit_log WHERE action = 'certificate.revoke' AND result = 'ok'")" = 1 ]
expect "the refusals are audited and only the operator's revocation took effect" $?

# metrics_access = token: the routes whose authentication it changes, on such a server.
stop_server
expect "serve stops" $?
echo "metrics_access = token" >>iothub.conf
start_server iothub.conf serve-token.log
expect "serve starts with metrics_access = token" $?
"$ROUTE_TABLE" --metrics-token >routes-token.tsv
grep -vxF -f routes.tsv routes-token.tsv >routes-changed.tsv
[ "$(cat routes-changed.tsv)" = $'GET\t/metrics\trole\tauditor' ]
expect "metrics_access = token changes GET /metrics to auditor tokens only" $?
check_routes routes-changed.tsv

stop_server
expect "serve stops cleanly" $?
finish
