// Runs the gate's workloads (gate_workload.h) on one implementation.
//
// The decode and sweep workloads mark their measured regions through a RegionMarker: the
// callgrind worker (ci/worker.h) turns instrumentation on around them with client requests,
// the wall-clock report times them. Everything outside a region (prefill, the warm-up step
// that grows scratch buffers and binds library calls, input generation) is not measured.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "ci/gate_workload.h"
#include "harness/registry.h"

namespace kvbench::gate {

// Called around each measured region, in order begin(name), end(name); regions do not nest.
class RegionMarker {
 public:
  virtual ~RegionMarker() = default;
  virtual void begin(const std::string& region) = 0;
  virtual void end(const std::string& region) = 0;
};

// The exact signals: counters summed over the scripted session, and the bytes held at its end.
struct CounterResult {
  std::uint64_t kv_projection_rows = 0;
  std::uint64_t qk_dot_products = 0;
  std::uint64_t kv_bytes_read = 0;
  std::uint64_t bytes_held = 0;
  std::string phases;  // the phases that ran: "prefill,batch,fork,truncate,drop"

  std::map<std::string, std::uint64_t> as_map() const;
};

// Runs the counters workload on a fresh instance of `impl`. Fork and truncate phases run only
// when the implementation supports them (the phases string says which ran).
CounterResult run_counter_workload(const ImplInfo& impl, const GateWorkload& workload);

// Region names: "decode" and "sweep@<t>".
std::string sweep_region(int position);

// Runs the decode workload on a fresh instance, marking region "decode".
void run_decode_region(const ImplInfo& impl, const GateWorkload& workload, RegionMarker& marker);

// Runs the sweep workload (a fresh instance per position), marking "sweep@<t>" for each t in
// workload.sweep_positions(long_sweep).
void run_sweep_regions(const ImplInfo& impl, const GateWorkload& workload, bool long_sweep,
                       RegionMarker& marker);

// RETURNS: seconds per decode call of the decode workload, one sample per repetition (each on
// a fresh instance), timed with std::chrono::steady_clock around the region.
std::vector<double> time_decode_region(const ImplInfo& impl, const GateWorkload& workload,
                                       int repetitions);

}  // namespace kvbench::gate
