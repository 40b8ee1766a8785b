// Two small implementations for the bench and report tests, so that they do not depend on
// the real ones (which land separately and run at their own speed):
//   fake_cached  keeps K/V per layer and projects one row per token and layer;
//   fake_naive   keeps the layer inputs and re-projects K/V for the whole prefix each step.
// Both compute real attention (so their times grow like the real ones) and keep the
// counters exactly as harness/kv_cache.h defines them.
#pragma once

#include "harness/registry.h"

namespace kvbench::testing {

// Adds "fake_cached" (caps.threads = true, so it gets thread-scaling series) and
// "fake_naive" (holds_kv_cache = false) to `registry`.
void register_fake_impls(Registry& registry);

}  // namespace kvbench::testing
