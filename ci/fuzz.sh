#!/usr/bin/env bash
# The libFuzzer engine of `kvbench fuzz` (properties/README.md, "Coverage-guided fuzzing").
#
#   bash ci/fuzz.sh build             installs clang (ci/setup-fuzz.sh; the other dependencies
#                                     come from ci/setup-debian.sh), builds only
#                                     build-fuzz/kvbench_libfuzzer with clang, CUDA off
#   bash ci/fuzz.sh run SECONDS [ARG...]
#                                     fuzzes for SECONDS from the committed seed corpus
#                                     (extra ARGs go to libFuzzer); exit 1 on a finding, whose
#                                     crash file and shrunk input land in build-fuzz/artifacts
#   bash ci/fuzz.sh replay FILE...    runs inputs again, printing each one's operation list,
#                                     and for a finding the failing check and the shrunk case
#
# KVBENCH_FUZZ_IMPLS picks the implementations (default: every available non-planted one),
# KVBENCH_FUZZ_BUILD_DIR the build directory; properties/libfuzzer/fuzz_target.h lists the rest.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${KVBENCH_FUZZ_BUILD_DIR:-build-fuzz}
bin=$dir/kvbench_libfuzzer
# One OpenMP thread for the LibTorch reference: the fuzzer runs one input at a time, and
# idle OpenMP workers would only compete with the implementation's own threads.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive} OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
export KVBENCH_FUZZ_ARTIFACTS=${KVBENCH_FUZZ_ARTIFACTS:-$dir/artifacts}

usage() {
  sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

need_binary() {
  if [ ! -x "$bin" ]; then
    echo "fuzz.sh: $bin is not built; run: bash ci/fuzz.sh build" >&2
    exit 2
  fi
}

case "${1:-}" in
  build)
    bash ci/setup-fuzz.sh
    start=$(date +%s)
    cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=clang++-14 \
          -DKVBENCH_CUDA=OFF -DKVBENCH_FUZZER=ON "${@:2}"
    cmake --build "$dir" -j "${KVBENCH_JOBS:-$(nproc)}" --target kvbench_libfuzzer
    echo "fuzz.sh: built $bin in $(( $(date +%s) - start )) s"
    ;;
  run)
    seconds=${2:-}
    if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
      echo "fuzz.sh run: SECONDS must be a positive integer, got '$seconds'" >&2
      exit 2
    fi
    need_binary
    mkdir -p "$dir/corpus" "$KVBENCH_FUZZ_ARTIFACTS"
    # The first corpus directory receives new inputs; the committed seeds are only read.
    # -max_len: longer inputs than the format reads are the same inputs. -timeout: a
    # finding's shrinking runs inside the crashing execution, for up to a minute.
    rc=0
    "$bin" -max_total_time="$seconds" -max_len=170 -timeout=150 -rss_limit_mb=4096 \
           -print_final_stats=1 -artifact_prefix="$KVBENCH_FUZZ_ARTIFACTS/" "${@:3}" \
           "$dir/corpus" properties/libfuzzer/corpus || rc=$?
    if [ "$rc" -ne 0 ]; then
      echo "fuzz.sh: FINDING (libFuzzer exit $rc); files in $KVBENCH_FUZZ_ARTIFACTS:" >&2
      ls -l "$KVBENCH_FUZZ_ARTIFACTS" >&2 || true
      echo "replay one with: bash ci/fuzz.sh replay FILE" >&2
      exit 1
    fi
    ;;
  replay)
    shift
    [ $# -ge 1 ] || usage
    mkdir -p "$KVBENCH_FUZZ_ARTIFACTS"
    export KVBENCH_FUZZ_VERBOSE=1
    if [ -x "$bin" ]; then
      # libFuzzer runs each file once; -artifact_prefix keeps its copy of a crashing input
      # out of the current directory.
      exec "$bin" -artifact_prefix="$KVBENCH_FUZZ_ARTIFACTS/" "$@"
    fi
    # Without the clang build: the same target TU in the main build (no abort, exit 1).
    replay=${KVBENCH_BUILD_DIR:-build}/kvbench_fuzz_replay
    [ -x "$replay" ] || need_binary
    exec "$replay" "$@"
    ;;
  *)
    usage
    ;;
esac
