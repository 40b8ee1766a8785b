// Single-thread memory bandwidth, measured in the process that runs the benchmarks so that a
// report can state an implementation's K/V bytes read per second as a fraction of what this
// machine streams right now (shared machines drift; a figure from another run would not do).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

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
//           passes >= 1. Choose buffer_bytes well above the last-level cache (8x) so that
//           passes stream from memory rather than from cache.
// RETURNS: the best pass of each kind, after one untimed pass that faults the pages in.
Bandwidth measure_bandwidth(std::size_t buffer_bytes, int passes);

// The read pass's kernel: the wrapping sum of `count` 64-bit words, read as 8 concurrent
// streams (contiguous eighths) into vector accumulators: sum_words_variant(data, count, 8, 2).
// REQUIRES: count is a multiple of 64.
std::uint64_t sum_words(const std::uint64_t* data, std::size_t count);

// ---- the read-only reference: the limit a K/V read rate is set against -----------------
//
// A rate measured above its limit means the limit was measured wrong, so the reference is
// measured the way the K/V is held and read, and as the best of several kernels:
//   - the buffer comes from allocate_aligned (harness/aligned_buffer.h), the allocator of
//     cpu_cached's K/V: 2 MiB-aligned, MADV_HUGEPAGE-advised, written once before timing;
//   - with the thread count the implementation is timed with, each thread summing its own
//     contiguous share (as split-KV threads each stream their own rows);
//   - over a buffer of at least 8x the last-level cache (so that passes stream from DRAM);
//   - each of kReadVariants (stream counts x vectors per stream and iteration), `passes`
//     passes each; the best variant's best pass is the reference, its median pass beside it.
// Bytes counted: every byte of the buffer once per pass, all threads together.

struct ReadVariant {
  int streams = 0;                   // concurrent contiguous streams per thread
  int vectors = 0;                   // 32-byte vectors loaded per stream and iteration
  double best_bytes_per_second = 0;  // its best pass
  double median_bytes_per_second = 0;
  std::string name() const;          // "8 streams x 2 vectors"
};

struct ReadReference {
  int threads = 1;
  std::size_t buffer_bytes = 0;      // bytes summed per pass (all threads)
  int passes = 0;                    // timed passes per variant
  double best_bytes_per_second = 0;  // best pass of the best variant
  double median_bytes_per_second = 0;  // median pass of that variant
  std::string best_variant;
  std::vector<ReadVariant> variants;
};

// The (streams, vectors) pairs measured.
const std::vector<std::pair<int, int>>& read_variants();

// REQUIRES: buffer_bytes >= 1 MiB; every thread count >= 1; passes >= 1.
// RETURNS: one reference per thread count, in the order given, all over one buffer.
std::vector<ReadReference> measure_read_reference(std::size_t buffer_bytes,
                                                  const std::vector<int>& thread_counts,
                                                  int passes);

// The read kernel of one variant: the wrapping sum of `count` words as `streams` contiguous
// parts read in lockstep, `vectors` 32-byte vectors per part and iteration.
// REQUIRES: (streams, vectors) in read_variants(); count a multiple of 256.
std::uint64_t sum_words_variant(const std::uint64_t* data, std::size_t count, int streams,
                                int vectors);

}  // namespace kvbench::bench
