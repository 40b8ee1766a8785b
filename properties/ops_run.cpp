// OpsRun: see ops_run.h.
#include "properties/ops_run.h"

#include <sstream>

#include "harness/error.h"

namespace kvbench::props {

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

void OpsRun::record(const Live& s, const float* x, const float* y, int n, bool last_only) {
  Snapshot& snap = snapshots_[static_cast<std::size_t>(s.snapshot)];
  const std::size_t dm = static_cast<std::size_t>(config().d_model);
  const int op = static_cast<int>(log_.size()) - 1;
  snap.tokens.insert(snap.tokens.end(), x, x + n * dm);
  if (last_only) {
    if (n == 0) return;
    snap.outputs.insert(snap.outputs.end(), static_cast<std::size_t>(n - 1) * dm, 0.0f);
    snap.outputs.insert(snap.outputs.end(), y, y + dm);
    snap.emitted_by.insert(snap.emitted_by.end(), static_cast<std::size_t>(n - 1), -1);
    snap.emitted_by.push_back(op);
    return;
  }
  snap.outputs.insert(snap.outputs.end(), y, y + n * dm);
  snap.emitted_by.insert(snap.emitted_by.end(), static_cast<std::size_t>(n), op);
}

std::vector<float> OpsRun::prompt_rows(int n, const std::vector<float>& have) {
  if (!impl_.caps.prefix_cache || n <= 0 || snapshots_.empty()) return fresh_rows(n);
  const std::size_t dm = static_cast<std::size_t>(config().d_model);
  const std::size_t B = static_cast<std::size_t>(model_.block_size());
  const int kind = draw_uniform(3);  // 0 fresh, 1 continue a snapshot, 2 continue + graft
  if (kind == 0) return fresh_rows(n);
  std::vector<float> x;
  // Snapshots that start with `have` and go on past it.
  std::vector<const Snapshot*> next;
  for (const Snapshot& s : snapshots_) {
    if (s.tokens.size() > have.size() && same_bits(s.tokens.data(), have.data(), have.size())) {
      next.push_back(&s);
    }
  }
  if (!next.empty()) {
    const Snapshot& s = *next[static_cast<std::size_t>(draw_uniform(static_cast<int>(next.size())))];
    const int more = static_cast<int>((s.tokens.size() - have.size()) / dm);
    const int take = *rc::gen::inRange(1, std::min(n, more) + 1);
    x.assign(s.tokens.begin() + static_cast<long>(have.size()),
             s.tokens.begin() + static_cast<long>(have.size() + static_cast<std::size_t>(take) * dm));
  }
  const std::size_t at = have.size() / dm + x.size() / dm;  // position the next row lands at
  if (kind == 2 && at % B == 0 && x.size() / dm + B <= static_cast<std::size_t>(n)) {
    // One whole block of some snapshot, aligned there and here.
    std::vector<const Snapshot*> full;
    for (const Snapshot& s : snapshots_) {
      if (s.tokens.size() >= B * dm) full.push_back(&s);
    }
    if (!full.empty()) {
      const Snapshot& s = *full[static_cast<std::size_t>(draw_uniform(static_cast<int>(full.size())))];
      const int blocks = static_cast<int>(s.tokens.size() / (B * dm));
      const std::size_t b = static_cast<std::size_t>(draw_uniform(blocks));
      x.insert(x.end(), s.tokens.begin() + static_cast<long>(b * B * dm),
               s.tokens.begin() + static_cast<long>((b + 1) * B * dm));
    }
  }
  const int rest = n - static_cast<int>(x.size() / dm);
  const std::vector<float> tail = fresh_rows(rest);
  x.insert(x.end(), tail.begin(), tail.end());
  return x;
}

void OpsRun::checked_prefill(const Live& s, const std::vector<float>& x) {
  const int n = static_cast<int>(x.size() / static_cast<std::size_t>(config().d_model));
  const auto others = others_rows({s.id});
  auto fit = [&] { return model_.fit_prefill(s.id, x.data(), n, max_blocks_); };
  if (!admitted(fit, [&] { cache_->prefill(s.id, x); }, "prefill")) return;
  // Serving asks for the last row only: drawn per prefill (a prefix cache then computes
  // nothing for the rows it reuses).
  const bool last = *rc::gen::inRange(0, 3) == 0;
  if (last) log_.back() += " (last row only)";
  const std::vector<float> y = cache_->prefill(s.id, x, last ? PrefillRows::last : PrefillRows::all);
  const int hits = model_.prefill(s.id, x.data(), n);
  if (hits > 0) log_.back() += " (the model reuses " + std::to_string(hits) + " cached rows)";
  const std::size_t want = last ? (n > 0 ? static_cast<std::size_t>(config().d_model) : 0) : x.size();
  if (y.size() != want) {
    fail("prefill returned " + std::to_string(y.size()) + " floats, expected " +
         std::to_string(want));
  }
  record(s, x.data(), y.data(), n, last);
  if (cache_->length(s.id) != length(s)) {
    fail("prefill: length is " + std::to_string(cache_->length(s.id)) + ", expected " +
         std::to_string(length(s)));
  }
  check_others(others, {s.id}, "the prefill of id " + std::to_string(s.id));
}

std::string OpsRun::context() const {
  std::ostringstream out;
  out << config().describe() << "; threads " << options_.threads;
  if (impl_.caps.blocks) {
    out << "; block_size " << options_.block_size;
    if (options_.kv_budget_bytes != 0) {
      out << ", kv_budget_bytes " << options_.kv_budget_bytes << " (" << max_blocks_
          << " blocks of " << block_bytes_ << ")";
    }
  }
  out << "; scenario " << scenario_ << "\n  ops:";
  for (std::size_t i = 0; i < log_.size(); ++i) out << "\n    #" << i << " " << log_[i];
  return out.str();
}

void OpsRun::fail(const std::string& what) const { fail_case(what + "\n  case: " + context()); }

void OpsRun::op_create(int n) {
  n = std::min(n, config().capacity);
  op_create_rows(prompt_rows(n, {}), "");
}

void OpsRun::op_create_rows(const std::vector<float>& x, const std::string& what) {
  const int n = static_cast<int>(x.size() / static_cast<std::size_t>(config().d_model));
  const SeqId id = cache_->create_sequence();
  model_.create(id);
  log_.push_back("create -> id " + std::to_string(id) + ", prefill " + std::to_string(n) +
                 what);
  Live s{id, new_snapshot({}, "id " + std::to_string(id) + " (created)")};
  live_.push_back(s);
  checked_prefill(s, x);
  check_memory();
}

std::vector<float> OpsRun::shared_prompt(std::size_t i, int n, int fresh) {
  const auto& t = snapshots_[static_cast<std::size_t>(live_[i].snapshot)].tokens;
  const std::size_t dm = static_cast<std::size_t>(config().d_model);
  const std::size_t m = std::min(t.size(), static_cast<std::size_t>(n) * dm);
  std::vector<float> x(t.begin(), t.begin() + static_cast<long>(m));
  const int room = config().capacity - static_cast<int>(m / dm);
  const std::vector<float> tail = fresh_rows(std::max(0, std::min(fresh, room)));
  x.insert(x.end(), tail.begin(), tail.end());
  return x;
}

// Prefill onto a sequence that may hold tokens already: after a truncate (the block's
// positions restart at the kept length), on a fork (the child's own rows), on an emptied one.
void OpsRun::op_prefill(std::size_t i, int n) {
  const Live s = live_[i];
  n = std::min(n, room_at(i));
  log_.push_back("prefill id " + std::to_string(s.id) + " with " + std::to_string(n) +
                 " rows onto " + std::to_string(length(s)) + " tokens");
  checked_prefill(s, prompt_rows(n, snapshots_[static_cast<std::size_t>(s.snapshot)].tokens));
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
    const auto others = others_rows(ids);
    auto fit = [&] { return model_.fit_decode(ids, x.data(), max_blocks_); };
    if (!admitted(fit, [&] { cache_->decode(ids, x); }, "decode")) {
      log_.back() += " (step " + std::to_string(step) + " rejected: over the budget)";
      break;
    }
    const std::vector<float> y = cache_->decode(ids, x);
    model_.decode(ids, x.data());
    for (std::size_t j = 0; j < which.size(); ++j) {
      record(live_[which[j]], x.data() + j * dm, y.data() + j * dm, 1);
    }
    check_others(others, ids, "a decode step");
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
  const std::uint64_t blocks_before = cache_->stats().blocks_in_use;
  const auto others = others_rows({});
  const SeqId child = cache_->fork(parent.id);
  model_.fork(parent.id, child);
  log_.back() += " -> id " + std::to_string(child);
  if (checks_.blocks && cache_->stats().blocks_in_use != blocks_before) {
    fail("fork: blocks_in_use went from " + std::to_string(blocks_before) + " to " +
         std::to_string(cache_->stats().blocks_in_use) +
         " (a fork shares its parent's blocks: it adds none until one side writes)");
  }
  check_others(others, {}, "a fork");
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
  const auto others = others_rows({s.id});
  cache_->truncate(s.id, keep);
  model_.truncate(s.id, keep);
  check_others(others, {s.id}, "the truncate of id " + std::to_string(s.id));
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
  // The sequence's share: the K/V formula for a cache; for a block pool, the blocks that
  // only it referenced; for others, what an instance holding only this history holds
  // (implementation-defined, e.g. naive's layer inputs).
  std::uint64_t share = 0;
  if (checks_.drop_share && !impl_.caps.blocks) {
    if (impl_.caps.holds_kv_cache) {
      share = static_cast<std::uint64_t>(length(s)) * config().kv_bytes_per_token();
    } else {
      auto twin = make_instance(impl_, weights_, options_);
      twin->prefill(twin->create_sequence(),
                    snapshots_[static_cast<std::size_t>(s.snapshot)].tokens);
      share = twin->stats().bytes_held;
    }
  }
  const auto others = others_rows({s.id});
  cache_->drop(s.id);
  const std::uint64_t freed = model_.drop(s.id);
  if (impl_.caps.blocks) share = freed * block_bytes_;
  live_.erase(live_.begin() + static_cast<long>(i));
  if (cache_->contains(s.id)) fail("drop: id " + std::to_string(s.id) + " is still live");
  check_others(others, {}, "the drop of id " + std::to_string(s.id));
  const std::uint64_t after = cache_->stats().bytes_held;
  if (checks_.drop_share && before - after != share) {
    fail("drop: bytes_held went from " + std::to_string(before) + " to " +
         std::to_string(after) + " (-" + std::to_string(before - after) +
         "), expected -" + std::to_string(share) + " (the dropped sequence's share" +
         (impl_.caps.blocks ? ": " + std::to_string(freed) + " blocks it alone referenced"
                            : std::string()) + ")");
  }
  check_memory();
}

void OpsRun::check_memory() {
  const Stats st = cache_->stats();
  if (checks_.blocks) {
    if (st.blocks_in_use != model_.in_use() || st.cow_copies != model_.cow_copies()) {
      std::ostringstream msg;
      msg << "block pool after " << log_.back() << ": blocks_in_use " << st.blocks_in_use
          << ", cow_copies " << st.cow_copies << "; the model of the history says "
          << model_.in_use() << " distinct blocks referenced (shared ones once), "
          << model_.cow_copies() << " copies (block_size " << model_.block_size()
          << "; tables: " << model_.describe() << ")";
      fail(msg.str());
    }
    if (impl_.caps.prefix_cache &&
        (st.blocks_cached != model_.cached() || st.evictions != model_.evictions() ||
         st.prefix_hit_tokens != model_.hit_tokens())) {
      std::ostringstream msg;
      msg << "prefix cache after " << log_.back() << ": blocks_cached " << st.blocks_cached
          << ", evictions " << st.evictions << ", prefix_hit_tokens " << st.prefix_hit_tokens
          << "; the model of the history says " << model_.cached() << ", "
          << model_.evictions() << ", " << model_.hit_tokens()
          << " (reused rows: the longest indexed full-block prefix; block_size "
          << model_.block_size() << "; tables: " << model_.describe() << ")";
      fail(msg.str());
    }
  }
  if (!checks_.kv_formula) return;
  const ModelConfig& c = config();
  std::uint64_t tokens = 0;
  for (const Live& s : live_) tokens += static_cast<std::uint64_t>(length(s));
  std::ostringstream msg;
  if (impl_.caps.blocks) {
    // Blocks: bytes follow from the distinct blocks referenced (shared ones once); the slack
    // (bytes past the tokens held) is below one block per sequence without sharing.
    const std::uint64_t expected = model_.in_use() * block_bytes_;
    std::uint64_t ceil_blocks = 0;
    for (const Live& s : live_) {
      ceil_blocks += static_cast<std::uint64_t>((length(s) + model_.block_size() - 1) /
                                                model_.block_size());
    }
    if (st.bytes_held == expected && st.bytes_reserved >= st.bytes_held &&
        st.bytes_held <= ceil_blocks * block_bytes_) {
      return;
    }
    msg << "memory after " << log_.back() << ": bytes_held " << st.bytes_held << ", expected "
        << model_.in_use() << " blocks x " << block_bytes_ << " bytes (block_size "
        << model_.block_size() << " x " << c.kv_bytes_per_token() << " bytes per token) = "
        << expected << ", at most " << ceil_blocks << " x " << block_bytes_
        << " (ceil(T / block_size) per sequence); bytes_reserved " << st.bytes_reserved;
    fail(msg.str());
  }
  // 2 (K and V) * L * H_kv * d * sizeof(element) per token, summed over live sequences.
  const std::uint64_t expected = 2ull * c.layers * c.kv_heads * c.head_dim *
                                 dtype_size(c.dtype) * tokens;
  if (st.bytes_held != expected || st.bytes_reserved < st.bytes_held) {
    msg << "memory after " << log_.back() << ": bytes_held " << st.bytes_held
        << ", expected 2 x L " << c.layers << " x H_kv " << c.kv_heads << " x d " << c.head_dim
        << " x " << dtype_size(c.dtype) << " bytes x " << tokens << " tokens = " << expected
        << "; bytes_reserved " << st.bytes_reserved;
    fail(msg.str());
  }
}

namespace {

// Everything a rejected call must leave as it was.
struct State {
  std::vector<SeqId> ids;
  std::vector<int> lengths;
  Stats stats;
  std::vector<std::vector<float>> kv;
};

std::string state_difference(const State& a, const State& b) {
  if (a.ids != b.ids) return "the live ids changed";
  if (a.lengths != b.lengths) return "a sequence length changed";
  const Stats& s = a.stats;
  const Stats& t = b.stats;
  if (s.bytes_held != t.bytes_held) {
    return "bytes_held " + std::to_string(s.bytes_held) + " -> " + std::to_string(t.bytes_held);
  }
  if (s.blocks_in_use != t.blocks_in_use) {
    return "blocks_in_use " + std::to_string(s.blocks_in_use) + " -> " +
           std::to_string(t.blocks_in_use);
  }
  if (s.bytes_reserved != t.bytes_reserved) return "bytes_reserved changed";
  if (s.blocks_free != t.blocks_free) return "blocks_free changed";
  if (s.cow_copies != t.cow_copies) return "cow_copies changed";
  if (s.blocks_cached != t.blocks_cached) return "blocks_cached changed";
  if (s.evictions != t.evictions) return "evictions changed";
  if (s.prefix_hit_tokens != t.prefix_hit_tokens) return "prefix_hit_tokens changed";
  if (s.kv_projection_rows != t.kv_projection_rows || s.qk_dot_products != t.qk_dot_products ||
      s.kv_bytes_read != t.kv_bytes_read) {
    return "the op counters changed";
  }
  if (!same_bits(a.kv, b.kv)) return "cached K/V rows changed";
  return "";
}

}  // namespace

bool OpsRun::admitted(const std::function<BlockModel::Fit()>& fit,
                      const std::function<void()>& call, const std::string& what) {
  if (max_blocks_ == 0) return true;
  const BlockModel::Fit f = fit();
  if (f.fits()) return true;
  const std::uint64_t need = f.need;
  const std::uint64_t free = f.free;
  auto observe = [&] {
    State st;
    st.ids = cache_->sequences();
    for (SeqId id : st.ids) {
      st.lengths.push_back(cache_->length(id));
      for (auto& rows : kv_rows(id)) st.kv.push_back(std::move(rows));
    }
    st.stats = cache_->stats();
    return st;
  };
  const State before = observe();
  std::string message;
  try {
    call();
  } catch (const Error& e) {
    message = e.what();
  }
  log_.back() += " [rejected: needs " + std::to_string(need) + " blocks, " +
                 std::to_string(free) + " free of " + std::to_string(max_blocks_) + "]";
  if (message.empty()) {
    fail(what + " needing " + std::to_string(need) + " blocks with " + std::to_string(free) +
         " free (budget " + std::to_string(max_blocks_) + " blocks) did not throw");
  }
  for (const std::string& needle :
       {"needs " + std::to_string(need), std::to_string(free) + " free",
        std::to_string(options_.kv_budget_bytes), std::string("budget")}) {
    if (message.find(needle) == std::string::npos) {
      fail(what + " over the budget threw \"" + message + "\", which does not name '" +
           needle + "' (what it needed, what was free and the budget)");
    }
  }
  const std::string changed = state_difference(before, observe());
  if (!changed.empty()) {
    fail("the rejected " + what + " changed the state: " + changed + " (error: " + message + ")");
  }
  return false;
}

std::vector<std::vector<std::vector<float>>> OpsRun::others_rows(
    const std::vector<SeqId>& except) const {
  std::vector<std::vector<std::vector<float>>> out;
  if (!checks_.isolation) return out;
  for (const Live& s : live_) {
    if (std::find(except.begin(), except.end(), s.id) != except.end()) continue;
    out.push_back(kv_rows(s.id));
  }
  return out;
}

void OpsRun::check_others(const std::vector<std::vector<std::vector<float>>>& before,
                          const std::vector<SeqId>& except, const std::string& what) const {
  if (!checks_.isolation) return;
  std::size_t k = 0;
  for (const Live& s : live_) {
    if (std::find(except.begin(), except.end(), s.id) != except.end()) continue;
    if (k >= before.size()) break;  // a sequence created by this op
    if (!same_bits(kv_rows(s.id), before[k])) {
      fail(what + " changed the cached K/V rows of id " + std::to_string(s.id) +
           ", which it does not write (bitwise; copy-on-write must keep them)");
    }
    ++k;
  }
}

void OpsRun::finish() {
  while (!live_.empty()) op_drop(live_.size() - 1);
  const Stats st = cache_->stats();
  if (checks_.blocks && (st.blocks_in_use != 0 || st.bytes_held != 0)) {
    fail("after dropping every sequence: blocks_in_use " + std::to_string(st.blocks_in_use) +
         ", bytes_held " + std::to_string(st.bytes_held) + " (expected 0 and 0: a leak)");
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
    case kForkBothWrite: {  // a partly filled shared block: the first writer copies it
      scenario_ = "fork of a partly filled block, both sides write";
      const int B = model_.block_size();
      op_create(draw_tokens(1, 2) * B + (B > 1 ? draw_tokens(1, B - 1) : 0));
      op_fork(0);
      op_decode(2u, 1);  // the child writes first
      op_decode(1u, 1);  // then the parent
      op_decode(3u, draw_tokens(1, 2));
      if (!live_.empty()) op_prefill(live_.size() - 1, draw_tokens(1, B + 1));
      return;
    }
    case kTruncateRegrow: {  // cut back into a shared block and across boundaries, regrow
      scenario_ = "truncate across block boundaries, regrow";
      const int B = model_.block_size();
      op_create(2 * B + draw_tokens(1, B));
      op_fork(0);
      op_truncate(0, std::min(length_at(0), B + draw_tokens(0, B - 1)));
      op_decode(1u, 1);
      op_truncate(1, std::min(length_at(1), B * draw_tokens(0, 1)));
      op_prefill(1, draw_tokens(1, B + 1));
      op_decode(3u, draw_tokens(1, 2));
      return;
    }
    case kRecycle: {  // freed blocks taken again by new sequences while a fork lives on
      scenario_ = "drop of a fork's parent and a truncate, blocks recycled";
      const int B = model_.block_size();
      op_create(2 * B + draw_tokens(0, B));
      op_fork(0);
      op_drop(0);                      // the child keeps the shared blocks
      op_create(draw_tokens(1, 2 * B));
      op_truncate(0, std::min(length_at(0), draw_tokens(0, B)));
      op_create(B + draw_tokens(1, B));  // takes the blocks the truncate freed
      op_decode(7u, draw_tokens(1, 2));
      return;
    }
    case kFillPool: {  // sequences grown until the budget (if any) rejects a write
      scenario_ = "fill the pool";
      const int B = model_.block_size();
      const int n = draw_tokens(2, 5);
      for (int i = 0; i < n; ++i) op_create(draw_tokens(B, 3 * B));
      op_decode((1u << live_.size()) - 1u, draw_tokens(1, 3));
      return;
    }
    case kShareLiveDropped: {  // hits on a live sequence's blocks, then on cached ones
      scenario_ = "prompts sharing a live, then a dropped sequence's prefix";
      const int B = model_.block_size();
      const int k = std::max(1, std::min(3, (cap - 1) / B));
      op_create(k * B + draw_tokens(0, B));
      op_decode(1u, 1);
      const std::vector<float> a = shared_prompt(0, k * B + draw_tokens(0, B), 0);
      op_create_rows(shared_prompt(0, draw_tokens(1, k) * B, draw_tokens(0, B)),
                     " (sharing id " + std::to_string(live_[0].id) + "'s prefix, live)");
      op_drop(0);  // its blocks not shared by the second stay cached
      op_create_rows(a, " (the dropped sequence's prompt again)");
      op_decode((1u << live_.size()) - 1u, draw_tokens(1, 2));
      return;
    }
    case kShareEvicted: {  // cached, pushed out by other prompts under the budget, asked again
      scenario_ = "a cached prefix evicted and asked for again";
      const int B = model_.block_size();
      const int k = std::max(1, std::min(2, (cap - 1) / B));
      op_create(k * B + draw_tokens(0, B));
      const std::vector<float> a = shared_prompt(0, cap, 0);
      op_drop(0);
      const int n = draw_tokens(2, 4);
      for (int i = 0; i < n; ++i) op_create(draw_tokens(B, std::min(cap, 3 * B)));
      while (live_.size() > 1) op_drop(0);
      op_create_rows(a, " (the first, dropped and maybe evicted, prompt again)");
      op_decode((1u << live_.size()) - 1u, 1);
      return;
    }
    case kGraft: {  // [X, R] after [R] and [X]: R's rows are cached, but after another prefix
      scenario_ = "a cached block's rows after another prefix";
      const int B = model_.block_size();
      if (2 * B > cap) return;
      op_create(B + draw_tokens(0, B));  // R...
      op_create(B);                      // X
      if (live_.size() < 2) return;      // over the budget
      std::vector<float> x = shared_prompt(1, B, 0);
      const std::vector<float> r = shared_prompt(0, B, 0);
      x.insert(x.end(), r.begin(), r.end());
      const std::vector<float> tail = fresh_rows(std::min(cap - 2 * B, draw_tokens(0, B)));
      x.insert(x.end(), tail.begin(), tail.end());
      op_create_rows(x, " (the second's block, then the first's)");
      op_decode((1u << live_.size()) - 1u, 1);
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

void OpsRun::run(int max_ops, int max_live, Openings openings) {
  stream_ = InputStream(*rc::gen::inRange<std::uint64_t>(0, 1u << 20));
  std::vector<Scenario> scenarios = {kNone};
  if (openings == Openings::blocks) {
    if (impl_.caps.fork) scenarios.push_back(kForkBothWrite);
    if (impl_.caps.fork && impl_.caps.truncate) scenarios.push_back(kTruncateRegrow);
    if (impl_.caps.fork && impl_.caps.truncate) scenarios.push_back(kRecycle);
    scenarios.push_back(kFillPool);
  } else if (openings == Openings::prefix) {
    scenarios.push_back(kShareLiveDropped);
    scenarios.push_back(kShareEvicted);
    scenarios.push_back(kGraft);
    if (impl_.caps.fork && impl_.caps.truncate) scenarios.push_back(kRecycle);
  } else {
    if (impl_.caps.truncate) scenarios.push_back(kRollbackPrefill);
    if (impl_.caps.fork) scenarios.push_back(kForkPrefill);
    if (impl_.caps.fork || impl_.caps.truncate) scenarios.push_back(kEmptyFork);
    if (impl_.caps.fork) scenarios.push_back(kDropParent);
  }
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


}  // namespace kvbench::props
