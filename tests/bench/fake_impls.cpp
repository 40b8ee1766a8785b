#include "tests/bench/fake_impls.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <thread>
#include <map>
#include <memory>
#include <vector>

namespace kvbench::testing {
namespace {

void matvec(const std::vector<float>& w, int rows, int cols, const float* x, float* y) {
  for (int r = 0; r < rows; ++r) {
    float s = 0;
    for (int c = 0; c < cols; ++c) s += w[static_cast<std::size_t>(r) * cols + c] * x[c];
    y[r] = s;
  }
}

// Attention of one token's queries q [H * d] over `n` key/value rows k, v [n, H_kv * d];
// writes o [H * d]. RETURNS nothing; the caller counts.
void attend(const ModelConfig& c, const float* q, const float* k, const float* v, int n,
            float* o) {
  const int d = c.head_dim, kvw = c.kv_width();
  std::vector<float> score(static_cast<std::size_t>(n));
  for (int h = 0; h < c.heads; ++h) {
    const int g = h / c.group_size();
    float top = -INFINITY;
    for (int j = 0; j < n; ++j) {
      float s = 0;
      for (int i = 0; i < d; ++i) s += q[h * d + i] * k[static_cast<std::size_t>(j) * kvw + g * d + i];
      score[j] = s / std::sqrt(static_cast<float>(d));
      top = std::max(top, score[j]);
    }
    float total = 0;
    for (int j = 0; j < n; ++j) total += (score[j] = std::exp(score[j] - top));
    for (int i = 0; i < d; ++i) {
      float acc = 0;
      for (int j = 0; j < n; ++j) acc += score[j] * v[static_cast<std::size_t>(j) * kvw + g * d + i];
      o[h * d + i] = acc / total;
    }
  }
}

enum class Flaw { none, fp16_storage, offset, read_past };

// Virtual nanoseconds (integers, so that sums are exact): advanced by fake_slow_create.
std::atomic<long long> virtual_ns{0};

long long to_ns(double seconds) { return std::llround(seconds * 1e9); }

class VirtualTimer : public RegionTimer {
 public:
  void start() override { start_ = virtual_ns.load(); }
  double stop() override { return 1e-9 * static_cast<double>(virtual_ns.load() - start_); }
  std::string describe() const override { return "test: virtual seconds of fake_slow_create"; }

 private:
  long long start_ = 0;
};

class FakeCache : public KvCache {
 public:
  FakeCache(const char* name, bool keeps_kv, std::shared_ptr<const ModelWeights> w,
            const ImplOptions& o, Flaw flaw = Flaw::none, int offset_from = 0,
            SlowCreate slow = {})
      : KvCache(name, std::move(w), o), keeps_kv_(keeps_kv), flaw_(flaw),
        offset_from_(offset_from), slow_(std::move(slow)) {}

 private:
  struct Seq {
    std::vector<std::vector<float>> k, v, x;  // per layer: [T, H_kv d] or [T, d_model]
    int length = 0;
  };

