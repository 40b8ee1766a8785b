// STUB: replaced by the real implementation.
#include "impls/impls.h"

namespace kvbench {
void register_torch_static(Registry&) {}
}  // namespace kvbench
