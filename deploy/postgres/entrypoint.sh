#!/bin/sh
# Entry point of deploy/postgres (runs as the postgres user). On an empty data volume:
# initdb, the role and database `iothub` with the password read from DB_PASSWORD_FILE (a
# secret), and pg_hba.conf. Then the server listens on the unix socket in /run/postgresql
# only (no TCP): `postgres` by peer authentication inside this container (backups), `iothub`
# with its password (SCRAM-SHA-256).
set -eu

# setup PASSWORD: the new cluster; returns non-zero on any failure.
setup() {
    initdb -D "$PGDATA" -U postgres -E UTF8 --locale=C.UTF-8 --auth-local=peer \
        --auth-host=reject >/dev/null || return 1
    cat >"$PGDATA/pg_hba.conf" <<HBA || return 1
# TYPE  DATABASE  USER      METHOD (written by iothub-postgres-entrypoint)
local   all       postgres  peer
local   iothub    iothub    scram-sha-256
HBA
    cat >>"$PGDATA/postgresql.conf" <<CONF || return 1
listen_addresses = ''
unix_socket_directories = '/run/postgresql'
unix_socket_permissions = 0777
password_encryption = 'scram-sha-256'
jit = off
CONF
    esc=$(printf '%s' "$1" | sed "s/'/''/g")
    # Single-user mode: no socket is open while the role is made. It exits 0 even when a
    # statement fails, so errors are looked for; log_min_error_statement keeps the failing
    # statement (with the password) out of the log. Only the SCRAM verifier is stored.
    postgres --single -D "$PGDATA" -j -c log_min_error_statement=panic -c log_checkpoints=off \
        postgres >/dev/null 2>/tmp/iothub-setup.log <<SQL || return 1
CREATE ROLE iothub LOGIN PASSWORD '$esc';

CREATE DATABASE iothub OWNER iothub;

SQL
    if grep -q 'ERROR\|FATAL\|PANIC' /tmp/iothub-setup.log; then
        cat /tmp/iothub-setup.log >&2
        return 1
    fi
}

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    : "${DB_PASSWORD_FILE:?set DB_PASSWORD_FILE to the file holding the iothub role password}"
    pw=$(cat "$DB_PASSWORD_FILE")
    if [ ${#pw} -lt 16 ]; then
        echo "iothub-postgres: the password in $DB_PASSWORD_FILE is shorter than 16 characters" >&2
        exit 1
    fi
    if ! setup "$pw"; then
        # Leave an empty volume, so that the next start tries again.
        find "$PGDATA" -mindepth 1 -delete
        echo "iothub-postgres: setting up the cluster failed" >&2
        exit 1
    fi
    echo "iothub-postgres: new cluster in $PGDATA with role and database iothub"
fi
exec postgres -D "$PGDATA" "$@"
