// The reference must be trustworthy before anything is judged against it. It is checked here
// against a scalar float64 implementation written independently from the formula in
// config.h (plain loops, no LibTorch), and against facts that hold by hand:
//   * one token: softmax over one key is exactly 1, so y = x + W_o [v_{g(0)} .. v_{g(H-1)}],
//     whatever W_q and W_k are;
//   * causality: row t does not depend on rows after t;
//   * the float32 evaluation stays within the rounding bound of float64.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "harness/error.h"
#include "harness/reference.h"
#include "harness/weights.h"
#include "tests/harness/attention_error_bound.h"

namespace kvbench {
namespace {

using testing_bounds::attention_error_bound;
using testing_bounds::kUnitRoundoffF32;
using testing_bounds::kUnitRoundoffF64;

// ---- the independent scalar implementation ------------------------------------------------

struct ScalarResult {
  std::vector<double> outputs;             // [T, d_model]
  std::vector<std::vector<double>> k, v;   // per layer * H_kv + kv_head: [T, d]
  double max_abs_score = 0;
};

// y[r] = sum_c W[r][c] x[c] for a row-major [rows, cols] float matrix.
std::vector<double> mat_vec(const std::vector<float>& w, int rows, int cols,
                            const double* x) {
  std::vector<double> y(static_cast<std::size_t>(rows), 0.0);
  for (int r = 0; r < rows; ++r) {
    double sum = 0;
    for (int c = 0; c < cols; ++c) {
      sum += static_cast<double>(w[static_cast<std::size_t>(r * cols + c)]) * x[c];
    }
    y[static_cast<std::size_t>(r)] = sum;
  }
  return y;
}

ScalarResult scalar_forward(const ModelWeights& weights, const std::vector<float>& inputs) {
  const ModelConfig& c = weights.config;
  const int T = static_cast<int>(inputs.size()) / c.d_model;
  const int H = c.heads, G = c.kv_heads, d = c.head_dim, group = H / G;
  std::vector<std::vector<double>> x(static_cast<std::size_t>(T));
  for (int t = 0; t < T; ++t) {
    x[t].assign(inputs.begin() + t * c.d_model, inputs.begin() + (t + 1) * c.d_model);
  }
  ScalarResult result;
  for (int l = 0; l < c.layers; ++l) {
    const LayerWeights& w = weights.layers[static_cast<std::size_t>(l)];
    std::vector<std::vector<double>> q(T), k(T), v(T);  // [T][H*d], [T][G*d], [T][G*d]
    for (int t = 0; t < T; ++t) {
      q[t] = mat_vec(w.wq, H * d, c.d_model, x[t].data());
      k[t] = mat_vec(w.wk, G * d, c.d_model, x[t].data());
      v[t] = mat_vec(w.wv, G * d, c.d_model, x[t].data());
    }
    for (int g = 0; g < G; ++g) {
      std::vector<double> kg, vg;
      for (int t = 0; t < T; ++t) {
        kg.insert(kg.end(), k[t].begin() + g * d, k[t].begin() + (g + 1) * d);
        vg.insert(vg.end(), v[t].begin() + g * d, v[t].begin() + (g + 1) * d);
      }
      result.k.push_back(kg);
      result.v.push_back(vg);
    }
    std::vector<std::vector<double>> next(static_cast<std::size_t>(T));
    for (int t = 0; t < T; ++t) {
      std::vector<double> o(static_cast<std::size_t>(H * d), 0.0);
      for (int h = 0; h < H; ++h) {
        const int g = h / group;
        std::vector<double> s(static_cast<std::size_t>(t + 1));
        double top = -INFINITY;
        for (int j = 0; j <= t; ++j) {
          double dot = 0;
          for (int i = 0; i < d; ++i) dot += q[t][h * d + i] * k[j][g * d + i];
          s[j] = dot / std::sqrt(static_cast<double>(d));
          top = std::max(top, s[j]);
          result.max_abs_score = std::max(result.max_abs_score, std::abs(s[j]));
        }
        double norm = 0;
        for (double& e : s) norm += (e = std::exp(e - top));
        for (int j = 0; j <= t; ++j) {
          for (int i = 0; i < d; ++i) o[h * d + i] += s[j] / norm * v[j][g * d + i];
        }
      }
      const std::vector<double> proj = mat_vec(w.wo, c.d_model, H * d, o.data());
      next[t] = x[t];
      for (int r = 0; r < c.d_model; ++r) next[t][r] += proj[r];
    }
    x = std::move(next);
  }
  for (const auto& row : x) result.outputs.insert(result.outputs.end(), row.begin(), row.end());
  return result;
}

// ---- helpers -------------------------------------------------------------------------------

ModelConfig small_config(int layers, int d_model, int heads, int kv_heads, int head_dim,
                         std::uint64_t seed) {
  return ModelConfig::make(layers, d_model, heads, kv_heads, head_dim, 4096, DType::f32, seed);
}

double max_abs(const std::vector<double>& a) {
  double m = 0;
  for (double x : a) m = std::max(m, std::abs(x));
  return m;
}

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  double m = 0;
  for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    m = std::max(m, std::abs(a[i] - b[i]));
  }
  return m;
}

