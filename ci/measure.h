// Measuring a build for the gate: counters and wall-clock in this process, instruction counts
// through the callgrind worker.
#pragma once

#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "ci/gate_workload.h"
#include "ci/measurement.h"
#include "harness/registry.h"

namespace kvbench::gate {

// One implementation to measure, under the name the measurement files it. The gate's own
// tests measure a planted variant under the name of the implementation it breaks (e.g. the
// entry "cpu_cached" measured through "planted_copy_every_step"), to compare it with the real
// one's baseline.
struct GateTarget {
  std::string name;                // key in the measurement
  const ImplInfo* impl = nullptr;  // runs the counters and timing workloads in this process
  std::string worker_impl;         // its name in the worker's registry; "": not counted
  std::string no_instructions;     // why not counted, when worker_impl is empty
  std::string unavailable;         // non-empty: not measured, recorded with this reason
};

struct MeasureOptions {
  GateWorkload workload = default_workload();
  std::vector<GateTarget> targets;
  std::string worker;           // the callgrind worker executable
  int jobs = 1;                 // callgrind runs at a time
  int time_repetitions = 9;     // wall-clock samples per implementation (0: none)
  std::ostream* progress = nullptr;
};

// RETURNS: a target for every non-planted implementation of `registry` (unavailable ones
// say why, and are recorded as such); those
// `worker_impls` holds (worker_impls()) are counted by callgrind, the others say why not.
std::vector<GateTarget> default_targets(const Registry& registry,
                                        const std::map<std::string, bool>& worker_impls);

// Runs every workload on every target. Throws Error when one fails.
Measurement measure(const MeasureOptions& options);

}  // namespace kvbench::gate
