#!/usr/bin/env bash
# iothub-device's firmware update client (docs/device.md "Firmware updates"), against the real
# iothubd for MQTT (a service publishes the notices on devices/<id>/firmware/notice and reads
# devices/<id>/firmware/state) and a local HTTPS file server (fw_server.py: Range, If-Range,
# ETag, one broken transfer on demand) for the images and the signer bundle, until the hub's
# own firmware API serves them. Cases: running version after connect; a good update (EC
# signer) installed after the agent re-executed itself and its health check; a duplicate
# notice re-reported, not re-downloaded; wrong SHA-256, untrusted signer, tampered image (bad
# signature), downgrade, wrong hardware: failed with reasons; an interrupted download resumed
# with Range + If-Range; an install hook failure: failed; an RSA-signed update whose health
# check fails: rolled back to the previous slot; an agent killed during a download resumes it
# after its restart.
. "$(dirname "$0")/api_lib.sh"

AGENT=$BUILD/iothub-device
api_setup agent_update
expect "iothubd init, then iothubd serve answers /healthz" $?

bearer "$ADMIN" POST /v1/products '{"name":"Updatable sensor"}'
PK=$(jf product_key)
bearer "$ADMIN" POST /v1/devices "{\"product_key\":\"$PK\",\"serial_number\":\"SN-FW-1\"}"
S=$(jf device_id)
(umask 077; printf '%s\n' "$(jf device_secret)" >dev.secret)
bearer "$ADMIN" POST /v1/services '{"name":"fw-ops","publish":["devices/+/firmware/notice"],"subscribe":["devices/+/firmware/state"]}'
activate_as service "$(jf service_id)" "$(jf service_secret)" svc
# The notices go out as a second identity: one certificate for both would make the broker
# take the subscriber's session over.
bearer "$ADMIN" POST /v1/services '{"name":"fw-rollouts","publish":["devices/+/firmware/notice"],"subscribe":[]}'
activate_as service "$(jf service_id)" "$(jf service_secret)" pubsvc
expect "a device, a service that reads firmware states and one that publishes notices" $?

# ---- the image server's PKI, the signers, the images -------------------------------------------
ec() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
ec fwca.key && openssl req -x509 -new -key fwca.key -subj /CN=fw-test-ca -days 30 \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign -out fwca.pem 2>/dev/null &&
    ec fws.key && openssl req -new -key fws.key -subj /CN=127.0.0.1 -out fws.csr 2>/dev/null &&
    printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >fws.ext &&
    openssl x509 -req -in fws.csr -CA fwca.pem -CAkey fwca.key -CAcreateserial -days 30 \
        -extfile fws.ext -out fws.pem 2>/dev/null
expect "a test CA and a server certificate for the image server" $?
signer() { # signer NAME KEYTYPE: NAME.key, NAME.pem (keyUsage digitalSignature), NAME.fp
    if [ "$2" = rsa ]; then openssl genrsa -out "$1.key" 2048 2>/dev/null; else ec "$1.key"; fi
    openssl req -x509 -new -key "$1.key" -subj "/CN=$1" -days 30 \
        -addext keyUsage=critical,digitalSignature -out "$1.pem" 2>/dev/null &&
        openssl x509 -in "$1.pem" -outform DER | sha256sum | cut -d' ' -f1 >"$1.fp"
}
signer signer-ec ec && signer signer-rsa rsa && signer rogue ec
expect "two trusted signers (EC P-256, RSA 2048) and a rogue one" $?
mkdir -p www slots
cat signer-ec.pem signer-rsa.pem >www/signers.pem
# image NAME SIZE-KB SIGNER: www/NAME (random bytes) and NAME.sig (openssl dgst -sha256 -sign)
image() {
    head -c "$(($2 * 1024))" /dev/urandom >"www/$1" &&
        openssl dgst -sha256 -sign "$3.key" -out "$1.sig" "www/$1"
}
image fw-1.1.0.bin 300 signer-ec && image fw-1.2.0.bin 3000 signer-ec &&
    image fw-1.3.0.bin 200 signer-rsa && image fw-1.4.0.bin 100 signer-ec &&
    image rogue.bin 100 rogue && image tampered.bin 100 signer-ec
