#!/usr/bin/env bash
# Render a run root's report in headless Chromium and check that it draws.
#
#   benchmarks/report_screenshot.sh ROOT [SCREENSHOT.png]
#
# Writes ROOT's report with `pinsage report --root ROOT --out TMP/report.html`, opens
# it as file:// in `chromium --headless --screenshot` at 1280x4000 (the page loads
# nothing from the network, so what Chromium draws is the whole page), and checks that
# a PNG was written. Prints the screenshot's path (default: ROOT/report.png); look at
# it to judge the layout. Make a root with `pinsage demo --out pinsage-demo` (or
# `pinsage pipeline --config FILE --root DIR`).
#
# Exit: 0 a PNG was written; 1 Chromium wrote none (its log is printed); 2 bad usage
# or no Chromium. Environment: PINSAGE (default: `pinsage` on PATH, else
# .venv/bin/pinsage), CHROMIUM (default: chromium; Debian: apt-get install chromium).
set -euo pipefail

if [[ $# -lt 1 || $# -gt 2 ]]; then
    sed -n '2,16p' "$0" >&2
    exit 2
fi
root=$1
shot=$(realpath -m "${2:-$root/report.png}")
here=$(cd "$(dirname "$0")/.." && pwd)
pinsage=${PINSAGE:-$(command -v pinsage || echo "$here/.venv/bin/pinsage")}
chromium=${CHROMIUM:-chromium}
if ! command -v "$chromium" >/dev/null; then
    echo "no $chromium on PATH (Debian: apt-get install chromium)" >&2
    exit 2
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$pinsage" -q report --root "$root" --out "$work/report.html" >/dev/null

# --no-sandbox: Chromium refuses to run as root with its sandbox (CI containers);
# a fresh profile directory keeps concurrent runs apart.
sandbox=()
[[ $(id -u) -eq 0 ]] && sandbox=(--no-sandbox)
rm -f "$shot"
"$chromium" --headless "${sandbox[@]}" --disable-gpu --hide-scrollbars \
    --no-first-run --user-data-dir="$work/profile" --window-size=1280,4000 \
    --screenshot="$shot" "file://$work/report.html" >"$work/chromium.log" 2>&1 || true

signature=$(head -c 8 "$shot" 2>/dev/null | od -An -tx1 | tr -d ' \n')
if [[ $signature != 89504e470d0a1a0a ]]; then
    echo "chromium wrote no PNG at $shot; its log:" >&2
    cat "$work/chromium.log" >&2
    exit 1
fi
echo "$shot"
