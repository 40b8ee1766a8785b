// The Google Benchmark reporter of `kvbench bench`: the runner runs each benchmark alone (one
// RunSpecifiedBenchmarks call per size, so that a series can stop between sizes), and this
// reporter gathers the runs of all those calls for the one JSON file written at the end.
#pragma once

#include <benchmark/benchmark.h>

#include <cstddef>
#include <vector>

namespace kvbench::bench {

// Forwards to the console table once per process (Google Benchmark prints its context on
// every RunSpecifiedBenchmarks call) and keeps a copy of every run, so that the JSON file can
// be written at the end with the complete context (where each series stopped, the
// bandwidth measured after the sweeps) by Google Benchmark's own JSONReporter.
class CollectingReporter : public benchmark::BenchmarkReporter {
 public:
  // `display`: the console table, or null for none; `name_width`: its name column.
  CollectingReporter(benchmark::BenchmarkReporter* display, std::size_t name_width)
      : display_(display), name_width_(name_width) {}

  bool ReportContext(const Context& context) override;
  void ReportRuns(const std::vector<Run>& runs) override;
  void Finalize() override {}

  // Starts collecting the runs of benchmark number `family_index`.
  void begin(int family_index);
  // RETURNS: the runs of the current benchmark.
  const std::vector<Run>& current() const { return current_; }
  // Keeps the current benchmark's runs for the JSON file.
  void keep() { kept_.insert(kept_.end(), current_.begin(), current_.end()); }
  const std::vector<Run>& kept() const { return kept_; }
  // Finalizes the console table (once, after the last benchmark).
  void finish();

 private:
  benchmark::BenchmarkReporter* display_;
  std::size_t name_width_;
  bool context_shown_ = false;
  int family_index_ = 0;
  std::vector<Run> current_;
  std::vector<Run> kept_;
};

// RETURNS: seconds per iteration of the benchmark's runs (the median over repetitions), or
// a negative number when it produced no successful iteration run.
double seconds_per_iteration(const std::vector<benchmark::BenchmarkReporter::Run>& runs);

}  // namespace kvbench::bench
