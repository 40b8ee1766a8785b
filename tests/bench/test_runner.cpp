// The runner end to end on the test fakes: Google Benchmark's JSON with kvbench's names,
// exact op counters, the context block, budget stops, and compare.py reading two outputs.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "harness/bench/names.h"
#include "harness/bench/runner.h"
#include "harness/bench/timer.h"
#include "harness/error.h"
#include "tests/bench/fake_impls.h"

namespace kvbench::bench {
namespace {

using nlohmann::json;

struct Fixture : ::testing::Test {
  Registry registry;
  BenchOptions options;
  std::string dir;

  void SetUp() override {
    testing::register_fake_impls(registry);
    options.impls = registry.all();
    options.config.layers = 1;
    options.config.d_model = 16;
    options.config.heads = 2;
    options.config.kv_heads = 1;
    options.config.head_dim = 8;
    options.config.capacity = 128;
    options.shape = "tiny";
    options.tokens = {4, 8, 16};
    options.positions = {4, 16};
    options.long_impls = {"fake_cached"};
    options.long_positions = {32};
    options.threads = {1, 2};
    options.min_time = 0.001;
    options.budget_seconds = 100;
    options.bandwidth_bytes = 1 << 20;
    options.bandwidth_passes = 1;
    dir = ::testing::TempDir();
  }

