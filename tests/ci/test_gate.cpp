// Unit tests of the gate's parts (statistics, callgrind dump parsing, the measurement file
// schema, the checks and their bands) and of `kvbench gate`'s exit codes on files. No
// callgrind runs here: the self-test (test_gate_selftest.cpp) measures real builds.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <utility>
#include <string>
#include <vector>

#include "ci/callgrind.h"
#include "ci/checks.h"
#include "ci/checks_rules.h"
#include "ci/gate_stats.h"
#include "ci/measurement.h"
#include "ci/subprocess.h"
#include "harness/error.h"
#include "harness/fit.h"

namespace kvbench::gate {
namespace {

namespace fs = std::filesystem;

// A fresh directory under the system temp dir, removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::string templ = (fs::temp_directory_path() / "kvbench-test-gate-XXXXXX").string();
    if (mkdtemp(&templ[0]) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = templ;
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// ---- statistics ----------------------------------------------------------------------

// The fit itself is tested in tests/reports/test_fit.cpp; this is the case the gate relies on.
TEST(GateStats, PowerFitOfConstantPlusLinearLiesBetween) {
  // y = c0 + c1 t (a cached decode step): the fitted exponent is between 0 and 1.
  std::vector<double> x, y;
  for (double t : {32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0}) {
    x.push_back(t);
    y.push_back(90000 + 640 * t);
  }
  const double b = kvbench::reports::fit_power_law(x, y).exponent;
  EXPECT_GT(b, 0.3);
  EXPECT_LT(b, 0.95);
}

TEST(GateStats, Median) {
  EXPECT_EQ(median({3, 1, 2}), 2);
  EXPECT_EQ(median({4, 1, 3, 2}), 2.5);
  EXPECT_THROW(median({}), Error);
}

TEST(GateStats, MannWhitneyExactSmallSamples) {
  // m = n = 3: 20 equally likely arrangements; U counts of 0..9 are 1 1 2 3 3 3 3 2 1 1.
  MannWhitney separated = mann_whitney_u({1, 2, 3}, {4, 5, 6});
  EXPECT_TRUE(separated.exact);
  EXPECT_EQ(separated.u, 0);
  EXPECT_NEAR(separated.p_two_sided, 2.0 / 20.0, 1e-12);
  EXPECT_EQ(mann_whitney_u({4, 5, 6}, {1, 2, 3}).u, 9);
  const MannWhitney interleaved = mann_whitney_u({1, 3, 5}, {2, 4, 6});
  EXPECT_EQ(interleaved.u, 3);                              // 3>2, 5>2, 5>4
  EXPECT_NEAR(interleaved.p_two_sided, 2.0 * 7.0 / 20.0, 1e-12);  // P(U <= 3) = 7/20
}

TEST(GateStats, MannWhitneyNineAgainstNine) {
  std::vector<double> a, b;
  for (int i = 0; i < 9; ++i) {
    a.push_back(1.0 + 0.01 * i);
    b.push_back(2.0 + 0.01 * i);
  }
  // Fully separated: 2 of C(18, 9) = 48620 arrangements are this extreme.
  EXPECT_NEAR(mann_whitney_u(a, b).p_two_sided, 2.0 / 48620.0, 1e-12);
  // Identical samples (all ties): the normal approximation, no evidence of a difference.
  const MannWhitney same = mann_whitney_u(a, a);
  EXPECT_FALSE(same.exact);
  EXPECT_GT(same.p_two_sided, 0.9);
}

// ---- callgrind dumps -----------------------------------------------------------------

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
}

TEST(GateCallgrind, ReadsOneTotalPerRegionDump) {
  TempDir dir;
  const std::string out = dir.file("cg.out");
  write_file(out, "desc: Trigger: Program termination\nevents: Ir\ntotals: 0\n");
  write_file(out + ".1",
             "version: 1\ndesc: Trigger: Client Request: decode\nevents: Ir\nsummary: 18446744073705165561\n"
             "fn=(1) f\n3 10\ntotals: 5362139\n");
  write_file(out + ".2", "desc: Trigger: Client Request: sweep@32\nevents: Ir\ntotals: 976084\n");
  const auto regions = read_region_dumps(out);
  ASSERT_EQ(regions.size(), 2u);
  // totals, not summary: after a stop/start of instrumentation callgrind's summary line can
  // be off (the wrapped-around value above was seen in a real dump).
  EXPECT_EQ(regions.at("decode"), 5362139u);
  EXPECT_EQ(regions.at("sweep@32"), 976084u);
}

TEST(GateCallgrind, RejectsDumpsWithoutTriggerOrTotals) {
  TempDir dir;
  write_file(dir.file("a.out.1"), "desc: Trigger: Client Request: decode\nevents: Ir\n");
  EXPECT_THROW(read_region_dumps(dir.file("a.out")), Error);
  write_file(dir.file("b.out.1"), "events: Ir\ntotals: 12\n");
  EXPECT_THROW(read_region_dumps(dir.file("b.out")), Error);
}

// ---- measurements --------------------------------------------------------------------

// A synthetic measurement of the default workload: naive, one cached implementation whose
// decode step costs c0 + c1 t instructions, and a LibTorch-like one without counts.
Measurement synthetic() {
  Measurement m;
  m.toolchain = {"GCC 12.2.0", "Release", "valgrind-3.19.0", "2.36", "cpu", "avx2 erms", "none"};
  m.workload = default_workload();
  const int steps = m.workload.sweep.steps;
  ImplMeasurement naive;
  naive.device = "cpu";
  naive.counters = {5404, 30064, 3848192, 39936, "prefill,batch,fork,truncate,drop"};
  naive.instructions = InstructionCounts{106446485, {}};
  for (int t : m.workload.sweep_positions(false)) {
    naive.instructions->sweep[t] = static_cast<std::uint64_t>(steps * (20000.0 + 35000.0 * t));
  }
  naive.seconds_per_step = std::vector<double>(9, 1e-3);
  ImplMeasurement cached;
  cached.device = "cpu";
  cached.counters = {248, 30064, 1399808, 39936, "prefill,batch,fork,truncate,drop"};
  cached.instructions = InstructionCounts{6268087, {}};
  for (int t : m.workload.sweep_positions(true)) {
    cached.instructions->sweep[t] = static_cast<std::uint64_t>(steps * (90000.0 + 640.0 * t));
  }
  cached.seconds_per_step = std::vector<double>(9, 1e-5);
  ImplMeasurement torch = cached;
  torch.instructions.reset();
  torch.instructions_skipped = "no callgrind worker holds it";
  m.impls = {{"naive", naive}, {"cached", cached}, {"torchy", torch}};
  return m;
}

TEST(GateMeasurement, JsonRoundTrip) {
  const Measurement m = synthetic();
  const Measurement back = measurement_from_json(to_json(m));
  EXPECT_EQ(to_json(back), to_json(m));
  EXPECT_EQ(back.impls.at("cached").instructions->sweep.at(2048), m.impls.at("cached").instructions->sweep.at(2048));
  EXPECT_FALSE(back.impls.at("torchy").instructions.has_value());
}

TEST(GateMeasurement, RejectsOtherSchemasVersionsAndMissingFields) {
  nlohmann::json j = to_json(synthetic());
  nlohmann::json other = j;
  other["schema"] = "google-benchmark";
  EXPECT_THROW(measurement_from_json(other), Error);
  other = j;
  other["version"] = kSchemaVersion + 1;
  EXPECT_THROW(measurement_from_json(other), Error);
  other = j;
  other["impls"]["naive"]["counters"].erase("qk_dot_products");
  try {
    measurement_from_json(other);
    FAIL() << "a missing counter was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("impls.naive.counters.qk_dot_products"), std::string::npos) << e.what();
  }
  EXPECT_THROW(measurement_from_json(nlohmann::json::array()), Error);
}

TEST(GateMeasurement, ReadingAMissingFileFails) {
  EXPECT_THROW(read_measurement("/nonexistent/kvbench/baseline.json"), Error);
}

TEST(GateWorkloadTest, DefaultIsValidAndDifferencesAreNamed) {
  const GateWorkload w = default_workload();
  EXPECT_NO_THROW(w.validate());
  EXPECT_EQ(describe_difference(w, w), "");
  GateWorkload changed = w;
  changed.decode.steps = 30;
  EXPECT_NE(describe_difference(w, changed).find("decode/steps: 20 vs 30"), std::string::npos)
      << describe_difference(w, changed);
  changed = w;
  changed.sweep.ratio_position = 100;  // not a sweep position
  EXPECT_THROW(changed.validate(), Error);
  EXPECT_EQ(describe_difference(w, workload_from_json(to_json(w))), "");
}

// ---- checks --------------------------------------------------------------------------

const Check& find_check(const GateResult& r, const std::string& name) {
  for (const Check& c : r.checks) {
    if (c.name == name) return c;
  }
  throw std::runtime_error("no check " + name);
}

int failures(const GateResult& r) { return r.count(Verdict::fail); }

TEST(GateChecks, IdenticalMeasurementsPass) {
  const GateResult r = compare(synthetic(), synthetic(), GateBands{});
  EXPECT_TRUE(r.passed());
  EXPECT_TRUE(r.notes.empty());
  // 4 counters x 3 impls; decode + 5 and 7 sweep points + exponent for the two counted
  // ones; one ratio; 3 time lines.
  EXPECT_EQ(r.count(Verdict::pass), 12 + (1 + 5 + 1) + (1 + 7 + 1) + 1);
  EXPECT_EQ(r.count(Verdict::info), 3);
  // torchy has no instruction counts on either side: said by a row, not left out.
  EXPECT_EQ(r.count(Verdict::skip), 1);
  EXPECT_EQ(find_check(r, "instructions/torchy").verdict, Verdict::skip);
}

TEST(GateChecks, CountersAreExactInBothDirections) {
  Measurement cur = synthetic();
  cur.impls.at("cached").counters.kv_projection_rows += 1;
  GateResult r = compare(synthetic(), cur, GateBands{});
  EXPECT_EQ(failures(r), 1);
  EXPECT_EQ(find_check(r, "counters/cached/kv_projection_rows").verdict, Verdict::fail);
  cur = synthetic();
  cur.impls.at("torchy").counters.bytes_held -= 4;
  r = compare(synthetic(), cur, GateBands{});
  EXPECT_EQ(find_check(r, "counters/torchy/bytes_held").verdict, Verdict::fail);
}

TEST(GateChecks, InstructionBandIsOneSided) {
  const Measurement base = synthetic();
  const auto with_decode = [&](double factor) {
    Measurement cur = base;
    cur.impls.at("cached").instructions->decode =
        static_cast<std::uint64_t>(static_cast<double>(base.impls.at("cached").instructions->decode) * factor);
    return compare(base, cur, GateBands{});
  };
  EXPECT_TRUE(with_decode(1.029).passed());
  const GateResult worse = with_decode(1.031);
  EXPECT_EQ(failures(worse), 1);
  EXPECT_EQ(find_check(worse, "instructions/cached/decode").verdict, Verdict::fail);
  const GateResult better = with_decode(0.90);
  EXPECT_TRUE(better.passed());
  EXPECT_NE(find_check(better, "instructions/cached/decode").note.find("update the baseline"), std::string::npos);
}

TEST(GateChecks, ASteeperSweepFailsTheExponentAndTheLargePositions) {
  const Measurement base = synthetic();
  Measurement cur = base;
  // An O(t) copy per step: c1 doubles. The large positions and the ratio fail.
  for (auto& [t, ir] : cur.impls.at("cached").instructions->sweep) {
    ir = static_cast<std::uint64_t>(cur.workload.sweep.steps * (90000.0 + 1280.0 * t));
  }
  const GateResult r = compare(base, cur, GateBands{});
  EXPECT_EQ(find_check(r, "instructions/cached/step@t=2048").verdict, Verdict::fail);
  EXPECT_EQ(find_check(r, "scaling/naive_over_cached@t=512").verdict, Verdict::fail);
  // ... and a per-step cost that becomes O(t^2) moves the exponent past its band.
  for (auto& [t, ir] : cur.impls.at("cached").instructions->sweep) {
    ir = static_cast<std::uint64_t>(cur.workload.sweep.steps * (90000.0 + 640.0 * t + 2.0 * t * t));
  }
  EXPECT_EQ(find_check(compare(base, cur, GateBands{}), "scaling/cached/exponent").verdict, Verdict::fail);
}

TEST(GateChecks, ScalingBandsAreOneSided) {
  const Measurement base = synthetic();
  const int t = base.workload.sweep.ratio_position;
  const auto with_ratio_factor = [&](double factor) {
    Measurement cur = base;
    auto& ir = cur.impls.at("cached").instructions->sweep.at(t);
    ir = static_cast<std::uint64_t>(static_cast<double>(ir) / factor);  // ratio x factor
    return find_check(compare(base, cur, GateBands{}), "scaling/naive_over_cached@t=512");
  };
  EXPECT_EQ(with_ratio_factor(0.8).verdict, Verdict::fail);   // the cache's advantage shrank
  EXPECT_EQ(with_ratio_factor(0.86).verdict, Verdict::pass);
  const Check better = with_ratio_factor(1.2);
  EXPECT_EQ(better.verdict, Verdict::pass);
  EXPECT_NE(better.note.find("update the baseline"), std::string::npos);
  // A flatter sweep (the O(t) part halved) passes the exponent check.
  Measurement cur = base;
  for (auto& [pos, ir] : cur.impls.at("naive").instructions->sweep) {
    ir = static_cast<std::uint64_t>(cur.workload.sweep.steps * (2000000.0 + 35000.0 * pos));
  }
  const Check flatter = find_check(compare(base, cur, GateBands{}), "scaling/naive/exponent");
  EXPECT_LT(std::stod(flatter.current), std::stod(flatter.baseline) - 0.15);
  EXPECT_EQ(flatter.verdict, Verdict::pass);
}

TEST(GateChecks, AnotherWorkloadIsUnusable) {
  Measurement cur = synthetic();
  cur.workload.sweep.steps = 5;
  EXPECT_THROW(compare(synthetic(), cur, GateBands{}), Error);
}

TEST(GateChecks, MissingUnavailableAndNewImplementations) {
  Measurement cur = synthetic();
  cur.impls.erase("torchy");
  EXPECT_EQ(find_check(compare(synthetic(), cur, GateBands{}), "present/torchy").verdict, Verdict::fail);
  cur.unavailable["torchy"] = "no CUDA device";
  EXPECT_EQ(find_check(compare(synthetic(), cur, GateBands{}), "present/torchy").verdict, Verdict::skip);
  // A new implementation fails until --update adds it to the baseline (README: "a new
  // implementation is gated once --update has added it"): it is never silently ungated.
  cur = synthetic();
  cur.impls["newcomer"] = cur.impls.at("cached");
  GateResult r = compare(synthetic(), cur, GateBands{});
  EXPECT_EQ(failures(r), 1);
  const Check& added = find_check(r, "present/newcomer");
  EXPECT_EQ(added.verdict, Verdict::fail);
  EXPECT_NE(added.note.find("gated once --update adds it"), std::string::npos) << added.note;
  // Unavailable where the baseline was written (a GPU implementation, baseline from a CPU
  // machine) and measured here: skipped by name, not failed.
  Measurement base = synthetic();
  base.unavailable["newcomer"] = "no CUDA device";
  r = compare(base, cur, GateBands{});
  EXPECT_TRUE(r.passed());
  EXPECT_EQ(find_check(r, "present/newcomer").verdict, Verdict::skip);
  // Unavailable in the baseline and not registered in this build (built without CUDA).
  r = compare(base, synthetic(), GateBands{});
  EXPECT_TRUE(r.passed());
  EXPECT_EQ(find_check(r, "present/newcomer").verdict, Verdict::skip);
}

TEST(GateChecks, ALostInstructionCountFails) {
  Measurement cur = synthetic();
  cur.impls.at("cached").instructions.reset();
  cur.impls.at("cached").instructions_skipped = "no callgrind worker holds it";
  EXPECT_EQ(find_check(compare(synthetic(), cur, GateBands{}), "instructions/cached").verdict, Verdict::fail);
}

TEST(GateChecks, ToolchainDifferenceIsNoted) {
  Measurement cur = synthetic();
  cur.toolchain.compiler = "GCC 13.1.0";
  const GateResult r = compare(synthetic(), cur, GateBands{});
  ASSERT_EQ(r.notes.size(), 1u);
  EXPECT_NE(r.notes[0].find("compiler 'GCC 12.2.0' vs 'GCC 13.1.0'"), std::string::npos) << r.notes[0];
}

TEST(GateChecks, WallClockIsReportedUnlessStrict) {
  Measurement base = synthetic();
  Measurement cur = base;
  std::vector<double>& samples = cur.impls.at("cached").seconds_per_step;
  for (std::size_t i = 0; i < samples.size(); ++i) samples[i] = 1.3e-5 + 1e-8 * static_cast<double>(i);
  std::vector<double>& base_samples = base.impls.at("cached").seconds_per_step;
  for (std::size_t i = 0; i < base_samples.size(); ++i) base_samples[i] = 1e-5 + 1e-8 * static_cast<double>(i);
  // 30% slower in every sample: reported only by default ...
  GateResult r = compare(base, cur, GateBands{});
  EXPECT_TRUE(r.passed());
  EXPECT_EQ(find_check(r, "time/cached/decode_step").verdict, Verdict::info);
  // ... a failure with --strict-time (p = 2 / 48620, +30% > 5%) ...
  GateBands strict;
  strict.strict_time = true;
  r = compare(base, cur, strict);
  EXPECT_EQ(find_check(r, "time/cached/decode_step").verdict, Verdict::fail);
  // ... but not when the effect is below the minimum, however significant.
  strict.time_min_effect = 0.5;
  EXPECT_EQ(find_check(compare(base, cur, strict), "time/cached/decode_step").verdict, Verdict::pass);
  // Fewer than 9 repetitions cannot be gated.
  strict.time_min_effect = 0.05;
  samples.resize(5);
  EXPECT_THROW(compare(base, cur, strict), Error);
}

// ---- holes: every check can fail ----------------------------------------------------
// What a user found passing: a zero count ("-100%, improved"), an empty sweep (fewer checks,
// all passing) and a NaN exponent. Every check is built from the union of both sides; a
// missing, zero or non-finite value fails by name and side.

// RETURNS: the note of a check that must have failed (empty, and a test failure, otherwise).
std::string failed_note(const GateResult& r, const std::string& name) {
  const Check& c = find_check(r, name);
  EXPECT_EQ(c.verdict, Verdict::fail) << name << ": " << c.note;
  return c.note;
}

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

TEST(GateHoles, AZeroDecodeCountFailsOnEitherSide) {
  Measurement zero = synthetic();
  zero.impls.at("cached").instructions->decode = 0;
  // Current 0: was "-100.0%, improved".
  GateResult r = compare(synthetic(), zero, GateBands{});
  EXPECT_EQ(failures(r), 1);
  EXPECT_TRUE(has(failed_note(r, "instructions/cached/decode"), "current: 0 is impossible"));
  // Baseline 0: a relative change from 0 is not computed.
  r = compare(zero, synthetic(), GateBands{});
  EXPECT_TRUE(has(failed_note(r, "instructions/cached/decode"), "baseline: 0 is impossible"));
  // Both 0: equal, and still no pass.
  r = compare(zero, zero, GateBands{});
  const std::string note = failed_note(r, "instructions/cached/decode");
  EXPECT_TRUE(has(note, "baseline: 0") && has(note, "current: 0")) << note;
}

TEST(GateHoles, AZeroSweepCountFailsItsStepTheFitAndTheRatio) {
  Measurement zero = synthetic();
  zero.impls.at("cached").instructions->sweep.at(512) = 0;
  const GateResult r = compare(synthetic(), zero, GateBands{});
  EXPECT_TRUE(has(failed_note(r, "instructions/cached/step@t=512"), "current: 0 is impossible"));
  EXPECT_TRUE(has(failed_note(r, "scaling/cached/exponent"), "current: not fitted: t=512"));
  EXPECT_TRUE(has(failed_note(r, "scaling/naive_over_cached@t=512"), "current: the count at t=512"));
  EXPECT_EQ(failures(r), 3);
}

TEST(GateHoles, ZeroCountersFailEvenWhenEqual) {
  Measurement zero = synthetic();
  zero.impls.at("naive").counters.bytes_held = 0;
  EXPECT_TRUE(has(failed_note(compare(synthetic(), zero, GateBands{}), "counters/naive/bytes_held"),
                  "current: 0 is impossible"));
  const std::string note = failed_note(compare(zero, zero, GateBands{}), "counters/naive/bytes_held");
  EXPECT_TRUE(has(note, "baseline: 0 is impossible")) << note;
}

TEST(GateHoles, AnEmptySweepFailsEveryPositionItLacks) {
  const GateResult whole = compare(synthetic(), synthetic(), GateBands{});
  Measurement empty = synthetic();
  empty.impls.at("cached").instructions->sweep.clear();
  // Baseline empty (was: 9 checks fewer, all passing) or current empty: the same number of
  // checks as the whole one, and 7 steps + the exponent + the ratio fail.
  for (const auto& [base, cur] : {std::pair{empty, synthetic()}, {synthetic(), empty}}) {
    const GateResult r = compare(base, cur, GateBands{});
    EXPECT_EQ(r.checks.size(), whole.checks.size());
    EXPECT_EQ(failures(r), 7 + 1 + 1);
    EXPECT_TRUE(has(failed_note(r, "instructions/cached/step@t=32"), "not measured"));
    EXPECT_TRUE(has(failed_note(r, "scaling/cached/exponent"), "not fitted"));
    EXPECT_TRUE(has(failed_note(r, "scaling/naive_over_cached@t=512"), "not measured"));
  }
  // Both sides empty: the workload's own positions are still expected (t=1024 and 2048 are
  // long positions, expected only where a side measured them).
  const GateResult r = compare(empty, empty, GateBands{});
  EXPECT_EQ(failures(r), 5 + 1 + 1);
  EXPECT_TRUE(has(failed_note(r, "instructions/cached/step@t=256"), "baseline: not measured; current: not measured"));
}

TEST(GateHoles, ASweepPositionOnOneSideOnlyFails) {
  Measurement more = synthetic();
  auto& sweep = more.impls.at("naive").instructions->sweep;
  sweep[1024] = 10 * 40000000ull;  // a long position naive does not measure in the baseline
  GateResult r = compare(synthetic(), more, GateBands{});
  EXPECT_EQ(failures(r), 2);
  EXPECT_TRUE(has(failed_note(r, "instructions/naive/step@t=1024"), "baseline: not measured"));
  EXPECT_TRUE(has(failed_note(r, "scaling/naive/exponent"), "baseline: not fitted: t=1024"));
  // A position that is not the workload's, on both sides: fails as such.
  Measurement odd = synthetic();
  odd.impls.at("naive").instructions->sweep[100] = 10 * 3000000ull;
  r = compare(odd, odd, GateBands{});
  EXPECT_TRUE(has(failed_note(r, "instructions/naive/step@t=100"), "not a sweep position of the workload"));
}

TEST(GateHoles, ANonFiniteExponentFails) {
  // compare() fits only usable sweeps, whose fit is finite; the rule itself must not pass a
  // NaN or an infinity on either side (NaN - b > 0.15 is false: the old pass).
  using rules::finite;
  const double nan = std::nan(""), inf = std::numeric_limits<double>::infinity();
  for (const auto& [base, cur] : {std::pair{finite(0.7, 3), finite(nan, 3)}, {finite(nan, 3), finite(0.7, 3)},
                                  {finite(nan, 3), finite(nan, 3)}, {finite(0.7, 3), finite(-inf, 3)}}) {
    const Check c = rules::exponent_check("scaling/x/exponent", base, cur, GateBands{});
    EXPECT_EQ(c.verdict, Verdict::fail) << c.baseline << " vs " << c.current;
    EXPECT_TRUE(has(c.note, "is not a finite number")) << c.note;
  }
  EXPECT_EQ(rules::exponent_check("e", finite(0.7, 3), finite(0.75, 3), GateBands{}).verdict, Verdict::pass);
  // The ratio and the instruction rules likewise.
  EXPECT_EQ(rules::ratio_check("r", finite(13.0, 2), finite(nan, 2), GateBands{}).verdict, Verdict::fail);
  EXPECT_EQ(rules::instructions_check("i", finite(inf, 0), finite(1.0, 0), GateBands{}).verdict, Verdict::fail);
}

TEST(GateHoles, BadWallClockSamplesFailAndMissingOnesAreSaid) {
  const double nan = std::nan("");
  for (double bad : {nan, -1e-5, 0.0, std::numeric_limits<double>::infinity()}) {
    Measurement cur = synthetic();
    cur.impls.at("cached").seconds_per_step[3] = bad;
    const std::string note = failed_note(compare(synthetic(), cur, GateBands{}), "time/cached/decode_step");
    EXPECT_TRUE(has(note, "current: seconds_per_step[3] is")) << note;
  }
  Measurement untimed = synthetic();
  untimed.impls.at("cached").seconds_per_step.clear();
  const Check c = find_check(compare(synthetic(), untimed, GateBands{}), "time/cached/decode_step");
  EXPECT_EQ(c.verdict, Verdict::info);
  EXPECT_EQ(c.current, "not timed");
  EXPECT_TRUE(has(c.note, "no comparison: not timed in the current")) << c.note;
}

TEST(GateHoles, CountsOnOneSideOnlyFail) {
  Measurement counted = synthetic();
  counted.impls.at("torchy").instructions = counted.impls.at("cached").instructions;
  const GateResult r = compare(synthetic(), counted, GateBands{});
  EXPECT_TRUE(has(failed_note(r, "instructions/torchy"), "baseline: not counted"));
  // Its ratio to naive cannot be computed on the baseline's side: failed, not left out.
  EXPECT_TRUE(has(failed_note(r, "scaling/naive_over_torchy@t=512"), "baseline: not counted"));
}

TEST(GateHoles, WithoutNaiveOnOneSideTheRatiosFail) {
  Measurement cur = synthetic();
  cur.impls.erase("naive");
  const GateResult r = compare(synthetic(), cur, GateBands{});
  EXPECT_TRUE(has(failed_note(r, "present/naive"), "current: not in this build"));
  EXPECT_TRUE(has(failed_note(r, "scaling/naive_over_cached@t=512"), "current: naive is not measured"));
}

TEST(GateHoles, CountersOfDifferentPhasesFail) {
  Measurement cur = synthetic();
  cur.impls.at("cached").counters.phases = "prefill,batch,drop";
  EXPECT_TRUE(has(failed_note(compare(synthetic(), cur, GateBands{}), "counters/cached/kv_bytes_read"),
                  "phases prefill,batch,fork,truncate,drop vs prefill,batch,drop"));
}

TEST(GateHoles, NoImplementationsIsUnusable) {
  Measurement none = synthetic();
  none.impls.clear();
  EXPECT_THROW(compare(synthetic(), none, GateBands{}), Error);
  EXPECT_THROW(compare(none, synthetic(), GateBands{}), Error);
  nlohmann::json j = to_json(synthetic());
  j["impls"] = nlohmann::json::object();
  EXPECT_THROW(measurement_from_json(j), Error);
}

// RETURNS: the message measurement_from_json gives for `j` ("" and a test failure if none).
std::string parse_error(const nlohmann::json& j) {
  try {
    measurement_from_json(j);
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "accepted: " << j.dump().substr(0, 200);
  return "";
}

TEST(GateHoles, ValuesOfTheWrongTypeAreUnusableByField) {
  using nlohmann::json;
  const json good = to_json(synthetic());
  // nlohmann's get<uint64_t> took -5 as 18446744073709551611 and 1.5 as 1.
  for (const json& bad : {json(-5), json(1.5), json(nullptr), json("12"), json(true)}) {
    json j = good;
    j["impls"]["cached"]["instructions"]["sweep"]["64"] = bad;
    EXPECT_TRUE(has(parse_error(j), "field impls.cached.instructions.sweep.64 is ")) << bad.dump();
    j = good;
    j["impls"]["naive"]["counters"]["bytes_held"] = bad;
    EXPECT_TRUE(has(parse_error(j), "field impls.naive.counters.bytes_held is ")) << bad.dump();
  }
  json j = good;
  j["impls"]["cached"]["seconds_per_step"][2] = nullptr;  // how a NaN is written
  EXPECT_TRUE(has(parse_error(j), "impls.cached.seconds_per_step[2] is null"));
  for (const char* key : {"64abc", "0", "-64", "064", ""}) {
    j = good;
    j["impls"]["cached"]["instructions"]["sweep"][key] = 1000;
    EXPECT_TRUE(has(parse_error(j), "is not a sweep position")) << key;
  }
  j = good;
  j["impls"]["cached"]["instructions"]["sweep"] = json::array();
  EXPECT_TRUE(has(parse_error(j), "impls.cached.instructions.sweep is an array"));
}

TEST(GateHoles, FieldsOnOneSideOnlyAreUnusable) {
  using nlohmann::json;
  const json good = to_json(synthetic());
  json j = good;
  j["impls"]["cached"]["counters"]["kv_rows_written"] = 12;  // a counter this version does not read
  EXPECT_TRUE(has(parse_error(j), "unknown field impls.cached.counters.kv_rows_written"));
  j = good;
  j["impls"]["cached"]["instructions"]["prefill"] = 12;
  EXPECT_TRUE(has(parse_error(j), "unknown field impls.cached.instructions.prefill"));
  j = good;
  j["impls"]["cached"]["instructions_skipped"] = "why";
  EXPECT_TRUE(has(parse_error(j), "both present"));
  j = good;
  j["impls"]["cached"].erase("seconds_per_step");
  EXPECT_TRUE(has(parse_error(j), "missing field impls.cached.seconds_per_step"));
  j = good;
  j["workload"]["sweep"]["steps"] = 0;  // per-step counts would divide by it
  EXPECT_TRUE(has(parse_error(j), "sweep.steps is 0"));
}

TEST(GateHoles, ProblemsOfOneMeasurementNameTheirFields) {
  EXPECT_TRUE(measurement_problems(synthetic()).empty());
  Measurement m = synthetic();
  m.impls.at("cached").instructions->decode = 0;
  m.impls.at("naive").instructions->sweep.erase(64);
  m.impls.at("naive").seconds_per_step[0] = -1;
  m.impls.at("torchy").counters.qk_dot_products = 0;
  const std::vector<std::string> p = measurement_problems(m);
  ASSERT_EQ(p.size(), 4u);
  std::string all;
  for (const std::string& line : p) all += line + "\n";
  for (const char* field : {"impls.cached.instructions.decode: 0 is impossible", "impls.naive.instructions.sweep.64: not measured",
                            "impls.naive.seconds_per_step[0] is -1", "impls.torchy.counters.qk_dot_products: 0"}) {
    EXPECT_TRUE(has(all, field)) << field << " in\n" << all;
  }
}

// ---- the committed baseline ------------------------------------------------------------

TEST(GateBaseline, CommittedBaselineIsUsableWithThisBuildsWorkload) {
  const Measurement m = read_measurement(std::string(KVBENCH_SOURCE_DIR) + "/ci/baseline.json");
  EXPECT_EQ(describe_difference(m.workload, default_workload()), "")
      << "the gate's workload changed: write a new baseline (ci/README.md)";
  for (const char* name : {"naive", "cpu_cached"}) {
    ASSERT_EQ(m.impls.count(name), 1u) << name;
    EXPECT_TRUE(m.impls.at(name).instructions.has_value()) << name;
  }
}

// ---- `kvbench gate` exit codes (on files, so nothing is measured) ----------------------

Captured kvbench_gate(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {KVBENCH_BINARY, "gate"};
  argv.insert(argv.end(), args.begin(), args.end());
  return capture(argv);
}

std::string last_line(const std::string& text) {
  std::string t = text;
  while (!t.empty() && t.back() == '\n') t.pop_back();
  return t.substr(t.rfind('\n') == std::string::npos ? 0 : t.rfind('\n') + 1);
}

TEST(GateCommand, ExitCodes) {
  TempDir dir;
  const std::string base = dir.file("base.json"), same = dir.file("same.json"), worse = dir.file("worse.json"),
                    other = dir.file("other.json"), workload = dir.file("workload.json");
  write_measurement(synthetic(), base);
  write_measurement(synthetic(), same);
  Measurement m = synthetic();
  m.impls.at("cached").counters.qk_dot_products += 8;
  write_measurement(m, worse);
  m = synthetic();
  m.workload.decode.steps = 30;
  write_measurement(m, workload);
  write_file(other, "{\"context\": {}, \"benchmarks\": []}\n");

  Captured run = kvbench_gate({"--baseline", base, "--current", same});
  EXPECT_EQ(run.status, 0) << run.output;
  EXPECT_EQ(last_line(run.output), "29 passed, 0 failed (3 reported only, 1 skipped)") << run.output;

  run = kvbench_gate({"--baseline", base, "--current", worse});
  EXPECT_EQ(run.status, 1) << run.output;
  EXPECT_NE(run.output.find("counters/cached/qk_dot_products"), std::string::npos);
  EXPECT_EQ(last_line(run.output), "28 passed, 1 failed (3 reported only, 1 skipped)") << run.output;

  EXPECT_EQ(kvbench_gate({"--baseline", dir.file("missing.json"), "--current", same}).status, 2);
  EXPECT_EQ(kvbench_gate({"--baseline", other, "--current", same}).status, 2);
  run = kvbench_gate({"--baseline", base, "--current", workload});
  EXPECT_EQ(run.status, 2);
  EXPECT_NE(run.output.find("another workload"), std::string::npos) << run.output;
  EXPECT_EQ(kvbench_gate({"--current", same}).status, 2);  // no --baseline

  // --update writes the current measurement as the baseline and exits 0 even on a change.
  const std::string fresh = dir.file("fresh.json");
  run = kvbench_gate({"--baseline", fresh, "--current", worse, "--update"});
  EXPECT_EQ(run.status, 0) << run.output;
  EXPECT_EQ(to_json(read_measurement(fresh)), to_json(read_measurement(worse)));
  run = kvbench_gate({"--baseline", fresh, "--current", base, "--update"});
  EXPECT_EQ(run.status, 0) << run.output;
  EXPECT_NE(run.output.find("FAIL"), std::string::npos) << "the old comparison is shown";
}

// The three holes as a user met them, through the command: a zero count fails (exit 1) and
// names the check and the side; a value of the wrong type is unusable (exit 2) naming the
// file and the field; --update refuses a broken measurement and leaves the baseline alone.
TEST(GateCommand, BrokenMeasurementsFailOrAreUnusableNeverPass) {
  TempDir dir;
  const std::string base = dir.file("base.json"), zero = dir.file("zero.json"), negative = dir.file("negative.json");
  write_measurement(synthetic(), base);
  Measurement m = synthetic();
  m.impls.at("cached").instructions->decode = 0;
  write_measurement(m, zero);
  nlohmann::json j = to_json(synthetic());
  j["impls"]["cached"]["instructions"]["sweep"]["64"] = -5;
  write_file(negative, j.dump());

  Captured run = kvbench_gate({"--baseline", base, "--current", zero});
  EXPECT_EQ(run.status, 1) << run.output;
  EXPECT_NE(run.output.find("current: 0 is impossible"), std::string::npos) << run.output;
  EXPECT_EQ(last_line(run.output), "28 passed, 1 failed (3 reported only, 1 skipped)") << run.output;

  run = kvbench_gate({"--baseline", base, "--current", negative});
  EXPECT_EQ(run.status, 2) << run.output;
  EXPECT_NE(run.output.find("kvbench: error: '" + negative + "' is not a usable gate measurement: field "
                            "impls.cached.instructions.sweep.64 is -5"),
            std::string::npos)
      << run.output;

  const std::string before = to_json(read_measurement(base)).dump();
  run = kvbench_gate({"--baseline", base, "--current", zero, "--update"});
  EXPECT_EQ(run.status, 2) << run.output;
  EXPECT_NE(run.output.find("refusing to write the baseline"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("impls.cached.instructions.decode: 0 is impossible"), std::string::npos) << run.output;
  EXPECT_EQ(to_json(read_measurement(base)).dump(), before) << "the baseline was rewritten";
}

TEST(GateCommand, HelpDescribesTheOptions) {
  const Captured run = kvbench_gate({"--help"});
  EXPECT_EQ(run.status, 0);
  for (const char* option : {"--baseline", "--current", "--update", "--strict-time", "--out"}) {
    EXPECT_NE(run.output.find(option), std::string::npos) << option;
  }
}

}  // namespace
}  // namespace kvbench::gate
