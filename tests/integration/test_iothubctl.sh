#!/usr/bin/env bash
# iothubctl against the real iothubd, as docs/cli.md shows it: every subcommand in table and
# --json output, url/token/cacert precedence (flag > env > config file), the exit codes
# (1 refused, 2 usage, 3 unreachable, 4 untrusted TLS), service credentials from
# `services activate` used by mosquitto_sub on the mTLS listener, and the token never echoed.
. "$(dirname "$0")/api_lib.sh"

CTL=$BUILD/iothubctl
api_setup cli
expect "iothubd init, then iothubd serve answers /healthz" $?

# Nothing from the caller's environment or home: every source is set explicitly below.
unset IOTHUB_URL IOTHUB_TOKEN IOTHUB_CACERT
export HOME=$T/home XDG_CONFIG_HOME=$T/xdg
mkdir -p "$HOME" "$XDG_CONFIG_HOME"
ALL=$T/all-output.log
: >"$ALL"

# ctl ARGS...: runs iothubctl; stdout in ctl.out, stderr in ctl.err, exit status in RC.
ctl() {
    "$CTL" "$@" >"$T/ctl.out" 2>"$T/ctl.err" </dev/null
    RC=$?
    cat "$T/ctl.out" "$T/ctl.err" >>"$ALL"
    return $RC
}
# field LABEL: the value of a `label: value` line of the last output.
field() { sed -n "s/^$1: *//p" "$T/ctl.out" | head -n 1; }
# jo FILTER: jq on the last output.
jo() { jq -r "$1" "$T/ctl.out" 2>/dev/null; }
# expect_ctl NAME RESULT: expect, showing the last iothubctl output when it fails.
expect_ctl() {
    if [ "$2" = 0 ]; then ok "$1"; else
        not_ok "$1 (exit $RC)"
        sed 's/^/  stdout: /' "$T/ctl.out" | head -n 15 >&2
        sed 's/^/  stderr: /' "$T/ctl.err" | head -n 15 >&2
    fi
}
A=(--url "$BASE" --cacert trust.pem --token-file admin.token)

# ---- version, help ---------------------------------------------------------------------------
ctl --version
[ $RC = 0 ] && grep -q '^iothubctl 0\.' ctl.out
expect_ctl "iothubctl --version prints the version, exit 0" $?
ctl --help
rc=$RC
missing=0
for c in "products create" "products list" "devices provision" "devices list" "devices show" \
    "devices revoke" "devices reset" "certs list" "certs show" "certs revoke" "crl get" "ca get" \
    "tokens create" "services create" "services activate" "commands send" "audit" "health"; do
    grep -q "^  $c" ctl.out || { missing=1; echo "  --help lacks $c" >&2; }
done
[ $rc = 0 ] && [ $missing = 0 ] && grep -q 'Exit codes' ctl.out
expect_ctl "iothubctl --help lists all 18 commands and the exit codes" $?
ctl devices list --help
[ $RC = 0 ] && grep -q '^Usage: iothubctl devices list \[--limit N\] \[--after ID\] \[--all\]' ctl.out
expect_ctl "iothubctl devices list --help prints that command's usage, exit 0" $?

# ---- health, products ----------------------------------------------------------------------
ctl health --url "$BASE" --cacert trust.pem
[ $RC = 0 ] && [ "$(field status)" = ok ] && [ "$(field database)" = up ]
expect_ctl "health without a token: status: ok, database: up" $?
ctl health --url "$BASE" --cacert trust.pem --json
[ $RC = 0 ] && [ "$(jo .status)" = ok ]
expect_ctl "health --json prints the server's JSON" $?

