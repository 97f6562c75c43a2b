#!/usr/bin/env bash
# deploy/Dockerfile copies only the source folders into its build stage (so that edits to
# docs or tests keep the compile layer cached): every top-level folder holding product C
# sources must be among them, or the image does not build (CI has no podman to find out).
. "$(dirname "$0")/lib.sh"

missing=
for d in "$ROOT"/*/; do
    d=$(basename "$d")
    case $d in tests | build* | deploy | docs | m4 | autom4te.cache | build-aux) continue ;; esac
    ls "$ROOT/$d"/*.c >/dev/null 2>&1 || continue
    grep -qx "COPY $d/ $d/" "$ROOT/deploy/Dockerfile" || missing="$missing $d"
done
[ -z "$missing" ]
expect "deploy/Dockerfile copies every source folder into its build stage${missing:+ (missing:$missing)}" $?
finish
