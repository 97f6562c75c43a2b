#!/usr/bin/env bash
# A root the hub never holds (issue 15, items 1 and 4), with real openssl on the "maker's
# machine": init --external-root writes CSRs and the openssl commands, the maker's root
# signs them, `ca import` refuses wrong key / not a CA / expired / wrong chain / missing
# name and installs the right ones (root without key), serve works, a device activates
# (client certificate with SAN URI urn:uuid:<id>) and connects over mTLS trusting only the
# maker's root, root CRLs are imported (newer only) and served, a rotation goes through
# the maker again, and the agent refreshes its trust bundle from GET /v1/ca.
. "$(dirname "$0")/api_lib.sh"

AGENT=$BUILD/iothub-device
URL=$(new_db ext)
write_conf iothub.conf "$URL"
mkdir maker

# ---- the maker's root (openssl only, its own machine) -----------------------------------------
# mkroot DIR CN: DIR/root.key, DIR/root.pem and an `openssl ca` setup for its CRLs.
mkroot() {
    mkdir -p "$1" && touch "$1/index.txt" && echo 1000 >"$1/crlnumber" && echo 01 >"$1/serial" &&
        cat >"$1/ca.cnf" <<CNF
[ca]
default_ca = root
[root]
dir = $PWD/$1
database = \$dir/index.txt
crlnumber = \$dir/crlnumber
serial = \$dir/serial
new_certs_dir = \$dir
certificate = \$dir/root.pem
private_key = \$dir/root.key
default_md = sha256
default_crl_days = 30
policy = any
[any]
commonName = supplied
CNF
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1/root.key" \
        -subj "/O=Maker Inc/CN=$2" -days 3650 -sha256 \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out "$1/root.pem" 2>/dev/null
}
mkroot maker "Maker Root CA" && mkroot other "Someone Else's Root"
expect "the maker's root is made with openssl" $?

# ---- step 1: keys and CSRs ----------------------------------------------------------------------
"$IOTHUBD" -c iothub.conf init --external-root --csr-dir csr --token-file admin.token >init.out 2>init.err
expect "iothubd init --external-root succeeds" $?
openssl req -in csr/issuing-ca.csr -noout -verify 2>&1 | grep -q 'verify OK' &&
    openssl req -in csr/server.csr -noout -verify 2>&1 | grep -q 'verify OK' &&
    grep -q 'CA:TRUE, pathlen:0' csr/issuing-ca.ext && grep -q 'keyCertSign, cRLSign' csr/issuing-ca.ext &&
    grep -q 'subjectAltName = DNS:localhost, IP:127.0.0.1' csr/server.ext &&
    grep -q 'extendedKeyUsage = serverAuth' csr/server.ext && [ -s admin.token ]
