// cpu_kernels: the vectorized fp32 building blocks shared by the CPU implementations
// (cpu_cached, naive), so that the two differ in what they compute (a cache or none), not in
// how fast each multiply-add runs. Internal to impls/: not part of the harness interface.
//
// The inline helpers are always inlined into their caller, so they take the ISA of the
// function they land in: a caller that wants the AVX2/FMA clone marks itself KVBENCH_HOT.
#ifndef KVBENCH_IMPLS_CPU_KERNELS_H_
#define KVBENCH_IMPLS_CPU_KERNELS_H_

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace kvbench {
namespace kernels {

// Float sums do not auto-vectorize (reordering changes rounding), and GCC 12 vectorizes a
// four-row dot product written with lane arrays across its outer loop, with permutes:
// measured 5 GFLOP/s against 56 for the same loop written with an explicit 8-float vector.
// So the dot products and the axpy use GCC/Clang vector extensions (vector_size, no
// intrinsics, no ISA assumed): the compiler lowers an 8-float vector to one AVX register
// or two SSE/NEON registers. The exp below auto-vectorizes as plain scalar code.
//
// The hot entry points (project_rows here; attend and merge_partials of cpu_cached;
// attend_head of naive) are KVBENCH_HOT: with GCC on
// x86-64 they are compiled twice, for the baseline ISA and for x86-64-v3 (AVX2, FMA), and
// the loader picks the clone the CPU supports (an ifunc), so no -march flag is needed and
// the binary still runs everywhere. The helpers below are inlined into each clone.
// -DKVBENCH_NO_CLONES builds the baseline only (to measure what the clone buys).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(KVBENCH_NO_CLONES)
#define KVBENCH_HOT __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define KVBENCH_HOT
#endif
#define KVBENCH_INLINE inline __attribute__((always_inline))

// GCC warns that passing 32-byte vectors by value changes the ABI without AVX; these
// helpers are always inlined, so no vector crosses a call boundary.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"

typedef float vfloat __attribute__((vector_size(32)));  // 8 floats
constexpr int kWidth = 8;

KVBENCH_INLINE vfloat load(const float* p) {  // unaligned
  vfloat v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
KVBENCH_INLINE void store(float* p, vfloat v) { std::memcpy(p, &v, sizeof v); }
KVBENCH_INLINE float hsum(vfloat v) {
  return ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7]));
}

// RETURNS: sum_e a[e] * b[e], e < n. Two vector accumulators, so the adds' latency overlaps.
KVBENCH_INLINE float dot(const float* a, const float* b, int n) {
  vfloat s0 = {}, s1 = {};
  int e = 0;
  for (; e + 2 * kWidth <= n; e += 2 * kWidth) {
    s0 += load(a + e) * load(b + e);
    s1 += load(a + e + kWidth) * load(b + e + kWidth);
  }
  if (e + kWidth <= n) {
    s0 += load(a + e) * load(b + e);
    e += kWidth;
  }
  float tail = 0.0f;
  for (; e < n; ++e) tail += a[e] * b[e];
  return hsum(s0 + s1) + tail;
}

