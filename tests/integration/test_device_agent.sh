#!/usr/bin/env bash
# iothub-device (the reference device agent) against the real iothubd, and the renewal
# endpoint it uses (POST /v1/devices/{id}/renew, authenticated by the client certificate):
# enroll (key on the device, mode 0600, no secret stored), status, telemetry from stdin seen
# by a service subscriber, a command from the REST API run by the handler and acknowledged,
# renewal (new serial, old one superseded, publishing goes on), server pinning over HTTPS and
# MQTT, revocation dropping the agent's connection, and enroll with a wrong secret. Also: one
# agent per state directory (flock), handlers without the agent's descriptors and killed with
# their background jobs on timeout, invalid command names rejected, and a renewal whose answer
# was lost completed by the next run with the same key.
. "$(dirname "$0")/api_lib.sh"

AGENT=$BUILD/iothub-device
api_setup device_agent
expect "iothubd init, then iothubd serve answers /healthz" $?

bearer "$ADMIN" POST /v1/products '{"name":"Agent sensor"}'
PK=$(jf product_key)
bearer "$ADMIN" POST /v1/tokens '{"name":"agent-operator","role":"operator"}'
OPERATOR=$(jf token)

# provision NAME: a provisioned device; ID[NAME], its secret in NAME.secret (mode 0600).
declare -A ID
provision() {
    bearer "$ADMIN" POST /v1/devices "{\"product_key\":\"$PK\",\"serial_number\":\"SN-$1\"}"
    [ "$STATUS" = 201 ] || return 1
    ID[$1]=$(jf device_id)
    (umask 077; printf '%s\n' "$(jf device_secret)" >"$1.secret")
}
provision sensor && provision curly && provision pinned
expect "three devices provisioned with the admin token" $?

bearer "$ADMIN" POST /v1/services '{"name":"agent-reader","publish":["devices/+/commands/#"],"subscribe":["devices/+/telemetry","devices/+/acks/#"]}'
SVC=$(jf service_id) SVCSEC=$(jf service_secret)
activate_as service "$SVC" "$SVCSEC" svc
expect "a service subscribing to telemetry and acks is activated (mosquitto_sub identity)" $?
# A second identity publishes raw commands: the broker would take over the subscriber's
# session if both used the same certificate.
bearer "$ADMIN" POST /v1/services '{"name":"agent-commander","publish":["devices/+/commands/#"],"subscribe":[]}'
activate_as service "$(jf service_id)" "$(jf service_secret)" cmdsvc
expect "a service allowed to publish on devices/+/commands/# is activated (mosquitto_pub identity)" $?

# ---- helpers ---------------------------------------------------------------------------------
SUB_SECONDS=30
msgs() { grep -v -e '^Client ' -e '^Subscribed' "$1"; }
AGENT_PID=
# agent_start LOG ARGS...: `iothub-device run` in the background reading the FIFO feed.fifo
# (kept open by fd 3); sets AGENT_PID.
agent_start() {
    local log=$1
    shift
    [ -p feed.fifo ] || mkfifo feed.fifo
    exec 3<>feed.fifo
    "$AGENT" run "$@" <feed.fifo 2>"$log" &
    AGENT_PID=$!
}
agent_stop() {
    [ -n "$AGENT_PID" ] || return 0
    kill -TERM "$AGENT_PID" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$AGENT_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$AGENT_PID" 2>/dev/null
    wait "$AGENT_PID"
    local rc=$?
    AGENT_PID=
    exec 3>&-
    return $rc
}
# wait_log FILE PATTERN [N] [SECONDS]: waits until PATTERN appears N times in FILE.
wait_log() {
    local n=${3:-1} limit=$((${4:-15} * 10))
    for _ in $(seq "$limit"); do
        [ "$(grep -c -E -- "$2" "$1" 2>/dev/null)" -ge "$n" ] && return 0
        sleep 0.1
    done
    return 1
}
trap 'agent_stop >/dev/null 2>&1; kill_sub >/dev/null 2>&1; stop_server >/dev/null 2>&1' EXIT

S=${ID[sensor]}
enroll() { timeout 60 "$AGENT" enroll --url "$BASE" --cacert trust.pem --mqtt "127.0.0.1:$MQTT_PORT" "$@"; }

