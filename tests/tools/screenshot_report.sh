#!/usr/bin/env bash
# Screenshots an HTML file with headless Chromium (no network, a throwaway profile).
#   tests/tools/screenshot_report.sh report.html out.png [WIDTHxHEIGHT]
# Exit status: 0 on success, 3 when no Chromium is installed (callers skip), else Chromium's.
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: $0 REPORT.html OUT.png [WIDTHxHEIGHT]" >&2
    exit 2
fi
html=$(realpath "$1")
png=$(realpath -m "$2")
size=${3:-1200x1600}
browser=""
for b in chromium chromium-browser; do
    if command -v "$b" >/dev/null 2>&1; then browser=$b; break; fi
done
if [ -z "$browser" ]; then
    echo "screenshot_report.sh: no chromium or chromium-browser on PATH" >&2
    exit 3
fi
profile=$(mktemp -d "${TMPDIR:-/tmp}/traincb_chromium_XXXXXX")
trap 'rm -rf "$profile"' EXIT
rm -f "$png"
# A hung browser must not hang the caller: give it 20 s.
timeout 20 "$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync --hide-scrollbars \
    --user-data-dir="$profile" --screenshot="$png" --window-size="${size/x/,}" "file://$html" \
    >"$profile/out.log" 2>&1 || { status=$?; cat "$profile/out.log" >&2; exit "$status"; }
[ -s "$png" ] || { cat "$profile/out.log" >&2; echo "screenshot_report.sh: no screenshot written" >&2; exit 1; }
