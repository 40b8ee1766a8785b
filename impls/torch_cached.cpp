// torch_cached: the KV cache as most Python code writes it (Hugging Face's DynamicCache):
// per sequence and layer, K and V tensors [H_kv, T, d] that grow by torch.cat each step.
// Every step copies the whole cache into a new tensor, so appending costs O(T); nothing is
// allocated beyond the tokens held (bytes_reserved == bytes_held), so there are no unused
// slots to poison.
#include <ATen/ops/cat.h>
#include <c10/core/InferenceMode.h>

#include <map>

#include "impls/impls.h"
#include "impls/torch_common.h"

namespace kvbench {
namespace {

using torch_impl::KvView;
using torch_impl::Segment;

class TorchCached final : public torch_impl::TorchKvCache {
 public:
  TorchCached(std::shared_ptr<const ModelWeights> weights, const ImplOptions& options)
      : TorchKvCache("torch_cached", std::move(weights), options) {}

 private:
  struct Layer {
    at::Tensor k;  // [H_kv, T, d]
    at::Tensor v;  // [H_kv, T, d]
  };
  using Sequence = std::vector<Layer>;  // [L]

  void do_create(SeqId id) override {
    c10::InferenceMode inference;
    const ModelConfig& c = config();
    Sequence seq(static_cast<std::size_t>(c.layers));
    for (Layer& layer : seq) {
      layer.k = new_buffer({c.kv_heads, 0, c.head_dim});
      layer.v = new_buffer({c.kv_heads, 0, c.head_dim});
    }
    seqs_[id] = std::move(seq);
  }

  KvView store_kv(const Segment& s, int layer, const at::Tensor& k_new,
                  const at::Tensor& v_new) override {
    Layer& cache = seqs_.at(s.id)[static_cast<std::size_t>(layer)];
    cache.k = at::cat({cache.k, k_new}, 1);
    cache.v = at::cat({cache.v, v_new}, 1);
    return KvView{cache.k, cache.v};
  }

  void do_fork(SeqId parent, SeqId child) override {
    c10::InferenceMode inference;
    Sequence copy;
    for (const Layer& layer : seqs_.at(parent)) copy.push_back(Layer{layer.k.clone(), layer.v.clone()});
    seqs_[child] = std::move(copy);
  }

  void do_drop(SeqId id) override { seqs_.erase(id); }

  void do_truncate(SeqId id, int length) override {
    c10::InferenceMode inference;
    // clone(): a view would keep the longer storage alive until the next cat.
    for (Layer& layer : seqs_.at(id)) {
      layer.k = layer.k.narrow(1, 0, length).clone();
      layer.v = layer.v.narrow(1, 0, length).clone();
    }
  }

  KvRows do_read_kv(SeqId id, int layer, int kv_head) const override {
    const Layer& cache = seqs_.at(id)[static_cast<std::size_t>(layer)];
    return rows_of(cache.k, cache.v, kv_head, static_cast<int>(cache.k.size(1)));
  }

  Memory memory_in_use() const override {
    Memory m;
    for (const auto& entry : seqs_) {
      for (const Layer& layer : entry.second) {
        m.held += bytes_of(layer.k) + bytes_of(layer.v);
        m.reserved += layer.k.storage().nbytes() + layer.v.storage().nbytes();
      }
    }
    return m;
  }

  std::map<SeqId, Sequence> seqs_;
};

}  // namespace

void register_torch_cached(Registry& registry) {
  ImplInfo info;
  info.name = "torch_cached";
  info.description =
      "LibTorch fp32, K/V tensors grown by torch.cat each step (Python DynamicCache pattern)";
  info.device = "cpu";
  info.caps.threads = true;  // at::set_num_threads(ImplOptions::threads)
  info.create = [](std::shared_ptr<const ModelWeights> weights, const ImplOptions& options) {
    return std::unique_ptr<KvCache>(new TorchCached(std::move(weights), options));
  };
  registry.add(std::move(info));
}

}  // namespace kvbench
