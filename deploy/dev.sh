#!/usr/bin/env bash
# Developer entry point.
#   ./deploy/dev.sh run    install what is missing, build, start a private PostgreSQL under
#                          .dev/, run `iothubd init` once, then `iothubd serve` in the foreground
#   ./deploy/dev.sh test   install, build, run every test against a private PostgreSQL; ends
#                          with "N passed, N failed" and exits 0 only if all passed
#   ./deploy/dev.sh test NAME  only the tests whose name contains NAME
#   ./deploy/dev.sh build  install and build only
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# IOTHUB_SANITIZERS=1 builds with ASan + UBSan in build-asan/ (CI runs the suite both ways);
# IOTHUB_BUILD_DIR puts the build elsewhere (several builds of one tree side by side).
if [ "${IOTHUB_SANITIZERS:-0}" = 1 ]; then
    BUILD=${IOTHUB_BUILD_DIR:-$ROOT/build-asan}
    CONFIGURE_FLAGS=${CONFIGURE_FLAGS:---enable-werror --enable-sanitizers}
else
    BUILD=${IOTHUB_BUILD_DIR:-$ROOT/build}
fi
DEV="$ROOT/.dev"
PACKAGES=(build-essential autoconf automake libtool pkg-config libuv1-dev libmbedtls-dev
          libmicrohttpd-dev libpq-dev libmosquitto-dev libjansson-dev libcurl4-openssl-dev
          postgresql mosquitto-clients openssl curl python3 jq)

log() { printf '[dev] %s\n' "$*" >&2; }
die() { printf '[dev] error: %s\n' "$*" >&2; exit 1; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

install_missing() {
    local missing=()
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing: ${missing[*]}"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >/dev/null
    fi
}

build() {
    cd "$ROOT"
    # One autoreconf at a time: several builds of this tree may start together.
    exec 9>"$ROOT/.autoreconf.lock"
    flock 9
    if [ ! -x configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt Makefile.in ]; then
        log "autoreconf"
        autoreconf -fi >/dev/null 2>&1 || autoreconf -fi
    fi
    flock -u 9
    mkdir -p "$BUILD"
    cd "$BUILD"
    if [ ! -f Makefile ] || [ "$ROOT/configure" -nt Makefile ]; then
        log "configure ${CONFIGURE_FLAGS:---enable-werror}"
        # shellcheck disable=SC2086
        "$ROOT/configure" -q ${CONFIGURE_FLAGS:---enable-werror}
    fi
    log "make"
    make -s -j"$(nproc)" all >/dev/null
    make -s -j"$(nproc)" check TESTS= >/dev/null
}

# ---- private PostgreSQL -----------------------------------------------------------------
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)

# Runs a PostgreSQL server binary as the cluster owner (postgres refuses to run as root).
pg_as_owner() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# pg_start DIR: initdb DIR/data if needed and start a server listening only on DIR/sock.
pg_start() {
    local dir=$1
    [ -n "$PGBIN" ] || die "PostgreSQL server binaries not found (apt-get install postgresql)"
    mkdir -p "$dir/sock"
    if [ "$(id -u)" = 0 ]; then chown postgres: "$dir" "$dir/sock"; chmod 0700 "$dir/sock"; fi
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        pg_as_owner "$PGBIN/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 \
            --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
    fi
    pg_as_owner "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
        -o "-c listen_addresses='' -c unix_socket_directories='$dir/sock' -c unix_socket_permissions=0700 -c fsync=${PG_FSYNC:-on}" \
        start >/dev/null || { tail -n 20 "$dir/postgres.log" >&2; die "PostgreSQL did not start"; }
}

pg_stop() {
    local dir=$1
    [ -f "$dir/data/postmaster.pid" ] || return 0
    pg_as_owner "$PGBIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
}

