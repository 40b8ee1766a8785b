// Tests of cuda_cached. Every test that needs a GPU starts with SKIP_WITHOUT_GPU(), so on a
// machine without one it is reported SKIPPED with the reason (never passed). The first group
// runs everywhere the CUDA build exists: registration, the unavailable reason, error text.
//
// GPU checks are one-layer models, checked in two independent parts (tests/impls/
// test_cuda_check.h derives the bounds):
//  A. the stored K/V rows (read_kv) are the exact projections W_k x, W_v x (double, here) up
//     to fp32 projection rounding plus the storage rounding of the dtype (2^-11 relative for
//     fp16, 2^-8 for bf16, none for fp32);
//  B. every output row is x + W_o attention(q, stored K, stored V), computed here in double
//     with q = W_q x exact, up to the fp32 rounding along the kernel's own summation tree.
// Together they bound the output against exact math; B alone is tight enough (~1e-6
// relative) to catch one missing or extra key at a split boundary.
// The property suite (properties/) runs cuda_cached through the registry on random models.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "harness/error.h"
#include "harness/reference.h"
#include "harness/registry.h"
#include "impls/cuda_cached.h"
#include "impls/cuda_plan.h"
#include "impls/cuda_support.h"
#include "impls/cuda_timing.h"
#include "properties/tolerance.h"
#include "properties/workload.h"
#include "tests/impls/test_cuda_check.h"

namespace kvbench {
namespace {

using cuda_testing::gamma;
using cuda_testing::kU;

#define SKIP_WITHOUT_GPU()                                                     \
  do {                                                                         \
    const std::string why_no_gpu = cuda::unavailable_reason();                 \
    if (!why_no_gpu.empty()) GTEST_SKIP() << "cuda_cached: " << why_no_gpu;    \
  } while (0)

ModelConfig shape(int d_model, int heads, int kv_heads, int head_dim, int capacity, DType dtype) {
  return ModelConfig::make(1, d_model, heads, kv_heads, head_dim, capacity, dtype, 5);
}

// ---- without a GPU too -----------------------------------------------------------------------

TEST(CudaCachedRegistry, RegisteredForTheCudaDeviceAndThreeDtypes) {
  const ImplInfo* info = Registry::global().find("cuda_cached");
  ASSERT_NE(info, nullptr);
  EXPECT_EQ(info->device, "cuda");
  EXPECT_TRUE(info->caps.holds_kv_cache);
  EXPECT_TRUE(info->caps.fork);
  EXPECT_TRUE(info->caps.truncate);
  EXPECT_TRUE(info->caps.supports(DType::f32));
  EXPECT_TRUE(info->caps.supports(DType::f16));
  EXPECT_TRUE(info->caps.supports(DType::bf16));
  EXPECT_EQ(info->why_unavailable(), cuda::unavailable_reason());
}

// Without a device, the registry says why and construction fails with that reason (the
// property suite and `kvbench list` show it); with one, both are silent.
TEST(CudaCachedRegistry, UnavailableReasonIsGivenAndHonoured) {
  const std::string why = cuda::unavailable_reason();
  const ModelConfig c = shape(32, 2, 2, 16, 64, DType::f32);
  if (why.empty()) {
    EXPECT_NO_THROW(make_cache("cuda_cached", c));
    return;
  }
  EXPECT_TRUE(why.rfind("no CUDA device", 0) == 0 || why.rfind("no kernel image", 0) == 0 ||
              why.rfind("CUDA device unusable", 0) == 0)
      << why;
  try {
    make_cache("cuda_cached", c);
    ADD_FAILURE() << "constructed without a device";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
  }
}

TEST(CudaCachedErrors, CudaAndCublasErrorsNameTheCallAndTheMessage) {
  try {
    cuda::check_cuda(cudaErrorMemoryAllocation, "cudaMalloc(&p, 64)", "/src/impls/x.cpp", 12);
    ADD_FAILURE() << "no throw";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("cudaMalloc(&p, 64)"), std::string::npos) << m;
    EXPECT_NE(m.find("x.cpp:12"), std::string::npos) << m;
    EXPECT_NE(m.find(cudaGetErrorString(cudaErrorMemoryAllocation)), std::string::npos) << m;
    EXPECT_NE(m.find("cudaErrorMemoryAllocation"), std::string::npos) << m;
  }
  try {
    cuda::check_cublas(CUBLAS_STATUS_NOT_INITIALIZED, "cublasSgemm(...)", "y.cpp", 3);
    ADD_FAILURE() << "no throw";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("cublasSgemm(...)"), std::string::npos) << m;
    EXPECT_NE(m.find(cublasGetStatusString(CUBLAS_STATUS_NOT_INITIALIZED)), std::string::npos) << m;
  }
  EXPECT_NO_THROW(cuda::check_cuda(cudaSuccess, "ok", "z.cpp", 1));
}

