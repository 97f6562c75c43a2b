#!/usr/bin/env bash
# Developer entry point.
#   ./deploy/dev.sh run    install what is missing, build, start a private PostgreSQL under
#                          .dev/, run `iothubd init` once, then `iothubd serve` in the foreground
#   ./deploy/dev.sh test   install, build, run every test against a private PostgreSQL; ends
#                          with "N passed, N failed" and exits 0 only if all passed
#   ./deploy/dev.sh test NAME  only the tests whose name contains NAME
#                          (IOTHUB_TEST_JOBS=N: N tests at a time, default 4)
#   ./deploy/dev.sh build  install and build only
#   ./deploy/dev.sh fuzz [SECONDS] [TARGET]  build the libFuzzer targets (clang) in
#                          build-fuzz/ and run each for SECONDS (60); see docs/fuzzing.md
#   ./deploy/dev.sh bench [--devices N] [--quick] [--tsung SCENARIO]  iothub and Mosquitto
#                          side by side (tests/bench/compare.sh); see docs/BENCHMARKS.md
#   ./deploy/dev.sh bench --durability [--before IOTHUBD] [--duration S]  QoS 1 rates with
#                          an online / offline persistent subscriber (tests/bench/durability.sh)
#   ./deploy/dev.sh bench-revocation [--levels "0 100000 1000000"] [--revocations K] [--quick]
#                          revocation at scale (tests/bench/revocation.sh)
#   ./deploy/dev.sh bench --backbone [--before IOTHUBD] [--duration S] [--publishers N]  one node vs two nodes
#                          with a Mosquitto backbone (tests/bench/backbone.sh)
#   ./deploy/dev.sh soak [MINUTES]  mixed normal and abusive load for MINUTES (5), printing
#                          iothubd's RSS and a bystander's PUBACK p50/p99 every 10 s
#                          (tests/bench/soak.sh; docs/security.md#soak)
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
          libmicrohttpd-dev libgnutls28-dev libpq-dev libmosquitto-dev libjansson-dev libcurl4-openssl-dev libssl-dev
          postgresql mosquitto-clients openssl curl python3 jq sslscan
          clang libclang-rt-14-dev)
# CA keys in a PKCS#11 token (ca_key_store): the header to build, SoftHSM2 and pkcs11-tool to test.
PACKAGES+=(libp11-kit-dev softhsm2 opensc)
# Several nodes: Mosquitto as the message backbone of test_backbone*.sh; paho for its clients.
PACKAGES+=(mosquitto python3-paho-mqtt)

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

# Regenerates configure when configure.ac or Makefile.am changed (shared by build and fuzz).
regenerate() {
    cd "$ROOT"
    # One autoreconf at a time: several builds of this tree may start together.
    exec 9>"$ROOT/.autoreconf.lock"
    flock 9
    if [ ! -x configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt Makefile.in ]; then
        log "autoreconf"
        autoreconf -fi >/dev/null 2>&1 || autoreconf -fi
    fi
    flock -u 9
}

