// The reference must be trustworthy before anything is judged against it. It is checked here
// against a scalar float64 implementation written independently from the formula in
// config.h (plain loops, no LibTorch), and against facts that hold by hand:
//   * one token: softmax over one key is exactly 1, so y = x + W_o [v_{g(0)} .. v_{g(H-1)}],
//     whatever W_q and W_k are;
//   * causality: row t does not depend on rows after t;
//   * the float32 evaluation stays within the rounding bound of float64.
// Tolerances: the one policy of properties/tolerance.h. Two float64 evaluations (the
// reference against the scalar model, or against itself on other matrix sizes) are compared
// with its float64 form (TWO FLOAT64 EVALUATIONS there: 32 x the measured spread of
// basis-permuted float64 evaluations + a floor at u = 2^-53).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "harness/error.h"
#include "harness/reference.h"
#include "harness/weights.h"
#include "properties/tolerance.h"

namespace kvbench {
namespace {

using props::Comparison;
using props::compare_rows;
using props::F32Error;
using props::RowTolerance;

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

// The formula as written, or a wrong one (for tests that the comparison can fail).
enum class Formula { exact, score_scale_one_over_d };

ScalarResult scalar_forward(const ModelWeights& weights, const std::vector<float>& inputs,
                            Formula formula = Formula::exact) {
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
          s[j] = formula == Formula::exact ? dot / std::sqrt(static_cast<double>(d))
                                           : dot / static_cast<double>(d);
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

// The float64 policy's tolerances for comparing another float64 evaluation of the formula
// with `ref` (= reference_forward(weights, inputs), all rows): properties/tolerance.h.
struct F64Tolerances {
  std::vector<RowTolerance> outputs;          // [T]
  RowTolerance score;                         // of max_abs_score
  std::vector<std::vector<RowTolerance>> k, v;  // [L * H_kv][T]
};
F64Tolerances f64_tolerances(const ModelWeights& weights, const std::vector<float>& inputs,
                             const ReferenceResult& ref) {
  const ModelConfig& c = weights.config;
  const F32Error err = props::measure_f64_error(weights, inputs, ref);
  F64Tolerances tol;
  tol.outputs = props::f64_output_tolerances(c, inputs, ref, err);
  tol.score = props::f64_score_tolerance(c, ref, err);
  for (int l = 0; l < c.layers; ++l) {
    for (int g = 0; g < c.kv_heads; ++g) {
      tol.k.push_back(props::f64_kv_tolerances(c, inputs, ref, err, l, g, false));
      tol.v.push_back(props::f64_kv_tolerances(c, inputs, ref, err, l, g, true));
    }
  }
  return tol;
}

// Each comparison of a scalar result with the reference: outputs, max_abs_score, K and V.
struct ScalarComparison {
  Comparison outputs, score;
  std::vector<Comparison> k, v;
  bool ok() const {
    bool all = outputs.ok && score.ok;
    for (const Comparison& c : k) all = all && c.ok;
    for (const Comparison& c : v) all = all && c.ok;
    return all;
  }
};
ScalarComparison compare_with_reference(const ModelConfig& c, const ScalarResult& got,
                                        const ReferenceResult& ref, const F64Tolerances& tol) {
  ScalarComparison r;
  EXPECT_EQ(got.outputs.size(), ref.outputs.size());
  EXPECT_EQ(got.k.size(), ref.k.size());
  r.outputs = compare_rows(got.outputs.data(), ref.outputs.data(), ref.tokens, c.d_model,
                           tol.outputs.data());
  r.score = compare_rows(&got.max_abs_score, &ref.max_abs_score, 1, 1, &tol.score);
  for (std::size_t b = 0; b < std::min(got.k.size(), ref.k.size()); ++b) {
    r.k.push_back(compare_rows(got.k[b].data(), ref.k[b].data(), ref.tokens, c.head_dim,
                               tol.k[b].data()));
    r.v.push_back(compare_rows(got.v[b].data(), ref.v[b].data(), ref.tokens, c.head_dim,
                               tol.v[b].data()));
  }
  return r;
}

void expect_within_f64_policy(const ScalarComparison& r, const std::string& what) {
  EXPECT_TRUE(r.outputs.ok) << what << " outputs: " << r.outputs.describe();
  EXPECT_TRUE(r.score.ok) << what << " max_abs_score: " << r.score.describe();
  for (std::size_t b = 0; b < r.k.size(); ++b) {
    EXPECT_TRUE(r.k[b].ok) << what << " K " << b << ": " << r.k[b].describe();
    EXPECT_TRUE(r.v[b].ok) << what << " V " << b << ": " << r.v[b].describe();
  }
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
      expect_within_f64_policy(
          compare_with_reference(shape.config, want, ref, f64_tolerances(*weights, inputs, ref)),
          what);
    }
  }
}

// The float64 comparison can fail: a change of 1e-10 relative to the scalar model's values
// (far below anything fp32 could resolve) exceeds it, and a wrong formula (softmax scale
// 1/d instead of 1/sqrt(d)) exceeds it by many orders of magnitude.
TEST(Reference, Float64ComparisonDetectsTinyAndFormulaDifferences) {
  for (const Shape& shape : shapes()) {
    const ModelConfig& c = shape.config;
    const auto weights = ModelWeights::from_seed(c);
    const int T = 10;
    const std::vector<float> inputs = InputStream(110).rows(T, c.d_model);
    const ReferenceResult ref = reference_forward(*weights, inputs);
    const F64Tolerances tol = f64_tolerances(*weights, inputs, ref);
    const ScalarResult want = scalar_forward(*weights, inputs);
    ASSERT_TRUE(compare_with_reference(c, want, ref, tol).ok()) << shape.label;

    ScalarResult nudged = want;
    for (double& e : nudged.outputs) e *= 1 + 1e-10;
    const ScalarComparison tiny = compare_with_reference(c, nudged, ref, tol);
    EXPECT_FALSE(tiny.outputs.ok) << shape.label << ": a 1e-10 relative change passed: "
                                  << tiny.outputs.describe();
    EXPECT_GT(tiny.outputs.worst_error, 10 * tiny.outputs.worst_allowed) << shape.label;
    nudged = want;
    for (double& e : nudged.k.back()) e *= 1 + 1e-10;
    nudged.max_abs_score *= 1 + 1e-10;
    const ScalarComparison tiny_kv = compare_with_reference(c, nudged, ref, tol);
    EXPECT_FALSE(tiny_kv.k.back().ok) << shape.label << ": " << tiny_kv.k.back().describe();
    EXPECT_FALSE(tiny_kv.score.ok) << shape.label << ": " << tiny_kv.score.describe();

    // With one token the softmax weight is 1 whatever the scale: compare T = 10.
    const ScalarResult wrong = scalar_forward(*weights, inputs, Formula::score_scale_one_over_d);
    const ScalarComparison bad = compare_with_reference(c, wrong, ref, tol);
    EXPECT_FALSE(bad.outputs.ok) << shape.label;
    EXPECT_GT(bad.outputs.worst_error, 1e6 * bad.outputs.worst_allowed)
        << shape.label << ": " << bad.outputs.describe();
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
  const F64Tolerances tol = f64_tolerances(*weights, inputs, ref);
  expect_within_f64_policy(compare_with_reference(c, want, ref, tol), "T=1100");

  const std::vector<int> rows = {0, 1, 511, 512, 513, 1023, 1024, 1099};
  const ReferenceResult sampled = reference_forward(*weights, inputs, RefPrecision::f64, rows);
  ASSERT_EQ(sampled.rows, rows);
  ASSERT_EQ(sampled.outputs.size(), rows.size() * c.d_model);
  std::vector<double> want_rows;
  std::vector<RowTolerance> row_tol;
  for (int r : rows) {
    const auto first = want.outputs.begin() + static_cast<std::ptrdiff_t>(r) * c.d_model;
    want_rows.insert(want_rows.end(), first, first + c.d_model);
    row_tol.push_back(tol.outputs[static_cast<std::size_t>(r)]);
  }
  const Comparison out = compare_rows(sampled.outputs.data(), want_rows.data(),
                                      static_cast<int>(rows.size()), c.d_model, row_tol.data());
  EXPECT_TRUE(out.ok) << "sampled rows: " << out.describe();
  for (std::size_t b = 0; b < want.k.size(); ++b) {  // K/V of every position, always
    const Comparison k =
        compare_rows(sampled.k[b].data(), want.k[b].data(), T, c.head_dim, tol.k[b].data());
    const Comparison v =
        compare_rows(sampled.v[b].data(), want.v[b].data(), T, c.head_dim, tol.v[b].data());
    EXPECT_TRUE(k.ok) << "sampled K " << b << ": " << k.describe();
    EXPECT_TRUE(v.ok) << "sampled V " << b << ": " << v.describe();
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
    const F64Tolerances tol = f64_tolerances(*weights, x, ref);
    const Comparison out =
        compare_rows(want.data(), ref.outputs.data(), 1, c.d_model, tol.outputs.data());
    EXPECT_TRUE(out.ok) << shape.label << ": " << out.describe();

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
    const std::vector<float> prefix_inputs(inputs.begin(), inputs.begin() + n);
    const ReferenceResult prefix = reference_forward(*weights, prefix_inputs);
    // Same matrix sizes, same order of sums: masked keys contribute exactly exp(-inf) = 0.
    EXPECT_TRUE(std::equal(full.outputs.begin(), full.outputs.begin() + n, later.outputs.begin()))
        << shape.label;
    // A shorter sequence may sum in another order: two float64 evaluations of the prefix.
    const F64Tolerances tol = f64_tolerances(*weights, prefix_inputs, prefix);
    const Comparison same = compare_rows(full.outputs.data(), prefix.outputs.data(), keep,
                                         c.d_model, tol.outputs.data());
    EXPECT_TRUE(same.ok) << shape.label << ": " << same.describe();
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

// The float32 evaluation is the same formula rounded to float. The policy uses it as its
// yardstick (err_f32), so it is checked here against a scale that does not come from it:
// the float64 policy's tolerance (measured spread of float64 evaluation orders + floor)
// scaled by u32 / u64 = 2^29, the same rounding structure one precision down (fp32 rounds
// the products of fp32 operands too, which float64 does exactly: a factor < 2 against the
// policy's 32). And it must exceed the float64 tolerance itself: it really ran in float32.
TEST(Reference, Float32WithinRoundingBoundOfFloat64) {
  for (const Shape& shape : shapes()) {
    const ModelConfig& c = shape.config;
    const auto weights = ModelWeights::from_seed(c);
    const int T = 10;
    const std::vector<float> inputs = InputStream(400).rows(T, c.d_model);
    const ReferenceResult f64 = reference_forward(*weights, inputs, RefPrecision::f64);
    const ReferenceResult f32 = reference_forward(*weights, inputs, RefPrecision::f32);
    const F64Tolerances tol = f64_tolerances(*weights, inputs, f64);
    const double precision_ratio = props::kF32UnitRoundoff / props::kF64UnitRoundoff;
    const Comparison scaled = compare_rows(f32.outputs.data(), f64.outputs.data(), T, c.d_model,
                                           tol.outputs.data(), precision_ratio);
    EXPECT_TRUE(scaled.ok) << shape.label << ": " << scaled.describe();
    const Comparison exact =
        compare_rows(f32.outputs.data(), f64.outputs.data(), T, c.d_model, tol.outputs.data());
    EXPECT_GT(exact.max_abs_error, 100 * exact.worst_allowed)
        << shape.label << ": the f32 result is as exact as f64, so it did not run in float32: "
        << exact.describe();
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
