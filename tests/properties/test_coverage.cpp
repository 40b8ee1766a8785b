// Tests of the coverage that `verify` reports: the KvCache observer hook, the recorder's
// exact summary of a known call sequence on a real cache, and run_property returning it.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <memory>
#include <set>
#include <vector>

#include "harness/error.h"
#include "harness/registry.h"
#include "harness/weights.h"
#include "properties/coverage.h"
#include "properties/property.h"
#include "properties/runner.h"

namespace kvbench::props {
namespace {

// L=2 d_model=8 H=4 H_kv=2 d=4, capacity 16.
ModelConfig coverage_config() { return ModelConfig::make(2, 8, 4, 2, 4, 16, DType::f32, 3); }

std::vector<float> rows(int n, int d_model) {
  return std::vector<float>(static_cast<std::size_t>(n * d_model), 0.25f);
}

// One call of every kind on `cache` (L=2 d_model=8 H=4 H_kv=2, capacity 16), plus calls
// the harness answers itself (not counted) and five rejected ones.
void drive(KvCache& k) {
  const int dm = k.config().d_model;
  const SeqId a = k.create_sequence();                      // create 1
  k.prefill(a, rows(5, dm));                                // prefill 1, chunk 5, T 5
  k.prefill(a, rows(0, dm));                                // 0 rows: the impl is not called
  k.prefill(a, rows(2, dm));                                // prefill 2, prefill+ 1, T 7
  const SeqId b = k.fork(a);                                // fork 1
  k.decode({a, b}, rows(2, dm));                            // decode 1, batched 1, pos 7
  k.decode({b}, rows(1, dm));                               // decode 2, pos 8, T 9
  k.decode({}, {});                                         // no ids: not counted
  k.truncate(b, 3);                                         // truncate 1
  k.truncate(b, 3);                                         // same length: not counted
  (void)k.read_kv(a, 1, 1);                                 // read_kv 1
  EXPECT_THROW(k.prefill(b, rows(1, dm + 1)), Error);       // rejected 1: width
  EXPECT_THROW(k.decode({a, a}, rows(2, dm)), Error);       // rejected 2: duplicate id
  EXPECT_THROW(k.truncate(a, 99), Error);                   // rejected 3: length
  EXPECT_THROW(k.drop(42), Error);                          // rejected 4: unknown id
  EXPECT_THROW((void)k.read_kv(a, 5, 0), Error);            // rejected 5: layer
  k.drop(b);                                                // drop 1
  const SeqId c = k.create_sequence();                      // create 2
  k.decode({c}, rows(1, dm));                               // decode 3, pos 0
  (void)k.length(a);                                        // queries are not counted
  (void)k.stats();
}

void expect_driven(const Coverage& c, int threads) {
  EXPECT_EQ(c.max_tokens, 9);
  EXPECT_EQ(c.max_decode_position, 8);
  EXPECT_EQ(c.max_prefill_chunk, 5);
  EXPECT_EQ(c.max_decode_batch, 2);
  EXPECT_EQ(c.layers, std::set<int>({2}));
  EXPECT_EQ(c.group_sizes, std::set<int>({2}));
  EXPECT_EQ(c.max_head_dim, 4);
  EXPECT_EQ(c.max_d_model, 8);
  EXPECT_EQ(c.dtypes, std::set<DType>({DType::f32}));
  EXPECT_EQ(c.threads, std::set<int>({threads}));
  EXPECT_EQ(c.ops.create, 2u);
  EXPECT_EQ(c.ops.prefill, 2u);
  EXPECT_EQ(c.ops.prefill_nonempty, 1u);
  EXPECT_EQ(c.ops.decode, 3u);
  EXPECT_EQ(c.ops.batched_decode, 1u);
  EXPECT_EQ(c.ops.fork, 1u);
  EXPECT_EQ(c.ops.truncate, 1u);
  EXPECT_EQ(c.ops.drop, 1u);
  EXPECT_EQ(c.ops.read_kv, 1u);
  EXPECT_EQ(c.ops.rejected, 5u);
  EXPECT_EQ(c.ops.total(), 16u);  // prefill+ and batched are subsets
}

TEST(Coverage, RecorderCountsWhatReachedARealCache) {
  ImplOptions options;
  options.threads = 2;
  options.poison_unused = true;
  auto cache = make_cache("cpu_cached", coverage_config(), options);
  CoverageRecorder recorder;
  EXPECT_EQ(cache_observer(), &recorder);
  drive(*cache);
  expect_driven(recorder.coverage(), 2);
  EXPECT_EQ(recorder.coverage().brief(),
            "[T≤9 pos≤8 prefill≤5 batch≤2 L2 H/Hkv 2 d≤4 fp32 threads 2; ops: create prefill "
            "prefill+ decode batched fork truncate drop read_kv rejected]");
  EXPECT_EQ(recorder.coverage().summary(),
            "T≤9 (decode position ≤8, prefill chunk ≤5), batch≤2, L 2, H/H_kv 2, d≤4, "
            "d_model≤8, fp32, threads 2; ops: create 2, prefill 2, prefill+ 1, decode 3, "
            "batched 1, fork 1, truncate 1, drop 1, read_kv 1, rejected 5");
}

TEST(Coverage, NothingIsRecordedWithTheObserverUnset) {
  EXPECT_EQ(cache_observer(), nullptr);
  auto cache = make_cache("cpu_cached", coverage_config());
  drive(*cache);  // no observer: must not crash, and nothing to record into
  CoverageRecorder recorder;
  EXPECT_TRUE(recorder.coverage().empty());  // the calls before it are not seen
  {
    ScopedCacheObserver none(nullptr);  // unset inside the recorder's lifetime
    EXPECT_EQ(cache_observer(), nullptr);
    drive(*make_cache("cpu_cached", coverage_config()));
  }
  EXPECT_TRUE(recorder.coverage().empty());
  EXPECT_EQ(cache_observer(), &recorder);  // restored
  cache->reset();  // reset() drops the 2 live sequences through drop(): 2 drops
  EXPECT_EQ(recorder.coverage().ops.drop, 2u);
  EXPECT_EQ(recorder.coverage().ops.total(), 2u);
}

TEST(Coverage, RecorderRestoresThePreviousObserver) {
  CoverageRecorder outer;
  {
    CoverageRecorder inner;
    EXPECT_EQ(cache_observer(), &inner);
    make_cache("cpu_cached", coverage_config())->create_sequence();
    EXPECT_EQ(inner.coverage().ops.create, 1u);
  }
  EXPECT_EQ(cache_observer(), &outer);
  EXPECT_TRUE(outer.coverage().empty());
}

// A cache that forwards to another (as plugins and the planted tests do): only the calls
// made on the outer cache are counted, not the inner cache's copies of them.
class Forwarding final : public KvCache {
 public:
  Forwarding(std::shared_ptr<const ModelWeights> w, const ImplOptions& o)
      : KvCache("forwarding", w, o), inner_(Registry::global().get("cpu_cached").create(w, o)) {}

