#!/usr/bin/env bash
# The layer check (test_layers.py, issue 12): first on a small made-up tree, that it flags
# exactly the include against the layer order, the include cycles (inside a folder and
# across folders) and the long file planted there; then on the product tree, one line per
# finding (file:line, the include, the rule). Needs neither PostgreSQL nor a build.
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=${IOTHUB_TEST_ROOT:-$(cd "$HERE/../.." && pwd)}
T=$(mktemp -d "${IOTHUB_TEST_TMP:-/tmp}/test_layers.XXXXXX")
trap 'rm -rf "$T"' EXIT
FAILED=0
ok() { echo "ok - $*"; }
not_ok() { echo "not ok - $*"; FAILED=$((FAILED + 1)); }

# ---- the checker on a made-up tree ---------------------------------------------------------
mkdir -p "$T/tree/util" "$T/tree/db" "$T/tree/ca" "$T/tree/mqtt" "$T/tree/api" "$T/tree/tests"
cd "$T/tree" || exit 1
printf '#include "util/log.h"\n' >util/buf.h
printf '#include <stdio.h>\n#include "config.h"\n' >util/log.h
printf '#include "util/buf.h"\n#include "db/db.h"\n' >util/bad.c  # util/ may not include db/
printf '#include "db/db.h"\n' >ca/authority.c                     # its exception: allowed
printf '#include "db/db.h"\n' >ca/cert.c                          # no exception: refused
printf '#include "util/buf.h"\n' >db/db.h
printf '#include "mqtt/topic.h"\n' >mqtt/codec.c                  # codec <-> topic
printf '#include "mqtt/codec.h"\n' >mqtt/topic.c
: >mqtt/codec.h
: >mqtt/topic.h
printf '#include "api/b.h"\n' >api/a.h                            # a -> b -> ca/x -> a
printf '#include "ca/x.h"\n' >api/b.c
: >api/b.h
printf '#include "api/a.h"\n' >ca/x.c
: >ca/x.h
seq 801 | sed 's#^#// #' >db/long.c
seq 800 | sed 's#^#// #' >db/edge.c
printf '#include "db/db.h"\n' >tests/free.c                       # tests/ are free
python3 "$ROOT/tests/integration/test_layers.py" "$T/tree" >"$T/tree.out" 2>&1
rc=$?
cd "$T" || exit 1
cat >expected.out <<'OUT'
not ok - ca/cert.c:1: #include "db/db.h" against the layer order: ca/ may include ca/, util/ only
not ok - ca/x.c:1: #include "api/a.h" against the layer order: ca/ may include ca/, util/ only
not ok - util/bad.c:2: #include "db/db.h" against the layer order: util/ may include util/ only
not ok - include cycle (3 modules in a cycle: api/a, api/b, ca/x): api/a -> api/b -> ca/x -> api/a (api/a.h:1 includes "api/b.h"; api/b.c:1 includes "ca/x.h"; ca/x.c:1 includes "api/a.h")
not ok - include cycle (two modules include each other: mqtt/codec, mqtt/topic): mqtt/codec -> mqtt/topic -> mqtt/codec (mqtt/codec.c:1 includes "mqtt/topic.h"; mqtt/topic.c:1 includes "mqtt/codec.h")
not ok - db/long.c has 801 lines (a product source file: at most 800)
OUT
if [ $rc = 1 ] && diff expected.out tree.out >&2; then
    ok "the check flags exactly the planted problems of a made-up tree (layer order with its ca/authority exception, cycles of 2 and 3 modules across folders, 801 lines; not tests/, not 800 lines)"
else
    not_ok "the check flags exactly the planted problems of a made-up tree"
fi

# ---- the product tree ------------------------------------------------------------------------
python3 "$ROOT/tests/integration/test_layers.py" "$ROOT" >product.out 2>&1
rc=$?
cat product.out
# The findings are the test's own lines; an exit without them (a crash) fails once more.
grep -q '^not ok' product.out && FAILED=$((FAILED + 1))
[ $rc = 0 ] || grep -q '^not ok' product.out || not_ok "the check of the product tree exited $rc"
exit $((FAILED > 0))