build() {
    regenerate
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
    # In the configuration file, not on the command line: tests that stop and start the
    # server again keep it.
    if [ -n "${PG_MAX_CONNECTIONS:-}" ]; then
        echo "max_connections = $PG_MAX_CONNECTIONS" >>"$dir/data/postgresql.conf"
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

# ---- the test runner ---------------------------------------------------------------------
# Unit tests (tests/unit/**/test_*) and integration tests (tests/integration/test_*.sh) run
# IOTHUB_TEST_JOBS at a time (default 4: most of them wait on sockets, PostgreSQL and
# child processes, not on the CPU), the longest first (times of the last run in
# $BUILD/test-times.txt, else tests/test-times.txt; a test never timed counts as long).
# An integration script with the line "# test-lane: alone" in its head runs with nothing
# beside it: it stops the shared PostgreSQL, or measures time or memory under load, or
# loads the machine itself. Each test keeps its own output files, working directory and
# sanitizer report directory; the results are collected in name order when all are done.
TEST_JOBS_DEFAULT=4

# test_list ONLY: fills T_NAME, T_KIND (unit|integration), T_PATH, T_LANE (pool|alone) in
# name order (unit tests first, as they mirror the product tree).
test_list() {
    local only=$1 t name
    T_NAME=() T_KIND=() T_PATH=() T_LANE=()
    for t in $(cd "$BUILD" && find tests/unit -type f -name 'test_*' -perm -u+x | sort); do
        name=${t#tests/unit/}
        name=${name//\//_}
        [[ $name == *"$only"* ]] || continue
        T_NAME+=("$name") T_KIND+=(unit) T_PATH+=("$BUILD/$t") T_LANE+=(pool)
    done
    for t in "$ROOT"/tests/integration/test_*.sh; do
        name=$(basename "$t" .sh)
        [[ $name == *"$only"* ]] || continue
        T_NAME+=("$name") T_KIND+=(integration) T_PATH+=("$t")
        if awk 'NR > 20 {exit} /^# test-lane: alone/ {found = 1} END {exit !found}' "$t"; then T_LANE+=(alone); else T_LANE+=(pool); fi
    done
}

# test_order: prints the indexes of T_NAME in the order they start: the pool by expected
# time, longest first, then the tests that run alone, also longest first. Expected: the
# time of the last run in this build, else tests/test-times.txt, else 9999 s.
test_order() {
    local i
    for i in "${!T_NAME[@]}"; do
        echo "$i ${T_KIND[$i]}/${T_NAME[$i]} ${T_LANE[$i]}"
    done | awk -v committed="$ROOT/tests/test-times.txt" -v measured="$BUILD/test-times.txt" '
        BEGIN {
            while ((getline line < committed) > 0) { split(line, f, " "); t[f[2]] = f[1] }
            while ((getline line < measured) > 0) { split(line, f, " "); t[f[2]] = f[1] }
        }
        { est = ($2 in t) ? t[$2] : 9999; print ($3 == "alone"), est, $1 }' |
        sort -k1,1n -k2,2gr -k3,3n | awk '{print $3}'
}

# test_file I: the path prefix of test I's files (a unit and an integration test may share
# a name: test_tickets).
test_file() { echo "$tmp/${T_KIND[$1]}.${T_NAME[$1]}"; }

# test_start I: runs test I in the background; its output in $(test_file I).out and .err,
# its exit status in .rc, its wall time in microseconds in .us, its sanitizer reports in
# the directory .san/. Sets RUN_PID.
test_start() {
    local i=$1 name=${T_NAME[$1]} f
    f=$(test_file "$1")
    (
        set +e
        if [ "${IOTHUB_SANITIZERS:-0}" = 1 ]; then
            mkdir -p "$f.san"
            chmod 0777 "$f.san"
            export ASAN_OPTIONS="log_path=$f.san/asan:$SAN_ASAN"
            export UBSAN_OPTIONS="log_path=$f.san/ubsan:$SAN_UBSAN"
        fi
        s=${EPOCHREALTIME/./}
        if [ "${T_KIND[$i]}" = unit ]; then
            mkdir -p "$tmp/unit/$name"
            (cd "$tmp/unit/$name" && "${T_PATH[$i]}") >"$f.out" 2>"$f.err"
        else
            bash "${T_PATH[$i]}" >"$f.out" 2>"$f.err"
        fi
        echo $? >"$f.rc"
        echo $((${EPOCHREALTIME/./} - s)) >"$f.us"
    ) &
    RUN_PID=$!
}

# secs US: microseconds as seconds with one decimal.
secs() { printf '%d.%d' $(($1 / 1000000)) $(($1 % 1000000 / 100000)); }

cmd_test() {
    only=${1:-} # run only the tests whose name contains this
    local jobs=${IOTHUB_TEST_JOBS:-$TEST_JOBS_DEFAULT}
    [[ $jobs =~ ^[1-9][0-9]*$ ]] || die "IOTHUB_TEST_JOBS must be a positive integer"
    install_missing
    build
    tmp=$(mktemp -d /tmp/iothub-test.XXXXXX)
    chmod 0755 "$tmp"
    out="$tmp/results.txt"
    : >"$out"
    # Tests side by side each run one or two iothubd (8 pooled connections and a few more
    # each) and psql: more than PostgreSQL's default 100 connections.
    PG_FSYNC=off PG_MAX_CONNECTIONS=$((100 + 60 * jobs)) pg_start "$tmp/pg"
    declare -gA test_of=() # pid -> index of the tests running now
    trap 'test_stop_all; pg_stop "$tmp/pg"; rm -rf "$tmp"' EXIT

    export IOTHUB_TEST_ROOT="$ROOT" IOTHUB_TEST_BUILD="$BUILD" IOTHUB_TEST_PGSOCK="$tmp/pg/sock"
    export IOTHUB_TEST_PGBIN="$PGBIN" IOTHUB_TEST_TMP="$tmp"
    # Every instrumented process (iothubd, unit tests, tools) writes its ASan, LSan or UBSan
    # report in the directory of the test that started it; collect counts a report there
    # as a failure of that test.
    SAN_ASAN="detect_leaks=1:verify_asan_link_order=0:strict_string_checks=1:detect_stack_use_after_return=1"
    SAN_UBSAN="print_stacktrace=1:halt_on_error=1"

    test_list "$only"
    local order n=${#T_NAME[@]} next=0 i pid alone=0 started
    mapfile -t order < <(test_order)
    log "$n test(s), $jobs at a time"
    started=${EPOCHREALTIME/./}
    while [ "$next" -lt "$n" ] || [ ${#test_of[@]} -gt 0 ]; do
        while [ "$next" -lt "$n" ] && [ ${#test_of[@]} -lt "$jobs" ] && [ "$alone" = 0 ]; do
            i=${order[$next]}
            if [ "${T_LANE[$i]}" = alone ]; then
                [ ${#test_of[@]} = 0 ] || break # it waits until the others are done
                alone=1
            fi
            test_start "$i"
            test_of[$RUN_PID]=$i
            next=$((next + 1))
        done
        pid=
        wait -n -p pid "${!test_of[@]}" || true
        [ -n "$pid" ] && [ -n "${test_of[$pid]:-}" ] || continue
        i=${test_of[$pid]}
        unset "test_of[$pid]"
        [ "${T_LANE[$i]}" = alone ] && alone=0
        log "${T_KIND[$i]}: ${T_NAME[$i]} ($(secs "$(cat "$(test_file "$i").us" 2>/dev/null || echo 0)") s)"
    done
    local wall=$((${EPOCHREALTIME/./} - started))

    for i in "${!T_NAME[@]}"; do
        collect "${T_NAME[$i]}" "$(cat "$(test_file "$i").rc" 2>/dev/null || echo 'unknown')" "$(test_file "$i")"
    done
    test_times
    log "wall time $(secs "$wall") s with $jobs job(s); the slowest tests:"
    for i in "${!T_NAME[@]}"; do
        echo "$(cat "$(test_file "$i").us" 2>/dev/null || echo 0) ${T_KIND[$i]}/${T_NAME[$i]} ${T_LANE[$i]/pool/-}"
    done | sort -k1,1nr | awk 'NR <= 10' | while read -r us name lane; do
        log "  $(secs "$us") s  $name ${lane/-/}"
    done

    local passed failed
    passed=$(grep -c '^ok ' "$out" || true)
    failed=$(grep -c '^not ok ' "$out" || true)
    grep '^not ok ' "$out" >&2 || true
    echo "$passed passed, $failed failed"
    [ "$failed" = 0 ] && [ "$passed" -gt 0 ]
}

# test_stop_all: on an early exit (Ctrl-C), stops the test runs still going.
test_stop_all() {
    local pid
    for pid in "${!test_of[@]}"; do kill "$pid" 2>/dev/null || true; done
}

# test_times: $BUILD/test-times.txt keeps "SECONDS KIND/NAME" of every test last run there, for
# the order of the next run.
test_times() {
    local file=$BUILD/test-times.txt i
    {
        for i in "${!T_NAME[@]}"; do
            if [ -f "$(test_file "$i").us" ]; then
                echo "$(secs "$(cat "$(test_file "$i").us")") ${T_KIND[$i]}/${T_NAME[$i]}"
            fi
        done
        if [ -f "$file" ]; then cat "$file"; fi
    } | awk '!seen[$2]++' | sort -k2 >"$file.new"
    mv "$file.new" "$file"
}

# collect NAME RC FILE: appends a test program's ok/not ok lines (FILE.out); a crash or a
# non-zero exit without a failing line counts as one failure, and so does each sanitizer
# report in the test's own report directory (FILE.san/). Failing output is shown.
collect() {
    local name=$1 rc=$2 f="$3.out" san="$3.san" err="$3.err"
    sed -e "s/^\(not ok\|ok\) - /\1 - $name: /" "$f" | grep -E '^(ok|not ok) ' >>"$out" || true
    if [ "$rc" != 0 ] && ! grep -q '^not ok ' "$f"; then
        echo "not ok - $name: exited with status $rc" >>"$out"
    fi
    local report
    for report in "$san"/*.[0-9]*; do
        [ -f "$report" ] || continue
        echo "not ok - $name: sanitizer report $(basename "$report")" >>"$out"
        { echo "---- $name: $(basename "$report")"; head -n 80 "$report"; } >&2
        rc=1
    done
    if [ "$rc" != 0 ] || grep -q '^not ok ' "$f"; then
        { echo "---- $name output"; cat "$f"; echo "---- $name stderr"; tail -n 60 "$err"; } >&2
    fi
}

# ---- fuzzing: libFuzzer targets in tests/fuzz/ (docs/fuzzing.md) ----------------------------
FUZZ_BUILD=${IOTHUB_FUZZ_BUILD_DIR:-$ROOT/build-fuzz}
FUZZ_SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined"

# fuzz_build: libiothub.a compiled by clang with libFuzzer coverage and ASan + UBSan in
# $FUZZ_BUILD (the gcc build is not touched), then $FUZZ_BUILD/fuzz/fuzz_NAME for each
# tests/fuzz/fuzz_NAME.c, linked with -fsanitize=fuzzer.
fuzz_build() {
    regenerate
    command -v clang >/dev/null || die "clang not found (apt-get install clang libclang-rt-14-dev)"
    mkdir -p "$FUZZ_BUILD/fuzz"
    cd "$FUZZ_BUILD"
    if [ ! -f Makefile ] || [ "$ROOT/configure" -nt Makefile ]; then
        log "configure (clang, libFuzzer) in $FUZZ_BUILD"
        "$ROOT/configure" -q CC=clang LDFLAGS="$FUZZ_SAN" \
            CFLAGS="-g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer-no-link $FUZZ_SAN"
    fi
    log "make libiothub.a (fuzz)"
    make -s -j"$(nproc)" libiothub.a >/dev/null
    local hub cppflags libs src bin
    hub=$(sed -n 's/^HUB_CFLAGS = //p' Makefile)
    cppflags=$(sed -n 's/^CPPFLAGS = //p' Makefile)
    libs=$(sed -n 's/^LIBS = //p' Makefile)
    for src in "$ROOT"/tests/fuzz/fuzz_*.c; do
        bin="$FUZZ_BUILD/fuzz/$(basename "$src" .c)"
        if [ -x "$bin" ] && [ "$bin" -nt "$src" ] && [ "$bin" -nt libiothub.a ] &&
            [ -z "$(find "$ROOT/tests/fuzz" -maxdepth 1 -name '*.h' -newer "$bin")" ]; then
            continue
        fi
        log "clang $(basename "$src")"
        # shellcheck disable=SC2086
        clang $hub -Werror -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer $FUZZ_SAN \
            $cppflags -I"$ROOT" -I"$FUZZ_BUILD" "$src" libiothub.a $libs -o "$bin"
    done
}

# fuzz_targets [NAME]: the target names (fuzz_NAME.c), or NAME alone if it exists.
fuzz_targets() {
    local src name
    for src in "$ROOT"/tests/fuzz/fuzz_*.c; do
        name=$(basename "$src" .c)
        name=${name#fuzz_}
        if [ -z "${1:-}" ] || [ "$1" = "$name" ] || [ "$1" = "fuzz_$name" ]; then echo "$name"; fi
    done
}

# fuzz_run NAME SECONDS DIR: runs fuzz_NAME for SECONDS on DIR/NAME/corpus (seeded with a
# copy of tests/fuzz/corpus/NAME; new inputs stay there), reproducers in DIR/NAME/artifacts.
# Prints "fuzz_NAME: N executions (R exec/s), C corpus inputs" and returns 0, or prints the
# finding and the reproducer and returns 1.
fuzz_run() {
    local name=$1 secs=$2 dir=$3/$1 bin="$FUZZ_BUILD/fuzz/fuzz_$1" rc=0
    mkdir -p "$dir/corpus" "$dir/artifacts"
    cp -n "$ROOT/tests/fuzz/corpus/$name"/* "$dir/corpus/" 2>/dev/null || true
    ASAN_OPTIONS="detect_leaks=1" \
        UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
        "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -close_fd_mask=2 -artifact_prefix="$dir/artifacts/" "$dir/corpus" \
        >"$dir/log" 2>&1 || rc=$?
    local execs rate inputs
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$dir/log" | tail -n 1)
    inputs=$(find "$dir/corpus" -type f | wc -l)
    if [ "$rc" = 0 ] && [ -n "$execs" ]; then
        echo "fuzz_$name: ${execs} executions (${rate} exec/s), ${inputs} corpus inputs"
        return 0
    fi
    echo "fuzz_$name: FAILED (exit status $rc) after ${execs:-?} executions"
    grep -E 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|SUMMARY:' \
        "$dir/log" | head -n 5 | sed 's/^/    /'
    local repro
    repro=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$dir/log" | tail -n 1)
    echo "    reproducer: ${repro:-none written}; full log: $dir/log"
    [ -n "$repro" ] && echo "    rerun: $bin $repro"
    return 1
}

# ./deploy/dev.sh fuzz [SECONDS] [TARGET]: each target (or TARGET) for SECONDS (default 60).
cmd_fuzz() {
    local secs=${1:-60} only=${2:-} dir=${IOTHUB_FUZZ_DIR:-$DEV/fuzz} failed=0 name
    [[ $secs =~ ^[0-9]+$ ]] && [ "$secs" -gt 0 ] || die "fuzz: SECONDS must be a positive integer"
    local targets
    targets=$(fuzz_targets "$only")
    [ -n "$targets" ] || die "fuzz: no target named $only (tests/fuzz/fuzz_*.c)"
    install_missing
    fuzz_build
    mkdir -p "$dir"
    for name in $targets; do
        fuzz_run "$name" "$secs" "$dir" || failed=$((failed + 1))
    done
    [ "$failed" = 0 ] || die "fuzz: $failed target(s) found a problem"
}

# ./deploy/dev.sh bench [OPTIONS]: tsung and mosquitto too, a private PostgreSQL, then
# tests/bench/compare.sh (it starts iothubd and Mosquitto and prints the table).
cmd_bench() {
    PACKAGES+=(tsung mosquitto)
    install_missing
    build
    tmp=$(mktemp -d /tmp/iothub-bench.XXXXXX)
    chmod 0755 "$tmp"
    pg_start "$tmp/pg"
    trap 'pg_stop "$tmp/pg"; rm -rf "$tmp"' EXIT
    local script=compare.sh
    # --durability: QoS 1 with and without persistent subscribers (tests/bench/durability.sh)
    if [ "${1:-}" = --durability ]; then script=durability.sh; shift; fi
    # --backbone: the cost of a second node (tests/bench/backbone.sh)
    if [ "${1:-}" = --backbone ]; then script=backbone.sh; shift; fi
    IOTHUB_BENCH_BUILD="$BUILD" IOTHUB_BENCH_PGSOCK="$tmp/pg/sock" IOTHUB_BENCH_TMP="$tmp" \
        bash "$ROOT/tests/bench/$script" "$@"
}

# ./deploy/dev.sh bench-revocation [OPTIONS]: a private PostgreSQL, then
# tests/bench/revocation.sh (revocation time with 0/100k/1M revoked, CRL sizes, DB growth).
cmd_bench_revocation() {
    install_missing
    build
    tmp=$(mktemp -d /tmp/iothub-bench.XXXXXX)
    chmod 0755 "$tmp"
    pg_start "$tmp/pg"
    trap 'pg_stop "$tmp/pg"; rm -rf "$tmp"' EXIT
    IOTHUB_BENCH_BUILD="$BUILD" IOTHUB_BENCH_PGSOCK="$tmp/pg/sock" IOTHUB_BENCH_TMP="$tmp" \
        bash "$ROOT/tests/bench/revocation.sh" "$@"
}

# ./deploy/dev.sh soak [MINUTES]: a private PostgreSQL, then tests/bench/soak.sh.
cmd_soak() {
    install_missing
    build
    tmp=$(mktemp -d /tmp/iothub-soak.XXXXXX)
    chmod 0755 "$tmp"
    pg_start "$tmp/pg"
    trap 'pg_stop "$tmp/pg"; rm -rf "$tmp"' EXIT
    IOTHUB_BENCH_BUILD="$BUILD" IOTHUB_BENCH_PGSOCK="$tmp/pg/sock" IOTHUB_BENCH_TMP="$tmp" \
        bash "$ROOT/tests/bench/soak.sh" "$@"
}

case "${1:-}" in
    run) cmd_run ;;
    test) cmd_test "${2:-}" ;;
    build) install_missing; build ;;
    fuzz) cmd_fuzz "${2:-}" "${3:-}" ;;
    bench) shift; cmd_bench "$@" ;;
    bench-revocation) shift; cmd_bench_revocation "$@" ;;
    soak) shift; cmd_soak "$@" ;;
    *) echo "usage: $0 run|test [NAME]|build|fuzz [SECONDS] [TARGET]|bench [OPTIONS]|bench-revocation [OPTIONS]|soak [MINUTES]" >&2; exit 2 ;;
esac