 private:
  void do_create(SeqId id) override { map_[id] = inner_->create_sequence(); }
  void do_prefill(SeqId id, const float* x, int n, float* out) override {
    const std::size_t dm = static_cast<std::size_t>(config().d_model);
    const auto y = inner_->prefill(map_.at(id), std::vector<float>(x, x + n * dm));
    std::copy(y.begin(), y.end(), out);
  }
  void do_decode(const std::vector<SeqId>& ids, const float* x, float* out) override {
    const std::size_t dm = static_cast<std::size_t>(config().d_model);
    std::vector<SeqId> inner_ids;
    for (SeqId id : ids) inner_ids.push_back(map_.at(id));
    const auto y = inner_->decode(inner_ids, std::vector<float>(x, x + ids.size() * dm));
    std::copy(y.begin(), y.end(), out);
  }
  void do_fork(SeqId parent, SeqId child) override { map_[child] = inner_->fork(map_.at(parent)); }
  void do_drop(SeqId id) override {
    inner_->drop(map_.at(id));
    map_.erase(id);
  }
  void do_truncate(SeqId id, int length) override { inner_->truncate(map_.at(id), length); }
  bool holds_kv_cache() const override { return true; }
  KvRows do_read_kv(SeqId id, int layer, int kv_head) const override {
    return inner_->read_kv(map_.at(id), layer, kv_head);
  }
  Memory memory_in_use() const override {
    const Stats s = inner_->stats();
    return Memory{s.bytes_held, s.bytes_reserved};
  }

