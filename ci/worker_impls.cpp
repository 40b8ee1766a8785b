// The worker's registry: the implementations written in plain C++, without LibTorch.
// kvbench-gate-worker's main (worker_main.cpp) registers them; the LibTorch peers' worker
// (worker_torch_main.cpp) registers the built-ins instead.
#include "ci/worker.h"
#include "impls/impls.h"

namespace kvbench::gate {

void register_worker_impls(Registry& registry) {
  register_naive(registry);
  register_cpu_cached(registry);
  register_paged(registry);  // paged and prefix_cached
}

}  // namespace kvbench::gate