expect "issuing-ca.csr and server.csr (PEM PKCS#10, signatures verify), the extension files and the admin token" $?
[ "$(count "pending_keys WHERE key_sealed IS NOT NULL")" = 2 ] && [ "$(count cas)" = 0 ] &&
    ! grep -q 'PRIVATE KEY' csr/* init.out
expect "two sealed pending keys in the database, no CA yet, no private key on disk" $?
grep -q '^  openssl x509 -req -in issuing-ca.csr' init.out && grep -q '^  iothubd ca import --root' init.out
expect "init prints the maker's openssl commands and the import command" $?
cp csr/issuing-ca.csr csr/first-issuing.csr
"$IOTHUBD" -c iothub.conf init --external-root --csr-dir csr2 --token-file admin2.token >init2.out 2>&1 &&
    cmp -s csr/issuing-ca.csr csr2/issuing-ca.csr && [ ! -e admin2.token ]
expect "init --external-root again rewrites the same CSRs (keys kept) and no second token" $?
"$IOTHUBD" -c iothub.conf init --token-file admin3.token >plain.out 2>plain.err
[ $? != 0 ] && grep -q 'run `iothubd ca import' plain.err && [ "$(count cas)" = 0 ]
expect "a plain init refuses while keys wait for the import (no internal root made)" $?
"$IOTHUBD" -c iothub.conf serve >noserve.out 2>&1
[ $? != 0 ] && grep -q 'no certificate authority' noserve.out
expect "serve refuses before the import" $?

(umask 077; printf 'the passphrase after a rekey\n' >new.key)
"$IOTHUBD" -c iothub.conf rekey --new-master-key-file new.key >rekey.out 2>rekey.err &&
    grep -q '^2 sealed key(s) re-encrypted' rekey.out
expect "iothubd rekey re-seals the pending keys too" $?
export IOTHUB_MASTER_KEY="the passphrase after a rekey"

# ---- step 2: the maker signs, with the printed commands ---------------------------------------
cp csr/*.csr csr/*.ext maker/
(cd maker && grep '^  openssl ' ../init.out | sed 's/^  //' >sign.sh && sh sign.sh 2>/dev/null)
openssl verify -x509_strict -CAfile maker/root.pem maker/issuing.pem >/dev/null 2>&1 &&
    openssl verify -x509_strict -purpose sslserver -CAfile maker/root.pem maker/server.pem >/dev/null 2>&1
expect "the printed openssl commands sign both CSRs under the maker's root" $?
openssl ca -config maker/ca.cnf -gencrl -out maker/root1.crl 2>/dev/null &&
    openssl ca -config maker/ca.cnf -gencrl -out maker/root2.crl 2>/dev/null
expect "the maker's root publishes two CRLs (openssl ca -gencrl)" $?

# ---- refusals (nothing changes) ----------------------------------------------------------------
# refused NAME PATTERN ARGS...: ca import fails, says PATTERN, and installs nothing.
refused() {
    local name=$1 pattern=$2
    shift 2
    "$IOTHUBD" -c iothub.conf ca import "$@" >refused.out 2>refused.err
    local rc=$?
    if [ $rc != 0 ] && grep -q -- "$pattern" refused.err && [ "$(count cas)" = 0 ] &&
        [ "$(count pending_keys)" = 2 ]; then
        ok "$name"
    else
        not_ok "$name (rc $rc: $(cat refused.err))"
    fi
}
M=maker
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout stranger.key \
    -subj "/CN=stranger" -out stranger.csr 2>/dev/null
openssl x509 -req -in stranger.csr -CA $M/root.pem -CAkey $M/root.key -CAcreateserial -days 30 \
    -extfile $M/issuing-ca.ext -out wrongkey.pem 2>/dev/null
refused "an issuing CA for another key is refused" 'does not certify the key of issuing-ca.csr' \
    --root $M/root.pem --issuing wrongkey.pem --server $M/server.pem
openssl x509 -req -in $M/issuing-ca.csr -CA $M/root.pem -CAkey $M/root.key -CAcreateserial -days 30 \
    -extfile $M/server.ext -out notca.pem 2>/dev/null
refused "an issuing certificate that is not a CA is refused" 'is not a CA certificate' \
    --root $M/root.pem --issuing notca.pem --server $M/server.pem
printf 'basicConstraints = critical, CA:TRUE, pathlen:0\n' >noku.ext
openssl x509 -req -in $M/issuing-ca.csr -CA $M/root.pem -CAkey $M/root.key -CAcreateserial -days 30 \
    -extfile noku.ext -out noku.pem 2>/dev/null
refused "an issuing CA without keyUsage keyCertSign is refused" 'lacks keyUsage keyCertSign' \
    --root $M/root.pem --issuing noku.pem --server $M/server.pem
cp $M/issuing-ca.csr $M/issuing-ca.ext other/
openssl ca -config $M/ca.cnf -batch -notext -startdate 20200101000000Z -enddate 20210101000000Z \
    -cert $M/root.pem -keyfile $M/root.key -extfile $M/issuing-ca.ext -in $M/issuing-ca.csr \
    -out expired.pem >/dev/null 2>&1
refused "an expired issuing CA is refused" 'the issuing CA certificate has expired (notAfter 2021-01-01' \
    --root $M/root.pem --issuing expired.pem --server $M/server.pem
openssl x509 -req -in $M/issuing-ca.csr -CA other/root.pem -CAkey other/root.key -CAcreateserial \
    -days 30 -extfile $M/issuing-ca.ext -out otherchain.pem 2>/dev/null
refused "an issuing CA signed by another root is refused" 'is not signed by the root' \
    --root $M/root.pem --issuing otherchain.pem --server $M/server.pem
refused "a root that did not sign the issuing CA is refused" 'is not signed by the root' \
    --root other/root.pem --issuing $M/issuing.pem --server $M/server.pem
openssl x509 -req -in $M/server.csr -CA other/root.pem -CAkey other/root.key -CAcreateserial \
    -days 30 -extfile $M/server.ext -out otherserver.pem 2>/dev/null
refused "a server certificate from another root is refused" 'the server certificate is not signed by' \
    --root $M/root.pem --issuing $M/issuing.pem --server otherserver.pem
sed 's/subjectAltName = .*/subjectAltName = DNS:localhost/' $M/server.ext >nosan.ext
openssl x509 -req -in $M/server.csr -CA $M/root.pem -CAkey $M/root.key -CAcreateserial -days 30 \
    -extfile nosan.ext -out nosan.pem 2>/dev/null