  std::unique_ptr<KvCache> inner_;
  std::map<SeqId, SeqId> map_;
};

TEST(Coverage, CallsOfAWrappedInnerCacheAreNotCountedTwice) {
  Forwarding cache(ModelWeights::from_seed(coverage_config()), ImplOptions{});
  CoverageRecorder recorder;
  drive(cache);
  expect_driven(recorder.coverage(), 1);
}

TEST(Coverage, MergeTakesMaximaUnionsAndSums) {
  Coverage a, b;
  CacheEvent decode;
  decode.op = CacheOp::decode;
  decode.rows = 3;
  decode.length_before = 99;
  decode.length_after = 100;
  a.add(ModelConfig::make(1, 8, 4, 1, 4), ImplOptions{}, decode);
  CacheEvent prefill;
  prefill.op = CacheOp::prefill;
  prefill.rows = 64;
  prefill.length_before = 0;
  prefill.length_after = 64;
  ImplOptions two;
  two.threads = 2;
  b.add(ModelConfig::make(3, 16, 4, 4, 8, 128, DType::bf16), two, prefill);
  CacheEvent rejected;
  rejected.op = CacheOp::fork;
  rejected.rejected = true;
  b.add(ModelConfig::make(2, 8, 8, 8, 2), ImplOptions{}, rejected);  // counts, adds no shape
  a.merge(b);
  EXPECT_EQ(a.max_tokens, 100);
  EXPECT_EQ(a.max_decode_position, 99);
  EXPECT_EQ(a.max_prefill_chunk, 64);
  EXPECT_EQ(a.max_decode_batch, 3);
  EXPECT_EQ(a.layers, std::set<int>({1, 3}));
  EXPECT_EQ(a.group_sizes, std::set<int>({1, 4}));
  EXPECT_EQ(a.max_head_dim, 8);
  EXPECT_EQ(a.dtypes, std::set<DType>({DType::f32, DType::bf16}));
  EXPECT_EQ(a.threads, std::set<int>({1, 2}));
  EXPECT_EQ(a.ops.decode, 1u);
  EXPECT_EQ(a.ops.batched_decode, 1u);
  EXPECT_EQ(a.ops.prefill, 1u);
  EXPECT_EQ(a.ops.prefill_nonempty, 0u);
  EXPECT_EQ(a.ops.rejected, 1u);
  EXPECT_EQ(a.ops.fork, 0u);
}

TEST(Coverage, SetsPrintAsRangesOrLists) {
  EXPECT_EQ(format_set({}), "");
  EXPECT_EQ(format_set({3}), "3");
  EXPECT_EQ(format_set({1, 2}), "1,2");
  EXPECT_EQ(format_set({1, 2, 3}), "1-3");
  EXPECT_EQ(format_set({1, 2, 4, 8}), "1,2,4,8");
  EXPECT_EQ(Coverage{}.brief(), "[no call reached the cache]");
}

// ---- run_property --------------------------------------------------------------------------

rc::detail::TestParams cases(int n) {
  rc::detail::TestParams p;
  p.seed = 99;
  p.maxSuccess = n;
  return p;
}

TEST(Coverage, RunPropertyReturnsTheCoverageOfItsCases) {
  // A body with a known call sequence: every case creates one sequence and prefills 3 rows.
  const Property p{"three_rows", "", nullptr, [](const ImplInfo& impl) {
                     auto w = ModelWeights::from_seed(coverage_config());
                     auto k = impl.create(w, ImplOptions{});
                     k->prefill(k->create_sequence(), rows(3, 8));
                   }};
  const ImplInfo& cpu = Registry::global().get("cpu_cached");
  const Outcome o = run_property(p, cpu, cases(7));
  ASSERT_EQ(o.verdict, Verdict::passed);
  EXPECT_EQ(o.coverage.ops.create, 7u);
  EXPECT_EQ(o.coverage.ops.prefill, 7u);
  EXPECT_EQ(o.coverage.ops.total(), 14u);
  EXPECT_EQ(o.coverage.max_tokens, 3);
  EXPECT_EQ(o.coverage.max_decode_position, -1);
  EXPECT_EQ(cache_observer(), nullptr);  // the runner's recorder is gone

  // A real property reaches decode on the real implementation.
  const Outcome d = run_property(find_property("decode_matches_reference"), cpu, cases(5));
  ASSERT_EQ(d.verdict, Verdict::passed) << d.report;
  EXPECT_GE(d.coverage.ops.create, 5u);
  EXPECT_GE(d.coverage.ops.decode, 5u);
  EXPECT_GE(d.coverage.max_decode_position, 0);
  EXPECT_GT(d.coverage.max_tokens, d.coverage.max_decode_position);
  EXPECT_FALSE(d.coverage.layers.empty());

  // A skipped run reports nothing.
  const Property never{"never", "",
                       [](const ImplInfo&, std::string* why) {
                         *why = "test";
                         return false;
                       },
                       [](const ImplInfo&) {}};
  EXPECT_TRUE(run_property(never, cpu, cases(3)).coverage.empty());
}

}  // namespace
}  // namespace kvbench::props
