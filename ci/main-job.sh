#!/usr/bin/env bash
# The main job: installs dependencies, builds, verifies every default implementation, runs the
# quick benchmark sweep and writes the scaling report.
#   out/bench-quick.json          Google Benchmark JSON (compare.py reads it)
#   out/report/report.html        self-contained report (plots embedded); summary.md,
#                                 fits.json and every plot as SVG and PNG beside it
#   out/bench-llama2-7b.json,     the DRAM-bound point: cpu_cached decode steps on one
#   out/report-llama2-7b/         Llama-2-7B layer (256 MiB of weights; at the auto long
#                                 position its K/V is >= 8x the last-level cache), where the
#                                 bandwidth, floor and 2-thread targets are judged (the
#                                 default shape's K/V never gets past 4x a 32 MiB LLC)
# KVBENCH_OUT_DIR changes out/; KVBENCH_BUILD_DIR changes build/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/setup-debian.sh
bash ci/build.sh
build=${KVBENCH_BUILD_DIR:-build}
out=${KVBENCH_OUT_DIR:-out}
mkdir -p "$out"
"$build/kvbench" list
"$build/kvbench" verify --impl all
"$build/kvbench" bench --quick --out "$out/bench-quick.json"
"$build/kvbench" report "$out/bench-quick.json" --out "$out/report"
"$build/kvbench" bench --shape llama2-7b --impl cpu_cached --tokens none --positions 16 \
  --long-positions auto --threads 1,2 --serving none --out "$out/bench-llama2-7b.json"
"$build/kvbench" report "$out/bench-llama2-7b.json" --out "$out/report-llama2-7b"
echo "main job: report in $out/report/report.html (summary: $out/report/summary.md);" \
  "DRAM-bound point in $out/report-llama2-7b/report.html"
