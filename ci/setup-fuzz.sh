#!/usr/bin/env bash
# Installs what the libFuzzer build needs beyond ci/setup-debian.sh (needs root or sudo):
# clang 14 and its runtime libraries (libFuzzer: libclang_rt.fuzzer*.a). Skips apt when present.
set -euo pipefail
packages=(clang-14 libclang-rt-14-dev)
exec bash "$(dirname "$0")/apt-install.sh" setup-fuzz "${packages[@]}"