  void do_create(SeqId id) override {
    if (slow_.create_sleep > 0) {
      std::this_thread::sleep_for(std::chrono::duration<double>(slow_.create_sleep));
    }
    virtual_ns += to_ns(slow_.create_virtual);
    Seq s;
    const auto L = static_cast<std::size_t>(config().layers);
    s.k.resize(L);
    s.v.resize(L);
    s.x.resize(L);
    seqs_[id] = s;
  }
  void do_prefill(SeqId id, const float* x, int n, float* out) override {
    for (int t = 0; t < n; ++t) step(seqs_.at(id), x + t * config().d_model, out + t * config().d_model);
  }
  void do_decode(const std::vector<SeqId>& ids, const float* x, float* out) override {
    for (std::size_t i = 0; i < ids.size(); ++i) {
      step(seqs_.at(ids[i]), x + i * config().d_model, out + i * config().d_model);
    }
    virtual_ns += to_ns(slow_.decode_virtual) * static_cast<long long>(ids.size());
  }
  void do_fork(SeqId parent, SeqId child) override { seqs_[child] = seqs_.at(parent); }
  void do_drop(SeqId id) override { seqs_.erase(id); }
  void do_truncate(SeqId id, int length) override {
    Seq& s = seqs_.at(id);
    for (int l = 0; l < config().layers; ++l) {
      s.k[l].resize(static_cast<std::size_t>(length) * config().kv_width());
      s.v[l].resize(static_cast<std::size_t>(length) * config().kv_width());
      s.x[l].resize(static_cast<std::size_t>(length) * config().d_model);
    }
    s.length = length;
  }
  bool holds_kv_cache() const override { return keeps_kv_; }
  KvRows do_read_kv(SeqId id, int layer, int kv_head) const override {
    const Seq& s = seqs_.at(id);
    KvRows r;
    r.length = s.length;
    r.head_dim = config().head_dim;
    for (int t = 0; t < s.length; ++t) {
      for (int i = 0; i < r.head_dim; ++i) {
        const std::size_t at = static_cast<std::size_t>(t) * config().kv_width() + kv_head * r.head_dim + i;
        r.k.push_back(s.k[layer][at]);
        r.v.push_back(s.v[layer][at]);
      }
    }
    return r;
  }
  Memory memory_in_use() const override {
    Memory m;
    for (const auto& entry : seqs_) {
      const std::uint64_t T = static_cast<std::uint64_t>(entry.second.length);
      m.held += keeps_kv_ ? T * config().kv_bytes_per_token()
                          : T * config().layers * config().d_model * sizeof(float);
    }
    m.reserved = m.held;
    return m;
  }

  // One token through every layer; both fakes keep K/V rows (the naive one recomputes
  // them all from the stored inputs first, as a cache-less decoder must).
  void step(Seq& s, const float* x_in, float* out) {
    const ModelConfig& c = config();
    const int n = s.length + 1, kvw = c.kv_width(), dm = c.d_model;
    std::vector<float> x(x_in, x_in + dm), q(c.q_width()), o(c.q_width()), y(dm);
    for (int l = 0; l < c.layers; ++l) {
      const LayerWeights& w = weights().layers[l];
      s.x[l].insert(s.x[l].end(), x.begin(), x.end());
      const int first = keeps_kv_ ? n - 1 : 0;  // rows to project now
      s.k[l].resize(static_cast<std::size_t>(n) * kvw);
      s.v[l].resize(static_cast<std::size_t>(n) * kvw);
      for (int t = first; t < n; ++t) {
        // planted_offset: from offset_from on, the row lands one slot early.
        const int slot = flaw_ == Flaw::offset && t >= offset_from_ && t > 0 ? t - 1 : t;
        float* k = &s.k[l][static_cast<std::size_t>(slot) * kvw];
        float* v = &s.v[l][static_cast<std::size_t>(slot) * kvw];
        matvec(w.wk, kvw, dm, &s.x[l][static_cast<std::size_t>(t) * dm], k);
        matvec(w.wv, kvw, dm, &s.x[l][static_cast<std::size_t>(t) * dm], v);
        if (flaw_ == Flaw::fp16_storage) {
          for (int i = 0; i < kvw; ++i) {
            k[i] = round_to_fp16(k[i]);
            v[i] = round_to_fp16(v[i]);
          }
        }
      }
      counters().kv_projection_rows += static_cast<std::uint64_t>(n - first);
      matvec(w.wq, c.q_width(), dm, x.data(), q.data());
      if (flaw_ == Flaw::read_past) {
        // One row past the sequence: what an unused slot holds.
        const float unused = options().poison_unused ? NAN : 0.0f;
        s.k[l].resize(static_cast<std::size_t>(n + 1) * kvw, unused);
        s.v[l].resize(static_cast<std::size_t>(n + 1) * kvw, unused);
        attend(c, q.data(), s.k[l].data(), s.v[l].data(), n + 1, o.data());
        s.k[l].resize(static_cast<std::size_t>(n) * kvw);
        s.v[l].resize(static_cast<std::size_t>(n) * kvw);
      } else {
        attend(c, q.data(), s.k[l].data(), s.v[l].data(), n, o.data());
      }
      counters().qk_dot_products += static_cast<std::uint64_t>(c.heads) * n;
      counters().kv_bytes_read += static_cast<std::uint64_t>(n) * 2 * kvw * sizeof(float);
      matvec(w.wo, dm, c.q_width(), o.data(), y.data());
      for (int i = 0; i < dm; ++i) x[i] += y[i];
    }
    s.length = n;
    std::copy(x.begin(), x.end(), out);
  }

