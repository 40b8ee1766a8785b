// The tolerance policy: the ONE place where the property suite decides how far an fp32
// implementation may be from the float64 reference. Every numerical comparison in
// properties/ goes through compare_rows() with tolerances from output_tolerances() or
// kv_tolerances(); nothing else picks an epsilon.
//
// THE RULE (per output row r, i.e. one token's d_model outputs):
//
//     err_impl(r) = max_j |impl[r][j] - ref64[r][j]|
//     err_impl(r) <= 32 * err_f32(r) + floor(r)
//
//   err_f32(r): the error rounding alone causes when the SAME formula is evaluated in fp32:
//   max_j |ref32[r][j] - ref64[r][j]|, maximised over kF32Samples = 4 fp32 evaluations:
//   reference_forward(f32) of the model as it is, and of 3 basis-permuted copies (d_model
//   features and head coordinates shuffled, weights permuted to match: exactly the same
//   function, every sum in another order, so other rounding errors).
//
// WHY A MEASURED TERM. It follows the CONDITIONING of the problem: where attention scores
// are large (large_scores), softmax amplifies the rounding errors of the scores, every fp32
// evaluation suffers the same amplification, and the bound grows with it. A fixed epsilon
// cannot, and a worst-case bound of that amplification (tried: first-order propagation
// with triangle inequalities and spectral norms) grows by ~50x per layer, far above what
// any fp32 run shows, so it would let broken implementations through at L = 3.
//
// WHY 32 AND FOUR SAMPLES (derived, not tuned). err_impl and each err_f32 sample are draws
// of the same kind of random quantity: a sum of many rounding errors, about Gaussian. The
// danger is the row where ONE error source dominates (two attention scores nearly tied):
// then the row's error is one Gaussian draw times a fixed vector, and err_impl / err_f32 is
// a ratio of two Gaussians, which exceeds 4 with probability 1% even against the worst of
// three fp32 draws (measured: the suite's first policy, 4 x one draw, flaked at 1e4
// scores). For X, Y_1..Y_K iid N(0, s^2), P(|Y| < y) <= 0.798 y / s, hence
//     P(|X| > c max_k |Y_k|) <= E[(0.798 |X| / (c s))^K] = (0.798 / c)^K E|X/s|^K,
// and with K = 4 (E|X/s|^4 = 3), c = 32: <= 1.2e-6 per row. With several error sources
// the draws concentrate and the tail is thinner still. (The implementation's summation
// order may make its errors up to sqrt(8) ~ 2.8x larger than the reference's: 8-lane
// blocked sums vs. plain loops. That costs a factor 2.8^4 ~ 60 in the probability, still
// ~7e-5 on the rare single-source rows only.)
//
// WHY A FLOOR. In the well-conditioned case err_f32 is tiny and can be exactly 0 on a row
// (d_model = 1, few operations) while another order rounds once more. The floor is an
// a-priori bound for that case, from the probabilistic rounding-error model (Higham &
// Mary, SIAM J. Sci. Comput. 41(5), 2019): a sum of n products a_i b_i computed in
// precision u errs by at most lambda * sqrt(n) * u * sum|a_i b_i| (lambda ~ 4.6 standard
// deviations). In this model the weights are uniform in +-sqrt(3/n) (weights.h), so with
// |b_i| <= M,
//     sum|a_i b_i| <= n * sqrt(3/n) * M = sqrt(3 n) M   and the error is
//     <= lambda * sqrt(3) * n * u * M  ~=  8 * n * u * M.
// The attention sums (sum_j p_j v_j, sum_j exp) have weights p_j summing to 1, which is
// only better. To first order the errors of the stages of a layer add, so n becomes the
// total accumulation length of the layer at that row (layer_accumulation_length):
//     n_layer(T) = d_model   q/k/v projections (dot products of length d_model)
//                + d         the score q.k
//                + T         softmax normaliser sum_j exp(s_j - max)   (T keys)
//                + T         the weighted sum sum_j p_j v_j
//                + H * d     output projection W_o o
//                + 5         scale, max-subtract, exp, divide, residual add (1 rounding each)
// and errors entering a layer pass to the next through the residual with gain ~1, so the
// stack of L layers multiplies it by L. M is the magnitude scale of the values the row
// depends on: the largest |value| over its causal cone (rows <= r) among the inputs, the
// reference's K and V rows of every layer, and the reference outputs (causal_magnitude).
//     floor(r) = 8 * u * L * n_layer(r + 1) * M(r),   u = 2^-24.
// The floor deliberately does NOT cover the softmax-conditioning term (score error times
// |dp/ds|, quadratic in the magnitude): that is the measured term's job.
//
// HOW LARGE IS IT. For the suite's sizes n_layer <= 96 + 128 + 2*128 + 8*128 + 5 ~ 1500,
// so floor <= 8 * 6e-8 * 3 * 1500 * M ~ 2e-3 M at the very largest, typically ~1e-5 M;
// the measured term, 32 x ~1e-7 M, stays below it in the well-conditioned cases. A broken
// implementation (wrong softmax scale, off-by-one causal range, missing residual, stale
// cache row) errs by O(0.01..1) * M: 1e2-1e5x the bound (see properties/README.md).
//
// K/V CACHE ROWS (kv_tolerances): a K or V row of layer l is one projection (n = d_model)
// of the layer-l input, which itself carries the error of l layers:
//     floor_kv(r) = 8 * u * (d_model + l * n_layer(r + 1)) * M(r),  err <= 32 err_f32 + floor.
//
// COMPARING TWO RUNS of implementations (prefill vs. decode) without the reference in the
// middle: each is within its tolerance of ref64, so by the triangle inequality they are
// within the sum of the two (tolerance_scale = 2 in compare_rows).
#pragma once

