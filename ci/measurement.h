// Measurement: what one gate run measured, and the schema of the files it reads and writes.
// A baseline (ci/baseline.json) is a measurement written by `kvbench gate --update`; `--out`
// writes one, `--current` reads one back instead of measuring.
//
//   { "schema": "kvbench-gate-measurement", "version": 1,
//     "toolchain": { compiler, build_type, valgrind, glibc, cpu, cpu_features, libraries },
//     "workload": { ... gate_workload.h ... },
//     "impls": { NAME: { "device": "cpu",
//                        "counters": { kv_projection_rows, qk_dot_products, kv_bytes_read,
//                                      bytes_held, phases },
//                        "instructions": { "decode": N, "sweep": { "<t>": N, ... } },
//                        "instructions_skipped": "why",        (instead, when not counted)
//                        "seconds_per_step": [ ... ] } },
//     "unavailable": { NAME: "why" } }
// Instruction counts are callgrind's Ir totals of a whole region (decode: all its steps;
// sweep@t: sweep.steps steps), seconds_per_step one sample per timed repetition.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ci/gate_runs.h"
#include "ci/gate_workload.h"

namespace kvbench::gate {

inline constexpr const char* kSchema = "kvbench-gate-measurement";
inline constexpr int kSchemaVersion = 1;

// What instruction counts depend on besides the source: a difference is reported.
struct Toolchain {
  std::string compiler;      // "GCC 12.2.0"
  std::string build_type;    // "Release"
  std::string valgrind;      // "valgrind-3.19.0"
  std::string glibc;         // "2.36"
  std::string cpu;           // "AMD EPYC 7B13"
  std::string cpu_features;  // "avx2 fma": selects ifunc/target_clones variants
  std::string libraries;     // LibTorch and BLAS libraries loaded (the torch peers' counts)

  // RETURNS: the toolchain of this build and machine (runs `valgrind --version`).
  static Toolchain current();
  // RETURNS: "" when equal, else "compiler 'A' vs 'B'; ..." (baseline first).
  std::string describe_difference(const Toolchain& other) const;
};

struct InstructionCounts {
  std::uint64_t decode = 0;               // Ir of the decode region
  std::map<int, std::uint64_t> sweep;     // position t -> Ir of its region
};

struct ImplMeasurement {
  std::string device;
  CounterResult counters;
  std::optional<InstructionCounts> instructions;  // absent: not counted
  std::string instructions_skipped;               // why not, when absent
  std::vector<double> seconds_per_step;           // wall-clock samples of the decode region
};

struct Measurement {
  Toolchain toolchain;
  GateWorkload workload;
  std::map<std::string, ImplMeasurement> impls;
  std::map<std::string, std::string> unavailable;  // registered but unavailable here -> why
};

nlohmann::json to_json(const Measurement& measurement);
// Throws Error (the gate's "unusable input", exit 2) naming the JSON field and what it holds:
// another schema or version, a missing field, a field of this version's schema that holds
// another type (a count that is negative, fractional, null or a string; seconds that are not
// numbers), a field this version does not know, an empty `impls`, or a workload that cannot
// be run. Well-typed values that cannot be a measurement (a count of 0, a duration <= 0) are
// read as they are: the checks fail them by name (checks.h).
Measurement measurement_from_json(const nlohmann::json& json);

// Throws Error when the file is missing, unreadable, not JSON or not a measurement.
Measurement read_measurement(const std::string& path);
// Writes atomically (a temporary file renamed over `path`). Throws Error on failure.
void write_measurement(const Measurement& measurement, const std::string& path);

}  // namespace kvbench::gate
