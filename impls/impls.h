// One register function per implementation file; register_builtin_impls calls them in order.
// Core (harness/registry.h) knows none of them: a program's main fills its registry.
#pragma once

#include "harness/registry.h"

namespace kvbench {

// Registers naive, cpu_cached, paged, torch_cached, torch_static (and cuda_cached when built) and
// their devices' probes (cuda_cached: CUDA-event timers and bandwidth). Called once per
// registry by the kvbench CLI's main, the test mains and the gate workers (ci/); a second
// call on the same registry throws Error (names taken).
void register_builtin_impls(Registry& registry);

void register_naive(Registry& registry);         // impls/naive.cpp
void register_cpu_cached(Registry& registry);    // impls/cpu_cached.cpp
void register_paged(Registry& registry);         // impls/paged.cpp
void register_torch_cached(Registry& registry);  // impls/torch_cached.cpp
void register_torch_static(Registry& registry);  // impls/torch_static.cpp
// impls/cuda_cached.cpp (CUDA builds only); also registers the "cuda" device probes
// (register_cuda_device_probes, impls/cuda_probes.cpp).
void register_cuda_cached(Registry& registry);
void register_cuda_device_probes(DeviceProbes& probes);

}  // namespace kvbench
