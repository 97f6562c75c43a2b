#!/usr/bin/env bash
# iothubd init / migrate / serve lifecycle against a real PostgreSQL.
. "$(dirname "$0")/lib.sh"
cd "$T"

URL=$(new_db main)
write_conf iothub.conf "$URL"

"$IOTHUBD" -c iothub.conf init --token-file admin.token >init1.out 2>init1.err
expect "first init succeeds" $?
grep -q "bootstrap admin token written to admin.token" init1.out
expect "first init reports the token file" $?
[ "$(stat -c %a admin.token)" = 600 ]
expect "token file has mode 0600" $?
grep -Eq '^iothub_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$' admin.token
expect "token has the documented format" $?
TOKEN=$(cat admin.token)
! grep -rqF "$TOKEN" init1.out init1.err
expect "token is not printed to stdout or the log" $?

[ "$(sql "$URL" "SELECT count(*) FROM cas WHERE active")" = 2 ]
expect "root and issuing CA are stored" $?
[ "$(sql "$URL" "SELECT count(*) FROM certificates WHERE kind = 'server'")" = 1 ]
expect "server certificate is stored" $?
[ "$(sql "$URL" "SELECT count(*) FROM crls WHERE base_number IS NULL")" = 2 ] &&
    [ "$(sql "$URL" "SELECT count(DISTINCT ca_id) FROM crls WHERE base_number IS NOT NULL")" = 2 ]
expect "a first CRL per CA is stored, with its (empty) delta" $?
[ "$(sql "$URL" "SELECT count(*) FROM api_tokens WHERE role = 'admin'")" = 1 ]
expect "one admin token is stored" $?
SECRET=${TOKEN:24}
[ "$(sql "$URL" "SELECT count(*) FROM api_tokens WHERE secret_hash = sha256(convert_to('$SECRET', 'UTF8'))")" = 1 ]
expect "token secret is stored as its SHA-256 only" $?
[ "$(sql "$URL" "SELECT count(*) FROM audit_log WHERE action = 'init'")" = 1 ]
expect "init is audited" $?

# Keys at rest: sealed blobs, not DER private keys.
sql "$URL" "SELECT encode(key_sealed, 'hex') FROM cas UNION ALL SELECT encode(key_sealed, 'hex') FROM certificates WHERE kind = 'server'" >sealed.hex
[ "$(grep -c '^48554253' sealed.hex)" = 3 ]
expect "every private key is a sealed HUBS blob" $?
bad=0
while read -r hex; do
    printf '%s' "$hex" | perl -ne 'print pack("H*", $_)' >blob.der
    openssl pkey -inform DER -in blob.der -noout 2>/dev/null && bad=1
done <sealed.hex
[ $bad = 0 ]
expect "no sealed blob parses as a private key" $?
! grep -qi "$(printf '%s' "$IOTHUB_MASTER_KEY" | od -An -tx1 | tr -d ' \n')" sealed.hex
expect "sealed blobs do not contain the passphrase" $?

# Idempotence.
sum_before=$(sql "$URL" "SELECT md5(string_agg(serial, ',' ORDER BY serial)) FROM (SELECT serial FROM cas UNION ALL SELECT serial FROM certificates) s")
"$IOTHUBD" -c iothub.conf init --token-file admin.token >init2.out 2>init2.err
expect "second init succeeds" $?
grep -q "already initialised: nothing changed (admin token file admin.token kept)" init2.out
expect "second init says nothing changed and the token file is kept" $?
[ "$(cat admin.token)" = "$TOKEN" ]
expect "second init keeps the token file" $?
sum_after=$(sql "$URL" "SELECT md5(string_agg(serial, ',' ORDER BY serial)) FROM (SELECT serial FROM cas UNION ALL SELECT serial FROM certificates) s")
[ "$sum_before" = "$sum_after" ] && [ "$(sql "$URL" "SELECT count(*) FROM crls")" = 4 ] &&
    [ "$(sql "$URL" "SELECT count(*) FROM api_tokens")" = 1 ]
expect "second init changes nothing in the database" $?

"$IOTHUBD" -c iothub.conf migrate >migrate.out 2>&1
expect "migrate on a current schema succeeds" $?
grep -q "up to date" migrate.out
expect "migrate says the schema is up to date" $?

