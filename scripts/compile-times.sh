#!/usr/bin/env bash
# Measures what including traincb costs a user at compile time, as fmt publishes its own: each
# file of benchmarks/compile_time/ is compiled (-c, no link) REPEAT times and the fastest run's wall
# time, CPU time (user + system: less disturbed by other load than the wall time) and peak memory
# are printed, with the wall-time difference to baseline.cpp (a file that includes only Eigen/Core
# and nlohmann/json.hpp, which every traincb user pays anyway); then the same files in the compiled
# mode (-DTRAINCB_COMPILED: what a translation unit pays when it links traincb::compiled).
#   scripts/compile-times.sh [REPEAT]          (default 3)
# Environment: CXX (default g++), CXXFLAGS (default "-O2 -std=c++20"), NICE (e.g. "nice -n 15"),
# TRAINCB_INCLUDE (the include directory measured; default: this tree's, e.g. another checkout's
# to compare two versions).
# Needs /usr/bin/time (Debian: apt-get install time). Run it on an otherwise idle machine: the
# figures are wall times.
set -euo pipefail
export LC_ALL=C

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
repeat="${1:-3}"
cxx="${CXX:-g++}"
include_dir="${TRAINCB_INCLUDE:-$root/include}"
read -r -a flags <<<"${CXXFLAGS:--O2 -std=c++20}"
read -r -a nice_cmd <<<"${NICE:-}"
eigen_flags=(-I/usr/include/eigen3)
if command -v pkg-config >/dev/null 2>&1 && pkg-config --exists eigen3; then
  read -r -a eigen_flags <<<"$(pkg-config --cflags-only-I eigen3)"
fi
if [ ! -x /usr/bin/time ]; then
  echo "compile-times: /usr/bin/time is missing (Debian: apt-get install time)" >&2
  exit 1
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# measure FILE: prints "wall cpu kilobytes" of the fastest of `repeat` compilations.
measure() {
  local best_s="" best_cpu="" best_kb="" i s user sys kb
  for ((i = 0; i < repeat; ++i)); do
    "${nice_cmd[@]}" /usr/bin/time -f '%e %U %S %M' -o "$work/time" \
      "$cxx" "${flags[@]}" -I"$include_dir" "${eigen_flags[@]}" -c "$1" -o "$work/out.o"
    read -r s user sys kb <"$work/time"
    if [ -z "$best_s" ] || awk -v a="$s" -v b="$best_s" 'BEGIN { exit !(a < b) }'; then
      best_s="$s"
      best_cpu="$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')"
      best_kb="$kb"
    fi
  done
  echo "$best_s $best_cpu $best_kb"
}

echo "$("$cxx" --version | head -n 1); flags: ${flags[*]}; best of $repeat"
printf '%-36s %9s %8s %10s %9s\n' "file" "wall (s)" "cpu (s)" "peak (MB)" "vs base"
read -r base_s base_cpu base_kb < <(measure "$root/benchmarks/compile_time/baseline.cpp")
row() {  # row NAME WALL CPU KILOBYTES
  awk -v n="$1" -v s="$2" -v c="$3" -v kb="$4" -v b="$base_s" 'BEGIN {
    d = n == "baseline.cpp" ? "-" : sprintf("%+.2fs", s - b)
    printf "%-36s %9.2f %8.2f %10.0f %9s\n", n, s, c, kb / 1024, d }'
}
row baseline.cpp "$base_s" "$base_cpu" "$base_kb"
for f in early_stopping_only metrics_only trainer_early_stopping umbrella; do
  read -r s cpu kb < <(measure "$root/benchmarks/compile_time/$f.cpp")
  row "$f.cpp" "$s" "$cpu" "$kb"
done
# The compiled mode (traincb/detail/config.hpp): the same files with TRAINCB_COMPILED, whose
# non-template bodies come from the traincb::compiled library (compiled once, not measured here).
flags+=(-DTRAINCB_COMPILED)
for f in early_stopping_only trainer_early_stopping umbrella; do
  read -r s cpu kb < <(measure "$root/benchmarks/compile_time/$f.cpp")
  row "$f.cpp, compiled" "$s" "$cpu" "$kb"
done
