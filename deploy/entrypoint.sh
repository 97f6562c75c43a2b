#!/bin/sh
# Entry point of the iothub image (deploy/Dockerfile).
#   serve             iothubd serve (the default command)
#   init              waits for PostgreSQL, then iothubd init --token-file $IOTHUB_TOKEN_FILE
#   healthcheck       GET /healthz on this container's API listener; exit 0 when it answers 200
#                     (503 while the database is unreachable or the node drains after SIGTERM)
#   migrate, ca ...   other iothubd commands; anything else is run as given (iothubctl ...)
# DB_PASSWORD_FILE names a file (a secret) holding the database password: it is copied to a
# private pgpass file for libpq ($PGPASSFILE), so the password is neither in db_url nor in
# the environment.
set -eu

CONF=${IOTHUB_CONFIG:-/etc/iothub/iothub.conf}

setup_pgpass() {
    [ -n "${DB_PASSWORD_FILE:-}" ] || return 0
    if [ ! -r "$DB_PASSWORD_FILE" ]; then
        echo "iothub-entrypoint: DB_PASSWORD_FILE $DB_PASSWORD_FILE is not readable" >&2
        exit 1
    fi
    # PGPASSFILE is set in the image, so `podman exec … iothubd ca chain` finds it too.
    : "${PGPASSFILE:=/tmp/iothub.pgpass}"
    export PGPASSFILE
    # pgpass format: host:port:db:user:password, with \ and : escaped in the password.
    pw=$(sed -e 's/\\/\\\\/g' -e 's/:/\\:/g' "$DB_PASSWORD_FILE")
    rm -f "$PGPASSFILE"
    (umask 077; printf '*:*:*:*:%s\n' "$pw" >"$PGPASSFILE")
}

# The first `iothubd init` step is `migrate`; repeating it until it succeeds is how init
# waits for a database that is still starting (compose starts containers together).
wait_for_db() {
    limit=${DB_WAIT_SECONDS:-60}
    n=0
    until iothubd migrate >/tmp/iothub-migrate.log 2>&1; do
        n=$((n + 1))
        if [ "$n" -ge "$limit" ]; then
            cat /tmp/iothub-migrate.log >&2
            echo "iothub-entrypoint: database not ready after ${limit} s" >&2
            exit 1
        fi
        sleep 1
    done
    cat /tmp/iothub-migrate.log
}

# api_listen as configured (environment first, then the file), made into a loopback URL.
healthcheck() {
    listen=${IOTHUB_API_LISTEN:-}
    if [ -z "$listen" ] && [ -r "$CONF" ]; then
        listen=$(sed -n 's/^[[:space:]]*api_listen[[:space:]]*=[[:space:]]*"\{0,1\}\([^"[:space:]]*\)"\{0,1\}[[:space:]]*$/\1/p' "$CONF")
    fi
    listen=${listen:-0.0.0.0:8443}
    host=${listen%:*}
    port=${listen##*:}
    case $host in
        0.0.0.0) host=127.0.0.1 ;;
        "[::]") host="[::1]" ;;
    esac
    # api_proxy_protocol on: the API wants a PROXY header first, even from here (this
    # container's loopback must then be in proxy_trusted: docs/configuration.md).
    proxy=
    case ${IOTHUB_API_PROXY_PROTOCOL:-off} in on | true | yes | 1) proxy=--haproxy-protocol ;; esac
    exec curl -fsSk $proxy --max-time 4 -o /dev/null "https://$host:$port/healthz"
}

cmd=${1:-serve}
case $cmd in
    healthcheck) healthcheck ;;
    init)
        shift
        setup_pgpass
        wait_for_db
        exec iothubd init --token-file "${IOTHUB_TOKEN_FILE:-/var/lib/iothub/admin.token}" "$@" ;;
    serve | migrate | ca | -*)
        setup_pgpass
        exec iothubd "$@" ;;
    *)
        setup_pgpass
        exec "$@" ;;
esac
