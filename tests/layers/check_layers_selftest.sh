#!/usr/bin/env bash
# check_layers.sh can fail: on a copy of the sources with planted includes (up a layer,
# sideways, into impls' internals), it must exit 1 and name each planted FILE:LINE; on the
# unchanged copy it must pass.
set -euo pipefail
src=${1:-"$(cd "$(dirname "$0")/../.." && pwd)"}
check="$(cd "$(dirname "$0")" && pwd)/check_layers.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for d in harness impls properties reports ci tests/planted; do
  mkdir -p "$tmp/$(dirname "$d")"
  cp -r "$src/$d" "$tmp/$d"
done
bash "$check" "$tmp" >/dev/null || { echo "selftest: the unchanged copy fails"; exit 1; }

plant() {  # FILE INCLUDE: appends the include, prints FILE:LINE
  echo "#include \"$2\"" >>"$tmp/$1"
  echo "$1:$(wc -l <"$tmp/$1" | tr -d ' ')"
}
expected=(
  "$(plant harness/registry.cpp impls/impls.h)"           # core -> impls: up
  "$(plant harness/bench/timer.cpp impls/cuda_timing.h)"  # bench -> impls' internals
  "$(plant harness/bench/sweep.h properties/runner.h)"    # bench -> properties: sibling
  "$(plant impls/naive.cpp harness/bench/timer.h)"        # impls -> bench: up
  "$(plant ci/checks.h harness/cli/commands.h)"           # ci -> cli: up
)
set +e
out=$(bash "$check" "$tmp")
rc=$?
set -e
echo "$out"
[ "$rc" -eq 1 ] || { echo "selftest: check_layers.sh exited $rc with planted includes, not 1"; exit 1; }
for at in "${expected[@]}"; do
  grep -qF "$at:" <<<"$out" || { echo "selftest: the planted include at $at was not named"; exit 1; }
done
echo "selftest: each of the ${#expected[@]} planted includes was named"
