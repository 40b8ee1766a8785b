#!/usr/bin/env bash
# The main job: installs dependencies, builds, verifies every default implementation, runs the
# quick benchmark sweep and writes the scaling report.
#   out/bench-quick.json          Google Benchmark JSON (compare.py reads it)
#   out/report/report.html        self-contained report (plots embedded); summary.md,
#                                 fits.json and every plot as SVG and PNG beside it
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
echo "main job: report in $out/report/report.html (summary: $out/report/summary.md)"
