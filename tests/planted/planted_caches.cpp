#include "tests/planted/planted_caches.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <memory>

#include "harness/error.h"

namespace kvbench::testing {
namespace {

enum class Bug {
  none,
  read_past_end,
  offset_after,       // keys at positions >= at are read from the slot before
  fp16_as_fp32,
  bf16_as_fp32,
  fp16_after,         // fp32 declared; rows at positions >= at stored as fp16
  gqa_overcount,
  prefill_after_truncate_stale,
  bf16_stores_fp16,
  truncating_rounding,
};

// Storage formats, by bit manipulation of the IEEE-754 single (the property suite rounds
// with frexp/ldexp/nearbyint instead: two independent roundings check each other).
enum class Format { f32, f16, bf16 };
enum class Rounding { nearest_even, toward_zero };

std::uint32_t bits_of(float x) {
  std::uint32_t b;
  std::memcpy(&b, &x, sizeof b);
  return b;
}
float float_of(std::uint32_t b) {
  float x;
  std::memcpy(&x, &b, sizeof x);
  return x;
}

// Keeps the top (32 - drop) bits, rounding the dropped ones.
std::uint32_t round_bits(std::uint32_t b, int drop, Rounding r) {
  const std::uint32_t mask = (1u << drop) - 1;
  const std::uint32_t rest = b & mask, half = 1u << (drop - 1);
  b &= ~mask;
  if (r == Rounding::nearest_even &&
      (rest > half || (rest == half && ((b >> drop) & 1u)))) {
    b += 1u << drop;  // carries into the exponent correctly (to Inf at the top)
  }
  return b;
}

float to_bf16(float x, Rounding r) { return float_of(round_bits(bits_of(x), 16, r)); }

// fp16: 10 mantissa bits, exponent -14..15, subnormals down to 2^-24, max 65504.
float to_f16(float x, Rounding r) {
  const float a = std::fabs(x);
  if (!(a < 65520.0f)) {  // rounds to Inf in fp16 (toward zero: to 65504)
    if (std::isnan(x)) return x;
    return std::copysign(r == Rounding::toward_zero ? 65504.0f : INFINITY, x);
  }
  if (a < 6.103515625e-05f) {  // subnormal in fp16: a multiple of 2^-24
    const float scaled = a * 16777216.0f;  // exact
    const float q = r == Rounding::nearest_even ? std::nearbyint(scaled) : std::trunc(scaled);
    return std::copysign(q / 16777216.0f, x);
  }
  const float y = float_of(round_bits(bits_of(a), 13, r));
  return std::copysign(std::min(y, r == Rounding::toward_zero ? 65504.0f : y), x);
}

float store(float x, Format f, Rounding r) {
  switch (f) {
    case Format::f32: return x;
    case Format::f16: return to_f16(x, r);
    case Format::bf16: return to_bf16(x, r);
  }
  return x;
}

struct Variant {
  const char* name;
  const char* description;
  Bug bug;
  int at = 0;
  std::vector<DType> dtypes = {DType::f32};
};

const std::vector<Variant>& variants() {
  static const std::vector<Variant> list = {
      {"planted_reference_cache", "control: the planted caches' base without a bug",
       Bug::none, 0, {DType::f32, DType::f16, DType::bf16}},
      {"planted_read_past_end", "attends to one slot past the sequence", Bug::read_past_end},
      {"planted_offset_after_300", "keys at positions >= 300 read from the slot before",
       Bug::offset_after, 300},
      {"planted_offset_after_3000", "keys at positions >= 3000 read from the slot before",
       Bug::offset_after, 3000},
      {"planted_fp16_as_fp32", "declares fp32, stores K/V as fp16", Bug::fp16_as_fp32},
      {"planted_bf16_as_fp32", "declares fp32, stores K/V as bf16", Bug::bf16_as_fp32},
      {"planted_fp16_after_2000", "declares fp32, stores rows at positions >= 2000 as fp16",
       Bug::fp16_after, 2000},
      {"planted_gqa_overcount", "counts kv_bytes_read per query head, reads per KV head",
       Bug::gqa_overcount},
      {"planted_prefill_after_truncate_stale",
       "prefill after truncate writes after the old end (stale rows attended)",
       Bug::prefill_after_truncate_stale},
      {"planted_bf16_stores_fp16", "declares fp16 and bf16, stores fp16 for both",
       Bug::bf16_stores_fp16, 0, {DType::f32, DType::f16, DType::bf16}},
      {"planted_truncating_rounding", "declares fp16 and bf16, rounds toward zero",
       Bug::truncating_rounding, 0, {DType::f32, DType::f16, DType::bf16}},
  };
  return list;
}

class PlantedCache final : public KvCache {
 public:
  PlantedCache(const Variant& v, std::shared_ptr<const ModelWeights> weights,
               const ImplOptions& options)
      : KvCache(v.name, std::move(weights), options), v_(v) {
    const DType dt = config().dtype;
    require(std::find(v.dtypes.begin(), v.dtypes.end(), dt) != v.dtypes.end(), v.name,
            ": dtype ", dtype_name(dt), " is not supported");
    format_ = dt == DType::f16 ? Format::f16 : dt == DType::bf16 ? Format::bf16 : Format::f32;
    if (v.bug == Bug::fp16_as_fp32) format_ = Format::f16;
    if (v.bug == Bug::bf16_as_fp32) format_ = Format::bf16;
    if (v.bug == Bug::bf16_stores_fp16 && format_ == Format::bf16) format_ = Format::f16;
    if (v.bug == Bug::truncating_rounding) rounding_ = Rounding::toward_zero;
  }

