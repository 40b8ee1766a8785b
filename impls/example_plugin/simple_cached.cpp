// An implementation outside the kvbench binary, loaded with `--plugin`: the smallest
// complete K/V cache, written for reading rather than speed. Copy this file to start your own.
//
//   cmake --build build --target kvbench_example_plugin
//   build/kvbench verify --plugin build/impls/example_plugin/libkvbench_example_plugin.so \
//                        --impl simple_cached
//
// A plugin is a shared library compiled against kvbench's headers that defines
//   extern "C" void kvbench_register(kvbench::Registry&);
// It links nothing of kvbench: the kvbench executable exports the harness's symbols.
#include <cmath>
#include <map>
#include <memory>
#include <vector>

#include "harness/error.h"
#include "harness/registry.h"

namespace {

using namespace kvbench;

class SimpleCached final : public KvCache {
 public:
  SimpleCached(std::shared_ptr<const ModelWeights> weights, const ImplOptions& options)
      : KvCache("simple_cached", std::move(weights), options) {
    require(config().dtype == DType::f32, "simple_cached: dtype ", dtype_name(config().dtype),
            " is not supported (fp32 only)");
  }

 private:
  // k[l][g], v[l][g]: the rows of layer l, KV head g, appended one token at a time. [T * d]
  struct Sequence {
    std::vector<std::vector<std::vector<float>>> k, v;
  };

  void do_create(SeqId id) override {
    const auto L = static_cast<std::size_t>(config().layers);
    const auto G = static_cast<std::size_t>(config().kv_heads);
    seqs_[id].k.assign(L, std::vector<std::vector<float>>(G));
    seqs_[id].v.assign(L, std::vector<std::vector<float>>(G));
  }
  void do_prefill(SeqId id, const float* x, int n, float* out) override {
    const std::size_t width = static_cast<std::size_t>(config().d_model);
    for (int t = 0; t < n; ++t) step(seqs_.at(id), x + t * width, out + t * width);
  }
  void do_decode(const std::vector<SeqId>& ids, const float* x, float* out) override {
    const std::size_t width = static_cast<std::size_t>(config().d_model);
    for (std::size_t i = 0; i < ids.size(); ++i) step(seqs_.at(ids[i]), x + i * width, out + i * width);
  }
  void do_fork(SeqId parent, SeqId child) override { seqs_[child] = seqs_.at(parent); }
  void do_drop(SeqId id) override { seqs_.erase(id); }
  void do_truncate(SeqId id, int length) override {
    const std::size_t keep = static_cast<std::size_t>(length) * config().head_dim;
    for (auto* side : {&seqs_.at(id).k, &seqs_.at(id).v})
      for (auto& layer : *side)
        for (auto& rows : layer) rows.resize(keep);
  }
  bool holds_kv_cache() const override { return true; }
  KvRows do_read_kv(SeqId id, int layer, int kv_head) const override {
    const Sequence& s = seqs_.at(id);
    KvRows rows;
    rows.head_dim = config().head_dim;
    rows.k = s.k[layer][kv_head];
    rows.v = s.v[layer][kv_head];
    rows.length = static_cast<int>(rows.k.size()) / rows.head_dim;
    return rows;
  }
  Memory memory_in_use() const override {
    Memory m;
    for (const auto& entry : seqs_)
      for (const auto* side : {&entry.second.k, &entry.second.v})
        for (const auto& layer : *side)
          for (const auto& rows : layer) {
            m.held += rows.size() * sizeof(float);
            m.reserved += rows.capacity() * sizeof(float);
          }
    return m;
  }

  static void matvec(const std::vector<float>& w, int rows, int cols, const float* x, float* y) {
    for (int r = 0; r < rows; ++r) {
      float sum = 0.0f;
      for (int c = 0; c < cols; ++c) sum += w[static_cast<std::size_t>(r) * cols + c] * x[c];
      y[r] = sum;
    }
  }

  // One token through every layer: project q, k, v; append k, v; attend; W_o; residual.
  void step(Sequence& s, const float* token, float* out) {
    const ModelConfig& c = config();
    const int d = c.head_dim;
    std::vector<float> x(token, token + c.d_model), q(c.q_width()), k(c.kv_width()),
        v(c.kv_width()), o(c.q_width()), y(c.d_model);
    for (int l = 0; l < c.layers; ++l) {
      const LayerWeights& w = weights().layers[l];
      matvec(w.wq, c.q_width(), c.d_model, x.data(), q.data());
      matvec(w.wk, c.kv_width(), c.d_model, x.data(), k.data());
      matvec(w.wv, c.kv_width(), c.d_model, x.data(), v.data());
      counters().kv_projection_rows += 1;
      for (int g = 0; g < c.kv_heads; ++g) {
        s.k[l][g].insert(s.k[l][g].end(), k.begin() + g * d, k.begin() + (g + 1) * d);
        s.v[l][g].insert(s.v[l][g].end(), v.begin() + g * d, v.begin() + (g + 1) * d);
      }
      for (int h = 0; h < c.heads; ++h) attend(s, l, h, q.data() + h * d, o.data() + h * d);
      matvec(w.wo, c.d_model, c.q_width(), o.data(), y.data());
      for (int i = 0; i < c.d_model; ++i) x[i] += y[i];
    }
    std::copy(x.begin(), x.end(), out);
  }

  // Softmax over all cached positions, two passes: scores and their max, then the weights.
  void attend(const Sequence& s, int l, int h, const float* q, float* o) {
    const int d = config().head_dim;
    const int g = h / config().group_size();
    const std::vector<float>& K = s.k[l][g];
    const std::vector<float>& V = s.v[l][g];
    const int T = static_cast<int>(K.size()) / d;
    std::vector<float> scores(T);
    float max_score = -INFINITY;
    for (int j = 0; j < T; ++j) {
      float dot = 0.0f;
      for (int i = 0; i < d; ++i) dot += q[i] * K[static_cast<std::size_t>(j) * d + i];
      scores[j] = dot / std::sqrt(static_cast<float>(d));
      max_score = std::max(max_score, scores[j]);
    }
    float total = 0.0f;
    for (float& sc : scores) total += (sc = std::exp(sc - max_score));
    std::fill(o, o + d, 0.0f);
    for (int j = 0; j < T; ++j)
      for (int i = 0; i < d; ++i) o[i] += scores[j] / total * V[static_cast<std::size_t>(j) * d + i];
    counters().qk_dot_products += static_cast<std::uint64_t>(T);
    counters().kv_bytes_read += 2ull * static_cast<std::uint64_t>(T) * d * sizeof(float);
  }

  std::map<SeqId, Sequence> seqs_;
};

}  // namespace

extern "C" void kvbench_register(kvbench::Registry& registry) {
  ImplInfo info;
  info.name = "simple_cached";
  info.description = "example plugin: a K/V cache in plain std::vectors, two-pass softmax";
  info.device = "cpu";
  // attend() runs per query head: each head reads its KV head's rows itself.
  info.caps.kv_read_model = kvbench::KvReadModel::per_query_head;
  info.create = [](std::shared_ptr<const ModelWeights> weights, const ImplOptions& options) {
    return std::unique_ptr<KvCache>(new SimpleCached(std::move(weights), options));
  };
  registry.add(std::move(info));
}
