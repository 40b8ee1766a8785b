// One register function per implementation file; register_builtin_impls calls them in order.
#pragma once

#include "harness/registry.h"

namespace kvbench {

void register_naive(Registry& registry);         // impls/naive.cpp
void register_cpu_cached(Registry& registry);    // impls/cpu_cached.cpp
void register_torch_cached(Registry& registry);  // impls/torch_cached.cpp
void register_torch_static(Registry& registry);  // impls/torch_static.cpp
void register_cuda_cached(Registry& registry);   // impls/cuda_cached.cpp (CUDA builds only)

}  // namespace kvbench