struct Shape {
  const char* label;
  ModelConfig config;
};
std::vector<Shape> shapes() {
  return {
      {"mha", small_config(2, 12, 2, 2, 4, 3)},
      {"gqa", small_config(2, 16, 4, 2, 4, 4)},
      {"mqa", small_config(2, 8, 3, 1, 5, 5)},        // H * d = 15 != d_model = 8
      {"one_head", small_config(1, 6, 1, 1, 6, 6)},
  };
}

// ---- tests ---------------------------------------------------------------------------------

TEST(Reference, MatchesScalarFloat64Implementation) {
  for (const Shape& shape : shapes()) {
    const auto weights = ModelWeights::from_seed(shape.config);
    for (int T : {1, 4, 10}) {
      const std::vector<float> inputs = InputStream(100 + T).rows(T, shape.config.d_model);
      const ReferenceResult ref = reference_forward(*weights, inputs);
      const ScalarResult want = scalar_forward(*weights, inputs);
      const std::string what = std::string(shape.label) + " T=" + std::to_string(T);
      ASSERT_EQ(ref.tokens, T) << what;
      // Both are float64 evaluations of the same formula in different orders: each is within
      // the bound of the exact result, so they are within twice the bound of each other.
      const double tol = 2 * attention_error_bound(shape.config, T, want.max_abs_score,
                                                   max_abs(want.outputs), kUnitRoundoffF64);
      EXPECT_LE(max_abs_diff(ref.outputs, want.outputs), tol) << what;
      EXPECT_NEAR(ref.max_abs_score, want.max_abs_score, tol) << what;
      ASSERT_EQ(ref.k.size(), want.k.size()) << what;
      for (std::size_t i = 0; i < want.k.size(); ++i) {
        EXPECT_LE(max_abs_diff(ref.k[i], want.k[i]), tol) << what << " K " << i;
        EXPECT_LE(max_abs_diff(ref.v[i], want.v[i]), tol) << what << " V " << i;
      }
    }
  }
}

