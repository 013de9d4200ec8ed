#!/usr/bin/env bash
# report-screenshot.sh REPORT.html OUT.png [WIDTH HEIGHT]: the top of a report as headless
# Chromium draws it (docs/report.png comes from the demo run: make report-screenshot).
set -euo pipefail
html=$(realpath "$1") out=$2 width=${3:-1280} height=${4:-1700}
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
/usr/bin/chromium --headless --no-sandbox --disable-gpu --disable-background-networking \
  --disable-component-update --disable-sync --no-first-run --user-data-dir="$profile" \
  --hide-scrollbars --window-size="$width,$height" --screenshot="$(realpath -m "$out")" \
  "file://$html" 2>/dev/null
echo "wrote $out ($(stat -c %s "$out") bytes)"