  bool keeps_kv_;
  Flaw flaw_;
  int offset_from_;
  SlowCreate slow_;
  std::map<SeqId, Seq> seqs_;
};

ImplInfo planted(const char* name, const char* description, Flaw flaw, int offset_from) {
  ImplInfo info;
  info.name = name;
  info.description = description;
  info.device = "cpu";
  info.caps.planted = true;
  info.caps.threads = true;
  info.create = [name, flaw, offset_from](std::shared_ptr<const ModelWeights> w,
                                          const ImplOptions& o) {
    return std::unique_ptr<KvCache>(new FakeCache(name, true, std::move(w), o, flaw, offset_from));
  };
  return info;
}

ImplInfo fake(const char* name, bool keeps_kv) {
  ImplInfo info;
  info.name = name;
  info.description = keeps_kv ? "test: K/V cache" : "test: no cache";
  info.device = "cpu";
  info.caps.holds_kv_cache = keeps_kv;
  info.caps.threads = keeps_kv;  // accepts threads (and ignores them): a thread series runs
  info.create = [name, keeps_kv](std::shared_ptr<const ModelWeights> w, const ImplOptions& o) {
    return std::unique_ptr<KvCache>(new FakeCache(name, keeps_kv, std::move(w), o));
  };
  return info;
}

}  // namespace

void register_fake_impls(Registry& registry) {
  registry.add(fake("fake_cached", true));
  registry.add(fake("fake_naive", false));
}

void register_slow_create_fake(Registry& registry, const SlowCreate& how) {
  ImplInfo info;
  info.name = "fake_slow_create";
  info.description = "test: K/V cache whose create_sequence is slow";
  info.device = how.device;
  info.caps.holds_kv_cache = true;
  info.create = [how](std::shared_ptr<const ModelWeights> w, const ImplOptions& o) {
    return std::unique_ptr<KvCache>(
        new FakeCache("fake_slow_create", true, std::move(w), o, Flaw::none, 0, how));
  };
  registry.add(info);
}

std::unique_ptr<RegionTimer> make_virtual_timer() { return std::make_unique<VirtualTimer>(); }

void register_planted_fakes(Registry& registry, int offset_from) {
  registry.add(planted("planted_fp16_as_fp32", "test: K/V rounded to fp16, declared fp32",
                       Flaw::fp16_storage, 0));
  registry.add(planted("planted_offset", "test: K/V row one slot early from a position on",
                       Flaw::offset, offset_from));
  registry.add(planted("planted_read_past", "test: attends one row past the sequence",
                       Flaw::read_past, 0));
}

float round_to_fp16(float x) {
  if (!std::isfinite(x) || x == 0) return x;
  int exponent = 0;
  std::frexp(x, &exponent);  // |x| in [2^(exponent-1), 2^exponent)
  // fp16: 11 significant bits for normals (>= 2^-14); below, a fixed spacing of 2^-24.
  const int quantum_exponent = std::max(exponent - 11, -24);
  const double quantum = std::ldexp(1.0, quantum_exponent);
  return static_cast<float>(std::nearbyint(static_cast<double>(x) / quantum) * quantum);
}

}  // namespace kvbench::testing
