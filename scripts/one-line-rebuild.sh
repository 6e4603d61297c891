#!/bin/sh
# What a one-line change costs a contributor: appends a comment line to FILE, rebuilds BUILD_DIR and
# runs all of its tests, prints both durations, then restores FILE (with a new modification time,
# so the next build compiles its original content again).
#
#   scripts/one-line-rebuild.sh build/dev include/traincb/callbacks/early_stopping-inl.hpp
#   scripts/one-line-rebuild.sh build/dev include/traincb/callbacks/early_stopping.hpp
#
# BUILD_DIR must be configured (e.g. by `cmake --workflow --preset dev`); it is brought up to date
# first. The build and ctest logs are left in BUILD_DIR/one-line-{build,ctest}.log.
set -eu
usage="usage: scripts/one-line-rebuild.sh BUILD_DIR FILE"
build=${1:?$usage}
file=${2:?$usage}
[ -f "$file" ] || { echo "one-line-rebuild: no file $file" >&2; exit 2; }
jobs=$(nproc 2>/dev/null || echo 2)
now() { date +%s.%N; }

cmake --build "$build" -j "$jobs" >/dev/null
backup=$(mktemp)
cp "$file" "$backup"
restore() { cat "$backup" >"$file"; rm -f "$backup"; }
trap restore EXIT
echo "// one-line change (scripts/one-line-rebuild.sh)" >>"$file"

t0=$(now)
cmake --build "$build" -j "$jobs" >"$build/one-line-build.log"
t1=$(now)
status=0
ctest --test-dir "$build" -j "$jobs" --output-on-failure >"$build/one-line-ctest.log" 2>&1 || status=$?
t2=$(now)
steps=$(grep -c '^\[' "$build/one-line-build.log" || true)
tests=$(grep -E '^[0-9]+% tests passed' "$build/one-line-ctest.log" || echo "ctest failed, see $build/one-line-ctest.log")
awk -v a="$t0" -v b="$t1" -v c="$t2" -v f="$file" -v n="$steps" -v t="$tests" 'BEGIN {
  printf "one line appended to %s\n  rebuild: %.0f s (%d build steps)\n  ctest:   %.0f s (%s)\n  total:   %.0f s\n", f, b - a, n, c - b, t, c - a }'
exit "$status"