// out[k] = w_k . x for four rows w_0..w_3, each summed exactly as dot() sums it (the same
// accumulators, tail and horizontal sum: the same bits), but read as four concurrent
// streams: a decode step's projection is one long stream of weight rows, and one row at a
// time leaves memory-level parallelism unused (the read-only reference streams fastest with
// 4 or more streams; harness/bench/bandwidth.h).
KVBENCH_INLINE void dot_rows4(const float* w0, const float* w1, const float* w2,
                              const float* w3, const float* x, int n, float out[4]) {
  vfloat a0 = {}, b0 = {}, a1 = {}, b1 = {}, a2 = {}, b2 = {}, a3 = {}, b3 = {};
  int e = 0;
  for (; e + 2 * kWidth <= n; e += 2 * kWidth) {
    const vfloat xa = load(x + e), xb = load(x + e + kWidth);
    a0 += load(w0 + e) * xa;
    b0 += load(w0 + e + kWidth) * xb;
    a1 += load(w1 + e) * xa;
    b1 += load(w1 + e + kWidth) * xb;
    a2 += load(w2 + e) * xa;
    b2 += load(w2 + e + kWidth) * xb;
    a3 += load(w3 + e) * xa;
    b3 += load(w3 + e + kWidth) * xb;
  }
  if (e + kWidth <= n) {
    const vfloat xa = load(x + e);
    a0 += load(w0 + e) * xa;
    a1 += load(w1 + e) * xa;
    a2 += load(w2 + e) * xa;
    a3 += load(w3 + e) * xa;
    e += kWidth;
  }
  float t0 = 0.0f, t1 = 0.0f, t2 = 0.0f, t3 = 0.0f;
  for (; e < n; ++e) {
    t0 += w0[e] * x[e];
    t1 += w1[e] * x[e];
    t2 += w2[e] * x[e];
    t3 += w3[e] * x[e];
  }
  out[0] = hsum(a0 + b0) + t0;
  out[1] = hsum(a1 + b1) + t1;
  out[2] = hsum(a2 + b2) + t2;
  out[3] = hsum(a3 + b3) + t3;
}

// out[i] = w . x_i for four vectors x_0..x_3: one pass over w serves four rows.
KVBENCH_INLINE void dot4(const float* w, const float* x0, const float* x1, const float* x2,
                         const float* x3, int n, float out[4]) {
  vfloat s0 = {}, s1 = {}, s2 = {}, s3 = {};
  int e = 0;
  for (; e + kWidth <= n; e += kWidth) {
    const vfloat we = load(w + e);
    s0 += we * load(x0 + e);
    s1 += we * load(x1 + e);
    s2 += we * load(x2 + e);
    s3 += we * load(x3 + e);
  }
  float t0 = 0.0f, t1 = 0.0f, t2 = 0.0f, t3 = 0.0f;
  for (; e < n; ++e) {
    t0 += w[e] * x0[e];
    t1 += w[e] * x1[e];
    t2 += w[e] * x2[e];
    t3 += w[e] * x3[e];
  }
  out[0] = hsum(s0) + t0;
  out[1] = hsum(s1) + t1;
  out[2] = hsum(s2) + t2;
  out[3] = hsum(s3) + t3;
}

// RETURNS: sum of x[0..n).
KVBENCH_INLINE float sum(const float* x, int n) {
  vfloat s = {};
  int e = 0;
  for (; e + kWidth <= n; e += kWidth) s += load(x + e);
  float tail = 0.0f;
  for (; e < n; ++e) tail += x[e];
  return hsum(s) + tail;
}

// RETURNS: max of x[0..n), n >= 1 (a NaN in x may be skipped; callers do not rely on it).
KVBENCH_INLINE float max_of(const float* x, int n) {
  float m = x[0];
  for (int e = 1; e < n; ++e) m = x[e] > m ? x[e] : m;
  return m;
}

// x[i] = exp(x[i]) for x[i] <= 0, within 1.5 ulp for x >= -87; below that (down to -inf)
// the result is exp(-87) ~ 1.6e-38, i.e. zero next to the running sum, which is >= 1.
// Cody-Waite reduction x = k ln2 + r, |r| <= ln2/2, then a degree-6 polynomial for e^r and
// 2^k built in the exponent bits. Written with integer bit operations only (no float
// compare), so GCC vectorizes it without -ffast-math or -fno-trapping-math.
KVBENCH_INLINE void exp_nonpositive(float* __restrict x, int n) {
  constexpr std::int32_t kAbsBits87 = 0x42AE0000;  // bits of 87.0f
  constexpr float kRound = 12582912.0f;            // 1.5 * 2^23: adding it rounds to int
  for (int i = 0; i < n; ++i) {
    std::int32_t bits;
    std::memcpy(&bits, &x[i], sizeof bits);
    std::int32_t abs_bits = bits & 0x7fffffff;
    abs_bits = abs_bits < kAbsBits87 ? abs_bits : kAbsBits87;  // |x| <= 87
    bits = (bits & static_cast<std::int32_t>(0x80000000u)) | abs_bits;
    float v;
    std::memcpy(&v, &bits, sizeof v);
    const float t = v * 1.44269504088896341f + kRound;
    const float k = t - kRound;  // round(v / ln2)
    float r = v - k * 0.693359375f;
    r = r - k * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    std::int32_t t_bits;
    std::memcpy(&t_bits, &t, sizeof t_bits);
    const std::int32_t scale_bits = (t_bits - 0x4B400000 + 127) * (1 << 23);  // 2^k
    float scale;
    std::memcpy(&scale, &scale_bits, sizeof scale);
    x[i] = p * scale;
  }
}

