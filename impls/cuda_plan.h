// Host-side planning for cuda_cached: how the split-KV decode attention is launched, and the
// fp16/bf16 conversions the host uses to read the device cache back.
//
// Plain C++ with no CUDA types, compiled in every build (with or without nvcc), so that the
// planning rules are unit-tested on machines without a GPU (tests/impls/test_cuda_plan.cpp).
// The kernels in impls/cuda_attention.cuh are launched exactly as these functions say.
#pragma once

#include <cstddef>
#include <cstdint>

namespace kvbench::cuda {

// ---- storage conversions (host mirrors of __float2half_rn / __float2bfloat16_rn) ----------

// RETURNS: the IEEE binary16 bits nearest to `value` (round to nearest, ties to even;
// overflow to +-inf; NaN stays a quiet NaN with its sign).
std::uint16_t float_to_half_bits(float value);
// RETURNS: the float equal to binary16 `bits` (exact: every half is a float).
float half_bits_to_float(std::uint16_t bits);
// RETURNS: the bfloat16 bits nearest to `value` (round to nearest, ties to even; NaN quiet).
std::uint16_t float_to_bf16_bits(float value);
// RETURNS: the float equal to bfloat16 `bits` (exact).
float bf16_bits_to_float(std::uint16_t bits);

// ---- the attention kernel's shape ----------------------------------------------------------

// Threads per block of the split attention kernel.
constexpr int kAttentionThreads = 128;
// Largest head_dim the kernel supports (32 lanes x 8 elements per lane).
constexpr int kMaxHeadDim = 256;

// How one block of the split attention kernel covers a key row and a GQA group.
// A block holds `rows` key rows at once; each row is read by `lanes` threads, each of which
// loads `chunks` vectors of `vec` consecutive elements (lane t covers vectors t, t + lanes,
// ...). Query heads of one KV head are handled `group_per_block` at a time, so a KV head is
// read `group_blocks` times per step (once whenever the group has <= 8 heads).
struct AttentionShape {
  int vec = 1;              // elements per load: 16 bytes / element size when vectorized, else 1
  int chunks = 1;           // loads per lane per key row: 1 (vectorized) or 8 (scalar)
  int lanes = 1;            // threads per key row: a power of 2, <= 32
  int rows = 1;             // key rows in flight per block: kAttentionThreads / lanes
  int group_per_block = 1;  // query heads per block (a template argument): 1, 4 or 8
  int group_blocks = 1;     // ceil(group / group_per_block)
  bool vectorized = false;  // 16-byte loads (head_dim % vec == 0 and head_dim / vec <= 32)
  std::size_t shared_bytes = 0;  // dynamic shared memory of one block
};

// REQUIRES: 1 <= head_dim <= kMaxHeadDim; element_bytes in {2, 4}; group >= 1.
// RETURNS: the launch shape for that head size, storage element size and GQA group size.
// Throws kvbench::Error naming the bad argument otherwise.
AttentionShape plan_attention_shape(int head_dim, int element_bytes, int group);

// ---- split-KV planning -----------------------------------------------------------------------

// Split sizes are whole multiples of this many keys (unless forced), so that a block's key
// loop runs whole iterations on every split but the last.
constexpr int kSplitGranule = 64;
// Smallest planned split: below it a block's fixed costs (loading q, the in-block merge, the
// partial state it writes) outweigh the keys it reads.
constexpr int kMinSplit = 256;

struct SplitPlan {
  int split_size = 0;  // keys per split: split s covers keys [s * split_size, (s + 1) * split_size)
  int max_splits = 0;  // splits of the longest row: ceil(max_len / split_size) (the grid's x)
};

// Plans the split-KV grid for one wave: the GPU holds sm_count x blocks_per_sm attention
// blocks at once (the "slots"); work_rows rows (items x KV heads x group blocks) each need
// their splits. Splitting each row into floor(slots / work_rows) equal parts fills the
// slots without a second, partial wave: all blocks start together and, being the same size,
// end together (a second wave of a few blocks would run at a fraction of the bandwidth).
// REQUIRES: max_len >= 1 (the longest row's keys); work_rows >= 1; sm_count >= 1;
// blocks_per_sm >= 1; forced_split >= 0 (0 = plan it).
// RETURNS: forced_split when > 0. Otherwise max_len shared evenly among
// max(1, floor(sm_count x blocks_per_sm / work_rows)) splits, rounded up to a multiple of
// kSplitGranule and raised to at least kMinSplit; so work_rows x max_splits never exceeds
// the slots when work_rows alone does not. Throws kvbench::Error on a bad argument.
SplitPlan plan_splits(int max_len, std::int64_t work_rows, int sm_count, int blocks_per_sm,
                      int forced_split = 0);

// RETURNS: the splits of a row of kv_len keys: ceil(kv_len / split_size) (0 for kv_len 0).
int splits_for(int kv_len, int split_size);

}  // namespace kvbench::cuda