 private:
  // k, v: [L][H_kv][capacity * d], rows stored already rounded to the storage format
  // (held as float: the format's values are a subset of float's).
  struct Sequence {
    std::vector<std::vector<float>> k, v;  // index l * H_kv + g
    int written = 0;                       // high-water mark (for the stale-prefill bug)
  };

  std::size_t slots() const {
    return static_cast<std::size_t>(config().capacity) * config().head_dim;
  }
  float unused() const { return options().poison_unused ? NAN : 0.0f; }

  void do_create(SeqId id) override {
    Sequence& s = seqs_[id];
    const std::size_t blocks = static_cast<std::size_t>(config().layers * config().kv_heads);
    s.k.assign(blocks, std::vector<float>(slots(), unused()));
    s.v.assign(blocks, std::vector<float>(slots(), unused()));
  }
  void do_prefill(SeqId id, const float* x, int n, float* out) override {
    Sequence& s = seqs_.at(id);
    const int length = this->length(id);
    int write_at = length;
    if (v_.bug == Bug::prefill_after_truncate_stale && s.written > length &&
        s.written + n <= config().capacity) {
      write_at = s.written;
    }
    const std::size_t dm = static_cast<std::size_t>(config().d_model);
    for (int i = 0; i < n; ++i) step(s, length + i, write_at + i, x + i * dm, out + i * dm);
    s.written = std::max(s.written, write_at + n);
  }
  void do_decode(const std::vector<SeqId>& ids, const float* x, float* out) override {
    const std::size_t dm = static_cast<std::size_t>(config().d_model);
    for (std::size_t i = 0; i < ids.size(); ++i) {
      Sequence& s = seqs_.at(ids[i]);
      const int t = length(ids[i]);
      step(s, t, t, x + i * dm, out + i * dm);
      s.written = t + 1;
    }
  }
  void do_fork(SeqId parent, SeqId child) override { seqs_[child] = seqs_.at(parent); }
  void do_drop(SeqId id) override { seqs_.erase(id); }
  void do_truncate(SeqId, int) override {}  // rows past the length stay (stale) in place
  bool holds_kv_cache() const override { return true; }
  KvRows do_read_kv(SeqId id, int layer, int kv_head) const override {
    const Sequence& s = seqs_.at(id);
    const std::size_t block = static_cast<std::size_t>(layer * config().kv_heads + kv_head);
    KvRows rows;
    rows.length = length(id);
    rows.head_dim = config().head_dim;
    const std::size_t n = static_cast<std::size_t>(rows.length) * rows.head_dim;
    rows.k.assign(s.k[block].begin(), s.k[block].begin() + static_cast<long>(n));
    rows.v.assign(s.v[block].begin(), s.v[block].begin() + static_cast<long>(n));
    return rows;
  }
  Memory memory_in_use() const override {
    Memory m;
    const std::size_t elem = dtype_size(config().dtype);
    const std::size_t per_token = config().kv_bytes_per_token();
    for (const auto& entry : seqs_) {
      m.held += per_token * static_cast<std::size_t>(length(entry.first));
      m.reserved += 2 * entry.second.k.size() * slots() * elem;
    }
    return m;
  }

  static void matvec(const std::vector<float>& w, int rows, int cols, const float* x, float* y) {
    for (int r = 0; r < rows; ++r) {
      const float* wr = w.data() + static_cast<std::size_t>(r) * cols;
      float sum = 0.0f;
      for (int c = 0; c < cols; ++c) sum += wr[c] * x[c];
      y[r] = sum;
    }
  }

