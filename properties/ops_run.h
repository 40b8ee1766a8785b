// OpsRun: random operation sequences (create, prefill, decode, fork, truncate, drop) against
// one cache, checked against a model of the history: shared by fork_truncate_drop and
// memory_accounting (prop_structure.cpp) and the block properties (prop_blocks.cpp).
#pragma once

#include <rapidcheck.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "harness/kv_cache.h"
#include "harness/registry.h"
#include "harness/weights.h"
#include "properties/workload.h"

namespace kvbench::props {

inline bool same_bits(const float* a, const float* b, std::size_t n) {
  return n == 0 || std::memcmp(a, b, n * sizeof(float)) == 0;
}

inline bool same_bits(const std::vector<std::vector<float>>& a,
               const std::vector<std::vector<float>>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].size() != b[i].size() || !same_bits(a[i].data(), b[i].data(), a[i].size())) {
      return false;
    }
  }
  return true;
}

// RETURNS: the first index where the two differ bitwise, or n.
inline std::size_t first_difference(const float* a, const float* b, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    if (std::memcmp(a + i, b + i, sizeof(float)) != 0) return i;
  }
  return n;
}


// What a block pool must hold after a history, by counting only: each sequence's blocks in
// token order with reference counts, as Capabilities::blocks describes it. A write at length
// t takes a new block when t is a multiple of the block size, and copies the partly filled
// last block first when another sequence still references it (copy-on-write); fork shares
// every block; truncate keeps ceil(length / B) blocks; drop releases all; a block whose count
// reaches 0 is free.
// With a prefix cache (Capabilities::prefix_cache) the model also knows the content: a full
// block is indexed when completed if its predecessor is (or it is a sequence's first) and no
// indexed block has the same key, the key being (the predecessor's identity, the block's
// token rows bitwise); an indexed block whose count reaches 0 is cached, in release order;
// a prefill at a block boundary onto an indexed chain reuses the indexed blocks that continue
// it with the prompt's full blocks (prefix_hit_tokens); a block taken when the budget holds
// no free one evicts the least recently released cached block; an indexed block held alone
// and about to be written into (or truncated into) leaves the index. Identities are never
// reused, so an evicted or rewritten block never leads to its old successors.
// Written apart from impls/paged_pool (the model must not share the code it checks).
class BlockModel {
 public:
  // d_model and max_blocks (0: unlimited) matter only with `prefix`.
  explicit BlockModel(int block_size, int d_model = 1, bool prefix = false,
                      std::uint64_t max_blocks = 0)
      : B_(block_size < 1 ? 1 : block_size), dm_(d_model), prefix_(prefix),
        max_blocks_(max_blocks) {}
  int block_size() const { return B_; }
  void create(SeqId id) { seqs_[id] = Seq{}; }
  void fork(SeqId parent, SeqId child) {
    seqs_[child] = seqs_.at(parent);
    for (int b : seqs_[child].blocks) ++blocks_[b].refs;
  }
  // RETURNS: blocks no sequence references any more (freed or cached).
  std::uint64_t drop(SeqId id) {
    std::uint64_t freed = 0;
    const std::vector<int> blocks = seqs_.at(id).blocks;
    for (auto it = blocks.rbegin(); it != blocks.rend(); ++it) freed += release(*it);
    seqs_.erase(id);
    return freed;
  }
  void truncate(SeqId id, int length) {
    Seq& s = seqs_.at(id);
    const std::size_t keep = static_cast<std::size_t>((length + B_ - 1) / B_);
    while (s.blocks.size() > keep) {
      release(s.blocks.back());
      s.blocks.pop_back();
    }
    s.length = length;
    s.tokens.resize(static_cast<std::size_t>(length) * dm_);
    if (length % B_ != 0 && blocks_[s.blocks.back()].refs == 1) unindex(s.blocks.back());
  }
  // A prefill of n rows x (reusing cached blocks where it can). RETURNS: tokens reused.
  int prefill(SeqId id, const float* x, int n) {
    const int from = seqs_.at(id).length;
    const std::vector<int> hits = match(id, x, n);
    Seq& s = seqs_.at(id);
    for (int b : hits) {
      share(b);
      s.blocks.push_back(b);
    }
    const int h = static_cast<int>(hits.size()) * B_;
    append(s, x, h);
    hit_tokens_ += static_cast<std::uint64_t>(h);
    write(id, x + static_cast<std::size_t>(h) * dm_, n - h);
    index_full(id, from);
    return h;
  }
  // A decode step: one row each, in order.
  void decode(const std::vector<SeqId>& ids, const float* x) {
    for (std::size_t i = 0; i < ids.size(); ++i) write(ids[i], x + i * dm_, 1);
    for (SeqId id : ids) {
      const int len = seqs_.at(id).length;
      if (len % B_ == 0) index_full(id, len - 1);
    }
  }
  // What a call would take: blocks it needs and blocks it may take (free, cached and not
  // reused by it, or growth); it fits when need <= free. max_blocks: the budget (> 0).
  struct Fit {
    std::uint64_t need = 0;
    std::uint64_t free = 0;
    bool fits() const { return need <= free; }
  };
  Fit fit_prefill(SeqId id, const float* x, int n, std::uint64_t max_blocks) const {
    BlockModel trial = *this;
    trial.max_blocks_ = max_blocks;
    std::uint64_t revived = 0;
    for (int b : trial.match(id, x, n)) revived += blocks_.at(b).refs == 0 ? 1 : 0;
    const std::uint64_t before = trial.taken_;
    trial.prefill(id, x, n);
    return {trial.taken_ - before, max_blocks - in_use() - revived};
  }
  Fit fit_decode(const std::vector<SeqId>& ids, const float* x, std::uint64_t max_blocks) const {
    BlockModel trial = *this;
    trial.max_blocks_ = max_blocks;
    const std::uint64_t before = trial.taken_;
    trial.decode(ids, x);
    return {trial.taken_ - before, max_blocks - in_use()};
  }
  std::uint64_t in_use() const { return blocks_.size() - lru_.size(); }
  std::uint64_t cached() const { return lru_.size(); }
  std::uint64_t cow_copies() const { return copies_; }
  std::uint64_t evictions() const { return evictions_; }
  std::uint64_t hit_tokens() const { return hit_tokens_; }
  // RETURNS: "id 0: [b0 b1*], id 2: [b0 b3]; cached b4 b5" (* indexed; for failure messages).
  std::string describe() const {
    std::string out;
    for (const auto& [id, s] : seqs_) {
      out += (out.empty() ? "" : ", ") + std::string("id ") + std::to_string(id) + ": [";
      for (std::size_t i = 0; i < s.blocks.size(); ++i) {
        out += (i ? " " : "") + std::string("b") + std::to_string(s.blocks[i]) +
               (blocks_.at(s.blocks[i]).ident >= 0 ? "*" : "");
      }
      out += "]";
    }
    if (out.empty()) out = "no sequences";
    if (!lru_.empty()) {
      out += "; cached (least recently released first):";
      for (int b : lru_) out += " b" + std::to_string(b);
    }
    return out;
  }