printf 'X' | dd of=www/tampered.bin bs=1 seek=5000 conv=notrunc 2>/dev/null
expect "images signed offline with openssl dgst -sha256 -sign (one tampered afterwards)" $?

FW_PORT=$(free_port)
python3 "$(dirname "$0")/fw_server.py" "$FW_PORT" www fws.pem fws.key --client-ca trust.pem \
    --log fw_requests.log >fw_server.out 2>&1 &
FW_PID=$!
for _ in $(seq 50); do grep -q listening fw_server.out 2>/dev/null && break; sleep 0.1; done
FW_URL="https://127.0.0.1:$FW_PORT"

# ---- hooks and configuration --------------------------------------------------------------------
cat >install.sh <<EOF
#!/bin/sh
# install hook: IMAGE VERSION SLOT; writes the image into the slot
echo "install \$1 \$2 \$3 slot=\$IOTHUB_FIRMWARE_SLOT prev=\$IOTHUB_FIRMWARE_PREVIOUS_SLOT" >>$T/hooks.log
[ -e $T/install.fail ] && { echo "flash write error at block 7"; exit 4; }
cp "\$1" $T/slots/\$3.img
EOF
cat >health.sh <<EOF
#!/bin/sh
echo "health \$1 \$2" >>$T/hooks.log
[ -e $T/health.fail ] && { echo "sensor bus does not answer"; exit 1; }
exit 0
EOF
cat >rollback.sh <<EOF
#!/bin/sh
echo "rollback \$1 \$2" >>$T/hooks.log
EOF
chmod +x install.sh health.sh rollback.sh
cat >agent.conf <<EOF
# the device maker's settings
hardware = rev-b
firmware_version = 1.0.0
firmware_install_hook = $T/install.sh
firmware_health_hook = $T/health.sh
firmware_rollback_hook = $T/rollback.sh
firmware_cacert = $T/fwca.pem
firmware_signers_url = $FW_URL/signers.pem
firmware_max_size = 8M
firmware_download_attempts = 4
EOF

timeout 60 "$AGENT" enroll --url "$BASE" --cacert trust.pem --mqtt "127.0.0.1:$MQTT_PORT" \
    --device-id "$S" --secret-file dev.secret --dir dev --config agent.conf 2>enroll.err
expect "enroll with the agent configuration" $?
cmp -s dev/signers.pem www/signers.pem && grep -q "firmware signers refreshed: 2 certificates" enroll.err
expect "enrollment fetched the trusted signer bundle into the state directory" $?

# ---- run ------------------------------------------------------------------------------------
SUB_SECONDS=150
sub svc states.out -t "devices/$S/firmware/state" -q 1
"$AGENT" run --dir dev --config agent.conf --telemetry-command 'echo {}' --interval 3600 2>agent.log &
AGENT_PID=$!
trap 'kill "$AGENT_PID" "$FW_PID" 2>/dev/null; kill_sub >/dev/null 2>&1; stop_server >/dev/null 2>&1' EXIT

