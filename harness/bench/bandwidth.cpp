#include "harness/bench/bandwidth.h"

#include <algorithm>
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

// Eight streams, each a contiguous eighth of the buffer, read in lockstep: one sequential
// stream leaves this machine's single-core bandwidth ~20% short (measured: AMD EPYC, 64 MiB,
// 28 GB/s with one stream against 34 GB/s with eight), and a decode step reads K and V of
// several heads at once, i.e. several streams too. Clones for AVX-512 and AVX2 load whole
// 32-byte vectors where the CPU has them (picked at load time).
__attribute__((target_clones("avx512f", "avx2", "default")))
std::uint64_t sum_words(const std::uint64_t* data, std::size_t count) {
  typedef std::uint64_t v4 __attribute__((vector_size(32)));
  constexpr int kStreams = 8;
  const std::size_t part = count / kStreams;  // a multiple of 8 words (64 bytes)
  v4 acc[kStreams] = {};  // one register per stream (8 of 16 ymm): no spills
  for (std::size_t i = 0; i < part; i += 8) {
    for (int s = 0; s < kStreams; ++s) {
      v4 a, b;
      std::memcpy(&a, data + s * part + i, sizeof(a));
      std::memcpy(&b, data + s * part + i + 4, sizeof(b));
      acc[s] += a + b;
    }
  }
  std::uint64_t total = 0;
  for (int s = 0; s < kStreams; ++s) {
    for (int j = 0; j < 4; ++j) total += acc[s][j];
  }
  return total;
}

Bandwidth measure_bandwidth(std::size_t buffer_bytes, int passes) {
  require(buffer_bytes >= 4096, "bandwidth: buffer_bytes must be >= 4096, got ", buffer_bytes);
  require(passes >= 1, "bandwidth: passes must be >= 1, got ", passes);
  const std::size_t bytes = buffer_bytes / 512 * 512;  // 8 streams of whole 64-byte lines
  const std::size_t words = bytes / sizeof(std::uint64_t);
  Buffer src = allocate(bytes);
  Buffer dst = allocate(bytes);
  // Touch every page (and give the sum something to add) before timing anything.
  for (std::size_t i = 0; i < words; ++i) src[i] = i;
  std::memset(dst.get(), 0, bytes);

  Bandwidth result;
  result.buffer_bytes = bytes;
  result.passes = passes;
  // Read passes back to back, as a decode step rereads its K/V step after step: whatever
  // part of the buffer the caches keep between passes helps both alike. (Interleaving copy
  // passes would flush it and understate what a repeated read gets.) Then the copy passes.
  g_sink = g_sink + sum_words(src.get(), words);  // warm-up pass (TLB, page tables)
  double best_read = 1e300, best_copy = 1e300;
  for (int p = 0; p < passes; ++p) {
    const auto start = std::chrono::steady_clock::now();
    g_sink = g_sink + sum_words(src.get(), words);
    best_read = std::min(best_read, seconds_since(start));
  }
  for (int p = 0; p < passes; ++p) {
    const auto start = std::chrono::steady_clock::now();
    std::memcpy(dst.get(), src.get(), bytes);
    best_copy = std::min(best_copy, seconds_since(start));
    g_sink = g_sink + dst[(p * 4099u) % words];  // the copy must be observable too
  }
  result.read_bytes_per_second = static_cast<double>(bytes) / best_read;
  result.copy_bytes_per_second = 2.0 * static_cast<double>(bytes) / best_copy;
  return result;
}

}  // namespace kvbench::bench
