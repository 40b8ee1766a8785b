#include "properties/tolerance.h"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <sstream>

#include "harness/error.h"
#include "harness/weights.h"

namespace kvbench::props {

namespace {

double row_max_abs(const double* row, int width) {
  double m = 0;
  for (int j = 0; j < width; ++j) m = std::max(m, std::abs(row[j]));
  return m;
}

void require_reference(const ModelConfig& c, const std::vector<float>& inputs,
                       const ReferenceResult& ref) {
  const std::size_t dm = static_cast<std::size_t>(c.d_model);
  require(inputs.size() == static_cast<std::size_t>(ref.tokens) * dm,
          "tolerance: inputs have ", inputs.size(), " floats for a reference of ", ref.tokens,
          " tokens x d_model ", dm);
  require(ref.k.size() == static_cast<std::size_t>(c.layers * c.kv_heads),
          "tolerance: reference has ", ref.k.size(), " K blocks, expected L * H_kv = ",
          c.layers * c.kv_heads);
}

}  // namespace

std::vector<double> causal_magnitude(const ModelConfig& c, const std::vector<float>& inputs,
                                     const ReferenceResult& ref64) {
  require_reference(c, inputs, ref64);
  const int T = ref64.tokens, dm = c.d_model, d = c.head_dim;
  std::vector<double> m(static_cast<std::size_t>(T), 0.0);
  double running = 0;
  std::size_t next_output = 0;  // index into ref64.outputs of the next computed row
  for (int t = 0; t < T; ++t) {
    const std::size_t row = static_cast<std::size_t>(t);
    for (int j = 0; j < dm; ++j) {
      running = std::max(running, std::abs(static_cast<double>(inputs[row * dm + j])));
    }
    if (ref64.rows.empty() || (next_output < ref64.rows.size() && ref64.rows[next_output] == t)) {
      running = std::max(running, row_max_abs(ref64.outputs.data() + next_output * dm, dm));
      ++next_output;
    }
    for (std::size_t b = 0; b < ref64.k.size(); ++b) {
      running = std::max(running, row_max_abs(ref64.k[b].data() + row * d, d));
      running = std::max(running, row_max_abs(ref64.v[b].data() + row * d, d));
    }
    m[row] = running;
  }
  return m;
}

namespace {

// A basis permutation of the model: d_model features by pi, head coordinates by rho (the
// same rho in every head, so q_h . k_g and W_o's columns stay paired). The permuted model
// computes the same function up to the permutation, exactly; in floating point every sum
// over features or head coordinates runs in another order, so it rounds differently.
struct Permutation {
  std::vector<int> pi;   // [d_model] new feature c is old feature pi[c]
  std::vector<int> rho;  // [d]       new head coordinate i is old coordinate rho[i]
};

Permutation random_permutation(int d_model, int d, std::uint64_t seed) {
  InputStream rng(seed);
  auto shuffled = [&rng](int n) {  // Fisher-Yates on a platform-independent stream
    std::vector<int> v(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) v[static_cast<std::size_t>(i)] = i;
    for (int i = n; i > 1; --i) std::swap(v[static_cast<std::size_t>(i - 1)], v[rng.next_u64() % i]);
    return v;
  };
  Permutation p;
  p.pi = shuffled(d_model);
  p.rho = shuffled(d);
  return p;
}

// W' with W'[h*d + i][c] = W[h*d + rho[i]][pi[c]] for the projections, and
// W_o'[r][h*d + i] = W_o[pi[r]][h*d + rho[i]].
ModelWeights permute(const ModelWeights& w, const Permutation& p) {
  const ModelConfig& c = w.config;
  const int dm = c.d_model, d = c.head_dim;
  ModelWeights out;
  out.config = c;
  auto projection = [&](const std::vector<float>& m, int heads) {
    std::vector<float> r(m.size());
    for (int h = 0; h < heads; ++h) {
      for (int i = 0; i < d; ++i) {
        for (int col = 0; col < dm; ++col) {
          r[static_cast<std::size_t>((h * d + i) * dm + col)] =
              m[static_cast<std::size_t>((h * d + p.rho[i]) * dm + p.pi[col])];
        }
      }
    }
    return r;
  };
  for (const LayerWeights& l : w.layers) {
    LayerWeights n;
    n.wq = projection(l.wq, c.heads);
    n.wk = projection(l.wk, c.kv_heads);
    n.wv = projection(l.wv, c.kv_heads);
    n.wo.resize(l.wo.size());
    const int qw = c.q_width();
    for (int r = 0; r < dm; ++r) {
      for (int h = 0; h < c.heads; ++h) {
        for (int i = 0; i < d; ++i) {
          n.wo[static_cast<std::size_t>(r * qw + h * d + i)] =
              l.wo[static_cast<std::size_t>(p.pi[r] * qw + h * d + p.rho[i])];
        }
      }
    }
    out.layers.push_back(std::move(n));
  }
  return out;
}

// Folds one fp32 run (of the permuted model when p is given) into the running maxima.
void fold_sample(const ModelConfig& c, const ReferenceResult& ref64, const ReferenceResult& r,
                 const Permutation* p, F32Error& e) {
  const int T = ref64.tokens, dm = c.d_model, d = c.head_dim;
  const int R = static_cast<int>(e.outputs.size());  // output rows (all T, or the sampled)
  for (int t = 0; t < R; ++t) {
    double m = 0;
    for (int j = 0; j < dm; ++j) {
      const int orig = p ? p->pi[j] : j;  // permuted output j is original feature pi[j]
      m = std::max(m, std::abs(r.outputs[static_cast<std::size_t>(t * dm + j)] -
                               ref64.outputs[static_cast<std::size_t>(t * dm + orig)]));
    }
    e.outputs[static_cast<std::size_t>(t)] = std::max(e.outputs[static_cast<std::size_t>(t)], m);
  }
  for (std::size_t b = 0; b < ref64.k.size(); ++b) {
    for (int t = 0; t < T; ++t) {
      double mk = 0, mv = 0;
      for (int i = 0; i < d; ++i) {
        const std::size_t at = static_cast<std::size_t>(t * d + i);
        const std::size_t orig = static_cast<std::size_t>(t * d + (p ? p->rho[i] : i));
        mk = std::max(mk, std::abs(r.k[b][at] - ref64.k[b][orig]));
        mv = std::max(mv, std::abs(r.v[b][at] - ref64.v[b][orig]));
      }
      e.k[b][static_cast<std::size_t>(t)] = std::max(e.k[b][static_cast<std::size_t>(t)], mk);
      e.v[b][static_cast<std::size_t>(t)] = std::max(e.v[b][static_cast<std::size_t>(t)], mv);
    }
  }
  e.max_abs_score = std::max(e.max_abs_score, std::abs(r.max_abs_score - ref64.max_abs_score));
}

}  // namespace

namespace {

// The measured term: the evaluations of the model in `precision`, the unpermuted one
// (when `with_unpermuted`) and the basis-permuted ones of samples 1 .. kF32Samples - 1.
F32Error measure_error(const ModelWeights& weights, const std::vector<float>& inputs,
                       const ReferenceResult& ref64, RefPrecision precision,
                       bool with_unpermuted) {
  const ModelConfig& c = weights.config;
  require_reference(c, inputs, ref64);
  const std::size_t T = static_cast<std::size_t>(ref64.tokens);
  F32Error e;
  e.outputs.assign(ref64.rows.empty() ? T : ref64.rows.size(), 0.0);
  e.k.assign(ref64.k.size(), std::vector<double>(T, 0.0));
  e.v.assign(ref64.v.size(), std::vector<double>(T, 0.0));
  if (with_unpermuted) {
    fold_sample(c, ref64, reference_forward(weights, inputs, precision, ref64.rows), nullptr, e);
  }
  for (int s = 1; s < kF32Samples; ++s) {
    // Seeded by the sample number only: the same tolerance for the same case, every run.
    const Permutation p = random_permutation(c.d_model, c.head_dim, 0xF32ull + s);
    std::vector<float> x(inputs.size());
    const std::size_t dm = static_cast<std::size_t>(c.d_model);
    for (std::size_t t = 0; t < T; ++t) {
      for (std::size_t j = 0; j < dm; ++j) x[t * dm + j] = inputs[t * dm + p.pi[j]];
    }
    fold_sample(c, ref64, reference_forward(permute(weights, p), x, precision, ref64.rows), &p,
                e);
  }
  return e;
}

// measured term + floor_factor * u * L * M(r) per computed output row.
std::vector<RowTolerance> row_tolerances(const ModelConfig& c, const std::vector<float>& inputs,
                                         const ReferenceResult& ref64, const F32Error& err,
                                         double floor_per_layer) {
  const std::size_t R = ref64.rows.empty() ? static_cast<std::size_t>(ref64.tokens)
                                           : ref64.rows.size();
  require(err.outputs.size() == R, "tolerance: measured errors for ", err.outputs.size(),
          " rows, reference has ", R);
  const std::vector<double> m = causal_magnitude(c, inputs, ref64);
  std::vector<RowTolerance> tol(R);
  for (std::size_t i = 0; i < R; ++i) {
    const std::size_t pos = ref64.rows.empty() ? i : static_cast<std::size_t>(ref64.rows[i]);
    tol[i].f32_error = err.outputs[i];
    tol[i].floor = floor_per_layer * c.layers * m[pos];
  }
  return tol;
}

// measured term + floor_per_layer * (layer + 1) * M(r) per cached row of (layer, kv_head).
std::vector<RowTolerance> cached_row_tolerances(const ModelConfig& c,
                                                const std::vector<float>& inputs,
                                                const ReferenceResult& ref64,
                                                const F32Error& err, int layer, int kv_head,
                                                bool values, double floor_per_layer) {
  require(layer >= 0 && layer < c.layers && kv_head >= 0 && kv_head < c.kv_heads,
          "tolerance: (layer ", layer, ", kv_head ", kv_head, ") out of range");
  const std::vector<double> m = causal_magnitude(c, inputs, ref64);
  const std::size_t block = static_cast<std::size_t>(layer * c.kv_heads + kv_head);
  const std::vector<double>& e = values ? err.v[block] : err.k[block];
  std::vector<RowTolerance> tol(static_cast<std::size_t>(ref64.tokens));
  for (int t = 0; t < ref64.tokens; ++t) {
    const std::size_t row = static_cast<std::size_t>(t);
    tol[row].f32_error = e[row];
    tol[row].floor = floor_per_layer * (layer + 1) * m[row];
  }
  return tol;
}

// Both operands of a float64 comparison round their own last operations (TWO FLOAT64
// EVALUATIONS in tolerance.h): twice the fp32 floor's structure, at u = 2^-53.
constexpr double kF64FloorPerLayer = 2 * kFloorFactor * kF64UnitRoundoff;

}  // namespace

F32Error measure_f32_error(const ModelWeights& weights, const std::vector<float>& inputs,
                           const ReferenceResult& ref64) {
  return measure_error(weights, inputs, ref64, RefPrecision::f32, true);
}

F32Error measure_f64_error(const ModelWeights& weights, const std::vector<float>& inputs,
                           const ReferenceResult& ref64) {
  // The unpermuted float64 evaluation is ref64 itself: it would add a zero sample.
  return measure_error(weights, inputs, ref64, RefPrecision::f64, false);
}

std::vector<RowTolerance> output_tolerances(const ModelConfig& c,
                                            const std::vector<float>& inputs,
                                            const ReferenceResult& ref64, const F32Error& f32) {
  return row_tolerances(c, inputs, ref64, f32, kFloorFactor * kF32UnitRoundoff);
}

std::vector<RowTolerance> kv_tolerances(const ModelConfig& c, const std::vector<float>& inputs,
                                        const ReferenceResult& ref64, const F32Error& f32,
                                        int layer, int kv_head, bool values) {
  return cached_row_tolerances(c, inputs, ref64, f32, layer, kv_head, values,
                               kFloorFactor * kF32UnitRoundoff);
}

std::vector<RowTolerance> f64_output_tolerances(const ModelConfig& c,
                                                const std::vector<float>& inputs,
                                                const ReferenceResult& ref64,
                                                const F32Error& f64) {
  return row_tolerances(c, inputs, ref64, f64, kF64FloorPerLayer);
}

std::vector<RowTolerance> f64_kv_tolerances(const ModelConfig& c,
                                            const std::vector<float>& inputs,
                                            const ReferenceResult& ref64, const F32Error& f64,
                                            int layer, int kv_head, bool values) {
  return cached_row_tolerances(c, inputs, ref64, f64, layer, kv_head, values,
                               kF64FloorPerLayer);
}

RowTolerance f64_score_tolerance(const ModelConfig& c, const ReferenceResult& ref64,
                                 const F32Error& f64) {
  RowTolerance tol;
  tol.f32_error = f64.max_abs_score;
  tol.floor = kF64FloorPerLayer * c.layers * ref64.max_abs_score;
  return tol;
}

namespace {

template <typename Actual, typename Expected>
Comparison compare_impl(const Actual* actual, const Expected* expected, int rows, int width,
                        const RowTolerance* tol, double scale) {
  Comparison c;
  c.rows = rows;
  c.width = width;
  double sq_err = 0, sq_ref = 0, worst_ratio = -1;
  for (int r = 0; r < rows; ++r) {
    const std::size_t base = static_cast<std::size_t>(r) * width;
    double err = 0;
    int bad_col = -1;
    for (int j = 0; j < width; ++j) {
      const double a = static_cast<double>(actual[base + j]);
      const double b = static_cast<double>(expected[base + j]);
      if (!std::isfinite(a) && bad_col < 0) bad_col = j;
      const double e = std::isfinite(a) ? std::abs(a - b) : INFINITY;
      err = std::max(err, e);
      sq_err += e * e;
      sq_ref += b * b;
      c.max_abs_expected = std::max(c.max_abs_expected, std::abs(b));
    }
    c.max_abs_error = std::max(c.max_abs_error, err);
    const double allowed = scale * tol[r].allowed();
    const bool row_ok = bad_col < 0 && err <= allowed;
    // The worst row: the first non-finite one, else the largest err / allowed.
    const double ratio = bad_col >= 0 ? INFINITY : (allowed > 0 ? err / allowed : (err > 0 ? INFINITY : 0));
    if (!c.non_finite && (ratio > worst_ratio || bad_col >= 0)) {
      worst_ratio = ratio;
      c.worst_row = r;
      c.worst_error = err;
      c.worst_allowed = allowed;
      c.worst_f32_error = scale * tol[r].f32_error;
      c.worst_floor = scale * tol[r].floor;
      if (bad_col >= 0) {
        c.non_finite = true;
        c.non_finite_col = bad_col;
      }
    }
    if (!row_ok) c.ok = false;
  }
  c.nmse = sq_ref > 0 ? sq_err / sq_ref : (sq_err > 0 ? INFINITY : 0);
  return c;
}

}  // namespace

Comparison compare_rows(const float* actual, const double* expected, int rows, int width,
                        const RowTolerance* tol, double tolerance_scale) {
  return compare_impl(actual, expected, rows, width, tol, tolerance_scale);
}

Comparison compare_rows(const float* actual, const float* expected, int rows, int width,
                        const RowTolerance* tol, double tolerance_scale) {
  return compare_impl(actual, expected, rows, width, tol, tolerance_scale);
}

Comparison compare_rows(const double* actual, const double* expected, int rows, int width,
                        const RowTolerance* tol, double tolerance_scale) {
  return compare_impl(actual, expected, rows, width, tol, tolerance_scale);
}

std::string Comparison::describe() const {
  std::ostringstream out;
  out << std::setprecision(3);
  out << rows << " rows x " << width << ": max abs error " << max_abs_error << ", NMSE " << nmse
      << " (max |expected| " << max_abs_expected << ")";
  if (worst_row >= 0) {
    if (non_finite) {
      out << "; row " << worst_row << " column " << non_finite_col << " is not finite";
    } else {
      out << "; worst row " << worst_row << ": error " << worst_error << " vs allowed "
          << worst_allowed << " = " << kF32ReferenceFactor << " x f32-reference error "
          << (kF32ReferenceFactor > 0 ? worst_f32_error : 0) << " + floor " << worst_floor;
      if (worst_allowed > 0) out << " (" << worst_error / worst_allowed << "x the bound)";
    }
  }
  return out.str();
}

}  // namespace kvbench::props
