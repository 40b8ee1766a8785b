// The workloads' op counts against the formulas (DESIGN.md): a generation of T tokens costs a
// cache L*T projection rows and a cache-less decoder L*T(T+1)/2; both make H*L*T(T+1)/2
// query-key dot products. Checked on the test fakes, whose counters follow the contract.
// The serving workloads' memory on the real cpu_cached and paged (exact bytes held).
#include <gtest/gtest.h>

#include <map>

#include "harness/bench/bandwidth.h"
#include "harness/bench/workload.h"
#include "harness/error.h"
#include "tests/bench/fake_impls.h"

namespace kvbench::bench {
namespace {

ModelConfig tiny() {
  return ModelConfig::make(2, 16, 4, 2, 8, 64);
}

struct Fakes {
  Registry registry;
  Fakes() { testing::register_fake_impls(registry); }
  std::unique_ptr<KvCache> make(const std::string& name, const ModelConfig& c) {
    return registry.get(name).create(ModelWeights::from_seed(c), ImplOptions{});
  }
};

TEST(Workload, GenerationCountsFollowTheFormulas) {
  Fakes fakes;
  const ModelConfig c = tiny();
  const std::uint64_t T = 10, L = c.layers, H = c.heads;
  const auto inputs = benchmark_inputs(c, static_cast<int>(T), 5);
  for (const char* name : {"fake_cached", "fake_naive"}) {
    auto cache = fakes.make(name, c);
    const Stats before = cache->stats();
    const SeqId id = generate(*cache, inputs, static_cast<int>(T));
    const Stats d = stats_delta(before, cache->stats());
    EXPECT_EQ(cache->length(id), static_cast<int>(T));
    const bool cached = std::string(name) == "fake_cached";
    EXPECT_EQ(d.kv_projection_rows, cached ? L * T : L * T * (T + 1) / 2) << name;
    EXPECT_EQ(d.qk_dot_products, H * L * T * (T + 1) / 2) << name;
    if (cached) EXPECT_EQ(d.bytes_held, T * c.kv_bytes_per_token());
  }
}

// The bench times create_sequence and decode_tokens apart: together they are generate().
TEST(Workload, DecodeTokensIntoACreatedSequenceIsGenerate) {
  Fakes fakes;
  const ModelConfig c = tiny();
  const auto inputs = benchmark_inputs(c, 7, 5);
  auto whole = fakes.make("fake_cached", c);
  auto parts = fakes.make("fake_cached", c);
  const SeqId a = generate(*whole, inputs, 7);
  const SeqId b = parts->create_sequence();
  decode_tokens(*parts, b, inputs, 7);
  EXPECT_EQ(parts->length(b), 7);
  const Stats sa = whole->stats(), sb = parts->stats();
  EXPECT_EQ(sa.kv_projection_rows, sb.kv_projection_rows);
  EXPECT_EQ(sa.qk_dot_products, sb.qk_dot_products);
  for (int l = 0; l < c.layers; ++l) {
    EXPECT_EQ(whole->read_kv(a, l, 0).k, parts->read_kv(b, l, 0).k) << l;
  }
  EXPECT_THROW(decode_tokens(*parts, b, benchmark_inputs(c, 3, 1), 4), Error);
}

TEST(Workload, GenerateRejectsTooFewInputs) {
  Fakes fakes;
  auto cache = fakes.make("fake_cached", tiny());
  EXPECT_THROW(generate(*cache, benchmark_inputs(tiny(), 3, 1), 4), Error);
  EXPECT_THROW(generate(*cache, benchmark_inputs(tiny(), 3, 1), 0), Error);
}

TEST(Workload, DecodeStepRepeatsAtOnePositionWithEitherRollback) {
  Fakes fakes;
  const ModelConfig c = tiny();
  for (Rollback rollback : {Rollback::truncate, Rollback::fork}) {
    auto cache = fakes.make("fake_naive", c);
    DecodeAtPosition at(*cache, rollback, 3);
    at.extend_to(5, 2);  // chunks 2 + 2 + 1
    at.extend_to(12, 4);
    EXPECT_EQ(at.position(), 12);
    for (int repeat = 0; repeat < 3; ++repeat) {
      at.before_step();
      const Stats before = cache->stats();
      at.step();
      const Stats d = stats_delta(before, cache->stats());
      at.after_step();
      // The step at position t projects t + 1 rows per layer (no cache) and makes H (t + 1)
      // dot products per layer; the rollback leaves the sequence at t again.
      EXPECT_EQ(d.kv_projection_rows, static_cast<std::uint64_t>(c.layers) * 13);
      EXPECT_EQ(d.qk_dot_products, static_cast<std::uint64_t>(c.layers) * c.heads * 13);
      ASSERT_EQ(cache->sequences().size(), 1u);
      EXPECT_EQ(cache->length(cache->sequences().front()), 12);
    }
    EXPECT_THROW(at.extend_to(11), Error);             // cannot shrink
    EXPECT_THROW(at.extend_to(c.capacity), Error);     // a step needs a free slot
  }
}

TEST(Workload, RollbackNeedsTruncateOrFork) {
  ImplInfo info;
  info.name = "stiff";
  info.caps.truncate = false;
  info.caps.fork = true;
  EXPECT_EQ(rollback_for(info), Rollback::fork);
  info.caps.fork = false;
  EXPECT_THROW(rollback_for(info), Error);
}

TEST(Bandwidth, SumWordsIsTheWrappingSum) {
  // Every word distinct and large enough to wrap: a dropped or doubled stream shows.
  for (std::size_t n : {64, 128, 4096}) {
    std::vector<std::uint64_t> words(n);
    std::uint64_t expected = 0;
    for (std::size_t i = 0; i < n; ++i) {
      words[i] = 0x9e3779b97f4a7c15ULL * (i + 1);
      expected += words[i];
    }
    EXPECT_EQ(sum_words(words.data(), n), expected) << n << " words";
  }
}

TEST(Bandwidth, MeasuresPositiveRatesOverTheRoundedBuffer) {
  const Bandwidth b = measure_bandwidth((1 << 20) + 511, 2);
  EXPECT_EQ(b.buffer_bytes, std::size_t{1} << 20);
  EXPECT_EQ(b.passes, 2);
  EXPECT_GT(b.read_bytes_per_second, 0);
  EXPECT_GT(b.copy_bytes_per_second, 0);
  EXPECT_THROW(measure_bandwidth(100, 1), Error);
  EXPECT_THROW(measure_bandwidth(1 << 20, 0), Error);
}

TEST(Bandwidth, EveryReadVariantIsTheWrappingSum) {
  // Every variant of the reference's kernel reads every word once: one that skips or
  // rereads a stream (or drops the tail) would overstate the bandwidth it reports.
  for (std::size_t n : {256, 512, 4096 + 256}) {
    std::vector<std::uint64_t> words(n);
    std::uint64_t expected = 0;
    for (std::size_t i = 0; i < n; ++i) {
      words[i] = 0x9e3779b97f4a7c15ULL * (i + 1);
      expected += words[i];
    }
    for (const auto& [streams, vectors] : read_variants()) {
      EXPECT_EQ(sum_words_variant(words.data(), n, streams, vectors), expected)
          << n << " words, " << streams << " streams x " << vectors << " vectors";
    }
  }
  EXPECT_THROW(sum_words_variant(nullptr, 256, 3, 1), Error);
}

TEST(Bandwidth, ReferenceIsMeasuredPerThreadCountOverEveryVariant) {
  const std::vector<ReadReference> refs = measure_read_reference(4 << 20, {1, 2}, 2);
  ASSERT_EQ(refs.size(), 2u);
  for (std::size_t i = 0; i < refs.size(); ++i) {
    const ReadReference& r = refs[i];
    EXPECT_EQ(r.threads, static_cast<int>(i) + 1);
    EXPECT_EQ(r.passes, 2);
    EXPECT_EQ(r.buffer_bytes, std::size_t{4} << 20);  // whole 2 KiB blocks per thread
    ASSERT_EQ(r.variants.size(), read_variants().size());
    double best = 0;
    for (const ReadVariant& v : r.variants) {
      EXPECT_GT(v.best_bytes_per_second, 0);
      EXPECT_GE(v.best_bytes_per_second, v.median_bytes_per_second);
      best = std::max(best, v.best_bytes_per_second);
    }
    // The reference is the best variant's best pass, its median beside it.
    EXPECT_EQ(r.best_bytes_per_second, best);
    EXPECT_LE(r.median_bytes_per_second, r.best_bytes_per_second);
    EXPECT_FALSE(r.best_variant.empty());
  }
  EXPECT_THROW(measure_read_reference(4096, {1}, 1), Error);
  EXPECT_THROW(measure_read_reference(4 << 20, {0}, 1), Error);
}

}  // namespace
}  // namespace kvbench::bench

