// Tests of the property suite itself: the tolerance policy, the runner (skips, failure
// reports, reproduce strings that replay), and that properties FAIL on deliberately broken
// implementations (planted bugs in a test-only wrapper, never registered globally).
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/detail/Configuration.h>
#include <rapidcheck/detail/TestListener.h>

#include <cmath>
#include <cstring>
#include <map>
#include <memory>

#include "harness/error.h"
#include "harness/reference.h"
#include "harness/registry.h"
#include "harness/weights.h"
#include "properties/property.h"
#include "properties/runner.h"
#include "properties/tolerance.h"
#include "properties/workload.h"

namespace kvbench::props {
namespace {

ModelConfig small_config() {
  return ModelConfig::make(2, 32, 4, 2, 16, 64, DType::f32, 7);
}

// ---- tolerance --------------------------------------------------------------------------

TEST(Tolerance, CompareRowsMeasuresErrorsAndRejectsNonFinite) {
  const std::vector<double> expected = {1, 2, 3, 4};  // 2 rows x 2
  std::vector<float> actual = {1, 2.5f, 3, 4};
  std::vector<RowTolerance> tol(2);
  tol[0].floor = 0.1;
  tol[1].floor = 0.1;
  Comparison c = compare_rows(actual.data(), expected.data(), 2, 2, tol.data());
  EXPECT_FALSE(c.ok);
  EXPECT_EQ(c.worst_row, 0);
  EXPECT_DOUBLE_EQ(c.max_abs_error, 0.5);
  EXPECT_DOUBLE_EQ(c.nmse, 0.25 / 30.0);
  tol[0].floor = 0.5;  // allowed exactly
  EXPECT_TRUE(compare_rows(actual.data(), expected.data(), 2, 2, tol.data()).ok);
  actual[3] = NAN;  // a NaN never passes, whatever the tolerance
  tol[1].floor = 1e30;
  c = compare_rows(actual.data(), expected.data(), 2, 2, tol.data());
  EXPECT_FALSE(c.ok);
  EXPECT_TRUE(c.non_finite);
  EXPECT_EQ(c.worst_row, 1);
  EXPECT_NE(c.describe().find("not finite"), std::string::npos) << c.describe();
}

TEST(Tolerance, FloorFollowsTheAccumulationLength) {
  const ModelConfig c = small_config();
  EXPECT_DOUBLE_EQ(kFloorFactor, 8.0);
}

// The fp32 error estimate must be rounding-sized. (If the basis permutation behind the
// extra samples were wrong, the permuted model would compute another function and err_f32
// would be O(1), silently widening every tolerance.)
TEST(Tolerance, F32ErrorIsRoundingSized) {
  const auto w = ModelWeights::from_seed(small_config());
  const std::vector<float> x = InputStream(3).rows(20, 32);
  const ReferenceResult ref = reference_forward(*w, x);
  const F32Error e = measure_f32_error(*w, x, ref);
  ASSERT_EQ(e.outputs.size(), 20u);
  double worst = 0;
  for (double v : e.outputs) worst = std::max(worst, v);
  for (const auto& block : e.k) {
    for (double v : block) worst = std::max(worst, v);
  }
  EXPECT_GT(worst, 0.0);   // fp32 does round
  EXPECT_LT(worst, 1e-5);  // ~1e-7 expected at these sizes; a wrong permutation gives ~1
}

// Outputs of a broken "implementation" (the reference of a broken model, rounded to fp32)
// must exceed the policy's tolerance by orders of magnitude.
double worst_ratio(const std::vector<double>& broken, const Expected& e, int T, int dm) {
  const std::vector<float> as_float(broken.begin(), broken.end());
  const Comparison c = compare_rows(as_float.data(), e.f64.outputs.data(), T, dm, e.tol.data());
  EXPECT_FALSE(c.ok);
  return c.worst_error / c.worst_allowed;
}

TEST(Tolerance, BrokenVariantsExceedTheBoundByOrdersOfMagnitude) {
  const ModelConfig c = small_config();
  const auto w = ModelWeights::from_seed(c);
  const int T = 20, dm = c.d_model;
  const std::vector<float> x = InputStream(5).rows(T, dm);
  const Expected e = expected_outputs(*w, x);

  // The correct outputs, rounded to fp32, pass.
  const std::vector<float> correct(e.f64.outputs.begin(), e.f64.outputs.end());
  EXPECT_TRUE(compare_rows(correct.data(), e.f64.outputs.data(), T, dm, e.tol.data()).ok);

  // Wrong softmax scale (1/d instead of 1/sqrt(d)): W_q scaled by 1/sqrt(d).
  ModelWeights scaled = *w;
  for (auto& l : scaled.layers) {
    for (float& v : l.wq) v /= std::sqrt(static_cast<float>(c.head_dim));
  }
  EXPECT_GT(worst_ratio(reference_forward(scaled, x).outputs, e, T, dm), 100.0);

  // Missing residual in the last layer: the output minus that layer's input.
  ModelWeights first = *w;
  first.layers.pop_back();
  first.config.layers = 1;
  std::vector<double> no_residual = e.f64.outputs;
  const std::vector<double> last_input = reference_forward(first, x).outputs;
  for (std::size_t i = 0; i < no_residual.size(); ++i) no_residual[i] -= last_input[i];
  EXPECT_GT(worst_ratio(no_residual, e, T, dm), 1000.0);

  // A stale row (row t returns row t - 1's output, e.g. an off-by-one position).
  std::vector<double> shifted = e.f64.outputs;
  for (int t = T - 1; t >= 1; --t) {
    std::copy_n(e.f64.outputs.begin() + (t - 1) * dm, dm, shifted.begin() + t * dm);
  }
  EXPECT_GT(worst_ratio(shifted, e, T, dm), 1000.0);
}

// ---- runner -------------------------------------------------------------------------------

ImplInfo impl_named(const std::string& name, std::string unavailable = "") {
  const ImplInfo* naive = Registry::global().find("naive");
  EXPECT_NE(naive, nullptr);
  ImplInfo info = *naive;
  info.name = name;
  info.caps.planted = true;
  if (!unavailable.empty()) info.unavailable_reason = [unavailable] { return unavailable; };
  return info;
}

rc::detail::TestParams quick(int cases = 20) {
  rc::detail::TestParams p;
  p.seed = 12345;
  p.maxSuccess = cases;
  return p;
}

TEST(Runner, SkipsUnavailableAndNotApplicableWithTheReason) {
  const Property p{"always_passes", "", [](const ImplInfo&, std::string*) { return true; },
                   [](const ImplInfo&) {}};
  Outcome o = run_property(p, impl_named("gpu_only", "no CUDA device"), quick());
  EXPECT_EQ(o.verdict, Verdict::skipped);
  EXPECT_NE(o.reason.find("no CUDA device"), std::string::npos) << o.reason;

  const Property q{"needs_fork", "",
                   [](const ImplInfo&, std::string* why) {
                     *why = "supports neither fork nor truncate";
                     return false;
                   },
                   [](const ImplInfo&) { FAIL() << "body of a non-applicable property ran"; }};
  o = run_property(q, impl_named("x"), quick());
  EXPECT_EQ(o.verdict, Verdict::skipped);
  EXPECT_NE(o.reason.find("neither fork"), std::string::npos) << o.reason;
}

TEST(Runner, PassingPropertyRunsTheRequestedCases) {
  int bodies = 0;
  const Property p{"counts", "", nullptr, [&bodies](const ImplInfo&) { ++bodies; }};
  const Outcome o = run_property(p, impl_named("x"), quick(37));
  EXPECT_EQ(o.verdict, Verdict::passed);
  EXPECT_EQ(o.cases, 37);
  EXPECT_EQ(bodies, 37);
}

// A failure carries RapidCheck's report and a reproduce string keyed by
// "<property>/<implementation>"; replaying that string reproduces the shrunk case.
TEST(Runner, FailureReproduceStringReplaysTheShrunkCase) {
  const Property p{"fails_above_41", "", nullptr, [](const ImplInfo&) {
                     const int n = *rc::gen::inRange(0, 1000);
                     if (n > 41) fail_case("n = " + std::to_string(n) + " is above 41");
                   }};
  const ImplInfo impl = impl_named("x");
  const Outcome o = run_property(p, impl, quick(200));
  ASSERT_EQ(o.verdict, Verdict::failed);
  EXPECT_NE(o.report.find("n = 42 is above 41"), std::string::npos) << o.report;  // shrunk
  ASSERT_EQ(o.reproduce.rfind("RC_PARAMS=\"reproduce=", 0), 0u) << o.reproduce;

  // Replay through RapidCheck's own parser and checker, as RC_PARAMS would.
  const std::string params = o.reproduce.substr(11, o.reproduce.size() - 12);
  const rc::detail::Configuration config = rc::detail::configFromString(params);
  ASSERT_EQ(config.reproduce.count("fails_above_41/x"), 1u);
  rc::detail::TestMetadata metadata;
  metadata.id = "fails_above_41/x";
  struct Quiet : rc::detail::TestListener {
    void onTestCaseFinished(const rc::detail::CaseDescription&) override {}
    void onShrinkTried(const rc::detail::CaseDescription&, bool) override {}
    void onTestFinished(const rc::detail::TestMetadata&, const rc::detail::TestResult&) override {}
  } quiet;
  const rc::detail::TestResult replay = rc::detail::checkProperty(
      rc::detail::toProperty([&] { p.body(impl); }), metadata, quick(), quiet,
      config.reproduce);
  rc::detail::FailureResult failure;
  ASSERT_TRUE(replay.match(failure));
  EXPECT_NE(failure.description.find("n = 42 is above 41"), std::string::npos);
}

// ---- planted bugs ---------------------------------------------------------------------------
//
// A test-only implementation that forwards to a real one (naive, always registered) and
// plants one bug. Each property named below must catch its bug; this keeps the suite's
// teeth checked in CI (the lead's broken-variant experiments are in properties/README.md).

enum class Bug {
  counter_off_by_one,  // qk_dot_products one too many on batched decode steps
  small_output_error,  // decode outputs off by 1e-3 relative
  prefill_leak,        // prefill row i's last bit depends on the block's last token
  truncate_ignored,    // truncate keeps the old tokens
};

class PlantedCache final : public KvCache {
 public:
  PlantedCache(std::shared_ptr<const ModelWeights> weights, const ImplOptions& options, Bug bug)
      : KvCache("planted", weights, options),
        inner_(Registry::global().get("naive").create(weights, options)),
        bug_(bug) {}

