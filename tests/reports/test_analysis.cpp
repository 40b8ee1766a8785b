// The analysis on synthetic data with known answers: exponents, the change of regime, the
// speedup against the op-count ratio, and each target's figure and verdict.
#include <gtest/gtest.h>

#include <cmath>

#include "reports/analysis.h"
#include "harness/error.h"
#include "reports/format.h"
#include "tests/reports/synthetic.h"

namespace kvbench::reports {
namespace {

using bench::BenchKind;
using nlohmann::json;
using testing::Synthetic;

const Target& target(const Analysis& a, const std::string& id) {
  for (const auto& t : a.targets) {
    if (t.id == id) return t;
  }
  throw std::runtime_error("no target " + id);
}

bool any_verdict_contains(const Analysis& a, const std::string& text) {
  for (const auto& v : a.verdicts) {
    if (v.text.find(text) != std::string::npos) return true;
  }
  return false;
}

TEST(Analysis, ExponentsAndRegimeFollowTheOpCountModel) {
  Synthetic s;
  const Analysis a = analyze(parse_bench(s.standard()));
  const SeriesAnalysis* naive = a.find_generation("naive");
  const SeriesAnalysis* cached = a.find_generation("cpu_cached");
  ASSERT_TRUE(naive && cached && naive->time_fit && cached->time_fit);
  // naive: projections T(T+1)/2 rows dominate: exponent near 2 (the linear Q/O term and the
  // +1 pull it slightly below 2 at T = 16).
  EXPECT_NEAR(naive->time_fit->exponent, 2.0, 0.05);
  EXPECT_EQ(growth_law(naive->time_fit->exponent), "T^2");
  EXPECT_NEAR(naive->projection_fit->exponent, 2.0, 0.05);
  EXPECT_NEAR(cached->projection_fit->exponent, 1.0, 1e-12);
  EXPECT_NEAR(cached->dots_fit->exponent, 2.0, 0.05);
  // cached: ~1 at small T, towards 2 at large T, 1.5 near the model's T = 1024.
  EXPECT_LT(cached->local.front().exponent, 1.1);
  EXPECT_GT(cached->local.back().exponent, 1.7);
  EXPECT_EQ(a.predicted_generation_crossover, 1024);
  EXPECT_GT(cached->quadratic_from, 1024 / 1.5);
  EXPECT_LT(cached->quadratic_from, 1024 * 1.5);
  EXPECT_TRUE(any_verdict_contains(a, "naive: generation time (setup included) grows as T^2"));
  EXPECT_TRUE(any_verdict_contains(a, "cpu_cached: linear while the projections dominate"));
  EXPECT_TRUE(any_verdict_contains(a, "no longer linear from T ~"));
  // decode step: the model's crossing of projections and attention is t = 511 for MHA.
  EXPECT_EQ(a.predicted_decode_crossover, 511);
}

TEST(Analysis, SpeedupMatchesTheAnalyticRatioWhenTimesFollowTheModel) {
  Synthetic s;
  const Analysis a = analyze(parse_bench(s.standard()));
  ASSERT_FALSE(a.speedups.empty());
  const Speedup* sp = nullptr;
  for (const auto& x : a.speedups) {
    if (x.cached == "cpu_cached") sp = &x;
  }
  ASSERT_NE(sp, nullptr);
  EXPECT_EQ(sp->points.size(), 7u);  // T = 16..1024, where both ran
  for (const auto& p : sp->points) {
    EXPECT_NEAR(p.relative_error, 0, 1e-9) << "T=" << p.tokens;
    EXPECT_GT(p.analytic, 1);
  }
  const Target& t = target(a, "naive_over_cached_vs_analytic");
  EXPECT_EQ(t.verdict, "met");
  EXPECT_NEAR(t.measured, 0, 1e-9);
}

TEST(Analysis, SpeedupTargetReportsTheWorstDeviation) {
  Synthetic s;
  // cpu_cached 1.5x slower at T = 256 only: the measured ratio there is 1/1.5 of the model.
  s.factor = [](const std::string& impl, int, BenchKind kind, int size) {
    return impl == "cpu_cached" && kind == BenchKind::generate && size == 256 ? 1.5 : 1.0;
  };
  const Analysis a = analyze(parse_bench(s.standard()));
  const Target& t = target(a, "naive_over_cached_vs_analytic");
  EXPECT_EQ(t.verdict, "not met");
  EXPECT_NEAR(t.measured, 1 - 1 / 1.5, 1e-9);
  EXPECT_NE(t.detail.find("T = 256"), std::string::npos) << t.detail;
}

TEST(Analysis, DecodeTargetsUseTheSmallestRatio) {
  Synthetic s;
  // torch_cached 12x cpu_cached's time everywhere except 8x at t = 256; torch_static 3x, and
  // 0.8x at t = 16384 (faster than cpu_cached there).
  s.factor = [](const std::string& impl, int threads, BenchKind kind, int size) {
    if (kind != BenchKind::decode_step) return 1.0;
    if (impl == "torch_cached") return size == 256 ? 8.0 : 12.0;
    if (impl == "torch_static") return size == 16384 ? 0.8 : 3.0;
    if (impl == "cpu_cached" && threads == 2) return 1 / 1.8;
    return 1.0;
  };
  const Analysis a = analyze(parse_bench(s.standard()));
  const Target& short_tc = target(a, "decode_vs_torch_cached_short");
  EXPECT_EQ(short_tc.verdict, "not met");
  EXPECT_NEAR(short_tc.measured, 8.0, 1e-9);
  EXPECT_NE(short_tc.detail.find("t = 256"), std::string::npos);
  EXPECT_EQ(target(a, "decode_vs_torch_static_short").verdict, "met");
  EXPECT_NEAR(target(a, "decode_vs_torch_static_short").measured, 3.0, 1e-9);
  EXPECT_EQ(target(a, "decode_vs_torch_cached_16384").verdict, "met");
  EXPECT_NEAR(target(a, "decode_vs_torch_cached_16384").measured, 12.0, 1e-9);
  EXPECT_EQ(target(a, "decode_vs_torch_static_16384").verdict, "not met");
  EXPECT_NEAR(target(a, "decode_vs_torch_static_16384").measured, 0.8, 1e-9);
  // No step of this run moves >= 8x the LLC: the 2-thread target is not judged (test_floor.cpp
  // judges it), and the ratio is given for information.
  const Target& threads = target(a, "cpu_cached_two_threads");
  EXPECT_EQ(threads.verdict, "not measured");
  EXPECT_NE(threads.detail.find("for information: 1.8x"), std::string::npos) << threads.detail;
}

// The bandwidth and floor targets: tests/reports/test_floor.cpp.

TEST(Analysis, PagedTargetIsTheLargestRatioPastPosition1024) {
  // paged 1.5x cpu_cached at t = 256 (not judged: < 1024), 1.03x at 1024, 1.08x at 4096.
  Synthetic s;
  s.factor = [](const std::string& impl, int, BenchKind kind, int size) {
    if (impl != "paged" || kind != BenchKind::decode_step) return 1.0;
    return size == 256 ? 1.5 : size == 1024 ? 1.03 : size == 4096 ? 1.08 : 1.0;
  };
  for (int t = 16; t <= 16384; t *= 4) s.add("paged", BenchKind::decode_step, t);
  const Analysis a = analyze(parse_bench(s.standard()));
  const Target& t = target(a, "paged_vs_cpu_cached");
  EXPECT_EQ(t.verdict, "not met");
  EXPECT_NEAR(t.measured, 1.08, 1e-9);
  EXPECT_NE(t.detail.find("t = 4096"), std::string::npos) << t.detail;
  Synthetic ok;
  for (int t = 16; t <= 16384; t *= 4) ok.add("paged", BenchKind::decode_step, t);
  const Analysis b = analyze(parse_bench(ok.standard()));
  EXPECT_EQ(target(b, "paged_vs_cpu_cached").verdict, "met");
  EXPECT_NEAR(target(b, "paged_vs_cpu_cached").measured, 1.0, 1e-9);
}

TEST(Analysis, TargetsWithoutDataAreNotMeasuredWithAReason) {
  Synthetic s;
  for (int T = 16; T <= 256; T *= 2) s.add("cpu_cached", BenchKind::generate, T);
  const Analysis a = analyze(parse_bench(s.finish()));
  ASSERT_EQ(a.targets.size(), 9u);
  for (const auto& t : a.targets) {
    EXPECT_EQ(t.verdict, "not measured") << t.id;
    EXPECT_FALSE(t.detail.empty()) << t.id;
  }
}

TEST(Analysis, OtherShapesDoNotClaimDefaultShapeTargets) {
  Synthetic s;
  json doc = s.standard();
  json k = json::parse(doc["context"]["kvbench"].get<std::string>());
  k["shape"] = "gpt2";
  doc["context"]["kvbench"] = k.dump();
  const Analysis a = analyze(parse_bench(doc));
  EXPECT_EQ(target(a, "decode_vs_torch_cached_short").verdict, "not measured");
  EXPECT_NE(target(a, "decode_vs_torch_cached_short").detail.find("gpt2"), std::string::npos);
  EXPECT_NE(target(a, "naive_over_cached_vs_analytic").verdict, "not measured");
}

// ---- setup, timed apart from the decode steps ------------------------------------------------

const Verdict* verdict_under(const Analysis& a, const std::string& topic, const std::string& text) {
  for (const auto& v : a.verdicts) {
    if (v.topic.find(topic) != std::string::npos && v.text.find(text) != std::string::npos) {
      return &v;
    }
  }
  return nullptr;
}

std::string verdicts_text(const Analysis& a) {
  std::string out;
  for (const auto& v : a.verdicts) out += v.topic + ": " + v.text + "\n";
  return out;
}

TEST(Analysis, SetupIsReportedAndNamedWhereItWouldHaveDominated) {
  Synthetic s;
  // cpu_cached: 1 s of setup at T = 16 (far above its decode steps), 1 ns elsewhere; the
  // others 1 ns everywhere.
  s.setup = [](const std::string& impl, int T) { return impl == "cpu_cached" && T == 16 ? 1.0 : 1e-9; };
  const Analysis a = analyze(parse_bench(s.standard()));
  const SeriesAnalysis* cached = a.find_generation("cpu_cached");
  ASSERT_TRUE(cached && cached->setup_recorded());
  EXPECT_DOUBLE_EQ(cached->setup_seconds.front(), 1.0);
  EXPECT_GT(cached->setup_share(0), 0.5);
  EXPECT_NE(verdict_under(a, "Setup: creating the sequence",
                          "cpu_cached: setup 1 s at T = 16 ("),
            nullptr) << verdicts_text(a);
  EXPECT_NE(verdict_under(a, "Setup: creating the sequence", "naive: setup 1 ns at T = 16 ("),
            nullptr) << verdicts_text(a);
  const Verdict* dominated = verdict_under(a, "Where setup would have dominated", "");
  ASSERT_NE(dominated, nullptr) << verdicts_text(a);
  EXPECT_NE(dominated->text.find("Setup would have dominated"), std::string::npos) << dominated->text;
  EXPECT_NE(dominated->text.find("cpu_cached at T = 16 ("), std::string::npos) << dominated->text;
  EXPECT_EQ(dominated->text.find("T = 32"), std::string::npos) << dominated->text;
  EXPECT_EQ(dominated->text.find("naive at"), std::string::npos) << dominated->text;
  EXPECT_TRUE(any_verdict_contains(a, "cpu_cached: generation time (the T decode steps) grows"));

  const json fits = a.to_json();
  const json& g = fits["implementations"]["cpu_cached"]["generate"];
  EXPECT_TRUE(g["setup_recorded"].get<bool>());
  EXPECT_DOUBLE_EQ(g["setup_seconds"][0].get<double>(), 1.0);
  EXPECT_EQ(g["setup_dominates_at"], json::array({16.0}));
  EXPECT_GT(g["setup_share_of_total"][0].get<double>(), 0.5);
  EXPECT_EQ(fits["implementations"]["naive"]["generate"]["setup_dominates_at"], json::array());
}

TEST(Analysis, SetupBelowTheDecodeStepsEverywhereDominatesNowhere) {
  Synthetic s;
  s.setup = [](const std::string&, int) { return 1e-9; };
  const Analysis a = analyze(parse_bench(s.standard()));
  const Verdict* dominated = verdict_under(a, "Where setup would have dominated", "");
  ASSERT_NE(dominated, nullptr) << verdicts_text(a);
  EXPECT_EQ(dominated->text.rfind("Nowhere", 0), 0u) << dominated->text;
  EXPECT_EQ(dominated->text.find("would have dominated a timing"), std::string::npos);
}

TEST(Analysis, FitsAndSpeedupsExcludeSetup) {
  Synthetic plain, with_setup;
  // 10 s of setup at every T: a fit of decode + setup would be flat (b ~ 0), and the
  // naive/cached ratio ~ 1.
  with_setup.setup = [](const std::string&, int) { return 10.0; };
  const Analysis a = analyze(parse_bench(plain.standard()));
  const Analysis b = analyze(parse_bench(with_setup.standard()));
  for (const char* impl : {"naive", "cpu_cached"}) {
    const SeriesAnalysis* x = a.find_generation(impl);
    const SeriesAnalysis* y = b.find_generation(impl);
    ASSERT_TRUE(x && y && x->time_fit && y->time_fit) << impl;
    EXPECT_EQ(x->seconds, y->seconds) << impl;
    EXPECT_DOUBLE_EQ(x->time_fit->exponent, y->time_fit->exponent) << impl;
    EXPECT_GT(y->time_fit->exponent, 1.0) << impl;
  }
  EXPECT_NEAR(target(b, "naive_over_cached_vs_analytic").measured, 0, 1e-9);
}

TEST(Analysis, OutputWithoutTheSetupCounterLoadsAndSaysNotRecorded) {
  Synthetic s;  // no setup_seconds, as bench outputs before the counter
  const Analysis a = analyze(parse_bench(s.standard()));
  EXPECT_FALSE(a.find_generation("cpu_cached")->setup_recorded());
  EXPECT_NE(verdict_under(a, "Setup: creating the sequence", "cpu_cached: setup not recorded"),
            nullptr) << verdicts_text(a);
  const Verdict* dominated = verdict_under(a, "Where setup would have dominated", "");
  ASSERT_NE(dominated, nullptr);
  EXPECT_EQ(dominated->text.rfind("Not known", 0), 0u) << dominated->text;
  EXPECT_TRUE(any_verdict_contains(a, "naive: generation time (setup included) grows as T^2"));
  const json g = a.to_json()["implementations"]["cpu_cached"]["generate"];
  EXPECT_FALSE(g["setup_recorded"].get<bool>());
  EXPECT_TRUE(g["setup_seconds"][0].is_null());
}

TEST(BenchData, ANegativeSetupTimeIsAnErrorNamingIt) {
  Synthetic s;
  s.setup = [](const std::string&, int) { return 1e-3; };
  json doc = s.standard();
  doc["benchmarks"][0]["setup_seconds"] = -1;
  try {
    parse_bench(doc);
    FAIL() << "a negative setup time loaded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("setup_seconds"), std::string::npos) << e.what();
  }
}

// ---- growth laws -----------------------------------------------------------------------------

// Beam memory: the saving against cpu_cached at the same width, of its held and of its
// reserved bytes, with the vLLM paper's range beside it; the prefix prefill's warm/cold ratio.
TEST(Analysis, ServingSavingsAgainstCpuCachedAndPrefixRatio) {
  Synthetic s;
  s.add_beam("cpu_cached", 4, 4000, 3800, 400000, 1e-4);
  s.add_beam("cpu_cached", 8, 8000, 7600, 800000, 2e-4);
  s.add_beam("paged", 4, 1000, 900, 32000, 1.5e-4);
  s.add_beam("paged", 8, 1500, 1400, 32000, 2e-4);
  s.add_beam("torch_cached", 4, 4000, 3800, 400000, 1e-3);  // no width 8: nothing to set it against
  s.add_prefix("cpu_cached", 512, 448, 0.0101, 0.0100, 0);
  s.add_prefix("prefix_cached", 512, 448, 0.0012, 0.0100, 448);
  const Analysis a = analyze(parse_bench(s.standard()));
  ASSERT_EQ(a.beam.size(), 5u);
  auto point = [&](const std::string& impl, int width) -> const BeamPoint& {
    for (const auto& b : a.beam) {
      if (b.impl == impl && b.width == width) return b;
    }
    throw std::runtime_error("no beam point " + impl);
  };
  EXPECT_DOUBLE_EQ(point("paged", 4).saving_vs_held, 0.75);
  EXPECT_DOUBLE_EQ(point("paged", 8).saving_vs_held, 1 - 1500.0 / 8000);
  EXPECT_DOUBLE_EQ(point("paged", 4).saving_vs_reserved, 1 - 32000.0 / 400000);
  EXPECT_DOUBLE_EQ(point("torch_cached", 4).saving_vs_reserved, 0);
  EXPECT_DOUBLE_EQ(point("torch_cached", 4).saving_vs_held, 0);
  EXPECT_TRUE(std::isnan(point("cpu_cached", 4).saving_vs_held)) << "not against itself";
  EXPECT_DOUBLE_EQ(point("paged", 8).held_mean, 1400);
  EXPECT_DOUBLE_EQ(point("paged", 4).seconds_per_step, 1.5e-4);
  EXPECT_EQ(point("paged", 4).steps, 32);
  EXPECT_TRUE(any_verdict_contains(a, "paged at width 4: peak 1000 B held"));
  EXPECT_TRUE(any_verdict_contains(a, "75% saved"));
  EXPECT_TRUE(any_verdict_contains(a, "37%-55%"));
  ASSERT_EQ(a.prefix_prefill.size(), 2u);
  for (const auto& p : a.prefix_prefill) {
    EXPECT_EQ(p.prefix, 448);
    if (p.impl == "cpu_cached") {
      EXPECT_NEAR(p.ratio, 1.01, 1e-12);
      EXPECT_EQ(p.hit_tokens, 0);
    } else {
      EXPECT_NEAR(p.ratio, 0.12, 1e-12);
      EXPECT_EQ(p.hit_tokens, 448);
    }
  }
  EXPECT_TRUE(any_verdict_contains(a, "prefix_cached: a 512-token prefill whose first 448"));
  EXPECT_TRUE(any_verdict_contains(a, "0.12x the cold time"));
  EXPECT_TRUE(any_verdict_contains(a, "no prefix reuse: warm and cold do the same work"));
  const json f = a.to_json();
  ASSERT_TRUE(f["serving"]["beam"].is_array());
  EXPECT_EQ(f["serving"]["beam"].size(), 5u);
  EXPECT_EQ(f["serving"]["prefix_prefill"].size(), 2u);
  EXPECT_DOUBLE_EQ(f["serving"]["vllm_beam_saving"]["low"].get<double>(), 0.37);
}

// An output without the serving benchmarks (older ones, --serving none) still analyzes and
// says "not measured".
TEST(Analysis, OutputWithoutServingBenchmarksSaysNotMeasured) {
  Synthetic s;
  const Analysis a = analyze(parse_bench(s.standard()));
  EXPECT_TRUE(a.beam.empty());
  EXPECT_TRUE(a.prefix_prefill.empty());
  EXPECT_TRUE(any_verdict_contains(a, "not measured: the bench output has no beam benchmarks"));
  EXPECT_TRUE(any_verdict_contains(a, "not measured: the bench output has no prefix_prefill"));
  const json f = a.to_json();
  EXPECT_EQ(f["serving"]["beam"], "not measured");
  EXPECT_EQ(f["serving"]["prefix_prefill"], "not measured");
}

TEST(GrowthLaw, SublinearLinearBetweenAndQuadratic) {
  EXPECT_EQ(growth_law(0.6), "sublinear");
  EXPECT_EQ(growth_law(0.79), "sublinear");
  EXPECT_EQ(growth_law(0.8), "T");
  EXPECT_EQ(growth_law(1.0), "T");
  EXPECT_EQ(growth_law(1.5), "between T and T^2");
  EXPECT_EQ(growth_law(2.0), "T^2");
  EXPECT_EQ(grows(0.6), "grows sublinearly");
  EXPECT_EQ(grows(1.0), "grows as T");
}

// Generations of one implementation "x" whose decode steps take 1 ms x (T/16)^b, with
// setup recorded apart.
json power_law_run(double b) {
  json doc = {{"benchmarks", json::array()}};
  for (int T = 16; T <= 256; T *= 2) {
    const double ms = std::pow(T / 16.0, b);
    doc["benchmarks"].push_back({{"name", "generate/x/T:" + std::to_string(T) + "/manual_time"},
                                 {"run_type", "iteration"},
                                 {"iterations", 10},
                                 {"real_time", ms},
                                 {"cpu_time", ms},
                                 {"time_unit", "ms"},
                                 {"setup_seconds", 1e-6}});
  }
  return doc;
}

TEST(Analysis, FitsAreCalledSublinearLinearOrQuadraticByTheirExponent) {
  struct Case {
    double b;
    const char* law;
    const char* grows;
  };
  for (const Case& c : {Case{0.6, "sublinear", "grows sublinearly"},
                        Case{1.0, "T", "grows as T"}, Case{2.0, "T^2", "grows as T^2"}}) {
    const Analysis a = analyze(parse_bench(power_law_run(c.b)));
    const SeriesAnalysis* x = a.find_generation("x");
    ASSERT_TRUE(x && x->time_fit) << c.b;
    EXPECT_NEAR(x->time_fit->exponent, c.b, 1e-9);
    EXPECT_EQ(growth_law(x->time_fit->exponent), c.law);
    EXPECT_TRUE(any_verdict_contains(a, std::string("x: generation time (the T decode steps) ") +
                                            c.grows + " (fit b = "))
        << verdicts_text(a);
    EXPECT_EQ(a.to_json()["implementations"]["x"]["generate"]["growth"], c.law);
    const bool sublinear = c.b < 0.8;
    // A sublinear fit is a finding, explained; never called linear.
    EXPECT_EQ(any_verdict_contains(a, "Sublinear (b < 0.8) is a finding to explain"), sublinear)
        << verdicts_text(a);
    EXPECT_EQ(any_verdict_contains(a, "x: sublinear at the smallest T"), sublinear)
        << verdicts_text(a);
    if (sublinear) {
      EXPECT_FALSE(any_verdict_contains(a, "x: linear")) << verdicts_text(a);
      EXPECT_TRUE(any_verdict_contains(a, "fixed per-step costs that amortize")) << verdicts_text(a);
    }
  }
}

TEST(BenchData, RepetitionsCollapseToTheMedianAndErrorsAreDropped) {
  json doc = {{"benchmarks", json::array()}};
  for (double t : {3.0, 1.0, 2.0}) {
    doc["benchmarks"].push_back({{"name", "generate/x/T:16/manual_time"},
                                 {"run_type", "iteration"},
                                 {"real_time", t},
                                 {"cpu_time", t},
                                 {"time_unit", "ms"},
                                 {"projection_rows", 16}});
  }
  doc["benchmarks"].push_back({{"name", "generate/x/T:32/manual_time"},
                               {"run_type", "iteration"},
                               {"error_occurred", true},
                               {"real_time", 1},
                               {"cpu_time", 1},
                               {"time_unit", "ms"}});
  doc["benchmarks"].push_back({{"name", "BM_other"}, {"real_time", 1}, {"cpu_time", 1}});
  doc["benchmarks"].push_back({{"name", "decode_step/x/threads:1/pos:8/manual_time_median"},
                               {"run_type", "aggregate"},
                               {"aggregate_name", "median"},
                               {"real_time", 250},
                               {"cpu_time", 250},
                               {"time_unit", "ns"}});
  const BenchData d = parse_bench(doc);
  ASSERT_EQ(d.measurements.size(), 2u);
  const Measurement* g = d.find(BenchKind::generate, "x", 1, 16);
  ASSERT_NE(g, nullptr);
  EXPECT_DOUBLE_EQ(g->seconds, 2e-3);
  EXPECT_EQ(g->repetitions, 3);
  EXPECT_DOUBLE_EQ(g->counter("projection_rows"), 16);
  const Measurement* s = d.find(BenchKind::decode_step, "x", 1, 8);
  ASSERT_NE(s, nullptr);
  EXPECT_DOUBLE_EQ(s->seconds, 250e-9);
  EXPECT_THROW(parse_bench(json::object()), Error);
  EXPECT_THROW(load_bench("/nonexistent/bench.json"), Error);
}

TEST(Format, NumbersReadWell) {
  EXPECT_EQ(sig(16.0), "16");
  EXPECT_EQ(sig(2.5), "2.5");
  EXPECT_EQ(sig(1234.0), "1234");
  EXPECT_EQ(sig(0.012345), "0.0123");
  EXPECT_EQ(seconds_text(12.3e-6), "12.3 us");
  EXPECT_EQ(seconds_text(-2e-3), "-2 ms");
  EXPECT_EQ(bytes_text(64.0 * 1024 * 1024), "64 MiB");
  EXPECT_EQ(rate_text(14.2e9), "14.2 GB/s");
  EXPECT_EQ(percent(0.881), "88.1%");
  EXPECT_EQ(html_escape("<a & \"b\">"), "&lt;a &amp; &quot;b&quot;&gt;");
}

}  // namespace
}  // namespace kvbench::reports