 private:
  using Key = std::pair<long, std::vector<std::uint32_t>>;  // predecessor identity, rows
  struct Block {
    int refs = 1;
    long ident = -1;  // identity while indexed, else -1
    Key key;
  };
  struct Seq {
    std::vector<int> blocks;
    int length = 0;
    std::vector<float> tokens;  // [length, d_model] (prefix caches only)
  };
  void append(Seq& s, const float* x, int n) {
    if (prefix_) s.tokens.insert(s.tokens.end(), x, x + static_cast<std::size_t>(n) * dm_);
    s.length += n;
  }
  Key key_of(long parent, const float* rows) const {
    Key k{parent, std::vector<std::uint32_t>(static_cast<std::size_t>(B_) * dm_)};
    std::memcpy(k.second.data(), rows, k.second.size() * sizeof(float));
    return k;
  }
  std::vector<int> match(SeqId id, const float* x, int n) const {
    std::vector<int> hits;
    const Seq& s = seqs_.at(id);
    if (!prefix_ || s.length % B_ != 0) return hits;
    long parent = -1;
    if (!s.blocks.empty()) {
      parent = blocks_.at(s.blocks.back()).ident;
      if (parent < 0) return hits;
    }
    for (int k = 0; (k + 1) * B_ <= n; ++k) {
      const auto it = index_.find(key_of(parent, x + static_cast<std::size_t>(k) * B_ * dm_));
      if (it == index_.end()) break;
      hits.push_back(it->second);
      parent = blocks_.at(it->second).ident;
    }
    return hits;
  }
  void index_full(SeqId id, int from) {
    if (!prefix_) return;
    const Seq& s = seqs_.at(id);
    for (int k = from / B_; (k + 1) * B_ <= s.length; ++k) {
      const int b = s.blocks[static_cast<std::size_t>(k)];
      if (blocks_[b].ident >= 0) continue;
      const long parent = k == 0 ? -1 : blocks_[s.blocks[static_cast<std::size_t>(k - 1)]].ident;
      if (k > 0 && parent < 0) return;
      Key key = key_of(parent, s.tokens.data() + static_cast<std::size_t>(k) * B_ * dm_);
      if (index_.count(key)) return;
      blocks_[b].ident = next_ident_++;
      blocks_[b].key = key;
      index_.emplace(std::move(key), b);
    }
  }
  void unindex(int b) {
    Block& blk = blocks_[b];
    if (blk.ident < 0) return;
    index_.erase(blk.key);
    blk.ident = -1;
  }
  void write(SeqId id, const float* x, int n) {
    if (n <= 0) return;
    Seq& s = seqs_.at(id);
    if (s.length % B_ != 0) {
      Block& last = blocks_[s.blocks.back()];
      if (last.refs == 1) {
        unindex(s.blocks.back());
      } else {
        --last.refs;
        s.blocks.back() = take();
        ++copies_;
      }
    }
    while (static_cast<int>(s.blocks.size()) * B_ < s.length + n) s.blocks.push_back(take());
    append(s, x, n);
  }
  int take() {
    ++taken_;
    if (prefix_ && max_blocks_ != 0 && in_use() + cached() >= max_blocks_ && !lru_.empty()) {
      const int victim = lru_.front();
      lru_.pop_front();
      unindex(victim);
      blocks_.erase(victim);
      ++evictions_;
    }
    blocks_[next_] = Block{};
    return next_++;
  }
  void share(int b) {
    if (blocks_[b].refs++ == 0) lru_.remove(b);
  }
  std::uint64_t release(int b) {
    if (--blocks_[b].refs > 0) return 0;
    if (blocks_[b].ident >= 0) {
      lru_.push_back(b);
    } else {
      blocks_.erase(b);
    }
    return 1;
  }
  int B_;
  int dm_;
  bool prefix_;
  std::uint64_t max_blocks_;
  std::map<SeqId, Seq> seqs_;
  std::map<int, Block> blocks_;  // referenced and cached blocks
  std::list<int> lru_;           // cached, least recently released first
  std::map<Key, int> index_;
  int next_ = 0;
  long next_ident_ = 0;
  std::uint64_t taken_ = 0;
  std::uint64_t copies_ = 0;
  std::uint64_t evictions_ = 0;
  std::uint64_t hit_tokens_ = 0;
};