# has ROLLOUT STATE [FIELD=VALUE...]: a state message for ROLLOUT ("null": the running report)
# with STATE (and the fields) was received.
has() {
    "$PY" - states.out "$@" <<'EOF'
import json, sys
path, rollout, state = sys.argv[1:4]
want = dict(a.split("=", 1) for a in sys.argv[4:])
for line in open(path, errors="replace"):
    if "/firmware/state " not in line:
        continue
    try:
        m = json.loads(line.split(" ", 1)[1])
    except ValueError:
        continue
    r = m.get("rollout_id")
    if (r or "null") != rollout or m.get("state") != state:
        continue
    if all(str(m.get(k)) == v or (k == "reason~" and False) for k, v in want.items()):
        sys.exit(0)
sys.exit(1)
EOF
}
# reason ROLLOUT STATE: the reason of that state message
reason() {
    "$PY" - states.out "$1" "$2" <<'EOF'
import json, sys
for line in open(sys.argv[1], errors="replace"):
    if "/firmware/state " in line:
        try:
            m = json.loads(line.split(" ", 1)[1])
        except ValueError:
            continue
        if m.get("rollout_id") == sys.argv[2] and m.get("state") == sys.argv[3]:
            print(m.get("reason", ""))
EOF
}
state_within() { local limit=$1; shift; wait_for "$limit" has "$@"; } # SECONDS ARGS: until `has ARGS` holds
# notice ROLLOUT VERSION IMAGE SIGNER [key=value...]: publishes a notice (overrides: sha256,
# size, hardware=JSON, min_version=JSON, signer=HEX, sig=FILE).
# mk_notice: the same, written to notice.json only.
notice() {
    mk_notice "$@" && pub pubsvc -t "devices/$S/firmware/notice" -q 1 -f notice.json
}
mk_notice() {
    local r=$1 v=$2 img=$3 signer=$4
    shift 4
    "$PY" - "$r" "$v" "$img" "$signer" "$S" "$FW_URL" "$@" >notice.json <<'EOF'
import base64, hashlib, json, os, sys
r, v, img, signer, dev, url = sys.argv[1:7]
o = dict(a.split("=", 1) for a in sys.argv[7:])
data = open("www/" + img, "rb").read()
n = {"rollout_id": r, "firmware_id": "0f0f0f0f-0000-4000-8000-%012d" % len(data),
     "version": v, "size": int(o.get("size", len(data))),
     "sha256": o.get("sha256", hashlib.sha256(data).hexdigest()),
     "signature": base64.b64encode(open(o.get("sig", img + ".sig"), "rb").read()).decode(),
     "signer": o.get("signer", open(signer + ".fp").read().strip()),
     "url": url + "/" + img,
     "hardware": json.loads(o.get("hardware", '["rev-a", "rev-b"]')),
     "min_version": json.loads(o.get("min_version", '"1.0.0"'))}
print(json.dumps(n))
EOF
}
uuid() { cat /proc/sys/kernel/random/uuid; }
fwstate() { sed -n "s/^$1 = //p" dev/firmware; }

state_within 20 null running version=1.0.0
expect "after connecting the agent reports running with the factory version 1.0.0" $?

# ---- a good update ----------------------------------------------------------------------------
R1=$(uuid)
notice "$R1" 1.1.0 fw-1.1.0.bin signer-ec
state_within 30 "$R1" installed version=1.1.0
expect "a signed 1.1.0 is downloaded, verified, installed into slot b and reported installed" $?
has "$R1" downloading && has "$R1" verifying && has "$R1" installing && has null running version=1.1.0
expect "it reported downloading, verifying, installing, then running 1.1.0 after the restart" $?
cmp -s slots/b.img www/fw-1.1.0.bin && grep -q "^install $T/dev/firmware.img 1.1.0 b slot=b prev=a" hooks.log &&
    grep -q '^health 1.1.0 b' hooks.log && [ "$(fwstate slot)" = b ] && [ "$(fwstate installed)" = 1.1.0 ]
expect "the install hook got IMAGE VERSION SLOT and wrote slot b; health checked; slot b active" $?
grep -q "re-executing the agent to start firmware 1.1.0 in slot b" agent.log && kill -0 "$AGENT_PID"
expect "the agent re-executed itself (same process) to start the new version" $?
grep "fw-1.1.0.bin" fw_requests.log | grep -q "cn=$S status=200"
expect "the image was fetched over HTTPS with the device's client certificate" $?

