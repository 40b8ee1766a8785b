// Instruction counts: the callgrind worker (worker.h) under `valgrind --tool=callgrind`.
#pragma once

#include <cstdint>
#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "ci/gate_workload.h"
#include "ci/measurement.h"

namespace kvbench::gate {

// RETURNS: the implementations `worker` holds, name -> holds_kv_cache (runs `WORKER list`).
// Throws Error when the worker cannot run.
std::map<std::string, bool> worker_impls(const std::string& worker);

// Reads the per-region dumps callgrind wrote as <out_file>.1, .2, ... (one per
// CALLGRIND_DUMP_STATS_AT) and returns region name -> the dump's "totals:" Ir. The final dump
// at program termination (<out_file> itself) covers no region and is ignored.
// Throws Error on a dump without a client-request trigger or a totals line.
std::map<std::string, std::uint64_t> read_region_dumps(const std::string& out_file);

// One callgrind run: `worker run impl WORKLOAD.json`.
struct WorkerRun {
  std::string worker;           // executable
  std::string impl;             // its name in that worker's registry
  bool long_sweep = false;      // with the workload's long sweep positions
};

// Runs every run under callgrind, at most `jobs` at a time, in a fresh temporary directory
// that is removed afterwards. RETURNS: counts in the order of `runs`. Throws Error naming the
// implementation, with the end of its log, when a run fails or a region is missing.
std::vector<InstructionCounts> count_instructions(const std::vector<WorkerRun>& runs,
                                                  const GateWorkload& workload, int jobs,
                                                  std::ostream* progress);

}  // namespace kvbench::gate
