#include "properties/tolerance.h"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <sstream>

#include "harness/error.h"

namespace kvbench::props {

double layer_accumulation_length(const ModelConfig& c, int keys) {
  // See tolerance.h: projections + score + softmax sum + weighted sum + W_o + 5 roundings.
  return static_cast<double>(c.d_model) + c.head_dim + 2.0 * keys +
         static_cast<double>(c.heads) * c.head_dim + 5.0;
}

namespace {

double row_max_abs(const double* row, int width) {
  double m = 0;
  for (int j = 0; j < width; ++j) m = std::max(m, std::abs(row[j]));
  return m;
}

// max_j |a[j] - b[j]| over one row.
double row_max_diff(const double* a, const double* b, int width) {
  double m = 0;
  for (int j = 0; j < width; ++j) m = std::max(m, std::abs(a[j] - b[j]));
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
  for (int t = 0; t < T; ++t) {
    const std::size_t row = static_cast<std::size_t>(t);
    for (int j = 0; j < dm; ++j) {
      running = std::max(running, std::abs(static_cast<double>(inputs[row * dm + j])));
    }
    running = std::max(running, row_max_abs(ref64.outputs.data() + row * dm, dm));
    for (std::size_t b = 0; b < ref64.k.size(); ++b) {
      running = std::max(running, row_max_abs(ref64.k[b].data() + row * d, d));
      running = std::max(running, row_max_abs(ref64.v[b].data() + row * d, d));
    }
    m[row] = running;
  }
  return m;
}

std::vector<RowTolerance> output_tolerances(const ModelConfig& c,
                                            const std::vector<float>& inputs,
                                            const ReferenceResult& ref64,
                                            const ReferenceResult& ref32) {
  require(ref32.tokens == ref64.tokens, "tolerance: f32 reference has ", ref32.tokens,
          " tokens, f64 reference ", ref64.tokens);
  const std::vector<double> m = causal_magnitude(c, inputs, ref64);
  const int dm = c.d_model;
  std::vector<RowTolerance> tol(static_cast<std::size_t>(ref64.tokens));
  for (int t = 0; t < ref64.tokens; ++t) {
    const std::size_t row = static_cast<std::size_t>(t);
    tol[row].f32_error = row_max_diff(ref32.outputs.data() + row * dm,
                                      ref64.outputs.data() + row * dm, dm);
    tol[row].floor = kFloorFactor * kF32UnitRoundoff * c.layers *
                     layer_accumulation_length(c, t + 1) * m[row];
  }
  return tol;
}

std::vector<RowTolerance> kv_tolerances(const ModelConfig& c, const std::vector<float>& inputs,
                                        const ReferenceResult& ref64,
                                        const ReferenceResult& ref32, int layer, int kv_head,
                                        bool values) {
  require(layer >= 0 && layer < c.layers && kv_head >= 0 && kv_head < c.kv_heads,
          "tolerance: (layer ", layer, ", kv_head ", kv_head, ") out of range");
  const std::vector<double> m = causal_magnitude(c, inputs, ref64);
  const std::size_t block = static_cast<std::size_t>(layer * c.kv_heads + kv_head);
  const std::vector<double>& a = values ? ref32.v[block] : ref32.k[block];
  const std::vector<double>& b = values ? ref64.v[block] : ref64.k[block];
  const int d = c.head_dim;
  std::vector<RowTolerance> tol(static_cast<std::size_t>(ref64.tokens));
  for (int t = 0; t < ref64.tokens; ++t) {
    const std::size_t row = static_cast<std::size_t>(t);
    tol[row].f32_error = row_max_diff(a.data() + row * d, b.data() + row * d, d);
    const double n = c.d_model + layer * layer_accumulation_length(c, t + 1);
    tol[row].floor = kFloorFactor * kF32UnitRoundoff * n * m[row];
  }
  return tol;
}

namespace {

template <typename Expected>
Comparison compare_impl(const float* actual, const Expected* expected, int rows, int width,
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
      const double a = actual[base + j];
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
