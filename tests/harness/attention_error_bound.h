// The rounding error allowed between two evaluations of the model (config.h) that differ only
// in precision or in the order of their sums, e.g. an fp32 implementation against the float64
// reference. Derived from the accumulation lengths, not tuned until tests pass.
//
// A length-n dot product in a format with unit roundoff u is off by at most
// gamma(n) = n*u / (1 - n*u) relative to sum |a_i b_i| (Higham, Accuracy and Stability of
// Numerical Algorithms, Thm 3.1, any summation order). With weights of variance 1/fan_in,
// sum |a_i b_i| is of the order of the values themselves, so each step adds gamma(n) times the
// magnitude of what it produces. Per layer:
//   q, k, v = W x           gamma(d_model)
//   s = q.k / sqrt(d)       gamma(d) + 2 gamma(d_model) (the errors of q and k), relative to
//                           |s|; exp() turns an absolute score error e into a relative
//                           weight error e, and the normaliser doubles it:
//                           2 (gamma(d) + 2 gamma(d_model)) S, S the largest |score|
//   o = sum_j p_j v_j       gamma(T) + gamma(d_model) (the error of v)
//   y = x + W_o o           gamma(H d) + u
// A layer passes the error of its input on with a gain of at most 2 (1 through the residual,
// at most about 1 through the attention path for weights of variance 1/fan_in), so L layers
// give per_layer * (1 + 2 + ... + 2^(L-1)) = per_layer * (2^L - 1). The bound is absolute:
// that relative error times the largest output magnitude.
#pragma once

#include <cmath>

#include "harness/config.h"

namespace kvbench {
namespace testing_bounds {

constexpr double kUnitRoundoffF32 = 5.9604644775390625e-08;   // 2^-24
constexpr double kUnitRoundoffF64 = 1.1102230246251565e-16;   // 2^-53

inline double gamma(double n, double u) { return n * u / (1.0 - n * u); }

// REQUIRES: tokens >= 1; max_abs_score = the reference's max |q.k| / sqrt(d);
//           max_abs_value = the largest |output| of the reference (or of what is compared).
// RETURNS: the largest absolute difference allowed per element.
inline double attention_error_bound(const ModelConfig& c, int tokens, double max_abs_score,
                                    double max_abs_value, double u) {
  const double g_model = gamma(c.d_model, u);
  const double projections = g_model;
  const double softmax = 2.0 * (gamma(c.head_dim, u) + 2.0 * g_model) * max_abs_score;
  const double weighted_sum = gamma(tokens, u) + g_model;
  const double output = gamma(static_cast<double>(c.heads) * c.head_dim, u) + u;  // W_o, residual
  const double per_layer = projections + softmax + weighted_sum + output;
  const double layers_gain = std::ldexp(1.0, c.layers) - 1.0;
  return per_layer * layers_gain * max_abs_value;
}

}  // namespace testing_bounds
}  // namespace kvbench
