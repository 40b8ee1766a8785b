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
exec bash "$(dirname "$0")/apt-install.sh" setup "${packages[@]}"