# Wrong and missing passphrase: a clear message, exit 1, never a crash.
IOTHUB_MASTER_KEY="a different passphrase entirely" "$IOTHUBD" -c iothub.conf init --token-file x.token >wrong.out 2>wrong.err
rc=$?
[ $rc = 1 ] && grep -q "master passphrase does not open the stored CA keys" wrong.err
expect "init with a wrong passphrase fails with a clear message" $?
[ ! -e x.token ]
expect "init with a wrong passphrase writes no token file" $?
IOTHUB_MASTER_KEY="a different passphrase entirely" timeout 20 "$IOTHUBD" -c iothub.conf serve >serve-wrong.out 2>&1
rc=$?
[ $rc = 1 ] && grep -q "master passphrase does not open" serve-wrong.out
expect "serve with a wrong passphrase stops with a clear message" $?
env -u IOTHUB_MASTER_KEY "$IOTHUBD" -c iothub.conf serve >serve-nokey.out 2>&1
rc=$?
[ $rc = 1 ] && grep -q "no master passphrase" serve-nokey.out
expect "serve without a passphrase stops with a clear message" $?

# Passphrase from a file.
(umask 077; echo "$IOTHUB_MASTER_KEY" >master.key)
write_conf file.conf "$URL" "master_key_file = $T/master.key"
env -u IOTHUB_MASTER_KEY "$IOTHUBD" -c file.conf init --token-file admin.token >file.out 2>&1
expect "master_key_file opens the keys" $?

# Configuration errors name the key and the line.
write_conf bad.conf "$URL" "workers = many"
"$IOTHUBD" -c bad.conf migrate >bad.out 2>&1
rc=$?
[ $rc = 1 ] && grep -q "bad.conf:5: bad value for workers" bad.out
expect "a bad value stops the daemon naming file, line and key" $?
IOTHUB_LOG_FORMAT=yaml "$IOTHUBD" -c iothub.conf migrate >bad2.out 2>&1
rc=$?
[ $rc = 1 ] && grep -q "IOTHUB_LOG_FORMAT: bad value for log_format" bad2.out
expect "a bad environment override names the variable and key" $?
"$IOTHUBD" -c iothub.conf frobnicate >bad3.out 2>&1
[ $? = 2 ] && grep -q "unknown command" bad3.out
expect "an unknown command is refused with usage" $?
"$IOTHUBD" --version | grep -Eq '^iothubd [0-9]+\.[0-9]+\.[0-9]+$'
expect "--version prints the version" $?

# serve: starts, reloads on SIGHUP, stops on SIGTERM.
IOTHUB_LOG_FORMAT=json start_server iothub.conf serve.log
pid=$SERVER_PID
grep -q '"msg":"iothubd .* serving' serve.log
expect "serve starts, answers /healthz and logs JSON lines" $?
kill -HUP $pid
for _ in $(seq 30); do grep -q 'SIGHUP: configuration reloaded' serve.log && break; sleep 0.1; done
grep -q 'SIGHUP: configuration reloaded' serve.log && kill -0 $pid
expect "SIGHUP reloads without stopping" $?
stop_server
rc=$?
[ $rc = 0 ] && grep -q 'iothubd stopped' serve.log
expect "SIGTERM stops serve gracefully with status 0" $?
python3 - serve.log <<'PY'
import json, sys
for line in open(sys.argv[1]):
    json.loads(line)
PY
expect "every JSON log line parses" $?

# serve on an empty database says what to do.
URL2=$(new_db empty)
write_conf empty.conf "$URL2"
"$IOTHUBD" -c empty.conf serve >empty.out 2>&1
[ $? = 1 ] && grep -q "run \`iothubd migrate\`" empty.out
expect "serve on an unmigrated database says to migrate" $?

# Two concurrent inits on a fresh database create exactly one CA pair.
URL3=$(new_db race)
write_conf race.conf "$URL3"
"$IOTHUBD" -c race.conf init --token-file race1.token >race1.out 2>&1 &
p1=$!
"$IOTHUBD" -c race.conf init --token-file race2.token >race2.out 2>&1 &
p2=$!
wait $p1; r1=$?
wait $p2; r2=$?
[ $r1 = 0 ] && [ $r2 = 0 ] && [ "$(sql "$URL3" "SELECT count(*) FROM cas")" = 2 ] &&
    [ "$(sql "$URL3" "SELECT count(*) FROM api_tokens")" = 1 ] &&
    [ "$(sql "$URL3" "SELECT count(*) FROM certificates")" = 1 ]
expect "concurrent inits create one root, one issuing CA, one server cert, one token" $?
[ "$(ls race1.token race2.token 2>/dev/null | wc -l)" = 1 ]
expect "exactly one of the concurrent inits wrote a token file" $?

finish