# ---- commands ---------------------------------------------------------------------------
cmd_run() {
    install_missing
    build
    mkdir -p "$DEV"
    chmod 0755 "$DEV"
    pg_start "$DEV/pg"
    trap 'pg_stop "$DEV/pg"' EXIT
    local url="postgresql:///iothub?host=$DEV/pg/sock&user=postgres"
    pg_as_owner "$PGBIN/../bin/createdb" -h "$DEV/pg/sock" -U postgres iothub 2>/dev/null || true
    if [ ! -f "$DEV/master.key" ]; then
        (umask 077; head -c 32 /dev/urandom | base64 >"$DEV/master.key")
        log "generated a development master passphrase in .dev/master.key"
    fi
    if [ ! -f "$DEV/iothub.conf" ]; then
        cat >"$DEV/iothub.conf" <<CONF
# Development configuration written by deploy/dev.sh; edit freely.
db_url = $url
api_listen = 127.0.0.1:8443
mqtt_mtls_listen = 127.0.0.1:8883
hostname = localhost,127.0.0.1
master_key_file = $DEV/master.key
CONF
    fi
    local iothubd="$BUILD/iothubd"
    (cd "$DEV" && "$iothubd" -c "$DEV/iothub.conf" init --token-file "$DEV/admin.token")
    "$iothubd" -c "$DEV/iothub.conf" ca chain >"$DEV/ca.pem"
    cat >&2 <<MSG

  iothub is running (Ctrl-C stops it and the private PostgreSQL)
    API:          https://127.0.0.1:8443/v1   (trust anchor: $DEV/ca.pem, issuing CA + root)
    MQTT (mTLS):  mqtts://127.0.0.1:8883      (device certificates from POST /v1/devices/{id}/activate)
    admin token:  $DEV/admin.token
    database:     $url
    config:       $DEV/iothub.conf

  For iothubctl in another terminal:
    export IOTHUB_URL=https://127.0.0.1:8443 IOTHUB_CACERT=$DEV/ca.pem IOTHUB_TOKEN=\$(cat $DEV/admin.token)

MSG
    "$iothubd" -c "$DEV/iothub.conf" serve
}

cmd_test() {
    only=${1:-} # run only the tests whose name contains this
    install_missing
    build
    tmp=$(mktemp -d /tmp/iothub-test.XXXXXX)
    chmod 0755 "$tmp"
    out="$tmp/results.txt"
    : >"$out"
    PG_FSYNC=off pg_start "$tmp/pg"
    trap 'pg_stop "$tmp/pg"; rm -rf "$tmp"' EXIT

    export IOTHUB_TEST_ROOT="$ROOT" IOTHUB_TEST_BUILD="$BUILD" IOTHUB_TEST_PGSOCK="$tmp/pg/sock"
    export IOTHUB_TEST_PGBIN="$PGBIN" IOTHUB_TEST_TMP="$tmp"

    local t name rc
    for t in "$BUILD"/tests/unit/test_*; do
        [ -x "$t" ] || continue
        name=$(basename "$t")
        [[ $name == *"$only"* ]] || continue
        set +e
        start=$SECONDS
        (cd "$tmp" && "$t") >"$tmp/$name.out" 2>"$tmp/$name.err"
        rc=$?
        set -e
        log "unit: $name ($((SECONDS - start)) s)"
        collect "$name" "$rc"
    done
    for t in "$ROOT"/tests/integration/test_*.sh; do
        name=$(basename "$t" .sh)
        [[ $name == *"$only"* ]] || continue
        set +e
        start=$SECONDS
        bash "$t" >"$tmp/$name.out" 2>"$tmp/$name.err"
        rc=$?
        set -e
        log "integration: $name ($((SECONDS - start)) s)"
        collect "$name" "$rc"
    done

    local passed failed
    passed=$(grep -c '^ok ' "$out" || true)
    failed=$(grep -c '^not ok ' "$out" || true)
    grep '^not ok ' "$out" >&2 || true
    echo "$passed passed, $failed failed"
    [ "$failed" = 0 ] && [ "$passed" -gt 0 ]
}

# collect NAME RC: appends a test program's ok/not ok lines; a crash or a non-zero exit
# without a failing line counts as one failure. Failing output is shown.
collect() {
    local name=$1 rc=$2 f="$tmp/$1.out"
    sed -e "s/^\(not ok\|ok\) - /\1 - $name: /" "$f" | grep -E '^(ok|not ok) ' >>"$out" || true
    if [ "$rc" != 0 ] && ! grep -q '^not ok ' "$f"; then
        echo "not ok - $name: exited with status $rc" >>"$out"
    fi
    if [ "$rc" != 0 ] || grep -q '^not ok ' "$f"; then
        { echo "---- $name output"; cat "$f"; echo "---- $name stderr"; tail -n 60 "$tmp/$name.err"; } >&2
    fi
}

case "${1:-}" in
    run) cmd_run ;;
    test) cmd_test "${2:-}" ;;
    build) install_missing; build ;;
    *) echo "usage: $0 run|test|build" >&2; exit 2 ;;
esac