# ---- enroll ----------------------------------------------------------------------------------
printf 'not-the-secret\n' >wrong.secret
enroll --device-id "$S" --secret-file wrong.secret --dir wrongdir 2>enroll_wrong.err
rc=$?
[ $rc != 0 ] && grep -q 'activation refused by the server: HTTP 401 unauthorized: wrong credentials' enroll_wrong.err &&
    [ ! -e wrongdir/key.pem ] && [ ! -e wrongdir/state ]
expect "enroll with a wrong secret exits $rc and says the server refused the credentials; nothing stored" $?

enroll --device-id "$S" --secret-file sensor.secret --dir dev1 2>enroll.err
expect "iothub-device enroll with the device secret file succeeds" $?
[ "$(stat -c %a dev1/key.pem)" = 600 ] && [ "$(stat -c %a dev1)" = 700 ] &&
    openssl pkey -in dev1/key.pem -noout 2>/dev/null
expect "the private key is PEM with mode 0600 in a 0700 directory" $?
! grep -rqF "$(cat sensor.secret)" dev1 && ! grep -qF "$(cat sensor.secret)" enroll.err
expect "the device secret is neither in the state directory nor in the log" $?
openssl verify -CAfile dev1/chain.pem dev1/cert.pem >/dev/null 2>&1 &&
    [ "$(openssl x509 -in dev1/cert.pem -noout -pubkey)" = "$(openssl pkey -in dev1/key.pem -pubout)" ] &&
    [ ! -e dev1/renew.key ] && [ ! -e dev1/renew.pem ]
expect "the stored certificate chains to the stored CA chain and matches the key; nothing staged is left" $?
call GET "/v1/devices/$S" -H "Authorization: Bearer $ADMIN"
[ "$(jf status)" = active ]
expect "the server shows the device active after enroll" $?

IOTHUB_DEVICE_SECRET=$(cat sensor.secret) enroll --device-id "$S" --dir dev1 2>reenroll.err
rc=$?
[ $rc != 0 ] && grep -q "already enrolled as device $S; use --force" reenroll.err
expect "enroll again on an enrolled directory refuses without --force (exit $rc)" $?

# ---- status ----------------------------------------------------------------------------------
"$AGENT" status --dir dev1 >status.out 2>&1
fp_status=$(sed -n 's/^fingerprint: *SHA256://p' status.out)
fp_openssl=$(openssl x509 -in dev1/cert.pem -noout -fingerprint -sha256 | cut -d= -f2)
[ -n "$fp_status" ] && [ "$fp_status" = "$fp_openssl" ]
expect "status shows the same SHA-256 fingerprint as openssl x509 -fingerprint -sha256" $?
"$AGENT" status --dir dev1 --json >status.json
OLD_SERIAL=$(python3 -c 'import json,sys; print(json.load(open("status.json"))["serial"])')
python3 - "$S" "$PK" "$(openssl x509 -in dev1/cert.pem -noout -serial | cut -d= -f2)" <<'EOF'
import json, sys
s = json.load(open("status.json"))
assert s["device_id"] == sys.argv[1] and s["product_key"] == sys.argv[2], s
assert s["serial"] == sys.argv[3] and s["key_type"] == "ec-p256" and s["pinned"] is False, s
assert 364 <= s["days_left"] <= 365.1 and s["not_after"].endswith("Z"), s
EOF
expect "status --json: device id, product key, serial, key type, days left, not pinned" $?

# ---- telemetry from stdin ----------------------------------------------------------------------
sub svc tele.out -t "devices/$S/telemetry" -q 1 -C 2 -W 20
printf 'temp=21.5\nhumidity=40\n' | timeout 30 "$AGENT" run --dir dev1 --stdin 2>run_stdin.err
rc=$?
end_sub
[ $rc = 0 ] && [ "$(msgs tele.out)" = "devices/$S/telemetry temp=21.5
devices/$S/telemetry humidity=40" ]
expect "run --stdin publishes one message per line, seen by a service subscriber; exits 0 at EOF" $?
grep -q "connected to 127.0.0.1:$MQTT_PORT as device $S" run_stdin.err &&
    grep -q "published 9 bytes to devices/$S/telemetry" run_stdin.err
expect "the agent logs that it connected and what it published" $?

# ---- commands ----------------------------------------------------------------------------------
cat >handler.sh <<'EOF'
#!/bin/sh
# Echoes the command and its payload; "fail" exits 3; "fds" lists its descriptors; "bg"
# starts a background sleeper (its pid in sleeper.pid) and outlives the time limit.
payload=$(cat)
echo "$1" >>handler_ran.log
case $1 in
    fds) exec ls /proc/self/fd ;;
    bg) sleep 300 & echo $! >sleeper.pid; sleep 300 ;;
