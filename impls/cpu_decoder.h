// The step both host caches run (cpu_cached: contiguous head-major rows; paged: block
// tables): the packed weights, the step's buffers, the projections, the attention plan
// (blocks of prefill rows, split-KV chunks of decode rows for threads, their merges) and
// its execution on the worker pool. A step of N new rows runs every layer:
//   1. q, k, v = W x for all N rows (each weight row read once per block of 4 rows);
//   2. k, v are written to the cache at each row's position (KvStore::write);
//   3. attention per (query rows, KV head), streaming that head's K and V rows once for the
//      whole GQA group (KvStore::address says where they are), online softmax in fp32;
//   4. x += W_o o (residual), which is the next layer's input.
// What a cache does differently, where a sequence's K/V rows live, is its KvStore.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "harness/aligned_buffer.h"
#include "harness/config.h"
#include "harness/kv_cache.h"
#include "harness/weights.h"
#include "impls/cpu_attention.h"
#include "impls/cpu_thread_pool.h"

namespace kvbench::cpu {

// Where a cache keeps its sequences' K/V rows. `seq` is the cache's own sequence object,
// as the cache staged it with Decoder::set_row.
class KvStore {
 public:
  virtual ~KvStore() = default;
  // Stores position `pos` of `seq` for `layer`: k and v are [H_kv, d] (head g at g * d).
  virtual void write(const void* seq, int layer, int pos, const float* k, const float* v) = 0;
  // Points `item` (its g set) at the K and V rows of (seq, layer, item.g): k and v for
  // Kernel::contiguous, blocks and their offsets for Kernel::blocks.
  virtual void address(const void* seq, int layer, AttnItem& item) const = 0;
};

class Decoder {
 public:
  enum class Kernel { contiguous, blocks };  // attend or attend_blocks (cpu_attention.h)

  // REQUIRES: config.dtype fp32 (else Error naming `cache`: both caches store fp32 only).
  // `cache` names the cache in errors.
  Decoder(const ModelConfig& config, const ModelWeights& weights, int threads, Kernel kernel,
          const char* cache);

  // Stages a step of n rows: makes room, then x() holds their inputs [n, d_model] and
  // set_row(i, ...) says row i is position pos of seq. run() leaves the outputs in x().
  void reserve(int n);
  float* x() { return x_.data(); }
  void set_row(int i, const void* seq, int pos) {
    rows_[static_cast<std::size_t>(i)] = seq;
    pos_[static_cast<std::size_t>(i)] = pos;
  }
  // Runs all layers over the n staged rows; adds its work to `counters`.
  void run(int n, KvStore& store, Stats& counters);

 private:
  using AlignedFloats = std::unique_ptr<float[], FreeDeleter>;
  // One layer's weights, repacked at construction into huge-page-backed blocks (the
  // weights are the biggest stream of a decode step for wide models).
  struct LayerPack {
    AlignedFloats wqkv;  // [H*d + 2*H_kv*d, d_model]: W_q, W_k, W_v stacked
    AlignedFloats wo;    // [d_model, H*d]
  };
  // Rows [r0, r1) of a weight matrix: one projection work item.
  struct RowBlock {
    int r0, r1;
  };

  void write_kv(int layer, int n, KvStore& store);
  void plan_attention(int layer, int n, const KvStore& store);
  // Most keys per chunk when decode rows are split across threads (0: no split).
  int split_target(int n) const;
  // Whether applying weights of `bytes` to n rows is worth handing to the pool.
  static bool worth_threads(std::uint64_t bytes, int n) {
    return bytes * static_cast<std::uint64_t>((n + 3) / 4) >= kMinParallelBytes;
  }
  // A phase that streams less than this (~10 us at 25 GB/s) runs on the calling thread:
  // splitting it would save less than the hand-off costs.
  static constexpr std::uint64_t kMinParallelBytes = 256 * 1024;
  // Splits a matrix [rows, cols] into blocks of rows small enough to stay in L2 while
  // each block is applied to every row of a step.
  static std::vector<RowBlock> row_blocks(int rows, int cols, int threads);

  const ModelConfig config_;
  const Kernel kernel_;
  AttnShape shape_;
  WorkerPool pool_;
  std::uint64_t qkv_work_ = 0;        // bytes of [W_q; W_k; W_v] of one layer
  std::uint64_t out_work_ = 0;        // bytes of W_o of one layer
  std::uint64_t attention_work_ = 0;  // bytes of K/V this layer's attention reads
  int prefill_block_;  // rows of one sequence that share a pass over its K/V in a prefill

  // Work lists that depend on the weights only, per layer.
  std::vector<LayerPack> packed_;       // [L]
  std::vector<RowBlock> qkv_blocks_;    // of LayerPack::wqkv
  std::vector<RowBlock> out_blocks_;    // of LayerPack::wo

  // Step scratch, grown to the largest step seen.
  int rows_reserved_ = 0;
  std::vector<float> x_;                // [N, d_model] residual stream
  std::vector<float> qkv_;              // [N, H*d + 2*H_kv*d]
  std::vector<float> o_;                // [N, H*d] attention outputs
  std::vector<const void*> rows_;       // [N] each row's sequence
  std::vector<int> pos_;                // [N]
  std::vector<AttnItem> items_;         // this layer's attention work
  std::vector<AttnMerge> merges_;       // split decode rows to combine
  std::vector<float> partials_;         // [slots, G * (d + 2)] split-KV partial states
  std::vector<AttnScratch> scratch_;    // [threads]
};

}  // namespace kvbench::cpu
