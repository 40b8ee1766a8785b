// torch_cached: the KV cache as most Python code writes it (Hugging Face's DynamicCache):
// per sequence and layer, K and V tensors [H_kv, T, d] that grow by torch.cat each step.
// Every step copies the whole cache into a new tensor, so appending costs O(T); nothing is
// allocated beyond the tokens held (bytes_reserved == bytes_held), so there are no unused
// slots to poison.
#include <ATen/ops/cat.h>
#include <c10/core/InferenceMode.h>

#include "impls/impls.h"
#include "impls/torch_common.h"

namespace kvbench {
namespace {

using torch_impl::KvView;
using torch_impl::Segment;

class TorchCached final : public torch_impl::TorchKvCache {
 public:
  TorchCached(std::shared_ptr<const ModelWeights> weights, const ImplOptions& options)
      : TorchKvCache("torch_cached", std::move(weights), options, /*preallocate=*/false) {}

 private:
  KvView store_kv(const Segment& s, int layer, const at::Tensor& k_new,
                  const at::Tensor& v_new) override {
    LayerKv& cache = kv_of(s.id)[static_cast<std::size_t>(layer)];
    cache.k = at::cat({cache.k, k_new}, 1);
    cache.v = at::cat({cache.v, v_new}, 1);
    return KvView{cache.k, cache.v};
  }

  void do_truncate(SeqId id, int length) override {
    c10::InferenceMode inference;
    // clone(): a view would keep the longer storage alive until the next cat.
    for (LayerKv& layer : kv_of(id)) {
      layer.k = layer.k.narrow(1, 0, length).clone();
      layer.v = layer.v.narrow(1, 0, length).clone();
    }
  }
};

}  // namespace

void register_torch_cached(Registry& registry) {
  ImplInfo info;
  info.name = "torch_cached";
  info.description =
      "LibTorch fp32, K/V tensors grown by torch.cat each step (Python DynamicCache pattern)";
  info.device = "cpu";
  info.caps.threads = true;  // at::set_num_threads(ImplOptions::threads)
  info.caps.kv_read_model = KvReadModel::per_kv_head;  // repeat_interleave reads each KV head once
  info.create = [](std::shared_ptr<const ModelWeights> weights, const ImplOptions& options) {
    return std::unique_ptr<KvCache>(new TorchCached(std::move(weights), options));
  };
  registry.add(std::move(info));
}

}  // namespace kvbench
