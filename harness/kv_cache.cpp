#include "harness/kv_cache.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <sstream>
#include <type_traits>

#include "harness/error.h"

namespace kvbench {

namespace {

thread_local KvCacheObserver* t_observer = nullptr;

// Clears this thread's observer for its lifetime: the calls that an observed call makes
// itself (its own body below, a wrapper's inner cache) are not reported again.
class ObserverPause {
 public:
  ObserverPause() : saved_(t_observer) { t_observer = nullptr; }
  ~ObserverPause() { t_observer = saved_; }
  ObserverPause(const ObserverPause&) = delete;
  ObserverPause& operator=(const ObserverPause&) = delete;

 private:
  KvCacheObserver* saved_;
};

// Runs `call` (the same public method, now unobserved) and reports `event` to `observer`:
// as it is when the call returns and `reaches` (the implementation was called), as a
// rejected call of the same kind when it throws (the exception goes on).
template <class Call>
auto observed(KvCacheObserver* observer, const KvCache& cache, const CacheEvent& event,
              bool reaches, Call&& call) {
  ObserverPause pause;
  try {
    if constexpr (std::is_void_v<std::invoke_result_t<Call&>>) {
      call();
      if (reaches) observer->on_call(cache, event);
    } else {
      auto result = call();
      if (reaches) observer->on_call(cache, event);
      return result;
    }
  } catch (...) {
    CacheEvent rejected;
    rejected.op = event.op;
    rejected.rejected = true;
    observer->on_call(cache, rejected);
    throw;
  }
}

CacheEvent event_of(CacheOp op, int rows, int before, int after) {
  CacheEvent e;
  e.op = op;
  e.rows = rows;
  e.length_before = before;
  e.length_after = after;
  return e;
}

}  // namespace

KvCacheObserver* cache_observer() { return t_observer; }

ScopedCacheObserver::ScopedCacheObserver(KvCacheObserver* observer) : previous_(t_observer) {
  t_observer = observer;
}

ScopedCacheObserver::~ScopedCacheObserver() { t_observer = previous_; }

KvCache::KvCache(std::string name, std::shared_ptr<const ModelWeights> weights,
                 ImplOptions options)
    : name_(std::move(name)), weights_(std::move(weights)), options_(options) {
  require(weights_ != nullptr, name_, ": weights must not be null");
  weights_->config.validate();
  require(options_.threads >= 1, name_, ": threads must be >= 1, got ", options_.threads);
  require(options_.block_size >= 1, name_, ": block_size must be >= 1 (tokens per block), got ",
          options_.block_size);
  require(options_.prefix_hash_bits >= 0 && options_.prefix_hash_bits <= 64, name_,
          ": prefix_hash_bits must be 0 (full width) to 64, got ", options_.prefix_hash_bits);
}

void KvCache::check_live(const char* op, SeqId id) const {
  if (lengths_.count(id)) return;
  std::ostringstream live;
  int shown = 0;
  for (const auto& entry : lengths_) {
    if (shown++ == 8) {
      live << ", ...";
      break;
    }
    live << (shown > 1 ? ", " : "") << entry.first;
  }
  fail(name_, ".", op, ": sequence id ", id, " is unknown (live ids: ",
       lengths_.empty() ? std::string("none") : live.str(), ")");
}

void KvCache::check_rows(const char* op, const std::vector<float>& rows,
                         std::size_t expected_rows) const {
  const std::size_t width = static_cast<std::size_t>(config().d_model);
  require(rows.size() == expected_rows * width, name_, ".", op, ": token rows have ",
          rows.size(), " floats, expected ", expected_rows, " x d_model ", width, " = ",
          expected_rows * width);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    if (!std::isfinite(rows[i])) {
      fail(name_, ".", op, ": input row ", i / width, " column ", i % width, " is ", rows[i],
           " (inputs must be finite)");
    }
  }
}

SeqId KvCache::create_sequence() {
  if (KvCacheObserver* o = t_observer) {
    return observed(o, *this, event_of(CacheOp::create, 0, 0, 0), true,
                    [&] { return create_sequence(); });
  }
  const SeqId id = next_id_;
  do_create(id);
  lengths_[id] = 0;
  ++next_id_;
  return id;
}

std::vector<float> KvCache::prefill(SeqId id, const std::vector<float>& tokens,
                                    PrefillRows rows) {
  if (KvCacheObserver* o = t_observer) {
    const auto it = lengths_.find(id);
    const int have = it == lengths_.end() ? 0 : it->second;
    const int n = static_cast<int>(tokens.size() / static_cast<std::size_t>(config().d_model));
    return observed(o, *this, event_of(CacheOp::prefill, n, have, have + n), n > 0,
                    [&] { return prefill(id, tokens, rows); });
  }
  check_live("prefill", id);
  const std::size_t width = static_cast<std::size_t>(config().d_model);
  require(tokens.size() % width == 0, name_, ".prefill: prompt has ", tokens.size(),
          " floats, not a multiple of d_model ", width);
  const int n = static_cast<int>(tokens.size() / width);
  check_rows("prefill", tokens, static_cast<std::size_t>(n));
  const int have = lengths_.at(id);
  require(have + n <= config().capacity, name_, ".prefill: sequence ", id, " holds ", have,
          " tokens; ", n, " more would pass capacity ", config().capacity);
  if (rows == PrefillRows::last) {
    std::vector<float> out(n > 0 ? width : 0);
    if (n > 0) do_prefill_last(id, tokens.data(), n, out.data());
    lengths_[id] = have + n;
    return out;
  }
  std::vector<float> out(tokens.size());
  if (n > 0) do_prefill(id, tokens.data(), n, out.data());
  lengths_[id] = have + n;
  return out;
}

