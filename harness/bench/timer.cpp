#include "harness/bench/timer.h"

#include <chrono>

#include "harness/error.h"

#if KVBENCH_HAVE_CUDA
#include "impls/cuda_timing.h"
#endif

namespace kvbench::bench {

namespace {

class HostTimer : public RegionTimer {
 public:
  void start() override { start_ = std::chrono::steady_clock::now(); }
  double stop() override {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }
  std::string describe() const override { return "host steady_clock"; }

 private:
  std::chrono::steady_clock::time_point start_;
};

#if KVBENCH_HAVE_CUDA
// GPU time of the region: CUDA events on the legacy default stream, which orders with every
// blocking stream (cuda_cached's), so the interval covers all device work enqueued between
// start() and stop(), including device idle time while the host prepares the next launch;
// stop() waits for the stop event. The events are created at the first start(), so that
// making a timer (the runner asks every selected implementation's timer to describe itself)
// touches no device.
class CudaEventTimer : public RegionTimer {
 public:
  void start() override {
    if (!events_) events_ = std::make_unique<cuda::EventTimer>();
    events_->start();
  }
  double stop() override {
    require(events_ != nullptr, "CUDA event timer: stop() without start()");
    return events_->stop_ms() * 1e-3;
  }
  std::string describe() const override {
    return "CUDA events (legacy default stream; GPU time between the region's start and end)";
  }

 private:
  std::unique_ptr<cuda::EventTimer> events_;
};
#endif

// Device timers built into kvbench, by ImplInfo::device.
void register_builtin_timers(TimerRegistry& registry) {
#if KVBENCH_HAVE_CUDA
  registry.set("cuda", [](const ImplInfo&) -> std::unique_ptr<RegionTimer> {
    return std::make_unique<CudaEventTimer>();
  });
#else
  (void)registry;  // no device timers in a build without CUDA: every device uses the host timer
#endif
}

}  // namespace

std::unique_ptr<RegionTimer> make_host_timer() { return std::make_unique<HostTimer>(); }

TimerRegistry& TimerRegistry::global() {
  static TimerRegistry* registry = [] {
    auto* r = new TimerRegistry();
    register_builtin_timers(*r);
    return r;
  }();
  return *registry;
}

void TimerRegistry::set(const std::string& device, TimerFactory factory) {
  require(static_cast<bool>(factory), "timer registry: null factory for device '", device, "'");
  for (auto& entry : factories_) {
    if (entry.first == device) {
      entry.second = std::move(factory);
      return;
    }
  }
  factories_.emplace_back(device, std::move(factory));
}

std::unique_ptr<RegionTimer> TimerRegistry::make(const ImplInfo& impl) const {
  for (const auto& entry : factories_) {
    if (entry.first == impl.device) return entry.second(impl);
  }
  return make_host_timer();
}

}  // namespace kvbench::bench
