// The benchmark runner behind `kvbench bench`: Google Benchmark drives every selected
// implementation through
//   generate/<impl>/T:<T>                    the T decode steps of a generation, T in `tokens`
//                                            (creating its sequence is timed apart and
//                                            recorded as the counter setup_seconds);
//   decode_step/<impl>/threads:<n>/pos:<t>   one decode step at position t, t in `positions`,
//                                            one thread; the `long_impls` also at
//                                            `long_positions` and with each count in `threads`
//                                            (thread scaling and memory bandwidth at long
//                                            context, where preparing a position is costly).
// Benchmarks run one at a time, in increasing size within each series, so a series can stop
// before a size whose single iteration (or whose preparation) is predicted to pass the time
// budget; where each series stopped goes into the output. The output is Google Benchmark's
// own JSON, written by its JSONReporter, with a `context` block that records the model, the
// machine and the memory bandwidths measured in this process before and after the sweeps
// (also the device's own, when an implementation runs on a device: device_bandwidth.h).
#pragma once

#include <cstddef>
#include <iosfwd>
#include <string>
#include <vector>

#include "harness/bench/bandwidth.h"
#include "harness/bench/check.h"
#include "harness/bench/device_bandwidth.h"
#include "harness/bench/machine.h"
#include "harness/bench/workload.h"
#include "harness/config.h"
#include "harness/registry.h"

namespace kvbench::bench {

struct BenchOptions {
  std::vector<const ImplInfo*> impls;  // unavailable ones are skipped and recorded
  std::string shape = "default";       // recorded in the context
  ModelConfig config;
  std::vector<int> tokens;             // generation lengths T (each <= capacity)
  std::vector<int> positions;          // decode-step positions t (each < capacity)
  std::vector<std::string> long_impls; // implementations measured at long context too
  std::vector<int> long_positions;     // their extra positions
  std::vector<int> threads = {1};      // their thread counts (when they honour threads)
  // ImplOptions of block pools (Capabilities::blocks; ignored by the others): tokens per
  // block, and the K/V budget in bytes (0: grow as needed).
  int block_size = ImplOptions{}.block_size;
  std::uint64_t kv_budget_bytes = 0;
  // Serving benchmarks (workload.h), one thread each. The beam widths (empty: no beam
  // benchmarks) share one BeamShape whose prompt is min(serving_prompt, capacity - steps);
  // the prefix prefill's prompt is min(serving_prompt, capacity) (prefix_prefill false: none).
  // Off here; `kvbench bench` turns both on unless --serving none.
  std::vector<int> beam_widths;
  int beam_steps = BeamShape{}.steps;
  int beam_prune_every = BeamShape{}.prune_every;
  int serving_prompt = BeamShape{}.prompt;
  bool prefix_prefill = false;
  double min_time = 0.1;               // Google Benchmark's --benchmark_min_time (seconds)
  int repetitions = 1;                 // Google Benchmark's --benchmark_repetitions
  // A series stops before a size whose one iteration is predicted to take longer than this
  // (generation: last time x (T'/T)^max(2, measured local exponent); decode step: ^max(1, .)).
  double budget_seconds = 10;
  // ... or whose preparation (prefilling a decode-step sequence to the next position) is
  // predicted to take longer than this (prefill cost taken as quadratic in the position).
  double prepare_budget_seconds = 60;
  bool quick = false;                   // recorded in the context
  std::string out_path;                 // the JSON file (required)
  std::string command_line;             // recorded in the context
  std::ostream* progress = nullptr;     // "[k/N] name" lines; null: quiet
  std::ostream* display = nullptr;      // Google Benchmark's console table; null: none
  std::size_t bandwidth_bytes = 0;      // per buffer; 0: max(8 x LLC, 64 MiB)
  // The bandwidths are also measured over buffers the size of the K/V a decode step reads at
  // each long position ((t + 1) x kv_bytes_per_token), so that a step's K/V read rate can be
  // set against a sum over the same working set: a buffer of 2x the last-level cache still
  // partly hits in it, and so does the K/V, alike.
  int bandwidth_passes = 8;
  // Before timing, check each implementation (and each thread count it is timed with) at its
  // longest position of the sweep (check.h); one that fails is reported and not timed.
  // false: --no-check (the JSON says the check was skipped).
  bool check = true;
  double check_no_cache_budget = CheckOptions{}.no_cache_budget;  // see CheckOptions
};

struct SeriesStop {
  std::string series;        // "generate/naive"
  int last_measured = 0;     // largest size measured (0: none)
  int stopped_before = 0;    // first size not measured
  double predicted_seconds = 0;
  std::string reason;        // "one iteration predicted 12.3 s > budget 10 s", "error: ..."
};

struct BenchOutcome {
  int planned = 0;   // benchmarks in the plan
  int ran = 0;       // benchmarks measured and written
  int failed = 0;    // benchmarks that threw (recorded as stops with reason "error: ...")
  std::vector<SeriesStop> stops;
  std::vector<std::string> skipped_impls;  // "name: why unavailable"
  std::vector<CheckResult> checks;         // one per (implementation, thread count) checked
  std::vector<std::string> failed_checks;  // implementations not timed: they failed a check
  MachineInfo machine;
  Bandwidth bandwidth_before, bandwidth_after;
  // The read-only reference (bandwidth.h) at 1 thread and at each of `threads`, before and
  // after the sweeps: the limit the K/V read rates and the per-step floors are set against.
  std::vector<ReadReference> reference_before, reference_after;
  // Per long position, the bandwidths over its K/V's size: before the sweeps, right before
  // each long implementation's decode step there (adjacent in time: a shared machine's
  // bandwidth drifts over minutes), and after the sweeps.
  struct MatchedBandwidth {
    int position = 0;
    std::vector<std::pair<std::string, Bandwidth>> runs;  // ("before", ...), ("adjacent", ...)
  };
  std::vector<MatchedBandwidth> matched_bandwidth;
  // Per device other than "cpu" that a selected implementation runs on: its read-only and
  // copy bandwidth before and after the sweeps (the JSON's "device_bandwidth"), or the error.
  std::vector<DeviceBandwidth> device_bandwidth;
  double wall_seconds = 0;
};

// REQUIRES: options.out_path non-empty; config valid; every size >= 1 (positions >= 0).
// Sizes past the capacity are dropped from their series and recorded as stops.
// RETURNS: what ran; the JSON file is written even when some benchmarks failed or some
// implementations failed their check (those are not timed; outcome.failed_checks).
BenchOutcome run_bench(const BenchOptions& options);

// RETURNS: the beam search the runner runs at `width` (its prompt clamped to the capacity).
BeamShape beam_shape(const BenchOptions& options, int width);
// RETURNS: the prompt length of the prefix-prefill benchmark.
int prefix_prompt(const BenchOptions& options);

// RETURNS: the smallest power of two t >= 16 whose K/V bytes (t x kv_bytes_per_token) are
// at least `factor` x llc_bytes, clamped to capacity - 1 (where the cache cannot grow that
// large, the largest position it allows).
int position_past_cache(const ModelConfig& config, std::size_t llc_bytes, double factor);

}  // namespace kvbench::bench
