// KvCache: the one interface every implementation satisfies.
//
// The public methods are non-virtual: they check every argument and the state first, and
// only then call the implementation's private hooks (do_*). So every implementation rejects
// bad input with the same kvbench::Error messages, and a rejected call leaves the cache as
// it was. An implementation writes only the hooks.
//
// Rows are row-major float vectors: n rows of d_model floats are n * d_model floats.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "harness/config.h"
#include "harness/weights.h"

namespace kvbench {

using SeqId = std::int64_t;

// Counters an implementation keeps, so that op counts can be checked exactly.
struct Stats {
  // Bytes of cached state for the tokens held now: for a K/V cache 2*L*H_kv*d*T*sizeof(elem)
  // summed over sequences; for a block pool (Capabilities::blocks) blocks_in_use x the bytes
  // of one block (shared blocks once, a partly filled block whole); for naive, the layer
  // inputs it keeps.
  std::uint64_t bytes_held = 0;
  // Bytes allocated for that state (>= bytes_held: caches allocate capacity up front).
  std::uint64_t bytes_reserved = 0;
  // (token, layer) pairs for which the K and V rows were computed (projected).
  std::uint64_t kv_projection_rows = 0;
  // (query head, key position, layer) triples whose q.k dot product was computed.
  std::uint64_t qk_dot_products = 0;
  // Bytes of K and V rows read by the attention (a KV head shared by a GQA group counts
  // once per read the implementation actually makes).
  std::uint64_t kv_bytes_read = 0;

  // Block pools (paged; 0 for implementations without blocks). Gauges, like bytes_held:
  // blocks referenced by some sequence's block table (a block shared by forks counts once);
  // blocks that no sequence references but that still hold reusable content (prefix caches:
  // evictable); blocks allocated and free for reuse.
  std::uint64_t blocks_in_use = 0;
  std::uint64_t blocks_cached = 0;
  std::uint64_t blocks_free = 0;
  // Counters: prompt tokens whose K/V came from cached blocks instead of being computed;
  // cached blocks evicted to make room; partly filled shared blocks copied on a write
  // (copy-on-write after fork).
  std::uint64_t prefix_hit_tokens = 0;
  std::uint64_t evictions = 0;
  std::uint64_t cow_copies = 0;
};

// One sequence's cached K and V rows for one layer and KV head, converted to float.
struct KvRows {
  int length = 0;          // tokens held
  int head_dim = 0;        // d
  std::vector<float> k;    // [length, d]
  std::vector<float> v;    // [length, d]
};

// Construction options shared by all implementations.
struct ImplOptions {
  int threads = 1;             // worker threads an implementation may use (>= 1)
  bool poison_unused = false;  // fill unused cache slots with NaN (verification runs)
  // Block pools (paged): tokens per block (>= 1), and the most bytes of K/V blocks the pool
  // may hold (0: grow as needed; else at least one block). Ignored by implementations
  // without blocks; block_size < 1 is rejected by every implementation's constructor.
  int block_size = 16;
  std::uint64_t kv_budget_bytes = 0;
  // Prefix caches (prefix_cached), a test hook: the lookup key keeps only the low
  // `prefix_hash_bits` bits of each block's chained hash (0: the full 64 bits), so that with a
  // few bits unrelated blocks collide in every run and the content check is what keeps a
  // lookup right. Ignored by implementations without a prefix cache; 0..64.
  int prefix_hash_bits = 0;
};

// What prefill returns: every row's output, or only the last row's (what serving needs to
// sample the next token; a prefix cache then computes nothing for the rows it reuses).
enum class PrefillRows { all, last };

class KvCache;

// ---- Observing what an implementation was asked to do (verification coverage) -----------
//
// While an observer is installed on a thread, every public KvCache call made on that thread
// is reported to it once the call has returned or thrown. Calls that the harness answers
// without the implementation (prefill of 0 rows, decode of no ids, truncate to the current
// length, length(), sequences(), stats()) are not reported unless they throw. Calls made
// from inside another call (a wrapper's inner cache) are not reported: the observer sees
// what the caller asked of the outermost cache. With no observer installed a call costs
// one thread_local load and one branch more.

enum class CacheOp { create, prefill, decode, fork, truncate, drop, read_kv };

struct CacheEvent {
  CacheOp op = CacheOp::create;
  // The call threw (its checks failed, or the implementation threw): the state is as it was,
  // and the fields below are 0.
  bool rejected = false;
  // prefill: rows appended; decode: sequences in the step (the batch); others: 0.
  int rows = 0;
  // The longest sequence the call touched, before and after it: prefill (the sequence),
  // decode (the longest in the batch; `before` is the largest position decoded), fork
  // (parent = child), truncate (before: old length, after: new), drop (before: its length,
  // after: 0), read_kv (both: the length read), create (both 0).
  int length_before = 0;
  int length_after = 0;
};

class KvCacheObserver {
 public:
  virtual ~KvCacheObserver() = default;
  // `cache` gives the config and options of the instance. Must not throw, and must not call
  // back into `cache`'s mutating methods.
  virtual void on_call(const KvCache& cache, const CacheEvent& event) noexcept = 0;
};

// RETURNS: the observer installed on this thread, or nullptr.
KvCacheObserver* cache_observer();

// Installs `observer` on this thread for the scope's lifetime (nullptr: none), restoring
// the previous one when it ends.
class ScopedCacheObserver {
 public:
  explicit ScopedCacheObserver(KvCacheObserver* observer);
  ~ScopedCacheObserver();
  ScopedCacheObserver(const ScopedCacheObserver&) = delete;
  ScopedCacheObserver& operator=(const ScopedCacheObserver&) = delete;

