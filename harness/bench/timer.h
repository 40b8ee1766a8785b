// How the benchmark runner times one region of work, per implementation.
//
// Every kvbench benchmark uses Google Benchmark's manual time: the runner brackets only the
// work it means to measure (the T decode steps of one generation, one decode step) with a
// RegionTimer and reports the seconds through State::SetIterationTime, so that setup and
// rollback stay outside. A generation's setup (creating its sequence) is timed with the same
// timer, apart, and recorded as the counter setup_seconds.
// A host implementation gets the steady-clock timer. A device implementation registers a
// factory for its device name in the registry (harness/device_probes.h; e.g. "cuda": CUDA
// events recorded around the region, then synchronized, registered by impls/), and the
// runner picks it by ImplInfo::device without knowing anything about the device.
#pragma once

#include <memory>
#include <string>
#include <utility>

#include "harness/device_probes.h"
#include "harness/registry.h"

namespace kvbench::bench {

using kvbench::make_host_timer;
using kvbench::RegionTimer;
using kvbench::TimerFactory;

// Device name -> timer factory: the timers of a registry's DeviceProbes.
class TimerRegistry {
 public:
  // The timers of Registry::global() (what its implementations registered).
  static TimerRegistry& global();
  explicit TimerRegistry(DeviceProbes& probes) : probes_(&probes) {}
  // Replaces any factory registered for `device`. REQUIRES: factory not null.
  void set(const std::string& device, TimerFactory factory) {
    probes_->set_timer(device, std::move(factory));
  }
  // RETURNS: a timer for `impl` (the host timer unless its device has a factory).
  std::unique_ptr<RegionTimer> make(const ImplInfo& impl) const { return probes_->make_timer(impl); }

 private:
  DeviceProbes* probes_;
};

}  // namespace kvbench::bench
