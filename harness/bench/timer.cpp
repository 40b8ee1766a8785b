#include "harness/bench/timer.h"

#include <chrono>

#include "harness/error.h"

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

// Device timers built into kvbench. A device implementation adds its factory here
// (e.g. `registry.set("cuda", make_cuda_event_timer)` under #if KVBENCH_HAVE_CUDA, with the
// factory defined in its own translation unit).
void register_builtin_timers(TimerRegistry& /*registry*/) {}

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