void KvCache::do_prefill_last(SeqId id, const float* x, int n, float* out) {
  const std::size_t width = static_cast<std::size_t>(config().d_model);
  std::vector<float> all(static_cast<std::size_t>(n) * width);
  do_prefill(id, x, n, all.data());
  std::copy_n(all.data() + static_cast<std::size_t>(n - 1) * width, width, out);
}

std::vector<float> KvCache::decode(const std::vector<SeqId>& ids,
                                   const std::vector<float>& tokens) {
  if (KvCacheObserver* o = t_observer) {
    int longest = 0;
    for (SeqId id : ids) {
      const auto it = lengths_.find(id);
      if (it != lengths_.end()) longest = std::max(longest, it->second);
    }
    const int batch = static_cast<int>(ids.size());
    return observed(o, *this, event_of(CacheOp::decode, batch, longest, longest + 1), batch > 0,
                    [&] { return decode(ids, tokens); });
  }
  std::set<SeqId> seen;
  for (SeqId id : ids) {
    check_live("decode", id);
    require(seen.insert(id).second, name_, ".decode: sequence id ", id,
            " appears twice in one step");
    require(lengths_.at(id) < config().capacity, name_, ".decode: sequence ", id,
            " is full (", lengths_.at(id), " tokens = capacity ", config().capacity, ")");
  }
  check_rows("decode", tokens, ids.size());
  std::vector<float> out(tokens.size());
  if (!ids.empty()) do_decode(ids, tokens.data(), out.data());
  for (SeqId id : ids) ++lengths_[id];
  return out;
}

SeqId KvCache::fork(SeqId parent) {
  if (KvCacheObserver* o = t_observer) {
    const auto it = lengths_.find(parent);
    const int have = it == lengths_.end() ? 0 : it->second;
    return observed(o, *this, event_of(CacheOp::fork, 0, have, have), true,
                    [&] { return fork(parent); });
  }
  check_live("fork", parent);
  const SeqId child = next_id_;
  do_fork(parent, child);
  lengths_[child] = lengths_.at(parent);
  ++next_id_;
  return child;
}

void KvCache::drop(SeqId id) {
  if (KvCacheObserver* o = t_observer) {
    const auto it = lengths_.find(id);
    const int have = it == lengths_.end() ? 0 : it->second;
    return observed(o, *this, event_of(CacheOp::drop, 0, have, 0), true, [&] { drop(id); });
  }
  check_live("drop", id);
  do_drop(id);
  lengths_.erase(id);
}

void KvCache::truncate(SeqId id, int length) {
  if (KvCacheObserver* o = t_observer) {
    const auto it = lengths_.find(id);
    const int have = it == lengths_.end() ? 0 : it->second;
    return observed(o, *this, event_of(CacheOp::truncate, 0, have, length), length != have,
                    [&] { truncate(id, length); });
  }
  check_live("truncate", id);
  const int have = lengths_.at(id);
  require(length >= 0 && length <= have, name_, ".truncate: length ", length,
          " is out of range for sequence ", id, " of ", have, " tokens (0..", have, ")");
  if (length == have) return;
  do_truncate(id, length);
  lengths_[id] = length;
}

void KvCache::reset() {
  // Drop one by one so each implementation releases memory through its own hook.
  while (!lengths_.empty()) drop(lengths_.begin()->first);
  next_id_ = 0;
}

int KvCache::length(SeqId id) const {
  check_live("length", id);
  return lengths_.at(id);
}

std::vector<SeqId> KvCache::sequences() const {
  std::vector<SeqId> ids;
  for (const auto& entry : lengths_) ids.push_back(entry.first);
  return ids;
}

KvRows KvCache::read_kv(SeqId id, int layer, int kv_head) const {
  if (KvCacheObserver* o = t_observer) {
    const auto it = lengths_.find(id);
    const int have = it == lengths_.end() ? 0 : it->second;
    return observed(o, *this, event_of(CacheOp::read_kv, 0, have, have), true,
                    [&] { return read_kv(id, layer, kv_head); });
  }
  require(holds_kv_cache(), name_, ".read_kv: this implementation holds no K/V cache");
  check_live("read_kv", id);
  require(layer >= 0 && layer < config().layers, name_, ".read_kv: layer ", layer,
          " is out of range 0..", config().layers - 1);
  require(kv_head >= 0 && kv_head < config().kv_heads, name_, ".read_kv: kv_head ", kv_head,
          " is out of range 0..", config().kv_heads - 1);
  return do_read_kv(id, layer, kv_head);
}

Stats KvCache::stats() const {
  Stats s = counters_;
  const Memory m = memory_in_use();
  s.bytes_held = m.held;
  s.bytes_reserved = m.reserved;
  s.blocks_in_use = m.blocks_in_use;
  s.blocks_cached = m.blocks_cached;
  s.blocks_free = m.blocks_free;
  return s;
}

}  // namespace kvbench
