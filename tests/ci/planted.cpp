#include "tests/ci/planted.h"

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <utility>

#include "harness/error.h"

namespace kvbench::planted {
namespace {

// Forwards every hook to an inner cpu_cached through its public interface, mapping ids, and
// mirrors the inner counters minus `hidden_` (work a variant keeps out of its counters).
class WrappedCache : public KvCache {
 public:
  WrappedCache(std::string name, std::shared_ptr<const ModelWeights> weights,
               const ImplOptions& options)
      : KvCache(std::move(name), weights, options),
        inner_(Registry::global().get("cpu_cached").create(weights, options)) {}

 protected:
  KvCache& inner() { return *inner_; }
  SeqId inner_id(SeqId id) const { return ids_.at(id); }
  void set_inner_id(SeqId id, SeqId inner) { ids_[id] = inner; }

  std::vector<SeqId> inner_ids(const std::vector<SeqId>& ids) const {
    std::vector<SeqId> out;
    for (SeqId id : ids) out.push_back(ids_.at(id));
    return out;
  }

  // Copies the inner counters, less the hidden ones, into this cache's counters.
  void sync_counters() {
    const Stats s = inner_->stats();
    counters().kv_projection_rows = s.kv_projection_rows - hidden_.kv_projection_rows;
    counters().qk_dot_products = s.qk_dot_products - hidden_.qk_dot_products;
    counters().kv_bytes_read = s.kv_bytes_read - hidden_.kv_bytes_read;
  }

  // Runs `work` on the inner cache and keeps its counter increments out of this cache's.
  void hidden(const std::function<void()>& work) {
    const Stats before = inner_->stats();
    work();
    const Stats after = inner_->stats();
    hidden_.kv_projection_rows += after.kv_projection_rows - before.kv_projection_rows;
    hidden_.qk_dot_products += after.qk_dot_products - before.qk_dot_products;
    hidden_.kv_bytes_read += after.kv_bytes_read - before.kv_bytes_read;
  }

  void do_create(SeqId id) override { ids_[id] = inner_->create_sequence(); }

  void do_prefill(SeqId id, const float* x, int n, float* out) override {
    const std::size_t size = static_cast<std::size_t>(n) * config().d_model;
    const std::vector<float> y = inner_->prefill(ids_.at(id), std::vector<float>(x, x + size));
    std::copy(y.begin(), y.end(), out);
    sync_counters();
  }

  void do_decode(const std::vector<SeqId>& ids, const float* x, float* out) override {
    const std::size_t size = ids.size() * static_cast<std::size_t>(config().d_model);
    const std::vector<float> y = inner_->decode(inner_ids(ids), std::vector<float>(x, x + size));
    std::copy(y.begin(), y.end(), out);
    sync_counters();
  }

  void do_fork(SeqId parent, SeqId child) override { ids_[child] = inner_->fork(ids_.at(parent)); }
  void do_drop(SeqId id) override {
    inner_->drop(ids_.at(id));
    ids_.erase(id);
  }
  void do_truncate(SeqId id, int length) override { inner_->truncate(ids_.at(id), length); }
  bool holds_kv_cache() const override { return true; }
  KvRows do_read_kv(SeqId id, int layer, int kv_head) const override {
    return inner_->read_kv(ids_.at(id), layer, kv_head);
  }
  Memory memory_in_use() const override {
    const Stats s = inner_->stats();
    Memory m;
    m.held = s.bytes_held;
    m.reserved = s.bytes_reserved;
    return m;
  }

 private:
  std::unique_ptr<KvCache> inner_;
  std::map<SeqId, SeqId> ids_;
  Stats hidden_;
};

// (a) The whole cache copied every step: fork (a full copy of the rows held) and drop the
// original, then decode.
class CopyEveryStep final : public WrappedCache {
 public:
  using WrappedCache::WrappedCache;

 private:
  void do_decode(const std::vector<SeqId>& ids, const float* x, float* out) override {
    for (SeqId id : ids) {
      const SeqId copy = inner().fork(inner_id(id));
      inner().drop(inner_id(id));
      set_inner_id(id, copy);
    }
    WrappedCache::do_decode(ids, x, out);
  }
};

// (b) K/V of the last 16 tokens recomputed every step: the sequence is cut back by up to 16
// tokens and those are prefilled again together with the new one. Keeps every input row, so
// that truncate and fork can be followed.
class RecomputeLast16 final : public WrappedCache {
 public:
  using WrappedCache::WrappedCache;

