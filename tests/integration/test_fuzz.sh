#!/usr/bin/env bash
# Fuzzing smoke run (GitHub issue 7): builds the libFuzzer targets of tests/fuzz/ with clang
# through `deploy/dev.sh fuzz` (the same build and run code as the developer command) and
# runs each for a few seconds on a copy of its seed corpus. A crash, leak, sanitizer report
# or timeout fails that target; docs/fuzzing.md says how to reproduce it.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

SECS=${IOTHUB_FUZZ_TEST_SECONDS:-8}
IOTHUB_FUZZ_DIR="$T/fuzz" "$ROOT/deploy/dev.sh" fuzz "$SECS" >"$T/fuzz.out" 2>"$T/fuzz.err"
rc=$?
failed_targets=0
for src in "$ROOT"/tests/fuzz/fuzz_*.c; do
    name=$(basename "$src" .c)
    line=$(grep "^$name: " "$T/fuzz.out")
    execs=$(sed -n "s/^$name: \([0-9][0-9]*\) executions .*/\1/p" <<<"$line")
    if [ -n "$execs" ] && [ "$execs" -gt 0 ]; then
        ok "$name: $execs executions clean"
    else
        msg=${line#"$name: "}
        not_ok "$name: ${msg:-not run (build failed?)}"
        failed_targets=$((failed_targets + 1))
        grep -A3 "^$name: " "$T/fuzz.out" >&2
    fi
done
if [ "$rc" != 0 ] && [ "$failed_targets" = 0 ]; then
    not_ok "deploy/dev.sh fuzz exited with status $rc"
    tail -n 30 "$T/fuzz.err" >&2
fi
finish
