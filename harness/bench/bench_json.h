// The JSON file `kvbench bench` writes: Google Benchmark's own JSON, by its JSONReporter,
// whose custom context carries kvbench's record of the run under "kvbench" (one JSON string:
// the model, the machine, the bandwidths, the options, the check, where each series stopped,
// the preparations) beside a few flat keys for a reader of the context alone
// (kvbench_command, shape, check, model_config, cpu_model, the bandwidths, naive_stopped_at).
// Built here, apart from the sweep, from what the sweep recorded.
#pragma once

#include <benchmark/benchmark.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "harness/bench/runner.h"
#include "harness/registry.h"

namespace kvbench::bench {

// RETURNS: the "kvbench" context of a run of `impls` (those timed) with `options`, that
// ended with `outcome`; `preparation` is the array of the decode-step preparations
// ({series, from, to, seconds, cpu_seconds}, in the order they ran).
nlohmann::json bench_context_json(const BenchOptions& options,
                                  const std::vector<const ImplInfo*>& impls,
                                  const BenchOutcome& outcome, const nlohmann::json& preparation);

// Sets Google Benchmark's process-wide custom context to this run's (bench_context_json and
// the flat keys; nothing from an earlier run in the process) and writes `runs` with it to
// options.out_path, whole or not at all. Throws Error when the file cannot be written.
void write_bench_json(const BenchOptions& options, const std::vector<const ImplInfo*>& impls,
                      const BenchOutcome& outcome, const nlohmann::json& preparation,
                      const std::vector<benchmark::BenchmarkReporter::Run>& runs);

// RETURNS: one line: "skipped (--no-check)", "passed: a, b" or "FAILED (not timed): c;
// passed: a" (each with its thread count and verdict), "nothing to check" when none ran.
std::string check_summary(const BenchOptions& options, const BenchOutcome& outcome);

// RETURNS: the no-cache baseline the caches are measured against: "naive" when it is among
// `impls`, else the first that holds no K/V cache ("" when none).
std::string baseline_name(const std::vector<const ImplInfo*>& impls);

}  // namespace kvbench::bench
