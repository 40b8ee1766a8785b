#!/usr/bin/env bash
# The main job: installs dependencies, builds, verifies every default implementation.
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/setup-debian.sh
bash ci/build.sh
build=${KVBENCH_BUILD_DIR:-build}
"$build/kvbench" list
"$build/kvbench" verify --impl all
