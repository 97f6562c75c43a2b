#!/usr/bin/env bash
# ./deploy/dev.sh soak (issue 19, docs/security.md#soak), shortened: tests/bench/soak.sh, the
# script `soak` runs, for 15 s with a line every 5 s, on this test's PostgreSQL. Checks the
# report's lines (an RSS and bystander line per interval, the summary, the load counters)
# and that the smuggling requests were all refused, not the numbers (this machine is shared).
# test-lane: alone (it loads the machine with a flood for 15 s; deploy/dev.sh runs nothing beside it)
. "$(dirname "$0")/lib.sh"
cd "$T" || exit 1

IOTHUB_BENCH_BUILD=$BUILD IOTHUB_BENCH_PGSOCK=$PGSOCK IOTHUB_BENCH_TMP=$T \
    IOTHUB_SOAK_SECONDS=15 IOTHUB_SOAK_INTERVAL=5 IOTHUB_SOAK_OUT=$T/out \
    timeout 240 bash "$ROOT/tests/bench/soak.sh" >soak.out 2>soak.err
expect "soak.sh ran to its end (exit status $?)" $?
cat soak.out

n=$(grep -cE '^\[soak\] t=[0-9]+s rss=[0-9.]+MB bystander n=[1-9][0-9]* p50=[0-9.]+ms p99=[0-9.]+ms max=[0-9.]+ms errors=[0-9]+( \(3 s before the load\))?$' soak.out)
[ "$n" = 4 ]
expect "an RSS + bystander line before the load and one per 5 s interval ($n of 4)" $?
grep -qE '^\[soak\] summary: rss start [0-9.]+MB max [0-9.]+MB end [0-9.]+MB; bystander p99 before [0-9.]+ ms, max under load [0-9.]+ ms \(intervals: 3\)$' soak.out
expect "the summary line (RSS start/max/end, p99 max)" $?
grep -qE '^\[soak\] load: normal [1-9][0-9]* acked .* backend received [1-9][0-9]*; attacker: [1-9][0-9]* retained, [1-9][0-9]* filters .* REST guesses [1-9][0-9]* .* smuggling [1-9][0-9]* \{"400": [0-9]+\}$' soak.out
expect "the load line: normal traffic flowed, every attack ran, every smuggling attempt got one 400" $?
grep -q 'iothubd is gone' soak.out
[ $? != 0 ]
expect "iothubd survived the soak" $?
finish
