// ForwardingCache: a test-only K/V cache that forwards every call to a registered
// implementation, for tests that plant one bug on top of a correct cache. A subclass
// overrides the hook of the call it perturbs; the others forward unchanged, so the planted
// bug is the only difference a property can see.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "harness/kv_cache.h"
#include "harness/registry.h"

namespace kvbench::testing {

class ForwardingCache : public KvCache {
 protected:
  // REQUIRES: `inner` is registered in Registry::global().
  ForwardingCache(const std::string& name, const std::string& inner,
                  std::shared_ptr<const ModelWeights> weights, const ImplOptions& options);

  // Hooks, called after the inner call with the inner sequence ids; the defaults change
  // nothing. `out` holds the rows the caller receives ([n or ids.size(), d_model]).
  virtual void after_prefill(SeqId /*inner_id*/, const float* /*x*/, int /*n*/, float* /*out*/) {}
  virtual void after_decode(const std::vector<SeqId>& /*inner_ids*/, float* /*out*/) {}
  virtual void after_read_kv(KvRows& /*rows*/) const {}
  virtual void adjust_memory(Memory& /*memory*/) const {}
  // RETURNS: whether truncate reaches the inner cache (a planted bug may drop it).
  virtual bool forwards_truncate() const { return true; }

  // Planted extra query-key dot products, added to the inner cache's count.
  void add_qk_dot_products(std::uint64_t n) { extra_dots_ += n; }
  const KvCache& inner() const { return *inner_; }

 private:
  void sync();
  void do_create(SeqId id) override;
  void do_prefill(SeqId id, const float* x, int n, float* out) override;
  void do_decode(const std::vector<SeqId>& ids, const float* x, float* out) override;
  void do_fork(SeqId parent, SeqId child) override;
  void do_drop(SeqId id) override;
  void do_truncate(SeqId id, int length) override;
  bool holds_kv_cache() const override { return holds_kv_; }
  KvRows do_read_kv(SeqId id, int layer, int kv_head) const override;
  Memory memory_in_use() const override;

  std::unique_ptr<KvCache> inner_;
  bool holds_kv_;
  std::map<SeqId, SeqId> map_;  // our id -> the inner cache's id
  std::uint64_t extra_dots_ = 0;
};

}  // namespace kvbench::testing
