// Unit tests of the CPU implementations (naive, cpu_cached): numerics against the float64
// LibTorch reference on a few fixed shapes, and exact op counters. The property suite
// (properties/) covers random models and operation sequences; these stay few and fast.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "harness/error.h"
#include "harness/reference.h"
#include "harness/registry.h"
#include "properties/tolerance.h"
#include "properties/workload.h"

namespace kvbench {
namespace {

// ---- tolerance: the one policy of properties/tolerance.h -----------------------------------

// The float64 reference of `inputs` with the policy's per-row tolerances.
props::Expected expected(const ModelConfig& c, const std::vector<float>& inputs) {
  return props::expected_outputs(*ModelWeights::from_seed(c), inputs);
}

// `got` holds the output rows [first, first + n) of the history; the policy's verdict.
props::Comparison check_rows(const std::vector<float>& got, const props::Expected& e, int first,
                             int n, int width) {
  EXPECT_EQ(got.size(), static_cast<std::size_t>(n) * width);
  if (got.size() != static_cast<std::size_t>(n) * width) return props::Comparison{false};
  return props::compare_rows(got.data(), e.f64.outputs.data() + static_cast<std::size_t>(first) * width,
                             n, width, e.tol.data() + first);
}

// The cached K (values = false) or V rows of (layer, kv_head) against the reference's.
props::Comparison check_kv(const std::vector<float>& got, const ModelConfig& c,
                           const std::vector<float>& inputs, const props::Expected& e, int layer,
                           int kv_head, bool values) {
  const std::size_t block = static_cast<std::size_t>(layer * c.kv_heads + kv_head);
  const std::vector<double>& want = values ? e.f64.v[block] : e.f64.k[block];
  EXPECT_EQ(got.size(), want.size());
  if (got.size() != want.size()) return props::Comparison{false};
  const auto tol = props::kv_tolerances(c, inputs, e.f64, e.f32, layer, kv_head, values);
  return props::compare_rows(got.data(), want.data(), e.f64.tokens, c.head_dim, tol.data());
}

ModelConfig shape(int layers, int d_model, int heads, int kv_heads, int head_dim, int capacity) {
  return ModelConfig::make(layers, d_model, heads, kv_heads, head_dim, capacity, DType::f32, 7);
}

// One numerics case: a model, a prompt of `prompt` tokens, then `decode` single steps, with
// inputs uniform in [-input_scale, input_scale].
struct NumericsCase {
  std::string name;
  ModelConfig config;
  int prompt;
  int decode;
  float input_scale = 1.0f;
};

std::vector<NumericsCase> numerics_cases() {
  // capacity > prompt + decode leaves unused slots for poison_unused to fill.
  return {
      {"mha", shape(1, 64, 4, 4, 16, 32), 7, 13, 1.0f},
      {"gqa", shape(1, 48, 12, 2, 8, 32), 5, 11, 1.0f},  // groups of 6: 4 + 2 heads
      {"mqa", shape(1, 64, 4, 1, 16, 32), 1, 15, 1.0f},
      {"odd_head_dim", shape(1, 40, 3, 3, 13, 32), 6, 9, 1.0f},
      {"two_layers", shape(2, 64, 4, 2, 16, 32), 9, 10, 1.0f},
      // More keys than one tile of a blocked kernel (e.g. 64 keys of d = 64) and more
      // prompt rows than one prefill block: the running max and sum carry across tiles.
      {"many_tiles", shape(1, 32, 2, 1, 64, 160), 100, 40, 1.0f},
      // Long enough (~1540 keys, ~790 KB of K/V per step, over the 256 KiB below which
      // cpu_cached keeps attention on one thread) that with threads > 1 cpu_cached splits
      // a decode row's keys into chunks and merges their partial softmax states. Larger
      // inputs spread the scores, so the chunks' maxima differ and a merge that
      // mis-weights them shows.
      {"split_keys", shape(1, 16, 2, 1, 64, 1600), 1540, 4, 3.0f},
  };
}

struct ImplParam {
  std::string impl;
  int threads;
};

void PrintTo(const ImplParam& p, std::ostream* out) {
  *out << p.impl << " threads=" << p.threads;
}

std::string param_name(const testing::TestParamInfo<ImplParam>& info) {
  return info.param.impl + "_t" + std::to_string(info.param.threads);
}

class CpuImpl : public testing::TestWithParam<ImplParam> {
 protected:
  std::unique_ptr<KvCache> make(const ModelConfig& c) const {
    ImplOptions options;
    options.threads = GetParam().threads;
    options.poison_unused = true;  // any read past a sequence's length turns outputs NaN
    return make_cache(GetParam().impl, c, options);
  }
  bool holds_kv() const { return Registry::global().get(GetParam().impl).caps.holds_kv_cache; }
};

// Prefill then step-by-step decode matches the reference over the whole sequence, and a
// K/V cache holds the reference's K and V rows.
TEST_P(CpuImpl, MatchesReferenceOnFixedShapes) {
  for (const NumericsCase& tc : numerics_cases()) {
    SCOPED_TRACE(tc.name + ": " + tc.config.describe());
    const ModelConfig& c = tc.config;
    const int total = tc.prompt + tc.decode;
    const std::vector<float> inputs = InputStream(11).rows(total, c.d_model, tc.input_scale);
    const props::Expected e = expected(c, inputs);

    auto cache = make(c);
    const SeqId id = cache->create_sequence();
    const std::vector<float> prompt(inputs.begin(), inputs.begin() + tc.prompt * c.d_model);
    const props::Comparison pre = check_rows(cache->prefill(id, prompt), e, 0, tc.prompt, c.d_model);
    EXPECT_TRUE(pre.ok) << "prefill: " << pre.describe();
    for (int t = tc.prompt; t < total; ++t) {
      const std::vector<float> row(inputs.begin() + t * c.d_model,
                                   inputs.begin() + (t + 1) * c.d_model);
      const props::Comparison step = check_rows(cache->decode({id}, row), e, t, 1, c.d_model);
      EXPECT_TRUE(step.ok) << "decode step at position " << t << ": " << step.describe();
    }
    if (!holds_kv()) continue;
    for (int l = 0; l < c.layers; ++l) {
      for (int g = 0; g < c.kv_heads; ++g) {
        const KvRows rows = cache->read_kv(id, l, g);
        ASSERT_EQ(rows.length, total);
        ASSERT_EQ(rows.head_dim, c.head_dim);
        const props::Comparison k = check_kv(rows.k, c, inputs, e, l, g, false);
        const props::Comparison v = check_kv(rows.v, c, inputs, e, l, g, true);
        EXPECT_TRUE(k.ok) << "K layer " << l << " head " << g << ": " << k.describe();
        EXPECT_TRUE(v.ok) << "V layer " << l << " head " << g << ": " << v.describe();
      }
    }
  }
}

// Three sequences of different lengths decoded together: each matches its own reference.
TEST_P(CpuImpl, RaggedBatchOfThree) {
  const ModelConfig c = shape(2, 32, 4, 2, 8, 24);
  const int prompts[3] = {6, 1, 11};
  const int steps = 5;
  auto cache = make(c);
  std::vector<SeqId> ids;
  std::vector<std::vector<float>> inputs;
  std::vector<props::Expected> refs;
  for (int s = 0; s < 3; ++s) {
    inputs.push_back(InputStream(100 + s).rows(prompts[s] + steps, c.d_model));
    refs.push_back(expected(c, inputs.back()));
    ids.push_back(cache->create_sequence());
    cache->prefill(ids[s], std::vector<float>(inputs[s].begin(),
                                              inputs[s].begin() + prompts[s] * c.d_model));
  }
  for (int step = 0; step < steps; ++step) {
    std::vector<float> rows;
    for (int s = 0; s < 3; ++s) {
      const auto first = inputs[s].begin() + (prompts[s] + step) * c.d_model;
      rows.insert(rows.end(), first, first + c.d_model);
    }
    const std::vector<float> out = cache->decode(ids, rows);
    for (int s = 0; s < 3; ++s) {
      const std::vector<float> mine(out.begin() + s * c.d_model,
                                    out.begin() + (s + 1) * c.d_model);
      const int pos = prompts[s] + step;
      const props::Comparison got = check_rows(mine, refs[s], pos, 1, c.d_model);
      EXPECT_TRUE(got.ok) << "sequence " << s << " position " << pos << ": " << got.describe();
    }
  }
}

// Fork, diverge, truncate and replay: every output matches a fresh reference run over the
// history that sequence actually has.
TEST_P(CpuImpl, ForkThenDivergeAndTruncateThenReplay) {
  const ModelConfig c = shape(2, 32, 4, 1, 8, 20);
  const int p = 8;
  InputStream rng(5);
  const std::vector<float> prompt = rng.rows(p, c.d_model);
  const std::vector<float> a = rng.rows(4, c.d_model), b = rng.rows(4, c.d_model);
  const std::vector<float> replay = rng.rows(6, c.d_model);
  auto concat = [&](std::vector<float> head, const std::vector<float>& tail, int tail_rows) {
    head.insert(head.end(), tail.begin(), tail.begin() + tail_rows * c.d_model);
    return head;
  };

  auto cache = make(c);
  const SeqId parent = cache->create_sequence();
  cache->prefill(parent, prompt);
  const SeqId child = cache->fork(parent);
  ASSERT_EQ(cache->length(child), p);
  std::vector<float> out_parent, out_child;
  for (int i = 0; i < 4; ++i) {
    std::vector<float> rows(a.begin() + i * c.d_model, a.begin() + (i + 1) * c.d_model);
    rows.insert(rows.end(), b.begin() + i * c.d_model, b.begin() + (i + 1) * c.d_model);
    const std::vector<float> out = cache->decode({parent, child}, rows);
    out_parent.insert(out_parent.end(), out.begin(), out.begin() + c.d_model);
    out_child.insert(out_child.end(), out.begin() + c.d_model, out.end());
  }
  const props::Comparison got_parent =
      check_rows(out_parent, expected(c, concat(prompt, a, 4)), p, 4, c.d_model);
  const props::Comparison got_child =
      check_rows(out_child, expected(c, concat(prompt, b, 4)), p, 4, c.d_model);
  EXPECT_TRUE(got_parent.ok) << "parent: " << got_parent.describe();
  EXPECT_TRUE(got_child.ok) << "child: " << got_child.describe();

  // Roll the child back into the prompt (past the fork point) and replay other tokens.
  cache->truncate(child, 5);
  ASSERT_EQ(cache->length(child), 5);
  const std::vector<float> kept(prompt.begin(), prompt.begin() + 5 * c.d_model);
  const props::Comparison got_replay =
      check_rows(cache->prefill(child, replay), expected(c, concat(kept, replay, 6)), 5, 6,
                 c.d_model);
  EXPECT_TRUE(got_replay.ok) << "replay: " << got_replay.describe();
  // The parent is untouched by its child's rollback.
  const std::vector<float> next = rng.rows(1, c.d_model);
  const props::Comparison got_next =
      check_rows(cache->decode({parent}, next), expected(c, concat(concat(prompt, a, 4), next, 1)),
                 p + 4, 1, c.d_model);
  EXPECT_TRUE(got_next.ok) << "parent after the child's rollback: " << got_next.describe();
}

// ---- exact counters ------------------------------------------------------------------

// Over a T-token decode from empty: naive projects T(T+1)/2 K/V rows per layer, a cache T;
// both compute L * H * T(T+1)/2 query-key dot products.
TEST_P(CpuImpl, CountersOverTokenByTokenDecode) {
  const ModelConfig c = shape(2, 16, 4, 2, 8, 40);
  const std::uint64_t T = 30, L = 2, H = 4, H_kv = 2, d = 8;
  auto cache = make(c);
  const SeqId id = cache->create_sequence();
  InputStream rng(3);
  for (std::uint64_t t = 0; t < T; ++t) cache->decode({id}, rng.rows(1, c.d_model));
  const Stats s = cache->stats();
  const std::uint64_t triangle = T * (T + 1) / 2;
  EXPECT_EQ(s.kv_projection_rows, holds_kv() ? L * T : L * triangle);
  EXPECT_EQ(s.qk_dot_products, L * H * triangle);
  if (holds_kv()) {
    // Each KV head's rows are read once per key for its whole GQA group.
    EXPECT_EQ(s.kv_bytes_read, L * H_kv * triangle * 2 * d * sizeof(float));
  }
}

// bytes_held follows the formula, and dropping a sequence lowers it by exactly its share.
TEST_P(CpuImpl, BytesHeldFollowsFormulaAndDropReleasesShare) {
  const ModelConfig c = shape(3, 24, 4, 2, 8, 16);
  const std::uint64_t per_token =
      holds_kv() ? 2u * 3 * 2 * 8 * sizeof(float)   // 2 * L * H_kv * d * 4
                 : 3u * 24 * sizeof(float);         // L * d_model * 4 (stored layer inputs)
  auto cache = make(c);
  InputStream rng(9);
  const SeqId a = cache->create_sequence(), b = cache->create_sequence();
  cache->prefill(a, rng.rows(5, c.d_model));
  cache->prefill(b, rng.rows(3, c.d_model));
  cache->decode({a, b}, rng.rows(2, c.d_model));
  const SeqId f = cache->fork(a);  // 6 tokens
  cache->truncate(f, 4);
  if (Registry::global().get(GetParam().impl).caps.blocks) {
    // One block of 16 tokens each for a (shared by f, truncated within it) and b.
    const std::uint64_t block = 16 * per_token;
    EXPECT_EQ(cache->stats().bytes_held, 2 * block);
    EXPECT_EQ(cache->stats().blocks_in_use, 2u);
    cache->drop(b);
    EXPECT_EQ(cache->stats().bytes_held, block);
    cache->drop(a);  // f still references the shared block
    EXPECT_EQ(cache->stats().bytes_held, block);
    cache->reset();
    EXPECT_EQ(cache->stats().bytes_held, 0u);
    EXPECT_EQ(cache->stats().blocks_in_use, 0u);
    return;
  }
  EXPECT_EQ(cache->stats().bytes_held, (6 + 4 + 4) * per_token);
  EXPECT_GE(cache->stats().bytes_reserved, cache->stats().bytes_held);

  const Stats before = cache->stats();
  cache->drop(b);
  EXPECT_EQ(before.bytes_held - cache->stats().bytes_held, 4 * per_token);
  EXPECT_LT(cache->stats().bytes_reserved, before.bytes_reserved);
  cache->reset();
  EXPECT_EQ(cache->stats().bytes_held, 0u);
}

TEST_P(CpuImpl, RejectsNonFp32DtypeNamingIt) {
  ModelConfig c = shape(1, 16, 2, 2, 8, 8);
  c.dtype = DType::f16;
  try {
    make(c);
    FAIL() << "created with dtype fp16";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("fp16"), std::string::npos) << e.what();
  }
}

TEST_P(CpuImpl, ReadKvOnlyWhenHoldingACache) {
  auto cache = make(shape(1, 16, 2, 2, 8, 8));
  const SeqId id = cache->create_sequence();
  cache->prefill(id, InputStream(1).rows(3, 16));
  if (holds_kv()) {
    EXPECT_EQ(cache->read_kv(id, 0, 1).length, 3);
  } else {
    EXPECT_THROW(cache->read_kv(id, 0, 0), Error);
  }
}

INSTANTIATE_TEST_SUITE_P(Impls, CpuImpl, testing::Values(ImplParam{"naive", 1}, ImplParam{"cpu_cached", 1},
                                         ImplParam{"cpu_cached", 2}, ImplParam{"paged", 1},
                                         ImplParam{"paged", 2}), param_name);

// ---- paged: its options and its budget -----------------------------------------------------

std::string error_of(const std::function<void()>& call) {
  try {
    call();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Paged, BadBlockSizesAndBudgetsAreNamedErrorsAtCreation) {
  const ModelConfig c = shape(2, 16, 2, 2, 8, 64);  // a block: 16 x L 2 x 2 x H_kv 2 x d 8 x 4 B
  for (int bad : {0, -3}) {
    ImplOptions o;
    o.block_size = bad;
    const std::string e = error_of([&] { make_cache("paged", c, o); });
    EXPECT_NE(e.find("block_size must be >= 1"), std::string::npos) << e;
    EXPECT_NE(e.find("got " + std::to_string(bad)), std::string::npos) << e;
  }
  ImplOptions o;
  o.kv_budget_bytes = 16 * 2 * 2 * 2 * 8 * 4 - 1;
  const std::string e = error_of([&] { make_cache("paged", c, o); });
  EXPECT_NE(e.find("kv_budget_bytes 4095 cannot hold one block of 4096 bytes"), std::string::npos)
      << e;
  o.kv_budget_bytes += 1;
  EXPECT_EQ(error_of([&] { make_cache("paged", c, o); }), "");
}

TEST(Paged, AStepOverTheBudgetIsANamedErrorAndChangesNothing) {
  const ModelConfig c = shape(1, 16, 2, 1, 8, 64);
  ImplOptions o;
  o.block_size = 4;
  o.poison_unused = true;
  const std::uint64_t block = 4 * 2 * 1 * 8 * 4;
  o.kv_budget_bytes = 3 * block + 5;  // 3 blocks
  auto cache = make_cache("paged", c, o);
  InputStream rng(3);
  const SeqId a = cache->create_sequence();
  cache->prefill(a, rng.rows(6, 16));    // 2 blocks
  const SeqId f = cache->fork(a);        // shares both
  EXPECT_EQ(cache->stats().blocks_in_use, 2u);
  const Stats before = cache->stats();
  const KvRows rows = cache->read_kv(a, 0, 0);
  // 3 more rows for a: a copy of the shared half-full block and a new block; 1 is free.
  const std::string e = error_of([&] { cache->prefill(a, rng.rows(3, 16)); });
  EXPECT_NE(e.find("needs 2 more blocks of 256 bytes, 1 free of the budget's 3 blocks"),
            std::string::npos) << e;
  EXPECT_NE(e.find("kv_budget_bytes " + std::to_string(o.kv_budget_bytes)), std::string::npos) << e;
  EXPECT_EQ(cache->length(a), 6);
  EXPECT_EQ(cache->stats().blocks_in_use, before.blocks_in_use);
  EXPECT_EQ(cache->stats().kv_projection_rows, before.kv_projection_rows);
  EXPECT_EQ(cache->stats().cow_copies, 0u);
  EXPECT_EQ(cache->read_kv(a, 0, 0).k, rows.k);
  // Both write into the shared block in one step: the first copies, the second then owns
  // the old one: 1 block, which fits.
  cache->decode({a, f}, rng.rows(2, 16));
  EXPECT_EQ(cache->stats().cow_copies, 1u);
  EXPECT_EQ(cache->stats().blocks_in_use, 3u);
  EXPECT_EQ(cache->stats().blocks_free, 0u);
}

}  // namespace
}  // namespace kvbench
