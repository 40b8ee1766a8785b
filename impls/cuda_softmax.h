// The partial-softmax arithmetic of cuda_cached's split-KV attention, shared by the kernels
// (impls/cuda_attention.cuh) and the host tests (tests/impls/test_cuda_plan.cpp): the host
// tests run these very functions, so the kernel's merge math is checked without a GPU.
//
// Scores are in log2 units: s = (q . k) * log2(e) / sqrt(d), so that exp2 replaces exp.
// A partial state over a set of keys J is
//   m = max_{j in J} s_j          (-inf when J is empty)
//   l = sum_{j in J} 2^(s_j - m)
//   o = sum_{j in J} 2^(s_j - m) v_j   (unnormalized; one element per function call)
// and the attention output over J is o / l. Two states over disjoint key sets merge exactly:
//   M = max(m_a, m_b),  w_x = 2^(m_x - M),  l = w_a l_a + w_b l_b,  o = w_a o_a + w_b o_b.
// An empty state (m = -inf) has weight 0. NaN scores are not dropped by the max (fmaxf
// ignores NaN) but reach l through 2^(NaN - m) = NaN, so a poisoned key that is read shows up.
#pragma once

#include <cmath>

#if defined(__CUDACC__)
#define KVBENCH_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define KVBENCH_HOST_DEVICE inline
#endif
#if defined(__CUDA_ARCH__)
#define KVBENCH_UNROLL _Pragma("unroll")
#else
#define KVBENCH_UNROLL
#endif

namespace kvbench::cuda {

// RETURNS: the weight 2^(m - M) of a partial state with maximum m inside a merge whose
// maximum is M >= m; 0 for an empty state (m = -inf), whatever M is.
KVBENCH_HOST_DEVICE float partial_weight(float m, float M) {
  return m == -INFINITY ? 0.0f : exp2f(m - M);
}

// Folds U new scores into a running state (m, l). valid[u] false means slot u holds no key.
// Writes p[u] = 2^(s_u - m_new) (0 for invalid slots).
// RETURNS: the factor 2^(m_old - m_new) by which the caller must scale its accumulated o
// before adding sum_u p[u] v_u (1 when the maximum did not move, including the empty state).
template <int U>
KVBENCH_HOST_DEVICE float online_fold(float& m, float& l, const float (&s)[U],
                                      const bool (&valid)[U], float (&p)[U]) {
  float m_new = m;
KVBENCH_UNROLL
  for (int u = 0; u < U; ++u) {
    if (valid[u]) m_new = fmaxf(m_new, s[u]);
  }
  const float correction = (m == m_new) ? 1.0f : exp2f(m - m_new);
  float sum = 0.0f;
KVBENCH_UNROLL
  for (int u = 0; u < U; ++u) {
    p[u] = valid[u] ? exp2f(s[u] - m_new) : 0.0f;
    sum += p[u];
  }
  l = l * correction + sum;
  m = m_new;
  return correction;
}

// One element of the merge of n partial states over disjoint key sets.
struct MergedElement {
  float m;  // the overall maximum (-inf when every state is empty)
  float l;  // sum_i w_i l_i
  float o;  // sum_i w_i o_i (unnormalized)
};

// REQUIRES: m[i * ml_stride], l[i * ml_stride], o[i * o_stride] for i < n address state i.
// Ptr is const float* (or const volatile float*, for states other blocks wrote in this launch).
// RETURNS: the merged state, summed in order i = 0..n-1 (a fixed order: deterministic).
template <typename Ptr>
KVBENCH_HOST_DEVICE MergedElement merge_partials(int n, Ptr m, Ptr l, int ml_stride, Ptr o,
                                                 int o_stride) {
  float M = -INFINITY;
  for (int i = 0; i < n; ++i) M = fmaxf(M, m[i * ml_stride]);
  MergedElement out{M, 0.0f, 0.0f};
  if (M == -INFINITY) return out;
  for (int i = 0; i < n; ++i) {
    const float w = partial_weight(m[i * ml_stride], M);
    out.l += w * l[i * ml_stride];
    out.o += w * o[i * o_stride];
  }
  return out;
}

// RETURNS: the attention output o / l of a merged state (0 for an empty one; NaN stays NaN).
KVBENCH_HOST_DEVICE float normalized_output(const MergedElement& merged) {
  return merged.l == 0.0f ? 0.0f : merged.o / merged.l;
}

// The keys of split `split`: [begin, end) within a row of kv_len keys.
// RETURNS: false when the split holds no key of this row (begin >= kv_len).
KVBENCH_HOST_DEVICE bool split_range(int split, int split_size, int kv_len, int& begin, int& end) {
  const long long b = static_cast<long long>(split) * split_size;
  if (b >= kv_len) return false;
  begin = static_cast<int>(b);
  end = (kv_len - begin < split_size) ? kv_len : begin + split_size;
  return true;
}

}  // namespace kvbench::cuda
