#!/usr/bin/env bash
# The layers of kvbench (issue 9, section 6), lowest first; a file may include its own layer
# and the layers below it, never one above it nor a sibling:
#   0 core        harness/*.h|cpp (top level: config, weights, kv_cache, registry, reference,
#                 fit, device probes, errors)
#   1 impls       impls/** (and tests/planted/, the planted K/V caches: implementations too)
#   2 properties  properties/**     } siblings: neither includes the other
#   2 bench       harness/bench/**  }
#   3 reports     reports/**
#   4 ci          ci/** (the gate)
#   5 cli         harness/cli/**
# Above impls, implementations are reached through the registry: the impls headers a higher
# layer may include are the registration ones, impls/impls.h (register_builtin_impls and the
# register_* functions, for the mains that fill a registry) and tests/planted/planted_caches.h
# (register_planted_caches); the others (cuda_timing.h, cpu_kernels.h, ...) are internal.
# Scans the `#include "..."` lines of those directories and prints FILE:LINE for each include
# that goes up a layer or sideways, into impls' internals, or to a file outside the layers.
# Usage: check_layers.sh [SOURCE_DIR]   (default: the repository this script is in)
# Exit: 0 when every include goes down or stays in its layer, 1 otherwise.
set -euo pipefail
root=${1:-"$(cd "$(dirname "$0")/../.." && pwd)"}
cd "$root"

# layer PATH: prints "RANK NAME" of the layer PATH belongs to, or nothing.
layer() {
  case "$1" in
    harness/cli/*) echo "5 cli" ;;
    harness/bench/*) echo "2 bench" ;;
    harness/*/*) ;;  # another subdirectory of harness: not a layer (yet)
    harness/*) echo "0 core" ;;
    impls/* | tests/planted/*) echo "1 impls" ;;
    properties/*) echo "2 properties" ;;
    reports/*) echo "3 reports" ;;
    ci/*) echo "4 ci" ;;
  esac
}

violations=0
files=0
while IFS= read -r -d '' file; do
  files=$((files + 1))
  read -r from_rank from_name <<<"$(layer "$file")"
  while IFS=: read -r line target; do
    to=$(layer "$target")
    if [ -z "$to" ]; then
      echo "$file:$line: includes \"$target\", which is in no layer"
      violations=$((violations + 1))
      continue
    fi
    read -r to_rank to_name <<<"$to"
    if [ "$to_name" = "$from_name" ]; then continue; fi
    if [ "$to_name" = impls ] && [ "$target" != impls/impls.h ] &&
       [ "$target" != tests/planted/planted_caches.h ]; then
      echo "$file:$line: $from_name includes \"$target\" (internal to impls: the layers above" \
           "include impls/impls.h only)"
      violations=$((violations + 1))
      continue
    fi
    if [ "$to_rank" -ge "$from_rank" ]; then
      if [ "$to_rank" -eq "$from_rank" ]; then how="a sibling layer"; else how="a layer above"; fi
      echo "$file:$line: $from_name includes \"$target\" ($to_name: $how)"
      violations=$((violations + 1))
    fi
  done < <(grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$file" |
           sed -E 's/^([0-9]+):[^"]*"([^"]*)".*/\1:\2/' || true)
done < <(find harness impls properties reports ci -type f \
           \( -name '*.h' -o -name '*.cpp' -o -name '*.cu' -o -name '*.cuh' \) -print0 | sort -z)

if [ "$files" -eq 0 ]; then
  echo "check_layers: no source files under $root" >&2
  exit 1
fi
if [ "$violations" -gt 0 ]; then
  echo "check_layers: $violations include(s) against the layers in $files files (see tests/layers/check_layers.sh)"
  exit 1
fi
echo "check_layers: $files files, every include goes down the layers or stays in its own"