 private:
  void sync() {
    const Stats s = inner_->stats();
    counters().kv_projection_rows = s.kv_projection_rows;
    counters().qk_dot_products = s.qk_dot_products + extra_dots_;
    counters().kv_bytes_read = s.kv_bytes_read;
  }
  void do_create(SeqId id) override { map_[id] = inner_->create_sequence(); }
  void do_prefill(SeqId id, const float* x, int n, float* out) override {
    const std::size_t dm = static_cast<std::size_t>(config().d_model);
    const std::vector<float> y = inner_->prefill(map_.at(id), std::vector<float>(x, x + n * dm));
    std::copy(y.begin(), y.end(), out);
    if (bug_ == Bug::prefill_leak && x[(n - 1) * dm] > 0) {
      for (int i = 0; i + 1 < n; ++i) out[i * dm] = std::nextafter(out[i * dm], INFINITY);
    }
    sync();
  }
  void do_decode(const std::vector<SeqId>& ids, const float* x, float* out) override {
    const std::size_t dm = static_cast<std::size_t>(config().d_model);
    std::vector<SeqId> inner_ids;
    for (SeqId id : ids) inner_ids.push_back(map_.at(id));
    const std::vector<float> y =
        inner_->decode(inner_ids, std::vector<float>(x, x + ids.size() * dm));
    std::copy(y.begin(), y.end(), out);
    if (bug_ == Bug::small_output_error) {
      for (std::size_t i = 0; i < y.size(); ++i) out[i] *= 1.001f;
    }
    if (bug_ == Bug::counter_off_by_one && ids.size() > 1) ++extra_dots_;
    sync();
  }
  void do_fork(SeqId parent, SeqId child) override { map_[child] = inner_->fork(map_.at(parent)); }
  void do_drop(SeqId id) override {
    inner_->drop(map_.at(id));
    map_.erase(id);
  }
  void do_truncate(SeqId id, int length) override {
    if (bug_ != Bug::truncate_ignored) inner_->truncate(map_.at(id), length);
  }
  bool holds_kv_cache() const override { return false; }
  KvRows do_read_kv(SeqId, int, int) const override { fail("planted: no K/V cache"); }
  Memory memory_in_use() const override {
    const Stats s = inner_->stats();
    return Memory{s.bytes_held, s.bytes_reserved};
  }

