// The tolerance policy: the ONE place where the property suite decides how far an fp32
// implementation may be from the float64 reference. Every numerical comparison in
// properties/ goes through compare_rows() with tolerances from output_tolerances() or
// kv_tolerances(); nothing else picks an epsilon.
//
// THE RULE (per output row r, i.e. one token's d_model outputs):
//
//     err_impl(r) = max_j |impl[r][j] - ref64[r][j]|
//     err_impl(r) <= 4 * err_f32(r) + floor(r)
//
//   err_f32(r) = max_j |ref32[r][j] - ref64[r][j]| : the error rounding alone causes when the
//   SAME formula is evaluated in fp32 (reference_forward with RefPrecision::f32, same inputs).
//
// WHY 4 * err_f32. An fp32 implementation and the fp32 reference evaluate the same function
// with different summation orders (blocked GEMM vs. plain loops, one-pass vs. two-pass
// softmax). Their rounding errors are two samples of the same process; what differs is the
// constant the order puts in front: a sequential sum of n random terms errs ~ u n / sqrt(2)
// times the term size, a w-lane blocked sum ~ sqrt(w) less, so 8-lane BLAS kernels against
// plain loops differ by sqrt(8) ~ 2.8 in expectation. Writing
// err_impl <= |impl - ref32| + err_f32, the first term is the difference of two independent
// errors of sizes err_impl and err_f32, i.e. up to (1 + 2) err_f32 when the implementation's
// order is up to 2x worse than the reference's (the sqrt(8) above shared by both sides, as
// the fp32 reference itself uses blocked kernels): 3 + 1 = 4. (flash-attention's tests use
// the same "compare with a same-precision reference" rule.) This term follows the CONDITIONING of the problem: when attention scores
// are large (robustness property) softmax amplifies score rounding errors, the fp32
// reference suffers the same amplification, and the bound grows with it, which no fixed
// epsilon could do.
//
// WHY A FLOOR. err_f32(r) is one sample: on a row with few elements (d_model = 1) or few
// operations, the fp32 reference can round exactly, or nearly so, by luck, while a
// different order rounds once more. The floor is an a-priori bound for that case, from the
// probabilistic rounding-error model (Higham & Mary, SIAM J. Sci. Comput. 41(5), 2019):
// a sum of n products a_i b_i computed in precision u errs by at most
// lambda * sqrt(n) * u * sum|a_i b_i| (lambda ~ 4.6 standard deviations). In this model the
// weights are uniform in +-sqrt(3/n) (weights.h), so with |b_i| <= M,
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
// |dp/ds|, quadratic in the magnitude): that is left to the measured 4 * err_f32 term.
//
// HOW LARGE IS IT. For the suite's sizes n_layer <= 96 + 128 + 2*128 + 8*128 + 5 ~ 1500,
// so floor <= 8 * 6e-8 * 3 * 1500 * M ~ 2e-3 M at the very largest, typically ~1e-4 M. A
// broken implementation (wrong softmax scale, off-by-one causal range, missing residual,
// stale cache row) errs by O(0.1..1) * M: orders of magnitude above the bound.
//
// K/V CACHE ROWS (kv_tolerances): a K or V row of layer l is one projection (n = d_model)
// of the layer-l input, which itself carries the error of l layers:
//     floor_kv(r) = 8 * u * (d_model + l * n_layer(r + 1)) * M(r),  err <= 4 err_f32 + floor.
//
// COMPARING TWO RUNS of implementations (prefill vs. decode) without the reference in the
// middle: each is within its tolerance of ref64, so by the triangle inequality they are
// within the sum of the two (tolerance_scale = 2 in compare_rows).
#pragma once

#include <string>
#include <vector>

#include "harness/config.h"
#include "harness/reference.h"

namespace kvbench::props {

inline constexpr double kF32UnitRoundoff = 1.0 / 16777216.0;  // u = 2^-24
inline constexpr double kF32ReferenceFactor = 4.0;   // 2 for each side, see above
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

// RETURNS: the tolerance of each output row. [T]
// REQUIRES: ref64, ref32 from reference_forward(weights, inputs, f64 / f32).
std::vector<RowTolerance> output_tolerances(const ModelConfig& config,
                                            const std::vector<float>& inputs,
                                            const ReferenceResult& ref64,
                                            const ReferenceResult& ref32);

// RETURNS: the tolerance of each cached K (values = false) or V row of (layer, kv_head). [T]
std::vector<RowTolerance> kv_tolerances(const ModelConfig& config,
                                        const std::vector<float>& inputs,
                                        const ReferenceResult& ref64,
                                        const ReferenceResult& ref32, int layer, int kv_head,
                                        bool values);

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
