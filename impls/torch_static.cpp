// torch_static: the preallocated KV cache of Python static caches (Hugging Face's StaticCache,
// gpt-fast): per sequence and layer, K and V tensors [H_kv, capacity, d] allocated when the
// sequence is created, new rows written in place, attention over the first T positions
// (a narrow view, no copy). Appending costs O(rows); memory is capacity per sequence from the
// start (bytes_reserved), of which T rows are held. With poison_unused, every slot past T is
// NaN: at allocation and again after truncate, so a read past the sequence shows up.
#include <c10/core/InferenceMode.h>

#include <limits>

#include "impls/impls.h"
#include "impls/torch_common.h"

namespace kvbench {
namespace {

using torch_impl::KvView;
using torch_impl::Segment;

class TorchStatic final : public torch_impl::TorchKvCache {
 public:
  TorchStatic(std::shared_ptr<const ModelWeights> weights, const ImplOptions& options)
      : TorchKvCache("torch_static", std::move(weights), options, /*preallocate=*/true) {}

 private:
  KvView store_kv(const Segment& s, int layer, const at::Tensor& k_new,
                  const at::Tensor& v_new) override {
    LayerKv& cache = kv_of(s.id)[static_cast<std::size_t>(layer)];
    cache.k.narrow(1, s.past, s.rows).copy_(k_new);
    cache.v.narrow(1, s.past, s.rows).copy_(v_new);
    const int T = s.past + s.rows;
    return KvView{cache.k.narrow(1, 0, T), cache.v.narrow(1, 0, T)};
  }

  // Keeps the capacity; only the length (kept by KvCache) shrinks.
  void do_truncate(SeqId id, int length) override {
    if (!options().poison_unused) return;
    c10::InferenceMode inference;
    const int freed = this->length(id) - length;  // length(id) is still the old length here
    for (LayerKv& layer : kv_of(id)) {
      layer.k.narrow(1, length, freed).fill_(std::numeric_limits<float>::quiet_NaN());
      layer.v.narrow(1, length, freed).fill_(std::numeric_limits<float>::quiet_NaN());
    }
  }
};

}  // namespace

void register_torch_static(Registry& registry) {
  ImplInfo info;
  info.name = "torch_static";
  info.description =
      "LibTorch fp32, K/V preallocated to capacity, written in place (Python StaticCache pattern)";
  info.device = "cpu";
  info.caps.threads = true;  // at::set_num_threads(ImplOptions::threads)
  info.caps.kv_read_model = KvReadModel::per_kv_head;  // repeat_interleave reads each KV head once
  info.create = [](std::shared_ptr<const ModelWeights> weights, const ImplOptions& options) {
    return std::unique_ptr<KvCache>(new TorchStatic(std::move(weights), options));
  };
  registry.add(std::move(info));
}

}  // namespace kvbench