TEST(CudaCachedProbes, RejectOtherImplementations) {
  auto cpu = make_cache("cpu_cached", shape(32, 2, 2, 16, 64, DType::f32));
  EXPECT_THROW(cuda_cached_last_launch(*cpu), Error);
  EXPECT_THROW(cuda_cached_plan(*cpu, 1, 1), Error);
  EXPECT_THROW(cuda_cached_last_attention_ms(*cpu), Error);
  EXPECT_THROW(cuda_cached_unused_not_nan(*cpu, 0), Error);
}

// ---- the CPU oracle (one layer) ----------------------------------------------------------------

// RETURNS: y = W x in double for the rows [row0, row0 + rows) of W ([*, cols]); err gets the
// fp32 GEMM bound gamma(cols) * sum |W x| per element.
void project(const std::vector<float>& w, int row0, int rows, int cols, const float* x,
             std::vector<double>& y, std::vector<double>& err) {
  y.assign(static_cast<std::size_t>(rows), 0.0);
  err.assign(static_cast<std::size_t>(rows), 0.0);
  for (int r = 0; r < rows; ++r) {
    double acc = 0.0;
    double mag = 0.0;
    for (int c = 0; c < cols; ++c) {
      const double t = static_cast<double>(w[static_cast<std::size_t>(row0 + r) * cols + c]) * x[c];
      acc += t;
      mag += std::fabs(t);
    }
    y[r] = acc;
    err[r] = gamma(cols) * mag;
  }
}

// Keys per loop iteration of a row group (the kernel's KeysPerIteration).
int keys_per_iteration(int group_per_block) {
  return group_per_block == 1 ? 4 : (group_per_block == 4 ? 2 : 1);
}

// Check B. RETURNS: the largest |got - want| / bound over output row `got` (input row x,
// attending the first `keys` stored rows); `split` is the split size the row ran with (an
// upper bound of its summation depth when only a range is known: see summation()).
struct OutputOracle {
  const ModelWeights& w;
  const std::vector<KvRows>& stored;  // per KV head, layer 0
  cuda::AttentionShape shape;
  int min_split;  // smallest split size any launch of this run could use
  int known_split = 0;  // > 0: the split size this row certainly used

  cuda_testing::Summation summation(int keys) const {
    const int u = keys_per_iteration(shape.group_per_block);
    if (known_split > 0) return cuda_testing::summation_for(keys, known_split, shape.rows, u);
    // Unknown (planned) split: the iterations of one split of all keys and the splits of
    // the smallest size, each an upper bound.
    cuda_testing::Summation s = cuda_testing::summation_for(keys, keys, shape.rows, u);
    s.splits = (keys + min_split - 1) / min_split;
    return s;
  }

