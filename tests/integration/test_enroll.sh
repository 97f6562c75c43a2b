#!/usr/bin/env bash
# The benchmark helpers of tests/bench/ against a real iothubd: iothub-enroll provisions and
# activates devices and a service through the REST API (keys, certificates, devices.csv), and
# iothub-server-identity exports the very certificate and key the MQTT listener presents
# (the Mosquitto comparison of `./deploy/dev.sh bench` serves them).
. "$(dirname "$0")/api_lib.sh"

ENROLL=$BUILD/tests/bench/iothub-enroll
IDENTITY=$BUILD/tests/bench/iothub-server-identity
N=12

api_setup enroll
expect "iothubd init, then iothubd serve answers /healthz" $?

"$ENROLL" --url "$BASE" --token-file admin.token --ca trust.pem -n $N --out certs -c 4 \
    >enroll.out 2>enroll.err
rc=$?
[ $rc = 0 ] && [ "$(wc -l <certs/devices.csv)" = $((N + 1)) ] &&
    [ "$(wc -l <certs/ids.csv)" = $((N + 1)) ] && [ -s certs/service.pem ] &&
    grep -q "$N of $N devices activated" enroll.err
expect "iothub-enroll -n $N: exit 0, devices.csv and ids.csv with $N devices, service.pem" $?
[ "$(count "devices WHERE status = 'active'")" = $N ] &&
    [ "$(count "certificates WHERE revoked_at IS NULL")" -ge $((N + 1)) ]
expect "iothub-enroll: $N devices active in the database, each with a valid certificate" $?
[ "$(stat -c %a certs/dev-1.key)" = 600 ] && [ "$(stat -c %a certs/service.key)" = 600 ] &&
    ! grep -rq "$ADMIN" certs enroll.out enroll.err
expect "iothub-enroll: private keys are 0600 and the token is left nowhere" $?

id7=$(sed -n 's/^7,//p' certs/ids.csv)
cn7=$(openssl x509 -in certs/dev-7.pem -noout -subject -nameopt multiline | awk '/commonName/ {print $3}')
line7=$(sed -n 8p certs/devices.csv)
[ -n "$id7" ] && [ "$id7" = "$cn7" ] && [ "$line7" = "$T/certs/dev-7.pem,$T/certs/dev-7.key" ] &&
    openssl verify -CAfile root.pem -untrusted issuing.pem -purpose sslclient certs/dev-7.pem >/dev/null &&
    [ "$(openssl x509 -in certs/dev-7.pem -noout -pubkey | openssl sha256)" = \
      "$(openssl pkey -in certs/dev-7.key -pubout | openssl sha256)" ]
expect "iothub-enroll: dev-7.pem is CN=<its id in ids.csv>, chains to the CA, matches dev-7.key" $?

timeout 10 mosquitto_pub "${MQ[@]}" --cert certs/dev-3.pem --key certs/dev-3.key \
    -t "devices/$(sed -n 's/^3,//p' certs/ids.csv)/telemetry" -m hello -q 1 >pub.log 2>&1
expect "an enrolled device publishes over mutual TLS with its certificate" $?

"$ENROLL" --url "$BASE" --token-file admin.token -n 2 --out x >usage.out 2>&1
rc=$?
[ $rc = 2 ] && grep -q "usage: iothub-enroll" usage.out
expect "iothub-enroll without --ca: exit 2 and the usage" $?
echo "iothub_0000000000000000_wrongwrongwrongwrongwrongwrongwrongwrong" >bad.token
"$ENROLL" --url "$BASE" --token-file bad.token --ca trust.pem -n 2 --out bad >bad.out 2>&1
rc=$?
[ $rc = 1 ] && grep -q "POST /v1/products: HTTP 401" bad.out && ! grep -q wrongwrong bad.out
expect "iothub-enroll with a wrong token: exit 1, the refused call named, the token not shown" $?

"$IDENTITY" iothub.conf server.pem server.key >identity.out 2>&1
rc=$?
served=$(openssl s_client -connect "127.0.0.1:$MQTT_PORT" -cert certs/dev-1.pem \
    -key certs/dev-1.key -CAfile trust.pem </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256)
[ $rc = 0 ] && [ "$(stat -c %a server.key)" = 600 ] && [ -n "$served" ] &&
    [ "$(openssl x509 -in server.pem -noout -fingerprint -sha256)" = "$served" ] &&
    [ "$(openssl x509 -in server.pem -noout -pubkey | openssl sha256)" = \
      "$(openssl pkey -in server.key -pubout | openssl sha256)" ] &&
    [ "$(grep -c 'BEGIN CERTIFICATE' server.pem)" = 2 ]
expect "iothub-server-identity: the certificate the MQTT listener presents (+ issuing CA), its key 0600" $?

stop_server
expect "iothubd stops cleanly" $?
finish
