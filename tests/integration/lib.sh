# Shared helpers for integration tests: a fresh database per test script in the private
# PostgreSQL that deploy/dev.sh started, a config file, and ok/not ok reporting.
# shellcheck shell=bash
set -u
: "${IOTHUB_TEST_ROOT:?run through ./deploy/dev.sh test}"
ROOT=$IOTHUB_TEST_ROOT
BUILD=$IOTHUB_TEST_BUILD
IOTHUBD=$BUILD/iothubd
CA_TOOL=$BUILD/tests/tools/ca_tool
PGSOCK=$IOTHUB_TEST_PGSOCK
NAME=$(basename "$0" .sh)
T=$(mktemp -d "$IOTHUB_TEST_TMP/$NAME.XXXXXX")
export IOTHUB_MASTER_KEY="integration-test master passphrase"
FAILED=0

ok() { echo "ok - $*"; }
not_ok() { echo "not ok - $*"; FAILED=$((FAILED + 1)); }

# check NAME CMD...: passes when CMD exits 0.
check() {
    local name=$1; shift
    if "$@" >>"$T/check.log" 2>&1; then ok "$name"; else not_ok "$name"; echo "  command failed: $*" >&2; fi
}

# expect NAME CONDITION-RESULT: passes when the previous test expression was true.
expect() {
    local name=$1 result=$2
    if [ "$result" = 0 ]; then ok "$name"; else not_ok "$name"; fi
}

# new_db NAME: creates a database and prints its URL.
new_db() {
    local db="${NAME}_$1_$$"
    createdb -h "$PGSOCK" -U postgres "$db" || return 1
    echo "postgresql:///$db?host=$PGSOCK&user=postgres"
}

# sql URL QUERY: runs a query, unaligned tuples-only output.
sql() {
    psql "$1" -X -q -A -t -v ON_ERROR_STOP=1 -c "$2"
}

# write_conf FILE URL [extra lines...]
write_conf() {
    local file=$1 url=$2; shift 2
    {
        echo "db_url = $url"
        echo "hostname = localhost,127.0.0.1"
        echo "api_listen = 127.0.0.1:8443"
        for l in "$@"; do echo "$l"; done
    } >"$file"
}

finish() { exit $((FAILED > 0)); }