refused "a server certificate that does not name every hostname is refused" 'does not name "127.0.0.1"' \
    --root $M/root.pem --issuing $M/issuing.pem --server nosan.pem
sed '/extendedKeyUsage/d' $M/server.ext >noeku.ext
openssl x509 -req -in $M/server.csr -CA $M/root.pem -CAkey $M/root.key -CAcreateserial -days 30 \
    -extfile noeku.ext -out noeku.pem 2>/dev/null
refused "a server certificate without serverAuth is refused" 'lacks extendedKeyUsage serverAuth' \
    --root $M/root.pem --issuing $M/issuing.pem --server noeku.pem
refused "a root CRL signed by another root is refused (with the rest)" 'signature does not verify\|not issued by the root' \
    --root $M/root.pem --issuing $M/issuing.pem --server $M/server.pem --crl <(openssl ca -config other/ca.cnf -gencrl 2>/dev/null)

# ---- the import ------------------------------------------------------------------------------------
"$IOTHUBD" -c iothub.conf ca import --root $M/root.pem --issuing $M/issuing.pem --server $M/server.pem \
    --crl $M/root1.crl >import.out 2>import.err
expect "ca import installs root, issuing CA and server certificate with the root CRL" $?
[ "$(count "cas WHERE role = 'root' AND key_sealed IS NULL AND key_uri IS NULL")" = 1 ] &&
    [ "$(count "cas WHERE role = 'issuing' AND active AND key_sealed IS NOT NULL")" = 1 ] &&
    [ "$(count pending_keys)" = 0 ] && [ "$(count "certificates WHERE kind = 'server'")" = 1 ]
expect "the root is stored without a key; the issuing key moved out of pending_keys" $?
[ "$(sql "$URL" "SELECT details->>'root_installed' || ' ' || (details->>'root_crl_number') FROM audit_log WHERE action = 'ca.import'")" = "true 4096" ]
expect "the import is audited (ca.import: root installed, root CRL number)" $?
"$IOTHUBD" -c iothub.conf ca chain >trust.pem 2>/dev/null
awk '/BEGIN/ {n++} n == 1 {print > "issuing.pem"} n == 2 {print > "root.pem"}' trust.pem
cmp -s <(openssl x509 -in root.pem -outform DER) <(openssl x509 -in $M/root.pem -outform DER) &&
    cmp -s <(openssl x509 -in issuing.pem -outform DER) <(openssl x509 -in $M/issuing.pem -outform DER)
expect "iothubd ca chain prints the imported issuing CA and the maker's root" $?
"$IOTHUBD" -c iothub.conf ca import --root $M/root.pem --issuing $M/issuing.pem --server $M/server.pem \
    >again.out 2>again.err
[ $? != 0 ] && grep -q 'no keys wait for certificates' again.err
expect "importing again is refused: no pending keys" $?
"$IOTHUBD" -c iothub.conf ca import --root other/root.pem --crl $M/root2.crl >swap.out 2>swap.err
[ $? != 0 ] && grep -q 'is not the root installed in this hub' swap.err
expect "another root is refused once one is installed" $?

"$IOTHUBD" -c iothub.conf init --token-file admin3.token >plain2.out 2>plain2.err &&
    grep -q 'already initialised' plain2.out && [ "$(count cas)" = 2 ]
expect "a plain init after the import changes nothing (it works with a keyless root)" $?
start_server iothub.conf serve.log
expect "iothubd serve starts with the imported certificates" $?
call GET /v1/ca
cmp -s body.out trust.pem
expect "GET /v1/ca serves the trust bundle: issuing CA + maker's root (as ca chain)" $?
echo | timeout 10 openssl s_client -connect "127.0.0.1:$API_PORT" -CAfile $M/root.pem \
    -verify_return_error -verify_hostname localhost >sclient.out 2>&1 &&
    grep -q 'Verify return code: 0 (ok)' sclient.out
expect "the REST API's server certificate verifies with only the maker's root" $?

# ---- a device: activation, SAN URI, mTLS -----------------------------------------------------------
ADMIN=$(cat admin.token)
bearer "$ADMIN" POST /v1/products '{"name":"Ext sensor"}'
PK=$(jf product_key)
bearer "$ADMIN" POST /v1/devices "{\"product_key\":\"$PK\",\"serial_number\":\"SN-ext-1\"}"
DEV=$(jf device_id) SECRET=$(jf device_secret)
activate_as device "$DEV" "$SECRET" dev
expect "a device activates under the imported issuing CA" $?
openssl verify -x509_strict -purpose sslclient -CAfile $M/root.pem -untrusted issuing.pem dev.pem >/dev/null 2>&1
expect "openssl verify -purpose sslclient accepts the device certificate under the maker's root" $?
openssl x509 -in dev.pem -noout -ext subjectAltName 2>/dev/null | grep -qx " *URI:urn:uuid:$DEV"
expect "the device certificate has subjectAltName URI:urn:uuid:<device id>" $?
MQ=(--cafile "$M/root.pem" -h 127.0.0.1 -p "$MQTT_PORT")
pub dev -t "devices/$DEV/telemetry" -m hello -q 1
expect "the device publishes over mTLS (mosquitto_pub trusting only the maker's root)" $?

