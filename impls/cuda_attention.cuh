// cuda_cached's kernels: append new K/V rows, split-KV decode attention (with its merge),
// and a streaming read for bandwidth measurement.
// Host launch code is in impls/cuda_cached.cu; descriptors in impls/cuda_kernels.h.
//
// Split-KV (as in flash-decoding): a row of kv_len keys is cut into splits of S keys; block
// (split, KV head x group block, item) reads its split's K and V rows of one KV head exactly
// once and computes, for up to 8 query heads of that KV head's GQA group, the partial softmax
// state (m, l, o) of impls/cuda_softmax.h. The last of a row's blocks to finish merges the
// splits' states (a second phase in the same kernel, so no second launch). So a single long
// sequence spreads over ceil(kv_len / S) x H_kv blocks.
//
// Inside a block, `lanes` threads read one key row together (16-byte loads when the row
// allows it), `rows` = 128 / lanes key rows are in flight at once, and each row group keeps
// its own running state over keys begin + row, begin + row + rows, ...; the row groups'
// states are merged through shared memory at the end of the block.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "impls/cuda_kernels.h"
#include "impls/cuda_softmax.h"

namespace kvbench::cuda {

// ---- storage element conversions -------------------------------------------------------------

template <typename T>
struct Storage;

template <>
struct Storage<float> {
  // Element e of VEC packed elements held in 32-bit words w.
  __device__ __forceinline__ static float get(const std::uint32_t* w, int e) {
    return __uint_as_float(w[e]);
  }
  __device__ __forceinline__ static float from_float(float x) { return x; }
};

template <>
struct Storage<__half> {
  __device__ __forceinline__ static float get(const std::uint32_t* w, int e) {
    const unsigned short bits = static_cast<unsigned short>((w[e >> 1] >> (16 * (e & 1))) & 0xFFFFu);
    return __half2float(__ushort_as_half(bits));
  }
  __device__ __forceinline__ static __half from_float(float x) { return __float2half_rn(x); }
};

template <>
struct Storage<__nv_bfloat16> {
  __device__ __forceinline__ static float get(const std::uint32_t* w, int e) {
    // A bfloat16 is the top half of a float: shift it into place, exactly.
    const std::uint32_t word = w[e >> 1];
    return __uint_as_float((e & 1) ? (word & 0xFFFF0000u) : (word << 16));
  }
  __device__ __forceinline__ static __nv_bfloat16 from_float(float x) {
    return __float2bfloat16_rn(x);
  }
};

// VEC consecutive storage elements, loaded in one 16-byte access when VEC * sizeof(T) == 16
// (the address must then be 16-byte aligned), else element by element (VEC == 1).
template <typename T, int VEC>
struct RawVec {
  static_assert(VEC * sizeof(T) == 16 || VEC == 1, "RawVec: 16-byte vectors or scalars");
  static constexpr int kWords = (VEC * static_cast<int>(sizeof(T)) + 3) / 4;
  std::uint32_t w[kWords];