KVBENCH_INLINE float exp_nonpositive(float x) {
  exp_nonpositive(&x, 1);
  return x;
}

// acc[e] += p * v[e], e < n.
KVBENCH_INLINE void axpy(float* acc, const float* v, float p, int n) {
  int e = 0;
  for (; e + kWidth <= n; e += kWidth) store(acc + e, load(acc + e) + p * load(v + e));
  for (; e < n; ++e) acc[e] += p * v[e];
}

// acc[e] += p[0] v0[e] + p[1] v1[e] + p[2] v2[e] + p[3] v3[e], added in that order (the
// rounding of four axpy calls) with one load and store of acc instead of four.
KVBENCH_INLINE void axpy4(float* acc, const float* v0, const float* v1, const float* v2,
                          const float* v3, const float* p, int n) {
  const float p0 = p[0], p1 = p[1], p2 = p[2], p3 = p[3];
  int e = 0;
  for (; e + kWidth <= n; e += kWidth) {
    store(acc + e, load(acc + e) + p0 * load(v0 + e) + p1 * load(v1 + e) + p2 * load(v2 + e) +
                       p3 * load(v3 + e));
  }
  for (; e < n; ++e) acc[e] = acc[e] + p0 * v0[e] + p1 * v1[e] + p2 * v2[e] + p3 * v3[e];
}

// acc_i[e] += p_i * v[e] for four accumulators acc_i = acc + i * stride: v read once.
KVBENCH_INLINE void axpy_to4(float* acc, int stride, const float* v, float p0, float p1, float p2,
                             float p3, int n) {
  float* a0 = acc;
  float* a1 = acc + stride;
  float* a2 = acc + 2 * static_cast<std::size_t>(stride);
  float* a3 = acc + 3 * static_cast<std::size_t>(stride);
  int e = 0;
  for (; e + kWidth <= n; e += kWidth) {
    const vfloat ve = load(v + e);
    store(a0 + e, load(a0 + e) + p0 * ve);
    store(a1 + e, load(a1 + e) + p1 * ve);
    store(a2 + e, load(a2 + e) + p2 * ve);
    store(a3 + e, load(a3 + e) + p3 * ve);
  }
  for (; e < n; ++e) {
    a0[e] += p0 * v[e];
    a1[e] += p1 * v[e];
    a2[e] += p2 * v[e];
    a3[e] += p3 * v[e];
  }
}

#pragma GCC diagnostic pop

// Y[i * y_stride + r] (+)= W[r] . X[i * x_stride], rows r in [r0, r1), i < n
// (accumulate: +=, else =).
// W: [rows, cols] row-major; X: [n, >= cols] with row stride x_stride; Y: [n, >= r1] with row
// stride y_stride. Rows of X are taken four at a time so each W row is read once per four
// inputs; the caller keeps r1 - r0 small enough for the rows to stay in L2.
// KVBENCH_HOT (AVX2/FMA clone where the CPU has it), defined in cpu_kernels.cpp.
void project_rows(const float* W, int cols, int r0, int r1, const float* X, std::size_t x_stride,
                  int n, float* Y, std::size_t y_stride, bool accumulate);

}  // namespace kernels
}  // namespace kvbench

#endif  // KVBENCH_IMPLS_CPU_KERNELS_H_
