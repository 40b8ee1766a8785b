#include "impls/torch_common.h"

#include <ATen/Parallel.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/linear.h>
#include <ATen/ops/matmul.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/softmax.h>
#include <c10/core/InferenceMode.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "harness/error.h"

namespace kvbench {
namespace torch_impl {

namespace {

at::TensorOptions f32() { return at::TensorOptions().dtype(at::kFloat); }

// A tensor that owns a copy of rows x cols floats.
at::Tensor copy_in(const float* data, std::int64_t rows, std::int64_t cols) {
  at::Tensor t = at::empty({rows, cols}, f32());
  std::memcpy(t.data_ptr<float>(), data, static_cast<std::size_t>(rows * cols) * sizeof(float));
  return t;
}

void copy_out(const at::Tensor& t, float* out) {
  const at::Tensor c = t.contiguous();
  std::memcpy(out, c.data_ptr<float>(), static_cast<std::size_t>(c.numel()) * sizeof(float));
}

LayerTensors layer_tensors(const ModelConfig& c, const LayerWeights& w) {
  return LayerTensors{copy_in(w.wq.data(), c.q_width(), c.d_model),
                      copy_in(w.wk.data(), c.kv_width(), c.d_model),
                      copy_in(w.wv.data(), c.kv_width(), c.d_model),
                      copy_in(w.wo.data(), c.d_model, c.q_width())};
}

}  // namespace

TorchKvCache::TorchKvCache(std::string name, std::shared_ptr<const ModelWeights> weights,
                           ImplOptions options, bool preallocate)
    : KvCache(std::move(name), std::move(weights), options),
      slots_(preallocate ? config().capacity : 0) {
  require(config().dtype == DType::f32, this->name(), ": dtype ", dtype_name(config().dtype),
          " is not supported (LibTorch peers store and compute in fp32 only)");
  at::set_num_threads(this->options().threads);
  c10::InferenceMode inference;
  for (const LayerWeights& w : this->weights().layers) {
    layers_.push_back(layer_tensors(config(), w));
  }
}

void TorchKvCache::use_own_thread_count() const {
  if (at::get_num_threads() != options().threads) at::set_num_threads(options().threads);
}

void TorchKvCache::do_create(SeqId id) {
  c10::InferenceMode inference;
  const ModelConfig& c = config();
  std::vector<LayerKv> seq(static_cast<std::size_t>(c.layers));
  for (LayerKv& layer : seq) {
    for (at::Tensor* t : {&layer.k, &layer.v}) {
      *t = at::empty({c.kv_heads, slots_, c.head_dim}, f32());
      if (options().poison_unused) t->fill_(std::numeric_limits<float>::quiet_NaN());
    }
  }
  seqs_[id] = std::move(seq);
}

void TorchKvCache::do_fork(SeqId parent, SeqId child) {
  c10::InferenceMode inference;
  std::vector<LayerKv> copy;
  for (const LayerKv& layer : seqs_.at(parent)) {
    copy.push_back(LayerKv{layer.k.clone(), layer.v.clone()});
  }
  seqs_[child] = std::move(copy);
}

KvRows TorchKvCache::do_read_kv(SeqId id, int layer, int kv_head) const {
  c10::InferenceMode inference;
  const LayerKv& kv = seqs_.at(id)[static_cast<std::size_t>(layer)];
  KvRows rows;
  rows.length = length(id);
  rows.head_dim = config().head_dim;
  const std::size_t n =
      static_cast<std::size_t>(rows.length) * static_cast<std::size_t>(rows.head_dim);
  rows.k.resize(n);
  rows.v.resize(n);
  if (n == 0) return rows;
  copy_out(kv.k.select(0, kv_head).narrow(0, 0, rows.length), rows.k.data());
  copy_out(kv.v.select(0, kv_head).narrow(0, 0, rows.length), rows.v.data());
  return rows;
}

KvCache::Memory TorchKvCache::memory_in_use() const {
  Memory m;
  for (const auto& entry : seqs_) {
    m.held += static_cast<std::uint64_t>(length(entry.first)) * config().kv_bytes_per_token();
    for (const LayerKv& layer : entry.second) {
      m.reserved += layer.k.storage().nbytes() + layer.v.storage().nbytes();
    }
  }
  return m;
}

void TorchKvCache::do_prefill(SeqId id, const float* x, int n, float* out) {
  forward({Segment{id, length(id), n}}, x, out);
}

void TorchKvCache::do_decode(const std::vector<SeqId>& ids, const float* x, float* out) {
  std::vector<Segment> segments;
  segments.reserve(ids.size());
  for (SeqId id : ids) segments.push_back(Segment{id, length(id), 1});
  forward(segments, x, out);
}

void TorchKvCache::forward(const std::vector<Segment>& segments, const float* x, float* out) {
  use_own_thread_count();
  c10::InferenceMode inference;
  const ModelConfig& c = config();
  const std::int64_t H = c.heads, G = c.kv_heads, d = c.head_dim;
  std::int64_t total = 0;
  for (const Segment& s : segments) total += s.rows;

  at::Tensor hidden = copy_in(x, total, c.d_model);  // [total, d_model]
  std::vector<at::Tensor> outputs(segments.size());
  for (int l = 0; l < c.layers; ++l) {
    const LayerTensors& w = layers_[static_cast<std::size_t>(l)];
    // One projection for all rows of the step, as a batched Python forward does.
    const at::Tensor q = at::linear(hidden, w.wq);  // [total, H * d]
    const at::Tensor k = at::linear(hidden, w.wk);  // [total, H_kv * d]
    const at::Tensor v = at::linear(hidden, w.wv);  // [total, H_kv * d]
    counters().kv_projection_rows += static_cast<std::uint64_t>(total);

    std::int64_t row = 0;
    for (std::size_t i = 0; i < segments.size(); ++i) {
      const Segment& s = segments[i];
      const std::int64_t n = s.rows;
      // [n, heads * d] -> [heads, n, d]
      const at::Tensor q_s = q.narrow(0, row, n).view({n, H, d}).transpose(0, 1);
      const at::Tensor k_s = k.narrow(0, row, n).view({n, G, d}).transpose(0, 1);
      const at::Tensor v_s = v.narrow(0, row, n).view({n, G, d}).transpose(0, 1);
      const KvView kv = store_kv(s, l, k_s, v_s);
      outputs[i] = attend(q_s, kv, s.past);  // [n, H * d]
      row += n;
    }
    const at::Tensor o = outputs.size() == 1 ? outputs[0] : at::cat(outputs, 0);
    hidden = hidden.add(at::linear(o, w.wo));  // residual
  }
  copy_out(hidden, out);
}

at::Tensor TorchKvCache::attend(const at::Tensor& q, const KvView& kv, int past) {
  const ModelConfig& c = config();
  const std::int64_t n = q.size(1);
  const std::int64_t T = kv.k.size(1);  // past + n
  at::Tensor keys = kv.k;
  at::Tensor values = kv.v;
  // GQA: query head h reads KV head h / group, so each KV head is repeated `group` times
  // (repeat_kv in Python Llama code). The repeat reads the cache once per KV head.
  if (c.group_size() > 1) {
    keys = keys.repeat_interleave(c.group_size(), 0);      // [H, T, d]
    values = values.repeat_interleave(c.group_size(), 0);  // [H, T, d]
  }
  at::Tensor scores = at::matmul(q, keys.transpose(1, 2));  // [H, n, T]
  scores.div_(std::sqrt(static_cast<double>(c.head_dim)));
  if (n > 1) {
    // Row i (position past + i) sees keys 0..past + i; the later ones are masked.
    const at::Tensor later = at::ones({n, T}, at::TensorOptions().dtype(at::kBool)).triu(past + 1);
    scores.masked_fill_(later, -std::numeric_limits<float>::infinity());
  }
  const at::Tensor probs = at::softmax(scores, -1);
  const at::Tensor o = at::matmul(probs, values);  // [H, n, d]

  // The full [n, T] score matrix is computed (masked entries included), as in Python.
  counters().qk_dot_products += static_cast<std::uint64_t>(c.heads * n * T);
  counters().kv_bytes_read +=
      2u * static_cast<std::uint64_t>(c.kv_heads * T * c.head_dim) * sizeof(float);
  return o.transpose(0, 1).reshape({n, c.heads * c.head_dim});
}

}  // namespace torch_impl
}  // namespace kvbench