  json run(const std::string& file) {
    options.out_path = dir + "/" + file;
    const BenchOutcome outcome = run_bench(options);
    EXPECT_EQ(outcome.failed, 0);
    std::ifstream in(options.out_path);
    return json::parse(in);
  }
};

const json* find_run(const json& out, const std::string& name) {
  for (const auto& b : out["benchmarks"]) {
    if (b["name"] == name + "/manual_time") return &b;
  }
  return nullptr;
}

TEST_F(Fixture, WritesEveryPlannedBenchmarkWithExactCounters) {
  const json out = run("all.json");
  // generation: 3 sizes x 2 impls; decode: fake_naive 2 positions, fake_cached
  // (threads-capable) 3 positions x 2 thread counts.
  EXPECT_EQ(out["benchmarks"].size(), 6u + 2u + 6u);
  std::set<int> families;
  for (const auto& b : out["benchmarks"]) {
    EXPECT_TRUE(parse_benchmark_name(b["name"])) << b["name"];
    EXPECT_EQ(b["run_type"], "iteration");
    families.insert(b["family_index"].get<int>());
  }
  EXPECT_EQ(families.size(), out["benchmarks"].size()) << "one family per benchmark";

  const json* g = find_run(out, "generate/fake_naive/T:16");
  ASSERT_NE(g, nullptr);
  EXPECT_EQ((*g)["time_unit"], "ms");
  EXPECT_DOUBLE_EQ((*g)["projection_rows"].get<double>(), 16 * 17 / 2);
  EXPECT_DOUBLE_EQ((*g)["qk_dot_products"].get<double>(), 2 * 16 * 17 / 2);
  EXPECT_DOUBLE_EQ((*g)["size"].get<double>(), 16);
  EXPECT_GT((*g)["tokens_per_second"].get<double>(), 0);

  const json* c = find_run(out, "generate/fake_cached/T:8");
  ASSERT_NE(c, nullptr);
  EXPECT_DOUBLE_EQ((*c)["projection_rows"].get<double>(), 8);
  // bytes held by the cache once the 8 tokens are in: 2 * L * H_kv * d * T * 4.
  EXPECT_DOUBLE_EQ((*c)["bytes_held"].get<double>(), 2 * 1 * 1 * 8 * 8 * 4);
  // K/V bytes read per second is the per-iteration bytes over the per-iteration time.
  const double seconds = (*c)["real_time"].get<double>() * 1e-3;
  EXPECT_NEAR((*c)["kv_bytes_read_per_second"].get<double>(),
              (*c)["kv_bytes_read"].get<double>() / seconds,
              1e-6 * (*c)["kv_bytes_read_per_second"].get<double>());

  const json* d = find_run(out, "decode_step/fake_cached/threads:2/pos:32");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ((*d)["time_unit"], "us");
  EXPECT_DOUBLE_EQ((*d)["projection_rows"].get<double>(), 1);
  EXPECT_DOUBLE_EQ((*d)["qk_dot_products"].get<double>(), 2 * 33);
  EXPECT_DOUBLE_EQ((*d)["threads_used"].get<double>(), 2);
  EXPECT_EQ(find_run(out, "decode_step/fake_naive/threads:1/pos:32"), nullptr)
      << "long positions are for the long_impls only";
}

TEST_F(Fixture, ContextRecordsModelMachineAndBandwidth) {
  const json out = run("context.json");
  const json& ctx = out["context"];
  EXPECT_EQ(ctx["shape"], "tiny");
  EXPECT_EQ(ctx["naive_stopped_at"], "not stopped");
  EXPECT_GT(std::stod(ctx["read_bandwidth_bytes_per_second"].get<std::string>()), 0);
  const json k = json::parse(ctx["kvbench"].get<std::string>());
  EXPECT_EQ(k["config"]["d_model"], 16);
  EXPECT_EQ(k["config"]["kv_bytes_per_token"], 2 * 8 * 4);
  EXPECT_GT(k["bandwidth"]["read_bytes_per_second"].get<double>(), 0);
  EXPECT_GT(k["bandwidth"]["copy_bytes_per_second"].get<double>(), 0);
  EXPECT_EQ(k["bandwidth"]["before"]["buffer_bytes"], 1 << 20);
  // Matched to the K/V a step reads at the long position 32: 33 x 64 bytes, at least 4 KiB.
  ASSERT_EQ(k["bandwidth"]["by_size"].size(), 1u);
  EXPECT_EQ(k["bandwidth"]["by_size"][0]["buffer_bytes"], 4096);
  EXPECT_EQ(k["bandwidth"]["by_size"][0]["matches"], "K/V bytes a decode step reads at t = 32");
  EXPECT_GT(k["bandwidth"]["by_size"][0]["read_bytes_per_second"].get<double>(), 0);
  // before, next to each of fake_cached's two decode steps at t = 32 (1 and 2 threads), after.
  ASSERT_EQ(k["bandwidth"]["by_size"][0]["runs"].size(), 4u);
  EXPECT_EQ(k["bandwidth"]["by_size"][0]["runs"][1]["when"],
            "adjacent to decode_step/fake_cached/threads:1/pos:32");
  // The read-only reference: at 1 thread and at each timed thread count (1, 2), before and
  // after, held like the K/V; the 1-thread one is also the context's read bandwidth floor.
  const json& refs = k["bandwidth"]["read_reference"];
  ASSERT_EQ(refs.size(), 2u);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(refs[i]["threads"], i + 1);
    EXPECT_EQ(refs[i]["buffer_bytes"], 1 << 20);
    EXPECT_EQ(refs[i]["runs"].size(), 2u);
    EXPECT_GE(refs[i]["best_bytes_per_second"].get<double>(),
              refs[i]["median_bytes_per_second"].get<double>());
    EXPECT_NE(refs[i]["allocation"].get<std::string>().find("MADV_HUGEPAGE"), std::string::npos);
  }
  EXPECT_GE(k["bandwidth"]["read_bytes_per_second"].get<double>(),
            refs[0]["best_bytes_per_second"].get<double>());
  EXPECT_GT(k["machine"]["llc_bytes"].get<double>(), 0);
  EXPECT_EQ(k["implementations"].size(), 2u);
  EXPECT_TRUE(k["stops"].empty());
}

TEST_F(Fixture, SeriesStopBeforeThePredictedBudgetAndSayWhere) {
  // With a budget below any measurable time, each series runs its first size only: the
  // prediction for the next size then exceeds the budget.
  options.budget_seconds = 1e-12;
  const json out = run("budget.json");
  const json k = json::parse(out["context"]["kvbench"].get<std::string>());
  EXPECT_EQ(out["benchmarks"].size(), 2u + 1u + 2u);
  ASSERT_FALSE(k["naive_stopped_at"].is_null());
  EXPECT_EQ(k["naive_stopped_at"]["stopped_before"], 8);
  EXPECT_EQ(k["naive_stopped_at"]["last_measured"], 4);
  EXPECT_NE(out["context"]["naive_stopped_at"].get<std::string>().find("T=8"),
            std::string::npos);
  EXPECT_EQ(k["stops"].size(), 5u);
}

TEST_F(Fixture, SizesPastCapacityAreStopsNotFailures) {
  options.tokens = {64, 256};
  options.positions = {127, 128};
  options.long_positions = {};
  options.threads = {1};
  const json out = run("capacity.json");
  EXPECT_NE(find_run(out, "generate/fake_cached/T:64"), nullptr);
  EXPECT_EQ(find_run(out, "generate/fake_cached/T:256"), nullptr);
  EXPECT_NE(find_run(out, "decode_step/fake_cached/threads:1/pos:127"), nullptr);
  const json k = json::parse(out["context"]["kvbench"].get<std::string>());
  ASSERT_EQ(k["stops"].size(), 4u);
  EXPECT_NE(k["stops"][0]["reason"].get<std::string>().find("capacity"), std::string::npos);
}

// A generation's iteration time is its T decode steps; creating the sequence is setup,
// timed apart (setup_seconds, setup_fraction). On a virtual clock that only the fake
// advances (20 ms per create_sequence, 1 us per decoded token), both are exact, whatever
// the machine's load.
TEST_F(Fixture, GenerationTimesTheDecodeStepsAndRecordsSetupApart) {
  TimerRegistry::global().set("fake_virtual", [](const ImplInfo&) {
    return testing::make_virtual_timer();
  });
  Registry slow;
  testing::SlowCreate how;
  how.device = "fake_virtual";
  how.create_virtual = 0.020;
  how.decode_virtual = 1e-6;
  testing::register_slow_create_fake(slow, how);
  options.impls = slow.all();
  options.tokens = {4, 8};
  options.positions = {};
  options.long_impls = {};
  options.long_positions = {};
  const json out = run("setup_virtual.json");
  for (int T : {4, 8}) {
    const json* g = find_run(out, "generate/fake_slow_create/T:" + std::to_string(T));
    ASSERT_NE(g, nullptr) << T;
    EXPECT_EQ((*g)["time_unit"], "ms");
    EXPECT_NEAR((*g)["real_time"].get<double>() * 1e-3, T * 1e-6, 1e-12) << T;
    ASSERT_TRUE(g->contains("setup_seconds")) << g->dump();
    EXPECT_NEAR((*g)["setup_seconds"].get<double>(), 0.020, 1e-12) << T;
    EXPECT_NEAR((*g)["setup_fraction"].get<double>(), 0.020 / (0.020 + T * 1e-6), 1e-9) << T;
    // Rates are per second of the decode steps.
    EXPECT_NEAR((*g)["tokens_per_second"].get<double>(), 1e6, 1e-3) << T;
  }
}

// The same on the host clock: create_sequence sleeps 20 ms, a decode step of the tiny model
// takes microseconds. Only bounds that hold on any load: a sleep lasts at least its time,
// and 20 ms of sleep per iteration cannot land in a decode-only iteration time.
TEST_F(Fixture, SlowCreateOnTheHostClockIsSetupNotIterationTime) {
  Registry slow;
  testing::SlowCreate how;
  how.create_sleep = 0.020;
  testing::register_slow_create_fake(slow, how);
  options.impls = slow.all();
  options.tokens = {2};
  options.positions = {};
  options.long_impls = {};
  options.long_positions = {};
  options.min_time = 1e-5;  // a few iterations: each sleeps 20 ms
  options.check = false;
  const json out = run("setup_host.json");
  const json* g = find_run(out, "generate/fake_slow_create/T:2");
  ASSERT_NE(g, nullptr);
  ASSERT_TRUE(g->contains("setup_seconds")) << g->dump();
  const double setup = (*g)["setup_seconds"].get<double>();
  const double decode = (*g)["real_time"].get<double>() * 1e-3;
  EXPECT_GE(setup, 0.020);
  EXPECT_LT(decode, 0.020) << "the 20 ms create_sequence is in the iteration time";
  EXPECT_GT((*g)["setup_fraction"].get<double>(), 0.5);
}

TEST(PositionPastCache, SmallestPowerOfTwoAboveFactorTimesCache) {
  ModelConfig c;  // 2 * 1 * 4 * 16 * 4 = 512 bytes per token
  c.capacity = 1 << 20;
  EXPECT_EQ(position_past_cache(c, 1 << 20, 2.0), 4096);  // 4096 * 512 = 2 MiB
  EXPECT_EQ(position_past_cache(c, 1000, 1.0), 16);
  c.capacity = 1000;
  EXPECT_EQ(position_past_cache(c, 1 << 20, 2.0), 999);
}

// The serving benchmarks on fake_cached (fork, K/V cache; fake_naive holds none and gets
// neither): counts and memory only, never speed. fake_cached holds 64 bytes per token
// (2 x L 1 x H_kv 1 x d 8 x 4) per sequence, so a beam search's memory follows exactly.
TEST_F(Fixture, ServingBenchmarksRecordMemoryAndPrefixCounters) {
  options.tokens.clear();
  options.positions.clear();
  options.long_impls.clear();
  options.beam_widths = {2, 4};
  options.beam_steps = 8;
  options.beam_prune_every = 4;
  options.serving_prompt = 20;
  options.prefix_prefill = true;
  const json out = run("serving.json");
  EXPECT_EQ(out["benchmarks"].size(), 3u);
  EXPECT_EQ(find_run(out, "beam/fake_naive/width:2"), nullptr) << "no K/V cache: no beams";
  EXPECT_EQ(find_run(out, "prefix_prefill/fake_naive/P:20"), nullptr);
  for (const int width : {2, 4}) {
    const json* b = find_run(out, "beam/fake_cached/width:" + std::to_string(width));
    ASSERT_NE(b, nullptr) << width;
    EXPECT_EQ((*b)["time_unit"], "ms");
    EXPECT_DOUBLE_EQ((*b)["width"].get<double>(), width);
    EXPECT_DOUBLE_EQ((*b)["steps"].get<double>(), 8);
    EXPECT_DOUBLE_EQ((*b)["prune_every"].get<double>(), 4);
    EXPECT_DOUBLE_EQ((*b)["prompt_tokens"].get<double>(), 20);
    // One prune (after step 4; none after the last step); W - 1 forks at the start and W / 2
    // at the prune.
    EXPECT_DOUBLE_EQ((*b)["prunes"].get<double>(), 1);
    EXPECT_DOUBLE_EQ((*b)["forks"].get<double>(), width - 1 + width / 2);
    // Every beam copies its history: W x (20 + 8) tokens at the end; the mean over the
    // samples at 20, 21, ..., 28 tokens per beam is W x 24 tokens.
    EXPECT_DOUBLE_EQ((*b)["bytes_held_peak"].get<double>(), width * 28 * 64);
    EXPECT_DOUBLE_EQ((*b)["bytes_held_mean"].get<double>(), width * 24 * 64);
    EXPECT_DOUBLE_EQ((*b)["bytes_reserved_peak"].get<double>(), width * 28 * 64);
    EXPECT_DOUBLE_EQ((*b)["bytes_held"].get<double>(), width * 28 * 64);
    // Per round: the prompt's 20 rows once, then one K/V row per beam and step; a fork
    // projects nothing.
    EXPECT_DOUBLE_EQ((*b)["projection_rows"].get<double>(), 20 + width * 8);
    EXPECT_GT((*b)["seconds_per_step"].get<double>(), 0);
  }
  const json* p = find_run(out, "prefix_prefill/fake_cached/P:20");
  ASSERT_NE(p, nullptr);
  // 90 % of 20 is 18, rounded down to whole blocks of 16.
  EXPECT_DOUBLE_EQ((*p)["prefix_tokens"].get<double>(), 16);
  EXPECT_DOUBLE_EQ((*p)["prompt_tokens"].get<double>(), 20);
  EXPECT_DOUBLE_EQ((*p)["prefix_hit_tokens"].get<double>(), 0) << "no prefix cache";
  EXPECT_DOUBLE_EQ((*p)["cold_hit_tokens"].get<double>(), 0);
  EXPECT_GT((*p)["cold_seconds"].get<double>(), 0);
  EXPECT_GT((*p)["warm_over_cold"].get<double>(), 0);
  EXPECT_DOUBLE_EQ((*p)["bytes_held"].get<double>(), 0) << "every sequence dropped";
  const json k = json::parse(out["context"]["kvbench"].get<std::string>());
  EXPECT_EQ(k["options"]["beam"]["steps"], 8);
  EXPECT_EQ(k["options"]["beam"]["prompt_tokens"], 20);
  EXPECT_EQ(k["options"]["prefix_prefill"]["prefix_tokens"], 16);
}

// A prompt with no whole block in its first 90 % stops the prefix series (a stop, not a
// failure); beams whose prompt and steps pass the capacity are an error before any work.
TEST_F(Fixture, ServingBenchmarksStopOrRefuseWhereTheShapeDoesNotFit) {
  options.tokens.clear();
  options.positions.clear();
  options.long_impls.clear();
  options.prefix_prefill = true;
  options.serving_prompt = 10;
  const json out = run("short.json");
  EXPECT_TRUE(out["benchmarks"].empty());
  const json k = json::parse(out["context"]["kvbench"].get<std::string>());
  ASSERT_EQ(k["stops"].size(), 1u);
  EXPECT_EQ(k["stops"][0]["series"], "prefix_prefill/fake_cached");
  options.beam_widths = {3};
  options.out_path = dir + "/odd.json";
  EXPECT_THROW(run_bench(options), Error);
}

// compare.py (Debian libbenchmark-tools) must read two bench outputs.
std::string find_compare_py() {
  for (const char* p : {"/usr/share/benchmark/compare.py", "/usr/lib/benchmark/compare.py"}) {
    if (std::ifstream(p).good()) return p;
  }
  return "";
}

TEST_F(Fixture, ComparePyReadsTwoOutputs) {
  const std::string compare = find_compare_py();
  if (compare.empty()) GTEST_SKIP() << "compare.py not found: install libbenchmark-tools";
  const std::string python = std::ifstream("/usr/bin/python3").good() ? "/usr/bin/python3" : "python3";
  if (std::system((python + " -c 'import scipy, numpy' 2>/dev/null").c_str()) != 0) {
    GTEST_SKIP() << python << " lacks scipy/numpy that compare.py imports: install "
                 << "python3-scipy python3-numpy (ci/setup-debian.sh does)";
  }
  run("a.json");
  options.tokens = {4, 8};  // the second run has fewer benchmarks; compare.py matches names
  run("b.json");
  const std::string log = dir + "/compare.log";
  const std::string cmd = python + " " + compare + " benchmarks " + dir + "/a.json " + dir +
                          "/b.json > " + log + " 2>&1";
  const int rc = std::system(cmd.c_str());
  std::ifstream in(log);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(rc, 0) << cmd << "\n" << text.str();
  EXPECT_NE(text.str().find("generate/fake_cached/T:8/manual_time"), std::string::npos)
      << text.str();
  EXPECT_EQ(text.str().find("Traceback"), std::string::npos) << text.str();
}

}  // namespace
}  // namespace kvbench::bench
