// Properties of the cache's structure and bookkeeping: 3 causal_and_batch_independent,
// 5 fork_truncate_drop, 6 memory_accounting, 7 op_counts.
#include <rapidcheck.h>

#include <cstring>
#include <sstream>

#include "harness/error.h"
#include "harness/weights.h"
#include "properties/property.h"
#include "properties/workload.h"

namespace kvbench::props {
namespace {

bool same_bits(const float* a, const float* b, std::size_t n) {
  return n == 0 || std::memcmp(a, b, n * sizeof(float)) == 0;
}

bool same_bits(const std::vector<std::vector<float>>& a,
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
std::size_t first_difference(const float* a, const float* b, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    if (std::memcmp(a + i, b + i, sizeof(float)) != 0) return i;
  }
  return n;
}

// ---------------------------------------------------------------------------------------
// 3. Causality and batch independence, bitwise.
//
// Two instances run the same workload with the same call shapes; only the tokens of
// sequence 0 from position t on differ. Every output the instances produce for sequence 0
// before position t, and every output of the other sequences, must then be BITWISE equal:
// the two runs make the same calls with the same shapes (same kernels, same summation
// orders), and the inputs those outputs may depend on are identical, so any difference can
// only come from reading a later token of sequence 0 (a causality leak, e.g. a prefill
// block's mask that lets row i see row i+1, or a softmax max taken over masked scores) or
// from a batch-mate's rows. A tolerance would hide a leak of small weight; bitwise does not.
// (This assumes an implementation is deterministic for identical calls, which the
// fork/truncate and bad-input properties rely on as well.)
void causal_body(const ImplInfo& impl) {
  const Workload w = gen_workload(impl, Limits{});
  const auto weights = ModelWeights::from_seed(w.config);
  const std::size_t dm = static_cast<std::size_t>(w.config.d_model);
  const int T0 = w.seqs[0].tokens();
  const int t = *rc::gen::inRange(0, T0);  // rows [0, t] shared, later ones differ
  const auto tokens_a = w.histories();
  auto tokens_b = tokens_a;
  InputStream other(w.input_seed + 0x5EEDull);
  const std::vector<float> later = other.rows(T0 - t - 1, w.config.d_model, w.input_scale);
  std::copy(later.begin(), later.end(),
            tokens_b[0].begin() + static_cast<long>((static_cast<std::size_t>(t) + 1) * dm));

  auto a = make_instance(impl, weights, w.options);
  auto b = make_instance(impl, weights, w.options);
  const Replay ra = replay(*a, w, tokens_a);
  const Replay rb = replay(*b, w, tokens_b);

  for (std::size_t i = 0; i < w.seqs.size(); ++i) {
    const std::size_t rows = i == 0 ? static_cast<std::size_t>(t) + 1
                                    : static_cast<std::size_t>(w.seqs[i].tokens());
    const std::size_t n = rows * dm;
    const std::size_t at = first_difference(ra.outputs[i].data(), rb.outputs[i].data(), n);
    if (at < n) {
      std::ostringstream msg;
      if (i == 0) {
        msg << "causality: sequence 0's output row " << at / dm
            << " changed when only its tokens after row " << t << " changed";
      } else {
        msg << "batch independence: sequence " << i << "'s output row " << at / dm
            << " changed when only sequence 0's tokens after row " << t << " changed";
      }
      msg << ": column " << at % dm << " is " << ra.outputs[i][at] << " vs " << rb.outputs[i][at]
          << " (bitwise comparison)\n  case: " << w.describe();
      fail_case(msg.str());
    }
    if (!impl.caps.holds_kv_cache) continue;
    for (int l = 0; l < w.config.layers; ++l) {
      for (int g = 0; g < w.config.kv_heads; ++g) {
        const KvRows ka = a->read_kv(ra.ids[i], l, g);
        const KvRows kb = b->read_kv(rb.ids[i], l, g);
        const std::size_t m = rows * static_cast<std::size_t>(w.config.head_dim);
        RC_ASSERT(ka.k.size() >= m && kb.k.size() >= m && ka.v.size() >= m && kb.v.size() >= m);
        if (!same_bits(ka.k.data(), kb.k.data(), m) || !same_bits(ka.v.data(), kb.v.data(), m)) {
          std::ostringstream msg;
          msg << "causality: cached K/V rows 0.." << rows - 1 << " of sequence " << i
              << " (layer " << l << ", kv_head " << g
              << ") differ although the tokens they come from are equal\n  case: "
              << w.describe();
          fail_case(msg.str());
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------
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
        cache_(make_instance(impl, weights_, options)) {}

  void run(int max_ops, int max_live);
  void check_outputs() const;

 private:
  struct Live {
    SeqId id;
    int snapshot;
  };
  // Scripted openings that take the paths random operations reach only by luck; each
  // case draws one (Axis::scenario), so every one of them runs within the first 10 cases.
  enum Scenario { kNone, kRollbackPrefill, kForkPrefill, kEmptyFork, kDropParent };
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
};

int OpsRun::new_snapshot(std::vector<float> tokens, const std::string& origin) {
  Snapshot s;
  const std::size_t rows = tokens.size() / static_cast<std::size_t>(config().d_model);
  s.outputs.assign(tokens.size(), 0.0f);
  s.emitted_by.assign(rows, -1);
  s.tokens = std::move(tokens);
  s.origin = origin;
  snapshots_.push_back(std::move(s));
  return static_cast<int>(snapshots_.size()) - 1;
}

void OpsRun::record(const Live& s, const float* x, const float* y, int n) {
  Snapshot& snap = snapshots_[static_cast<std::size_t>(s.snapshot)];
  const std::size_t dm = static_cast<std::size_t>(config().d_model);
  snap.tokens.insert(snap.tokens.end(), x, x + n * dm);
  snap.outputs.insert(snap.outputs.end(), y, y + n * dm);
  snap.emitted_by.insert(snap.emitted_by.end(), static_cast<std::size_t>(n),
                         static_cast<int>(log_.size()) - 1);
}

std::string OpsRun::context() const {
  std::ostringstream out;
  out << config().describe() << "; threads " << options_.threads << "; scenario " << scenario_
      << "\n  ops:";
  for (std::size_t i = 0; i < log_.size(); ++i) out << "\n    #" << i << " " << log_[i];
  return out.str();
}

void OpsRun::fail(const std::string& what) const { fail_case(what + "\n  case: " + context()); }

void OpsRun::op_create(int n) {
  n = std::min(n, config().capacity);
  const SeqId id = cache_->create_sequence();
  log_.push_back("create -> id " + std::to_string(id) + ", prefill " + std::to_string(n));
  const std::vector<float> x = fresh_rows(n);
  const std::vector<float> y = cache_->prefill(id, x);
  Live s{id, new_snapshot({}, "id " + std::to_string(id) + " (created)")};
  record(s, x.data(), y.data(), n);
  live_.push_back(s);
  check_memory();
}

// Prefill onto a sequence that may hold tokens already: after a truncate (the block's
// positions restart at the kept length), on a fork (the child's own rows), on an emptied one.
void OpsRun::op_prefill(std::size_t i, int n) {
  const Live s = live_[i];
  n = std::min(n, room_at(i));
  log_.push_back("prefill id " + std::to_string(s.id) + " with " + std::to_string(n) +
                 " rows onto " + std::to_string(length(s)) + " tokens");
  const std::vector<float> x = fresh_rows(n);
  const std::vector<float> y = cache_->prefill(s.id, x);
  if (y.size() != x.size()) {
    fail("prefill returned " + std::to_string(y.size()) + " floats for " +
         std::to_string(x.size()));
  }
  record(s, x.data(), y.data(), n);
  if (cache_->length(s.id) != length(s)) {
    fail("prefill: length is " + std::to_string(cache_->length(s.id)) + ", expected " +
         std::to_string(length(s)));
  }
  check_memory();
}

// `steps` batched steps of the sequences whose bit is set in mask (bit i picks live_[i]);
// a sequence that is full drops out.
void OpsRun::op_decode(unsigned mask, int steps) {
  const std::size_t k = live_.size();
  std::ostringstream entry;
  entry << "decode " << steps << " step(s) of ids";
  for (std::size_t i = 0; i < k; ++i) {
    if (mask & (1u << i)) entry << " " << live_[i].id << " (" << length_at(i) << " tokens)";
  }
  log_.push_back(entry.str());
  const std::size_t dm = static_cast<std::size_t>(config().d_model);
  for (int step = 0; step < steps; ++step) {
    std::vector<std::size_t> which;
    std::vector<SeqId> ids;
    for (std::size_t i = 0; i < k; ++i) {
      if ((mask & (1u << i)) && room_at(i) > 0) {
        which.push_back(i);
        ids.push_back(live_[i].id);
      }
    }
    if (ids.empty()) break;
    const std::vector<float> x = fresh_rows(static_cast<int>(ids.size()));
    const std::vector<float> y = cache_->decode(ids, x);
    for (std::size_t j = 0; j < which.size(); ++j) {
      record(live_[which[j]], x.data() + j * dm, y.data() + j * dm, 1);
    }
  }
  check_memory();
}

std::vector<std::vector<float>> OpsRun::kv_rows(SeqId id) const {
  std::vector<std::vector<float>> out;
  for (int l = 0; l < config().layers; ++l) {
    for (int g = 0; g < config().kv_heads; ++g) {
      KvRows r = cache_->read_kv(id, l, g);
      r.k.insert(r.k.end(), r.v.begin(), r.v.end());
      out.push_back(std::move(r.k));
    }
  }
  return out;
}

void OpsRun::op_fork(std::size_t p) {
  const Live parent = live_[p];
  log_.push_back("fork id " + std::to_string(parent.id) + " (" +
                 std::to_string(length(parent)) + " tokens)");  // logged first: fork may throw
  const SeqId child = cache_->fork(parent.id);
  log_.back() += " -> id " + std::to_string(child);
  if (cache_->length(child) != length(parent)) {
    fail("fork: child has length " + std::to_string(cache_->length(child)) + ", parent " +
         std::to_string(length(parent)));
  }
  const auto& parent_tokens = snapshots_[static_cast<std::size_t>(parent.snapshot)].tokens;
  live_.push_back({child, new_snapshot(parent_tokens, "id " + std::to_string(child) +
                                                          " (fork of id " +
                                                          std::to_string(parent.id) + " at " +
                                                          std::to_string(length(parent)) +
                                                          " tokens)")});
  if (checks_.kv_bitwise && impl_.caps.holds_kv_cache &&
      !same_bits(kv_rows(child), kv_rows(parent.id))) {
    fail("fork: the child's cached K/V rows differ from the parent's");
  }
  check_memory();
}

void OpsRun::op_truncate(std::size_t i, int keep) {
  Live& s = live_[i];
  const int before = length(s);
  log_.push_back("truncate id " + std::to_string(s.id) + " from " + std::to_string(before) +
                 " to " + std::to_string(keep));
  std::vector<std::vector<float>> old_rows;
  if (checks_.kv_bitwise && impl_.caps.holds_kv_cache) old_rows = kv_rows(s.id);
  cache_->truncate(s.id, keep);
  if (cache_->length(s.id) != keep) {
    fail("truncate: length is " + std::to_string(cache_->length(s.id)) + " after truncating to " +
         std::to_string(keep));
  }
  const auto& tokens = snapshots_[static_cast<std::size_t>(s.snapshot)].tokens;
  std::vector<float> kept(tokens.begin(),
                          tokens.begin() + static_cast<long>(keep) * config().d_model);
  s.snapshot = new_snapshot(std::move(kept), "id " + std::to_string(s.id) + " (truncated to " +
                                                 std::to_string(keep) + " at op #" +
                                                 std::to_string(log_.size() - 1) + ")");
  if (!old_rows.empty()) {
    const auto new_rows = kv_rows(s.id);
    const std::size_t keep_floats = static_cast<std::size_t>(keep) * config().head_dim;
    for (std::size_t b = 0; b < new_rows.size(); ++b) {
      // kv_rows() puts K then V: the first `keep` rows of each must be the old ones.
      const std::size_t old_t = old_rows[b].size() / 2, new_t = new_rows[b].size() / 2;
      if (new_t != keep_floats) {
        fail("truncate: read_kv returns " + std::to_string(new_t / config().head_dim) +
             " rows after truncating to " + std::to_string(keep));
      }
      if (!same_bits(new_rows[b].data(), old_rows[b].data(), keep_floats) ||
          !same_bits(new_rows[b].data() + new_t, old_rows[b].data() + old_t, keep_floats)) {
        fail("truncate: the kept K/V rows changed (layer " +
             std::to_string(b / config().kv_heads) + ", kv_head " +
             std::to_string(b % config().kv_heads) + ")");
      }
    }
  }
  check_memory();
}

void OpsRun::op_drop(std::size_t i) {
  const Live s = live_[i];
  log_.push_back("drop id " + std::to_string(s.id) + " (" + std::to_string(length(s)) +
                 " tokens)");
  const std::uint64_t before = cache_->stats().bytes_held;
  // The sequence's share: the K/V formula for a cache; for others, what an instance
  // holding only this history holds (implementation-defined, e.g. naive's layer inputs).
  std::uint64_t share = 0;
  if (checks_.drop_share) {
    if (impl_.caps.holds_kv_cache) {
      share = static_cast<std::uint64_t>(length(s)) * config().kv_bytes_per_token();
    } else {
      auto twin = make_instance(impl_, weights_, options_);
      twin->prefill(twin->create_sequence(),
                    snapshots_[static_cast<std::size_t>(s.snapshot)].tokens);
      share = twin->stats().bytes_held;
    }
  }
  cache_->drop(s.id);
  live_.erase(live_.begin() + static_cast<long>(i));
  if (cache_->contains(s.id)) fail("drop: id " + std::to_string(s.id) + " is still live");
  const std::uint64_t after = cache_->stats().bytes_held;
  if (checks_.drop_share && before - after != share) {
    fail("drop: bytes_held went from " + std::to_string(before) + " to " +
         std::to_string(after) + " (-" + std::to_string(before - after) +
         "), expected -" + std::to_string(share) + " (the dropped sequence's share)");
  }
  check_memory();
}

void OpsRun::check_memory() {
  if (!checks_.kv_formula) return;
  // 2 (K and V) * L * H_kv * d * sizeof(element) per token, summed over live sequences.
  const ModelConfig& c = config();
  std::uint64_t tokens = 0;
  for (const Live& s : live_) tokens += static_cast<std::uint64_t>(length(s));
  const std::uint64_t expected = 2ull * c.layers * c.kv_heads * c.head_dim *
                                 dtype_size(c.dtype) * tokens;
  const Stats st = cache_->stats();
  if (st.bytes_held != expected || st.bytes_reserved < st.bytes_held) {
    std::ostringstream msg;
    msg << "memory after " << log_.back() << ": bytes_held " << st.bytes_held
        << ", expected 2 x L " << c.layers << " x H_kv " << c.kv_heads << " x d " << c.head_dim
        << " x " << dtype_size(c.dtype) << " bytes x " << tokens << " tokens = " << expected
        << "; bytes_reserved " << st.bytes_reserved;
    fail(msg.str());
  }
}

// The scripted openings. Lengths are drawn (and grow with the size); the order of the
// operations is fixed, so the path is taken at every size.
void OpsRun::run_scenario(Scenario scenario) {
  const int cap = config().capacity;
  switch (scenario) {
    case kNone:
      return;
    case kRollbackPrefill: {  // truncate (to 0 at the smallest sizes), then prefill anew
      scenario_ = "prefill after truncate";
      op_create(draw_tokens(1, max_prompt()));
      op_decode(1u, 1);
      op_truncate(0, *rc::gen::inRange(0, length_at(0)));  // strictly shorter
      op_prefill(0, draw_tokens(1, room_at(0)));
      op_decode(1u, 1);
      return;
    }
    case kForkPrefill: {  // the child prefills its own rows, then both decode together
      scenario_ = "prefill on a fork";
      op_create(draw_tokens(1, std::min(max_prompt(), std::max(1, cap - 1))));
      op_fork(0);
      op_prefill(1, draw_tokens(1, room_at(1)));
      op_decode(3u, draw_tokens(1, 2));
      return;
    }
    case kEmptyFork: {  // an empty sequence (emptied by truncate where possible) forked
      scenario_ = "fork of an empty sequence, prefill after truncate to 0";
      const bool truncate = impl_.caps.truncate;
      op_create(truncate ? draw_tokens(1, max_prompt()) : 0);
      if (truncate) op_truncate(0, 0);
      unsigned both = 1u;
      if (impl_.caps.fork) {
        op_fork(0);
        op_prefill(1, draw_tokens(1, max_prompt()));
        both = 3u;
      }
      op_prefill(0, draw_tokens(1, max_prompt()));
      op_decode(both, 1);
      return;
    }
    case kDropParent: {  // the child outlives its parent and keeps decoding
      scenario_ = "drop of a fork's parent";
      op_create(draw_tokens(1, std::min(max_prompt(), std::max(1, cap - 1))));
      op_fork(0);
      op_decode(3u, 1);
      op_drop(0);
      op_decode(1u, draw_tokens(1, 3));
      op_prefill(0, draw_tokens(1, room_at(0)));
      op_decode(1u, 1);
      return;
    }
  }
}

void OpsRun::random_op(int max_live) {
  enum Op { kCreate, kDecode, kPrefill, kFork, kTruncate, kDrop };
  std::vector<Op> allowed;
  const bool can_add = static_cast<int>(live_.size()) < max_live;
  if (can_add) allowed.push_back(kCreate);
  if (!live_.empty()) {
    allowed.push_back(kDecode);
    bool room = false;
    for (std::size_t i = 0; i < live_.size(); ++i) room = room || room_at(i) > 0;
    if (room) allowed.push_back(kPrefill);
    if (impl_.caps.fork && can_add) allowed.push_back(kFork);
    if (impl_.caps.truncate) allowed.push_back(kTruncate);
    allowed.push_back(kDrop);
  }
  // Kinds and targets are uniform at every size (draw_uniform): a drop is as likely in the
  // first cases as in the last. An index, not the enum: RapidCheck prints drawn ints.
  const Op op = allowed[static_cast<std::size_t>(draw_uniform(static_cast<int>(allowed.size())))];
  const int k = static_cast<int>(live_.size());
  auto pick = [&] { return static_cast<std::size_t>(draw_uniform(k)); };
  switch (op) {
    case kCreate: op_create(draw_tokens(0, max_prompt())); break;
    case kDecode: {
      const unsigned mask = 1u + static_cast<unsigned>(draw_uniform((1 << k) - 1));
      op_decode(mask, *rc::gen::inRange(1, 5));
      break;
    }
    case kPrefill: {
      std::vector<std::size_t> open;
      for (std::size_t i = 0; i < live_.size(); ++i) {
        if (room_at(i) > 0) open.push_back(i);
      }
      const std::size_t i = open[static_cast<std::size_t>(draw_uniform(static_cast<int>(open.size())))];
      op_prefill(i, draw_tokens(1, std::min(room_at(i), max_prompt())));
      break;
    }
    case kFork: op_fork(pick()); break;
    case kTruncate: {
      const std::size_t i = pick();
      op_truncate(i, *rc::gen::inRange(0, length_at(i) + 1));
      break;
    }
    case kDrop: op_drop(pick()); break;
  }
}

void OpsRun::run(int max_ops, int max_live) {
  stream_ = InputStream(*rc::gen::inRange<std::uint64_t>(0, 1u << 20));
  std::vector<Scenario> scenarios = {kNone};
  if (impl_.caps.truncate) scenarios.push_back(kRollbackPrefill);
  if (impl_.caps.fork) scenarios.push_back(kForkPrefill);
  if (impl_.caps.fork || impl_.caps.truncate) scenarios.push_back(kEmptyFork);
  if (impl_.caps.fork) scenarios.push_back(kDropParent);
  const Scenario scenario = scenarios[static_cast<std::size_t>(
      draw_choice(Axis::scenario, static_cast<int>(scenarios.size()), "scenario"))];
  try {
    run_steps(scenario, max_ops, max_live);
  } catch (const Error& e) {
    fail(std::string("a valid operation threw: ") + e.what());
  }
}

void OpsRun::run_steps(int scenario_index, int max_ops, int max_live) {
  const Scenario scenario = static_cast<Scenario>(scenario_index);
  run_scenario(scenario);
  // The number of random operations grows with the size, like a length (1..max_ops, or
  // 0..max_ops / 2 after a scenario, which has 5..7 of its own); their kinds do not.
  const int ops = scenario == kNone ? *rc::gen::inRange(1, max_ops + 1)
                                    : *rc::gen::inRange(0, max_ops / 2 + 1);
  for (int n = 0; n < ops; ++n) random_op(max_live);
}

void OpsRun::check_outputs() const {
  const int dm = config().d_model;
  for (const Snapshot& s : snapshots_) {
    const int T = static_cast<int>(s.emitted_by.size());
    bool any = false;
    for (int e : s.emitted_by) any = any || e >= 0;
    if (!any) continue;
    const Expected e = expected_outputs(*weights_, s.tokens);
    for (int r = 0; r < T; ++r) {
      const int op = s.emitted_by[static_cast<std::size_t>(r)];
      if (op < 0) continue;
      const std::size_t at = static_cast<std::size_t>(r) * dm;
      const Comparison c = compare_rows(s.outputs.data() + at, e.f64.outputs.data() + at, 1, dm,
                                        e.tol.data() + r);
      if (!c.ok) {
        fail("output row " + std::to_string(r) + " of " + s.origin + ", returned by op #" +
             std::to_string(op) + ", vs the reference of its history: " + c.describe());
      }
    }
  }
}

void fork_truncate_drop_body(const ImplInfo& impl) {
  Limits limits;
  ModelConfig c = gen_model(limits);
  c.capacity = token_cap(c, impl, 4, limits);
  OpsChecks checks;
  checks.outputs = true;
  checks.drop_share = true;
  checks.kv_bitwise = true;
  OpsRun run(impl, c, gen_options(impl), checks);
  run.run(12, 4);
  run.check_outputs();
}

void memory_body(const ImplInfo& impl) {
  Limits limits;
  ModelConfig c = gen_model(limits);
  // The dtype is a per-case choice (every declared dtype within the first cases).
  const int dtypes = static_cast<int>(impl.caps.dtypes.size());
  c.dtype = impl.caps.dtypes[static_cast<std::size_t>(
      dtypes <= axis_radix(Axis::variant) ? draw_choice(Axis::variant, dtypes, "dtype")
                                          : draw_uniform(dtypes, "dtype"))];
  c.capacity = token_cap(c, impl, 4, limits);
  OpsChecks checks;
  checks.kv_formula = true;
  OpsRun run(impl, c, gen_options(impl), checks);
  run.run(12, 4);
}

// ---------------------------------------------------------------------------------------
// 7. Op counts, exact. A ragged batch: every sequence prefills its prompt (sequence i gets
// i more tokens, so that no two lengths are equal), then all decode together, each from
// its own length. After every call the counters must have grown by exactly:
//   prefill of n rows onto an empty sequence:
//     kv_projection_rows: L * n (the n rows; no prefix to project again);
//   decode call, t the length of each of its sequences before the step:
//     kv_projection_rows: L * sum over the call's sequences of (t + 1) without a K/V cache
//                         (the whole prefix is projected again), L * (number of sequences)
//                         with one (only the new token);
//     qk_dot_products:    L * H * sum (t + 1), either way (one per query head and key);
//     kv_bytes_read:      L * sum (t + 1) * 2 * d * sizeof(elem) * caps.kv_row_reads(H, H_kv),
//                         the implementation's declared read model (registry.h); with an
//                         unspecified model, K/V caches only, between one read per KV head
//                         (H_kv) and one per query head (H), and the pass says so.
// Prefill dot products and bytes read are implementation-defined (torch_* compute the full
// masked score matrix; cpu_cached reads K/V once per block of rows).
// "Without a K/V cache" is caps.holds_kv_cache == false: an implementation that keeps no
// K/V rows has to project them again to attend (naive keeps the layer inputs instead).
void op_counts_body(const ImplInfo& impl) {
  Workload w = gen_workload(impl, Limits{});
  for (std::size_t i = 0; i < w.seqs.size(); ++i) w.seqs[i].prompt += static_cast<int>(i);
  w.config.capacity = std::max(w.config.capacity, w.max_tokens());
  const auto weights = ModelWeights::from_seed(w.config);
  auto cache = make_instance(impl, weights, w.options);
  const auto tokens = w.histories();
  const ModelConfig& c = w.config;
  const std::size_t dm = static_cast<std::size_t>(c.d_model);
  std::vector<SeqId> all;
  for (std::size_t i = 0; i < w.seqs.size(); ++i) all.push_back(cache->create_sequence());
  cache->reset_stats();
  const bool cached = impl.caps.holds_kv_cache;
  const std::uint64_t L = static_cast<std::uint64_t>(c.layers);
  const std::uint64_t reads = impl.caps.kv_row_reads(c.heads, c.kv_heads);

  for (std::size_t i = 0; i < w.seqs.size(); ++i) {
    const int n = w.seqs[i].prompt;
    const Stats before = cache->stats();
    cache->prefill(all[i], std::vector<float>(tokens[i].begin(),
                                              tokens[i].begin() + static_cast<long>(n * dm)));
    const std::uint64_t proj = cache->stats().kv_projection_rows - before.kv_projection_rows;
    if (proj != L * static_cast<std::uint64_t>(n)) {
      fail_case("kv_projection_rows grew by " + std::to_string(proj) + ", expected L*n = " +
                std::to_string(L * static_cast<std::uint64_t>(n)) + " at the prefill of " +
                std::to_string(n) + " rows onto empty sequence " + std::to_string(i) +
                "\n  case: " + w.describe());
    }
  }

  int max_steps = 0;
  for (const auto& s : w.seqs) max_steps = std::max(max_steps, s.steps);
  for (int step = 0; step < max_steps; ++step) {
    std::vector<SeqId> ids;
    std::vector<float> x;
    std::ostringstream lengths;  // the lengths t before the step, in call order
    std::uint64_t keys = 0;      // sum of (t + 1) over the call's sequences
    for (std::size_t i = 0; i < w.seqs.size(); ++i) {
      if (w.seqs[i].steps <= step) continue;
      const int t = w.seqs[i].prompt + step;
      ids.push_back(all[i]);
      keys += static_cast<std::uint64_t>(t) + 1;
      lengths << (ids.size() > 1 ? ", " : "") << t;
      x.insert(x.end(), tokens[i].begin() + static_cast<long>(t * dm),
               tokens[i].begin() + static_cast<long>((t + 1) * dm));
    }
    const Stats before = cache->stats();
    cache->decode(ids, x);
    const Stats after = cache->stats();
    const std::uint64_t proj = after.kv_projection_rows - before.kv_projection_rows;
    const std::uint64_t dots = after.qk_dot_products - before.qk_dot_products;
    const std::uint64_t read = after.kv_bytes_read - before.kv_bytes_read;
    const std::uint64_t want_proj = L * (cached ? ids.size() : keys);
    const std::uint64_t want_dots = L * static_cast<std::uint64_t>(c.heads) * keys;
    const std::uint64_t row = 2ull * c.head_dim * dtype_size(c.dtype);  // one K and one V row
    std::ostringstream where;
    where << "decode step " << step << " of " << ids.size() << " sequence(s) holding ["
          << lengths.str() << "] tokens (" << (cached ? "K/V cache" : "no K/V cache") << ")";
    const std::string at = " at " + where.str() + "\n  case: " + w.describe();
    if (dots != want_dots) {
      fail_case("qk_dot_products grew by " + std::to_string(dots) +
                ", expected L*H*sum(t+1) = " + std::to_string(want_dots) + at);
    }
    if (proj != want_proj) {
      fail_case("kv_projection_rows grew by " + std::to_string(proj) + ", expected " +
                std::to_string(want_proj) + at);
    }
    if (reads != 0) {
      const std::uint64_t want = L * keys * row * reads;
      if (read != want) {
        fail_case("kv_bytes_read grew by " + std::to_string(read) + ", expected L*sum(t+1)*2*d*" +
                  std::to_string(dtype_size(c.dtype)) + "*" + std::to_string(reads) + " = " +
                  std::to_string(want) + " (read model: each K/V row read " +
                  impl.caps.describe_kv_reads() + ", " + std::to_string(reads) +
                  " reads for H=" + std::to_string(c.heads) + ", H_kv=" +
                  std::to_string(c.kv_heads) + ")" + at);
      }
    } else if (cached) {
      const std::uint64_t lo = L * keys * row * c.kv_heads, hi = L * keys * row * c.heads;
      if (read < lo || read > hi) {
        fail_case("kv_bytes_read grew by " + std::to_string(read) + ", outside [" +
                  std::to_string(lo) + ", " + std::to_string(hi) +
                  "] (read model unspecified: each K/V row read once per KV head .. once per "
                  "query head)" + at);
      }
    }
  }
}

}  // namespace

Property causal_and_batch_independent() {
  return {"causal_and_batch_independent",
          "outputs and cached rows before position t are bitwise unchanged when only later "
          "tokens (or a batch-mate's tokens) change",
          [](const ImplInfo&, std::string*) { return true; }, causal_body};
}

Property fork_truncate_drop() {
  return {"fork_truncate_drop",
          "random create/prefill/decode/fork/truncate/drop sequences after a scripted path "
          "(prefill after truncate, on a fork, fork of empty, drop of a parent): every output "
          "equals the reference of its history; drop releases exactly the sequence's share",
          [](const ImplInfo& impl, std::string* why) {
            if (!supports_f32(impl, why)) return false;
            if (impl.caps.fork || impl.caps.truncate) return true;
            *why = "supports neither fork nor truncate";
            return false;
          },
          fork_truncate_drop_body};
}

Property memory_accounting() {
  return {"memory_accounting",
          "bytes_held == 2*L*H_kv*d*sizeof(elem)*sum(T) after every operation, for each "
          "supported dtype",
          holds_kv_cache, memory_body};
}

Property op_counts() {
  Property p{"op_counts",
             "exact counters on ragged batches: K/V projection rows per prefill and decode "
             "step, query-key dot products, K/V bytes read per the declared read model",
             [](const ImplInfo&, std::string*) { return true; }, op_counts_body};
  p.note = [](const ImplInfo& impl) -> std::string {
    if (impl.caps.kv_read_model != KvReadModel::unspecified) return "";
    return impl.caps.holds_kv_cache
               ? "kv_read_model unspecified: kv_bytes_read checked only within [H_kv, H] reads"
               : "kv_read_model unspecified: kv_bytes_read not checked";
  };
  return p;
}

}  // namespace kvbench::props
