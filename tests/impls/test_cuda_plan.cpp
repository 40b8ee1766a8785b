// CPU unit tests of cuda_cached's host-side logic, run in every build (no GPU, no nvcc needed):
// fp16/bf16 conversions, the attention kernel's launch shape, split planning, and the
// partial-softmax arithmetic of impls/cuda_softmax.h, which the kernels run verbatim.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "harness/error.h"
#include "harness/weights.h"
#include "impls/cuda_plan.h"
#include "impls/cuda_softmax.h"
#include "tests/impls/test_cuda_check.h"

#if KVBENCH_HAVE_CUDA
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#endif

namespace kvbench {
namespace {

using namespace cuda;

std::uint32_t bits_of(float f) {
  std::uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

float float_of(std::uint32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

bool half_is_nan(std::uint16_t h) { return (h & 0x7C00u) == 0x7C00u && (h & 0x3FFu) != 0; }
bool bf16_is_nan(std::uint16_t h) { return (h & 0x7F80u) == 0x7F80u && (h & 0x7Fu) != 0; }

// ---- fp16 ------------------------------------------------------------------------------------

TEST(CudaHalf, DecodesKnownValues) {
  EXPECT_EQ(half_bits_to_float(0x3C00), 1.0f);
  EXPECT_EQ(half_bits_to_float(0xC000), -2.0f);
  EXPECT_EQ(half_bits_to_float(0x7BFF), 65504.0f);            // largest finite
  EXPECT_EQ(half_bits_to_float(0x0400), std::ldexp(1.0f, -14));  // smallest normal
  EXPECT_EQ(half_bits_to_float(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(half_bits_to_float(0x3555), 0.333251953125f);
  EXPECT_EQ(half_bits_to_float(0x7C00), std::numeric_limits<float>::infinity());
  EXPECT_EQ(bits_of(half_bits_to_float(0x8000)), 0x80000000u);  // -0
  EXPECT_TRUE(std::isnan(half_bits_to_float(0x7E00)));
  EXPECT_TRUE(std::isnan(half_bits_to_float(0xFFFF)));  // the 0xFF poison byte pattern
}

TEST(CudaHalf, EveryHalfRoundTrips) {
  for (std::uint32_t h = 0; h <= 0xFFFFu; ++h) {
    const std::uint16_t bits = static_cast<std::uint16_t>(h);
    const float f = half_bits_to_float(bits);
    const std::uint16_t back = float_to_half_bits(f);
    if (half_is_nan(bits)) {
      EXPECT_TRUE(half_is_nan(back)) << std::hex << h;
      EXPECT_EQ(back & 0x8000u, bits & 0x8000u) << std::hex << h;
    } else {
      ASSERT_EQ(back, bits) << std::hex << h;
    }
  }
}

// Between two adjacent finite halves a < b (same sign), values round to the nearer one and the
// exact midpoint to the one with an even last bit. The midpoint of two halves needs 12
// significant bits, so it is exact in float; one float ulp either side decides the direction.
TEST(CudaHalf, RoundsToNearestEvenBetweenEveryPair) {
  for (std::uint32_t h = 0; h < 0x7BFFu; ++h) {
    for (std::uint32_t sign : {0u, 0x8000u}) {
      const std::uint16_t a = static_cast<std::uint16_t>(sign | h);
      const std::uint16_t b = static_cast<std::uint16_t>(sign | (h + 1));
      const float fa = half_bits_to_float(a);
      const float fb = half_bits_to_float(b);
      const float mid = (fa + fb) / 2;
      ASSERT_EQ(static_cast<double>(mid), (static_cast<double>(fa) + fb) / 2) << std::hex << h;
      const std::uint16_t even = (h & 1u) ? b : a;
      ASSERT_EQ(float_to_half_bits(mid), even) << std::hex << a;
      ASSERT_EQ(float_to_half_bits(std::nextafter(mid, fa)), a) << std::hex << a;
      ASSERT_EQ(float_to_half_bits(std::nextafter(mid, fb)), b) << std::hex << a;
    }
  }
}

TEST(CudaHalf, OverflowUnderflowAndNaN) {
  EXPECT_EQ(float_to_half_bits(65519.99f), 0x7BFFu);
  EXPECT_EQ(float_to_half_bits(65520.0f), 0x7C00u);  // the tie goes to the even 2^16 = inf
  EXPECT_EQ(float_to_half_bits(-1e10f), 0xFC00u);
  EXPECT_EQ(float_to_half_bits(std::numeric_limits<float>::infinity()), 0x7C00u);
  EXPECT_EQ(float_to_half_bits(std::ldexp(1.0f, -25)), 0x0000u);  // tie with 2^-24: even is 0
  EXPECT_EQ(float_to_half_bits(std::nextafter(std::ldexp(1.0f, -25), 1.0f)), 0x0001u);
  EXPECT_EQ(float_to_half_bits(-std::ldexp(1.0f, -30)), 0x8000u);
  EXPECT_EQ(float_to_half_bits(std::numeric_limits<float>::denorm_min()), 0x0000u);
  EXPECT_TRUE(half_is_nan(float_to_half_bits(std::nanf(""))));
  EXPECT_EQ(float_to_half_bits(-std::nanf("")) & 0x8000u, 0x8000u);
}

// ---- bf16 ------------------------------------------------------------------------------------

TEST(CudaBf16, EveryBf16RoundTrips) {
  for (std::uint32_t h = 0; h <= 0xFFFFu; ++h) {
    const std::uint16_t bits = static_cast<std::uint16_t>(h);
    const float f = bf16_bits_to_float(bits);
    EXPECT_EQ(bits_of(f), h << 16);
    const std::uint16_t back = float_to_bf16_bits(f);
    if (bf16_is_nan(bits)) {
      EXPECT_TRUE(bf16_is_nan(back)) << std::hex << h;
    } else {
      ASSERT_EQ(back, bits) << std::hex << h;
    }
  }
  EXPECT_TRUE(std::isnan(bf16_bits_to_float(0xFFFF)));  // the 0xFF poison byte pattern
}

TEST(CudaBf16, RoundsToNearestEvenBetweenEveryPair) {
  for (std::uint32_t h = 0; h < 0x7F7Fu; ++h) {
    for (std::uint32_t sign : {0u, 0x8000u}) {
      const std::uint32_t a = sign | h;
      const std::uint32_t b = sign | (h + 1);
      // The midpoint of two adjacent bf16 values is their bits with 0x8000 in the low half.
      const float mid = float_of((a << 16) | 0x8000u);
      const std::uint32_t even = (h & 1u) ? b : a;
      ASSERT_EQ(float_to_bf16_bits(mid), even) << std::hex << a;
      ASSERT_EQ(float_to_bf16_bits(float_of((a << 16) | 0x7FFFu)), a) << std::hex << a;
      ASSERT_EQ(float_to_bf16_bits(float_of((a << 16) | 0x8001u)), b) << std::hex << a;
    }
  }
  EXPECT_EQ(float_to_bf16_bits(float_of(0x7F7F8000u)), 0x7F80u);  // tie above the max: inf
  EXPECT_EQ(float_to_bf16_bits(float_of(0x7F7F7FFFu)), 0x7F7Fu);
}

#if KVBENCH_HAVE_CUDA
// An independent implementation: CUDA's own host-side conversions (cuda_fp16.h, cuda_bf16.h).
TEST(CudaConversions, AgreeWithCudaHeadersOnHost) {
  InputStream rng(99);
  for (int i = 0; i < 200000; ++i) {
    // Floats spread over all exponents, both signs, including subnormal-half range.
    const float f = float_of(static_cast<std::uint32_t>(rng.next_u64()) & 0xC7FFFFFFu);
    if (std::isnan(f)) continue;
    const __half h = __float2half_rn(f);
    std::uint16_t hb;
    std::memcpy(&hb, &h, 2);
    ASSERT_EQ(float_to_half_bits(f), hb) << f;
    const __nv_bfloat16 b = __float2bfloat16_rn(f);
    std::uint16_t bb;
    std::memcpy(&bb, &b, 2);
    ASSERT_EQ(float_to_bf16_bits(f), bb) << f;
  }
}
#endif

// ---- launch shape ----------------------------------------------------------------------------

TEST(CudaAttentionShape, CoversEveryHeadDimWithinLimits) {
  for (int element_bytes : {2, 4}) {
    for (int d = 1; d <= kMaxHeadDim; ++d) {
      for (int group = 1; group <= 40; ++group) {
        const AttentionShape s = plan_attention_shape(d, element_bytes, group);
        SCOPED_TRACE(testing::Message() << "d=" << d << " bytes=" << element_bytes
                                        << " group=" << group);
        ASSERT_TRUE(s.lanes >= 1 && s.lanes <= 32 && (s.lanes & (s.lanes - 1)) == 0);
        ASSERT_EQ(s.rows * s.lanes, kAttentionThreads);
        if (s.vectorized) {
          ASSERT_EQ(s.vec * element_bytes, 16);
          ASSERT_EQ(d % s.vec, 0);
          ASSERT_EQ(s.chunks, 1);
        } else {
          ASSERT_EQ(s.vec, 1);
          ASSERT_EQ(s.chunks, 8);
          ASSERT_FALSE(d % (16 / element_bytes) == 0 && d / (16 / element_bytes) <= 32);
        }
        // Every element of a row has a lane, and no power-of-2 half of the lanes would do.
        ASSERT_GE(s.lanes * s.chunks * s.vec, d);
        ASSERT_TRUE(s.lanes == 1 || (s.lanes / 2) * s.chunks * s.vec < d);
        ASSERT_TRUE(s.group_per_block == 1 || s.group_per_block == 4 || s.group_per_block == 8);
        ASSERT_GE(s.group_per_block * s.group_blocks, group);
        ASSERT_LT((s.group_blocks - 1) * s.group_per_block, group);
        if (group <= 8) {
          ASSERT_EQ(s.group_blocks, 1);  // a KV head is read once per step
        }
        ASSERT_EQ(s.shared_bytes, static_cast<std::size_t>(s.rows) * s.group_per_block *
                                      (d + 2) * sizeof(float));
        ASSERT_LE(s.shared_bytes, 48u * 1024u);  // no opt-in needed
      }
    }
  }
}

TEST(CudaAttentionShape, BenchmarkShapesUseVectorLoads) {
  const AttentionShape fp16_128 = plan_attention_shape(128, 2, 1);  // llama2-7b, fp16
  EXPECT_TRUE(fp16_128.vectorized);
  EXPECT_EQ(fp16_128.vec, 8);
  EXPECT_EQ(fp16_128.lanes, 16);
  EXPECT_EQ(fp16_128.rows, 8);
  EXPECT_EQ(fp16_128.group_per_block, 1);
  const AttentionShape fp32_128 = plan_attention_shape(128, 4, 4);  // llama3-8b group, fp32
  EXPECT_TRUE(fp32_128.vectorized);
  EXPECT_EQ(fp32_128.lanes, 32);
  EXPECT_EQ(fp32_128.group_per_block, 4);
  EXPECT_EQ(fp32_128.group_blocks, 1);
  const AttentionShape fp32_256 = plan_attention_shape(256, 4, 1);
  EXPECT_FALSE(fp32_256.vectorized);  // 64 vectors per row would need 64 lanes
  EXPECT_EQ(fp32_256.lanes, 32);
}

TEST(CudaAttentionShape, RejectsBadArguments) {
  EXPECT_THROW(plan_attention_shape(0, 4, 1), Error);
  EXPECT_THROW(plan_attention_shape(kMaxHeadDim + 1, 4, 1), Error);
  EXPECT_THROW(plan_attention_shape(64, 3, 1), Error);
  EXPECT_THROW(plan_attention_shape(64, 4, 0), Error);
}

// ---- split planning --------------------------------------------------------------------------

TEST(CudaSplitPlan, ForcedSplitIsUsedAsIs) {
  const SplitPlan p = plan_splits(1000, 4, 132, 7, 64);
  EXPECT_EQ(p.split_size, 64);
  EXPECT_EQ(p.max_splits, 16);  // ceil(1000 / 64)
  EXPECT_EQ(plan_splits(64, 1, 1, 1, 64).max_splits, 1);
  EXPECT_EQ(plan_splits(65, 1, 1, 1, 64).max_splits, 2);
  EXPECT_EQ(plan_splits(7, 1, 1, 1, 1).max_splits, 7);
}

TEST(CudaSplitPlan, PlannedSplitsFillOneWave) {
  for (int sm : {1, 8, 108, 132}) {
    for (int per_sm : {1, 4, 7, 16}) {
      for (std::int64_t rows : {1, 2, 8, 32, 64, 512, 4096}) {
        for (int max_len = 1; max_len <= 70000; max_len = max_len * 3 / 2 + 1) {
          const SplitPlan p = plan_splits(max_len, rows, sm, per_sm);
          SCOPED_TRACE(testing::Message() << "sm=" << sm << " per_sm=" << per_sm << " rows="
                                          << rows << " len=" << max_len);
          const std::int64_t slots = static_cast<std::int64_t>(sm) * per_sm;
          const std::int64_t wanted = std::max<std::int64_t>(1, slots / rows);
          ASSERT_EQ(p.split_size % kSplitGranule, 0);
          ASSERT_GE(p.split_size, kMinSplit);
          ASSERT_EQ(p.max_splits, (max_len + p.split_size - 1) / p.split_size);
          ASSERT_LE(p.max_splits, wanted);
          ASSERT_LE(rows * p.max_splits, std::max(slots, rows));  // never a partial second wave
          // The smallest such size: one granule less would need more splits than wanted.
          if (p.split_size > kMinSplit) {
            const int smaller = p.split_size - kSplitGranule;
            ASSERT_GT((max_len + smaller - 1) / smaller, wanted);
          }
        }
      }
    }
  }
}

TEST(CudaSplitPlan, BenchmarkShapes) {
  // llama2-7b (H_kv = 32, one group block) on 132 multiprocessors holding 7 blocks each.
  const SplitPlan batch1 = plan_splits(16384, 32, 132, 7);
  EXPECT_EQ(batch1.split_size, 640);  // 16384 / floor(924 / 32) = 586 -> 640
  EXPECT_EQ(batch1.max_splits, 26);   // 832 blocks in 924 slots
  const SplitPlan batch16 = plan_splits(16384, 16 * 32, 132, 7);
  EXPECT_EQ(batch16.max_splits, 1);  // 512 rows already fill 512 of 924 slots; 2 would overflow
  EXPECT_EQ(plan_splits(100, 1, 132, 7).max_splits, 1);  // short rows: one split of kMinSplit
  EXPECT_EQ(plan_splits(100, 1, 132, 7).split_size, kMinSplit);
}

TEST(CudaSplitPlan, SplitsForAndRanges) {
  EXPECT_EQ(splits_for(0, 64), 0);
  EXPECT_EQ(splits_for(1, 64), 1);
  EXPECT_EQ(splits_for(64, 64), 1);
  EXPECT_EQ(splits_for(65, 64), 2);
  int begin = -1;
  int end = -1;
  ASSERT_TRUE(split_range(1, 64, 129, begin, end));
  EXPECT_EQ(begin, 64);
  EXPECT_EQ(end, 128);
  ASSERT_TRUE(split_range(2, 64, 129, begin, end));
  EXPECT_EQ(begin, 128);
  EXPECT_EQ(end, 129);
  EXPECT_FALSE(split_range(2, 64, 128, begin, end));
  EXPECT_THROW(plan_splits(0, 1, 1, 1), Error);
  EXPECT_THROW(plan_splits(1, 0, 1, 1), Error);
  EXPECT_THROW(plan_splits(1, 1, 0, 1), Error);
  EXPECT_THROW(plan_splits(1, 1, 1, 0), Error);
  EXPECT_THROW(plan_splits(1, 1, 1, 1, -1), Error);
}

// ---- the kernel's softmax arithmetic, run on the host ----------------------------------------

// One query row and head through the kernel's decomposition, with the functions the kernel
// calls: splits of `split` keys; in each, `rows` row groups fold keys begin + r, begin + r +
// rows, ... `U` per iteration (online_fold); the block merges its row groups, the merge step
// merges the splits (merge_partials). q_scaled is q * log2(e) / sqrt(d) in fp32, as the kernel
// holds it. skip_key >= 0 drops that key (to show the check catches a boundary error).
template <int U>
std::vector<float> run_kernel_arithmetic(const std::vector<float>& q_scaled,
                                         const std::vector<float>& k, const std::vector<float>& v,
                                         int keys, int d, int split, int rows, int skip_key = -1) {
  const int splits = splits_for(keys, split);
  std::vector<float> pm(splits), pl(splits), po(static_cast<std::size_t>(splits) * d);
  for (int sp = 0; sp < splits; ++sp) {
    int begin = 0;
    int end = 0;
    EXPECT_TRUE(split_range(sp, split, keys, begin, end));
    std::vector<float> m(rows, -INFINITY), l(rows, 0.0f), o(static_cast<std::size_t>(rows) * d, 0.0f);
    for (int base = begin; base < end; base += rows * U) {
      for (int r = 0; r < rows; ++r) {
        float s[U];
        bool valid[U];
        float p[U];
        int key[U];
        for (int u = 0; u < U; ++u) {
          key[u] = base + u * rows + r;
          valid[u] = key[u] < end && key[u] != skip_key;
          float dot = 0.0f;
          for (int a = 0; valid[u] && a < d; ++a) dot = std::fmaf(q_scaled[a], k[key[u] * d + a], dot);
          s[u] = dot;
        }
        const float correction = online_fold<U>(m[r], l[r], s, valid, p);
        for (int x = 0; x < d; ++x) {
          float acc = o[r * d + x] * correction;
          for (int u = 0; u < U; ++u) {
            if (valid[u]) acc = std::fmaf(p[u], v[key[u] * d + x], acc);
          }
          o[r * d + x] = acc;
        }
      }
    }
    for (int x = 0; x < d; ++x) {
      const MergedElement merged = merge_partials(rows, m.data(), l.data(), 1, o.data() + x, d);
      po[static_cast<std::size_t>(sp) * d + x] = merged.o;
      if (x == 0) {
        pm[sp] = merged.m;
        pl[sp] = merged.l;
      }
    }
  }
  std::vector<float> out(d);
  for (int x = 0; x < d; ++x) {
    out[x] = normalized_output(merge_partials(splits, pm.data(), pl.data(), 1, po.data() + x, d));
  }
  return out;
}

struct ArithmeticCase {
  int keys;
  int split;
  int rows;
  float q_scale_up;  // larger = peakier softmax
};

// RETURNS: the largest (|got - exact| / bound) over the row: <= 1 passes.
template <int U>
double worst_ratio(const ArithmeticCase& tc, int d, std::uint64_t seed, int skip_key = -1) {
  InputStream rng(seed);
  std::vector<float> q = rng.rows(1, d, tc.q_scale_up);
  const std::vector<float> k = rng.rows(tc.keys, d, 1.0f);
  const std::vector<float> v = rng.rows(tc.keys, d, 1.0f);
  const float q_scale = static_cast<float>(1.4426950408889634 / std::sqrt(static_cast<double>(d)));
  std::vector<float> q_scaled(d);
  for (int a = 0; a < d; ++a) q_scaled[a] = q[a] * q_scale;
  const std::vector<float> got = run_kernel_arithmetic<U>(q_scaled, k, v, tc.keys, d, tc.split,
                                                          tc.rows, skip_key);
  std::vector<double> qd(q.begin(), q.end());
  const std::vector<double> q_err(d, 0.0);
  const cuda_testing::RowAttention want = cuda_testing::expected_row(
      qd.data(), q_err.data(), k.data(), v.data(), tc.keys, d,
      cuda_testing::summation_for(tc.keys, tc.split, tc.rows, U));
  double worst = 0.0;
  for (int x = 0; x < d; ++x) {
    const double err = std::fabs(static_cast<double>(got[x]) - want.o[x]);
    worst = std::isnan(err) ? INFINITY : std::max(worst, err / want.bound[x]);
  }
  return worst;
}

const std::vector<ArithmeticCase>& arithmetic_cases() {
  static const std::vector<ArithmeticCase> cases = {
      {1, 64, 8, 1.0f},     {2, 64, 8, 1.0f},     {63, 64, 8, 1.0f},   {64, 64, 8, 1.0f},
      {65, 64, 8, 1.0f},    {127, 64, 16, 2.0f},  {128, 64, 16, 2.0f}, {129, 64, 16, 2.0f},
      {255, 256, 4, 1.0f},  {256, 256, 4, 4.0f},  {257, 256, 4, 4.0f}, {1000, 256, 128, 1.0f},
      {3000, 1024, 8, 8.0f}, {5, 1, 1, 1.0f},
  };
  return cases;
}

TEST(CudaSoftmaxArithmetic, MatchesExactSoftmaxWithinTheDerivedBound) {
  for (const ArithmeticCase& tc : arithmetic_cases()) {
    SCOPED_TRACE(testing::Message() << "keys=" << tc.keys << " split=" << tc.split
                                    << " rows=" << tc.rows << " scale=" << tc.q_scale_up);
    EXPECT_LE(worst_ratio<1>(tc, 32, 11), 1.0);
    EXPECT_LE(worst_ratio<2>(tc, 64, 12), 1.0);
    EXPECT_LE(worst_ratio<4>(tc, 16, 13), 1.0);
  }
}

// The check is not vacuous: dropping the first key of a split (an off-by-one at a boundary)
// moves the output by about p_j |v_j - o|, far outside the bound.
TEST(CudaSoftmaxArithmetic, DroppingABoundaryKeyBreaksTheBound) {
  for (int keys : {65, 129, 300}) {
    const ArithmeticCase tc{keys, 64, 8, 1.0f};
    EXPECT_LE(worst_ratio<4>(tc, 32, 5), 1.0);
    EXPECT_GT(worst_ratio<4>(tc, 32, 5, /*skip_key=*/64), 10.0) << "keys=" << keys;
  }
}

TEST(CudaSoftmaxArithmetic, EmptyStatesWeighNothing) {
  const float m[] = {-INFINITY, 1.5f, -INFINITY, 0.25f};
  const float l[] = {0.0f, 2.0f, 0.0f, 3.0f};
  const float o[] = {0.0f, 4.0f, 0.0f, -1.0f};
  const MergedElement all = merge_partials(4, m, l, 1, o, 1);
  const float m2[] = {1.5f, 0.25f};
  const float l2[] = {2.0f, 3.0f};
  const float o2[] = {4.0f, -1.0f};
  const MergedElement two = merge_partials(2, m2, l2, 1, o2, 1);
  EXPECT_EQ(all.m, two.m);
  EXPECT_EQ(all.l, two.l);
  EXPECT_EQ(all.o, two.o);
  // 2.0 * 1 + 3.0 * 2^(0.25 - 1.5), and the same weights on o.
  EXPECT_FLOAT_EQ(two.l, 2.0f + 3.0f * std::exp2(-1.25f));
  EXPECT_FLOAT_EQ(two.o, 4.0f - std::exp2(-1.25f));
  const float none_m[] = {-INFINITY, -INFINITY};
  const float zeros[] = {0.0f, 0.0f};
  const MergedElement none = merge_partials(2, none_m, zeros, 1, zeros, 1);
  EXPECT_EQ(none.m, -INFINITY);
  EXPECT_EQ(normalized_output(none), 0.0f);
  EXPECT_EQ(normalized_output(merge_partials(0, m, l, 1, o, 1)), 0.0f);
}

// A poisoned key that is read must reach the output: fmaxf skips NaN in the max, but the
// weight 2^(NaN - m) is NaN and so are l and every merge above it.
TEST(CudaSoftmaxArithmetic, NaNScoresPropagate) {
  float m = -INFINITY;
  float l = 0.0f;
  const float s[2] = {std::nanf(""), 1.0f};
  const bool valid[2] = {true, true};
  float p[2];
  online_fold<2>(m, l, s, valid, p);
  EXPECT_TRUE(std::isnan(l));
  const float first_only[1] = {std::nanf("")};
  const bool one[1] = {true};
  float p1[1];
  float m1 = -INFINITY;
  float l1 = 0.0f;
  online_fold<1>(m1, l1, first_only, one, p1);  // the only key of the split is NaN
  EXPECT_TRUE(std::isnan(l1));
  const float ms[] = {m1, 0.5f};
  const float ls[] = {l1, 1.0f};
  const float os[] = {0.0f, 1.0f};
  EXPECT_TRUE(std::isnan(normalized_output(merge_partials(2, ms, ls, 1, os, 1))));
  // Slots marked invalid are never looked at, NaN or not.
  float m3 = -INFINITY;
  float l3 = 0.0f;
  const bool invalid_first[2] = {false, true};
  online_fold<2>(m3, l3, s, invalid_first, p);
  EXPECT_EQ(l3, 1.0f);
  EXPECT_EQ(p[0], 0.0f);
}

TEST(CudaSoftmaxArithmetic, FoldingOrderAndGroupingAgree) {
  // Fold 12 scores one at a time and four at a time: same state up to rounding.
  InputStream rng(3);
  std::vector<float> scores = rng.rows(1, 12, 6.0f);
  float m1 = -INFINITY, l1 = 0.0f, m4 = -INFINITY, l4 = 0.0f;
  for (float x : scores) {
    const float s[1] = {x};
    const bool valid[1] = {true};
    float p[1];
    online_fold<1>(m1, l1, s, valid, p);
  }
  for (int i = 0; i < 12; i += 4) {
    const float s[4] = {scores[i], scores[i + 1], scores[i + 2], scores[i + 3]};
    const bool valid[4] = {true, true, true, true};
    float p[4];
    online_fold<4>(m4, l4, s, valid, p);
  }
  double exact = 0.0;
  const float m_true = *std::max_element(scores.begin(), scores.end());
  for (float x : scores) exact += std::exp2(static_cast<double>(x) - m_true);
  EXPECT_EQ(m1, m_true);
  EXPECT_EQ(m4, m_true);
  // 12 terms, <= 12 rescales each within 2^-22 + u: far below 1e-5 relative.
  EXPECT_NEAR(l1, exact, 1e-5 * exact);
  EXPECT_NEAR(l4, exact, 1e-5 * exact);
}

}  // namespace
}  // namespace kvbench