  double worst_ratio(const float* x, int keys, const float* got) const {
    const ModelConfig& c = w.config;
    const LayerWeights& lw = w.layers[0];
    const int d = c.head_dim;
    std::vector<double> q, q_err;
    project(lw.wq, 0, c.q_width(), c.d_model, x, q, q_err);
    std::vector<double> o(static_cast<std::size_t>(c.q_width()));
    std::vector<double> ob(o.size());
    const cuda_testing::Summation sum = summation(keys);
    for (int h = 0; h < c.heads; ++h) {
      const KvRows& kv = stored[static_cast<std::size_t>(h / c.group_size())];
      const cuda_testing::RowAttention ra = cuda_testing::expected_row(
          q.data() + h * d, q_err.data() + h * d, kv.k.data(), kv.v.data(), keys, d, sum);
      std::copy(ra.o.begin(), ra.o.end(), o.begin() + h * d);
      std::copy(ra.bound.begin(), ra.bound.end(), ob.begin() + h * d);
    }
    // y = x + W_o o: GEMM over H*d terms plus the residual (cuBLAS beta = 1): gamma(H d + 1).
    double worst = 0.0;
    for (int i = 0; i < c.d_model; ++i) {
      double y = x[i];
      double spread = 0.0;
      double mag = std::fabs(x[i]);
      for (int col = 0; col < c.q_width(); ++col) {
        const double wo = lw.wo[static_cast<std::size_t>(i) * c.q_width() + col];
        y += wo * o[col];
        spread += std::fabs(wo) * ob[col];
        mag += std::fabs(wo) * (std::fabs(o[col]) + ob[col]);
      }
      const double bound = spread + gamma(c.q_width() + 1) * mag;
      const double err = std::fabs(static_cast<double>(got[i]) - y);
      worst = std::isnan(err) ? INFINITY : std::max(worst, err / bound);
    }
    return worst;
  }
};

// Check A. RETURNS: the largest |stored - exact| / bound over rows [0, rows) of every KV head.
double stored_kv_worst_ratio(const ModelWeights& w, const std::vector<float>& inputs, int rows,
                             const std::vector<KvRows>& stored) {
  const ModelConfig& c = w.config;
  const LayerWeights& lw = w.layers[0];
  const int d = c.head_dim;
  // Storage rounding of an fp32 value z: |fl(z) - z| <= rel |z| + abs (abs: fp16 subnormals).
  const double rel = c.dtype == DType::f16 ? std::ldexp(1.0, -11)
                     : c.dtype == DType::bf16 ? std::ldexp(1.0, -8) : 0.0;
  const double abs = c.dtype == DType::f16 ? std::ldexp(1.0, -25) : 0.0;
  double worst = 0.0;
  std::vector<double> k, k_err, v, v_err;
  for (int t = 0; t < rows; ++t) {
    const float* x = inputs.data() + static_cast<std::size_t>(t) * c.d_model;
    project(lw.wk, 0, c.kv_width(), c.d_model, x, k, k_err);
    project(lw.wv, 0, c.kv_width(), c.d_model, x, v, v_err);
    for (int g = 0; g < c.kv_heads; ++g) {
      for (int e = 0; e < d; ++e) {
        const std::size_t at = static_cast<std::size_t>(t) * d + e;
        const int col = g * d + e;
        const double kb = k_err[col] + rel * (std::fabs(k[col]) + k_err[col]) + abs;
        const double vb = v_err[col] + rel * (std::fabs(v[col]) + v_err[col]) + abs;
        const double ke = std::fabs(stored[g].k[at] - k[col]);
        const double ve = std::fabs(stored[g].v[at] - v[col]);
        if (std::isnan(ke) || std::isnan(ve)) return INFINITY;
        worst = std::max({worst, ke / kb, ve / vb});
      }
    }
  }
  return worst;
}

std::vector<KvRows> read_all_heads(const KvCache& cache, SeqId id) {
  std::vector<KvRows> out;
  for (int g = 0; g < cache.config().kv_heads; ++g) out.push_back(cache.read_kv(id, 0, g));
  return out;
}

// Prefills the first n - 1 of `inputs`' rows into `id`, then decodes the last alone.
// RETURNS: all n output rows [n, d_model].
std::vector<float> prefill_then_decode(KvCache& cache, SeqId id, const std::vector<float>& inputs,
                                       int n) {
  const std::size_t width = static_cast<std::size_t>(cache.config().d_model);
  std::vector<float> out =
      cache.prefill(id, std::vector<float>(inputs.begin(), inputs.begin() + (n - 1) * width));
  const std::vector<float> last = cache.decode(
      {id}, std::vector<float>(inputs.begin() + (n - 1) * width, inputs.begin() + n * width));
  out.insert(out.end(), last.begin(), last.end());
  return out;
}

