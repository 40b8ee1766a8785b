#!/usr/bin/env bash
# Installs what the libFuzzer build needs beyond ci/setup-debian.sh (needs root or sudo):
# clang 14 and its runtime libraries (libFuzzer: libclang_rt.fuzzer*.a). Skips apt when present.
set -euo pipefail
packages=(clang-14 libclang-rt-14-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup-fuzz: clang and libFuzzer present"
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "setup-fuzz: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup-fuzz: done"
