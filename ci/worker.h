// The callgrind worker: a small process that runs one implementation's decode and sweep
// workloads (gate_runs.h) with callgrind client requests around the measured regions only.
//
// The gate runs it as
//   valgrind --tool=callgrind --instr-atstart=no --collect-atstart=no
//            --callgrind-out-file=DIR/callgrind.out  WORKER run IMPL WORKLOAD.json long
// and reads one dump per region (callgrind.h). It is a process of its own so that each count
// starts from the same state, and a small executable without LibTorch (ci/CMakeLists.txt) so
// that valgrind starts in well under a second instead of ~17 s: it holds only the plain C++
// implementations (naive, cpu_cached), the ones whose instruction counts the gate compares.
// Outside valgrind the client requests do nothing, so the worker also runs natively.
#pragma once

#include "harness/registry.h"

namespace kvbench::gate {

// Usage:
//   WORKER list                    prints "NAME holds_kv_cache(0|1)" per available entry
//   WORKER default-workload        prints default_workload() as JSON
//   WORKER run IMPL WORKLOAD.json short|long
//                                  runs IMPL's decode and sweep regions (long: with the
//                                  workload's long sweep positions)
// RETURNS: the process exit code (0 ok, 2 bad usage or error, message on stderr).
int worker_main(const Registry& registry, int argc, char** argv);

// Registers the implementations kvbench-gate-worker counts: the plain C++ ones (naive,
// cpu_cached), built without target clones (ci/CMakeLists.txt). Defined in worker_impls.cpp;
// add a new plain C++ implementation there, and its sources to KVBENCH_PLAIN_IMPL_SOURCES in
// impls/CMakeLists.txt, to have its instructions gated.
void register_worker_impls(Registry& registry);

}  // namespace kvbench::gate
