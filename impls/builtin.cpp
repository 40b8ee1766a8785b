#include "impls/impls.h"

namespace kvbench {

void register_builtin_impls(Registry& registry) {
  register_naive(registry);
  register_cpu_cached(registry);
  register_paged(registry);
  register_torch_cached(registry);
  register_torch_static(registry);
#if KVBENCH_HAVE_CUDA
  register_cuda_cached(registry);
#endif
}

}  // namespace kvbench