// Checks A and B on rows `rows_to_check` of one sequence's run (all when empty).
void expect_sequence_matches(const KvCache& cache, SeqId id, const std::vector<float>& inputs,
                             const std::vector<float>& outputs, int n, int min_split,
                             int decode_split, std::vector<int> rows_to_check = {}) {
  const ModelConfig& c = cache.config();
  const std::vector<KvRows> stored = read_all_heads(cache, id);
  for (const KvRows& kv : stored) ASSERT_EQ(kv.length, n);
  EXPECT_LE(stored_kv_worst_ratio(cache.weights(), inputs, n, stored), 1.0) << "stored K/V";
  OutputOracle oracle{cache.weights(), stored,
                      cuda::plan_attention_shape(c.head_dim, static_cast<int>(dtype_size(c.dtype)),
                                                 c.group_size()),
                      min_split};
  if (rows_to_check.empty()) {
    for (int t = 0; t < n; ++t) rows_to_check.push_back(t);
  }
  for (int t : rows_to_check) {
    oracle.known_split = (t == n - 1) ? decode_split : 0;
    const std::size_t at = static_cast<std::size_t>(t) * c.d_model;
    EXPECT_LE(oracle.worst_ratio(inputs.data() + at, t + 1, outputs.data() + at), 1.0)
        << "output row " << t << (t == n - 1 ? " (decode)" : " (prefill)");
  }
}

const DType kDtypes[] = {DType::f32, DType::f16, DType::bf16};

// ---- GPU: split boundaries -----------------------------------------------------------------------

// A forced split of 64 keys: lengths just below, at and above 1, 2 and 3 splits, for every
// storage dtype; prefill rows run with the same split, so every row is checked tightly.
TEST(CudaCachedGpu, SplitBoundariesForcedSplit) {
  SKIP_WITHOUT_GPU();
  for (DType dtype : kDtypes) {
    const ModelConfig c = shape(64, 4, 2, 32, 256, dtype);
    CudaCachedTuning tuning;
    tuning.split_size = 64;
    tuning.prefill_chunk = 50;  // chunks end off the split boundaries too
    auto cache = make_cuda_cached(ModelWeights::from_seed(c), ImplOptions{1, true}, tuning);
    for (int n : {1, 2, 63, 64, 65, 127, 128, 129, 191, 192, 193}) {
      SCOPED_TRACE(testing::Message() << dtype_name(dtype) << " n=" << n);
      const SeqId id = cache->create_sequence();
      const std::vector<float> inputs = InputStream(1000 + n).rows(n, c.d_model);
      const std::vector<float> out = prefill_then_decode(*cache, id, inputs, n);
      const CudaAttentionLaunchInfo launch = cuda_cached_last_launch(*cache);
      EXPECT_EQ(launch.split_size, 64);
      EXPECT_EQ(launch.max_splits, (n + 63) / 64);
      EXPECT_EQ(launch.max_kv_len, n);
      expect_sequence_matches(*cache, id, inputs, out, n, 64, 64);
      EXPECT_EQ(cuda_cached_unused_not_nan(*cache, id), 0u);
      cache->drop(id);
    }
  }
}

// Planned splits: the planner's own split size (kMinSplit for one short row, whatever the
// occupancy) and lengths just below, at and above its first multiples.
TEST(CudaCachedGpu, SplitBoundariesPlannedSplit) {
  SKIP_WITHOUT_GPU();
  const ModelConfig c = shape(64, 2, 2, 128, 1024, DType::f16);  // MHA, d = 128: 16-byte loads
  auto cache = make_cache("cuda_cached", c, ImplOptions{1, true});
  const int split = cuda_cached_plan(*cache, 1, 800).split_size;
  for (int n : {split - 1, split, split + 1, 2 * split - 1, 2 * split, 2 * split + 1}) {
    if (n > c.capacity) continue;
    SCOPED_TRACE(testing::Message() << "split=" << split << " n=" << n);
    ASSERT_EQ(cuda_cached_plan(*cache, 1, n).split_size, split);
    const SeqId id = cache->create_sequence();
    const std::vector<float> inputs = InputStream(2000 + n).rows(n, c.d_model);
    const std::vector<float> out = prefill_then_decode(*cache, id, inputs, n);
    const CudaAttentionLaunchInfo launch = cuda_cached_last_launch(*cache);
    EXPECT_EQ(launch.split_size, split);
    EXPECT_EQ(launch.max_splits, (n + split - 1) / split);
    EXPECT_TRUE(launch.vectorized);
    EXPECT_GE(launch.blocks_per_sm, 1);
    expect_sequence_matches(*cache, id, inputs, out, n, cuda::kMinSplit, split);
    cache->drop(id);
  }
}

