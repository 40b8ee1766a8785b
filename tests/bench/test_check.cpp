// The bench's check before timing (harness/bench/check.h): correct implementations pass at
// a position past the tile and split-KV boundaries, each planted wrong one fails with a
// message naming what went wrong, and run_bench does not time an implementation that fails
// (nor writes its benchmarks), records every verdict in the JSON context, and says when the
// check was skipped. Nothing here depends on timing.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>

#include "harness/bench/check.h"
#include "harness/bench/runner.h"
#include "tests/bench/fake_impls.h"

namespace kvbench::bench {
namespace {

using nlohmann::json;

// Two layers (deeper rows depend on the float64 layer inputs), GQA 4:2, and capacity for
// positions past 512.
ModelConfig small_model() { return ModelConfig::make(2, 16, 4, 2, 8, 1024); }

struct Planted : ::testing::Test {
  Registry registry;
  std::shared_ptr<const ModelWeights> weights = ModelWeights::from_seed(small_model());
  void SetUp() override {
    testing::register_fake_impls(registry);
    testing::register_planted_fakes(registry, 300);
  }
  CheckResult check(const std::string& name, int position, int threads = 1) {
    CheckOptions o;
    o.position = position;
    o.threads = threads;
    o.input_seed = 30;
    return check_implementation(registry.get(name), weights, o);
  }
};

TEST(RoundToFp16, RoundsToElevenSignificantBits) {
  EXPECT_EQ(testing::round_to_fp16(1.0f), 1.0f);
  EXPECT_EQ(testing::round_to_fp16(1.0f + 0x1p-11f), 1.0f);            // tie: to even
  EXPECT_EQ(testing::round_to_fp16(1.0f + 0x1p-11f + 0x1p-20f), 1.0f + 0x1p-10f);
  EXPECT_EQ(testing::round_to_fp16(0x1p-25f + 0x1p-30f), 0x1p-24f);    // subnormal spacing
}

TEST(SamplePositions, IncludeEndsAndBoundaries) {
  const std::vector<int> p = check_sample_positions(602, 1);
  for (int j : {0, 63, 64, 255, 256, 511, 512, 599, 600, 601}) {
    EXPECT_TRUE(std::binary_search(p.begin(), p.end(), j)) << j;
  }
  EXPECT_GE(p.size(), 14u);
  EXPECT_LE(p.size(), 20u);
  EXPECT_EQ(p.back(), 601);
  const std::vector<int> q = check_sample_positions(5000, 1);
  for (int j : {4095, 4096, 4863, 4864}) {  // largest power of two, multiple of 256
    EXPECT_TRUE(std::binary_search(q.begin(), q.end(), j)) << j;
  }
  EXPECT_EQ(check_sample_positions(2, 1), (std::vector<int>{0, 1}));
}

TEST_F(Planted, CorrectFakesPass) {
  for (int threads : {1, 2}) {
    const CheckResult r = check("fake_cached", 600, threads);
    EXPECT_TRUE(r.passed) << describe(r);
    EXPECT_EQ(r.positions, (std::vector<int>{600, 601}));
    EXPECT_EQ(r.kind, "own K/V rows");
    // 2 layers x 2 KV heads x K and V x d = 8, per sampled position.
    EXPECT_EQ(r.rows.elements, static_cast<std::int64_t>(r.sampled_positions.size()) * 2 * 2 * 2 * 8);
    EXPECT_EQ(r.output.elements, 2 * 16);
    EXPECT_GT(r.output.ratio, 0);  // fp32 arithmetic differs from float64 somewhere
    EXPECT_LT(r.output.ratio, 1);
  }
  const CheckResult naive = check("fake_naive", 600);
  EXPECT_TRUE(naive.passed) << describe(naive);
  EXPECT_EQ(naive.kind, "full float64 reference (no K/V cache)");
  EXPECT_TRUE(naive.weaker.empty()) << naive.weaker;
  EXPECT_EQ(naive.rows.elements, 0);
}

TEST_F(Planted, NoCacheCheckIsLoweredAndSaysSoWhenTooCostly) {
  CheckOptions o;
  o.position = 600;
  o.input_seed = 30;
  o.no_cache_budget = 1e7;
  const CheckResult r = check_implementation(registry.get("fake_naive"), weights, o);
  EXPECT_TRUE(r.passed) << describe(r);
  ASSERT_FALSE(r.positions.empty());
  EXPECT_LT(r.positions.front(), 600);
  EXPECT_NE(r.weaker.find("instead of 600"), std::string::npos) << r.weaker;
  EXPECT_NE(describe(r).find("weaker check"), std::string::npos);
}

TEST_F(Planted, Fp16StorageDeclaredFp32FailsTheRowCheck) {
  for (int position : {20, 600}) {
    const CheckResult r = check("planted_fp16_as_fp32", position);
    EXPECT_FALSE(r.passed) << describe(r);
    EXPECT_NE(r.failure.find("K/V row error"), std::string::npos) << r.failure;
    EXPECT_GT(r.rows.ratio, 3) << "fp16 rounding should be well past the fp32 bound";
    EXPECT_LT(r.output.ratio, 1) << "its own rows are consistent with its outputs";
  }
}

TEST_F(Planted, Fp16StorageDeclaredFp16Passes) {
  // The same rounding is correct for a cache that declares fp16: the row tolerance then
  // includes fp16's 2^-11 relative rounding of each stored element.
  ModelConfig c = small_model();
  c.dtype = DType::f16;
  CheckOptions o;
  o.position = 600;
  o.input_seed = 30;
  const CheckResult r =
      check_implementation(registry.get("planted_fp16_as_fp32"), ModelWeights::from_seed(c), o);
  EXPECT_TRUE(r.passed) << describe(r);
  EXPECT_GT(r.rows.ratio, 0.05) << "the fp16 term should be what the rows use up";
}

TEST_F(Planted, OffsetPastAPositionFailsOnlyWhenTheCheckReachesIt) {
  const CheckResult before = check("planted_offset", 200);  // bug from 300 on
  EXPECT_TRUE(before.passed) << describe(before);
  const CheckResult past = check("planted_offset", 600);
  EXPECT_FALSE(past.passed) << describe(past);
  EXPECT_GT(past.output.ratio, 1) << describe(past);
  EXPECT_GT(past.rows.ratio, 1) << describe(past);
}

TEST_F(Planted, ReadPastTheLengthFails) {
  const CheckResult r = check("planted_read_past", 600);
  EXPECT_FALSE(r.passed) << describe(r);
  EXPECT_NE(r.failure.find("output error"), std::string::npos) << r.failure;
}

struct BenchWithPlanted : Planted {
  BenchOptions options;
  void SetUp() override {
    Planted::SetUp();
    options.config = small_model();
    options.shape = "small";
    options.tokens = {4, 8};
    options.positions = {16, 520};
    options.long_impls = {};
    options.min_time = 0.001;
    options.budget_seconds = 100;
    options.bandwidth_bytes = 1 << 20;
    options.bandwidth_passes = 1;
  }
  json run(const std::string& file, BenchOutcome* outcome = nullptr) {
    options.out_path = ::testing::TempDir() + "/" + file;
    const BenchOutcome o = run_bench(options);
    if (outcome) *outcome = o;
    std::ifstream in(options.out_path);
    return json::parse(in);
  }
};

TEST_F(BenchWithPlanted, WrongImplementationsAreReportedAndNotTimed) {
  for (const char* name : {"fake_cached", "planted_fp16_as_fp32", "planted_offset", "fake_naive"}) {
    options.impls.push_back(&registry.get(name));
  }
  BenchOutcome outcome;
  const json out = run("planted.json", &outcome);
  EXPECT_EQ(outcome.failed_checks,
            (std::vector<std::string>{"planted_fp16_as_fp32", "planted_offset"}));
  EXPECT_EQ(outcome.failed, 0);
  // 2 timed implementations x (2 generations + 2 decode steps).
  EXPECT_EQ(outcome.ran, 8);
  for (const auto& b : out["benchmarks"]) {
    EXPECT_EQ(b["name"].get<std::string>().find("planted"), std::string::npos) << b["name"];
  }
  const json k = json::parse(out["context"]["kvbench"].get<std::string>());
  ASSERT_EQ(k["checks"].size(), 4u);
  for (const auto& c : k["checks"]) {
    const bool planted = c["implementation"].get<std::string>().rfind("planted", 0) == 0;
    EXPECT_EQ(c["verdict"], planted ? "fail" : "pass") << c.dump();
    // The longest position of the sweep (520) and one more.
    EXPECT_EQ(c["positions"], json({520, 521})) << c.dump();
    EXPECT_GT(c["output"]["allowed"].get<double>(), 0);
  }
  EXPECT_EQ(k["failed_check_implementations"], json({"planted_fp16_as_fp32", "planted_offset"}));
  EXPECT_EQ(k["implementations"].size(), 2u) << "only the timed ones";
  const std::string summary = out["context"]["check"];
  EXPECT_EQ(summary.rfind("FAILED (not timed): planted_fp16_as_fp32", 0), 0u) << summary;
  EXPECT_NE(summary.find("passed: fake_cached"), std::string::npos) << summary;
}

TEST_F(BenchWithPlanted, NoCheckTimesEverythingAndSaysSo) {
  options.impls = {&registry.get("planted_fp16_as_fp32")};
  options.check = false;
  BenchOutcome outcome;
  const json out = run("nocheck.json", &outcome);
  EXPECT_TRUE(outcome.failed_checks.empty());
  EXPECT_EQ(outcome.ran, 4);
  EXPECT_EQ(out["context"]["check"], "skipped (--no-check)");
  const json k = json::parse(out["context"]["kvbench"].get<std::string>());
  EXPECT_EQ(k["check"], "skipped (--no-check)");
  EXPECT_TRUE(k["checks"].empty());
}

}  // namespace
}  // namespace kvbench::bench