// 5 and 6. Operation sequences: a scripted path (OpsRun::Scenario, one per case, drawn so
// that each runs within the first 10 cases), then random create + prefill, prefill onto a
// live sequence, batched decode, fork, truncate, drop, checked against a model that knows
// each live sequence's token history.
//
// Token histories are "snapshots": a sequence appends to its snapshot; fork and truncate
// start a new snapshot (a copy of the kept rows) and freeze the old one, so every output
// row the cache ever returned stays attached to the exact history it was computed from.
// At the end each snapshot's emitted rows are compared with the reference of that
// snapshot: a forked sequence fed different tokens must equal a fresh decode of its full
// history, and a truncated-then-continued one a fresh decode of the shorter history. (The
// reference IS the fresh decode's ground truth; comparing with it at 1x tolerance is
// stricter than comparing with the implementation's own fresh decode at 2x.)
struct OpsChecks {
  bool outputs = false;         // compare every output with the reference (5)
  bool drop_share = false;      // a drop lowers bytes_held by the sequence's share (5)
  bool kv_formula = false;      // bytes_held follows the K/V formula after every op (6)
  bool kv_bitwise = false;      // fork copies and truncate keeps cached rows bitwise (5)
  // Block pools (caps.blocks), against the BlockModel of the history:
  bool blocks = false;     // blocks_in_use and cow_copies equal the model's after every op;
                           // a fork adds no block; finish() leaves no block in use
  bool isolation = false;  // a write to one sequence leaves every other live sequence's
                           // cached rows bitwise unchanged (forks included)
};