namespace kvbench::bench {
namespace {

// The beam search on the real contiguous and block-pool caches (the built-ins this test's
// main registers): cpu_cached copies every beam's history; paged shares the prompt's blocks
// and each survivor's partial block after a fork. W = 4, P = 32 (two full blocks of 16),
// S = 8, a prune after step 4. paged: after step 1 each beam has its own partial block (the
// prompt's blocks are full, so no copy), 2 + 4 blocks; the prune frees 2 and re-shares 2,
// and the first write into a shared partial block copies it (copy-on-write): 6 blocks again.
TEST(Workload, BeamSearchMemoryContiguousAgainstBlockPool) {
  const ModelConfig c = ModelConfig::make(1, 16, 2, 1, 8, 64);
  const std::uint64_t per_token = c.kv_bytes_per_token();
  BeamShape shape;
  shape.width = 4;
  shape.prompt = 32;
  shape.steps = 8;
  shape.prune_every = 4;
  std::map<std::string, BeamMemory> seen;
  for (const char* name : {"cpu_cached", "paged"}) {
    const ImplInfo* impl = Registry::global().find(name);
    if (!impl) GTEST_SKIP() << name << " not registered";
    ImplOptions options;
    options.block_size = 16;
    auto cache = impl->create(ModelWeights::from_seed(c), options);
    BeamSearch search(*cache, shape, 11);
    for (int round = 0; round < 2; ++round) {
      search.start();
      while (!search.done()) {
        search.step();
        search.after_step();
      }
      search.finish();
      EXPECT_TRUE(cache->sequences().empty()) << name;
    }
    EXPECT_EQ(search.forks_per_round(), 3 + 2) << name;
    EXPECT_EQ(search.prunes_per_round(), 1) << name;
    EXPECT_EQ(search.memory().samples, 2 * (1 + 8)) << name;
    seen[name] = search.memory();
  }
  // cpu_cached: W sequences of 32 + 8 tokens at the end.
  EXPECT_EQ(seen["cpu_cached"].held_peak, 4 * 40 * per_token);
  // paged: 6 blocks of 16 tokens at the peak, 2 (the shared prompt) right after the fork.
  EXPECT_EQ(seen["paged"].held_peak, 6 * 16 * per_token);
  EXPECT_DOUBLE_EQ(seen["paged"].held_mean, (2.0 + 8 * 6.0) / 9 * 16 * per_token);
  EXPECT_LT(seen["paged"].held_peak, seen["cpu_cached"].held_peak);
}

// The prefix prefill: 90 % rounded down to whole blocks; a cache without a prefix cache hits
// nothing, and every round leaves no sequence behind.
TEST(Workload, PrefixPrefillSharesWholeBlocksOfNinetyPercent) {
  EXPECT_EQ(cached_prefix_tokens(512, 16), 448);
  EXPECT_EQ(cached_prefix_tokens(100, 16), 80);
  EXPECT_EQ(cached_prefix_tokens(10, 16), 0);
  EXPECT_EQ(cached_prefix_tokens(160, 1), 144);
  EXPECT_THROW(cached_prefix_tokens(10, 0), Error);
  Fakes fakes;
  const ModelConfig c = tiny();
  auto cache = fakes.make("fake_cached", c);
  PrefixPrefill prefix(*cache, 40, 16, 3);
  EXPECT_EQ(prefix.prefix(), 32);
  const Stats before = cache->stats();
  prefix.prepare();
  prefix.cold();
  prefix.warm();
  prefix.finish();
  EXPECT_TRUE(cache->sequences().empty());
  const Stats d = stats_delta(before, cache->stats());
  // L x (32 prefix rows + 40 cold + 40 warm) projected: nothing reused.
  EXPECT_EQ(d.kv_projection_rows, static_cast<std::uint64_t>(c.layers) * (32 + 40 + 40));
  EXPECT_EQ(cache->stats().prefix_hit_tokens, 0u);
}

}  // namespace
}  // namespace kvbench::bench
