#!/bin/sh
# traincb quick start, for a bare Debian 12 machine (nothing but the base system is assumed).
#
#   sh scripts/quickstart.sh example   # builds and runs the main example
#   sh scripts/quickstart.sh test      # builds and runs every test (the `dev` workflow preset)
#
# Installs what it needs (compiler, CMake, Ninja and the libraries) when it is missing and the
# script runs as root; otherwise prints the exact apt-get line to run and stops.
set -eu

mode=${1:-}
build_tools="g++ cmake ninja-build"
case "$mode" in
  example) packages="$build_tools libeigen3-dev nlohmann-json3-dev" ;;
  test) packages="$build_tools libeigen3-dev nlohmann-json3-dev catch2 pkg-config openmpi-bin libopenmpi-dev python3" ;;
  *) echo "usage: sh scripts/quickstart.sh example|test" >&2; exit 2 ;;
esac

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "quickstart: this script installs Debian packages; on another system install a C++20 compiler," >&2
  echo "  CMake >= 3.25, Ninja, Eigen 3.4, nlohmann/json 3.11 and Catch2, then run the commands it would:" >&2
  echo "  cmake --workflow --preset dev" >&2
  exit 1
fi

missing=""
for p in $packages; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "quickstart: installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing
  else
    echo "quickstart: missing Debian packages. Run, as root:" >&2
    echo "  apt-get update && apt-get install -y --no-install-recommends$missing" >&2
    exit 1
  fi
fi

cd "$(dirname "$0")/.."
CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc 2>/dev/null || echo 2)}
export CMAKE_BUILD_PARALLEL_LEVEL
CTEST_PARALLEL_LEVEL=${CTEST_PARALLEL_LEVEL:-$CMAKE_BUILD_PARALLEL_LEVEL}
export CTEST_PARALLEL_LEVEL

case "$mode" in
  example)
    cmake -S . -B build/example -G Ninja -DCMAKE_BUILD_TYPE=Release -DTRAINCB_BUILD_TESTS=OFF -DTRAINCB_BUILD_EXAMPLES=ON
    cmake --build build/example --target example_breast_cancer
    ./build/example/examples/example_breast_cancer --out build/example/run
    ;;
  test)
    cmake --workflow --preset dev
    ;;
esac
