// Device probes: how the benchmark times a region of work and measures a device's own
// bandwidth ceilings, registered by device name (ImplInfo::device) by whoever implements the
// device. The CUDA implementation registers "cuda" (impls/cuda_timing.h, CUDA builds) when
// the built-ins are registered; a plugin for another device may register its own through the
// Registry it is handed. The benchmark (harness/bench) looks them up by device and never
// names a device itself: with nothing registered, every device gets the host clock and no
// bandwidth measurement.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace kvbench {

struct ImplInfo;  // harness/registry.h

class RegionTimer {
 public:
  virtual ~RegionTimer() = default;
  // Marks the start of the region (for a device: records an event on its stream).
  virtual void start() = 0;
  // RETURNS: seconds from start() to the end of the region's work (for a device: after
  // the work queued in between has finished).
  virtual double stop() = 0;
  // RETURNS: what it measures, for the JSON context ("host steady_clock", "CUDA events").
  virtual std::string describe() const = 0;
};

// std::chrono::steady_clock around the region.
std::unique_ptr<RegionTimer> make_host_timer();

// Makes a timer for an implementation of the device it is registered for. Making one must
// touch no device (the runner asks every selected implementation's timer to describe itself).
using TimerFactory = std::function<std::unique_ptr<RegionTimer>(const ImplInfo&)>;

// One timed bandwidth measurement of one kind on a device: `repetitions` passes.
struct BandwidthMeasurement {
  std::string kind;               // "read-only streaming" or "device-to-device copy"
  std::size_t buffer_bytes = 0;   // bytes of the buffer read (or copied)
  std::size_t bytes_counted = 0;  // bytes per pass the rates count (see `counting`)
  std::string counting;           // how bytes_counted relates to buffer_bytes
  int repetitions = 0;
  double best_ms = 0;             // fastest pass
  double median_ms = 0;           // median pass
};

// A device's bandwidth ceilings. Both functions may throw (kvbench::Error when the device
// cannot be used); the benchmark records what was thrown instead of failing.
struct BandwidthProbe {
  std::function<std::string()> device_name;                    // "NVIDIA H100 80GB HBM3"
  std::function<std::vector<BandwidthMeasurement>()> measure;  // one run of each kind
};

class DeviceProbes {
 public:
  // Replaces any timer registered for `device`. Throws Error when `factory` is null.
  void set_timer(const std::string& device, TimerFactory factory);
  // RETURNS: a timer for `impl`: its device's, else the host timer.
  std::unique_ptr<RegionTimer> make_timer(const ImplInfo& impl) const;

  // Replaces any probe registered for `device`. Throws Error when a function is null.
  void set_bandwidth_probe(const std::string& device, BandwidthProbe probe);
  // RETURNS: the probe registered for `device`, or nullptr.
  const BandwidthProbe* bandwidth_probe(const std::string& device) const;

 private:
  std::vector<std::pair<std::string, TimerFactory>> timers_;
  std::vector<std::pair<std::string, BandwidthProbe>> bandwidth_;
};

}  // namespace kvbench