  std::unique_ptr<KvCache> inner_;
  Bug bug_;
  std::map<SeqId, SeqId> map_;
  std::uint64_t extra_dots_ = 0;
};

ImplInfo planted(Bug bug) {
  ImplInfo info = impl_named("planted");
  info.create = [bug](std::shared_ptr<const ModelWeights> w, const ImplOptions& o) {
    return std::unique_ptr<KvCache>(new PlantedCache(std::move(w), o, bug));
  };
  return info;
}

void expect_caught(Bug bug, const std::string& property, const std::string& finding) {
  const Outcome o = run_property(find_property(property), planted(bug), quick(100));
  ASSERT_EQ(o.verdict, Verdict::failed) << property << " missed the planted bug";
  EXPECT_NE(o.report.find(finding), std::string::npos) << o.report;
  EXPECT_FALSE(o.reproduce.empty());
}

TEST(PlantedBugs, CounterOffByOneFailsOpCounts) {
  expect_caught(Bug::counter_off_by_one, "op_counts", "qk_dot_products grew by");
}

TEST(PlantedBugs, SmallOutputErrorFailsDecodeMatchesReference) {
  expect_caught(Bug::small_output_error, "decode_matches_reference", "x the bound");
}

TEST(PlantedBugs, OneUlpPrefillLeakFailsCausality) {
  // 1 ulp is far inside the numerical tolerance: only the bitwise check can see it.
  const Outcome o =
      run_property(find_property("decode_matches_reference"), planted(Bug::prefill_leak), quick());
  EXPECT_EQ(o.verdict, Verdict::passed);
  expect_caught(Bug::prefill_leak, "causal_and_batch_independent", "causality");
}

TEST(PlantedBugs, IgnoredTruncateFailsForkTruncateDrop) {
  expect_caught(Bug::truncate_ignored, "fork_truncate_drop", "truncate id");
}

}  // namespace
}  // namespace kvbench::props