# ---- duplicate notice -------------------------------------------------------------------------
gets_before=$(grep -c "fw-1.1.0.bin" fw_requests.log)
notice "$R1" 1.1.0 fw-1.1.0.bin signer-ec
for _ in $(seq 300); do [ "$(grep -c "for the finished rollout $R1" agent.log)" -ge 1 ] && break; sleep 0.1; done
sleep 0.5
[ "$(grep -c "fw-1.1.0.bin" fw_requests.log)" = "$gets_before" ] &&
    [ "$("$PY" -c 'import sys; print(sum(1 for l in open("states.out") if sys.argv[1] in l and "\"installed\"" in l))' "$R1")" -ge 2 ]
expect "a duplicate notice for the finished rollout re-reports installed without downloading" $?

# ---- refusals ---------------------------------------------------------------------------------
R2=$(uuid)
notice "$R2" 1.4.0 fw-1.4.0.bin signer-ec sha256=0000000000000000000000000000000000000000000000000000000000000000
state_within 20 "$R2" failed version=1.1.0 && reason "$R2" failed | grep -q "sha256 mismatch"
expect "a wrong SHA-256 fails verification: failed, reason sha256 mismatch" $?
R3=$(uuid)
notice "$R3" 1.4.0 rogue.bin rogue
state_within 20 "$R3" failed && reason "$R3" failed | grep -q "is not a trusted firmware signer" &&
    ! grep -q "rogue.bin" fw_requests.log
expect "an untrusted signer is refused before any download: failed, reason names the signer" $?
R4=$(uuid)
notice "$R4" 1.4.0 tampered.bin signer-ec
state_within 20 "$R4" failed && reason "$R4" failed | grep -q "signature does not verify"
expect "an image changed after signing (SHA-256 of the changed bytes) fails the signature" $?
R5=$(uuid)
notice "$R5" 1.0.5 fw-1.4.0.bin signer-ec
state_within 20 "$R5" failed && reason "$R5" failed | grep -q "not newer than the installed 1.1.0 (anti-rollback)"
expect "a downgrade to 1.0.5 is refused (anti-rollback)" $?
R6=$(uuid)
notice "$R6" 1.4.0 fw-1.4.0.bin signer-ec 'hardware=["rev-c"]'
state_within 20 "$R6" failed && reason "$R6" failed | grep -q 'hardware "rev-b" is not one of \[rev-c\]'
expect "an image for other hardware is refused" $?
R7=$(uuid)
notice "$R7" 1.4.0 fw-1.4.0.bin signer-ec 'min_version="1.1.5"'
state_within 20 "$R7" failed && reason "$R7" failed | grep -q "older than min_version 1.1.5"
expect "an image that needs at least 1.1.5 is refused on 1.1.0" $?
mk_notice "$(uuid)" 9.9.9 fw-1.4.0.bin signer-ec
sed 's/"rollout_id": "[^"]*"/"rollout_id": "1\\ninstalled = 9.9.9"/' notice.json >evil.json
pub pubsvc -t "devices/$S/firmware/notice" -q 1 -f evil.json
for _ in $(seq 300); do [ "$(grep -c "firmware notice refused" agent.log)" -ge 1 ] && break; sleep 0.1; done
grep -q "firmware notice refused: notice: rollout_id and firmware_id must be UUIDs" agent.log &&
    [ "$(fwstate installed)" = 1.1.0 ] && ! grep -q "9.9.9" dev/firmware
expect "a notice whose rollout_id carries a newline is refused; nothing of it reaches STATE/firmware" $?
[ "$(fwstate installed)" = 1.1.0 ] && [ "$(fwstate slot)" = b ] && [ ! -e dev/firmware.partial ] &&
    [ ! -e slots/a.img ]
expect "after the refusals 1.1.0 in slot b is still installed and nothing is left over" $?

# ---- interrupted download ---------------------------------------------------------------------
touch www/fw-1.2.0.bin.drop
R8=$(uuid)
notice "$R8" 1.2.0 fw-1.2.0.bin signer-ec
state_within 40 "$R8" installed version=1.2.0
expect "a 3 MB image whose first transfer broke midway is installed (1.2.0 in slot a)" $?
grep "fw-1.2.0.bin" fw_requests.log | grep -q 'range=bytes=[1-9][0-9]*- if-range="'"$(sha256sum www/fw-1.2.0.bin | cut -d' ' -f1)"'" cn=.* status=206' &&
    grep -q "firmware download attempt 1 failed" agent.log && cmp -s slots/a.img www/fw-1.2.0.bin
