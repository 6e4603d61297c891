#!/usr/bin/env bash
# Builds the libFuzzer targets with clang++ and fuzzes the safetensors reader.
#   scripts/run-fuzz.sh [BUILD_DIR] [SECONDS]     (defaults: build/fuzz, 60)
# Exits non-zero when the fuzzer finds a crash (the reproducer is left in BUILD_DIR/fuzz-artifacts);
# prints a skip message and exits 0 when clang++ is not installed.
set -euo pipefail
export LC_ALL=C

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$root/build/fuzz}"
seconds="${2:-60}"

if ! command -v clang++ >/dev/null 2>&1; then
  echo "run-fuzz: SKIPPED: clang++ is not installed (libFuzzer needs clang)"
  exit 0
fi

generator=()
if command -v ninja >/dev/null 2>&1; then generator=(-G Ninja); fi
cmake -S "$root" -B "$build" "${generator[@]}" \
  -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTRAINCB_FUZZ=ON \
  -DTRAINCB_BUILD_TESTS=OFF -DTRAINCB_BUILD_EXAMPLES=OFF -DTRAINCB_INSTALL=OFF -DTRAINCB_WERROR=ON >/dev/null
cmake --build "$build" -j2 --target fuzz_safetensors

# Seed corpus: small valid files (the worked files of docs/safetensors-format.md and a few more),
# written by hand:
# 8-byte little-endian header length, the header padded with spaces to a multiple of 8, the data.
corpus="$build/fuzz-corpus/safetensors"
mkdir -p "$corpus" "$build/fuzz-artifacts"
seed() {  # seed FILE HEADER DATA(printf escapes)
  local header="$2"
  local pad=$(( (8 - ${#header} % 8) % 8 ))
  header="$header$(printf '%*s' "$pad" '')"
  local n=${#header}
  {
    printf "$(printf '\\x%02x\\x%02x\\x%02x\\x%02x\\x00\\x00\\x00\\x00' $((n & 255)) $((n >> 8 & 255)) \
      $((n >> 16 & 255)) $((n >> 24 & 255)))"
    printf '%s' "$header"
    printf "$3"
  } >"$corpus/$1"
}
seed empty '{}' ''
seed metadata '{"__metadata__":{"framework":"pt"}}' ''
seed attn '{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}' \
  '\x00\x00\x00\x00\x00\x00\x80\x3f\x00\x00\x00\x40\x00\x00\x40\x40\x00\x00\x80\x40\x00\x00\xa0\x40'
seed mixed '{"__metadata__":{"format":"pt","traincb.epoch":"3"},"c":{"dtype":"I64","shape":[],"data_offsets":[0,8]},"a":{"dtype":"F64","shape":[1],"data_offsets":[8,16]},"b":{"dtype":"F32","shape":[2],"data_offsets":[16,24]},"x":{"dtype":"I32","shape":[1],"data_offsets":[24,28]},"z":{"dtype":"U8","shape":[3],"data_offsets":[28,31]},"y":{"dtype":"BOOL","shape":[2],"data_offsets":[31,33]}}' \
  '\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xf0\x3f\x00\x00\xc0\x3f\x00\x00\x00\xc0\x2a\x00\x00\x00\x07\x08\x09\x01\x00'
seed empty_tensor '{"e":{"dtype":"F64","shape":[0,3],"data_offsets":[0,0]},"u":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}' '\x05\x06'
seed checksum '{"__metadata__":{"traincb.checksum":"xxh64:8a4127811b21e730"},"t":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}' '\x01'
seed f16 '{"h":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}' '\x00\x3c\x00\x40'

dict="$build/fuzz-corpus/safetensors.dict"
cat >"$dict" <<'DICT'
"__metadata__"
"dtype"
"shape"
"data_offsets"
"traincb.checksum"
"xxh64:"
"F32"
"F64"
"I64"
"I32"
"U8"
"BOOL"
"F16"
"BF16"
"F4"
"F6_E2M3"
"F8_E4M3"
"{"
"}"
"["
"]"
":"
","
"\""
"18446744073709551615"
"4294967296"
DICT

echo "run-fuzz: fuzzing parse_safetensors for ${seconds}s (corpus: $corpus)"
set +e
"$build/fuzz/fuzz_safetensors" -max_total_time="$seconds" -max_len=4096 -rss_limit_mb=2048 -timeout=10 \
  -print_final_stats=1 -dict="$dict" -artifact_prefix="$build/fuzz-artifacts/" "$corpus"
status=$?
set -e
if [ "$status" -ne 0 ]; then
  echo "run-fuzz: FAILED: the fuzzer found a crash (exit $status); reproducers in $build/fuzz-artifacts"
  exit "$status"
fi
echo "run-fuzz: no crash in ${seconds}s"
