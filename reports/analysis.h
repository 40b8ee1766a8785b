// The numbers a scaling report states, computed from one bench output: fits and local
// exponents per series, the naive/cached speedup beside the op-count model, the bandwidth
// achieved, the performance targets, and the verdict sentences, each derived from those
// numbers (no conclusion is written in advance).
#pragma once

#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "reports/bench_data.h"
#include "harness/fit.h"

namespace kvbench::reports {

// How a cost grows, from a fitted or local exponent b: "sublinear" when b < 0.8 (slower
// than T: a finding to explain, not linear), "T" when 0.8 <= b < 1.25, "T^2" when b > 1.75,
// "between T and T^2" otherwise (midpoints between the two laws in question).
std::string growth_law(double exponent);
// "grows sublinearly", "grows as T", "grows as T^2", "grows between T and
// T^2" ("grow ..." when plural).
std::string grows(double exponent, bool plural = false);

struct SeriesAnalysis {
  bench::BenchKind kind = bench::BenchKind::generate;
  std::string impl;
  int threads = 1;
  std::string series;                 // "generate/naive"
  std::vector<double> sizes;          // T or t, increasing
  std::vector<double> seconds;        // per iteration (a generation: its T decode steps)
  // Generation: seconds per iteration spent creating the sequence, timed apart from
  // `seconds` and in no fit; NaN where the bench output did not record it (older outputs,
  // whose `seconds` then include it).
  std::vector<double> setup_seconds;
  // RETURNS: whether setup was recorded at every size (and so kept out of `seconds`).
  bool setup_recorded() const;
  // RETURNS: setup / (setup + seconds) at size index i, NaN when not recorded.
  double setup_share(std::size_t i) const;
  // FLOPs of the op-count model (op_model.h) per second of measured time, per size: how
  // efficiently the implementation turns the model's arithmetic into time.
  std::vector<double> flops_per_second;
  std::optional<PowerFit> time_fit;   // log t = a + b log T (>= 2 sizes)
  std::vector<LocalExponent> local;   // between neighbouring sizes
  // Generation only: exponents of the op counters against T.
  std::optional<PowerFit> projection_fit, dots_fit;
  // Generation: where the local exponent first reaches 1.5 (T), -1 when it does not.
  double quadratic_from = -1;
  // Decode steps: seconds = intercept + slope * t (per cached token), when >= 2 sizes.
  std::optional<LineFit> line;
};

struct SpeedupPoint {
  double tokens = 0;
  double measured = 0;        // time(baseline) / time(cached)
  double analytic = 0;        // FLOPs(baseline) / FLOPs(cached) from their op counters
  double relative_error = 0;  // measured / analytic - 1
};

struct Speedup {
  std::string baseline, cached;
  std::vector<SpeedupPoint> points;
  double worst_relative_error = 0;  // the largest |relative_error|
};

struct BandwidthPoint {
  std::string impl;
  std::string device = "cpu";    // ImplInfo::device; the fractions are of that device's bandwidth
  int threads = 1;
  double position = 0;
  double kv_bytes = 0;           // K/V the step reads (the counter kv_bytes_read)
  double bytes_per_second = 0;   // K/V bytes read per second of the step
  double of_read = 0;            // fraction of its device's read-only bandwidth (0: unknown)
  double of_copy = 0;            // fraction of its device's copy bandwidth
};

// The per-step floor (issue: "a physical limit that is a limit"): the bytes a decode step
// must move -- its weights once plus the K/V rows it attends to -- divided by the measured
// read-only bandwidth with the step's thread count (harness/bench/bandwidth.h). A step can
// not take less time than that once those bytes stream from DRAM (>= 8x the last-level
// cache); below that the floor is not binding (the caches are faster than DRAM).
struct FloorPoint {
  std::string impl;
  std::string device = "cpu";
  int threads = 1;
  double position = 0;
  double weight_bytes = 0;      // W_q, W_k, W_v, W_o of every layer (fp32), read once
  double kv_bytes = 0;          // (t + 1) x kv_bytes_per_token: the rows attended to
  double bytes = 0;             // weight_bytes + kv_bytes
  double bandwidth = 0;         // bytes/s the floor divides by
  std::string bandwidth_source; // "read-only reference, 2 threads (16 streams x 2 vectors)"
  double floor_seconds = 0;     // bytes / bandwidth
  double measured_seconds = 0;
  double efficiency = 0;        // floor_seconds / measured_seconds (1 = at the limit)
  bool dram_bound = false;      // bytes >= 8x the host's LLC (host implementations only)
};

// RETURNS: the fp32 bytes of every layer's W_q, W_k, W_v and W_o.
double weight_bytes(const ModelConfig& config);

// A byte count is DRAM-bound from this multiple of the last-level cache on.
constexpr double kDramBoundLlcMultiple = 8;

// One sentence of the summary, under its topic ("Growth with T", "Speedup", ...).
struct Verdict {
  std::string topic;
  std::string text;
};

struct Target {
  std::string id;            // "decode_vs_torch_cached_short"
  std::string description;   // what is compared
  std::string requirement;   // ">= 10x"
  double threshold = 0;      // measured must be >= threshold (or <= for max-error targets)
  bool at_most = false;      // true: met when measured <= threshold
  double measured = 0;       // NaN when not measured
  // "met", "not met", "not measured", or "reference invalid": a measured fraction of a
  // physical limit above 100 %, which means the limit was measured wrong, never "met".
  std::string verdict;
  std::string detail;        // where and how it was measured, or why not
};

// Serving benchmarks (harness/bench/workload.h). A beam search of one implementation at one
// width: memory over the run (peak and mean over its samples) and the time per beam step;
// the saving is against cpu_cached's beam search at the same width (NaN without one).
struct BeamPoint {
  std::string impl;
  int width = 0;
  int prompt = 0, steps = 0, prune_every = 0;  // the beam search's fixed shape
  double held_peak = 0, held_mean = 0;         // Stats::bytes_held
  double reserved_peak = 0, reserved_mean = 0; // Stats::bytes_reserved
  double seconds_per_step = 0;                 // one decode call of all beams
  double cow_copies = 0;                       // per beam search
  // 1 - held_peak / cpu_cached's held_peak; 1 - reserved_peak / cpu_cached's reserved_peak
  // (what each allocated: cpu_cached reserves capacity per sequence, a pool its slabs).
  double saving_vs_held = std::numeric_limits<double>::quiet_NaN();
  double saving_vs_reserved = std::numeric_limits<double>::quiet_NaN();
};

// The prefix-hit prefill of one implementation: a prefill whose first `prefix` tokens an
// earlier, dropped sequence prefilled, against a cold prefill of the same length.
struct PrefixPrefillPoint {
  std::string impl;
  int prompt = 0, prefix = 0;
  double warm_seconds = 0, cold_seconds = 0;
  double ratio = 0;         // warm / cold (~1 without a prefix cache)
  double hit_tokens = 0;    // Stats::prefix_hit_tokens of the timed warm call
};

// The vLLM paper's beam-search memory saving from sharing (Kwon et al., SOSP 2023, "Efficient
// Memory Management for Large Language Model Serving with PagedAttention", section 6.3): a
// comparison beside the measurement, not a target.
constexpr double kVllmBeamSavingLow = 0.37, kVllmBeamSavingHigh = 0.55;

struct Analysis {
  std::string source;
  std::string shape;
  ModelConfig config;
  bool has_config = false;
  std::string baseline;                 // the no-cache implementation
  std::string cached;                   // the cache the speedup target is about
  double read_bandwidth = 0, copy_bandwidth = 0, llc_bytes = 0;  // the host's
  std::vector<BenchData::DeviceBandwidth> device_bandwidth;       // devices' own, when measured
  std::vector<SeriesAnalysis> generation;
  std::vector<SeriesAnalysis> decode;
  std::vector<Speedup> speedups;
  std::vector<BandwidthPoint> bandwidth;
  std::vector<FloorPoint> floors;       // per decode step with a bandwidth to divide by
  std::vector<BeamPoint> beam;          // per implementation and width (empty: not measured)
  std::vector<PrefixPrefillPoint> prefix_prefill;  // per implementation and prompt length
  std::vector<Target> targets;
  std::vector<Verdict> verdicts;        // the summary's sentences, in topic order
  std::vector<std::string> notes;       // where series stopped, what is missing
  // The bench's check before timing: "skipped (--no-check)", or one line per implementation
  // and thread count ("cpu_cached (threads 1): pass at t = ..."). Empty for older outputs.
  std::vector<std::string> checks;
  double predicted_generation_crossover = 0;  // T (op-count model), 0 without a config
  double predicted_decode_crossover = 0;      // t

  const SeriesAnalysis* find_generation(const std::string& impl) const;
  const SeriesAnalysis* find_decode(const std::string& impl, int threads) const;
  nlohmann::json to_json() const;  // fits.json
};

Analysis analyze(const BenchData& data);

}  // namespace kvbench::reports
