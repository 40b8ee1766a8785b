// The Analyzer behind analyze() (analysis.h), one class over three files by concern:
//   analysis.cpp  the numbers: series fits, speedups, bandwidth points, floors, notes
//   targets.cpp   the performance targets, each settled from those numbers
//   verdicts.cpp  the summary's sentences, each built from those numbers
// Internal to reports/: nothing outside includes it.
#pragma once

#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "reports/analysis.h"
#include "reports/bench_data.h"

namespace kvbench::reports::detail {

using bench::BenchKind;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// "16..4096": the first and last of increasing sizes.
std::string range_text(const std::vector<double>& sizes);

class Analyzer {
 public:
  explicit Analyzer(const BenchData& d) : d_(d) {}

  Analysis run();

 private:
  // ---- the numbers (analysis.cpp) ----
  // The cache the speedup and bandwidth targets are about: cpu_cached when it ran, else the
  // first implementation other than the baseline.
  void pick_cached();
  void collect_bandwidth();
  void collect_floors();

  // ---- the targets (targets.cpp) ----
  // time(other) / time(cpu_cached) for single-thread decode steps at `position`.
  std::optional<double> decode_ratio(const std::string& other, int position) const;
  void decode_target_short(const std::string& other, double factor);
  void decode_target_long(const std::string& other, double factor, const std::string& req);

  // The read-only limit for `threads` threads on the host: the reference measured with that
  // many threads, else (older outputs, 1 thread) the context's read bandwidth.
  std::pair<double, std::string> host_reference(int threads) const;
  void bandwidth_target();

  // The floor target: cpu_cached single-thread steps at DRAM-bound positions.
  void floor_target();

  // 2 threads against 1 where the step is DRAM-bound (bytes >= 8x LLC); elsewhere the
  // ratio is given for information only.
  void threads_target();
  // paged's decode step against cpu_cached's at t >= 1024 (the cost of the block table).
  void paged_target();
  void speedup_target();
  void targets();

  // ---- the verdicts (verdicts.cpp) ----
  void say(const char* topic, const std::string& text) { a_.verdicts.push_back({topic, text}); }

  static constexpr const char* kGrowth = "Which costs grow as T and which as T^2";
  static constexpr const char* kLinear = "Where cached decoding stops being linear";
  static constexpr const char* kSpeedup = "Speedup: measured against the op-count ratio";
  static constexpr const char* kLatency = "Per-token latency against position";
  static constexpr const char* kBandwidth = "Achieved K/V bandwidth";
  static constexpr const char* kFloor = "Per-step floor: bytes a step must move over the bandwidth";
  static constexpr const char* kSetup =
      "Setup: creating the sequence, timed apart from the decode steps";
  static constexpr const char* kSetupDominates = "Where setup would have dominated";

  // Why a sublinear time is worth a look rather than a "linear".
  static constexpr const char* kSublinearWhy =
      "a finding to explain, not linear: the time per token falls as T grows, which usually "
      "means fixed per-step costs that amortize over more steps (dispatch, thread wake-ups, "
      "per-call allocation) or cache effects (a small T's working set fits in a faster cache)";
  void generation_verdicts();

  // FLOPs per second of `impl`'s generation at T, or 0.
  double generation_rate(const std::string& impl, double tokens) const;
  void speedup_verdicts();
  void decode_verdicts();
  void bandwidth_verdicts();
  void floor_verdicts();

  // Per generation series, its setup at each T and the share of decode + setup it would
  // have been; then one sentence on where setup would have dominated a timing that included
  // it (setup >= the decode steps' time), or that it did nowhere.
  void setup_verdicts();
  static std::string join_names(const std::vector<std::string>& names);
  void verdicts();

  // ---- serving (serving.cpp) ----
  // The beam and prefix-prefill points, each beam point's saving against cpu_cached.
  void collect_serving();
  static constexpr const char* kBeam = "Serving: beam-search memory shared by forks";
  static constexpr const char* kPrefix = "Serving: prefill with a cached prefix";
  void serving_verdicts();

  // analysis.cpp: where series stopped, what was skipped, the checks before timing.
  void notes();

  const BenchData& d_;
  Analysis a_;
};

}  // namespace kvbench::reports::detail
