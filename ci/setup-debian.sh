#!/usr/bin/env bash
# Installs kvbench's build and run dependencies from Debian 12 packages (needs root or sudo).
# Skips apt entirely when everything is already installed.
set -euo pipefail
packages=(build-essential cmake ninja-build pkg-config
          libtorch-dev librapidcheck-dev libbenchmark-dev libbenchmark-tools libgtest-dev
          nlohmann-json3-dev libcli11-dev gnuplot-nox valgrind
          # An optimized BLAS for LibTorch: Debian's libtorch links the netlib reference BLAS
          # otherwise, which would make the torch_* peers (and the reference) 4-6x slower than
          # a user's PyTorch. The OpenMP build honours at::set_num_threads.
          libopenblas0-openmp
          # compare.py (libbenchmark-tools) imports them.
          python3-scipy python3-numpy)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all Debian packages present"
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done"
