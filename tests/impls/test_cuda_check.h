// Expected values and error bounds for cuda_cached's attention, computed in double on the CPU
// from the K/V rows the GPU actually attended. Used by test_cuda_plan.cpp (which checks a
// host run of the kernel's own softmax arithmetic against them) and test_cuda_cached.cpp.
//
// Why this bound, and not one tolerance: the GPU computes in fp32 what is computed here in
// double from the same stored K/V, so the only differences are fp32 rounding along the
// kernel's known summation tree. Bounding that (Higham's gamma(n) = n u / (1 - n u) per
// length-n sum, u = 2^-24) per element keeps the check tight enough that one missing or
// extra key at a split boundary (which moves an output by ~ 1/T of max|v|) is caught.
//
// For one query row q (natural units: s_j = q.k_j / sqrt(d), p = softmax(s), o = sum p_j v_j):
//  * score error. The GPU's q differs from q by at most q_err (its fp32 projection); its dot
//    product over d terms, the prescale by log2(e)/sqrt(d) and the sum over lanes add
//    gamma(d + 2) relative to sum_a |q_a k_ja|:
//      ds_j = (sum_a q_err_a |k_ja| + gamma(d + 2) sum_a (|q_a| + q_err_a) |k_ja|) / sqrt(d).
//    An absolute score error ds_j is a relative error ds_j of the weight 2^(s - m).
//  * exponentials. exp2f is within 2 ulp (2^-22 relative, CUDA Programming Guide, math
//    functions), its argument s - m is rounded by u |s - m| <= 2 u S2 (S2 = max |s| in log2
//    units): e_exp = 2^-22 + ln2 * 2 u S2 per exponential. A weight passes through its own
//    exponential and at most `rescales` correction factors (one per loop iteration of its row
//    group, one in the block merge, one in the split merge), each a further e_exp + u.
//    eta = max_j ds_j + (1 + rescales) (e_exp + u).
//  * normalization. With weights w_j (1 + eta_j), o moves by sum_j p_j eta_j (v_j - o) to
//    first order: at most eta * sum_j p_j |v_jc - o_c|.
//  * sums. l and o are fp32 sums along a tree of depth `depth` (the row group's loop, then
//    `rows` row groups, then the splits): gamma(depth) (sum_j p_j |v_jc| + |o_c|), plus u |o_c|
//    for the division.
// The bound is first order; products of the terms above are below 1e-3 of them for every
// shape tested, and the factor kSecondOrder = 2 covers them with room to spare.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

namespace kvbench::cuda_testing {

constexpr double kU = 5.9604644775390625e-08;  // 2^-24, fp32 unit roundoff
constexpr double kExp2Error = 2.384185791015625e-07;  // 2^-22: exp2f's 2 ulp
constexpr double kLog2E = 1.4426950408889634;
constexpr double kSecondOrder = 2.0;

inline double gamma(double n) { return n * kU / (1.0 - n * kU); }

// The summation tree of one (row, head) in the kernel.
struct Summation {
  int iterations = 1;  // loop iterations of one row group within one split (keys / (rows x U))
  int per_iteration = 1;  // U: keys one row group folds per iteration
  int rows = 1;        // row groups merged in a block
  int splits = 1;      // splits merged by the row's last block

  int depth() const { return iterations * (per_iteration + 2) + rows + splits + 2; }
  int rescales() const { return iterations + 2; }
};

// RETURNS: the summation tree of a row of `kv_len` keys for a kernel with `rows` row groups
// folding `per_iteration` keys each, split into pieces of split_size keys (split_size >=
// kv_len: one split). Counts whole iterations of the longest split, so it is an upper bound.
inline Summation summation_for(int kv_len, int split_size, int rows, int per_iteration) {
  Summation s;
  const int split_keys = std::min(kv_len, split_size);
  const int keys_per_iteration = rows * per_iteration;
  s.iterations = std::max(1, (split_keys + keys_per_iteration - 1) / keys_per_iteration);
  s.per_iteration = per_iteration;
  s.rows = rows;
  s.splits = (kv_len + split_size - 1) / split_size;
  return s;
}

struct RowAttention {
  std::vector<double> o;      // [d] the exact attention output over the given K/V
  std::vector<double> bound;  // [d] the largest |GPU - o| the fp32 kernel may produce
};

// REQUIRES: q, q_err: [d]; k, v: [keys, d] row-major (the values the GPU attended); keys >= 1.
// RETURNS: the exact output of one query row and head, and the bound described above.
inline RowAttention expected_row(const double* q, const double* q_err, const float* k,
                                 const float* v, int keys, int d, const Summation& sum) {
  const double inv_sqrt_d = 1.0 / std::sqrt(static_cast<double>(d));
  std::vector<double> s(static_cast<std::size_t>(keys));
  double ds_max = 0.0;
  double s_max_abs = 0.0;
  for (int j = 0; j < keys; ++j) {
    double dot = 0.0;
    double q_part = 0.0;
    double mag = 0.0;
    for (int a = 0; a < d; ++a) {
      const double kj = k[static_cast<std::size_t>(j) * d + a];
      dot += q[a] * kj;
      q_part += q_err[a] * std::fabs(kj);
      mag += (std::fabs(q[a]) + q_err[a]) * std::fabs(kj);
    }
    s[j] = dot * inv_sqrt_d;
    ds_max = std::max(ds_max, (q_part + gamma(d + 2) * mag) * inv_sqrt_d);
    s_max_abs = std::max(s_max_abs, std::fabs(s[j]) + (q_part + gamma(d + 2) * mag) * inv_sqrt_d);
  }
  const double m = *std::max_element(s.begin(), s.end());
  std::vector<double> p(s.size());
  double total = 0.0;
  for (int j = 0; j < keys; ++j) total += (p[j] = std::exp(s[j] - m));
  for (double& pj : p) pj /= total;

  const double s2 = s_max_abs * kLog2E;
  const double e_exp = kExp2Error + std::log(2.0) * 2.0 * kU * s2;
  const double eta = ds_max + (1.0 + sum.rescales()) * (e_exp + kU);
  const double g_sum = gamma(sum.depth());

  RowAttention out;
  out.o.assign(static_cast<std::size_t>(d), 0.0);
  out.bound.assign(static_cast<std::size_t>(d), 0.0);
  for (int c = 0; c < d; ++c) {
    double o = 0.0;
    for (int j = 0; j < keys; ++j) o += p[j] * v[static_cast<std::size_t>(j) * d + c];
    double spread = 0.0;
    double mag = 0.0;
    for (int j = 0; j < keys; ++j) {
      const double vj = v[static_cast<std::size_t>(j) * d + c];
      spread += p[j] * std::fabs(vj - o);
      mag += p[j] * std::fabs(vj);
    }
    out.o[c] = o;
    out.bound[c] = kSecondOrder * (eta * spread + g_sum * (mag + std::fabs(o)) + kU * std::fabs(o));
  }
  return out;
}

}  // namespace kvbench::cuda_testing
