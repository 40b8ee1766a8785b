#!/usr/bin/env bash
# Regenerates a committed benchmark run and its report (README's scaling plot comes from here).
#   bash reports/results/regenerate.sh quick   -> reports/results/default-quick/  (bench --quick)
#   bash reports/results/regenerate.sh full    -> reports/results/default-full/   (full sweep)
#   bash reports/results/regenerate.sh dram    -> reports/results/llama2-7b-dram/ (cpu_cached
#        decode steps on llama2-7b at t = 16 and the auto long position, K/V >= 8x the LLC:
#        where the bandwidth, floor and 2-thread targets are judged)
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
  dram) flags=(--shape llama2-7b --impl cpu_cached --tokens none --positions 16
               --long-positions auto --threads 1,2) ;;
  *) echo "usage: $0 quick|full|dram [kvbench bench options]" >&2; exit 2 ;;
esac
build=${KVBENCH_BUILD_DIR:-build}
[ -x "$build/kvbench" ] || bash ci/build.sh
dir=reports/results/default-$mode
[ "$mode" = dram ] && dir=reports/results/llama2-7b-dram
rm -rf "$dir"
mkdir -p "$dir"
"$build/kvbench" bench "${flags[@]}" "$@" --out "$dir/bench.json"
"$build/kvbench" report "$dir/bench.json" --out "$dir"
echo "regenerated $dir"
