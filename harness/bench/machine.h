// The machine a benchmark ran on, for the `context` block of the JSON output.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace kvbench::bench {

struct CacheLevel {
  int level = 0;
  std::string type;         // "Data", "Instruction", "Unified"
  std::size_t bytes = 0;
  int shared_by = 0;        // logical CPUs sharing one instance
};

struct MachineInfo {
  std::string cpu_model;           // /proc/cpuinfo "model name", or "unknown"
  int logical_cpus = 0;
  double mhz = 0;                  // as Google Benchmark reports it
  std::vector<CacheLevel> caches;  // as Google Benchmark detects them
  // The largest data or unified cache of the highest level (the last-level cache), or
  // 32 MiB when none is detected (a guess that errs on the large side, so that buffers
  // sized from it still exceed the real cache on most machines).
  std::size_t llc_bytes = 0;
  bool llc_detected = false;
};

// RETURNS: what this machine reports about itself. Never throws.
MachineInfo detect_machine();

}  // namespace kvbench::bench
