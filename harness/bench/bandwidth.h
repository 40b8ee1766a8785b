// Single-thread memory bandwidth, measured in the process that runs the benchmarks so that a
// report can state an implementation's K/V bytes read per second as a fraction of what this
// machine streams right now (shared machines drift; a figure from another run would not do).
#pragma once

#include <cstddef>
#include <cstdint>

namespace kvbench::bench {

struct Bandwidth {
  // Read-only streaming: a vectorized sum over the buffer (8 concurrent streams, the widest
  // vectors the CPU has). Counts each byte read once.
  double read_bytes_per_second = 0;
  // Copy (memcpy from one buffer to another). Counts bytes read plus bytes written,
  // 2 x buffer_bytes per pass, as STREAM's Copy does (the write-allocate read that most
  // caches add is not counted).
  double copy_bytes_per_second = 0;
  std::size_t buffer_bytes = 0;  // each buffer (the copy uses two)
  int passes = 0;                // timed passes per kind; the best one is kept
};

// REQUIRES: buffer_bytes >= 4096 (a multiple of 512 is used: the rest is dropped);
//           passes >= 1. Choose buffer_bytes well above the last-level cache (4x) so that
//           passes stream from memory rather than from cache.
// RETURNS: the best pass of each kind, after one untimed pass that faults the pages in.
Bandwidth measure_bandwidth(std::size_t buffer_bytes, int passes);

// The read pass's kernel: the wrapping sum of `count` 64-bit words, read as 8 concurrent
// streams (contiguous eighths) into vector accumulators.
// REQUIRES: count is a multiple of 64.
std::uint64_t sum_words(const std::uint64_t* data, std::size_t count);

}  // namespace kvbench::bench
