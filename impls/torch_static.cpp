// torch_static: the preallocated KV cache of Python static caches (Hugging Face's StaticCache,
// gpt-fast): per sequence and layer, K and V tensors [H_kv, capacity, d] allocated when the
// sequence is created, new rows written in place, attention over the first T positions
// (a narrow view, no copy). Appending costs O(rows); memory is capacity per sequence from the
// start (bytes_reserved), of which T rows are held. With poison_unused, every slot past T is
// NaN: at allocation and again after truncate, so a read past the sequence shows up.
#include <c10/core/InferenceMode.h>

#include <limits>
#include <map>

#include "impls/impls.h"
#include "impls/torch_common.h"

namespace kvbench {
namespace {

using torch_impl::KvView;
using torch_impl::Segment;

class TorchStatic final : public torch_impl::TorchKvCache {
 public:
  TorchStatic(std::shared_ptr<const ModelWeights> weights, const ImplOptions& options)
      : TorchKvCache("torch_static", std::move(weights), options) {}

 private:
  struct Layer {
    at::Tensor k;  // [H_kv, capacity, d]; positions >= T are unused
    at::Tensor v;  // [H_kv, capacity, d]
  };
  using Sequence = std::vector<Layer>;  // [L]

  void do_create(SeqId id) override {
    c10::InferenceMode inference;
    const ModelConfig& c = config();
    Sequence seq(static_cast<std::size_t>(c.layers));
    for (Layer& layer : seq) {
      layer.k = new_buffer({c.kv_heads, c.capacity, c.head_dim});
      layer.v = new_buffer({c.kv_heads, c.capacity, c.head_dim});
    }
    seqs_[id] = std::move(seq);
  }

  KvView store_kv(const Segment& s, int layer, const at::Tensor& k_new,
                  const at::Tensor& v_new) override {
    Layer& cache = seqs_.at(s.id)[static_cast<std::size_t>(layer)];
    cache.k.narrow(1, s.past, s.rows).copy_(k_new);
    cache.v.narrow(1, s.past, s.rows).copy_(v_new);
    const int T = s.past + s.rows;
    return KvView{cache.k.narrow(1, 0, T), cache.v.narrow(1, 0, T)};
  }

  void do_fork(SeqId parent, SeqId child) override {
    c10::InferenceMode inference;
    Sequence copy;
    for (const Layer& layer : seqs_.at(parent)) copy.push_back(Layer{layer.k.clone(), layer.v.clone()});
    seqs_[child] = std::move(copy);
  }

  void do_drop(SeqId id) override { seqs_.erase(id); }

  // Keeps the capacity; only the length (kept by KvCache) shrinks.
  void do_truncate(SeqId id, int length) override {
    if (!options().poison_unused) return;
    c10::InferenceMode inference;
    const int freed = this->length(id) - length;  // length(id) is still the old length here
    for (Layer& layer : seqs_.at(id)) {
      layer.k.narrow(1, length, freed).fill_(std::numeric_limits<float>::quiet_NaN());
      layer.v.narrow(1, length, freed).fill_(std::numeric_limits<float>::quiet_NaN());
    }
  }

  KvRows do_read_kv(SeqId id, int layer, int kv_head) const override {
    const Layer& cache = seqs_.at(id)[static_cast<std::size_t>(layer)];
    return rows_of(cache.k, cache.v, kv_head, length(id));
  }

  Memory memory_in_use() const override {
    Memory m;
    for (const auto& entry : seqs_) {
      m.held += static_cast<std::uint64_t>(length(entry.first)) * config().kv_bytes_per_token();
      for (const Layer& layer : entry.second) m.reserved += bytes_of(layer.k) + bytes_of(layer.v);
    }
    return m;
  }

  std::map<SeqId, Sequence> seqs_;
};

}  // namespace

void register_torch_static(Registry& registry) {
  ImplInfo info;
  info.name = "torch_static";
  info.description =
      "LibTorch fp32, K/V preallocated to capacity, written in place (Python StaticCache pattern)";
  info.device = "cpu";
  info.caps.threads = true;  // at::set_num_threads(ImplOptions::threads)
  info.create = [](std::shared_ptr<const ModelWeights> weights, const ImplOptions& options) {
    return std::unique_ptr<KvCache>(new TorchStatic(std::move(weights), options));
  };
  registry.add(std::move(info));
}

}  // namespace kvbench
