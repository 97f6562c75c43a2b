#!/bin/sh
# Entry point of the iothub image (deploy/Dockerfile).
#   serve             iothubd serve (the default command), with a watchdog (below)
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

# Stops a daemon that no longer answers /healthz at all, so that the restart policy starts a
# new one: podman runs HEALTHCHECKs from systemd timers, and where there is no systemd (it
# logs "unable to get systemd connection to add healthchecks") nothing would act on them.
# A 503 (database unreachable, draining) is an answer: restarting would not help. Runs in
# the background of `serve`; pid is the daemon's (the shell exec's into it).
watchdog() {
    pid=$1
    interval=${IOTHUB_WATCHDOG_INTERVAL:-30}
    case $interval in '' | *[!0-9]* | 0) return 0 ;; esac
    retries=${IOTHUB_WATCHDOG_RETRIES:-3}
    grace=${IOTHUB_WATCHDOG_GRACE:-20}
    sleep "${IOTHUB_WATCHDOG_START:-60}"
    fails=0
    while kill -0 "$pid" 2>/dev/null; do
        rc=0
        "$0" healthcheck >/dev/null 2>&1 || rc=$?
        case $rc in 0 | 22) fails=0 ;; *) fails=$((fails + 1)) ;; esac # 22: an HTTP error status
        if [ "$fails" -ge "$retries" ]; then
            echo "iothub-entrypoint: watchdog: iothubd did not answer /healthz $fails times in a row: stopping it" >&2
            kill -TERM "$pid" 2>/dev/null
            sleep "$grace"
            kill -KILL "$pid" 2>/dev/null
            exit 0
        fi
        sleep "$interval"
    done
}

cmd=${1:-serve}
case $cmd in
    healthcheck) healthcheck ;;
    init)
        shift
        setup_pgpass
        wait_for_db
        exec iothubd init --token-file "${IOTHUB_TOKEN_FILE:-/var/lib/iothub/admin.token}" "$@" ;;
    serve)
        setup_pgpass
        watchdog $$ </dev/null &
        exec iothubd "$@" ;;
    migrate | ca | -*)
        setup_pgpass
        exec iothubd "$@" ;;
    *)
        setup_pgpass
        exec "$@" ;;
esac
