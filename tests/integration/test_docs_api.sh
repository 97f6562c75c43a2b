#!/usr/bin/env bash
# Runs the shell examples of docs/api.md as written, in a layout like ./deploy/dev.sh run's
# (build/iothubd, .dev/iothub.conf, .dev/admin.token); only the API port differs.
. "$(dirname "$0")/lib.sh"
cd "$T"

URL=$(new_db docs)
mkdir -p build .dev
ln -s "$IOTHUBD" build/iothubd
write_conf .dev/iothub.conf "$URL"
"$IOTHUBD" -c .dev/iothub.conf init --token-file .dev/admin.token >/dev/null 2>&1
expect "init for the docs examples" $?
start_server .dev/iothub.conf serve.log
expect "server starts" $?

# The ```sh blocks, in order, with the dev port replaced by this test's port.
awk '/^```sh$/ {on = 1; next} /^```$/ {on = 0} on' "$ROOT/docs/api.md" |
    sed "s#https://localhost:8443#https://localhost:$API_PORT#" >examples.sh
[ "$(grep -c . examples.sh)" -gt 20 ]
expect "docs/api.md has shell examples" $?

bash -eo pipefail examples.sh >examples.out 2>examples.err
rc=$?
[ $rc = 0 ]
expect "every example in docs/api.md runs without error" $?
[ $rc = 0 ] || { echo "--- stdout"; cat examples.out; echo "--- stderr"; cat examples.err; } >&2
grep -q '^device.pem: OK$' examples.out
expect "the activated certificate verifies with the served chain and CRL" $?
grep -q '^est.pem: OK$' examples.out
expect "the EST example enrolls a device whose certificate verifies against cacerts" $?
grep -q '"provisioned"' examples.out
expect "product-claim provisioning answers status provisioned" $?
grep -q 'Key Compromise' examples.out && grep -q 'revoked, as expected' examples.out
expect "after the revocation the CRL lists it and verification fails" $?
grep -q '^device.pem: revoked' examples.out && grep -q 'Reason: keyCompromise' examples.out
expect "openssl ocsp at the certificate's AIA URL says revoked, keyCompromise" $?
grep -q '"role": "operator"' examples.out
expect "a token is created" $?
grep -q 'device.activate' examples.out && grep -q 'device.revoke' examples.out
expect "the audit trail shows activation and revocation" $?
grep -q 'subject=O = iothub, CN = iothub Root CA' examples.out
expect "the p7b chain prints" $?

stop_server
finish