// ---- GPU: long contexts --------------------------------------------------------------------------

// 32k tokens: one sequence spread over ~128 splits. The float64 reference would need a
// [T, T] mask (8 GB), so checks A and B (independent, per row) stand in for it: A on every
// row, B on the decoded row and on prefill rows at chunk and split edges.
TEST(CudaCachedGpu, LongContext32k) {
  SKIP_WITHOUT_GPU();
  for (DType dtype : kDtypes) {
    SCOPED_TRACE(dtype_name(dtype));
    const int n = 32768;
    const ModelConfig c = shape(64, 8, 2, 64, n, dtype);
    auto cache = make_cache("cuda_cached", c, ImplOptions{1, true});
    const SeqId id = cache->create_sequence();
    const std::vector<float> inputs = InputStream(3).rows(n, c.d_model);
    const std::vector<float> out = prefill_then_decode(*cache, id, inputs, n);
    const CudaAttentionLaunchInfo launch = cuda_cached_last_launch(*cache);
    EXPECT_EQ(launch.max_kv_len, n);
    EXPECT_GT(launch.max_splits, 1) << "a single long sequence must be split";
    expect_sequence_matches(*cache, id, inputs, out, n, cuda::kMinSplit, launch.split_size,
                            {0, 1, 255, 256, 257, 4095, 16383, 16384, 30000, n - 2, n - 1});
    EXPECT_EQ(cache->stats().bytes_held, c.kv_bytes_per_token() * n);
  }
}

// ---- GPU: ragged batches -------------------------------------------------------------------------

// Lengths 1 and 10000 (and two more) in one decode step: each row matches its own history.
TEST(CudaCachedGpu, RaggedBatchAcrossOrdersOfMagnitude) {
  SKIP_WITHOUT_GPU();
  for (DType dtype : {DType::f32, DType::f16}) {
    SCOPED_TRACE(dtype_name(dtype));
    const ModelConfig c = shape(64, 8, 2, 64, 10000, dtype);
    auto cache = make_cache("cuda_cached", c, ImplOptions{1, true});
    const int lengths[] = {1, 10000, 3, 700};
    std::vector<SeqId> ids;
    std::vector<std::vector<float>> inputs;
    std::vector<float> step;
    for (int s = 0; s < 4; ++s) {
      ids.push_back(cache->create_sequence());
      inputs.push_back(InputStream(40 + s).rows(lengths[s], c.d_model));
      const auto last = inputs[s].begin() + (lengths[s] - 1) * c.d_model;
      cache->prefill(ids[s], std::vector<float>(inputs[s].begin(), last));
      step.insert(step.end(), last, inputs[s].end());
    }
    const std::vector<float> out = cache->decode(ids, step);
    const CudaAttentionLaunchInfo launch = cuda_cached_last_launch(*cache);
    EXPECT_EQ(launch.items, 4);
    EXPECT_EQ(launch.max_kv_len, 10000);
    for (int s = 0; s < 4; ++s) {
      SCOPED_TRACE(testing::Message() << "sequence of " << lengths[s]);
      const std::vector<KvRows> stored = read_all_heads(*cache, ids[s]);
      OutputOracle oracle{cache->weights(), stored,
                          cuda::plan_attention_shape(c.head_dim, static_cast<int>(dtype_size(dtype)),
                                                     c.group_size()),
                          cuda::kMinSplit, launch.split_size};
      const std::size_t at = static_cast<std::size_t>(lengths[s] - 1) * c.d_model;
      EXPECT_LE(oracle.worst_ratio(inputs[s].data() + at, lengths[s],
                                   out.data() + static_cast<std::size_t>(s) * c.d_model),
                1.0);
      EXPECT_LE(stored_kv_worst_ratio(cache->weights(), inputs[s], lengths[s], stored), 1.0);
    }
  }
}

// ---- GPU: poison -----------------------------------------------------------------------------------

