// torch_cached and torch_static against the float64 reference, on a few fixed small models:
// prefill, chunked prefill, ragged batched decode, fork, truncate, read_kv, and the exact
// counters and memory figures. Tolerances: the one policy of properties/tolerance.h.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "harness/error.h"
#include "harness/reference.h"
#include "harness/registry.h"
#include "properties/tolerance.h"
#include "properties/workload.h"

namespace kvbench {
namespace {

// One small model per case; shapes cover MHA, GQA, MQA and d_model != H * d.
struct ModelCase {
  const char* label;
  int layers, d_model, heads, kv_heads, head_dim;
};
const ModelCase kModels[] = {
    {"mha", 2, 32, 4, 4, 8},
    {"gqa", 2, 32, 4, 2, 8},
    {"mqa", 2, 24, 4, 1, 8},
    {"wide_heads", 1, 16, 2, 1, 16},  // H * d = 32 > d_model = 16
};

ModelConfig config_of(const ModelCase& m, int capacity = 64) {
  return ModelConfig::make(m.layers, m.d_model, m.heads, m.kv_heads, m.head_dim, capacity,
                           DType::f32, 7);
}

std::vector<float> rows_of(const std::vector<float>& all, int first, int count, int width) {
  return std::vector<float>(all.begin() + first * width, all.begin() + (first + count) * width);
}

void append(std::vector<float>& to, const std::vector<float>& rows) {
  to.insert(to.end(), rows.begin(), rows.end());
}

// Checks `got` rows against the reference over the whole history `inputs`; `got` are the
// last got.size() / d_model rows of the history. Tolerance: props::expected_outputs.
void expect_matches_reference(const KvCache& cache, const std::vector<float>& inputs,
                              const std::vector<float>& got, const std::string& what) {
  const ModelConfig& c = cache.config();
  const props::Expected e = props::expected_outputs(cache.weights(), inputs);
  const int n = static_cast<int>(got.size()) / c.d_model;
  ASSERT_EQ(got.size(), static_cast<std::size_t>(n) * c.d_model) << what;
  ASSERT_LE(n, e.f64.tokens) << what;
  const int first = e.f64.tokens - n;
  const props::Comparison r =
      props::compare_rows(got.data(), e.f64.outputs.data() + static_cast<std::size_t>(first) * c.d_model,
                          n, c.d_model, e.tol.data() + first);
  EXPECT_TRUE(r.ok) << what << " (rows " << first << ".." << e.f64.tokens - 1 << " of "
                    << c.describe() << "): " << r.describe();
}

class TorchImpl : public ::testing::TestWithParam<std::string> {
 protected:
  std::unique_ptr<KvCache> make(const ModelConfig& c, ImplOptions options = {}) {
    return make_cache(GetParam(), c, options);
  }
};

TEST_P(TorchImpl, IsRegisteredAsCpuFp32Peer) {
  const ImplInfo& info = Registry::global().get(GetParam());
  EXPECT_EQ(info.device, "cpu");
  EXPECT_TRUE(info.available());
  EXPECT_TRUE(info.caps.holds_kv_cache);
  EXPECT_TRUE(info.caps.fork);
  EXPECT_TRUE(info.caps.truncate);
  EXPECT_TRUE(info.caps.threads);
  EXPECT_FALSE(info.caps.planted);
  EXPECT_EQ(info.caps.dtypes, std::vector<DType>{DType::f32});
}

TEST_P(TorchImpl, RejectsOtherDtypes) {
  ModelConfig c = config_of(kModels[0]);
  for (DType dtype : {DType::f16, DType::bf16}) {
    c.dtype = dtype;
    try {
      make(c);
      FAIL() << GetParam() << " accepted " << dtype_name(dtype);
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(dtype_name(dtype)), std::string::npos) << e.what();
    }
  }
}

// Prefill of 5 rows, then 6 single decodes, and the cached K/V rows of every layer and head.
TEST_P(TorchImpl, PrefillThenDecodeMatchesReference) {
  for (const ModelCase& m : kModels) {
    const ModelConfig c = config_of(m);
    auto cache = make(c);
    const std::vector<float> inputs = InputStream(11).rows(11, c.d_model);
    const SeqId id = cache->create_sequence();
    std::vector<float> got = cache->prefill(id, rows_of(inputs, 0, 5, c.d_model));
    for (int t = 5; t < 11; ++t) append(got, cache->decode({id}, rows_of(inputs, t, 1, c.d_model)));
    expect_matches_reference(*cache, inputs, got, m.label);

    const props::Expected e = props::expected_outputs(cache->weights(), inputs);
    for (int l = 0; l < c.layers; ++l) {
      for (int g = 0; g < c.kv_heads; ++g) {
        const KvRows rows = cache->read_kv(id, l, g);
        const auto& k = e.f64.k[static_cast<std::size_t>(l * c.kv_heads + g)];
        const auto& v = e.f64.v[static_cast<std::size_t>(l * c.kv_heads + g)];
        ASSERT_EQ(rows.length, 11);
        ASSERT_EQ(rows.head_dim, c.head_dim);
        ASSERT_EQ(rows.k.size(), k.size());
        ASSERT_EQ(rows.v.size(), v.size());
        // K and V rows: the policy's cached-row tolerances (kv_tolerances).
        const auto tol_k = props::kv_tolerances(c, inputs, e.f64, e.f32, l, g, false);
        const auto tol_v = props::kv_tolerances(c, inputs, e.f64, e.f32, l, g, true);
        const props::Comparison rk =
            props::compare_rows(rows.k.data(), k.data(), 11, c.head_dim, tol_k.data());
        const props::Comparison rv =
            props::compare_rows(rows.v.data(), v.data(), 11, c.head_dim, tol_v.data());
        EXPECT_TRUE(rk.ok) << m.label << " K layer " << l << " head " << g << ": " << rk.describe();
        EXPECT_TRUE(rv.ok) << m.label << " V layer " << l << " head " << g << ": " << rv.describe();
      }
    }
  }
}

// A second prefill onto a non-empty sequence: the causal mask must be offset by the past.
TEST_P(TorchImpl, ChunkedPrefillMatchesReference) {
  for (const ModelCase& m : kModels) {
    const ModelConfig c = config_of(m);
    auto cache = make(c);
    const std::vector<float> inputs = InputStream(12).rows(9, c.d_model);
    const SeqId id = cache->create_sequence();
    std::vector<float> got = cache->prefill(id, rows_of(inputs, 0, 3, c.d_model));
    append(got, cache->prefill(id, rows_of(inputs, 3, 4, c.d_model)));
    append(got, cache->prefill(id, rows_of(inputs, 7, 2, c.d_model)));
    expect_matches_reference(*cache, inputs, got, m.label);
  }
}

// Three sequences of different lengths decoded together, in changing order and subsets.
TEST_P(TorchImpl, RaggedBatchDecodeMatchesPerSequenceReference) {
  const ModelConfig c = config_of(kModels[1]);  // GQA
  auto cache = make(c);
  InputStream rng(13);
  std::map<SeqId, std::vector<float>> history, outputs;
  for (int prompt : {1, 4, 7}) {
    const SeqId id = cache->create_sequence();
    history[id] = rng.rows(prompt, c.d_model);
    outputs[id] = cache->prefill(id, history[id]);
  }
  const std::vector<std::vector<SeqId>> steps = {{0, 1, 2}, {2, 0, 1}, {1}, {2, 0}, {0, 1, 2}};
  for (const auto& ids : steps) {
    const std::vector<float> x = rng.rows(static_cast<int>(ids.size()), c.d_model);
    const std::vector<float> y = cache->decode(ids, x);
    for (std::size_t i = 0; i < ids.size(); ++i) {
      const int row = static_cast<int>(i);
      append(history[ids[i]], rows_of(x, row, 1, c.d_model));
      append(outputs[ids[i]], rows_of(y, row, 1, c.d_model));
    }
  }
  for (const auto& entry : history) {
    EXPECT_EQ(cache->length(entry.first), static_cast<int>(entry.second.size()) / c.d_model);
    expect_matches_reference(*cache, entry.second, outputs[entry.first],
                             "sequence " + std::to_string(entry.first));
  }
}

// Fork then diverge == two fresh histories; truncate then replay == never advanced.
TEST_P(TorchImpl, ForkAndTruncateMatchReference) {
  for (bool poison : {false, true}) {
    const ModelConfig c = config_of(kModels[2]);  // MQA
    ImplOptions options;
    options.poison_unused = poison;
    auto cache = make(c, options);
    InputStream rng(14);
    const std::vector<float> prompt = rng.rows(6, c.d_model);
    const SeqId a = cache->create_sequence();
    cache->prefill(a, prompt);
    const SeqId b = cache->fork(a);
    cache->truncate(b, 3);
    ASSERT_EQ(cache->length(a), 6);
    ASSERT_EQ(cache->length(b), 3);

    const std::vector<float> x = rng.rows(2, c.d_model);
    const std::vector<float> y = cache->decode({a, b}, x);
    std::vector<float> hist_a = prompt, hist_b = rows_of(prompt, 0, 3, c.d_model);
    append(hist_a, rows_of(x, 0, 1, c.d_model));
    append(hist_b, rows_of(x, 1, 1, c.d_model));
    const std::string tag = poison ? " (poisoned)" : "";
    expect_matches_reference(*cache, hist_a, rows_of(y, 0, 1, c.d_model), "parent" + tag);
    expect_matches_reference(*cache, hist_b, rows_of(y, 1, 1, c.d_model), "fork" + tag);

    // The parent is unaffected by the child's truncation; dropping the parent keeps the child.
    cache->drop(a);
    cache->truncate(b, 0);
    const std::vector<float> z = rng.rows(3, c.d_model);
    const std::vector<float> out = cache->prefill(b, z);
    expect_matches_reference(*cache, z, out, "fork truncated to 0" + tag);
  }
}

// Several threads give the same model (within the same bound).
TEST_P(TorchImpl, TwoThreadsMatchReference) {
  const ModelConfig c = config_of(kModels[0]);
  ImplOptions options;
  options.threads = 2;
  auto cache = make(c, options);
  const std::vector<float> inputs = InputStream(15).rows(8, c.d_model);
  const SeqId id = cache->create_sequence();
  std::vector<float> got = cache->prefill(id, rows_of(inputs, 0, 7, c.d_model));
  append(got, cache->decode({id}, rows_of(inputs, 7, 1, c.d_model)));
  expect_matches_reference(*cache, inputs, got, "threads=2");
}

// The counters follow the formulas of kv_cache.h for what these peers compute:
//   kv_projection_rows: L per token;
//   qk_dot_products: a chunk of n rows after `past` tokens computes the full [H, n, past + n]
//     score matrix per layer (the masked entries too, as Python code does), so H * n * T;
//   kv_bytes_read: each chunk reads its T cached rows of K and V once per KV head and layer
//     (the GQA repeat copies them for the group after that one read): 2 * H_kv * T * d * 4.
TEST_P(TorchImpl, CountersAndBytesFollowFormulas) {
  const ModelConfig c = config_of(kModels[1], /*capacity=*/32);  // GQA, L = 2
  const std::uint64_t L = c.layers, H = c.heads, G = c.kv_heads, d = c.head_dim;
  auto cache = make(c);
  InputStream rng(16);
  const SeqId a = cache->create_sequence();
  const SeqId b = cache->create_sequence();
  cache->prefill(a, rng.rows(5, c.d_model));  // n = 5, T = 5
  cache->prefill(a, rng.rows(2, c.d_model));  // n = 2, T = 7
  cache->prefill(b, rng.rows(3, c.d_model));  // n = 3, T = 3
  cache->decode({a, b}, rng.rows(2, c.d_model));  // T = 8 and 4
  cache->decode({b}, rng.rows(1, c.d_model));     // T = 5

  const Stats s = cache->stats();
  EXPECT_EQ(s.kv_projection_rows, L * (5 + 2 + 3 + 2 + 1));
  EXPECT_EQ(s.qk_dot_products, L * H * (5 * 5 + 2 * 7 + 3 * 3 + 8 + 4 + 5));
  EXPECT_EQ(s.kv_bytes_read, L * 2 * G * d * 4 * (5 + 7 + 3 + 8 + 4 + 5));
  EXPECT_EQ(s.bytes_held, 2 * L * G * d * 4 * (8 + 5));
  EXPECT_EQ(s.bytes_held, c.kv_bytes_per_token() * (8 + 5));
  // torch_static preallocates capacity per live sequence; torch_cached holds exactly its rows.
  const bool preallocates = GetParam() == "torch_static";
  auto reserved = [&](std::uint64_t live_sequences, std::uint64_t tokens_held) {
    return preallocates ? live_sequences * c.kv_bytes_per_token() * c.capacity
                        : c.kv_bytes_per_token() * tokens_held;
  };
  EXPECT_EQ(s.bytes_reserved, reserved(2, 8 + 5));

  const SeqId f = cache->fork(a);  // 8 more tokens held
  cache->truncate(b, 2);
  EXPECT_EQ(cache->stats().bytes_held, c.kv_bytes_per_token() * (8 + 2 + 8));
  EXPECT_EQ(cache->stats().bytes_reserved, reserved(3, 8 + 2 + 8));
  cache->drop(a);
  cache->drop(f);
  EXPECT_EQ(cache->stats().bytes_held, c.kv_bytes_per_token() * 2);
  EXPECT_EQ(cache->stats().bytes_reserved, reserved(1, 2));
  // Counters are kept through fork, truncate and drop (they count compute, not memory).
  EXPECT_EQ(cache->stats().kv_projection_rows, s.kv_projection_rows);
  cache->reset_stats();
  EXPECT_EQ(cache->stats().qk_dot_products, 0u);
}

INSTANTIATE_TEST_SUITE_P(Peers, TorchImpl, ::testing::Values("torch_cached", "torch_static"),
                         [](const ::testing::TestParamInfo<std::string>& p) { return p.param; });

}  // namespace
}  // namespace kvbench