# ---- CRLs --------------------------------------------------------------------------------------------
call GET "/v1/crl?ca=root"
[ "$STATUS" = 200 ] && cmp -s body.out <(openssl crl -in $M/root1.crl -outform DER)
expect "GET /v1/crl?ca=root serves the imported root CRL" $?
fetch_crl issuing_crl && openssl crl -in issuing_crl.pem -CAfile trust.pem -noout -verify 2>&1 | grep -q 'verify OK'
expect "the hub publishes the issuing CA's CRL itself (GET /v1/crl)" $?
"$IOTHUBD" -c iothub.conf ca import --crl $M/root1.crl >crlold.out 2>crlold.err
[ $? != 0 ] && grep -q 'not above the last one imported' crlold.err
expect "a root CRL whose cRLNumber is not newer is refused" $?
"$IOTHUBD" -c iothub.conf ca import --crl $M/root2.crl >crl2.out 2>crl2.err &&
    [ "$(count "crls WHERE ca_id = (SELECT id FROM cas WHERE role = 'root')")" = 2 ]
expect "a newer root CRL is imported alone (ca import --crl)" $?
sleep 1
call GET "/v1/crl?ca=root&format=pem"
[ "$STATUS" = 200 ] && [ "$(crl_number body.out)" = $((0x1001)) ]
expect "GET /v1/crl?ca=root serves the newer root CRL" $?

# ---- the agent follows the hub's trust bundle -----------------------------------------------------------
bearer "$ADMIN" POST /v1/devices "{\"product_key\":\"$PK\",\"serial_number\":\"SN-ext-agent\"}"
ADEV=$(jf device_id)
(umask 077; printf '%s\n' "$(jf device_secret)" >agent.secret)
timeout 60 "$AGENT" enroll --url "$BASE" --cacert $M/root.pem --mqtt "127.0.0.1:$MQTT_PORT" \
    --device-id "$ADEV" --secret-file agent.secret --dir adev 2>enroll.err
expect "iothub-device enrolls trusting only the maker's root" $?
cp $M/root.pem adev/chain.pem # an old bundle: the root only
echo hello | timeout 30 "$AGENT" run --dir adev --stdin --once 2>run1.err &&
    cmp -s adev/chain.pem trust.pem && grep -q 'trust bundle: .* updated from the hub' run1.err
expect "iothub-device run replaces an outdated chain.pem with GET /v1/ca (logged)" $?

# ---- rotation needs the maker again ----------------------------------------------------------------
"$IOTHUBD" -c iothub.conf ca rotate >rot.out 2>rot.err
[ $? != 0 ] && grep -q 'the root is external' rot.err
expect "ca rotate refuses under an external root and says what to do" $?
"$IOTHUBD" -c iothub.conf ca rotate --external --csr-dir rot >rotx.out 2>rotx.err &&
    [ "$(count pending_keys)" = 2 ] && ! cmp -s rot/issuing-ca.csr csr/first-issuing.csr
expect "ca rotate --external writes new CSRs" $?
cp rot/*.csr rot/*.ext maker/
(cd maker && sh sign.sh 2>/dev/null)
"$IOTHUBD" -c iothub.conf ca import --issuing $M/issuing.pem --server $M/server.pem >rimp.out 2>rimp.err &&
    [ "$(count "cas WHERE role = 'issuing' AND NOT active")" = 1 ]
expect "ca import of the re-signed pair retires the old issuing CA (root given once is enough)" $?
stop_server
start_server iothub.conf serve2.log
expect "serve restarts on the new issuing CA" $?
pub dev -t "devices/$DEV/telemetry" -m still-here -q 1
expect "a device of the retired issuing CA still connects" $?
echo hello2 | timeout 30 "$AGENT" run --dir adev --stdin --once 2>run2.err &&
    "$IOTHUBD" -c iothub.conf ca chain >trust2.pem 2>/dev/null && cmp -s adev/chain.pem trust2.pem &&
    ! cmp -s trust.pem trust2.pem
expect "the agent picks up the hub's changed chain on its next start" $?
server_alive
expect "the server is still alive" $?
finish