// With poison_unused, every slot element past a sequence's length is NaN after create,
// prefill, fork, truncate, drop and reuse, and no NaN reaches an output.
TEST(CudaCachedGpu, PoisonedSlotsNeverReachAnOutput) {
  SKIP_WITHOUT_GPU();
  for (DType dtype : kDtypes) {
    SCOPED_TRACE(dtype_name(dtype));
    const ModelConfig c = shape(32, 4, 2, 16, 200, dtype);
    CudaCachedTuning tuning;
    tuning.split_size = 64;
    auto cache = make_cuda_cached(ModelWeights::from_seed(c), ImplOptions{1, true}, tuning);
    InputStream rng(8);
    auto all_finite = [](const std::vector<float>& v) {
      return std::all_of(v.begin(), v.end(), [](float x) { return std::isfinite(x); });
    };
    const SeqId a = cache->create_sequence();
    EXPECT_EQ(cuda_cached_unused_not_nan(*cache, a), 0u);
    EXPECT_TRUE(all_finite(cache->prefill(a, rng.rows(127, c.d_model))));
    EXPECT_EQ(cuda_cached_unused_not_nan(*cache, a), 0u);
    const SeqId b = cache->fork(a);
    EXPECT_EQ(cuda_cached_unused_not_nan(*cache, b), 0u);
    cache->truncate(b, 64);
    EXPECT_EQ(cuda_cached_unused_not_nan(*cache, b), 0u);
    EXPECT_TRUE(all_finite(cache->decode({a, b}, rng.rows(2, c.d_model))));  // 128 and 65 keys
    cache->drop(a);
    const SeqId d = cache->create_sequence();  // reuses a's slot, which held 128 rows
    EXPECT_EQ(cuda_cached_unused_not_nan(*cache, d), 0u);
    EXPECT_TRUE(all_finite(cache->prefill(d, rng.rows(1, c.d_model))));
    EXPECT_TRUE(all_finite(cache->decode({b, d}, rng.rows(2, c.d_model))));
    EXPECT_EQ(cuda_cached_unused_not_nan(*cache, b), 0u);
    EXPECT_EQ(cuda_cached_unused_not_nan(*cache, d), 0u);
  }
}

// ---- GPU: every kernel instantiation ---------------------------------------------------------------

struct KernelCase {
  int head_dim;
  int heads;
  int kv_heads;
};

// Vectorized and scalar loads x 1, 4 and 8 query heads per block (and a group of 12 that
// takes two group blocks) x three dtypes: every split_attention_kernel the dispatch can pick.
TEST(CudaCachedGpu, EveryHeadDimAndGroupPath) {
  SKIP_WITHOUT_GPU();
  const KernelCase cases[] = {{64, 4, 4},  {30, 2, 2},  {128, 8, 2}, {30, 6, 2}, {64, 12, 2},
                              {30, 12, 1}, {7, 8, 1},   {256, 2, 1}, {16, 1, 1}, {100, 3, 1}};
  for (DType dtype : kDtypes) {
    for (const KernelCase& kc : cases) {
      const ModelConfig c = shape(48, kc.heads, kc.kv_heads, kc.head_dim, 96, dtype);
      const cuda::AttentionShape s =
          cuda::plan_attention_shape(kc.head_dim, static_cast<int>(dtype_size(dtype)), c.group_size());
      SCOPED_TRACE(testing::Message() << c.describe() << " vectorized=" << s.vectorized
                                      << " group_per_block=" << s.group_per_block);
      CudaCachedTuning tuning;
      tuning.split_size = 32;
      auto cache = make_cuda_cached(ModelWeights::from_seed(c), ImplOptions{1, true}, tuning);
      const int n = 70;  // 3 splits of 32
      const SeqId id = cache->create_sequence();
      const std::vector<float> inputs = InputStream(kc.head_dim * 31 + kc.heads).rows(n, c.d_model);
      const std::vector<float> out = prefill_then_decode(*cache, id, inputs, n);
      const CudaAttentionLaunchInfo launch = cuda_cached_last_launch(*cache);
      EXPECT_EQ(launch.vectorized, s.vectorized);
      EXPECT_EQ(launch.group_per_block, s.group_per_block);
      EXPECT_EQ(launch.group_blocks, s.group_blocks);
      expect_sequence_matches(*cache, id, inputs, out, n, 32, 32);
    }
  }
}

