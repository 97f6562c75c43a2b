#!/usr/bin/env bash
# The iothub container stack with plain podman commands (what deploy/compose.yaml describes),
# for hosts without a compose tool or with podman-compose 1.0 (Debian 12), which ignores
# `depends_on` conditions. docs/deploy.md explains the stack.
#   ./deploy/container.sh base          import a debootstrapped Debian 12 as debian:bookworm-slim
#                                       (only where no registry is reachable; needs debootstrap)
#   ./deploy/container.sh build         build localhost/iothub and localhost/iothub-postgres
#   ./deploy/container.sh up            secrets, volumes, PostgreSQL, `iothubd init`, `iothubd serve`
#   ./deploy/container.sh token         print the bootstrap admin token (from the state volume)
#   ./deploy/container.sh status        containers and their health
#   ./deploy/container.sh down          remove the containers (volumes and secrets stay)
#   ./deploy/container.sh purge         remove containers, volumes and secrets: ALL DATA IS LOST
# Environment (defaults in brackets):
#   STACK [iothub]            prefix of every container, volume and secret name
#   API_PORT [8443], MQTT_PORT [8883], BIND [0.0.0.0]   listeners (host network)
#   IOTHUB_HOSTNAME [localhost,127.0.0.1]               names in the server certificate
#   MASTER_KEY_FILE, DB_PASSWORD_FILE   files to make the secrets from on the first `up`;
#                             unset, random ones are generated: the master passphrase into
#                             $SECRETS_DIR/master_key (back it up: a podman secret cannot be
#                             read back), the database password only as a podman secret
#   SECRETS_DIR [~/.config/iothub/$STACK]   where a generated master passphrase is written
#   OCI_RUNTIME [runc if installed]   podman --runtime (crun fails on this cgroup v1 host)
#   NOFILE [ulimit -Hn]       open-files limit of the containers (iothubd: one per connection)
#   IOTHUB_ENV                extra `-e KEY=VALUE` settings for iothubd, space-separated
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
STACK=${STACK:-iothub}
IMAGE=${IOTHUB_IMAGE:-localhost/iothub:latest}
PG_IMAGE=${PG_IMAGE:-localhost/iothub-postgres:15}
API_PORT=${API_PORT:-8443}
MQTT_PORT=${MQTT_PORT:-8883}
BIND=${BIND:-0.0.0.0}
HOSTNAMES=${IOTHUB_HOSTNAME:-localhost,127.0.0.1}
IOTHUB_UID=10001
PG_UID=999

# Every container gets these limits: podman's default open-files limit is above the hard
# limit on some hosts (this one: 20000), and then runc cannot start the container at all.
NOFILE=${NOFILE:-$(ulimit -Hn)}
[ "$NOFILE" != unlimited ] || NOFILE=1048576
RUN_OPTS=(--ulimit "nofile=$NOFILE:$NOFILE" --ulimit nproc=4096:4096)
PODMAN=(podman)
runtime=${OCI_RUNTIME:-}
if [ -z "$runtime" ] && command -v runc >/dev/null 2>&1; then runtime=runc; fi
[ -z "$runtime" ] || PODMAN+=(--runtime "$runtime")

