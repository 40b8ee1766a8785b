// When `kvbench bench` measures bandwidth, and over what: the whole-memory figures
// (bandwidth.h: measure_bandwidth and the read-only reference, over max(8 x LLC, 64 MiB) or
// --bandwidth-mib) before and after the sweeps; per long position, the bandwidths over the
// K/V's size before, right before each long implementation's decode step there (adjacent in
// time: a shared machine's bandwidth drifts over minutes) and after; each device's own
// (device_bandwidth.h) before and after. The figures go into BenchOutcome, progress lines to
// BenchOptions::progress.
#pragma once

#include <cstddef>
#include <utility>
#include <vector>

#include "harness/bench/bandwidth.h"
#include "harness/bench/names.h"
#include "harness/bench/runner.h"
#include "harness/registry.h"

namespace kvbench::bench {

class BandwidthSchedule {
 public:
  // `impls`: the implementations that are timed (read at each call: the check before timing
  // may drop some). Records into `outcome`; reads outcome.machine.llc_bytes (set it first).
  // The three are kept by reference and must outlive the schedule.
  BandwidthSchedule(const BenchOptions& options, const std::vector<const ImplInfo*>& impls,
                    BenchOutcome& outcome)
      : o_(options), impls_(impls), outcome_(outcome) {}

  // Before the sweeps: bandwidth_before, reference_before, the matched sizes' "before" runs
  // (creating matched_bandwidth), and device_bandwidth (creating one entry per device).
  void before();
  // Before the decode step `id`: its matched size's "adjacent to <name>" run when `id` is a
  // long implementation's at a long position; nothing otherwise.
  void adjacent(const BenchmarkId& id);
  // After the sweeps: bandwidth_after, reference_after, the "after" runs, the devices again.
  void after();

 private:
  // The K/V bytes a decode step reads at each long position (when a long implementation
  // runs), at least 4 KiB: the sizes the matched bandwidths are measured over.
  // RETURNS: (position, bytes) pairs.
  std::vector<std::pair<int, std::size_t>> matched_sizes() const;
  // The buffer of the whole-memory measurements: --bandwidth-mib, else max(8 x LLC, 64 MiB).
  std::size_t reference_bytes() const;
  std::vector<ReadReference> measure_reference(const char* when);
  // bytes 0: reference_bytes().
  Bandwidth measure_now(const char* when, std::size_t bytes = 0);
  void measure_devices(const char* when);

  const BenchOptions& o_;
  const std::vector<const ImplInfo*>& impls_;
  BenchOutcome& outcome_;
};

}  // namespace kvbench::bench