#include <string>
#include <vector>

#include "harness/config.h"
#include "harness/reference.h"
#include "harness/weights.h"

namespace kvbench::props {

inline constexpr double kF32UnitRoundoff = 1.0 / 16777216.0;  // u = 2^-24
inline constexpr double kF32ReferenceFactor = 32.0;  // see "WHY 32 AND FOUR SAMPLES"
inline constexpr int kF32Samples = 4;                // fp32 evaluations behind err_f32
inline constexpr double kFloorFactor = 8.0;          // lambda * sqrt(3), lambda ~ 4.6

// RETURNS: n_layer for a query that attends to `keys` positions (see above).
double layer_accumulation_length(const ModelConfig& config, int keys);

// Allowed error of one row: kF32ReferenceFactor * f32_error + floor.
struct RowTolerance {
  double f32_error = 0;  // max |ref32 - ref64| over the row
  double floor = 0;      // a-priori rounding bound for the row
  double allowed() const { return kF32ReferenceFactor * f32_error + floor; }
};

// RETURNS: M(r) for r < T: the largest |value| among inputs, reference K/V (all layers and
// KV heads) and reference outputs over rows 0..r. [T]
// REQUIRES: inputs is [T, d_model]; ref64 came from reference_forward on those inputs.
std::vector<double> causal_magnitude(const ModelConfig& config, const std::vector<float>& inputs,
                                     const ReferenceResult& ref64);

// err_f32 of every output row and cached K/V row (see above).
struct F32Error {
  std::vector<double> outputs;            // [T]
  std::vector<std::vector<double>> k, v;  // [L * H_kv][T]
};
// REQUIRES: ref64 = reference_forward(weights, inputs, f64).
F32Error measure_f32_error(const ModelWeights& weights, const std::vector<float>& inputs,
                           const ReferenceResult& ref64);

// RETURNS: the tolerance of each output row. [T]
std::vector<RowTolerance> output_tolerances(const ModelConfig& config,
                                            const std::vector<float>& inputs,
                                            const ReferenceResult& ref64, const F32Error& f32);

// RETURNS: the tolerance of each cached K (values = false) or V row of (layer, kv_head). [T]
std::vector<RowTolerance> kv_tolerances(const ModelConfig& config,
                                        const std::vector<float>& inputs,
                                        const ReferenceResult& ref64, const F32Error& f32,
                                        int layer, int kv_head, bool values);

// The verdict of compare_rows, with what a failure report needs.
struct Comparison {
  bool ok = true;
  int rows = 0;
  int width = 0;
  // The row with the largest err / allowed (the first non-finite one if any).
  int worst_row = -1;
  double worst_error = 0;
  double worst_allowed = 0;
  double worst_f32_error = 0;
  double worst_floor = 0;
  bool non_finite = false;  // the implementation produced NaN or Inf
  int non_finite_col = -1;
  double max_abs_error = 0;  // over all compared rows
  double nmse = 0;           // sum (a - b)^2 / sum b^2 over all compared rows
  double max_abs_expected = 0;

  // One paragraph: rows, max abs error, NMSE, the worst row with its bound split into
  // the f32 and floor terms.
  std::string describe() const;
};

// Compares `rows` rows of `width` values: actual[r] against expected[r], allowed error
// tolerance_scale * tol[r].allowed().
// REQUIRES: actual and expected hold rows * width values; tol.size() >= rows.
Comparison compare_rows(const float* actual, const double* expected, int rows, int width,
                        const RowTolerance* tol, double tolerance_scale = 1.0);
// Same, with the second operand an fp32 run (prefill vs. decode).
Comparison compare_rows(const float* actual, const float* expected, int rows, int width,
                        const RowTolerance* tol, double tolerance_scale);

}  // namespace kvbench::props
