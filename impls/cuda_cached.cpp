// STUB: replaced by the real implementation.
#include "impls/impls.h"

namespace kvbench {
void register_cuda_cached(Registry&) {}
}  // namespace kvbench
