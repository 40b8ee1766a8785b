#!/usr/bin/env bash
# Configures and builds kvbench into ${KVBENCH_BUILD_DIR:-build} (Release, Ninja).
# Extra arguments go to the cmake configure step (e.g. -DKVBENCH_CUDA=OFF).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${KVBENCH_BUILD_DIR:-build}
jobs=${KVBENCH_JOBS:-$(nproc)}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@"
cmake --build "$build" -j "$jobs"
