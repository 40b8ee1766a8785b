// The "cuda" device probes (harness/device_probes.h): CUDA-event timers for the benchmark's
// regions and the device's read-only and copy bandwidth (impls/cuda_timing.h), registered by
// register_cuda_cached. CUDA builds only.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "harness/device_probes.h"
#include "harness/error.h"
#include "impls/cuda_timing.h"
#include "impls/impls.h"

namespace kvbench {

namespace {

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

// The core's part of the CUDA figures (the rates are derived from it again where needed).
BandwidthMeasurement from_cuda(const cuda::BandwidthMeasurement& m) { return m; }

}  // namespace

void register_cuda_device_probes(DeviceProbes& probes) {
  probes.set_timer("cuda", [](const ImplInfo&) -> std::unique_ptr<RegionTimer> {
    return std::make_unique<CudaEventTimer>();
  });
  BandwidthProbe bandwidth;
  bandwidth.device_name = [] { return cuda::device_info().name; };
  // Default buffer sizes: max(1 GiB, 16 x L2), at most a quarter of the free memory.
  bandwidth.measure = [] {
    return std::vector<BandwidthMeasurement>{from_cuda(cuda::measure_read_bandwidth()),
                                             from_cuda(cuda::measure_copy_bandwidth())};
  };
  probes.set_bandwidth_probe("cuda", std::move(bandwidth));
}

}  // namespace kvbench
