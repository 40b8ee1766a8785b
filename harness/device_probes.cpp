#include "harness/device_probes.h"

#include <chrono>

#include "harness/error.h"
#include "harness/registry.h"

namespace kvbench {

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

template <typename T>
void set_entry(std::vector<std::pair<std::string, T>>& entries, const std::string& device, T value) {
  for (auto& entry : entries) {
    if (entry.first == device) {
      entry.second = std::move(value);
      return;
    }
  }
  entries.emplace_back(device, std::move(value));
}

}  // namespace

std::unique_ptr<RegionTimer> make_host_timer() { return std::make_unique<HostTimer>(); }

void DeviceProbes::set_timer(const std::string& device, TimerFactory factory) {
  require(static_cast<bool>(factory), "device probes: null timer factory for device '", device,
          "'");
  set_entry(timers_, device, std::move(factory));
}

std::unique_ptr<RegionTimer> DeviceProbes::make_timer(const ImplInfo& impl) const {
  for (const auto& entry : timers_) {
    if (entry.first == impl.device) return entry.second(impl);
  }
  return make_host_timer();
}

void DeviceProbes::set_bandwidth_probe(const std::string& device, BandwidthProbe probe) {
  require(probe.device_name && probe.measure, "device probes: bandwidth probe for device '",
          device, "' needs both device_name and measure");
  set_entry(bandwidth_, device, std::move(probe));
}

const BandwidthProbe* DeviceProbes::bandwidth_probe(const std::string& device) const {
  for (const auto& entry : bandwidth_) {
    if (entry.first == device) return &entry.second;
  }
  return nullptr;
}

}  // namespace kvbench