 private:
  KvCacheObserver* previous_;
};

class KvCache {
 public:
  virtual ~KvCache() = default;
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;

  const ModelConfig& config() const { return weights_->config; }
  const ModelWeights& weights() const { return *weights_; }

  // RETURNS: a new, empty sequence's id (ids are never reused until reset()).
  SeqId create_sequence();

  // Phase 1: appends the n = tokens.size() / d_model prompt rows to sequence `id`.
  // REQUIRES: id live; tokens.size() a multiple of d_model; all finite;
  //           length(id) + n <= capacity.
  // RETURNS: the n output rows [n, d_model] (the last layer's outputs); with
  // PrefillRows::last only the last row [1, d_model] (none when n = 0).
  std::vector<float> prefill(SeqId id, const std::vector<float>& tokens,
                             PrefillRows rows = PrefillRows::all);

  // Phase 2: one token for each sequence in `ids` (distinct, live, below capacity).
  // REQUIRES: tokens.size() == ids.size() * d_model; all finite.
  // RETURNS: one output row per sequence [ids.size(), d_model], in the order of `ids`.
  std::vector<float> decode(const std::vector<SeqId>& ids, const std::vector<float>& tokens);

  // Beam search: a new sequence with `parent`'s whole history; both then diverge.
  SeqId fork(SeqId parent);
  // Releases the sequence and its memory.
  void drop(SeqId id);
  // Rollback: keeps the first `length` tokens. REQUIRES: 0 <= length <= length(id).
  void truncate(SeqId id, int length);
  // Drops every sequence. Counters are kept (see reset_stats()).
  void reset();

  int length(SeqId id) const;
  bool contains(SeqId id) const { return lengths_.count(id) != 0; }
  std::vector<SeqId> sequences() const;

  // Verification: the cached K/V rows of (id, layer, kv_head).
  // Throws Error for implementations that hold no K/V cache (naive).
  KvRows read_kv(SeqId id, int layer, int kv_head) const;

  Stats stats() const;
  void reset_stats() { counters_ = Stats{}; }

  const std::string& name() const { return name_; }
  const ImplOptions& options() const { return options_; }

 protected:
  KvCache(std::string name, std::shared_ptr<const ModelWeights> weights, ImplOptions options);

  // Counters the hooks add to (bytes_held / bytes_reserved come from memory_in_use()).
  Stats& counters() { return counters_; }

 private:
  // Hooks. Arguments are already checked; ids are live; lengths fit.
  virtual void do_create(SeqId id) = 0;
  // x: [n, d_model], out: [n, d_model]; the sequence holds `length(id)` tokens before.
  virtual void do_prefill(SeqId id, const float* x, int n, float* out) = 0;
  // PrefillRows::last: out is [1, d_model], the last row's output. By default do_prefill
  // into scratch, then the last row; a cache that can skip rows overrides it.
  virtual void do_prefill_last(SeqId id, const float* x, int n, float* out);
  // x, out: [ids.size(), d_model].
  virtual void do_decode(const std::vector<SeqId>& ids, const float* x, float* out) = 0;
  virtual void do_fork(SeqId parent, SeqId child) = 0;
  virtual void do_drop(SeqId id) = 0;
  virtual void do_truncate(SeqId id, int length) = 0;
  virtual bool holds_kv_cache() const = 0;
  // Called only when holds_kv_cache().
  virtual KvRows do_read_kv(SeqId id, int layer, int kv_head) const = 0;

 protected:
  // Protected, not private: implementations return it from their memory_in_use() override.
  struct Memory {
    std::uint64_t held = 0;
    std::uint64_t reserved = 0;
    std::uint64_t blocks_in_use = 0;  // block pools only (Stats::blocks_*)
    std::uint64_t blocks_cached = 0;
    std::uint64_t blocks_free = 0;
  };

 private:
  virtual Memory memory_in_use() const = 0;

  void check_live(const char* op, SeqId id) const;
  void check_rows(const char* op, const std::vector<float>& rows, std::size_t expected_rows) const;

  std::string name_;
  std::shared_ptr<const ModelWeights> weights_;
  ImplOptions options_;
  std::map<SeqId, int> lengths_;
  SeqId next_id_ = 0;
  Stats counters_;
};

}  // namespace kvbench
