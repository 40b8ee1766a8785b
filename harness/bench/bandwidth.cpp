#include "harness/bench/bandwidth.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "harness/aligned_buffer.h"
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
// several heads at once, i.e. several streams too. The reference's kernel of that shape
// (two 32-byte vectors per stream and iteration), below.
std::uint64_t sum_words(const std::uint64_t* data, std::size_t count) {
  return sum_words_variant(data, count, 8, 2);
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

// ---- the read-only reference --------------------------------------------------------------

namespace kvbench::bench {

namespace {

typedef std::uint64_t v4 __attribute__((vector_size(32)));

template <int Streams, int Vectors>
__attribute__((always_inline)) inline std::uint64_t sum_streams(const std::uint64_t* data,
                                                                std::size_t count) {
  constexpr std::size_t kStep = 4 * Vectors;  // words per stream and iteration
  const std::size_t part = count / Streams / kStep * kStep;
  v4 acc[Streams] = {};
  for (std::size_t i = 0; i < part; i += kStep) {
    for (int s = 0; s < Streams; ++s) {
      for (int v = 0; v < Vectors; ++v) {
        v4 a;
        std::memcpy(&a, data + s * part + i + 4 * v, sizeof(a));
        acc[s] += a;
      }
    }
  }
  std::uint64_t total = 0;
  for (int s = 0; s < Streams; ++s) {
    for (int j = 0; j < 4; ++j) total += acc[s][j];
  }
  for (std::size_t i = part * Streams; i < count; ++i) total += data[i];
  return total;
}

}  // namespace

const std::vector<std::pair<int, int>>& read_variants() {
  static const std::vector<std::pair<int, int>> variants = {
      {1, 2}, {1, 4}, {4, 2}, {4, 4}, {8, 1}, {8, 2}, {16, 1}, {16, 2}};
  return variants;
}

std::string ReadVariant::name() const {
  return std::to_string(streams) + (streams == 1 ? " stream x " : " streams x ") +
         std::to_string(vectors) + (vectors == 1 ? " vector" : " vectors");
}

// One clone per instruction set (picked at load time); the always-inline kernels are
// compiled into each.
__attribute__((target_clones("avx512f", "avx2", "default")))
std::uint64_t sum_words_variant(const std::uint64_t* data, std::size_t count, int streams,
                                int vectors) {
  switch (streams * 100 + vectors) {
    case 102: return sum_streams<1, 2>(data, count);
    case 104: return sum_streams<1, 4>(data, count);
    case 402: return sum_streams<4, 2>(data, count);
    case 404: return sum_streams<4, 4>(data, count);
    case 801: return sum_streams<8, 1>(data, count);
    case 802: return sum_streams<8, 2>(data, count);
    case 1601: return sum_streams<16, 1>(data, count);
    case 1602: return sum_streams<16, 2>(data, count);
    default: break;
  }
  fail("bandwidth: no read kernel with ", streams, " streams x ", vectors, " vectors");
}

namespace {

// Runs `work(thread)` on `threads` threads at once, `passes` times; the threads are started
// once and wait on a condition variable between passes. RETURNS: per pass, the seconds from
// the first thread's start to the last thread's end (wake-up latency not included; a late
// thread lengthens the pass, so the figure errs slow).
template <typename Work>
std::vector<double> timed_passes(int threads, int passes, const Work& work) {
  std::vector<double> seconds;
  if (threads == 1) {
    for (int p = 0; p < passes; ++p) {
      const auto start = std::chrono::steady_clock::now();
      work(0);
      seconds.push_back(seconds_since(start));
    }
    return seconds;
  }
  using Clock = std::chrono::steady_clock;
  std::mutex mutex;
  std::condition_variable wake, done;
  int generation = 0, finished = 0;
  bool quit = false;
  std::vector<Clock::time_point> starts(threads), ends(threads);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      int seen = 0;
      for (;;) {
        {
          std::unique_lock<std::mutex> lock(mutex);
          wake.wait(lock, [&] { return quit || generation != seen; });
          if (quit) return;
          seen = generation;
        }
        starts[t] = Clock::now();
        work(t);
        ends[t] = Clock::now();
        std::lock_guard<std::mutex> lock(mutex);
        if (++finished == threads) done.notify_one();
      }
    });
  }
  for (int p = 0; p < passes; ++p) {
    std::unique_lock<std::mutex> lock(mutex);
    finished = 0;
    ++generation;
    wake.notify_all();
    done.wait(lock, [&] { return finished == threads; });
    const auto first = *std::min_element(starts.begin(), starts.end());
    const auto last = *std::max_element(ends.begin(), ends.end());
    seconds.push_back(std::chrono::duration<double>(last - first).count());
  }
  {
    std::lock_guard<std::mutex> lock(mutex);
    quit = true;
  }
  wake.notify_all();
  for (auto& th : pool) th.join();
  return seconds;
}

double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

}  // namespace

std::vector<ReadReference> measure_read_reference(std::size_t buffer_bytes,
                                                  const std::vector<int>& thread_counts,
                                                  int passes) {
  require(buffer_bytes >= (std::size_t{1} << 20),
          "bandwidth: the reference buffer must be >= 1 MiB, got ", buffer_bytes);
  require(passes >= 1, "bandwidth: passes must be >= 1, got ", passes);
  for (int n : thread_counts) require(n >= 1, "bandwidth: thread counts must be >= 1, got ", n);
  const std::size_t words = buffer_bytes / sizeof(std::uint64_t);
  AlignedBlock block = allocate_aligned(words * sizeof(std::uint64_t), "bandwidth reference");
  auto* data = reinterpret_cast<std::uint64_t*>(block.get());
  for (std::size_t i = 0; i < words; ++i) data[i] = i;  // faults every page in

  std::vector<ReadReference> out;
  for (int threads : thread_counts) {
    // Each thread's share: a whole number of 256-word (2 KiB) blocks, contiguous.
    const std::size_t share = words / threads / 256 * 256;
    ReadReference ref;
    ref.threads = threads;
    ref.buffer_bytes = share * threads * sizeof(std::uint64_t);
    ref.passes = passes;
    std::vector<std::uint64_t> sums(threads);
    for (const auto& [streams, vectors] : read_variants()) {
      auto work = [&, streams = streams, vectors = vectors](int t) {
        sums[t] = sum_words_variant(data + t * share, share, streams, vectors);
      };
      timed_passes(threads, 1, work);  // warm-up: TLB, page tables, the kernel's first run
      const std::vector<double> seconds = timed_passes(threads, passes, work);
      for (std::uint64_t s : sums) g_sink = g_sink + s;
      ReadVariant v;
      v.streams = streams;
      v.vectors = vectors;
      const double bytes = static_cast<double>(ref.buffer_bytes);
      v.best_bytes_per_second = bytes / *std::min_element(seconds.begin(), seconds.end());
      v.median_bytes_per_second = bytes / median_of(seconds);
      ref.variants.push_back(v);
      if (v.best_bytes_per_second > ref.best_bytes_per_second) {
        ref.best_bytes_per_second = v.best_bytes_per_second;
        ref.median_bytes_per_second = v.median_bytes_per_second;
        ref.best_variant = v.name();
      }
    }
    out.push_back(ref);
  }
  return out;
}

}  // namespace kvbench::bench