  // One token at position `pos` through every layer; its K/V rows go to slot `slot`.
  void step(Sequence& s, int pos, int slot, const float* token, float* out) {
    const ModelConfig& c = config();
    const int d = c.head_dim;
    std::vector<float> x(token, token + c.d_model), q(c.q_width()), k(c.kv_width()),
        v(c.kv_width()), o(c.q_width()), y(c.d_model);
    const Format f = (v_.bug == Bug::fp16_after && pos >= v_.at) ? Format::f16 : format_;
    for (int l = 0; l < c.layers; ++l) {
      const LayerWeights& w = weights().layers[static_cast<std::size_t>(l)];
      matvec(w.wq, c.q_width(), c.d_model, x.data(), q.data());
      matvec(w.wk, c.kv_width(), c.d_model, x.data(), k.data());
      matvec(w.wv, c.kv_width(), c.d_model, x.data(), v.data());
      counters().kv_projection_rows += 1;
      for (int g = 0; g < c.kv_heads; ++g) {
        const std::size_t block = static_cast<std::size_t>(l * c.kv_heads + g);
        for (int i = 0; i < d; ++i) {
          s.k[block][static_cast<std::size_t>(slot) * d + i] = store(k[g * d + i], f, rounding_);
          s.v[block][static_cast<std::size_t>(slot) * d + i] = store(v[g * d + i], f, rounding_);
        }
        attend_group(s.k[block].data(), s.v[block].data(), pos, q.data() + g * c.group_size() * d,
                     o.data() + g * c.group_size() * d);
      }
      matvec(w.wo, c.d_model, c.q_width(), o.data(), y.data());
      for (int i = 0; i < c.d_model; ++i) x[i] += y[i];
    }
    std::copy(x.begin(), x.end(), out);
  }

  // The G query heads of one KV head attend to keys 0..pos in one pass over the rows
  // (two-pass softmax: scores and their max, then the weights). q, o: [G, d].
  void attend_group(const float* K, const float* V, int pos, const float* q, float* o) {
    const ModelConfig& c = config();
    const int d = c.head_dim, G = c.group_size();
    int keys = pos + 1;
    if (v_.bug == Bug::read_past_end && keys < c.capacity) ++keys;
    const float scale = 1.0f / std::sqrt(static_cast<float>(d));
    std::vector<float> scores(static_cast<std::size_t>(G) * keys);
    std::vector<float> max_score(static_cast<std::size_t>(G), -INFINITY);
    auto slot_of = [&](int j) { return v_.bug == Bug::offset_after && j >= v_.at ? j - 1 : j; };
    for (int j = 0; j < keys; ++j) {
      const float* kj = K + static_cast<std::size_t>(slot_of(j)) * d;
      for (int h = 0; h < G; ++h) {
        float dot = 0.0f;
        for (int i = 0; i < d; ++i) dot += q[h * d + i] * kj[i];
        float& sc = scores[static_cast<std::size_t>(h) * keys + j];
        sc = dot * scale;
        // fmax would drop a NaN score; a poisoned key must poison the output.
        max_score[h] = std::isnan(sc) ? sc : std::max(max_score[h], sc);
      }
    }
    std::fill(o, o + G * d, 0.0f);
    std::vector<float> total(static_cast<std::size_t>(G), 0.0f);
    for (int h = 0; h < G; ++h) {
      for (int j = 0; j < keys; ++j) {
        float& sc = scores[static_cast<std::size_t>(h) * keys + j];
        total[h] += (sc = std::exp(sc - max_score[h]));
      }
    }
    for (int j = 0; j < keys; ++j) {
      const float* vj = V + static_cast<std::size_t>(slot_of(j)) * d;
      for (int h = 0; h < G; ++h) {
        const float p = scores[static_cast<std::size_t>(h) * keys + j];
        for (int i = 0; i < d; ++i) o[h * d + i] += p * vj[i];
      }
    }
    for (int h = 0; h < G; ++h) {
      for (int i = 0; i < d; ++i) o[h * d + i] /= total[h];
    }
    counters().qk_dot_products += static_cast<std::uint64_t>(G) * (pos + 1);
    const std::uint64_t reads = v_.bug == Bug::gqa_overcount ? G : 1;
    counters().kv_bytes_read += reads * 2ull * static_cast<std::uint64_t>(pos + 1) * d *
                                dtype_size(config().dtype);
  }

  const Variant& v_;
  Format format_ = Format::f32;
  Rounding rounding_ = Rounding::nearest_even;
  std::map<SeqId, Sequence> seqs_;
};

}  // namespace

void register_planted_caches(Registry& registry) {
  for (const Variant& v : variants()) {
    ImplInfo info;
    info.name = v.name;
    info.description = std::string("planted bug: ") + v.description;
    info.device = "cpu";
    info.caps.planted = true;
    info.caps.dtypes = v.dtypes;
    // One pass over a KV head's rows serves its GQA group (attend_group), so each row is
    // read once per KV head; planted_gqa_overcount declares this and counts per query head.
    info.caps.kv_read_model = KvReadModel::per_kv_head;
    const Variant* variant = &v;
    info.create = [variant](std::shared_ptr<const ModelWeights> w, const ImplOptions& o) {
      return std::unique_ptr<KvCache>(new PlantedCache(*variant, std::move(w), o));
    };
    registry.add(std::move(info));
  }
}

std::vector<std::string> planted_cache_names() {
  std::vector<std::string> names;
  for (const Variant& v : variants()) names.push_back(v.name);
  return names;
}

}  // namespace kvbench::testing
