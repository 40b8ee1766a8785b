// CUDA plumbing shared by cuda_cached and the GPU timing helpers: error checks that turn CUDA
// and cuBLAS failures into kvbench::Error naming the call, and RAII owners of device memory,
// streams and events (so a constructor that throws half-way frees what it already got).
// Only CUDA builds include this header.
#pragma once

#include <cstddef>
#include <string>

#include <cublas_api.h>
#include <cuda_runtime_api.h>

namespace kvbench::cuda {

// Throws kvbench::Error "CUDA call `<call>` failed at <file>:<line>: <CUDA's message>
// (<error name>)" unless err is cudaSuccess. Clears the runtime's last error first, so that a
// non-sticky failure (out of memory) does not resurface at an unrelated later call.
void check_cuda(cudaError_t err, const char* call, const char* file, int line);
// As check_cuda, for cuBLAS statuses (cublasGetStatusString gives the message).
void check_cublas(cublasStatus_t status, const char* call, const char* file, int line);

#define KVBENCH_CUDA_CHECK(call) ::kvbench::cuda::check_cuda((call), #call, __FILE__, __LINE__)
#define KVBENCH_CUBLAS_CHECK(call) ::kvbench::cuda::check_cublas((call), #call, __FILE__, __LINE__)

// RETURNS: "" when the current CUDA device can run kvbench's kernels; otherwise why not:
// "no CUDA device" or "no CUDA device (cudaGetDeviceCount: <the driver's reason>)", or that
// the binary holds no code for the GPU's compute capability. Computed once per process.
std::string device_unavailable_reason();

// Multiprocessors of the current device.
int current_sm_count();

// Owns one cudaMalloc allocation. Move-only.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  // Throws kvbench::Error on failure; for out of memory the message says how much was asked
  // for `what`, and how much the device has free.
  DeviceBuffer(std::size_t bytes, const std::string& what);
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& other) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void* get() const { return ptr_; }
  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }
  std::size_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  std::size_t bytes_ = 0;
};

// A blocking stream (cudaStreamCreate): the legacy default stream orders with it, so events
// recorded there bracket work enqueued here.
class Stream {
 public:
  Stream();
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  cudaStream_t get() const { return stream_; }

 private:
  cudaStream_t stream_ = nullptr;
};

class Event {
 public:
  Event();
  ~Event();
  Event(Event&& other) noexcept;
  Event& operator=(Event&& other) = delete;
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  cudaEvent_t get() const { return event_; }

 private:
  cudaEvent_t event_ = nullptr;
};

// RETURNS: "1.5 GiB"-style text for a byte count (error messages).
std::string format_bytes(std::size_t bytes);

}  // namespace kvbench::cuda
