#!/usr/bin/env bash
# Regenerates a committed benchmark run and its report (README's scaling plot comes from here).
#   bash reports/results/regenerate.sh quick   -> reports/results/default-quick/  (bench --quick)
#   bash reports/results/regenerate.sh full    -> reports/results/default-full/   (full sweep)
# Further arguments go to `kvbench bench` (e.g. --repetitions 3). Builds first if needed.
# Each directory holds bench.json (Google Benchmark JSON) and what `kvbench report` writes:
# report.html, summary.md, fits.json, {scaling,latency,speedup,memory,bandwidth}.{svg,png}.
set -euo pipefail
cd "$(dirname "$0")/../.."
mode=${1:-quick}
shift || true
case "$mode" in
  quick) flags=(--quick) ;;
  full) flags=() ;;
  *) echo "usage: $0 quick|full [kvbench bench options]" >&2; exit 2 ;;
esac
build=${KVBENCH_BUILD_DIR:-build}
[ -x "$build/kvbench" ] || bash ci/build.sh
dir=reports/results/default-$mode
rm -rf "$dir"
mkdir -p "$dir"
"$build/kvbench" bench "${flags[@]}" "$@" --out "$dir/bench.json"
"$build/kvbench" report "$dir/bench.json" --out "$dir"
echo "regenerated $dir"
