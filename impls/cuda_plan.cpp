#include "impls/cuda_plan.h"

#include <algorithm>
#include <cstring>

#include "harness/error.h"

namespace kvbench::cuda {

namespace {

std::uint32_t float_bits(float value) {
  std::uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  return bits;
}

float bits_float(std::uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

// Shifts `mantissa` right by `shift` bits (1..31), rounding to nearest, ties to even.
std::uint32_t shift_round_even(std::uint32_t mantissa, int shift) {
  const std::uint32_t kept = mantissa >> shift;
  const std::uint32_t rest = mantissa & ((1u << shift) - 1u);
  const std::uint32_t half = 1u << (shift - 1);
  return kept + ((rest > half || (rest == half && (kept & 1u))) ? 1u : 0u);
}

int next_pow2(int n) {
  int p = 1;
  while (p < n) p *= 2;
  return p;
}

}  // namespace

std::uint16_t float_to_half_bits(float value) {
  const std::uint32_t x = float_bits(value);
  const std::uint16_t sign = static_cast<std::uint16_t>((x >> 16) & 0x8000u);
  const std::uint32_t ax = x & 0x7FFFFFFFu;
  if (ax > 0x7F800000u) return sign | 0x7E00u;  // NaN -> quiet NaN
  // 65520 = 0x477FF000 is halfway between the largest half (65504) and 2^16; ties go to the
  // even neighbour, 2^16, which overflows: everything from there up is infinity.
  if (ax >= 0x477FF000u) return sign | 0x7C00u;
  const int exponent = static_cast<int>(ax >> 23) - 127;
  if (exponent < -14) {
    // Subnormal half: value = q * 2^-24 with q = m * 2^(exponent - 23 + 24), m the float's
    // 24-bit significand. A carry out of the subnormal range yields 0x400, the smallest normal.
    const int shift = -(exponent + 1);  // >= 14
    if (shift > 24) return sign;        // below 2^-25: rounds to zero
    const std::uint32_t m = (ax & 0x7FFFFFu) | 0x800000u;
    return static_cast<std::uint16_t>(sign | shift_round_even(m, shift));
  }
  // Normal: rebias the exponent, keep 10 mantissa bits, round the dropped 13. A carry into the
  // exponent is the correct next binade (at most 0x7BFF here: overflow was handled above).
  const std::uint32_t h = (static_cast<std::uint32_t>(exponent + 15) << 10) | ((ax >> 13) & 0x3FFu);
  const std::uint32_t rest = ax & 0x1FFFu;
  const std::uint32_t rounded = h + ((rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ? 1u : 0u);
  return static_cast<std::uint16_t>(sign | rounded);
}

float half_bits_to_float(std::uint16_t bits) {
  const std::uint32_t sign = static_cast<std::uint32_t>(bits & 0x8000u) << 16;
  const std::uint32_t exponent = (bits >> 10) & 0x1Fu;
  const std::uint32_t mantissa = bits & 0x3FFu;
  if (exponent == 0x1F) return bits_float(sign | 0x7F800000u | (mantissa << 13));
  if (exponent == 0) {
    // Zero or subnormal: mantissa * 2^-24, exact in float.
    const float magnitude = static_cast<float>(mantissa) * (1.0f / 16777216.0f);
    return sign ? -magnitude : magnitude;
  }
  return bits_float(sign | ((exponent + 112u) << 23) | (mantissa << 13));  // 112 = 127 - 15
}

std::uint16_t float_to_bf16_bits(float value) {
  const std::uint32_t x = float_bits(value);
  if ((x & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<std::uint16_t>((x >> 16) | 0x40u);
  // Round to nearest even on the 16 dropped bits; a carry may round up to infinity, as it must.
  const std::uint32_t rounded = x + 0x7FFFu + ((x >> 16) & 1u);
  return static_cast<std::uint16_t>(rounded >> 16);
}

float bf16_bits_to_float(std::uint16_t bits) {
  return bits_float(static_cast<std::uint32_t>(bits) << 16);
}

AttentionShape plan_attention_shape(int head_dim, int element_bytes, int group) {
  require(head_dim >= 1 && head_dim <= kMaxHeadDim, "cuda attention: head_dim must be in 1..",
          kMaxHeadDim, ", got ", head_dim);
  require(element_bytes == 2 || element_bytes == 4,
          "cuda attention: element_bytes must be 2 or 4, got ", element_bytes);
  require(group >= 1, "cuda attention: group must be >= 1, got ", group);
  AttentionShape s;
  const int vec16 = 16 / element_bytes;
  s.vectorized = head_dim % vec16 == 0 && head_dim / vec16 <= 32;
  s.vec = s.vectorized ? vec16 : 1;
  s.chunks = s.vectorized ? 1 : 8;
  const int vectors = head_dim / s.vec;  // per key row
  s.lanes = next_pow2((vectors + s.chunks - 1) / s.chunks);
  if (s.lanes > 32) s.lanes = 32;  // cannot happen: head_dim <= 256 = 32 x 8
  s.rows = kAttentionThreads / s.lanes;
  s.group_per_block = group == 1 ? 1 : (group <= 4 ? 4 : 8);
  s.group_blocks = (group + s.group_per_block - 1) / s.group_per_block;
  // Per row and query head: m, l and the head_dim partial output (floats), for the in-block
  // merge. rows * head_dim <= kAttentionThreads * 8, so this stays <= 40 KiB (< the 48 KiB a
  // block gets without opting in).
  s.shared_bytes = static_cast<std::size_t>(s.rows) * static_cast<std::size_t>(s.group_per_block) *
                   static_cast<std::size_t>(head_dim + 2) * sizeof(float);
  return s;
}

SplitPlan plan_splits(int max_len, std::int64_t work_rows, int sm_count, int blocks_per_sm,
                      int forced_split) {
  require(max_len >= 1, "plan_splits: max_len must be >= 1, got ", max_len);
  require(work_rows >= 1, "plan_splits: work_rows must be >= 1, got ", work_rows);
  require(sm_count >= 1, "plan_splits: sm_count must be >= 1, got ", sm_count);
  require(blocks_per_sm >= 1, "plan_splits: blocks_per_sm must be >= 1, got ", blocks_per_sm);
  require(forced_split >= 0, "plan_splits: forced_split must be >= 0 (0 = plan), got ",
          forced_split);
  SplitPlan plan;
  if (forced_split > 0) {
    plan.split_size = forced_split;
  } else {
    const std::int64_t slots = static_cast<std::int64_t>(sm_count) * blocks_per_sm;
    const std::int64_t splits = std::max<std::int64_t>(1, slots / work_rows);
    std::int64_t size = (max_len + splits - 1) / splits;
    size = (size + kSplitGranule - 1) / kSplitGranule * kSplitGranule;
    if (size < kMinSplit) size = kMinSplit;
    plan.split_size = static_cast<int>(size);  // <= round_up(max_len) or kMinSplit: fits int
  }
  plan.max_splits = splits_for(max_len, plan.split_size);
  return plan;
}

int splits_for(int kv_len, int split_size) {
  require(split_size >= 1, "splits_for: split_size must be >= 1, got ", split_size);
  require(kv_len >= 0, "splits_for: kv_len must be >= 0, got ", kv_len);
  return static_cast<int>((static_cast<std::int64_t>(kv_len) + split_size - 1) / split_size);
}

}  // namespace kvbench::cuda
