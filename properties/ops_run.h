// OpsRun: random operation sequences (create, prefill, decode, fork, truncate, drop) against
// one cache, checked against a model of the history: shared by fork_truncate_drop and
// memory_accounting (prop_structure.cpp) and the block properties (prop_blocks.cpp).
#pragma once

#include <rapidcheck.h>

#include <cstdint>
#include <cstring>
#include <functional>
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


// What a block pool must hold after a history, by counting only (no data): each sequence's
// blocks in token order with reference counts, as Capabilities::blocks describes it. A
// write at length t takes a new block when t is a multiple of the block size, and copies
// the partly filled last block first when another sequence still references it
// (copy-on-write); fork shares every block; truncate keeps ceil(length / B) blocks; drop
// releases all; a block whose count reaches 0 is free. Written apart from impls/paged_pool
// (the model must not share the code it checks).
class BlockModel {
 public:
  explicit BlockModel(int block_size) : B_(block_size < 1 ? 1 : block_size) {}
  int block_size() const { return B_; }
  void create(SeqId id) { seqs_[id] = Seq{}; }
  void fork(SeqId parent, SeqId child) {
    seqs_[child] = seqs_.at(parent);
    for (int b : seqs_[child].blocks) ++refs_[b];
  }
  // RETURNS: blocks freed.
  std::uint64_t drop(SeqId id) {
    std::uint64_t freed = 0;
    for (int b : seqs_.at(id).blocks) freed += release(b);
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
  }
  // RETURNS: blocks the writes (sequence, rows), made in order, take.
  std::uint64_t needed(const std::vector<std::pair<SeqId, int>>& writes) const {
    BlockModel trial = *this;
    const std::uint64_t before = trial.taken_;
    for (const auto& w : writes) trial.write(w.first, w.second);
    return trial.taken_ - before;
  }
  void write(SeqId id, int n) {
    if (n <= 0) return;
    Seq& s = seqs_.at(id);
    if (s.length % B_ != 0 && refs_[s.blocks.back()] > 1) {
      --refs_[s.blocks.back()];
      s.blocks.back() = take();
      ++copies_;
    }
    while (static_cast<int>(s.blocks.size()) * B_ < s.length + n) s.blocks.push_back(take());
    s.length += n;
  }
  std::uint64_t in_use() const { return refs_.size(); }
  std::uint64_t cow_copies() const { return copies_; }
  // RETURNS: "id 0: [b0 b1], id 2: [b0 b3]" (for failure messages).
  std::string describe() const {
    std::string out;
    for (const auto& [id, s] : seqs_) {
      out += (out.empty() ? "" : ", ") + std::string("id ") + std::to_string(id) + ": [";
      for (std::size_t i = 0; i < s.blocks.size(); ++i) {
        out += (i ? " " : "") + std::string("b") + std::to_string(s.blocks[i]);
      }
      out += "]";
    }
    return out.empty() ? "no sequences" : out;
  }

 private:
  struct Seq {
    std::vector<int> blocks;
    int length = 0;
  };
  int take() {
    ++taken_;
    refs_[next_] = 1;
    return next_++;
  }
  std::uint64_t release(int b) {
    if (--refs_[b] > 0) return 0;
    refs_.erase(b);
    return 1;
  }
  int B_;
  std::map<SeqId, Seq> seqs_;
  std::map<int, int> refs_;  // referenced blocks only
  int next_ = 0;
  std::uint64_t taken_ = 0;
  std::uint64_t copies_ = 0;
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
  bool budget = false;     // a write the model says does not fit the budget raises Error
                           // naming what it needed, what was free and the budget, and
                           // changes nothing (bitwise); one that fits succeeds
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
        model_(options.block_size),
        block_bytes_(static_cast<std::uint64_t>(options.block_size) *
                     weights_->config.kv_bytes_per_token()),
        max_blocks_(options.kv_budget_bytes / block_bytes_) {}

  // The scripted openings to draw from: the standard ones (fork_truncate_drop,
  // memory_accounting), or ones that stress a block pool (the block properties).
  enum class Openings { standard, blocks };
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
    kFillPool            // sequences grown until the budget (if any) rejects a write
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
  int new_snapshot(std::vector<float> tokens, const std::string& origin);
  void record(const Live& s, const float* x, const float* y, int n);
  void run_steps(int scenario, int max_ops, int max_live);
  void run_scenario(Scenario scenario);
  void random_op(int max_live);
  // The operations, on live_[i]; each logs itself and then checks memory.
  void op_create(int n);
  void op_prefill(std::size_t i, int n);
  void op_decode(unsigned mask, int steps);
  void op_fork(std::size_t i);
  void op_truncate(std::size_t i, int keep);
  void op_drop(std::size_t i);
  void check_memory();
  // Budget (checks.budget): RETURNS true when the model says these writes fit; else makes
  // the call, which must throw the named error and change nothing, and RETURNS false.
  bool admitted(const std::vector<std::pair<SeqId, int>>& writes,
                const std::function<void()>& call, const std::string& what);
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
