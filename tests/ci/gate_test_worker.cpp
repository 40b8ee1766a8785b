// gate_test_worker: the callgrind worker (ci/worker.h) with the planted regressions
// (planted.h) beside the plain C++ implementations. Built for the tests only.
#include "ci/worker.h"
#include "harness/registry.h"
#include "tests/ci/planted.h"

int main(int argc, char** argv) {
  kvbench::Registry& registry = kvbench::Registry::global();
  kvbench::gate::register_worker_impls(registry);  // as kvbench-gate-worker
  kvbench::planted::register_planted(registry);
  return kvbench::gate::worker_main(registry, argc, argv);
}