  __device__ __forceinline__ void load(const T* p) {
    if constexpr (VEC * sizeof(T) == 16) {
      const uint4 r = __ldg(reinterpret_cast<const uint4*>(p));
      w[0] = r.x;
      w[1] = r.y;
      w[2] = r.z;
      w[3] = r.w;
    } else if constexpr (sizeof(T) == 4) {
      w[0] = __ldg(reinterpret_cast<const unsigned int*>(p));
    } else {
      w[0] = __ldg(reinterpret_cast<const unsigned short*>(p));
    }
  }
  __device__ __forceinline__ void zero() {
#pragma unroll
    for (int i = 0; i < kWords; ++i) w[i] = 0;
  }
  __device__ __forceinline__ float get(int e) const { return Storage<T>::get(w, e); }
};

// RETURNS: the sum of x over the `lanes` consecutive lanes (aligned group, lanes a power of
// 2 <= 32) that share one key row, in every one of them.
// REQUIRES: all 32 lanes of the warp call it together.
__device__ __forceinline__ float lane_group_sum(float x, int lanes) {
  for (int offset = lanes >> 1; offset > 0; offset >>= 1) {
    x += __shfl_xor_sync(0xFFFFFFFFu, x, offset);
  }
  return x;
}

// ---- append ----------------------------------------------------------------------------------

// grid.x = items, block = any multiple of 32. Writes item i's k and v rows (H_kv x d floats
// each, from its projection row) at `position` of its slot, converted to T.
template <typename T>
__global__ void append_kv_kernel(AppendLaunch p) {
  const CacheLayout& c = p.cache;
  const AttentionItem it = p.items[blockIdx.x];
  if (it.position < 0 || it.position >= c.capacity) return;  // the host checked; stay in the slot
  const int width = c.kv_heads * c.head_dim;
  const float* k_src = p.qkv + static_cast<std::int64_t>(blockIdx.x) * p.qkv_stride +
                       static_cast<std::int64_t>(c.heads) * c.head_dim;
  const float* v_src = k_src + width;
  T* slot = static_cast<T*>(const_cast<void*>(it.slot));
  for (int col = threadIdx.x; col < width; col += blockDim.x) {
    const int head = col / c.head_dim;
    const int e = col - head * c.head_dim;
    // [L, H_kv, cap, d]: element (layer, head, position, e)
    const std::int64_t at =
        ((static_cast<std::int64_t>(p.layer) * c.kv_heads + head) * c.capacity + it.position) *
            c.head_dim + e;
    slot[at] = Storage<T>::from_float(k_src[col]);
    slot[at + c.v_offset] = Storage<T>::from_float(v_src[col]);
  }
}

// ---- split attention (phase 1) -----------------------------------------------------------------

// Keys each row group takes per loop iteration: more loads in flight where registers allow.
template <int GB>
struct KeysPerIteration {
  static constexpr int value = GB == 1 ? 4 : (GB == 4 ? 2 : 1);
};

// grid = (max_splits, H_kv * group_blocks, items in this launch), block = kAttentionThreads,
// dynamic shared memory = shape.shared_bytes. T: storage type; VEC, CHUNKS: see AttentionShape;
// GB: query heads per block. `lanes` = shape.lanes; items are item_base + blockIdx.z.
template <typename T, int VEC, int CHUNKS, int GB>
__global__ void __launch_bounds__(kAttentionThreads)
    split_attention_kernel(AttentionLaunch p, int lanes, int item_base) {
  constexpr int U = KeysPerIteration<GB>::value;
  constexpr int CV = CHUNKS * VEC;  // elements of a key row one lane holds
  const CacheLayout& c = p.cache;
  const int d = c.head_dim;
  const int group = c.heads / c.kv_heads;
  const int group_blocks = (group + GB - 1) / GB;
  const int split = blockIdx.x;
  const int kv_head = blockIdx.y / group_blocks;
  const int g0 = (blockIdx.y - kv_head * group_blocks) * GB;  // first query head (in group)
  const int gcount = min(GB, group - g0);
  const int item = item_base + blockIdx.z;
  const AttentionItem it = p.items[item];

  int begin = 0;
  int end = 0;
  // The whole block leaves together (before any barrier) when its split is past this row.
  if (!split_range(split, p.split_size, it.kv_len, begin, end)) return;

  const int tx = threadIdx.x & (lanes - 1);
  const int row = threadIdx.x / lanes;
  const int rows = blockDim.x / lanes;
  const int vectors = d / VEC;  // VEC divides d (plan_attention_shape)

  // This lane's query elements, prescaled to log2 units: [GB][CV].
  float q[GB][CV];
  const float* q_row = p.qkv + static_cast<std::int64_t>(item) * p.qkv_stride +
                       static_cast<std::int64_t>(kv_head * group + g0) * d;
#pragma unroll
  for (int g = 0; g < GB; ++g) {
#pragma unroll
    for (int i = 0; i < CHUNKS; ++i) {
      const int vi = tx + i * lanes;
#pragma unroll
      for (int e = 0; e < VEC; ++e) {
        q[g][i * VEC + e] =
            (g < gcount && vi < vectors) ? q_row[g * d + vi * VEC + e] * p.q_scale : 0.0f;
      }
    }
  }

  // [L, H_kv, cap, d]: this (layer, KV head)'s rows, K and V.
  const T* k_head = static_cast<const T*>(it.slot) +
                    (static_cast<std::int64_t>(p.layer) * c.kv_heads + kv_head) *
                        static_cast<std::int64_t>(c.capacity) * d;
  const T* v_head = k_head + c.v_offset;

  float m[GB];
  float l[GB];
  float o[GB][CV];
#pragma unroll
  for (int g = 0; g < GB; ++g) {
    m[g] = -INFINITY;
    l[g] = 0.0f;
#pragma unroll
    for (int x = 0; x < CV; ++x) o[g][x] = 0.0f;
  }

  // Every thread runs the same iterations (the bounds are per block), so the shuffles in
  // lane_group_sum always see full warps; keys past `end` are masked by `valid`.
  for (int base = begin; base < end; base += rows * U) {
    RawVec<T, VEC> kr[U][CHUNKS];
    RawVec<T, VEC> vr[U][CHUNKS];
    bool valid[U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int j = base + u * rows + row;  // key position
      valid[u] = j < end;
#pragma unroll
      for (int i = 0; i < CHUNKS; ++i) {
        const int vi = tx + i * lanes;
        if (valid[u] && vi < vectors) {
          const std::int64_t at = static_cast<std::int64_t>(j) * d + vi * VEC;
          kr[u][i].load(k_head + at);
          vr[u][i].load(v_head + at);
        } else {
          kr[u][i].zero();
          vr[u][i].zero();
        }
      }
    }

    float s[GB][U];  // scores, log2 units
#pragma unroll
    for (int u = 0; u < U; ++u) {
      float kf[CV];
#pragma unroll
      for (int i = 0; i < CHUNKS; ++i) {
#pragma unroll
        for (int e = 0; e < VEC; ++e) kf[i * VEC + e] = kr[u][i].get(e);
      }
#pragma unroll
      for (int g = 0; g < GB; ++g) {
        float partial = 0.0f;
        if (g < gcount) {  // uniform over the block
#pragma unroll
          for (int x = 0; x < CV; ++x) partial = fmaf(q[g][x], kf[x], partial);
          partial = lane_group_sum(partial, lanes);
        }
        s[g][u] = partial;
      }
    }

    float pw[GB][U];
#pragma unroll
    for (int g = 0; g < GB; ++g) {
      const float correction = online_fold<U>(m[g], l[g], s[g], valid, pw[g]);
#pragma unroll
      for (int x = 0; x < CV; ++x) o[g][x] *= correction;
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      float vf[CV];
#pragma unroll
      for (int i = 0; i < CHUNKS; ++i) {
#pragma unroll
        for (int e = 0; e < VEC; ++e) vf[i * VEC + e] = vr[u][i].get(e);
      }
#pragma unroll
      for (int g = 0; g < GB; ++g) {
#pragma unroll
        for (int x = 0; x < CV; ++x) o[g][x] = fmaf(pw[g][u], vf[x], o[g][x]);
      }
    }
  }

  // In-block merge of the row groups' states. Shared memory:
  //   sm_m, sm_l: [rows, GB]   sm_o: [rows, GB, d]
  extern __shared__ float smem[];
  float* sm_m = smem;
  float* sm_l = sm_m + rows * GB;
  float* sm_o = sm_l + rows * GB;
  if (tx == 0) {
#pragma unroll
    for (int g = 0; g < GB; ++g) {
      sm_m[row * GB + g] = m[g];
      sm_l[row * GB + g] = l[g];
    }
  }
#pragma unroll
  for (int g = 0; g < GB; ++g) {
#pragma unroll
    for (int i = 0; i < CHUNKS; ++i) {
      const int vi = tx + i * lanes;
      if (vi < vectors) {
#pragma unroll
        for (int e = 0; e < VEC; ++e) sm_o[(row * GB + g) * d + vi * VEC + e] = o[g][i * VEC + e];
      }
    }
  }
  __syncthreads();

  const int first_head = kv_head * group + g0;
  const int splits = (it.kv_len - 1) / p.split_size + 1;  // >= 1: this block's split exists
  // out: [n, H * d]; row `item`, head first_head + g at column (first_head + g) * d.
  float* out = p.out + static_cast<std::int64_t>(item) * c.heads * d +
               static_cast<std::int64_t>(first_head) * d;
  if (splits == 1) {  // the whole row: normalize and write the output directly
    for (int idx = threadIdx.x; idx < gcount * d; idx += blockDim.x) {
      const int g = idx / d;
      const int x = idx - g * d;
      out[idx] = normalized_output(
          merge_partials(rows, sm_m + g, sm_l + g, GB, sm_o + g * d + x, GB * d));
    }
    return;
  }
  for (int idx = threadIdx.x; idx < gcount * d; idx += blockDim.x) {
    const int g = idx / d;
    const int x = idx - g * d;
    const MergedElement merged =
        merge_partials(rows, sm_m + g, sm_l + g, GB, sm_o + g * d + x, GB * d);
    // [n, H, P] and [n, H, P, d]
    const std::int64_t state =
        (static_cast<std::int64_t>(item) * c.heads + first_head + g) * p.max_splits + split;
    p.partial_o[state * d + x] = merged.o;
    if (x == 0) {
      p.partial_m[state] = merged.m;
      p.partial_l[state] = merged.l;
    }
  }

  // Phase 2, fused (the last-block pattern of the CUDA Programming Guide's __threadfence()
  // example): the last of this row's `splits` blocks for this (KV head, group block) to
  // finish merges every split's state. Its partial states are made visible device-wide
  // before the block is counted; the counter is reset for the next launch by the block that
  // sees every split arrived, so no other block touches it again in this launch.
  __threadfence();
  __syncthreads();
  __shared__ bool is_last;
  if (threadIdx.x == 0) {
    int* arrivals = p.arrivals + static_cast<std::int64_t>(item) * gridDim.y + blockIdx.y;
    is_last = atomicAdd(arrivals, 1) == splits - 1;
    if (is_last) *arrivals = 0;
  }
  __syncthreads();
  if (!is_last) return;
  __threadfence();
  for (int idx = threadIdx.x; idx < gcount * d; idx += blockDim.x) {
    const int g = idx / d;
    const int x = idx - g * d;
    const std::int64_t state0 =
        (static_cast<std::int64_t>(item) * c.heads + first_head + g) * p.max_splits;
    // volatile: other blocks wrote these in this launch; read them from L2, not L1.
    const volatile float* m = p.partial_m + state0;
    const volatile float* l = p.partial_l + state0;
    const volatile float* o = p.partial_o + state0 * d + x;
    out[idx] = normalized_output(merge_partials(splits, m, l, 1, o, d));
  }
}

// ---- streaming read (bandwidth measurement) ----------------------------------------------------

// grid-stride sum of `count` float4s; block_sums[blockIdx.x] = the block's sum, so no read
// can be optimized away. Four independent loads per iteration keep enough bytes in flight.
__global__ void read_reduction_kernel(const float4* __restrict__ data, std::size_t count,
                                      float* __restrict__ block_sums) {
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  float acc = 0.0f;
  for (; i + 3 * stride < count; i += 4 * stride) {
    const float4 a = __ldg(data + i);
    const float4 b = __ldg(data + i + stride);
    const float4 c = __ldg(data + i + 2 * stride);
    const float4 e = __ldg(data + i + 3 * stride);
    acc += (a.x + a.y + a.z + a.w) + (b.x + b.y + b.z + b.w) + (c.x + c.y + c.z + c.w) +
           (e.x + e.y + e.z + e.w);
  }
  for (; i < count; i += stride) {
    const float4 a = __ldg(data + i);
    acc += a.x + a.y + a.z + a.w;
  }
  acc = lane_group_sum(acc, 32);
  __shared__ float warp_sums[32];
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  if (lane == 0) warp_sums[warp] = acc;
  __syncthreads();
  if (threadIdx.x == 0) {
    float total = 0.0f;
    for (int w = 0; w < static_cast<int>(blockDim.x >> 5); ++w) total += warp_sums[w];
    block_sums[blockIdx.x] = total;
  }
}

}  // namespace kvbench::cuda