// ---- GPU: counters, memory, metamorphic checks -----------------------------------------------------

TEST(CudaCachedGpu, CountersFollowFormulas) {
  SKIP_WITHOUT_GPU();
  // Group 4 (one group block) and group 16 (two: each KV head is read twice per step).
  for (const KernelCase& kc : {KernelCase{16, 8, 2}, KernelCase{16, 16, 1}}) {
    for (DType dtype : {DType::f32, DType::bf16}) {
      const ModelConfig c = shape(32, kc.heads, kc.kv_heads, kc.head_dim, 64, dtype);
      SCOPED_TRACE(c.describe());
      auto cache = make_cache("cuda_cached", c);
      const int group_blocks = cuda::plan_attention_shape(
          c.head_dim, static_cast<int>(dtype_size(dtype)), c.group_size()).group_blocks;
      const SeqId a = cache->create_sequence();
      const SeqId b = cache->create_sequence();
      cache->prefill(a, InputStream(1).rows(10, c.d_model));  // keys 1..10: 55
      cache->prefill(b, InputStream(2).rows(3, c.d_model));   // keys 1..3: 6
      cache->decode({a, b}, InputStream(3).rows(2, c.d_model));  // keys 11 + 4
      const std::uint64_t keys = 55 + 6 + 11 + 4;
      const Stats s = cache->stats();
      EXPECT_EQ(s.kv_projection_rows, 15u);
      EXPECT_EQ(s.qk_dot_products, keys * c.heads);
      EXPECT_EQ(s.kv_bytes_read,
                keys * 2u * c.head_dim * dtype_size(dtype) * c.kv_heads * group_blocks);
      EXPECT_EQ(s.bytes_held, 15u * c.kv_bytes_per_token());
      const std::uint64_t slot = static_cast<std::uint64_t>(c.capacity) * c.kv_bytes_per_token();
      EXPECT_EQ(s.bytes_reserved, 2 * slot);  // one slot per live sequence, none spare
      cache->drop(a);
      EXPECT_EQ(cache->stats().bytes_held, 4u * c.kv_bytes_per_token());
      EXPECT_EQ(cache->stats().bytes_reserved, 2 * slot);  // kept for the next sequence
      cache->create_sequence();
      EXPECT_EQ(cache->stats().bytes_reserved, 2 * slot);  // reused, not allocated
    }
  }
}

// Same shapes run the same kernels and cuBLAS algorithms, which are deterministic: a fork
// that diverges, and a rollback replayed, give bit-identical outputs to fresh sequences.
TEST(CudaCachedGpu, ForkAndRollbackMatchFreshSequencesExactly) {
  SKIP_WITHOUT_GPU();
  const ModelConfig c = shape(64, 4, 1, 32, 300, DType::f16);
  auto cache = make_cache("cuda_cached", c, ImplOptions{1, true});
  const std::vector<float> prompt = InputStream(1).rows(150, c.d_model);
  const std::vector<float> x = InputStream(2).rows(1, c.d_model);
  const std::vector<float> y = InputStream(3).rows(1, c.d_model);

  const SeqId fresh = cache->create_sequence();
  cache->prefill(fresh, prompt);
  const std::vector<float> want = cache->decode({fresh}, x);

  const SeqId parent = cache->create_sequence();
  cache->prefill(parent, prompt);
  const SeqId child = cache->fork(parent);
  cache->decode({parent}, y);                          // the parent diverges first
  EXPECT_EQ(cache->decode({child}, x), want) << "fork then diverge";
  cache->truncate(parent, 150);                        // roll back y
  EXPECT_EQ(cache->decode({parent}, x), want) << "rollback then replay";
}

