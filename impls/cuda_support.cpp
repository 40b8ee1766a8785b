#include "impls/cuda_support.h"

#include <dlfcn.h>

#include <cstdio>
#include <cstring>
#include <mutex>
#include <sstream>
#include <utility>

#include "harness/error.h"
#include "impls/cuda_kernels.h"

#ifndef KVBENCH_CUDA_ARCHITECTURES
#define KVBENCH_CUDA_ARCHITECTURES "unknown"
#endif

namespace kvbench::cuda {

namespace {

// "…/impls/cuda_cached.cpp" -> "cuda_cached.cpp": messages stay short and machine-neutral.
const char* base_name(const char* path) {
  const char* slash = std::strrchr(path, '/');
  return slash ? slash + 1 : path;
}

// cudart reports a driver it cannot load as "driver version is insufficient"; say plainly
// when there is no driver library at all.
bool driver_library_loads() {
  void* driver = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (driver == nullptr) return false;
  dlclose(driver);
  return true;
}

std::string compute_unavailable_reason() {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    cudaGetLastError();
    if (err == cudaErrorInsufficientDriver && !driver_library_loads()) {
      return "no CUDA device (no NVIDIA driver)";  // libcuda.so.1 does not load
    }
    return std::string("no CUDA device (cudaGetDeviceCount: ") + cudaGetErrorString(err) + ")";
  }
  if (count == 0) return "no CUDA device";
  const cudaError_t image = probe_kernel_image();
  if (image != cudaSuccess) {
    cudaGetLastError();
    int device = 0;
    cudaDeviceProp prop{};
    if (cudaGetDevice(&device) != cudaSuccess ||
        cudaGetDeviceProperties(&prop, device) != cudaSuccess) {
      cudaGetLastError();
      return std::string("CUDA device unusable: ") + cudaGetErrorString(image);
    }
    std::ostringstream out;
    out << "no kernel image for " << prop.name << " (compute capability " << prop.major << "."
        << prop.minor << "; built for CUDA architectures " << KVBENCH_CUDA_ARCHITECTURES
        << "): " << cudaGetErrorString(image);
    return out.str();
  }
  return "";
}

}  // namespace

void check_cuda(cudaError_t err, const char* call, const char* file, int line) {
  if (err == cudaSuccess) return;
  cudaGetLastError();
  fail("CUDA call `", call, "` failed at ", base_name(file), ":", line, ": ",
       cudaGetErrorString(err), " (", cudaGetErrorName(err), ")");
}

void check_cublas(cublasStatus_t status, const char* call, const char* file, int line) {
  if (status == CUBLAS_STATUS_SUCCESS) return;
  fail("cuBLAS call `", call, "` failed at ", base_name(file), ":", line, ": ",
       cublasGetStatusString(status), " (status ", static_cast<int>(status), ")");
}

std::string device_unavailable_reason() {
  static std::once_flag once;
  static std::string reason;
  std::call_once(once, [] { reason = compute_unavailable_reason(); });
  return reason;
}

int current_sm_count() {
  int device = 0;
  KVBENCH_CUDA_CHECK(cudaGetDevice(&device));
  int count = 0;
  KVBENCH_CUDA_CHECK(cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device));
  return count;
}

std::string format_bytes(std::size_t bytes) {
  char text[64];
  const double b = static_cast<double>(bytes);
  if (b >= 1024.0 * 1024.0 * 1024.0) {
    std::snprintf(text, sizeof text, "%.2f GiB", b / (1024.0 * 1024.0 * 1024.0));
  } else if (b >= 1024.0 * 1024.0) {
    std::snprintf(text, sizeof text, "%.2f MiB", b / (1024.0 * 1024.0));
  } else {
    std::snprintf(text, sizeof text, "%zu bytes", bytes);
  }
  return text;
}

DeviceBuffer::DeviceBuffer(std::size_t bytes, const std::string& what) : bytes_(bytes) {
  if (bytes == 0) return;
  const cudaError_t err = cudaMalloc(&ptr_, bytes);
  if (err == cudaSuccess) return;
  ptr_ = nullptr;
  cudaGetLastError();  // out of memory is not sticky: clear it
  std::size_t free_bytes = 0;
  std::size_t total_bytes = 0;
  std::ostringstream device;
  if (cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess) {
    device << "; the device has " << format_bytes(free_bytes) << " free of "
           << format_bytes(total_bytes);
  } else {
    cudaGetLastError();
  }
  fail("cannot allocate ", format_bytes(bytes), " (", bytes, " bytes) on the GPU for ", what,
       ": cudaMalloc failed: ", cudaGetErrorString(err), " (", cudaGetErrorName(err), ")",
       device.str());
}

DeviceBuffer::~DeviceBuffer() {
  if (ptr_) cudaFree(ptr_);  // errors here cannot be reported (destructor); nothing leaks
}

DeviceBuffer::DeviceBuffer(DeviceBuffer&& other) noexcept
    : ptr_(std::exchange(other.ptr_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
  if (this != &other) {
    if (ptr_) cudaFree(ptr_);
    ptr_ = std::exchange(other.ptr_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

Stream::Stream() { KVBENCH_CUDA_CHECK(cudaStreamCreate(&stream_)); }
Stream::~Stream() {
  if (stream_) cudaStreamDestroy(stream_);
}

Event::Event() { KVBENCH_CUDA_CHECK(cudaEventCreate(&event_)); }
Event::~Event() {
  if (event_) cudaEventDestroy(event_);
}
Event::Event(Event&& other) noexcept : event_(std::exchange(other.event_, nullptr)) {}

}  // namespace kvbench::cuda