// Past 512 tokens the reference works in blocks of query rows (and, with `rows`, computes
// only some outputs): block boundaries and row subsets must not change the formula.
TEST(Reference, BlockedAndSampledRowsMatchTheScalarModel) {
  const ModelConfig c = ModelConfig::make(2, 8, 4, 2, 4, 2048);
  const auto weights = ModelWeights::from_seed(c);
  const int T = 1100;  // three blocks of 512 query rows
  const std::vector<float> inputs = InputStream(77).rows(T, c.d_model);
  const ReferenceResult ref = reference_forward(*weights, inputs);
  const ScalarResult want = scalar_forward(*weights, inputs);
  const double tol = 2 * attention_error_bound(c, T, want.max_abs_score, max_abs(want.outputs),
                                               kUnitRoundoffF64);
  EXPECT_LE(max_abs_diff(ref.outputs, want.outputs), tol);
  EXPECT_NEAR(ref.max_abs_score, want.max_abs_score, tol);

  const std::vector<int> rows = {0, 1, 511, 512, 513, 1023, 1024, 1099};
  const ReferenceResult sampled = reference_forward(*weights, inputs, RefPrecision::f64, rows);
  ASSERT_EQ(sampled.rows, rows);
  ASSERT_EQ(sampled.outputs.size(), rows.size() * c.d_model);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    for (int j = 0; j < c.d_model; ++j) {
      EXPECT_NEAR(sampled.outputs[i * c.d_model + j],
                  want.outputs[static_cast<std::size_t>(rows[i]) * c.d_model + j], tol)
          << "row " << rows[i];
    }
  }
  for (std::size_t b = 0; b < want.k.size(); ++b) {  // K/V of every position, always
    EXPECT_LE(max_abs_diff(sampled.k[b], want.k[b]), tol);
    EXPECT_LE(max_abs_diff(sampled.v[b], want.v[b]), tol);
  }
  EXPECT_THROW(reference_forward(*weights, inputs, RefPrecision::f64, {5, 3}), Error);
  EXPECT_THROW(reference_forward(*weights, inputs, RefPrecision::f64, {T}), Error);
}

// Softmax over a single key is exactly 1 (exp(0) / exp(0)), so with one token the output is
// x + W_o applied to each query head's copy of its KV head's value, and W_q, W_k do not matter.
TEST(Reference, SingleTokenIsResidualPlusProjectedValue) {
  for (const Shape& shape : shapes()) {
    ModelConfig c = shape.config;
    c.layers = 1;
    const auto weights = ModelWeights::from_seed(c);
    const std::vector<float> x = InputStream(200).rows(1, c.d_model);
    const ReferenceResult ref = reference_forward(*weights, x);

    std::vector<double> xd(x.begin(), x.end());
    const LayerWeights& w = weights->layers[0];
    const std::vector<double> v = mat_vec(w.wv, c.kv_width(), c.d_model, xd.data());
    std::vector<double> repeated;  // [H * d]: head h gets KV head h / group
    for (int h = 0; h < c.heads; ++h) {
      const int g = h / c.group_size();
      repeated.insert(repeated.end(), v.begin() + g * c.head_dim, v.begin() + (g + 1) * c.head_dim);
    }
    std::vector<double> want = mat_vec(w.wo, c.d_model, c.q_width(), repeated.data());
    for (int r = 0; r < c.d_model; ++r) want[r] += xd[r];
    const double tol = 2 * attention_error_bound(c, 1, ref.max_abs_score, max_abs(want),
                                                 kUnitRoundoffF64);
    EXPECT_LE(max_abs_diff(ref.outputs, want), tol) << shape.label;

    // Other W_q and W_k (here: negated and scaled) give bit-identical outputs.
    ModelWeights other = *weights;
    for (float& e : other.layers[0].wq) e *= -3.0f;
    for (float& e : other.layers[0].wk) e *= 0.5f;
    EXPECT_EQ(reference_forward(other, x).outputs, ref.outputs) << shape.label;
  }
}

