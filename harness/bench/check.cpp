#include "harness/bench/check.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <iomanip>
#include <limits>
#include <set>
#include <sstream>

#include "harness/bench/workload.h"
#include "harness/error.h"

namespace kvbench::bench {

namespace {

// ---------------------------------------------------------------------------------------
// The allowed error, derived.
//
// Every value the implementation computes is a chain of fp32 accumulations (unit roundoff
// u = 2^-24). For a sum s_n = p_1 + ... + p_n of computed terms, the rounding error is
//   sum_k delta_k s_k + sum_i eps_i p_i,   |delta_k|, |eps_i| <= u,
// (s_k the partial sums, eps_i the product's rounding). Taking the roundings as independent
// and mean zero (Higham & Mary, "A new approach to probabilistic rounding error analysis",
// 2019), it is a sum of independent terms of scale
//   sigma = u sqrt(sum_k s_k^2 + sum_i p_i^2),
// and exceeds lambda sigma with probability <= 2 exp(-lambda^2 / 2) (Hoeffding). The partial
// sums depend on the summation order, which differs between implementations (sequential,
// SIMD lanes, tiles, split-KV chunks, BLAS blocks); we take, at each k, the larger of the
// sequential partial sum s_k^2 (terms with a drift, such as the positive softmax weights:
// sequential order is the worst order) and sum_{i<=k} p_i^2 (the variance of a partial sum of
// k random-sign terms, whatever their order): Accumulation::sigma(). For random-sign terms it
// is ~u sqrt(n/2) ||p||_2, sqrt(n) tighter than the worst-case-magnitude form
// sqrt(n) u sum|p_i|, which at d_model = 4096 would let fp16 storage declared fp32 pass.
//
// Errors are carried as such scales sigma through the step and multiplied by lambda = 8 only
// where compared (2 exp(-32) = 2.5e-14 per compared element; a check compares < 1e6, so a
// correct fp32 implementation fails with probability < 1e-7 under the model, which is
// pessimistic besides: a rounding error is uniform, of variance u^2/3, not u^2; fused
// multiply-adds and tree orders round less). Independent errors add in quadrature (+q),
// possibly correlated ones linearly. An error vector e entering a product with a weight
// matrix (W_q, W_k, W_v, W_o: uniform random with zero mean, drawn independently of every
// rounding) adds in quadrature, sqrt(sum_c W_c^2 sigma_c^2), whatever the correlation of
// the e_c: over the weights' signs, sum_c W_c e_c is a sum of independent terms.
//
// Per layer (x the layer input with scale sx from the layer below; layer 0's inputs exact):
//   q = W_q x             sq = acc +q sqrt(sum W_q^2 sx^2)
//   s_j = q.k_j / sqrt(d) ss_j = (acc +q sqrt(sum sq^2 k_j^2)) / sqrt(d) +q 2u|s_j| (scaling)
//                              +q u|s_j - max| (the shift before exp)
//   p_j = e^{s_j - m} / Z,  o = sum p_j v_j. A score error moves the output by
//     sum_j p_j (ds_j - sum_i p_i ds_i) v_j = sum_j p_j ds_j (v_j - o)
//   (scale sum_j p_j ss_j |v_j - o|, linear: the ds_j share q's error). exp rounds within
//   u_exp = 4u (cpu_cached's polynomial: 1.5 ulp <= 3u; libm: 1 ulp) and a split-KV merge
//   rescales each chunk's (numerator, Z) pair by one rounded e^{m_c - m}, which acts like a
//   score error on that chunk: 2 u_exp sum p_j |v_j - o| (linear: an exp may be biased).
//   An online softmax rescales numerator and Z by the same rounded factor (its error
//   cancels in the ratio) once per new running max, ~ln n times for scores in no particular
//   order, each a multiplication rounded by u: u sqrt(1 + ln(1 + n)) (sum p_j |v_j| + |o|).
//   The two accumulations (numerator sum e^{s_j-m} v_j and Z: each partial sum may be rounded
//   twice, by the add and the rescale: factor 2 under the root) and the division:
//   acc_num / Z +q (acc_Z / Z + u) |o|. The weights sum to 1, so nothing here grows with T
//   but acc_Z / Z (~u sqrt(2T/3): the positive weights' partial sums grow linearly).
//   y = x + W_o o         sy = sx + (sqrt(sum W_o^2 so^2) +q acc +q u (|x| + |W_o o|))
// K/V rows: k = W_k x     sk = acc +q sqrt(sum W_k^2 sx^2); allowed lambda sk plus the storage
//   rounding u_s (|k| + lambda sk) with u_s = 2^-11 (fp16), 2^-8 (bf16), 0 (fp32), and for
//   fp16 half its smallest subnormal spacing, 2^-25, for values below its normal range.
// The output check uses the implementation's own rows, so their storage rounding cancels
// there; the row check is what a wrong storage precision fails (fp16 stored as fp32: its
// rounding, ~2^-12 |k| per element, is 10-100x the fp32 bound, ~8 u sqrt(d_model / 2) |k|).
// ---------------------------------------------------------------------------------------

constexpr double kUnit32 = 0x1p-24;
constexpr double kUnitExp = 4 * kUnit32;

double storage_unit(DType dtype) {
  switch (dtype) {
    case DType::f32: return 0;
    case DType::f16: return 0x1p-11;
    case DType::bf16: return 0x1p-8;
  }
  return 0;
}

double storage_floor(DType dtype) { return dtype == DType::f16 ? 0x1p-25 : 0; }

// sqrt(a^2 + b^2): independent errors.
double quad(double a, double b) { return std::sqrt(a * a + b * b); }

// A float64 sum of terms with the rounding-error model of the same sum in fp32 (above).
struct Accumulation {
  double sum = 0;
  double squares = 0;  // sum_{i<=k} p_i^2
  double model = 0;    // sum_k max(s_k^2, squares_k) + p_k^2
  void add(double p) {
    sum += p;
    squares += p * p;
    model += std::max(sum * sum, squares) + p * p;
  }
  // `rounds`: roundings per partial sum (2 where an online softmax also rescales it).
  double sigma(double rounds = 1) const { return kUnit32 * std::sqrt(rounds * model); }
};

// One token's input to the current layer, with its error scale.
struct Token {
  int position = 0;
  std::vector<double> x, sx;  // [d_model]
  bool exact = false;         // sx is all zero (layer 0: the inputs themselves)
  bool output = false;        // its step's output row is compared
};

// One layer's and KV head's rows [n, d]; sk, sv are empty when the rows are exact (the
// implementation's own), else the error scales of the implementation's rows against these.
struct HeadRows {
  int n = 0;
  std::vector<double> k, v, sk, sv;
};

struct Projected {
  std::vector<double> value, sigma;
};

// rows [first, first + count) of W [*, cols] times the token's x.
Projected project(const std::vector<float>& w, int first, int count, int cols, const Token& t) {
  Projected out;
  out.value.resize(count);
  out.sigma.resize(count);
  for (int r = 0; r < count; ++r) {
    const float* row = &w[static_cast<std::size_t>(first + r) * cols];
    Accumulation a;
    double propagated = 0;  // sum W^2 sx^2
    if (t.exact) {
      for (int c = 0; c < cols; ++c) a.add(static_cast<double>(row[c]) * t.x[c]);
    } else {
      for (int c = 0; c < cols; ++c) {
        const double wc = row[c];
        a.add(wc * t.x[c]);
        propagated += wc * wc * t.sx[c] * t.sx[c];
      }
    }
    out.value[r] = a.sum;
    out.sigma[r] = quad(a.sigma(), std::sqrt(propagated));
  }
  return out;
}

// One query head's attention over the first n rows; writes o [d] and its error scale so [d].
void attend(const Projected& q, const HeadRows& rows, int n, int d, double* o, double* so) {
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  const bool row_errors = !rows.sk.empty();
  std::vector<double> s(n), ss(n);
  for (int j = 0; j < n; ++j) {
    const double* k = &rows.k[static_cast<std::size_t>(j) * d];
    Accumulation a;
    double from_q = 0, from_k = 0;  // sums of squares
    for (int i = 0; i < d; ++i) {
      a.add(q.value[i] * k[i]);
      from_q += q.sigma[i] * q.sigma[i] * k[i] * k[i];
      if (row_errors) {
        const double sk = rows.sk[static_cast<std::size_t>(j) * d + i];
        from_k += q.value[i] * q.value[i] * sk * sk;
      }
    }
    s[j] = a.sum * scale;
    ss[j] = quad(std::sqrt(a.sigma() * a.sigma() + from_q + from_k) * scale,
                 2 * kUnit32 * std::fabs(s[j]));
  }
  const double m = *std::max_element(s.begin(), s.end());
  std::vector<double> w(n);
  Accumulation z;
  for (int j = 0; j < n; ++j) {
    w[j] = std::exp(s[j] - m);
    ss[j] = quad(ss[j], kUnit32 * std::fabs(s[j] - m));
    z.add(w[j]);
  }
  std::vector<Accumulation> num(d);
  for (int j = 0; j < n; ++j) {
    const double* v = &rows.v[static_cast<std::size_t>(j) * d];
    for (int i = 0; i < d; ++i) num[i].add(w[j] * v[i]);
  }
  for (int i = 0; i < d; ++i) o[i] = num[i].sum / z.sum;
  std::vector<double> from_scores(d, 0), deviation(d, 0), magnitude(d, 0), from_v(d, 0);
  for (int j = 0; j < n; ++j) {
    const double p = w[j] / z.sum;
    const double* v = &rows.v[static_cast<std::size_t>(j) * d];
    for (int i = 0; i < d; ++i) {
      const double dev = std::fabs(v[i] - o[i]);
      from_scores[i] += p * ss[j] * dev;
      deviation[i] += p * dev;
      magnitude[i] += p * std::fabs(v[i]);
      if (row_errors) from_v[i] += p * rows.sv[static_cast<std::size_t>(j) * d + i];
    }
  }
  const double rescales = std::sqrt(1 + std::log1p(static_cast<double>(n)));
  const double z_relative = z.sigma(2) / z.sum + kUnit32;
  for (int i = 0; i < d; ++i) {
    const double rounding =
        std::sqrt(std::pow(num[i].sigma(2) / z.sum, 2) + std::pow(z_relative * o[i], 2) +
                  std::pow(kUnit32 * rescales * (magnitude[i] + std::fabs(o[i])), 2));
    so[i] = from_scores[i] + 2 * kUnitExp * deviation[i] + rounding + from_v[i];
  }
}

// Keeps the worst compared element.
void compare(CheckWorst& worst, double got, double want, double allowed,
             const std::function<std::string()>& where) {
  ++worst.elements;
  const double error = std::fabs(got - want);
  double ratio = std::isfinite(got) ? (error == 0 ? 0 : error / std::max(allowed, 1e-300))
                                    : std::numeric_limits<double>::infinity();
  if (std::isnan(ratio)) ratio = std::numeric_limits<double>::infinity();
  if (worst.elements == 1 || ratio > worst.ratio) {
    worst.error = error;
    worst.allowed = allowed;
    worst.ratio = ratio;
    worst.where = where();
  }
}

// Multiply-adds of the no-cache check at position t: the implementation's prefill in chunks of
// 512 (each chunk re-projects every row held, ~T^2/1024 rows, and attends T^2/2 pairs), its
// two steps, and the float64 reference (~8x a multiply-add with the error model, measured).
double no_cache_cost(const ModelConfig& c, int t) {
  const double T = t + 2.0, L = c.layers;
  const double projection = 2.0 * c.d_model * c.kv_width();  // one row's K and V
  const double pair = 2.0 * c.q_width();                     // q.k and p v over all heads
  const double impl = L * ((T * T / 1024 + 2.5 * T) * projection + T * T / 2 * pair);
  const double reference =
      8 * (L * T * projection + (L - 1) * T * T / 2 * pair + 2 * L * T * pair);
  return impl + reference;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::string short_number(double x) {
  std::ostringstream out;
  out << std::setprecision(2) << x;
  return out.str();
}

class Checker {
 public:
  Checker(const ImplInfo& impl, const std::shared_ptr<const ModelWeights>& weights,
          const CheckOptions& options)
      : impl_(impl), weights_(weights), c_(weights->config), o_(options) {}

  CheckResult run() {
    r_.impl = impl_.name;
    r_.threads = o_.threads;
    r_.requested_position = o_.position;
    const bool own_rows = impl_.caps.holds_kv_cache;
    r_.kind = own_rows ? "own K/V rows" : "full float64 reference (no K/V cache)";
    int t = std::max(0, std::min(o_.position, c_.capacity - 2));
    if (t < o_.position) {
      r_.weaker = "checked at t = " + std::to_string(t) + ", the last two steps the capacity " +
                  std::to_string(c_.capacity) + " allows";
    }
    if (!own_rows && no_cache_cost(c_, t) > o_.no_cache_budget) {
      const double cost = no_cache_cost(c_, t);
      int lo = 0, hi = t;  // largest affordable position in [0, t)
      while (hi - lo > 1) {
        const int mid = lo + (hi - lo) / 2;
        (no_cache_cost(c_, mid) <= o_.no_cache_budget ? lo : hi) = mid;
      }
      r_.weaker = "checked at t = " + std::to_string(lo) + " instead of " +
                  std::to_string(t) + ": a full float64 reference there (no K/V rows to read) " +
                  "would cost ~" + short_number(cost) + " multiply-adds > the budget " +
                  short_number(o_.no_cache_budget);
      t = lo;
    }
    r_.positions = {t};
    if (t + 1 < c_.capacity) r_.positions.push_back(t + 1);
    try {
      run_at(t, own_rows);
    } catch (const std::exception& e) {
      r_.failure = std::string("error: ") + e.what();
    }
    if (r_.failure.empty()) {
      if (!(r_.output.ratio <= 1)) {
        r_.failure = "output error " + short_number(r_.output.error) + " > allowed " +
                     short_number(r_.output.allowed) + " at " + r_.output.where;
      } else if (!(r_.rows.ratio <= 1)) {
        r_.failure = "K/V row error " + short_number(r_.rows.error) + " > allowed " +
                     short_number(r_.rows.allowed) + " at " + r_.rows.where;
      }
    }
    r_.passed = r_.failure.empty();
    return r_;
  }

 private:
  void run_at(int t, bool own_rows) {
    const auto start = std::chrono::steady_clock::now();
    ImplOptions options;
    options.threads = o_.threads;
    options.block_size = o_.block_size;
    options.kv_budget_bytes = o_.kv_budget_bytes;
    options.poison_unused = true;  // a read past the length reads NaN and fails
    std::unique_ptr<KvCache> cache = impl_.create(weights_, options);
    DecodeAtPosition at(*cache, Rollback::truncate, o_.input_seed);
    at.extend_to(t);
    const SeqId id = at.sequence();
    std::vector<std::vector<float>> inputs = {at.token()};
    if (r_.positions.size() > 1) inputs.push_back(at.prompt_rows(t + 1, 1));
    std::vector<std::vector<float>> outputs;
    for (const auto& row : inputs) outputs.push_back(cache->decode({id}, row));
    r_.prepare_seconds = seconds_since(start);

    const auto reference_start = std::chrono::steady_clock::now();
    const int length = t + static_cast<int>(r_.positions.size());
    std::vector<int> tracked;  // positions whose layer inputs are followed through the layers
    if (own_rows) {
      r_.sampled_positions = check_sample_positions(length, c_.seed);
      tracked = r_.sampled_positions;
    } else {
      for (int j = 0; j < length; ++j) tracked.push_back(j);
    }
    std::vector<Token> tokens;
    for (int j : tracked) {
      Token tk;
      tk.position = j;
      const std::vector<float> x = j < t ? at.prompt_rows(j, 1) : inputs[j - t];
      tk.x.assign(x.begin(), x.end());
      tk.sx.assign(x.size(), 0.0);  // the inputs are exact
      tk.exact = true;
      tk.output = j >= t;
      tokens.push_back(std::move(tk));
    }
    for (int l = 0; l < c_.layers; ++l) tokens = layer(*cache, id, l, length, own_rows, tokens);
    for (const Token& tk : tokens) {
      const std::vector<float>& got = outputs[tk.position - t];
      for (int e = 0; e < c_.d_model; ++e) {
        compare(r_.output, got[e], tk.x[e], o_.lambda * tk.sx[e], [&] {
          return "output of the step at t = " + std::to_string(tk.position) + ", element " +
                 std::to_string(e);
        });
      }
    }
    r_.reference_seconds = seconds_since(reference_start);
  }

  // RETURNS: the next layer's inputs of the tokens that need them (all of them below the last
  // layer; the output tokens at the last).
  std::vector<Token> layer(const KvCache& cache, SeqId id, int l, int length, bool own_rows,
                           const std::vector<Token>& tokens) {
    const LayerWeights& w = weights_->layers[l];
    const int d = c_.head_dim, G = c_.group_size();
    const bool last = l == c_.layers - 1;
    std::vector<std::size_t> attending;
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      if (!last || tokens[i].output) attending.push_back(i);
    }
    std::vector<std::vector<double>> o(attending.size(), std::vector<double>(c_.q_width()));
    std::vector<std::vector<double>> so = o;
    for (int g = 0; g < c_.kv_heads; ++g) {
      const HeadRows rows = own_rows ? read_rows(cache, id, l, g, length)
                                     : project_rows(w, g, tokens);
      if (own_rows) compare_rows(rows, w, l, g, tokens);
      for (std::size_t a = 0; a < attending.size(); ++a) {
        const Token& tk = tokens[attending[a]];
        for (int h = g * G; h < (g + 1) * G; ++h) {
          const Projected q = project(w.wq, h * d, d, c_.d_model, tk);
          attend(q, rows, tk.position + 1, d, &o[a][h * d], &so[a][h * d]);
        }
      }
    }
    std::vector<Token> next;
    for (std::size_t a = 0; a < attending.size(); ++a) {
      const Token& tk = tokens[attending[a]];
      Token y;
      y.position = tk.position;
      y.output = tk.output;
      y.x.resize(c_.d_model);
      y.sx.resize(c_.d_model);
      for (int r = 0; r < c_.d_model; ++r) {
        const float* row = &w.wo[static_cast<std::size_t>(r) * c_.q_width()];
        Accumulation acc;
        double propagated = 0;  // sum W_o^2 so^2
        for (int e = 0; e < c_.q_width(); ++e) {
          const double we = row[e];
          acc.add(we * o[a][e]);
          propagated += we * we * so[a][e] * so[a][e];
        }
        y.x[r] = tk.x[r] + acc.sum;
        y.sx[r] = tk.sx[r] + std::sqrt(propagated + acc.sigma() * acc.sigma() +
                                       std::pow(kUnit32 * (std::fabs(tk.x[r]) + std::fabs(acc.sum)), 2));
      }
      next.push_back(std::move(y));
    }
    return next;
  }

  HeadRows read_rows(const KvCache& cache, SeqId id, int l, int g, int length) {
    const KvRows kv = cache.read_kv(id, l, g);
    const std::size_t size = static_cast<std::size_t>(length) * c_.head_dim;
    require(kv.length == length && kv.head_dim == c_.head_dim && kv.k.size() == size &&
                kv.v.size() == size,
            "read_kv(layer ", l, ", kv head ", g, ") returned ", kv.length, " rows of ",
            kv.head_dim, " (", kv.k.size(), " and ", kv.v.size(), " floats); the sequence holds ",
            length, " tokens of head_dim ", c_.head_dim);
    HeadRows rows;
    rows.n = length;
    rows.k.assign(kv.k.begin(), kv.k.end());
    rows.v.assign(kv.v.begin(), kv.v.end());
    return rows;
  }

  // The no-cache reference: every position's K and V (tokens holds them all, in order), with
  // the error scales of the implementation's own fp32 projections against them.
  HeadRows project_rows(const LayerWeights& w, int g, const std::vector<Token>& tokens) {
    const int d = c_.head_dim;
    HeadRows rows;
    rows.n = static_cast<int>(tokens.size());
    for (std::size_t j = 0; j < tokens.size(); ++j) {
      require(tokens[j].position == static_cast<int>(j), "check: internal: token ", j,
              " is at position ", tokens[j].position);
      const Projected k = project(w.wk, g * d, d, c_.d_model, tokens[j]);
      const Projected v = project(w.wv, g * d, d, c_.d_model, tokens[j]);
      rows.k.insert(rows.k.end(), k.value.begin(), k.value.end());
      rows.sk.insert(rows.sk.end(), k.sigma.begin(), k.sigma.end());
      rows.v.insert(rows.v.end(), v.value.begin(), v.value.end());
      rows.sv.insert(rows.sv.end(), v.sigma.begin(), v.sigma.end());
    }
    return rows;
  }

  void compare_rows(const HeadRows& rows, const LayerWeights& w, int l, int g,
                    const std::vector<Token>& tokens) {
    const int d = c_.head_dim;
    const double us = storage_unit(c_.dtype), floor = storage_floor(c_.dtype);
    for (const Token& tk : tokens) {
      for (const char* which : {"K", "V"}) {
        const bool is_k = which[0] == 'K';
        const Projected want = project(is_k ? w.wk : w.wv, g * d, d, c_.d_model, tk);
        const std::vector<double>& got = is_k ? rows.k : rows.v;
        for (int e = 0; e < d; ++e) {
          const double bound = o_.lambda * want.sigma[e];
          const double allowed = bound + us * (std::fabs(want.value[e]) + bound) + floor;
          compare(r_.rows, got[static_cast<std::size_t>(tk.position) * d + e], want.value[e],
                  allowed, [&] {
                    return std::string(which) + " row at position " +
                           std::to_string(tk.position) + " (layer " + std::to_string(l) +
                           ", kv head " + std::to_string(g) + ", element " + std::to_string(e) +
                           ")";
                  });
        }
      }
    }
  }

  const ImplInfo& impl_;
  std::shared_ptr<const ModelWeights> weights_;
  const ModelConfig& c_;
  CheckOptions o_;
  CheckResult r_;
};

}  // namespace

std::vector<int> check_sample_positions(int length, std::uint64_t seed) {
  std::set<int> picked;
  auto add = [&](long long j) {
    if (j >= 0 && j < length) picked.insert(static_cast<int>(j));
  };
  add(0);
  for (int back = 1; back <= 3; ++back) add(length - back);  // the decoded rows and one before
  // Where tiles, split-KV chunks, pages and vector widths begin (both sides).
  for (long long b : {64LL, 256LL, 512LL}) {
    add(b - 1);
    add(b);
  }
  long long power = 1;
  while (power * 2 < length - 1) power *= 2;
  if (power >= 1024) {
    add(power - 1);
    add(power);
  }
  const long long multiple = (length - 4) / 256 * 256;
  if (multiple >= 1024) {
    add(multiple - 1);
    add(multiple);
  }
  InputStream random(seed ^ 0x636865636bULL);  // "check"
  for (int tries = 0; tries < 64 && static_cast<int>(picked.size()) < 16 &&
                      static_cast<int>(picked.size()) < length;
       ++tries) {
    add(static_cast<long long>(random.next_u64() % static_cast<std::uint64_t>(length)));
  }
  return {picked.begin(), picked.end()};
}

CheckResult check_implementation(const ImplInfo& impl,
                                 const std::shared_ptr<const ModelWeights>& weights,
                                 const CheckOptions& options) {
  require(options.position >= 0, "check: position must be >= 0, got ", options.position);
  return Checker(impl, weights, options).run();
}

std::string describe(const CheckResult& r) {
  std::ostringstream out;
  out << std::setprecision(2);
  out << (r.passed ? "pass" : "FAIL") << " at t = ";
  for (std::size_t i = 0; i < r.positions.size(); ++i) out << (i ? ", " : "") << r.positions[i];
  out << " (" << r.kind << ")";
  if (!r.passed) out << ": " << r.failure;
  if (r.output.elements > 0) {
    out << "; outputs: max error " << r.output.error << " vs allowed " << r.output.allowed
        << " (worst ratio " << r.output.ratio << ", " << r.output.elements << " elements)";
  }
  if (r.rows.elements > 0) {
    out << "; K/V rows at " << r.sampled_positions.size() << " positions: max error "
        << r.rows.error << " vs allowed " << r.rows.allowed << " (worst ratio " << r.rows.ratio
        << ", " << r.rows.elements << " elements)";
  }
  if (!r.weaker.empty()) out << "; weaker check: " << r.weaker;
  out << "; prefill and steps " << r.prepare_seconds << " s, check " << r.reference_seconds
      << " s";
  return out.str();
}

}  // namespace kvbench::bench
