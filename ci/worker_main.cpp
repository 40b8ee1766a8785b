// kvbench-gate-worker: the callgrind worker the gate runs (see ci/worker.h), with the plain
// C++ implementations (worker_impls.cpp).
#include "ci/worker.h"
#include "harness/registry.h"

int main(int argc, char** argv) {
  kvbench::Registry& registry = kvbench::Registry::global();
  kvbench::gate::register_worker_impls(registry);
  return kvbench::gate::worker_main(registry, argc, argv);
}
