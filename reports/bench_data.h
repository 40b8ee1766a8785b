// A `kvbench bench` output (Google Benchmark JSON) read back for reports: one Measurement
// per benchmark, with its time per iteration and counters, and the context kvbench wrote.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "harness/bench/names.h"
#include "harness/config.h"

namespace kvbench::reports {

struct Measurement {
  bench::BenchmarkId id;
  std::string name;          // without Google Benchmark's suffixes
  double seconds = 0;        // per iteration (manual time); median over repetitions
  double cpu_seconds = 0;    // the benchmark thread's CPU time per iteration
  int repetitions = 0;       // iteration runs it was measured in
  std::map<std::string, double> counters;
  // A generation's setup: seconds per iteration spent creating its sequence, timed apart
  // from the T decode steps that `seconds` holds (the counter setup_seconds). Empty in a
  // bench output older than the counter, whose `seconds` include the setup.
  std::optional<double> setup_seconds;
  // RETURNS: the counter, or throws Error naming it and the benchmark.
  double counter(const std::string& key) const;
  bool has(const std::string& key) const { return counters.count(key) != 0; }
};

struct BenchData {
  std::string path;
  nlohmann::json context;    // Google Benchmark's context block as written
  nlohmann::json kvbench;    // context["kvbench"] parsed (null when absent)
  std::string shape;         // "" when unknown
  ModelConfig config;        // from the kvbench context (default config when absent)
  bool has_config = false;
  std::string baseline;      // the no-cache implementation ("naive"), "" when none ran
  double read_bandwidth = 0;  // bytes/s, single thread, read once (0: not measured)
  double copy_bandwidth = 0;  // bytes/s, read + written
  double bandwidth_buffer_bytes = 0;  // the buffer those two were measured over
  double llc_bytes = 0;
  // Bandwidths over buffers the size of the K/V at the long positions (bench/runner.h).
  struct SizedBandwidth {
    double bytes = 0, read = 0, copy = 0;
    std::string matches;  // "K/V bytes a decode step reads at t = 32768"
  };
  std::vector<SizedBandwidth> bandwidth_by_size;
  // The read-only reference per thread count (harness/bench/bandwidth.h): buffer >= 8x the
  // LLC, held like cpu_cached's K/V, best over kernel variants; empty in older outputs.
  struct ReadReference {
    int threads = 1;
    double buffer_bytes = 0;
    double best = 0, median = 0;  // bytes/s, every byte read once, all threads together
    std::string variant;          // the kernel variant of `best`
    std::string allocation;       // how its buffer was allocated
  };
  std::vector<ReadReference> read_reference;
  // RETURNS: the reference measured with `threads` threads, or null.
  const ReadReference* reference_for(int threads) const;
  // RETURNS: the sized read bandwidth whose buffer is within 25% of `bytes`, or null.
  const SizedBandwidth* bandwidth_near(double bytes) const;
  // A device's own bandwidth ceilings (the kvbench context's "device_bandwidth", written
  // when an implementation ran on a device: harness/bench/device_bandwidth.h).
  struct DeviceBandwidth {
    std::string device;        // ImplInfo::device: "cuda"
    std::string name;          // "NVIDIA H100 80GB HBM3"
    double read = 0;           // bytes/s, read-only streaming, each byte read counted once
    double copy = 0;           // bytes/s, device-to-device copy, bytes read + written
    double buffer_bytes = 0;   // the read-only buffer
  };
  std::vector<DeviceBandwidth> device_bandwidth;  // only devices with a read bandwidth > 0
  // Implementation -> ImplInfo::device, from the context's implementation list.
  std::map<std::string, std::string> impl_device;
  // RETURNS: impl's device ("cpu" when the context does not say).
  std::string device_of(const std::string& impl) const;
  // RETURNS: the measured bandwidth of `device`, or null (none measured, or "cpu": the host's
  // bandwidth is read_bandwidth / copy_bandwidth above).
  const DeviceBandwidth* device_bandwidth_of(const std::string& device) const;
  std::vector<Measurement> measurements;  // sorted by kind, impl, threads, size

  // RETURNS: the measurements of one series in increasing size.
  std::vector<const Measurement*> series(bench::BenchKind kind, const std::string& impl,
                                         int threads = 1) const;
  // RETURNS: implementations with measurements of `kind`, in order of first appearance in
  // the kvbench context's implementation list (then by name).
  std::vector<std::string> impls(bench::BenchKind kind) const;
  // RETURNS: the thread counts measured for impl's decode steps, increasing.
  std::vector<int> decode_threads(const std::string& impl) const;
  const Measurement* find(bench::BenchKind kind, const std::string& impl, int threads,
                          int size) const;
};

// Reads a bench output. Benchmarks whose names kvbench did not write are ignored; runs with
// error_occurred are dropped; repetitions collapse to their median (Google Benchmark's
// "median" aggregate when present). Throws Error naming the file and what is wrong.
BenchData load_bench(const std::string& path);
BenchData parse_bench(const nlohmann::json& doc, const std::string& path = "(json)");

}  // namespace kvbench::reports
