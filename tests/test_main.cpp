// The main of kvbench's gtest executables (tests/CMakeLists.txt: kvbench_test): fills the
// process-wide registry with the built-in implementations, as the kvbench CLI's main does,
// then runs the tests. (Core no longer fills it by itself: harness/registry.h.)
#include <gtest/gtest.h>

#include "harness/registry.h"
#include "impls/impls.h"

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  kvbench::register_builtin_impls(kvbench::Registry::global());
  return RUN_ALL_TESTS();
}
