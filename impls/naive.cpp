// naive: decoding with no K/V cache, the baseline every cache is measured against.
//
// Per sequence it keeps the inputs each layer has seen (the residual-stream rows entering
// layer l, for every token so far). At every step, in every layer, it projects K and V
// again for the WHOLE prefix from those stored inputs, then attends with the new queries.
// So over a T-token decode it computes T(T+1)/2 K/V projection rows per layer where a cache
// computes T, while the query-key dot products are T(T+1)/2 per query head and layer for
// both (see DESIGN.md, "The model under test").
//
// It runs the same fp32 kernels as cpu_cached (impls/cpu_kernels.h: the multi-row
// projection, vector dot products and axpy, the AVX2/FMA clone where the CPU has one), on one
// thread, so that timing naive against cpu_cached measures the cache (the projections it
// saves), not the quality of the loops. Softmax is two-pass: scores, then max, exp, sum.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "harness/error.h"
#include "impls/cpu_kernels.h"
#include "impls/impls.h"

namespace kvbench {
namespace {

using namespace kernels;  // NOLINT: dot, axpy, sum, max_of, exp_nonpositive, project_rows

// Y[i * rows + r] (+)= W[r] . X[i * cols] for r < rows, i < n: W [rows, cols], X [n, cols],
// Y [n, rows]. In blocks of 256 KiB of W rows, which stay in L2 while a block is applied to
// all n rows (cpu_cached's block size, measured there on llama2-7b shapes).
void project(const float* W, int rows, int cols, const float* X, int n, float* Y,
             bool accumulate) {
  const int block = std::max(1, 65536 / cols);
  for (int r0 = 0; r0 < rows; r0 += block) {
    project_rows(W, cols, r0, std::min(rows, r0 + block), X, static_cast<std::size_t>(cols), n, Y,
                 static_cast<std::size_t>(rows), accumulate);
  }
}

// o [d] = softmax_j(scale * q . k_j) v_j over keys j < keys, two-pass: p [keys] holds the
// scores, then their exp. Row j of K (of V) starts at k + j * stride (v + j * stride).
KVBENCH_HOT void attend_head(const float* q, const float* k, const float* v, std::size_t stride,
                             int keys, int d, float scale, float* p, float* o) {
  for (int j = 0; j < keys; ++j) p[j] = dot(q, k + static_cast<std::size_t>(j) * stride, d) * scale;
  const float max_score = max_of(p, keys);
  for (int j = 0; j < keys; ++j) p[j] -= max_score;  // <= 0, as exp_nonpositive requires
  exp_nonpositive(p, keys);
  const float inv = 1.0f / sum(p, keys);  // the max's term is exp(0) = 1: the sum is >= 1
  std::fill(o, o + d, 0.0f);
  for (int j = 0; j < keys; ++j) axpy(o, v + static_cast<std::size_t>(j) * stride, p[j], d);
  for (int e = 0; e < d; ++e) o[e] *= inv;
}

class NaiveCache final : public KvCache {
 public:
  NaiveCache(std::shared_ptr<const ModelWeights> weights, const ImplOptions& options)
      : KvCache("naive", std::move(weights), options) {
    require(config().dtype == DType::f32, "naive: dtype ", dtype_name(config().dtype),
            " is not supported (naive stores fp32 only)");
  }

 private:
  struct Sequence {
    // inputs[l]: the rows that entered layer l, one per token so far. [L][T * d_model]
    std::vector<std::vector<float>> inputs;
  };

  void do_create(SeqId id) override {
    seqs_[id].inputs.assign(static_cast<std::size_t>(config().layers), {});
  }

  // Prefill of n tokens onto a sequence of m: per layer, K/V are projected for all m + n
  // rows once (kv_projection_rows += m + n per layer), and each new query attends causally.
  void do_prefill(SeqId id, const float* x, int n, float* out) override {
    forward(seqs_.at(id), x, n, out);
  }

  // A decode step is a prefill of one token: per layer, t + 1 projection rows for a
  // sequence of t tokens, so T(T+1)/2 per layer over a T-token decode.
  void do_decode(const std::vector<SeqId>& ids, const float* x, float* out) override {
    const std::size_t width = static_cast<std::size_t>(config().d_model);
    for (std::size_t i = 0; i < ids.size(); ++i) {
      forward(seqs_.at(ids[i]), x + i * width, 1, out + i * width);
    }
  }

  void do_fork(SeqId parent, SeqId child) override { seqs_[child] = seqs_.at(parent); }
  void do_drop(SeqId id) override { seqs_.erase(id); }
  void do_truncate(SeqId id, int length) override {
    const std::size_t keep = static_cast<std::size_t>(length) * config().d_model;
    for (auto& rows : seqs_.at(id).inputs) rows.resize(keep);
  }

  bool holds_kv_cache() const override { return false; }
  KvRows do_read_kv(SeqId, int, int) const override {
    fail("naive.read_kv: naive holds no K/V cache");
  }