struct Snapshot {
  std::vector<float> tokens;   // [T, d_model]
  std::vector<float> outputs;  // [T, d_model], rows emitted in this snapshot
  std::vector<int> emitted_by;  // [T], the op that produced the row, -1 if none
  std::string origin;          // "seq 2 (fork of seq 0 at 5 tokens)"
};

class OpsRun {
 public:
  OpsRun(const ImplInfo& impl, const ModelConfig& config, const ImplOptions& options,
         OpsChecks checks)
      : impl_(impl),
        weights_(ModelWeights::from_seed(config)),
        options_(options),
        checks_(checks),
        cache_(make_instance(impl, weights_, options)),
        model_(options.block_size, config.d_model, impl.caps.prefix_cache,
               options.kv_budget_bytes /
                   (static_cast<std::uint64_t>(options.block_size < 1 ? 1 : options.block_size) *
                    weights_->config.kv_bytes_per_token())),
        block_bytes_(static_cast<std::uint64_t>(options.block_size) *
                     weights_->config.kv_bytes_per_token()),
        max_blocks_(options.kv_budget_bytes / block_bytes_) {}

  // The scripted openings to draw from: the standard ones (fork_truncate_drop,
  // memory_accounting), or ones that stress a block pool (the block properties).
  // prefix: openings that reuse prefixes of live, dropped and evicted sequences.
  enum class Openings { standard, blocks, prefix };
  void run(int max_ops, int max_live, Openings openings = Openings::standard);
  void check_outputs() const;
  // Drops every live sequence (each drop checked as any other), then: no block in use and
  // bytes_held 0 (with checks.blocks).
  void finish();

