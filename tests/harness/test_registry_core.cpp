// Core alone (linked without any implementation): the registry is empty until a main fills
// it, and its device probes fall back to the host clock. (The kvbench CLI's main and the test
// mains call register_builtin_impls, impls/impls.h.)
#include <gtest/gtest.h>

#include "harness/device_probes.h"
#include "harness/registry.h"

namespace kvbench {
namespace {

TEST(CoreRegistry, StartsEmptyWithoutAMainToFillIt) {
  EXPECT_TRUE(Registry::global().all(/*include_planted=*/true).empty());
  EXPECT_EQ(Registry::global().find("cpu_cached"), nullptr);
  EXPECT_EQ(Registry::global().devices().bandwidth_probe("cuda"), nullptr);
  ImplInfo gpu;
  gpu.name = "some_gpu_impl";
  gpu.device = "cuda";
  EXPECT_EQ(Registry::global().devices().make_timer(gpu)->describe(), "host steady_clock");
}

}  // namespace
}  // namespace kvbench
