// How the benchmark runner times one region of work, per implementation.
//
// Every kvbench benchmark uses Google Benchmark's manual time: the runner brackets only the
// work it means to measure (one generation, one decode step) with a RegionTimer and reports
// the seconds through State::SetIterationTime, so that setup and rollback stay outside.
// A host implementation gets the steady-clock timer. A device implementation registers a
// factory for its device name (e.g. "cuda": CUDA events recorded around the region on the
// implementation's stream, then synchronized), and the runner picks it by ImplInfo::device
// without knowing anything about the device.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "harness/registry.h"

namespace kvbench::bench {

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

using TimerFactory = std::function<std::unique_ptr<RegionTimer>(const ImplInfo&)>;

// Device name -> timer factory. Devices without an entry use the host timer.
class TimerRegistry {
 public:
  // The process-wide one, with the built-in device timers (see timer.cpp).
  static TimerRegistry& global();
  // Replaces any factory registered for `device`. REQUIRES: factory not null.
  void set(const std::string& device, TimerFactory factory);
  // RETURNS: a timer for `impl` (the host timer unless its device has a factory).
  std::unique_ptr<RegionTimer> make(const ImplInfo& impl) const;

 private:
  std::vector<std::pair<std::string, TimerFactory>> factories_;
};

}  // namespace kvbench::bench
