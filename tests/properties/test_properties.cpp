// The property suite under ctest: one gtest per (property, implementation), registered at
// startup from props::all_properties() and Registry::global().all(), so that ctest -j runs
// them in parallel and a new implementation or property needs no edit here.
//
// A property that does not apply to an implementation, or an implementation that cannot
// run on this machine (cuda_cached without a GPU), is reported SKIPPED with the reason.
// RapidCheck's RC_PARAMS works as documented (seed, max_success, max_size, noshrink,
// reproduce=...); the test id is "<property>/<implementation>", the same as in
// `kvbench verify`, so a reproduce string from either replays in both.
#include <gtest/gtest.h>

#include <iostream>

#include "harness/registry.h"
#include "impls/impls.h"
#include "properties/property.h"
#include "properties/runner.h"

namespace kvbench::props {
namespace {

class PropertyTest : public testing::Test {
 public:
  PropertyTest(const Property& property, const ImplInfo& impl)
      : property_(property), impl_(impl) {}

  void TestBody() override {
    const Outcome o = run_property(property_, impl_, configured_params());
    switch (o.verdict) {
      case Verdict::skipped:
        GTEST_SKIP() << o.reason;
      case Verdict::failed:
        FAIL() << o.report << "\n"
               << (o.reproduce.empty() ? "" : "To reproduce: " + o.reproduce + "\n");
      case Verdict::passed:
        std::cout << "[ cases    ] " << o.cases << " passed\n";
        break;
    }
  }

 private:
  const Property& property_;
  const ImplInfo& impl_;
};

void register_property_tests() {
  for (const Property& p : all_properties()) {
    for (const ImplInfo* impl : Registry::global().all()) {
      testing::RegisterTest(p.name.c_str(), impl->name.c_str(), nullptr, nullptr, __FILE__,
                            __LINE__, [&p, impl]() -> testing::Test* {
                              return new PropertyTest(p, *impl);
                            });
    }
  }
}

}  // namespace
}  // namespace kvbench::props

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  kvbench::register_builtin_impls(kvbench::Registry::global());  // what the tests iterate over
  kvbench::props::register_property_tests();
  return RUN_ALL_TESTS();
}