esac
echo "ran $1 with $payload"
[ "$1" = fail ] && exit 3
exit 0
EOF
chmod +x handler.sh
agent_start agent1.log --dir dev1 --stdin --command-handler ./handler.sh --command-timeout 5
wait_log agent1.log 'connected to' && wait_log agent1.log "subscribed to devices/$S/commands/# \(QoS 1\)"
expect "run --stdin --command-handler connects, subscribes to its commands and stays up" $?
sub svc acks.out -t "devices/$S/acks/#" -q 1 -C 2 -W 20
bearer "$OPERATOR" POST "/v1/devices/$S/commands" '{"name":"reboot","payload":"now"}'
delivered=$(jf delivered)
bearer "$OPERATOR" POST "/v1/devices/$S/commands" '{"name":"fail","payload":"x"}'
end_sub
[ "$delivered" = true ]
expect "POST /v1/devices/{id}/commands reaches the running agent (delivered: true)" $?
python3 - "$S" <<'EOF'
import json, sys
lines = [l for l in open("acks.out") if l.startswith("devices/")]
acks = {l.split(" ", 1)[0]: json.loads(l.split(" ", 1)[1]) for l in lines}
ok = acks["devices/%s/acks/reboot" % sys.argv[1]]
assert ok == {"command": "reboot", "status": "ok", "exit_code": 0,
              "output": "ran reboot with now\n"}, ok
bad = acks["devices/%s/acks/fail" % sys.argv[1]]
assert bad["status"] == "failed" and bad["exit_code"] == 3, bad
EOF
expect "the handler runs with the command name and payload; acks {status ok, exit_code 0, output} and {failed, 3}" $?
grep -q 'command reboot (3 bytes): ran ./handler.sh, status ok, exit 0; ack published' agent1.log
expect "the agent logs the command it ran" $?

timeout 20 "$AGENT" run --dir dev1 --stdin --once </dev/null 2>lock.err
rc=$?
[ $rc = 1 ] && grep -q 'another iothub-device uses dev1' lock.err && ! grep -q 'connected to' lock.err
expect "a second run on the same state directory is refused (exit $rc: another iothub-device uses dev1)" $?
"$AGENT" status --dir dev1 >status_running.out 2>&1
expect "status works while the agent runs (read-only, no lock)" $?

sub svc acks2.out -t "devices/$S/acks/#" -q 1 -C 4 -W 30
MQ_SVC=("${MQ[@]}" --cert cmdsvc.pem --key cmdsvc.key -q 1)
mosquitto_pub "${MQ_SVC[@]}" -t "devices/$S/commands/-x" -m p1 &&
    mosquitto_pub "${MQ_SVC[@]}" -t "devices/$S/commands/.." -m p2
pub_rc=$?
bearer "$OPERATOR" POST "/v1/devices/$S/commands" '{"name":"fds","payload":"x"}'
bearer "$OPERATOR" POST "/v1/devices/$S/commands" '{"name":"bg","payload":"x"}'
end_sub
[ $pub_rc = 0 ] && python3 - <<'EOF'
import json
acks = {}
for l in open("acks2.out"):
    if l.startswith("devices/"):
        a = json.loads(l.split(" ", 1)[1])
        acks[a["command"]] = a
for name in ("-x", ".."):
    assert acks[name]["status"] == "rejected" and acks[name]["exit_code"] is None, acks