expect "the agent resumed with Range: bytes=N- and If-Range: the ETag (206), not from zero" $?
has "$R8" downloading && "$PY" - states.out "$R8" <<'EOF'
import json, sys
p = [json.loads(l.split(" ", 1)[1]).get("progress") for l in open(sys.argv[1]) if sys.argv[2] in l and '"downloading"' in l]
sys.exit(0 if p and p[0] == 0 and all(isinstance(x, int) for x in p) else 1)
EOF
expect "downloading reports carry the progress in bytes" $?

# ---- install hook failure ---------------------------------------------------------------------
touch install.fail
R9=$(uuid)
notice "$R9" 1.4.0 fw-1.4.0.bin signer-ec
state_within 20 "$R9" failed version=1.2.0 && reason "$R9" failed | grep -q "install hook exited 4: flash write error at block 7"
expect "an install hook that fails: failed with its exit status and first output line" $?
rm -f install.fail
[ "$(fwstate installed)" = 1.2.0 ] && [ "$(fwstate slot)" = a ]
expect "after the failed install 1.2.0 in slot a stays active" $?

# ---- unhealthy new version: rollback ----------------------------------------------------------
touch health.fail
R10=$(uuid)
notice "$R10" 1.3.0 fw-1.3.0.bin signer-rsa
state_within 30 "$R10" rolled_back version=1.2.0 &&
    reason "$R10" rolled_back | grep -q "health check exited 1: sensor bus does not answer"
expect "an RSA-signed 1.3.0 whose health check fails is rolled back and reported with the reason" $?
grep -q '^rollback a 1.3.0' hooks.log && [ "$(fwstate installed)" = 1.2.0 ] && [ "$(fwstate slot)" = a ] &&
    state_within 5 null running version=1.2.0
expect "the rollback hook got the previous slot a; 1.2.0 stays installed and running" $?
rm -f health.fail

# ---- the agent killed during a download --------------------------------------------------------
touch www/fw-1.4.0.bin.stall
R11=$(uuid)
notice "$R11" 1.4.0 fw-1.4.0.bin signer-ec
for _ in $(seq 200); do [ -s dev/firmware.partial ] && break; sleep 0.1; done
kill -KILL "$AGENT_PID"
wait "$AGENT_PID" 2>/dev/null
[ -s dev/firmware.partial ] && [ "$(fwstate phase)" = downloading ] && [ "$(fwstate rollout)" = "$R11" ]
expect "killed mid-download: STATE/firmware says downloading $R11 and the partial file is kept" $?
"$AGENT" run --dir dev --config agent.conf --telemetry-command 'echo {}' --interval 3600 2>agent2.log &
AGENT_PID=$!
state_within 30 "$R11" installed version=1.4.0 && grep -q "resuming the download of firmware 1.4.0" agent2.log &&
    grep "fw-1.4.0.bin" fw_requests.log | tail -n 1 | grep -q 'range=bytes=[1-9][0-9]*- .* status=206' &&
    cmp -s slots/b.img www/fw-1.4.0.bin
expect "the restarted agent resumes that download with a Range request and installs 1.4.0" $?
"$AGENT" status --dir dev --json >status.json && "$PY" -c '
import json; s = json.load(open("status.json"))
assert s["firmware_version"] == "1.4.0" and s["firmware_slot"] == "b" and "firmware_update" not in s, s'
expect "iothub-device status --json shows firmware 1.4.0 in slot b" $?

kill -TERM "$AGENT_PID"
wait "$AGENT_PID"
expect "the agent exits 0 on SIGTERM" $?
kill "$FW_PID" 2>/dev/null
kill_sub
finish