  // held: L * T * d_model * 4 per sequence (the stored layer inputs);
  // reserved: what the vectors have allocated for them.
  Memory memory_in_use() const override {
    Memory m;
    for (const auto& entry : seqs_) {
      for (const auto& rows : entry.second.inputs) {
        m.held += rows.size() * sizeof(float);
        m.reserved += rows.capacity() * sizeof(float);
      }
    }
    return m;
  }

  // Runs the n new rows x [n, d_model] through every layer of `seq` (which holds
  // inputs for `old` tokens); writes the last layer's outputs to out [n, d_model].
  void forward(Sequence& seq, const float* x, int n, float* out);

  // One layer: attention of the n newest rows of `inputs` over all of them, written to
  // `attn` [n, H * d] (before W_o).
  void attend_layer(const LayerWeights& w, const std::vector<float>& inputs, int n,
                    std::vector<float>& attn);

  std::map<SeqId, Sequence> seqs_;
};

void NaiveCache::forward(Sequence& seq, const float* x, int n, float* out) {
  const ModelConfig& c = config();
  const std::size_t dm = static_cast<std::size_t>(c.d_model);
  std::vector<float> cur(x, x + static_cast<std::size_t>(n) * dm);  // [n, d_model]
  std::vector<float> attn;                                          // [n, H * d]
  for (int l = 0; l < c.layers; ++l) {
    const LayerWeights& w = weights().layers[static_cast<std::size_t>(l)];
    std::vector<float>& inputs = seq.inputs[static_cast<std::size_t>(l)];
    inputs.insert(inputs.end(), cur.begin(), cur.end());
    attend_layer(w, inputs, n, attn);
    // Residual: x += W_o o, the next layer's input.
    project(w.wo.data(), c.d_model, c.q_width(), attn.data(), n, cur.data(), true);
  }
  std::copy(cur.begin(), cur.end(), out);
}

void NaiveCache::attend_layer(const LayerWeights& w, const std::vector<float>& inputs, int n,
                              std::vector<float>& attn) {
  const ModelConfig& c = config();
  const int dm = c.d_model, d = c.head_dim, kvw = c.kv_width(), qw = c.q_width();
  const int total = static_cast<int>(inputs.size() / static_cast<std::size_t>(dm));
  const int old = total - n;

  // No cache: K and V of the whole prefix, projected again from the stored inputs.
  std::vector<float> k(static_cast<std::size_t>(total) * kvw);  // [total, H_kv * d]
  std::vector<float> v(static_cast<std::size_t>(total) * kvw);  // [total, H_kv * d]
  project(w.wk.data(), kvw, dm, inputs.data(), total, k.data(), false);
  project(w.wv.data(), kvw, dm, inputs.data(), total, v.data(), false);
  counters().kv_projection_rows += static_cast<std::uint64_t>(total);

  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  std::vector<float> q(static_cast<std::size_t>(n) * qw);  // [n, H * d]
  project(w.wq.data(), qw, dm, inputs.data() + static_cast<std::size_t>(old) * dm, n, q.data(),
          false);
  std::vector<float> p(static_cast<std::size_t>(total));  // [total] one head's scores
  attn.assign(static_cast<std::size_t>(n) * qw, 0.0f);
  for (int i = 0; i < n; ++i) {
    const int pos = old + i;  // attends to keys 0..pos
    for (int h = 0; h < c.heads; ++h) {
      const std::size_t g_off = static_cast<std::size_t>(h / c.group_size()) * d;
      const std::size_t h_off = static_cast<std::size_t>(i) * qw + static_cast<std::size_t>(h) * d;
      attend_head(q.data() + h_off, k.data() + g_off, v.data() + g_off,
                  static_cast<std::size_t>(kvw), pos + 1, d, scale, p.data(), attn.data() + h_off);
    }
    // Each query head reads its KV head's rows itself: one K and one V row per key.
    const std::uint64_t keys = static_cast<std::uint64_t>(pos) + 1;
    counters().qk_dot_products += keys * static_cast<std::uint64_t>(c.heads);
    counters().kv_bytes_read +=
        keys * static_cast<std::uint64_t>(c.heads) * 2u * static_cast<std::uint64_t>(d) * sizeof(float);
  }
}

}  // namespace

void register_naive(Registry& registry) {
  ImplInfo info;
  info.name = "naive";
  info.description =
      "no cache: re-projects K/V of the whole prefix from stored layer inputs at every step";
  info.device = "cpu";
  info.caps.holds_kv_cache = false;
  info.caps.fork = true;
  info.caps.truncate = true;
  info.caps.threads = false;
  info.caps.dtypes = {DType::f32};
  // attend_head runs per query head over its KV head's re-projected rows.
  info.caps.kv_read_model = KvReadModel::per_query_head;
  info.create = [](std::shared_ptr<const ModelWeights> weights, const ImplOptions& options) {
    return std::unique_ptr<KvCache>(new NaiveCache(std::move(weights), options));
  };
  registry.add(std::move(info));
}

}  // namespace kvbench
