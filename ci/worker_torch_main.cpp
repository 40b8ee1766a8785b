// kvbench-gate-worker-torch: the callgrind worker (ci/worker.h) for the LibTorch peers
// (torch_cached, torch_static), with the whole built-in registry, as kvbench has it.
#include "ci/worker.h"
#include "harness/registry.h"
#include "impls/impls.h"

int main(int argc, char** argv) {
  kvbench::Registry& registry = kvbench::Registry::global();
  kvbench::register_builtin_impls(registry);
  return kvbench::gate::worker_main(registry, argc, argv);
}