// Two layers against the float64 LibTorch reference, with the one tolerance policy of
// properties/tolerance.h (props::expected_outputs, compare_rows), as the property suite
// and the CPU implementations' tests use it.
TEST(CudaCachedGpu, TwoLayersMatchTheReference) {
  SKIP_WITHOUT_GPU();
  ModelConfig c = shape(64, 4, 2, 16, 160, DType::f32);
  c.layers = 2;
  const int prompt = 100;
  const int total = 120;
  const std::vector<float> inputs = InputStream(17).rows(total, c.d_model);
  const props::Expected e = props::expected_outputs(*ModelWeights::from_seed(c), inputs);
  auto cache = make_cache("cuda_cached", c, ImplOptions{1, true});
  const SeqId id = cache->create_sequence();
  std::vector<float> out = cache->prefill(
      id, std::vector<float>(inputs.begin(), inputs.begin() + prompt * c.d_model));
  for (int t = prompt; t < total; ++t) {
    const std::vector<float> row = cache->decode(
        {id}, std::vector<float>(inputs.begin() + t * c.d_model, inputs.begin() + (t + 1) * c.d_model));
    out.insert(out.end(), row.begin(), row.end());
  }
  ASSERT_EQ(out.size(), e.f64.outputs.size());
  const props::Comparison r =
      props::compare_rows(out.data(), e.f64.outputs.data(), total, c.d_model, e.tol.data());
  EXPECT_TRUE(r.ok) << r.describe();
}

// ---- GPU: errors -------------------------------------------------------------------------------

TEST(CudaCachedGpu, OutOfMemoryAtConstructionIsAClearError) {
  SKIP_WITHOUT_GPU();
  // One slot: 2 x 64 KV heads x 2^28 tokens x 256 x 4 bytes = 32 TiB.
  const ModelConfig c = shape(64, 64, 64, 256, 1 << 28, DType::f32);
  try {
    make_cache("cuda_cached", c);
    ADD_FAILURE() << "a 32 TiB slot was allocated";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("cannot allocate"), std::string::npos) << m;
    EXPECT_NE(m.find("sequence slot"), std::string::npos) << m;
    EXPECT_NE(m.find(cudaGetErrorString(cudaErrorMemoryAllocation)), std::string::npos) << m;
  }
  // The failure left the device usable.
  EXPECT_NO_THROW(make_cache("cuda_cached", shape(32, 2, 2, 16, 64, DType::f32)));
}

TEST(CudaCachedGpu, RejectsHeadDimsTheKernelCannotServe) {
  SKIP_WITHOUT_GPU();
  EXPECT_THROW(make_cache("cuda_cached", shape(32, 2, 2, 257, 64, DType::f32)), Error);
}

// ---- GPU: timing seam ----------------------------------------------------------------------------

// Smoke tests of the benchmark hooks (no speed is asserted: that belongs to `kvbench bench`).
TEST(CudaCachedGpu, TimingHooksReturnMeasurements) {
  SKIP_WITHOUT_GPU();
  const cuda::DeviceInfo info = cuda::device_info();
  EXPECT_GT(info.sm_count, 0);
  EXPECT_GT(info.l2_bytes, 0u);
  const cuda::BandwidthMeasurement read = cuda::measure_read_bandwidth(64u << 20, 3);
  EXPECT_EQ(read.bytes_counted, read.buffer_bytes);
  EXPECT_EQ(read.repetitions, 3);
  EXPECT_GT(read.best_gb_per_s(), 0.0);
  EXPECT_LE(read.best_ms, read.median_ms);
  const cuda::BandwidthMeasurement copy = cuda::measure_copy_bandwidth(64u << 20, 3);
  EXPECT_EQ(copy.bytes_counted, 2 * copy.buffer_bytes);
  EXPECT_GT(copy.best_gb_per_s(), 0.0);

  const ModelConfig c = shape(64, 4, 4, 64, 4096, DType::f16);
  auto cache = make_cache("cuda_cached", c);
  EXPECT_THROW(cuda_cached_last_attention_ms(*cache), Error);  // no decode yet
  const SeqId id = cache->create_sequence();
  cache->prefill(id, InputStream(1).rows(4000, c.d_model));
  cuda::EventTimer timer;
  timer.start();
  cache->decode({id}, InputStream(2).rows(1, c.d_model));
  const double step_ms = timer.stop_ms();
  const double attention_ms = cuda_cached_last_attention_ms(*cache);
  EXPECT_GT(attention_ms, 0.0);
  EXPECT_LE(attention_ms, step_ms);  // the attention is part of the step
}

}  // namespace
}  // namespace kvbench
