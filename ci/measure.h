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
  std::string worker;              // the callgrind worker that counts it; "": not counted
  std::string worker_impl;         // its name in that worker's registry
  bool long_sweep = false;         // count the long sweep positions too
  std::string no_instructions;     // why not counted, when worker_impl is empty
  std::string unavailable;         // non-empty: not measured, recorded with this reason
};

struct MeasureOptions {
  GateWorkload workload = default_workload();
  std::vector<GateTarget> targets;
  int jobs = 1;                 // callgrind runs at a time
  int time_repetitions = 9;     // wall-clock samples per implementation (0: none)
  std::ostream* progress = nullptr;
};

// A callgrind worker executable and the implementations it holds (worker_impls()).
struct Worker {
  std::string path;
  std::map<std::string, bool> impls;  // name -> holds_kv_cache
  bool fast_prefill = false;          // its prefill is fast under valgrind: long sweeps
};

// RETURNS: a target for every non-planted implementation of `registry` (unavailable ones
// say why, and are recorded as such). CPU implementations are counted by the first of
// `workers` that holds them, with the long sweep when they hold a K/V cache and the worker
// has fast_prefill; the others say why they are not counted.
std::vector<GateTarget> default_targets(const Registry& registry, const std::vector<Worker>& workers);

// Runs every workload on every target. Throws Error when one fails.
Measurement measure(const MeasureOptions& options);

}  // namespace kvbench::gate
