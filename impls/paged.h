// paged: a K/V cache in a pool of fixed-size blocks (impls/paged.cpp, pool and tables in
// impls/paged_pool.h). Internal to impls/ and the suite's tests: the registry entry is
// register_paged (impls/impls.h); this header adds only the constructor with a planted
// fault, for tests/planted.
#pragma once

#include <memory>

#include "harness/kv_cache.h"
#include "impls/paged_pool.h"

namespace kvbench {

// RETURNS: a paged cache named `name` (with the prefix index: prefix_cached) whose pool and
// attention carry `fault`
// (paged::Fault::none: the real implementation). Throws Error like the registry's create.
std::unique_ptr<KvCache> make_paged_cache(std::shared_ptr<const ModelWeights> weights,
                                          const ImplOptions& options,
                                          paged::Fault fault = paged::Fault::none,
                                          const char* name = "paged", bool prefix = false);

}  // namespace kvbench
