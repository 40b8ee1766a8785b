// What torch_cached and torch_static share: the model written with LibTorch tensor ops in
// fp32, the way a Python codebase writes it (nn.Linear weights, q @ k^T / sqrt(d), masked
// softmax, GQA by repeating K/V to the group), and the prefill/decode hooks built on it.
// The two peers differ only in where K and V live; each supplies `store_kv`.
//
// This header includes LibTorch: include it only from impls/torch_*.cpp.
// It uses only ATen per-operator headers (ATen/ops/*.h), which exist in LibTorch 1.13 and
// 2.x and compile in about a fifth of the time of <torch/torch.h>.
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "harness/kv_cache.h"

namespace kvbench {
namespace torch_impl {

// One layer's weights, created once as fp32 tensors in nn.Linear layout [out, in].
struct LayerTensors {
  at::Tensor wq;  // [H * d, d_model]
  at::Tensor wk;  // [H_kv * d, d_model]
  at::Tensor wv;  // [H_kv * d, d_model]
  at::Tensor wo;  // [d_model, H * d]
};

// `rows` new tokens of sequence `id`, which held `past` tokens before them.
struct Segment {
  SeqId id = 0;
  int past = 0;
  int rows = 0;
};

// Keys and values of one sequence and layer, positions 0..T-1.
struct KvView {
  at::Tensor k;  // [H_kv, T, d]
  at::Tensor v;  // [H_kv, T, d]
};

// A LibTorch KvCache but for where K and V are written: each sequence holds, per layer, K and
// V tensors of `slots` positions at creation (0 for a growing cache, capacity when
// `preallocate`), filled with NaN when ImplOptions::poison_unused. Subclasses supply
// store_kv and do_truncate.
//
// Threads: LibTorch's thread count is process-global (at::set_num_threads). Each instance
// sets it to ImplOptions::threads at construction and again before each prefill/decode when
// another instance has changed it, so an instance always runs with its own thread count
// (1 by default: benchmarks compare single-thread against single-thread).
//
// Batched decode: the projections (W_q, W_k, W_v, W_o) of all sequences in a step run as one
// matrix product each; the attention runs per sequence, because each holds its own K/V
// tensors of its own length (ragged batch, no padding or mask).
class TorchKvCache : public KvCache {
 protected:
  // Throws Error unless config.dtype is fp32 (the peers compute and store in fp32).
  TorchKvCache(std::string name, std::shared_ptr<const ModelWeights> weights,
               ImplOptions options, bool preallocate);

  struct LayerKv {
    at::Tensor k;  // [H_kv, slots, d]: positions 0..T-1 hold the sequence
    at::Tensor v;  // [H_kv, slots, d]
  };
  std::vector<LayerKv>& kv_of(SeqId id) { return seqs_.at(id); }  // [L]

  // Stores the new K/V rows of `segment` for `layer` at positions past..past+rows-1 and
  // returns the sequence's keys and values of positions 0..past+rows-1.
  // k_new, v_new: [H_kv, rows, d].
  virtual KvView store_kv(const Segment& segment, int layer, const at::Tensor& k_new,
                          const at::Tensor& v_new) = 0;

 private:
  void do_create(SeqId id) override;
  void do_prefill(SeqId id, const float* x, int n, float* out) override;
  void do_decode(const std::vector<SeqId>& ids, const float* x, float* out) override;
  void do_fork(SeqId parent, SeqId child) override;
  void do_drop(SeqId id) override { seqs_.erase(id); }
  bool holds_kv_cache() const override { return true; }
  KvRows do_read_kv(SeqId id, int layer, int kv_head) const override;
  // held: 2 * L * H_kv * d * T * 4 per sequence; reserved: the bytes of the K/V storages.
  Memory memory_in_use() const override;

  // Runs all layers over the rows of `segments` (x, out: [sum of rows, d_model]).
  void forward(const std::vector<Segment>& segments, const float* x, float* out);
  // q: [H, n, d]; kv: [H_kv, past + n, d]. RETURNS: the attention output [n, H * d].
  at::Tensor attend(const at::Tensor& q, const KvView& kv, int past);
  void use_own_thread_count() const;

  int slots_;  // positions per K/V tensor at creation: 0 or capacity
  std::vector<LayerTensors> layers_;  // [L]
  std::map<SeqId, std::vector<LayerKv>> seqs_;
};

}  // namespace torch_impl
}  // namespace kvbench
