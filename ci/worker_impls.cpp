// The worker's registry: the implementations written in plain C++, without LibTorch.
//
// This replaces impls/builtin.cpp in the worker executable (harness/registry.cpp calls
// register_builtin_impls); add a new plain C++ implementation here, and its source file to
// KVBENCH_GATE_WORKER_IMPLS in ci/CMakeLists.txt, to have its instructions gated.
#include "impls/impls.h"

namespace kvbench {

void register_builtin_impls(Registry& registry) {
  register_naive(registry);
  register_cpu_cached(registry);
}

}  // namespace kvbench
