// GPU timing for benchmarks: CUDA-event timers and the device's own bandwidth ceilings,
// measured in the same run as the kernels they are compared with.
// No CUDA types here; CUDA builds only (KVBENCH_HAVE_CUDA). Every function except
// unavailable_reason() throws kvbench::Error when no device is usable.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "harness/device_probes.h"

namespace kvbench::cuda {

// RETURNS: "" when a CUDA device can run kvbench's kernels, else why not ("no CUDA device",
// or the driver's reason in parentheses, or a missing kernel image). Never throws.
std::string unavailable_reason();

struct DeviceInfo {
  std::string name;              // "NVIDIA H100 80GB HBM3"
  int compute_major = 0;         // 9 for sm_90
  int compute_minor = 0;
  int sm_count = 0;              // multiprocessors
  std::size_t l2_bytes = 0;      // L2 cache size
  std::size_t global_bytes = 0;  // device memory
};
DeviceInfo device_info();

// Elapsed GPU time between start() and stop(), from two CUDA events recorded on the legacy
// default stream; that stream orders with every blocking stream (cuda_cached's included),
// so the interval covers all GPU work enqueued between the two calls.
class EventTimer {
 public:
  EventTimer();
  ~EventTimer();
  EventTimer(const EventTimer&) = delete;
  EventTimer& operator=(const EventTimer&) = delete;

  void start();
  // Waits for the stop event. RETURNS: milliseconds since start().
  // REQUIRES: start() was called.
  double stop_ms();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A bandwidth ceiling measured on the device: `repetitions` timed passes after one warm-up.
// The probe's figures (harness/device_probes.h: what each field counts), with the rates.
struct BandwidthMeasurement : kvbench::BandwidthMeasurement {
  double best_gb_per_s() const { return bytes_counted / (best_ms * 1e-3) / 1e9; }
  double median_gb_per_s() const { return bytes_counted / (median_ms * 1e-3) / 1e9; }
};

// Read-only streaming: a reduction kernel sums a float buffer (each byte read once per pass;
// bytes_counted = buffer_bytes). buffer_bytes 0 means max(1 GiB, 16 x L2), at most a quarter of
// the free memory, so that L2 holds a negligible part of it.
// REQUIRES: repetitions >= 1.
BandwidthMeasurement measure_read_bandwidth(std::size_t buffer_bytes = 0, int repetitions = 20);

// cudaMemcpyAsync device to device of buffer_bytes (same default size). Bytes are counted
// read + write: bytes_counted = 2 x buffer_bytes, since each copied byte is read once and
// written once (halve the rate for the bytes copied per second).
BandwidthMeasurement measure_copy_bandwidth(std::size_t buffer_bytes = 0, int repetitions = 20);

}  // namespace kvbench::cuda