log() { printf '[container] %s\n' "$*" >&2; }
die() { printf '[container] error: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

cmd_base() {
    if podman image exists docker.io/library/debian:bookworm-slim; then
        log "debian:bookworm-slim is already there"
        return 0
    fi
    command -v debootstrap >/dev/null || die "debootstrap is not installed (apt-get install debootstrap)"
    local dir
    dir=$(mktemp -d /var/tmp/iothub-rootfs.XXXXXX)
    log "debootstrap --variant=minbase bookworm (a few minutes)"
    debootstrap --variant=minbase bookworm "$dir" http://deb.debian.org/debian >"$dir.log" 2>&1 ||
        { tail -n 20 "$dir.log" >&2; die "debootstrap failed"; }
    # As the official slim image: no documentation, apt caches cleaned, security updates.
    printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
        'path-exclude /usr/share/man/*' 'path-exclude /usr/share/info/*' \
        'path-exclude /usr/share/locale/*' >"$dir/etc/dpkg/dpkg.cfg.d/docker-slim"
    printf '%s\n' 'Dir::Cache::pkgcache "";' 'Dir::Cache::srcpkgcache "";' \
        'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb || true"; };' \
        >"$dir/etc/apt/apt.conf.d/docker-clean"
    printf '%s\n' 'deb http://deb.debian.org/debian bookworm main' \
        'deb http://deb.debian.org/debian bookworm-updates main' \
        'deb http://deb.debian.org/debian-security bookworm-security main' >"$dir/etc/apt/sources.list"
    find "$dir/usr/share/doc" -mindepth 2 ! -name copyright ! -type d -delete
    rm -rf "$dir"/usr/share/man/* "$dir"/usr/share/info/* "$dir"/usr/share/locale/* \
        "$dir"/var/cache/apt/archives/*.deb "$dir"/var/cache/apt/*.bin "$dir"/var/lib/apt/lists/*
    tar -C "$dir" -c . | podman import - docker.io/library/debian:bookworm-slim >/dev/null
    rm -rf "$dir" "$dir.log"
    log "imported docker.io/library/debian:bookworm-slim"
}

cmd_build() {
    podman image exists docker.io/library/debian:bookworm-slim ||
        die "no debian:bookworm-slim image: pull it, or run '$0 base'"
    local t0
    t0=$(now)
    # --format docker keeps HEALTHCHECK (the OCI image format has no such field).
    podman build --format docker --isolation chroot -f "$ROOT/deploy/Dockerfile" -t "$IMAGE" "$ROOT"
    podman build --format docker --isolation chroot -t "$PG_IMAGE" "$ROOT/deploy/postgres"
    log "built $IMAGE and $PG_IMAGE in $(since "$t0") s"
}

# secret NAME FILE [KEEP]: creates podman secret NAME from FILE, or from 32 random bytes
# (base64); with KEEP, the random bytes are first written to the file KEEP (mode 0400, in a
# 0700 directory), the copy to back up.
secret() {
    podman secret inspect "$1" >/dev/null 2>&1 && return 0
    if [ -z "$2" ] && [ -n "${3:-}" ]; then
        [ ! -e "$3" ] || die "$3 exists but secret $1 does not: set MASTER_KEY_FILE=$3 to use it"
        (umask 077 && mkdir -p "$(dirname "$3")" &&
            head -c 32 /dev/urandom | base64 | tr -d '\n' >"$3") || die "cannot write $3"
        chmod 0400 "$3"
        podman secret create "$1" "$3" >/dev/null
        log "secret $1 created from a new passphrase in $3: back this file up, apart from the database"
        return 0
    fi
    if [ -n "$2" ]; then
        podman secret create "$1" "$2" >/dev/null
    else
        head -c 32 /dev/urandom | base64 | tr -d '\n' | podman secret create "$1" - >/dev/null
    fi
    log "secret $1 created"
}

# iothub_run ARGS...: podman run of the iothub image with the stack's configuration.
iothub_run() {
    local extra=()
    local kv
    for kv in ${IOTHUB_ENV:-}; do extra+=(-e "$kv"); done
    "${PODMAN[@]}" run \
        -v "$STACK-state:/var/lib/iothub" -v "$STACK-pgsocket:/run/postgresql" \
        --secret "$STACK-master-key,type=mount,target=iothub_master_key,uid=$IOTHUB_UID,gid=$IOTHUB_UID,mode=0400" \
        --secret "$STACK-db-password,type=mount,target=iothub_db_password,uid=$IOTHUB_UID,gid=$IOTHUB_UID,mode=0400" \
        -e IOTHUB_MASTER_KEY_FILE=/run/secrets/iothub_master_key \
        -e DB_PASSWORD_FILE=/run/secrets/iothub_db_password \
        -e "IOTHUB_DB_URL=postgresql:///iothub?host=/run/postgresql&user=iothub" \
        -e "IOTHUB_API_LISTEN=$BIND:$API_PORT" -e "IOTHUB_MQTT_MTLS_LISTEN=$BIND:$MQTT_PORT" \
        -e "IOTHUB_HOSTNAME=$HOSTNAMES" \
        "${RUN_OPTS[@]}" "${extra[@]}" "$@"
}

cmd_up() {
    local t0 t
    t0=$(now)
    secret "$STACK-master-key" "${MASTER_KEY_FILE:-}" \
        "${SECRETS_DIR:-${XDG_CONFIG_HOME:-$HOME/.config}/iothub/$STACK}/master_key"
    secret "$STACK-db-password" "${DB_PASSWORD_FILE:-}"
    local v
    for v in pgdata pgsocket state; do
        podman volume exists "$STACK-$v" || podman volume create "$STACK-$v" >/dev/null
    done

    if ! podman container exists "$STACK-db"; then
        # No network at all: iothubd reaches it through the socket volume.
        "${PODMAN[@]}" run -d --name "$STACK-db" --network none --restart on-failure "${RUN_OPTS[@]}" \
            -v "$STACK-pgdata:/var/lib/postgresql/data" -v "$STACK-pgsocket:/run/postgresql" \
            --secret "$STACK-db-password,type=mount,target=iothub_db_password,uid=$PG_UID,gid=$PG_UID,mode=0400" \
            -e DB_PASSWORD_FILE=/run/secrets/iothub_db_password \
            "$PG_IMAGE" >/dev/null
    else
        podman start "$STACK-db" >/dev/null
    fi
    t=$(now)
    local i
    for i in $(seq 120); do
        podman healthcheck run "$STACK-db" >/dev/null 2>&1 && break
        [ "$(podman inspect -f '{{.State.Running}}' "$STACK-db")" = true ] ||
            { podman logs "$STACK-db" >&2; die "PostgreSQL container stopped"; }
        [ "$i" -lt 120 ] || die "PostgreSQL not ready after 60 s"
        sleep 0.5
    done
    log "PostgreSQL ready in $(since "$t") s"

    # init runs every time: migrations of a new image, idempotent otherwise.
    t=$(now)
    podman rm -f "$STACK-init" >/dev/null 2>&1 || true
    iothub_run --rm --name "$STACK-init" --network none --health-cmd=none "$IMAGE" init >&2 ||
        die "iothubd init failed"
    log "iothubd init done in $(since "$t") s"

    t=$(now)
    podman rm -f -t 15 "$STACK-iothubd" >/dev/null 2>&1 || true
    iothub_run -d --name "$STACK-iothubd" --network host --restart on-failure "$IMAGE" serve >/dev/null
    for i in $(seq 120); do
        podman healthcheck run "$STACK-iothubd" >/dev/null 2>&1 && break
        [ "$(podman inspect -f '{{.State.Running}}' "$STACK-iothubd")" = true ] ||
            { podman logs "$STACK-iothubd" >&2; die "iothubd container stopped"; }
        [ "$i" -lt 120 ] || die "iothubd not healthy after 60 s"
        sleep 0.5
    done
    log "iothubd healthy in $(since "$t") s (whole stack: $(since "$t0") s)"
    log "API https://$BIND:$API_PORT/v1, MQTT mTLS $BIND:$MQTT_PORT; admin token: $0 token"
}

cmd_token() { podman exec "$STACK-iothubd" cat /var/lib/iothub/admin.token; }

cmd_status() {
    podman ps -a --filter "name=^$STACK-" --format '{{.Names}}\t{{.Status}}\t{{.Image}}'
}

cmd_down() {
    local c
    for c in "$STACK-iothubd" "$STACK-init" "$STACK-db"; do
        podman rm -f -t 15 "$c" >/dev/null 2>&1 || true
    done
    log "containers of $STACK removed"
}

cmd_purge() {
    cmd_down
    local v
    for v in pgdata pgsocket state; do podman volume rm -f "$STACK-$v" >/dev/null 2>&1 || true; done
    podman secret rm "$STACK-master-key" "$STACK-db-password" >/dev/null 2>&1 || true
    log "volumes and secrets of $STACK removed"
}

case "${1:-}" in
    base) cmd_base ;;
    build) cmd_build ;;
    up) cmd_up ;;
    token) cmd_token ;;
    status) cmd_status ;;
    down) cmd_down ;;
    purge) cmd_purge ;;
    *) echo "usage: $0 base|build|up|token|status|down|purge" >&2; exit 2 ;;
esac