 private:
  static constexpr int kRecompute = 16;

  void do_create(SeqId id) override {
    WrappedCache::do_create(id);
    rows_[id].clear();
  }
  void do_prefill(SeqId id, const float* x, int n, float* out) override {
    rows_[id].insert(rows_[id].end(), x, x + static_cast<std::size_t>(n) * config().d_model);
    WrappedCache::do_prefill(id, x, n, out);
  }
  void do_decode(const std::vector<SeqId>& ids, const float* x, float* out) override {
    const std::size_t dm = static_cast<std::size_t>(config().d_model);
    for (std::size_t i = 0; i < ids.size(); ++i) {
      std::vector<float>& rows = rows_[ids[i]];
      rows.insert(rows.end(), x + i * dm, x + (i + 1) * dm);
      const int held = length(ids[i]);  // before this step
      const int redo = std::min(kRecompute, held);
      inner().truncate(inner_id(ids[i]), held - redo);
      const std::vector<float> tail(rows.end() - static_cast<std::ptrdiff_t>((redo + 1) * dm), rows.end());
      const std::vector<float> y = inner().prefill(inner_id(ids[i]), tail);
      std::copy(y.end() - static_cast<std::ptrdiff_t>(dm), y.end(), out + i * dm);
    }
    sync_counters();
  }
  void do_fork(SeqId parent, SeqId child) override {
    WrappedCache::do_fork(parent, child);
    rows_[child] = rows_.at(parent);
  }
  void do_drop(SeqId id) override {
    WrappedCache::do_drop(id);
    rows_.erase(id);
  }
  void do_truncate(SeqId id, int length) override {
    WrappedCache::do_truncate(id, length);
    rows_.at(id).resize(static_cast<std::size_t>(length) * config().d_model);
  }

  std::map<SeqId, std::vector<float>> rows_;  // every input row of each sequence
};

// (c) ~10% more work: every 10th decode call is rolled back and decoded again (the same
// rows, so the same outputs), and the repeat is kept out of the counters.
class Extra10Percent final : public WrappedCache {
 public:
  using WrappedCache::WrappedCache;

 private:
  void do_decode(const std::vector<SeqId>& ids, const float* x, float* out) override {
    WrappedCache::do_decode(ids, x, out);
    if (++calls_ % 10 != 0) return;
    const std::size_t size = ids.size() * static_cast<std::size_t>(config().d_model);
    hidden([&] {
      for (SeqId id : ids) inner().truncate(inner_id(id), length(id));  // length() is pre-step
      inner().decode(inner_ids(ids), std::vector<float>(x, x + size));
    });
    sync_counters();
  }

  long calls_ = 0;
};

template <typename Cache>
ImplInfo entry(const std::string& name, const std::string& description) {
  ImplInfo info;
  info.name = name;
  info.description = description;
  info.device = "cpu";
  info.caps.holds_kv_cache = true;
  info.caps.fork = true;
  info.caps.truncate = true;
  info.caps.threads = false;
  info.caps.planted = true;
  info.caps.dtypes = {DType::f32};
  info.create = [name](std::shared_ptr<const ModelWeights> weights, const ImplOptions& options) {
    return std::unique_ptr<KvCache>(new Cache(name, std::move(weights), options));
  };
  return info;
}

}  // namespace

void register_planted(Registry& registry) {
  registry.add(entry<WrappedCache>("wrapped_cpu_cached", "control: cpu_cached behind a forwarding wrapper"));
  registry.add(entry<CopyEveryStep>("planted_copy_every_step", "copies its whole cache every step"));
  registry.add(entry<RecomputeLast16>("planted_recompute_last16", "recomputes K/V of the last 16 tokens every step"));
  registry.add(entry<Extra10Percent>("planted_extra_10pct", "decodes every 10th step twice, uncounted"));
}

}  // namespace kvbench::planted