// Row t depends on rows 0..t only: changing the last rows leaves the earlier outputs as they
// were, while changing an earlier row changes every output from there on.
TEST(Reference, IsCausal) {
  for (const Shape& shape : shapes()) {
    const ModelConfig& c = shape.config;
    const auto weights = ModelWeights::from_seed(c);
    const int T = 8, keep = 5;
    std::vector<float> inputs = InputStream(300).rows(T, c.d_model);
    const ReferenceResult full = reference_forward(*weights, inputs);

    std::vector<float> changed = inputs;
    for (std::size_t i = static_cast<std::size_t>(keep * c.d_model); i < changed.size(); ++i) {
      changed[i] = -changed[i];
    }
    const ReferenceResult later = reference_forward(*weights, changed);
    const std::size_t n = static_cast<std::size_t>(keep * c.d_model);
    const ReferenceResult prefix =
        reference_forward(*weights, std::vector<float>(inputs.begin(), inputs.begin() + n));
    // Same matrix sizes, same order of sums: masked keys contribute exactly exp(-inf) = 0.
    EXPECT_TRUE(std::equal(full.outputs.begin(), full.outputs.begin() + n, later.outputs.begin()))
        << shape.label;
    // A shorter sequence may sum in another order: equal within rounding.
    const double tol = 2 * attention_error_bound(c, T, full.max_abs_score, max_abs(full.outputs),
                                                 kUnitRoundoffF64);
    const std::vector<double> full_prefix(full.outputs.begin(), full.outputs.begin() + n);
    EXPECT_LE(max_abs_diff(prefix.outputs, full_prefix), tol) << shape.label;
    for (int t = keep; t < T; ++t) {
      double moved = 0;
      for (int r = 0; r < c.d_model; ++r) {
        const std::size_t i = static_cast<std::size_t>(t * c.d_model + r);
        moved = std::max(moved, std::abs(full.outputs[i] - later.outputs[i]));
      }
      EXPECT_GT(moved, 1e-3) << shape.label << ": row " << t << " ignored its own new input";
    }
  }
}

// The float32 evaluation is the same formula rounded to float: within the float32 bound of
// the float64 result, and measurably different from it (it really ran in float32).
TEST(Reference, Float32WithinRoundingBoundOfFloat64) {
  for (const Shape& shape : shapes()) {
    const ModelConfig& c = shape.config;
    const auto weights = ModelWeights::from_seed(c);
    const int T = 10;
    const std::vector<float> inputs = InputStream(400).rows(T, c.d_model);
    const ReferenceResult f64 = reference_forward(*weights, inputs, RefPrecision::f64);
    const ReferenceResult f32 = reference_forward(*weights, inputs, RefPrecision::f32);
    const double scale = max_abs(f64.outputs);
    // f64's own error (bound with 2^-53) is negligible beside f32's; both are added.
    const double tol = attention_error_bound(c, T, f64.max_abs_score, scale, kUnitRoundoffF32) +
                       attention_error_bound(c, T, f64.max_abs_score, scale, kUnitRoundoffF64);
    const double diff = max_abs_diff(f32.outputs, f64.outputs);
    EXPECT_LE(diff, tol) << shape.label;
    EXPECT_GT(diff, attention_error_bound(c, T, f64.max_abs_score, scale, kUnitRoundoffF64))
        << shape.label << ": the f32 result is as exact as f64, so it did not run in float32";
  }
}

TEST(Reference, RejectsInputNotMultipleOfDModel) {
  const ModelConfig c = small_config(1, 8, 2, 2, 4, 1);
  const auto weights = ModelWeights::from_seed(c);
  const std::vector<float> inputs(2 * 8 + 3, 0.5f);  // 19 floats
  try {
    reference_forward(*weights, inputs);
    FAIL() << "reference_forward accepted 19 floats with d_model 8";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("19"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("d_model 8"), std::string::npos) << e.what();
  }
}

TEST(Reference, NoTokensGiveNoOutputs) {
  const ModelConfig c = small_config(2, 8, 2, 1, 4, 1);
  const ReferenceResult ref = reference_forward(*ModelWeights::from_seed(c), {});
  EXPECT_EQ(ref.tokens, 0);
  EXPECT_TRUE(ref.outputs.empty());
  ASSERT_EQ(ref.k.size(), 2u);  // L * H_kv, each empty
  EXPECT_TRUE(ref.k[0].empty());
}

}  // namespace
}  // namespace kvbench
