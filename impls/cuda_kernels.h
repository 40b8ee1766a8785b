// Descriptors and host launchers of cuda_cached's kernels (defined in impls/cuda_cached.cu,
// kernels in impls/cuda_attention.cuh). Only CUDA builds include this header.
//
// Shapes use these names: n = query rows in the launch ("items": one token of one sequence),
// L = layers, H = query heads, H_kv = KV heads, G = H / H_kv, d = head_dim,
// cap = capacity (tokens per sequence slot), S = split size, P = max splits.
//
// A sequence slot is one device allocation holding K then V:
//   K: [L, H_kv, cap, d]   V: [L, H_kv, cap, d]   (V starts v_offset elements after K)
#pragma once

#include <cstddef>
#include <cstdint>

#include <cuda_runtime_api.h>

#include "harness/config.h"
#include "impls/cuda_plan.h"

namespace kvbench::cuda {

// One query row of a launch: a decode token, or one row of a prefill chunk.
struct AttentionItem {
  const void* slot = nullptr;  // the sequence's slot (K at element 0, V at v_offset)
  int kv_len = 0;              // keys this row attends: positions [0, kv_len), >= 1
  int position = 0;            // where this row's own k/v are written: kv_len - 1
};

// Fields every kernel needs about the cache layout.
struct CacheLayout {
  DType dtype = DType::f32;
  int layers = 0;              // L
  int heads = 0;               // H
  int kv_heads = 0;            // H_kv
  int head_dim = 0;            // d
  int capacity = 0;            // cap
  std::int64_t v_offset = 0;   // elements from K to V in a slot: L * H_kv * cap * d
};

// Writes each item's new k and v rows (fp32, from the projection) into its slot at
// `position`, converted to the storage dtype.
struct AppendLaunch {
  CacheLayout cache;
  int layer = 0;
  const AttentionItem* items = nullptr;  // device, [n]
  const float* qkv = nullptr;            // device, [n, qkv_stride]: q [H*d], k [H_kv*d], v [H_kv*d]
  int qkv_stride = 0;                    // H*d + 2*H_kv*d
  int num_items = 0;                     // n
};

// Split-KV attention: block (split, kv_head x group block, item) reads keys
// [split * S, min((split + 1) * S, kv_len)) of one KV head once for up to 8 of its query heads
// and writes their partial states; the row's last block to finish merges them into `out`
// (a row of one split writes `out` directly).
struct AttentionLaunch {
  CacheLayout cache;
  int layer = 0;
  const AttentionItem* items = nullptr;  // device, [n]
  const float* qkv = nullptr;            // device, [n, qkv_stride]; q of head h at column h*d
  int qkv_stride = 0;
  int num_items = 0;                     // n
  int split_size = 0;                    // S
  int max_splits = 0;                    // P (the grid's x)
  float* partial_o = nullptr;            // device, [n, H, P, d]  unnormalized sum of 2^(s-m) v
  float* partial_m = nullptr;            // device, [n, H, P]     max score (log2 units)
  float* partial_l = nullptr;            // device, [n, H, P]     sum of 2^(s-m)
  int* arrivals = nullptr;               // device, [n, H_kv * group blocks], zero between launches
  float* out = nullptr;                  // device, [n, H*d]      the attention output
  float q_scale = 0;                     // log2(e) / sqrt(d)
  AttentionShape shape;                  // plan_attention_shape(d, element size, G)
};

// Each launcher enqueues its kernel(s) on `stream` and RETURNS cudaGetLastError() (a launch
// error; errors while running surface at the next synchronizing call).
cudaError_t launch_append(const AppendLaunch& launch, cudaStream_t stream);
cudaError_t launch_attention(const AttentionLaunch& launch, cudaStream_t stream);

// Writes to *blocks how many blocks of the attention kernel for (dtype, shape) one
// multiprocessor holds at once (registers, shared memory), for split planning.
cudaError_t attention_blocks_per_sm(DType dtype, const AttentionShape& shape, int* blocks);

// RETURNS: cudaFuncGetAttributes of one attention kernel: cudaErrorNoKernelImageForDevice when
// this binary holds no code the current device can run.
cudaError_t probe_kernel_image();

// Device streaming kernels for cuda_timing.h: sums `count` float4s of `data` into
// block_sums[blocks] (so the reads cannot be optimized away).
cudaError_t launch_read_reduction(const void* data, std::size_t count_float4, float* block_sums,
                                  int blocks, cudaStream_t stream);

}  // namespace kvbench::cuda
