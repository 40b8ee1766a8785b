// gate_test_worker: the callgrind worker (ci/worker.h) with the planted regressions
// (planted.h) beside the plain C++ implementations. Built for the tests only.
#include "ci/worker.h"
#include "impls/impls.h"
#include "tests/ci/planted.h"

namespace kvbench {

// Replaces impls/builtin.cpp, as ci/worker_impls.cpp does for kvbench-gate-worker.
void register_builtin_impls(Registry& registry) {
  register_naive(registry);
  register_cpu_cached(registry);
  planted::register_planted(registry);
}

}  // namespace kvbench

int main(int argc, char** argv) {
  return kvbench::gate::worker_main(kvbench::Registry::global(), argc, argv);
}
