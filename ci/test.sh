#!/usr/bin/env bash
# The test command: installs dependencies, builds, runs the whole test suite with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/setup-debian.sh
bash ci/build.sh
build=${KVBENCH_BUILD_DIR:-build}
ctest --test-dir "$build" --output-on-failure -j "${KVBENCH_JOBS:-$(nproc)}"
