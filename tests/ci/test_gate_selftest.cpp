// The gate's self-test: the gate's own measure + compare, run as `kvbench gate` runs them but
// with a worker that also holds the planted regressions (planted.h).
//   * the unchanged build passes 10 times in a row against a baseline measured here;
//   * each planted regression, measured in cpu_cached's place, fails it;
//   * the control (cpu_cached behind the same forwarding wrapper) passes, so the failures
//     come from the planted work, not from the wrapping.
// Each gate result is printed in full (ctest --output-on-failure / -V shows it).
#include <gtest/gtest.h>

#include <algorithm>
#include <iostream>
#include <memory>
#include <string>

#include "ci/callgrind.h"
#include "ci/checks.h"
#include "ci/measure.h"
#include "harness/registry.h"
#include "tests/ci/planted.h"

namespace kvbench::gate {
namespace {

const Registry& planted_registry() {
  static const Registry* registry = [] {
    auto* r = new Registry();
    planted::register_planted(*r);
    return r;
  }();
  return *registry;
}

// The gate's default targets for this build, with cpu_cached measured through `replacement`
// (one of planted::names()) when given.
MeasureOptions options(const std::string& replacement = "") {
  MeasureOptions o;
  const Worker worker{KVBENCH_GATE_TEST_WORKER, worker_impls(KVBENCH_GATE_TEST_WORKER), true};
  o.targets = default_targets(Registry::global(), {worker});
  // The block pools go through the same worker and the same checks as cpu_cached; measuring
  // them in each of the self-test's runs would double its time (185 s instead of ~80 s on 2
  // loaded cores) without testing anything new. The gate itself (.ci/run) measures them.
  o.targets.erase(std::remove_if(o.targets.begin(), o.targets.end(),
                                 [](const GateTarget& t) {
                                   return t.name == "paged" || t.name == "prefix_cached";
                                 }),
                  o.targets.end());
  o.jobs = 2;
  o.time_repetitions = 9;
  if (!replacement.empty()) {
    for (GateTarget& t : o.targets) {
      if (t.name != "cpu_cached") continue;
      t.impl = &planted_registry().get(replacement);
      t.worker = KVBENCH_GATE_TEST_WORKER;
      t.worker_impl = replacement;
      t.long_sweep = true;
    }
  }
  return o;
}

const Measurement& baseline() {
  static const Measurement* m = new Measurement(measure(options()));
  return *m;
}

GateResult run_gate(const std::string& title, const std::string& replacement = "") {
  const Measurement current = measure(options(replacement));
  const GateResult result = compare(baseline(), current, GateBands{});
  std::cout << "==== " << title << " ====\n";
  print_result(result, std::cout);
  std::cout << std::endl;
  return result;
}

// RETURNS: the checks whose name starts with `prefix` and that failed.
std::vector<std::string> failed(const GateResult& result, const std::string& prefix) {
  std::vector<std::string> names;
  for (const Check& c : result.checks) {
    if (c.verdict == Verdict::fail && c.name.rfind(prefix, 0) == 0) names.push_back(c.name);
  }
  return names;
}

const Check& check(const GateResult& result, const std::string& name) {
  for (const Check& c : result.checks) {
    if (c.name == name) return c;
  }
  throw std::runtime_error("no check named " + name);
}

TEST(GateSelfTest, TheWorkerHoldsThePlantedRegressions) {
  const auto impls = worker_impls(KVBENCH_GATE_TEST_WORKER);
  for (const std::string& name : planted::names()) EXPECT_EQ(impls.count(name), 1u) << name;
  // ... and the shipped registry does not.
  for (const std::string& name : planted::names()) {
    EXPECT_EQ(Registry::global().find(name), nullptr) << name;
  }
}

TEST(GateSelfTest, UnchangedBuildPasses10TimesInARow) {
  for (int run = 1; run <= 10; ++run) {
    const GateResult result = run_gate("unchanged build, run " + std::to_string(run) + " of 10");
    ASSERT_TRUE(result.passed()) << "run " << run;
    // Instruction counts of one binary are exactly repeatable: nothing to absorb.
    for (const Check& c : result.checks) {
      if (c.name.rfind("instructions/", 0) == 0) EXPECT_EQ(c.baseline, c.current) << c.name;
    }
  }
}

TEST(GateSelfTest, ControlWrapperPasses) {
  const GateResult result = run_gate("control: cpu_cached behind the forwarding wrapper", "wrapped_cpu_cached");
  EXPECT_TRUE(result.passed());
}

TEST(GateSelfTest, CopyingTheWholeCacheEveryStepFails) {
  const GateResult result = run_gate("planted: copies its whole cache every step", "planted_copy_every_step");
  EXPECT_FALSE(result.passed());
  // A copy is not counted work: the exact counters cannot see it, the instruction counts must.
  EXPECT_TRUE(failed(result, "counters/").empty());
  EXPECT_FALSE(failed(result, "instructions/cpu_cached/").empty());
}

TEST(GateSelfTest, RecomputingTheLast16TokensFails) {
  const GateResult result = run_gate("planted: recomputes K/V of the last 16 tokens", "planted_recompute_last16");
  EXPECT_FALSE(result.passed());
  EXPECT_EQ(check(result, "counters/cpu_cached/kv_projection_rows").verdict, Verdict::fail);
  EXPECT_EQ(check(result, "instructions/cpu_cached/decode").verdict, Verdict::fail);
}

TEST(GateSelfTest, TenPercentMoreWorkFails) {
  const GateResult result = run_gate("planted: ~10% more work per step (uncounted)", "planted_extra_10pct");
  EXPECT_FALSE(result.passed());
  // Its counters hide the extra work, so the instruction count alone must catch it.
  EXPECT_TRUE(failed(result, "counters/").empty());
  EXPECT_EQ(check(result, "instructions/cpu_cached/decode").verdict, Verdict::fail);
}

}  // namespace
}  // namespace kvbench::gate