ctl products create "Thermostat T1" "${A[@]}"
PK=$(field "product key") PSECRET=$(field "product secret")
[ $RC = 0 ] && [ ${#PK} = 16 ] && [ -n "$PSECRET" ] && [ "$(field name)" = "Thermostat T1" ]
expect_ctl "products create NAME: product key, product secret, name" $?
ctl products create "Gateway G2" "${A[@]}" --json
PK2=$(jo .product_key)
[ $RC = 0 ] && [ ${#PK2} = 16 ] && [ "$(jo .name)" = "Gateway G2" ]
expect_ctl "products create --json: the server's JSON with product_key" $?
ctl products list "${A[@]}"
[ $RC = 0 ] && head -n 1 ctl.out | grep -q '^PRODUCT KEY  *NAME  *DEVICES  *CREATED$' &&
    grep -q "^$PK  *Thermostat T1  *0  " ctl.out && grep -q "^$PK2  *Gateway G2 " ctl.out
expect_ctl "products list: an aligned table with both products" $?
ctl products list "${A[@]}" --json
[ $RC = 0 ] && [ "$(jo '.products | length')" = 2 ]
expect_ctl "products list --json: {products: [2 entries]}" $?

# ---- devices -------------------------------------------------------------------------------
ctl devices provision --product "$PK" --serial SN-0001 "${A[@]}"
D1=$(field "device id") D1SECRET=$(field "device secret")
[ $RC = 0 ] && [ ${#D1} = 36 ] && [ "$(field status)" = provisioned ] &&
    [ "$(field "serial number")" = SN-0001 ] && [ -n "$D1SECRET" ]
expect_ctl "devices provision --product --serial (admin token): device id and secret" $?
ctl devices provision --product "$PK" --serial SN-0002 "${A[@]}" --json
D2=$(jo .device_id) D2SECRET=$(jo .device_secret)
[ $RC = 0 ] && [ ${#D2} = 36 ] && [ "$(jo .status)" = provisioned ]
expect_ctl "devices provision --json" $?
ctl devices provision --product "$PK" --serial SN-0001 "${A[@]}"
[ $RC = 1 ] && grep -q '^error: duplicate_serial: .*SN-0001.* (HTTP 409)$' ctl.err && [ ! -s ctl.out ]
expect_ctl "the same serial twice: exit 1, \"error: duplicate_serial: ... (HTTP 409)\"" $?
(umask 077; echo "$PSECRET" >product.secret)
ctl devices provision --product "$PK" --serial SN-0003 --product-secret-file product.secret \
    --url "$BASE" --cacert trust.pem
D3=$(field "device id")
[ $RC = 0 ] && [ ${#D3} = 36 ]
expect_ctl "devices provision with --product-secret-file and no token (product claim)" $?
ctl devices provision --product "$PK" --serial SN-0004 --product-secret wrong \
    --url "$BASE" --cacert trust.pem
[ $RC = 1 ] && grep -q '^error: unauthorized: .*(HTTP 401)$' ctl.err
expect_ctl "product claim with a wrong secret: exit 1, unauthorized (HTTP 401)" $?

ctl devices list "${A[@]}"
[ $RC = 0 ] && head -n 1 ctl.out | grep -q '^DEVICE ID  *PRODUCT  *SERIAL  *STATUS  *CONNECTED  *LAST SEEN$' &&
    [ "$(grep -c "^[0-9a-f-]\{36\}  *$PK  *SN-000[123]  *provisioned  *no  *-$" ctl.out)" = 3 ]
expect_ctl "devices list: a table of the three devices" $?
ctl devices list --limit 1 "${A[@]}"
first=$(sed -n 2p ctl.out | cut -d' ' -f1)
[ $RC = 0 ] && [ "$(wc -l <ctl.out)" = 2 ] && grep -q "^more: iothubctl devices list --after $first" ctl.err
expect_ctl "devices list --limit 1: one row, and how to get the next page" $?
ctl devices list --limit 1 --after "$first" "${A[@]}" --json
[ $RC = 0 ] && [ "$(jo '.devices | length')" = 1 ] && [ "$(jo '.devices[0].device_id')" != "$first" ] &&
    [ "$(jo .next_after)" = "$(jo '.devices[0].device_id')" ]
expect_ctl "devices list --after ID --json: the next page, next_after set" $?
ctl devices list --limit 1 --all "${A[@]}" --json
[ $RC = 0 ] && [ "$(jo '.devices | length')" = 3 ] && [ "$(jo .next_after)" = null ] &&
    [ "$(jo '[.devices[].device_id] | unique | length')" = 3 ]
expect_ctl "devices list --all --limit 1: follows three pages to all three devices" $?

# ---- activation (by the device, through the API), certificates -----------------------------
activate_as device "$D1" "$D1SECRET" dev1
D1SERIAL=$(jf serial)
expect "device 1 activates with an openssl CSR (its certificate for the tests below)" $?
ctl devices show "$D1" "${A[@]}"
[ $RC = 0 ] && [ "$(field "device id")" = "$D1" ] && [ "$(field status)" = active ] &&
    grep -q "^$D1SERIAL  *device  *valid  " ctl.out
expect_ctl "devices show ID: fields and its certificate table" $?
ctl devices show "$D1" "${A[@]}" --json
[ $RC = 0 ] && [ "$(jo '.certificates[0].serial')" = "$D1SERIAL" ]
expect_ctl "devices show --json" $?
ctl devices show 00000000-0000-0000-0000-000000000000 "${A[@]}"
[ $RC = 1 ] && grep -q '^error: not_found: .*(HTTP 404)$' ctl.err
expect_ctl "devices show of an unknown id: exit 1, not_found (HTTP 404)" $?

ctl certs list --device "$D1" "${A[@]}"
[ $RC = 0 ] && head -n 1 ctl.out | grep -q '^SERIAL  *KIND  *STATUS  *NOT AFTER' &&
    grep -q "^$D1SERIAL  *device  *valid  .*CN=$D1" ctl.out
expect_ctl "certs list --device ID: a table with the device's certificate" $?
ctl certs list --device "$D1" "${A[@]}" --json
[ $RC = 0 ] && [ "$(jo '.certificates | length')" = 1 ]
expect_ctl "certs list --json" $?
ctl certs show "$D1SERIAL" "${A[@]}"
[ $RC = 0 ] && [ "$(field serial)" = "$D1SERIAL" ] && [ "$(field status)" = valid ] &&
    grep -q -- '-----BEGIN CERTIFICATE-----' ctl.out
expect_ctl "certs show SERIAL: fields and the PEM" $?
ctl certs show "$D1SERIAL" --pem "${A[@]}"
[ $RC = 0 ] && cmp -s ctl.out dev1.pem
expect_ctl "certs show --pem prints exactly the issued certificate" $?

# ---- commands to a subscribed device -------------------------------------------------------

sub dev1 cmd.out -t "devices/$D1/commands/#" -q 1 -C 2 -W 15
expect "device 1 subscribes to its commands with mosquitto_sub" $?
ctl commands send "$D1" reboot '{"delay": 5}' "${A[@]}"
[ $RC = 0 ] && [ "$(field delivered)" = yes ] && [ "$(field topic)" = "devices/$D1/commands/reboot" ]
expect_ctl "commands send ID NAME PAYLOAD: delivered: yes" $?
printf 'interval=30\nmode=eco' >payload.txt
ctl commands send "$D1" configure --payload-file payload.txt "${A[@]}" --json
[ $RC = 0 ] && [ "$(jo .delivered)" = true ]
expect_ctl "commands send --payload-file F --json: delivered true" $?
end_sub
grep -qx "devices/$D1/commands/reboot {\"delay\": 5}" cmd.out &&
    grep -qx "devices/$D1/commands/configure interval=30" cmd.out && grep -qx "mode=eco" cmd.out
expect "the device receives both payloads byte for byte" $?
ctl commands send "$D2" offset "${A[@]}" -- -5
[ $RC = 0 ] && [ "$(field delivered)" = no ] && [ "$(field name)" = offset ]
expect_ctl "commands send to an offline device (payload -5 after --): delivered: no" $?

# ---- services: create, activate, credentials for mosquitto_sub ----------------------------
ctl services create telemetry-reader --publish 'devices/+/commands/#' \
    --subscribe 'devices/+/telemetry' 'devices/+/status' "${A[@]}"
SVC=$(field "service id") SVCSECRET=$(field "service secret")
[ $RC = 0 ] && [ ${#SVC} = 36 ] && [ "$(field subscribe)" = "devices/+/telemetry, devices/+/status" ] &&
    [ "$(field publish)" = "devices/+/commands/#" ]
expect_ctl "services create NAME --publish P --subscribe P1 P2: id, secret, patterns" $?
ctl services create other --subscribe 'a/#' --subscribe 'b/+' "${A[@]}" --json
[ $RC = 0 ] && [ "$(jo '.subscribe | join(",")')" = "a/#,b/+" ] && [ "$(jo '.publish | length')" = 0 ]
expect_ctl "services create with a repeated --subscribe, --json" $?
(umask 077; echo "$SVCSECRET" >svc.secret)
ctl services activate "$SVC" --secret-file svc.secret --out-dir svc --url "$BASE" --cacert trust.pem
[ $RC = 0 ] && [ "$(stat -c %a svc/key.pem)" = 600 ] && [ -s svc/cert.pem ] && [ -s svc/ca.pem ] &&
    [ "$(field "private key")" = svc/key.pem ] && grep -q 'mosquitto_sub' ctl.err
expect_ctl "services activate ID --secret-file F --out-dir DIR: key.pem (0600), cert.pem, ca.pem" $?
[ -z "$(ls -A svc | grep -v -x -e key.pem -e cert.pem -e ca.pem)" ]
expect "no temporary files are left in the output directory" $?
openssl x509 -in svc/cert.pem -noout -subject | grep -q "CN *= *$SVC" &&
    openssl verify -x509_strict -purpose sslclient -CAfile root.pem -untrusted svc/ca.pem svc/cert.pem >/dev/null &&
    [ "$(openssl pkey -in svc/key.pem -pubout)" = "$(openssl x509 -in svc/cert.pem -noout -pubkey)" ]
expect "the service certificate (CN = service id) verifies against the chain and matches key.pem" $?
SVC_SERIAL=$(field "certificate serial")

MQ=(--cafile svc/ca.pem -h 127.0.0.1 -p "$MQTT_PORT")
timeout 20 stdbuf -oL mosquitto_sub -d "${MQ[@]}" --cert svc/cert.pem --key svc/key.pem \
    -t 'devices/+/telemetry' -q 1 -C 1 -W 10 -F '%t %p' >tele.out 2>&1 &
SUB_PID=$!
for _ in $(seq 100); do grep -q 'received SUBACK' tele.out && break; sleep 0.05; done
timeout 10 mosquitto_pub "${MQ[@]}" --cert dev1.pem --key dev1.key -t "devices/$D1/telemetry" \
    -q 1 -m 't=21.5' >pub.log 2>&1
end_sub
grep -qx "devices/$D1/telemetry t=21.5" tele.out
expect "mosquitto_sub with the files of services activate receives a device's telemetry" $?

ctl services activate "$SVC" --secret "$SVCSECRET" --out-dir svc --url "$BASE" --cacert trust.pem --json
[ $RC = 0 ] && [ "$(jo '.superseded[0]')" = "$SVC_SERIAL" ] &&
    [ "$(openssl pkey -in svc/key.pem -pubout)" = "$(openssl x509 -in svc/cert.pem -noout -pubkey)" ]
expect_ctl "services activate again (--secret, --json): a new key and certificate, the old one superseded" $?
cp -r svc svc.before
ctl services activate "$SVC" --secret wrong --out-dir svc --url "$BASE" --cacert trust.pem
[ $RC = 1 ] && grep -q '^error: unauthorized: .*(HTTP 401)$' ctl.err && diff -r svc svc.before >/dev/null &&
    [ -z "$(ls -A svc | grep -v -x -e key.pem -e cert.pem -e ca.pem)" ]
expect_ctl "services activate with a wrong secret: exit 1, the files in DIR untouched" $?

# ---- revocation, CRL, CA ---------------------------------------------------------------------
ctl certs revoke "$D1SERIAL" --reason keyCompromise "${A[@]}"
[ $RC = 0 ] && [ "$(field status)" = revoked ] && [ "$(field reason)" = keyCompromise ]
expect_ctl "certs revoke SERIAL --reason keyCompromise" $?
ctl certs revoke "$D1SERIAL" "${A[@]}"
[ $RC = 2 ] && grep -q -- '--reason' ctl.err
expect_ctl "certs revoke without --reason: exit 2" $?
# The CRL is published by the node's publisher within a second of the revocation (SPEC).
for _ in $(seq 30); do
    ctl crl get --format pem "${A[@]}"
    [ $RC = 0 ] && openssl crl -in ctl.out -noout -text | grep -q "Serial Number: $D1SERIAL" && break
    sleep 0.2
done
[ $RC = 0 ] && openssl crl -in ctl.out -noout -text | grep -q "Serial Number: $D1SERIAL"
expect_ctl "crl get --format pem: the CRL lists the revoked serial (published within seconds)" $?
ctl crl get -o crl.der --url "$BASE" --cacert trust.pem
[ $RC = 0 ] && openssl crl -inform DER -in crl.der -noout -text | grep -q "Serial Number: $D1SERIAL"
expect_ctl "crl get -o FILE (no token): DER that openssl reads" $?
ctl crl get --url "$BASE" --cacert trust.pem
[ $RC = 0 ] && cmp -s ctl.out crl.der
expect_ctl "crl get to a pipe: the DER on stdout" $?
script -qec "$CTL crl get --url $BASE --cacert trust.pem" /dev/null >tty.out 2>&1
rc=$?
[ $rc = 2 ] && grep -q 'refusing to write der (binary) to a terminal' tty.out
expect "crl get with stdout on a terminal and no -o: refused, exit 2" $?
ctl ca get --url "$BASE" --cacert trust.pem
[ $RC = 0 ] && cmp -s ctl.out trust.pem
expect_ctl "ca get: the same chain as iothubd ca chain" $?
ctl ca get --format p7b -o ca.p7b --url "$BASE" --cacert trust.pem
[ $RC = 0 ] && [ "$(openssl pkcs7 -inform DER -in ca.p7b -print_certs -noout | grep -c subject)" = 2 ]
expect_ctl "ca get --format p7b -o FILE: PKCS#7 with the two CA certificates" $?
ctl ca get --format der --url "$BASE" --cacert trust.pem
[ $RC = 2 ] && grep -q -- '--format must be pem or p7b' ctl.err
expect_ctl "ca get --format der: exit 2, names the formats" $?

ctl devices revoke "$D2" --reason cessationOfOperation "${A[@]}"
[ $RC = 0 ] && [ "$(field status)" = revoked ] && [ "$(field reason)" = cessationOfOperation ]
expect_ctl "devices revoke ID --reason R" $?
ctl devices revoke "$D2" "${A[@]}"
[ $RC = 1 ] && grep -q '^error: already_revoked: .*(HTTP 409)$' ctl.err
expect_ctl "devices revoke twice: exit 1, already_revoked (HTTP 409)" $?
ctl devices reset "$D2" "${A[@]}"
[ $RC = 0 ] && [ "$(field status)" = provisioned ] && [ -n "$(field "device secret")" ] &&
    [ "$(field "device secret")" != "$D2SECRET" ]
expect_ctl "devices reset ID: provisioned, a new device secret" $?

# ---- tokens, roles, audit --------------------------------------------------------------------
ctl tokens create auditor-1 --role auditor "${A[@]}"
AUDITOR=$(field token)
[ $RC = 0 ] && [ "$(field role)" = auditor ] && [ -n "$AUDITOR" ]
expect_ctl "tokens create NAME --role auditor" $?
ctl devices list --url "$BASE" --cacert trust.pem --token "$AUDITOR"
[ $RC = 0 ]
expect_ctl "the auditor token (--token) lists devices" $?
ctl products create nope --url "$BASE" --cacert trust.pem --token "$AUDITOR"
[ $RC = 1 ] && grep -q '^error: forbidden: .*(HTTP 403)$' ctl.err
expect_ctl "the auditor token creating a product: exit 1, forbidden (HTTP 403)" $?
ctl tokens create x --role superuser "${A[@]}"
[ $RC = 1 ] && grep -q '^error: invalid_field: .*(HTTP 400)$' ctl.err
expect_ctl "tokens create with an unknown role: exit 1, invalid_field (HTTP 400)" $?

ctl audit --limit 50 "${A[@]}"
[ $RC = 0 ] && head -n 1 ctl.out | grep -q '^ID  *AT  *ACTOR  *ROLE  *ACTION  *TARGET  *SOURCE  *RESULT$' &&
    grep -q " device.reset  *$D2 " ctl.out && grep -q " service.activate  *$SVC " ctl.out
expect_ctl "audit --limit 50: a table with the reset and the service activation" $?
ctl audit --limit 2 "${A[@]}" --json
[ $RC = 0 ] && [ "$(jo '.entries | length')" = 2 ] && [ "$(jo '.next_before | type')" = number ]
expect_ctl "audit --limit 2 --json: two entries and next_before" $?

# ---- configuration: flags > environment > config file -------------------------------------
CLOSED=$(free_port)
mkdir -p "$XDG_CONFIG_HOME/iothub"
CONF=$XDG_CONFIG_HOME/iothub/iothubctl.conf
printf '# written by the test\nurl = %s/v1/\ntoken = %s\ncacert = %s\n' "$BASE" "$ADMIN" "$T/trust.pem" >"$CONF"
chmod 600 "$CONF"
ctl products list
[ $RC = 0 ] && grep -q "^$PK " ctl.out
expect_ctl "the default config file (\$XDG_CONFIG_HOME/iothub/iothubctl.conf) alone: works" $?
chmod 644 "$CONF"
ctl products list
[ $RC = 2 ] && grep -q "holds a token but other users of this machine may read it" ctl.err &&
    grep -q "chmod 600" ctl.err
expect_ctl "a world-readable config file with a token: exit 2, says why and how to fix it" $?
chmod 640 "$CONF"
ctl products list
[ $RC = 2 ] && grep -q "(mode 0640)" ctl.err
expect_ctl "a group-readable one too" $?
chmod 600 "$CONF"
IOTHUB_URL="https://127.0.0.1:$CLOSED" ctl products list
[ $RC = 3 ] && grep -q "^error: cannot reach https://127.0.0.1:$CLOSED" ctl.err
expect_ctl "IOTHUB_URL beats the file's url (an unreachable port: exit 3)" $?
IOTHUB_URL="https://127.0.0.1:$CLOSED" ctl products list --url "$BASE"
[ $RC = 0 ]
expect_ctl "--url beats IOTHUB_URL" $?
IOTHUB_TOKEN=iothub_wrong ctl products list
[ $RC = 1 ] && grep -q '^error: unauthorized: .*(HTTP 401)$' ctl.err
expect_ctl "IOTHUB_TOKEN beats the file's token (a bad one: exit 1, unauthorized (HTTP 401))" $?
IOTHUB_TOKEN=iothub_wrong ctl products list --token-file admin.token
[ $RC = 0 ]
expect_ctl "--token-file beats IOTHUB_TOKEN" $?
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout other-ca.key \
    -subj /CN=other-ca -days 1 -out other-ca.pem 2>/dev/null
IOTHUB_CACERT=other-ca.pem ctl products list
[ $RC = 4 ] && grep -q '^error: TLS: the server certificate of .* is not trusted' ctl.err
expect_ctl "IOTHUB_CACERT beats the file's cacert (another CA: exit 4)" $?
IOTHUB_CACERT=other-ca.pem ctl products list --cacert trust.pem
[ $RC = 0 ]
expect_ctl "--cacert beats IOTHUB_CACERT" $?
printf 'url = %s\ntoken_file = %s\ncacert = %s\n' "$BASE" "$T/admin.token" "$T/trust.pem" >other.conf
chmod 644 other.conf
ctl --config other.conf devices list --json
[ $RC = 0 ] && [ "$(jo '.devices | length')" = 3 ]
expect_ctl "--config FILE with token_file (world-readable is fine without a token)" $?
printf 'url = %s\ncolour = blue\n' "$BASE" >bad.conf
ctl --config bad.conf health
[ $RC = 2 ] && grep -q 'bad.conf:2: unknown key "colour"' ctl.err
expect_ctl "an unknown config key: exit 2, names the file, line and key" $?
ctl --config missing.conf health
[ $RC = 2 ] && grep -q 'missing.conf' ctl.err
expect_ctl "--config of a missing file: exit 2" $?
rm -f "$CONF"

# ---- exit codes ------------------------------------------------------------------------------
ctl products list --url "$BASE" --cacert trust.pem --token iothub_0000
[ $RC = 1 ] && grep -q '^error: unauthorized: .*(HTTP 401)$' ctl.err
expect_ctl "exit 1: a bad token, \"error: unauthorized: ... (HTTP 401)\"" $?
ctl frobnicate
rc1=$RC
ctl devices list --bogus "${A[@]}"
rc2=$RC
ctl devices show "${A[@]}"
rc3=$RC
ctl devices list --limit 0 "${A[@]}"
rc4=$RC
ctl devices list --reason x "${A[@]}"
[ $rc1 = 2 ] && [ $rc2 = 2 ] && [ $rc3 = 2 ] && [ $rc4 = 2 ] && [ $RC = 2 ] &&
    grep -q -- '--reason does not apply' ctl.err
expect_ctl "exit 2: unknown command, unknown option, missing ID, --limit 0, foreign option" $?
ctl products list --token-file admin.token --cacert trust.pem
[ $RC = 2 ] && grep -q 'no server URL' ctl.err
expect_ctl "exit 2: no URL from any source, says where to set it" $?
ctl products list --url "$BASE" --cacert trust.pem
[ $RC = 2 ] && grep -q 'no admin token' ctl.err
expect_ctl "exit 2: no token for a call that needs one" $?
ctl products list --url "https://127.0.0.1:$CLOSED" --cacert trust.pem --token-file admin.token
[ $RC = 3 ] && grep -q "^error: cannot reach https://127.0.0.1:$CLOSED" ctl.err
expect_ctl "exit 3: nothing listening on the port" $?
ctl health --url "https://no-such-host.invalid:8443"
[ $RC = 3 ] && grep -q '^error: cannot reach https://no-such-host.invalid:8443' ctl.err
expect_ctl "exit 3: a name that does not resolve" $?
ctl products list --url "$BASE" --token-file admin.token
[ $RC = 4 ] && grep -q 'not trusted' ctl.err && grep -q -- '--cacert' ctl.err
expect_ctl "exit 4: no --cacert against the hub's own chain; suggests --cacert" $?
ctl products list --url "$BASE" --token-file admin.token --insecure
[ $RC = 0 ] && grep -q '^warning: --insecure' ctl.err
expect_ctl "--insecure (explicit) skips verification and warns on stderr" $?
ctl products list --url "http://127.0.0.1:$API_PORT" --token-file admin.token
[ $RC = 2 ] && grep -q '^error: the server URL must be https://' ctl.err
expect_ctl "exit 2: a plain http:// URL is refused (the token would travel in clear)" $?

# ---- the admin token is never printed -------------------------------------------------------
! grep -qF "$ADMIN" "$ALL"
rc=$?
expect "the admin token appears in no output of iothubctl ($(grep -c '' "$ALL") lines checked)" $rc

finish
