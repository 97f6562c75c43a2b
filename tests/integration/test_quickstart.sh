#!/usr/bin/env bash
# Runs docs/quickstart.md as written: every ```sh block in order, in a layout like
# ./deploy/dev.sh run's (build/, .dev/iothub.conf, .dev/admin.token, .dev/ca.pem) with this
# test's ports in place of 8443 and 8883. Blocks tagged "terminal-N" run in the background
# (they are the long-running terminals); after each block a checkpoint checks what a
# newcomer would see at that point. The first block (dev.sh run) is what this layout stands
# in for.
. "$(dirname "$0")/lib.sh"
cd "$T" || exit 1
DOC=$ROOT/docs/quickstart.md

URL=$(new_db quickstart)
mkdir -p build .dev
for b in iothubd iothubctl iothub-device; do ln -s "$BUILD/$b" build/$b; done
write_conf .dev/iothub.conf "$URL"
"$IOTHUBD" -c .dev/iothub.conf init --token-file .dev/admin.token >init.out 2>&1 &&
    "$IOTHUBD" -c .dev/iothub.conf ca chain >.dev/ca.pem
expect "the dev.sh run layout is set up" $?
start_server .dev/iothub.conf serve.log
expect "the hub serves" $?

# Split the page into blocks: blocks/N.sh and blocks/N.tag ("main" or "terminal-N").
mkdir -p blocks
awk -v dir=blocks '
    /^```sh/ { n++; tag = ($2 == "" ? "main" : $2); print tag > (dir "/" n ".tag"); close(dir "/" n ".tag"); on = 1; next }
    /^```$/ { on = 0; next }
    on { print > (dir "/" n ".sh") }' "$DOC"
NBLOCKS=$(ls blocks/*.tag | wc -l)
[ "$NBLOCKS" -ge 10 ] && grep -q 'deploy/dev.sh run' blocks/1.sh
expect "docs/quickstart.md has $NBLOCKS shell blocks, the first one starts the hub" $?

# The script the blocks become. Main blocks run in this one shell (exports and cd carry
# over, as in a terminal); terminal blocks start from the top directory in the background.
{
    echo 'set -eo pipefail'
    echo 'trap '\''echo "quickstart: block $BLOCK failed at: $BASH_COMMAND" >&2'\'' ERR'
    echo "TOP='$T'"
    echo 'checkpoint() { echo "@@checkpoint $1"; while [ ! -e "$TOP/go.$1" ]; do sleep 0.1; done; }'
    for i in $(seq 2 "$NBLOCKS"); do
        body=$(sed -e "s/:8443/:$API_PORT/g" -e "s/8883/$MQTT_PORT/g" "blocks/$i.sh")
        tag=$(cat "blocks/$i.tag")
        echo "BLOCK=$i"
        if [ "$tag" = main ]; then
            printf '%s\n' "$body"
        else
            printf '(cd "$TOP" && %s\n) >"$TOP/%s.log" 2>&1 &\necho $! >"$TOP/%s.pid"\n' \
                "$body" "$tag" "$tag"
        fi
        echo "checkpoint $i"
    done
    echo 'echo "@@done"'
} >quickstart.sh

# checks N: what the page promises after block N (by what the block does, so a reordered
# page fails here rather than passing by accident).
checks() {
    local i=$1 block="blocks/$1.sh"
    if grep -q 'iothubctl health' "$block"; then
        grep -q 'ok' main.out
        expect "iothubctl reaches the hub with the printed environment" $?
    fi
    if grep -q 'devices provision' "$block"; then
        [ -s quickstart/device.secret ] && [ "$(stat -c %a quickstart/device.secret)" = 600 ] &&
            grep -q 'provisioned' main.out
        expect "a product and a provisioned device; the secret is in a 0600 file" $?
    fi
    if grep -q 'services activate' "$block"; then
        [ -s quickstart/watcher/cert.pem ] && [ "$(stat -c %a quickstart/watcher/key.pem)" = 600 ]
        expect "the watcher service has a key (0600) and a certificate" $?
    fi
    if grep -q 'iothub-device enroll' "$block"; then
        local fp
        fp=$(openssl x509 -in quickstart/device/cert.pem -noout -fingerprint -sha256 2>/dev/null |
            cut -d= -f2 | tr -d : | tr A-F a-f)
        [ "$(stat -c %a quickstart/device/key.pem)" = 600 ] && [ ! -e quickstart/device.secret ] &&
            [ -n "$fp" ] && tr -d : <main.out | tr A-F a-f | grep -q "$fp" &&
            ! grep -rq "$(jq -r .device_secret quickstart/device.json)" quickstart/device
        expect "enroll keeps a 0600 key and no secret; status shows the certificate's SHA-256" $?
    fi
    if grep -q 'iothub-device run' "$block"; then
        wait_line terminal-3.log "devices/$DEVICE/telemetry {\"load\": [0-9.]*}\$" 30
        expect "terminal 3 shows the device's telemetry" $?
    fi
    if grep -q 'commands send' "$block"; then
        grep -q '^delivered: *yes' main.out && wait_line terminal-3.log "devices/$DEVICE/acks/reboot .*ran reboot with .*delay.*: 5" 20
        expect "the command runs on the device and its answer reaches terminal 3" $?
    fi
    if grep -q 'devices revoke' "$block"; then
        local before after
        sleep 3 # the same second, with margin for a loaded machine
        before=$(grep -c telemetry terminal-3.log)
        sleep 5
        after=$(grep -c telemetry terminal-3.log)
        grep -q 'revoked' main.out && [ "$before" = "$after" ] && kill -0 "$(cat terminal-4.pid)" 2>/dev/null
        expect "after the revocation no more telemetry arrives and the agent keeps trying" $?
        grep -Eiq 'revoked|certificate|handshake|refused|lost' terminal-4.log
        expect "the agent says its connection was lost and refused" $?
    fi
    if grep -q 'crl get' "$block"; then
        grep -q 'Key Compromise' main.out
        expect "the CRL lists the certificate with reason keyCompromise" $?
    fi
}

# Run the script block by block: it stops at each checkpoint until the checks are done.
: >main.out
bash quickstart.sh >>main.out 2>main.err &
script_pid=$!
DEVICE=
for i in $(seq 2 "$NBLOCKS"); do
    if ! wait_line main.out "^@@checkpoint $i\$" 120; then
        not_ok "block $i of docs/quickstart.md runs: $(tail -n 3 main.err | tr '\n' ' ')"
        break
    fi
    [ -s quickstart/device.json ] && DEVICE=$(jq -r .device_id quickstart/device.json)
    checks "$i"
    touch "go.$i"
done
wait_line main.out '^@@done$' 10
expect "every command in docs/quickstart.md runs without error" $?
for t in terminal-3 terminal-4; do
    [ -f $t.pid ] && pkill -TERM -P "$(cat $t.pid)" 2>/dev/null
    [ -f $t.pid ] && kill "$(cat $t.pid)" 2>/dev/null
done
kill "$script_pid" 2>/dev/null
cp main.out main.out.saved 2>/dev/null
[ "$FAILED" = 0 ] || { echo "--- main.out"; cat main.out; echo "--- main.err"; cat main.err;
    for t in terminal-3 terminal-4; do echo "--- $t"; tail -n 30 $t.log; done; } >&2
stop_server
finish
