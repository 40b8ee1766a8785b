#include "impls/cuda_timing.h"

#include <algorithm>
#include <vector>

#include "harness/error.h"
#include "impls/cuda_kernels.h"
#include "impls/cuda_support.h"

namespace kvbench::cuda {

namespace {

void require_device() {
  const std::string why = device_unavailable_reason();
  require(why.empty(), "cuda timing: ", why);
}

std::size_t default_buffer_bytes() {
  const DeviceInfo info = device_info();
  std::size_t bytes = std::max<std::size_t>(std::size_t{1} << 30, 16 * info.l2_bytes);
  std::size_t free_bytes = 0;
  std::size_t total_bytes = 0;
  KVBENCH_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  bytes = std::min(bytes, free_bytes / 4);
  return bytes / 16 * 16;  // whole float4s
}

// Times `pass` (which enqueues one pass on `stream`): one warm-up, then `repetitions` passes,
// each between two events. RETURNS: the per-pass milliseconds, sorted.
template <typename Pass>
std::vector<double> time_passes(int repetitions, cudaStream_t stream, Pass pass) {
  require(repetitions >= 1, "cuda timing: repetitions must be >= 1, got ", repetitions);
  Event start;
  Event stop;
  pass();
  KVBENCH_CUDA_CHECK(cudaStreamSynchronize(stream));
  std::vector<double> ms;
  for (int r = 0; r < repetitions; ++r) {
    KVBENCH_CUDA_CHECK(cudaEventRecord(start.get(), stream));
    pass();
    KVBENCH_CUDA_CHECK(cudaEventRecord(stop.get(), stream));
    KVBENCH_CUDA_CHECK(cudaEventSynchronize(stop.get()));
    float elapsed = 0;
    KVBENCH_CUDA_CHECK(cudaEventElapsedTime(&elapsed, start.get(), stop.get()));
    ms.push_back(elapsed);
  }
  std::sort(ms.begin(), ms.end());
  return ms;
}

BandwidthMeasurement summarize(std::string kind, std::size_t buffer, std::size_t counted,
                               std::string counting, const std::vector<double>& ms) {
  BandwidthMeasurement m;
  m.kind = std::move(kind);
  m.buffer_bytes = buffer;
  m.bytes_counted = counted;
  m.counting = std::move(counting);
  m.repetitions = static_cast<int>(ms.size());
  m.best_ms = ms.front();
  m.median_ms = ms[ms.size() / 2];
  return m;
}

}  // namespace

std::string unavailable_reason() { return device_unavailable_reason(); }

DeviceInfo device_info() {
  require_device();
  int device = 0;
  KVBENCH_CUDA_CHECK(cudaGetDevice(&device));
  cudaDeviceProp prop{};
  KVBENCH_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  DeviceInfo info;
  info.name = prop.name;
  info.compute_major = prop.major;
  info.compute_minor = prop.minor;
  info.sm_count = prop.multiProcessorCount;
  info.l2_bytes = static_cast<std::size_t>(prop.l2CacheSize);
  info.global_bytes = prop.totalGlobalMem;
  return info;
}

struct EventTimer::Impl {
  Event start;
  Event stop;
  bool started = false;
};

EventTimer::EventTimer() {
  require_device();
  impl_ = std::make_unique<Impl>();
}

EventTimer::~EventTimer() = default;

void EventTimer::start() {
  KVBENCH_CUDA_CHECK(cudaEventRecord(impl_->start.get(), nullptr));
  impl_->started = true;
}

double EventTimer::stop_ms() {
  require(impl_->started, "EventTimer::stop_ms: start() was not called");
  KVBENCH_CUDA_CHECK(cudaEventRecord(impl_->stop.get(), nullptr));
  KVBENCH_CUDA_CHECK(cudaEventSynchronize(impl_->stop.get()));
  float ms = 0;
  KVBENCH_CUDA_CHECK(cudaEventElapsedTime(&ms, impl_->start.get(), impl_->stop.get()));
  impl_->started = false;
  return ms;
}

BandwidthMeasurement measure_read_bandwidth(std::size_t buffer_bytes, int repetitions) {
  require_device();
  if (buffer_bytes == 0) buffer_bytes = default_buffer_bytes();
  buffer_bytes = buffer_bytes / 16 * 16;
  require(buffer_bytes >= 16, "measure_read_bandwidth: buffer_bytes must be >= 16, got ",
          buffer_bytes);
  DeviceBuffer data(buffer_bytes, "the read-bandwidth buffer");
  Stream stream;
  // Zeros: the sum is irrelevant, only that every byte is read.
  KVBENCH_CUDA_CHECK(cudaMemsetAsync(data.get(), 0, buffer_bytes, stream.get()));
  const int blocks = current_sm_count() * 8;  // 8 blocks of 256 threads per multiprocessor
  DeviceBuffer sums(static_cast<std::size_t>(blocks) * sizeof(float), "the block sums");
  const std::vector<double> ms = time_passes(repetitions, stream.get(), [&] {
    KVBENCH_CUDA_CHECK(launch_read_reduction(data.get(), buffer_bytes / 16, sums.as<float>(),
                                             blocks, stream.get()));
  });
  return summarize("read-only streaming", buffer_bytes, buffer_bytes,
                   "each byte read once per pass", ms);
}

BandwidthMeasurement measure_copy_bandwidth(std::size_t buffer_bytes, int repetitions) {
  require_device();
  if (buffer_bytes == 0) buffer_bytes = default_buffer_bytes();  // each <= free / 4
  require(buffer_bytes >= 16, "measure_copy_bandwidth: buffer_bytes must be >= 16, got ",
          buffer_bytes);
  DeviceBuffer source(buffer_bytes, "the copy source");
  DeviceBuffer target(buffer_bytes, "the copy target");
  Stream stream;
  KVBENCH_CUDA_CHECK(cudaMemsetAsync(source.get(), 0, buffer_bytes, stream.get()));
  const std::vector<double> ms = time_passes(repetitions, stream.get(), [&] {
    KVBENCH_CUDA_CHECK(cudaMemcpyAsync(target.get(), source.get(), buffer_bytes,
                                       cudaMemcpyDeviceToDevice, stream.get()));
  });
  return summarize("device-to-device copy", buffer_bytes, 2 * buffer_bytes,
                   "read + write: 2 x the bytes copied", ms);
}

}  // namespace kvbench::cuda
