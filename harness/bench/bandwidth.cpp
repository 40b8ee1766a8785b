#include "harness/bench/bandwidth.h"

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "harness/error.h"

namespace kvbench::bench {

namespace {

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};
using Buffer = std::unique_ptr<std::uint64_t[], FreeDeleter>;

Buffer allocate(std::size_t bytes) {
  void* p = std::aligned_alloc(64, bytes);
  require(p != nullptr, "bandwidth: cannot allocate a buffer of ", bytes, " bytes");
  return Buffer(static_cast<std::uint64_t*>(p));
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Keeps the sums observable so the read passes cannot be optimized away.
volatile std::uint64_t g_sink = 0;

}  // namespace

std::uint64_t sum_words(const std::uint64_t* data, std::size_t count) {
  std::uint64_t lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (std::size_t i = 0; i < count; i += 8) {
    for (int j = 0; j < 8; ++j) lane[j] += data[i + j];
  }
  std::uint64_t total = 0;
  for (std::uint64_t x : lane) total += x;
  return total;
}

Bandwidth measure_bandwidth(std::size_t buffer_bytes, int passes) {
  require(buffer_bytes >= 4096, "bandwidth: buffer_bytes must be >= 4096, got ", buffer_bytes);
  require(passes >= 1, "bandwidth: passes must be >= 1, got ", passes);
  const std::size_t bytes = buffer_bytes / 64 * 64;
  const std::size_t words = bytes / sizeof(std::uint64_t);
  Buffer src = allocate(bytes);
  Buffer dst = allocate(bytes);
  // Touch every page (and give the sum something to add) before timing anything.
  for (std::size_t i = 0; i < words; ++i) src[i] = i;
  std::memset(dst.get(), 0, bytes);

  Bandwidth result;
  result.buffer_bytes = bytes;
  result.passes = passes;
  g_sink = g_sink + sum_words(src.get(), words);  // warm-up pass (TLB, page tables)
  double best_read = 1e300, best_copy = 1e300;
  for (int p = 0; p < passes; ++p) {
    auto start = std::chrono::steady_clock::now();
    g_sink = g_sink + sum_words(src.get(), words);
    const double read_s = seconds_since(start);
    if (read_s < best_read) best_read = read_s;

    start = std::chrono::steady_clock::now();
    std::memcpy(dst.get(), src.get(), bytes);
    const double copy_s = seconds_since(start);
    if (copy_s < best_copy) best_copy = copy_s;
    g_sink = g_sink + dst[(p * 4099u) % words];  // the copy must be observable too
  }
  result.read_bytes_per_second = static_cast<double>(bytes) / best_read;
  result.copy_bytes_per_second = 2.0 * static_cast<double>(bytes) / best_copy;
  return result;
}

}  // namespace kvbench::bench
