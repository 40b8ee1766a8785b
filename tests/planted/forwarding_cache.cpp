#include "tests/planted/forwarding_cache.h"

#include <algorithm>

namespace kvbench::testing {

ForwardingCache::ForwardingCache(const std::string& name, const std::string& inner,
                                 std::shared_ptr<const ModelWeights> weights,
                                 const ImplOptions& options)
    : KvCache(name, weights, options),
      inner_(Registry::global().get(inner).create(weights, options)),
      holds_kv_(Registry::global().get(inner).caps.holds_kv_cache) {}

void ForwardingCache::sync() {
  const Stats s = inner_->stats();
  counters().kv_projection_rows = s.kv_projection_rows;
  counters().qk_dot_products = s.qk_dot_products + extra_dots_;
  counters().kv_bytes_read = s.kv_bytes_read;
}

void ForwardingCache::do_create(SeqId id) { map_[id] = inner_->create_sequence(); }

void ForwardingCache::do_prefill(SeqId id, const float* x, int n, float* out) {
  const std::size_t dm = static_cast<std::size_t>(config().d_model);
  const std::vector<float> y = inner_->prefill(map_.at(id), std::vector<float>(x, x + n * dm));
  std::copy(y.begin(), y.end(), out);
  after_prefill(map_.at(id), x, n, out);
  sync();
}

void ForwardingCache::do_decode(const std::vector<SeqId>& ids, const float* x, float* out) {
  const std::size_t dm = static_cast<std::size_t>(config().d_model);
  std::vector<SeqId> inner_ids;
  for (SeqId id : ids) inner_ids.push_back(map_.at(id));
  const std::vector<float> y =
      inner_->decode(inner_ids, std::vector<float>(x, x + ids.size() * dm));
  std::copy(y.begin(), y.end(), out);
  after_decode(inner_ids, out);
  sync();
}

void ForwardingCache::do_fork(SeqId parent, SeqId child) {
  map_[child] = inner_->fork(map_.at(parent));
}

void ForwardingCache::do_drop(SeqId id) {
  inner_->drop(map_.at(id));
  map_.erase(id);
}

void ForwardingCache::do_truncate(SeqId id, int length) {
  if (forwards_truncate()) inner_->truncate(map_.at(id), length);
}

KvRows ForwardingCache::do_read_kv(SeqId id, int layer, int kv_head) const {
  KvRows rows = inner_->read_kv(map_.at(id), layer, kv_head);
  after_read_kv(rows);
  return rows;
}

KvCache::Memory ForwardingCache::memory_in_use() const {
  const Stats s = inner_->stats();
  Memory m{s.bytes_held, s.bytes_reserved};
  adjust_memory(m);
  return m;
}

}  // namespace kvbench::testing
