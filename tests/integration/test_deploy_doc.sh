#!/usr/bin/env bash
# Runs docs/deploy.md as written, top to bottom: every ```sh block in order, in one shell
# (exports carry over, as in a terminal), with this test's names in place of the page's
# (stack and compose project names, loopback ports, a private secrets directory), and checks
# after each block what an operator would see at that point. Skipped where podman or the
# base image is missing (CI's fresh Debian 12 has neither); test_container.sh checks the
# stack's security properties, this test that the page works for a newcomer.
# test-lane: alone (podman builds images with every core; deploy/dev.sh runs nothing beside it)
. "$(dirname "$0")/lib.sh"
cd "$T" || exit 1
DOC=$ROOT/docs/deploy.md

if ! command -v podman >/dev/null 2>&1 || ! command -v podman-compose >/dev/null 2>&1; then
    echo "ok - deploy.md walk-through skipped: podman or podman-compose not installed # SKIP"
    exit 0
fi
if ! podman image exists docker.io/library/debian:bookworm-slim; then
    echo "ok - deploy.md walk-through skipped: no debian:bookworm-slim image (deploy/container.sh base) # SKIP"
    exit 0
fi

STACK="iothubdoc-$$-$RANDOM"
PROJECT=$STACK
export STACK BIND=127.0.0.1 API_PORT MQTT_PORT SECRETS_DIR=$T/generated
SECRETS=$T/srv-secrets

# Split the page into blocks: blocks/N.sh for every ```sh block.
mkdir -p blocks
awk -v dir=blocks '
    /^```sh/ { n++; on = 1; next }
    /^```$/ { on = 0; next }
    on { print > (dir "/" n ".sh") }' "$DOC"
NBLOCKS=$(ls blocks/*.sh | wc -l)
grep -q 'apt-get install' blocks/1.sh && grep -q 'container.sh base' blocks/2.sh &&
    grep -q 'container.sh build' blocks/3.sh && grep -q 'container.sh up' blocks/4.sh
expect "docs/deploy.md starts with install, base image, build, up ($NBLOCKS shell blocks)" $?

# Block 1 installs packages: here they must already be there (a test installs nothing).
pkgs=$(sed -n 's/.*apt-get install -y //p' blocks/1.sh)
# shellcheck disable=SC2086
dpkg -s $pkgs >/dev/null 2>&1
expect "the packages block 1 installs are what this host has: $pkgs" $?

cleanup() {
    (cd "$ROOT" && IOTHUB_SECRETS=$SECRETS IOTHUB_STACK=$STACK podman-compose -p "$PROJECT" -f deploy/compose.yaml down -v) >compose-down.log 2>&1
    podman network rm "${PROJECT}_default" >/dev/null 2>&1
    "$ROOT/deploy/container.sh" purge >/dev/null 2>&1
}
trap cleanup EXIT

{
    echo 'set -eo pipefail'
    echo 'trap '\''echo "deploy.md: block $BLOCK failed at: $BASH_COMMAND" >&2'\'' ERR'
    echo "cd '$ROOT'"
    echo "TOP='$T'"
    echo 'checkpoint() { printf "\n@@checkpoint %s\n" "$1"; while [ ! -e "$TOP/go.$1" ]; do sleep 0.1; done; }'
    for i in $(seq 2 "$NBLOCKS"); do
        body=$(sed -e "s/:8443/:$API_PORT/g" -e "s/8883/$MQTT_PORT/g" \
            -e "s/iothub-iothubd/$STACK-iothubd/g" -e "s/iothub-db/$STACK-db/g" \
            -e "s#/srv/iothub/secrets#$SECRETS#g" -e "s/-p iothub /-p $PROJECT /g" -e "s/iothub_iothub/${PROJECT}_iothub/g" \
            -e "s/IOTHUB_HOSTNAME=localhost,127.0.0.1/IOTHUB_HOSTNAME=localhost,127.0.0.1 IOTHUB_PUBLISH=127.0.0.1 IOTHUB_STACK=$STACK IOTHUB_API_PORT=$API_PORT IOTHUB_MQTT_PORT=$MQTT_PORT/" \
            "blocks/$i.sh")
        echo "BLOCK=$i"
        printf '%s\n' "$body"
        echo "checkpoint $i"
    done
    echo 'echo "@@done"'
} >walk.sh


checks() {
    local block="blocks/$1.sh"
    if grep -q 'container.sh build' "$block"; then
        podman image exists localhost/iothub:latest && podman image exists localhost/iothub-postgres:15
        expect "both images are built" $?
    fi
    if grep -q 'container.sh up' "$block"; then
        [ "$(stat -c %a "$SECRETS_DIR/master_key" 2>/dev/null)" = 400 ] &&
            grep -q "$STACK-iothubd.*Up.*healthy" main.out
        expect "the stack is up and healthy; the generated passphrase is in a 0400 file to back up" $?
    fi
    if grep -q '/v1/products' "$block"; then
        grep -q '"product_key"' main.out && grep -q '"status": *"ok"\|"status":"ok"' main.out
        expect "healthz answers ok and a product is created with the bootstrap token" $?
    fi
    if grep -q 'iothubctl products list' "$block"; then
        grep -q 'sensors' main.out
        expect "iothubctl from the image lists the product" $?
    fi
    if grep -q 'container.sh down' "$block"; then
        [ -z "$(podman ps -a -q --filter "name=^$STACK-")" ]
        expect "down removes the containers (the volumes stay)" $?
    fi
    if grep -q 'podman-compose .* up' "$block"; then
        grep -Eq '^iothub_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$' main.out
        expect "the compose stack comes up; podman exec prints the admin token alone on its line" $?
    fi
}

: >main.out
bash walk.sh >>main.out 2>main.err &
script_pid=$!
for i in $(seq 2 "$NBLOCKS"); do
    # A cold build takes minutes.
    if ! wait_line main.out "^@@checkpoint $i\$" 900; then
        not_ok "block $i of docs/deploy.md runs: $(tail -n 3 main.err | tr '\n' ' ')"
        break
    fi
    checks "$i"
    touch "go.$i"
done
wait_line main.out '^@@done$' 10
expect "every command in docs/deploy.md runs without error" $?
kill "$script_pid" 2>/dev/null
[ "$FAILED" = 0 ] || { echo "--- main.out"; tail -n 40 main.out; echo "--- main.err"; tail -n 40 main.err; } >&2
finish