 private:
  struct Live {
    SeqId id;
    int snapshot;
  };
  // Scripted openings that take the paths random operations reach only by luck; each
  // case draws one (Axis::scenario), so every one of them runs within the first 10 cases.
  enum Scenario {
    kNone, kRollbackPrefill, kForkPrefill, kEmptyFork, kDropParent,
    // Openings::blocks:
    kForkBothWrite,      // a fork of a partly filled block; child, then parent, write
    kTruncateRegrow,     // truncate across block boundaries (a shared block too), regrow
    kRecycle,            // drop of a fork's parent and a truncate free blocks that new
                         // sequences take again; the survivors decode on
    kFillPool,           // sequences grown until the budget (if any) rejects a write
    // Openings::prefix:
    kShareLiveDropped,   // prompts that share a live sequence's prefix, then a dropped one's
    kShareEvicted,       // a prefix cached, pushed out by other prompts, asked for again
    kGraft               // a cached block's rows after another cached prefix
  };
  const ModelConfig& config() const { return weights_->config; }
  int length(const Live& s) const {
    return static_cast<int>(snapshots_[static_cast<std::size_t>(s.snapshot)].tokens.size() /
                            static_cast<std::size_t>(config().d_model));
  }
  int length_at(std::size_t i) const { return length(live_[i]); }
  int room_at(std::size_t i) const { return config().capacity - length_at(i); }
  // A token count in [lo, hi] (hi clamped to >= lo) that grows with the size.
  int draw_tokens(int lo, int hi) const { return *rc::gen::inRange(lo, std::max(lo, hi) + 1); }
  int max_prompt() const { return std::min(config().capacity, 16); }
  std::vector<float> fresh_rows(int n) { return stream_.rows(n, config().d_model); }
  // n prompt rows to append to a sequence holding `have` ([T, d_model]). For a prefix cache
  // they are drawn to share: fresh; or continuing an earlier snapshot that starts with `have`
  // (a prompt sharing a prefix with a live, dropped or evicted sequence); or that, then one
  // block-aligned block copied from any snapshot (the same rows after another prefix: a
  // lookup must check the predecessor, not only the rows), then fresh rows.
  std::vector<float> prompt_rows(int n, const std::vector<float>& have);
  // A prefill of x onto s, checked: budget, outputs (all rows, or the last only: drawn),
  // length, the other sequences' rows.
  void checked_prefill(const Live& s, const std::vector<float>& x);
  int new_snapshot(std::vector<float> tokens, const std::string& origin);
  // Appends n rows x to s's snapshot with their outputs y (last_only: y is the last row's).
  void record(const Live& s, const float* x, const float* y, int n, bool last_only = false);
  void run_steps(int scenario, int max_ops, int max_live);
  void run_scenario(Scenario scenario);
  void random_op(int max_live);
  // The operations, on live_[i]; each logs itself and then checks memory.
  void op_create(int n);
  // Creates a sequence and prefills it with these rows.
  void op_create_rows(const std::vector<float>& x, const std::string& what);
  // Rows [0, n) of live_[i]'s tokens followed by `fresh` new rows.
  std::vector<float> shared_prompt(std::size_t i, int n, int fresh);
  void op_prefill(std::size_t i, int n);
  void op_decode(unsigned mask, int steps);
  void op_fork(std::size_t i);
  void op_truncate(std::size_t i, int keep);
  void op_drop(std::size_t i);
  void check_memory();
  // Budget (any ImplOptions::kv_budget_bytes): a write the model says does not fit must
  // raise Error naming what it needed, what was free and the budget, and change nothing
  // (bitwise). RETURNS true when the model says the call fits; else makes
  // the call, which must throw the named error and change nothing, and RETURNS false.
  bool admitted(const std::function<BlockModel::Fit()>& fit, const std::function<void()>& call,
                const std::string& what);
  // Cached rows of every live sequence but `except` (isolation).
  std::vector<std::vector<std::vector<float>>> others_rows(const std::vector<SeqId>& except) const;
  void check_others(const std::vector<std::vector<std::vector<float>>>& before,
                    const std::vector<SeqId>& except, const std::string& what) const;
  std::vector<std::vector<float>> kv_rows(SeqId id) const;  // [L*H_kv] K then V, flattened
  std::string context() const;
  [[noreturn]] void fail(const std::string& what) const;

  const ImplInfo& impl_;
  std::shared_ptr<const ModelWeights> weights_;
  ImplOptions options_;
  OpsChecks checks_;
  std::unique_ptr<KvCache> cache_;
  InputStream stream_{0};
  std::vector<Snapshot> snapshots_;
  std::vector<Live> live_;
  std::vector<std::string> log_;
  std::string scenario_ = "none";
  BlockModel model_;             // the block pool the history implies (caps.blocks)
  std::uint64_t block_bytes_;    // bytes of one block: block_size * kv_bytes_per_token
  std::uint64_t max_blocks_;     // the budget in blocks (0: unlimited)
};

}  // namespace kvbench::props
