// cuda_cached: the K/V cache and decode attention on the GPU (design: impls/CUDA.md).
// This header has no CUDA types; it exists in CUDA builds only (KVBENCH_HAVE_CUDA).
//
// The registry's "cuda_cached" is make_cuda_cached(weights, options) with default tuning.
// Tests and benchmarks may build instances with other tuning, and probe an instance's last
// launch, attention time and poisoned slots through the functions below.
#pragma once

#include <cstdint>
#include <memory>

#include "harness/kv_cache.h"

namespace kvbench {

struct CudaCachedTuning {
  // Keys per split of the split-KV attention; 0 = planned per launch (cuda::plan_splits).
  int split_size = 0;
  // Prompt rows projected and attended per prefill pass (bounds the scratch memory).
  int prefill_chunk = 256;
};

// REQUIRES: a CUDA device (else throws Error with cuda::unavailable_reason()); head_dim <=
// 256; weights non-null. Throws Error, naming the size and the device's free memory, when the
// device cannot hold the weights or one sequence slot.
std::unique_ptr<KvCache> make_cuda_cached(std::shared_ptr<const ModelWeights> weights,
                                          const ImplOptions& options,
                                          const CudaCachedTuning& tuning = {});

// How a step launches its attention (all layers launch alike).
struct CudaAttentionLaunchInfo {
  int items = 0;            // query rows (sequences in the step)
  int max_kv_len = 0;       // keys of the longest row
  int split_size = 0;       // S
  int max_splits = 0;       // ceil(max_kv_len / S)
  int blocks_per_sm = 0;    // attention blocks a multiprocessor holds at once (occupancy)
  int sm_count = 0;         // multiprocessors of the device
  int lanes = 0;            // threads per key row
  int rows = 0;             // key rows in flight per block
  int group_per_block = 0;  // query heads per block
  int group_blocks = 0;     // reads of each KV head per step and layer
  bool vectorized = false;  // 16-byte loads
};

// The probes below throw Error when `cache` is not a cuda_cached instance.

// RETURNS: the launch of the most recent decode() (all zero before the first).
CudaAttentionLaunchInfo cuda_cached_last_launch(const KvCache& cache);

// RETURNS: the launch a decode step of `items` rows whose longest row attends max_kv_len keys
// would get (tests pick lengths around the planned split size with it).
CudaAttentionLaunchInfo cuda_cached_plan(const KvCache& cache, int items, int max_kv_len);

// RETURNS: GPU milliseconds, from CUDA events on the cache's stream, of the most recent
// decode()'s attention: the split-KV attention kernel (merge included) of every layer
// (projections, the K/V append and host transfers excluded). Its K/V reads are that step's kv_bytes_read.
// Throws Error before the first decode().
double cuda_cached_last_attention_ms(const KvCache& cache);

// RETURNS: how many elements of sequence `id`'s slot past its length (K and V, every layer
// and KV head) are not NaN: 0 whenever options().poison_unused holds and the cache is right.
// Copies the whole slot to the host (tests only).
std::uint64_t cuda_cached_unused_not_nan(const KvCache& cache, SeqId id);

}  // namespace kvbench