ran = open("handler_ran.log").read().split()
assert "-x" not in ran and ".." not in ran, ran
EOF
expect "commands named \"-x\" and \"..\" are acked as rejected and the handler is not run" $?
fds=$(python3 -c '
import json
for l in open("acks2.out"):
    if l.startswith("devices/") and json.loads(l.split(" ", 1)[1])["command"] == "fds":
        print(" ".join(json.loads(l.split(" ", 1)[1])["output"].split()))')
[ "$fds" = "0 1 2 3" ]
expect "a handler inherits only fds 0, 1, 2 (ls /proc/self/fd: $fds, 3 being ls's own)" $?
alive() { [ -d "/proc/$1" ] && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }
SLEEPER=$(cat sleeper.pid 2>/dev/null)
for _ in $(seq 20); do alive "$SLEEPER" || break; sleep 0.1; done
[ -n "$SLEEPER" ] && ! alive "$SLEEPER" && grep -q 'command bg: ./handler.sh did not finish within 5 s; killed' agent1.log
rc=$?
[ -n "$SLEEPER" ] && kill "$SLEEPER" 2>/dev/null
expect "a handler that times out is killed with its background sleeper (process group)" $rc

# ---- stop --------------------------------------------------------------------------------------
agent_stop
rc=$?
[ $rc = 0 ] && grep -q 'disconnected (signal)' agent1.log
expect "SIGTERM: the agent disconnects cleanly and exits 0" $?

# ---- renewal -----------------------------------------------------------------------------------
agent_start agent2.log --dir dev1 --stdin --renew-before 1000
wait_log agent2.log 'connected to' 2 20
rc=$?
NEW_SERIAL=$(openssl x509 -in dev1/cert.pem -noout -serial | cut -d= -f2)
[ $rc = 0 ] && grep -q "connected to .* (certificate $OLD_SERIAL)" agent2.log &&
    grep -q "certificate renewed: serial $NEW_SERIAL" agent2.log && [ "$NEW_SERIAL" != "$OLD_SERIAL" ] &&
    grep -q "reconnecting with the renewed certificate $NEW_SERIAL" agent2.log &&
    grep -q "connected to .* (certificate $NEW_SERIAL)" agent2.log
rc=$?
# log_ms FILE START END: ms from START (a log line pattern, or an RFC 3339 time) to the
# first line matching END, from the agent's log timestamps.
log_ms() {
    python3 - "$@" <<'PY'
import re, sys, datetime
def at(pat):
    if re.match(r"^\d{4}-\d\d-\d\dT", pat):
        return datetime.datetime.fromisoformat(pat)
    for line in open(sys.argv[1]):
        if re.search(pat, line):
            return datetime.datetime.fromisoformat(line.split()[0].rstrip("Z"))
a, b = at(sys.argv[2]), at(sys.argv[3])
print(round((b - a).total_seconds() * 1000) if a and b else "?")
PY
}
renew_ms=$(log_ms agent2.log 'renewing$' 'certificate renewed')
expect "--renew-before above the lifetime: connected, renewed (key, CSR, HTTPS: $renew_ms ms), reconnected with the new certificate" $rc
call GET "/v1/certificates/$OLD_SERIAL" -H "Authorization: Bearer $ADMIN"
[ "$(jf status)" = revoked ] && [ "$(jf revocation_reason)" = superseded ]
expect "the old certificate is revoked as superseded" $?
call GET "/v1/certificates/$NEW_SERIAL" -H "Authorization: Bearer $ADMIN"
[ "$(jf status)" = valid ] && [ "$(stat -c %a dev1/key.pem)" = 600 ] &&
    [ "$(openssl x509 -in dev1/cert.pem -noout -pubkey)" = "$(openssl pkey -in dev1/key.pem -pubout)" ] &&
    [ ! -e dev1/renew.key ] && [ ! -e dev1/renew.pem ]
expect "the new certificate is valid, its new key replaced the old one (0600), no leftovers" $?
sub svc tele2.out -t "devices/$S/telemetry" -q 1 -C 1 -W 20
echo 'after-renewal=1' >&3
end_sub
[ "$(msgs tele2.out)" = "devices/$S/telemetry after-renewal=1" ]
expect "after the renewal the agent keeps publishing" $?
[ "$(grep -c 'certificate renewed' agent2.log)" = 1 ]
expect "the renewed certificate is not renewed again in the same run" $?

# ---- revocation ------------------------------------------------------------------------------
revoke_at=$(date -u +%Y-%m-%dT%H:%M:%S.%3N)
bearer "$OPERATOR" POST "/v1/devices/$S/revoke" '{"reason":"keyCompromise"}'
[ "$STATUS" = 200 ] && wait_log agent2.log 'connection lost' 1 5
rc=$?
drop_ms=$(log_ms agent2.log "$revoke_at" 'connection lost')
expect "revoking the device through the API drops the agent's connection (after $drop_ms ms)" $rc
wait_log agent2.log 'reconnecting in [0-9.]+ s because .*certificate revoked' 2 15
expect "the agent's reconnects fail and it logs why (certificate revoked)" $?
kill -0 "$AGENT_PID" 2>/dev/null
expect "the agent keeps retrying (backoff) instead of exiting" $?
agent_stop
awk '/reconnecting in/ {print $5}' agent2.log | tr '\n' ' ' >backoff.out
python3 -c '
import sys
d = [float(x) for x in open("backoff.out").read().split()]
steps = [min(60, 2 ** i) for i in range(len(d))]
assert len(d) >= 2 and all(s / 2 - 0.05 <= x <= s + 0.05 for x, s in zip(d, steps)), d'
rc=$?
expect "reconnect delays are 1, 2, 4 ... s with jitter (between half and all of each step: $(cat backoff.out))" $rc

# ---- renew endpoint with curl ------------------------------------------------------------------
C=${ID[curly]}
activate_as device "$C" "$(cat curly.secret)" c1
expect "device curly activated with openssl + curl" $?
C1_SERIAL=$(jf serial)
make_csr ec-p256 c2 && csr_body c2.csr c2.json
call POST "/v1/devices/$C/renew" --cert c1.pem --key c1.key -H 'Content-Type: application/json' --data-binary @c2.json
expect_status "renew with the current certificate (curl --cert/--key) answers 201" 201
jf_file certificate c2.pem
[ "$(openssl x509 -in c2.pem -noout -subject)" = "subject=O = $PK, CN = $C" ] && [ "$(jf superseded.0)" = "$C1_SERIAL" ]
expect "the renewed certificate has the same subject and supersedes the old one" $?
C2_SERIAL=$(jf serial)
call GET "/v1/audit?limit=5" -H "Authorization: Bearer $ADMIN"
grep -q '"action":"device.renew"' body.out
expect "the renewal is audited as device.renew" $?

make_csr ec-p256 c3 && csr_body c3.csr c3.json
call POST "/v1/devices/$C/renew" --cert c1.pem --key c1.key -H 'Content-Type: application/json' --data-binary @c3.json
expect_error "renew with the superseded certificate: 403 certificate_superseded" 403 certificate_superseded
call POST "/v1/devices/$C/renew" -H 'Content-Type: application/json' --data-binary @c3.json
expect_error "renew without a client certificate: 401 client_certificate_required" 401 client_certificate_required
call POST "/v1/devices/$C/renew" --cert dev1/cert.pem --key dev1/key.pem -H 'Content-Type: application/json' --data-binary @c3.json
expect_error "renew with another device's certificate: 403 forbidden" 403 forbidden
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout self.key -out self.pem \
    -subj "/CN=$C" -days 1 -addext extendedKeyUsage=clientAuth 2>/dev/null
call POST "/v1/devices/$C/renew" --cert self.pem --key self.key -H 'Content-Type: application/json' --data-binary @c3.json
expect_error "renew with a self-signed certificate naming the device: 401 invalid_client_certificate" 401 invalid_client_certificate
call POST "/v1/devices/$C/renew" --cert c2.pem --key c2.key -H 'Content-Type: application/json' --data-binary '{"csr":"garbage"}'
expect_error "renew with a bad CSR: 400 invalid_csr" 400 invalid_csr
call GET /v1/ca
expect_status "a call without a client certificate elsewhere still works (GET /v1/ca)" 200
bearer "$OPERATOR" POST "/v1/certificates/$C2_SERIAL/revoke" '{"reason":"keyCompromise"}'
call POST "/v1/devices/$C/renew" --cert c2.pem --key c2.key -H 'Content-Type: application/json' --data-binary @c3.json
expect_error "renew with a revoked certificate: 403 certificate_revoked" 403 certificate_revoked
call POST "/v1/devices/$S/renew" --cert dev1/cert.pem --key dev1/key.pem -H 'Content-Type: application/json' --data-binary @c3.json
expect_error "renew for a revoked device: 403 device_revoked" 403 device_revoked

make_csr ec-p256 svc2 && csr_body svc2.csr svc2.json
call POST "/v1/services/$SVC/renew" --cert svc.pem --key svc.key -H 'Content-Type: application/json' --data-binary @svc2.json
expect_status "a service renews the same way with its certificate (POST /v1/services/{id}/renew)" 201
[ "$(jf_file certificate svc2.pem && openssl x509 -in svc2.pem -noout -subject)" = "subject=O = services, CN = $SVC" ]
expect "the service's renewed certificate is O=services, CN=<service id>" $?
call POST "/v1/services/$SVC/renew" --cert c1.pem --key c1.key -H 'Content-Type: application/json' --data-binary @svc2.json
expect_error "a device certificate on a service's renew path: 403 forbidden" 403 forbidden

# ---- pinning -----------------------------------------------------------------------------------
P=${ID[pinned]}
SERVER_FP=$(openssl s_client -connect "127.0.0.1:$API_PORT" -CAfile trust.pem </dev/null 2>/dev/null |
    openssl x509 -noout -fingerprint -sha256 | cut -d= -f2)
enroll --device-id "$P" --secret-file pinned.secret --dir pinbad --pin-sha256 "$(printf '%064d' 0)" 2>pin_bad.err
rc=$?
[ $rc != 0 ] && grep -q 'does not match the pinned 0000' pin_bad.err && [ ! -e pinbad/state ]
expect "enroll with a wrong --pin-sha256 refuses to connect (exit $rc) and says why" $?
call GET "/v1/devices/$P" -H "Authorization: Bearer $ADMIN"
[ "$(jf status)" = provisioned ]
expect "the refused enroll sent nothing: the device is still provisioned" $?
enroll --device-id "$P" --secret-file pinned.secret --dir pinok --pin-sha256 "$SERVER_FP" 2>pin_ok.err
expect "enroll with the server's SHA-256 fingerprint as pin succeeds" $?
"$AGENT" status --dir pinok | grep -q "^pinned: *$(echo "$SERVER_FP" | tr -d : | tr A-F a-f)$"
expect "status shows the pin" $?
echo pinned-hello | timeout 30 "$AGENT" run --dir pinok --stdin --once 2>pin_run.err
expect "run with the right pin connects over MQTT and publishes" $?
cp -r pinok pinwrong
sed -i "s/^pin_sha256 = .*/pin_sha256 = $(printf 'ab%.0s' $(seq 32))/" pinwrong/state
echo never | timeout 30 "$AGENT" run --dir pinwrong --stdin --once 2>pin_wrong.err
rc=$?
[ $rc != 0 ] && grep -q 'does not match the pinned abab' pin_wrong.err && ! grep -q 'connected to' pin_wrong.err
expect "run with a wrong pin refuses the MQTT server (exit $rc) and says why" $?

# ---- a renewal whose answer was lost ---------------------------------------------------------
# The agent writes renew.key before POST /renew; here the POST is made by hand with a CSR for
# that key and its answer dropped, as if the connection broke after the server issued it.
(umask 077; openssl ecparam -name prime256v1 -genkey -noout -out pinok/renew.key 2>/dev/null)
openssl req -new -key pinok/renew.key -subj "/CN=$P" -out lost.csr 2>/dev/null && csr_body lost.csr lost.json
call POST "/v1/devices/$P/renew" --cert pinok/cert.pem --key pinok/key.pem -H 'Content-Type: application/json' --data-binary @lost.json
LOST_SERIAL=$(jf serial)
expect_status "renew with the agent's pending renew.key answers 201 (the answer is then dropped)" 201
"$AGENT" status --dir pinok >status_pending.out 2>&1 && grep -q '^renewal: *pending' status_pending.out &&
    [ -e pinok/renew.key ] && [ ! -e pinok/renew.pem ]
expect "status reports the pending renewal and leaves renew.key in place" $?
PENDING_PUB=$(openssl pkey -in pinok/renew.key -pubout)
agent_start agent3.log --dir pinok --stdin --renew-before 36500
wait_log agent3.log "connected to .* \(certificate $LOST_SERIAL\)" 1 30
rc=$?
agent_stop >/dev/null
[ $rc = 0 ] && grep -q 'reusing the key of a pending renewal' agent3.log &&
    grep -q 'renewal: the server returned the certificate it had already issued for this key' agent3.log &&
    grep -q "certificate renewed: serial $LOST_SERIAL" agent3.log &&
    [ "$(openssl x509 -in pinok/cert.pem -noout -serial | cut -d= -f2)" = "$LOST_SERIAL" ] &&
    [ "$(openssl x509 -in pinok/cert.pem -noout -pubkey)" = "$PENDING_PUB" ] &&
    [ "$(openssl pkey -in pinok/key.pem -pubout)" = "$PENDING_PUB" ] &&
    [ "$(stat -c %a pinok/key.pem)" = 600 ] && [ ! -e pinok/renew.key ] && [ ! -e pinok/renew.pem ]
expect "after a lost renewal answer the agent retries with the same key, gets the issued certificate back and connects with it" $?

finish
