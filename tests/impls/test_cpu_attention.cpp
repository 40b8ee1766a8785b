// Unit tests of cpu_cached's attention kernels (impls/cpu_attention.h), alone: attend +
// store_output (decode rows, prefill blocks with their causal limit) and the split-KV path
// (attend + store_partial per chunk, merge_partials) against a plain double loop over small
// random inputs. K/V rows that an item must not read hold NaN, so reading one shows.
//
// Tolerance: a first-order bound on the fp32 rounding of the kernel, computed per output
// element from the double reference (see fp32_bound below), times 2 for the second-order
// terms the bound drops. It is ~1e-6 of the values here; a wrong key, a missed causal
// limit or a lost tile moves an output by ~1e-1.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "impls/cpu_attention.h"

namespace kvbench {
namespace {

using cpu::AttnItem;
using cpu::AttnMerge;
using cpu::AttnScratch;
using cpu::AttnShape;

constexpr double kU = 0x1p-24;  // unit roundoff of fp32 (round to nearest)
const float kNaN = std::numeric_limits<float>::quiet_NaN();

struct Problem {
  AttnShape shape;
  int kv_heads = 1;
  int capacity = 0;
  int n = 0;             // rows of the step (Q and O)
  std::size_t q_stride = 0;
  std::vector<float> Q;  // [n, q_stride]: heads at [0, H*d)
  std::vector<float> K;  // [H_kv, capacity, d]
  std::vector<float> V;
};

AttnShape make_shape(int kv_heads, int group, int d, int tile) {
  AttnShape a;
  a.heads = kv_heads * group;
  a.group = group;
  a.head_dim = d;
  a.tile = tile;
  a.scale = 1.0f / std::sqrt(static_cast<float>(d));
  return a;
}

// Random Q, K, V in [-1, 1) (Q times q_gain, so the softmax is peaked as well as flat);
// K/V rows at positions >= visible are NaN.
Problem make_problem(const AttnShape& a, int kv_heads, int n, int visible, float q_gain,
                     unsigned seed) {
  Problem p;
  p.shape = a;
  p.kv_heads = kv_heads;
  p.capacity = visible + 8;
  p.n = n;
  p.q_stride = static_cast<std::size_t>(a.heads) * a.head_dim + 5;  // padded, like qkv_
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  p.Q.resize(static_cast<std::size_t>(n) * p.q_stride);
  for (float& x : p.Q) x = q_gain * u(rng);
  const std::size_t rows = static_cast<std::size_t>(kv_heads) * p.capacity;
  p.K.resize(rows * a.head_dim);
  p.V.resize(rows * a.head_dim);
  for (int g = 0; g < kv_heads; ++g) {
    for (int j = 0; j < p.capacity; ++j) {
      for (int e = 0; e < a.head_dim; ++e) {
        const std::size_t at = (static_cast<std::size_t>(g) * p.capacity + j) * a.head_dim + e;
        p.K[at] = j < visible ? u(rng) : kNaN;
        p.V[at] = j < visible ? u(rng) : kNaN;
      }
    }
  }
  return p;
}

const float* k_rows(const Problem& p, int g) {
  return p.K.data() + static_cast<std::size_t>(g) * p.capacity * p.shape.head_dim;
}
const float* v_rows(const Problem& p, int g) {
  return p.V.data() + static_cast<std::size_t>(g) * p.capacity * p.shape.head_dim;
}

// The exact (double) attention output of query head h of row `row` over keys
// [key_begin, key_end), and the fp32 error bound of each of its d elements.
struct RefOut {
  std::vector<double> o, bound;
};

// First-order bound on |fp32 kernel - exact| for one output element, u = 2^-24:
//   score s_j = scale * q.k_j: q scaled (2u: the rounded scale, the product), a d-term fp32
//     dot product (d u): |ds_j| <= (d + 2) u sum_e |scale q_e k_je|; the argument s_j - m
//     also carries m's error and one subtraction: a_j <= 2 max_j |ds_j| + u |s_j - m|;
//   weight w_j = exp(s_j - m): exp_nonpositive is within 1.5 ulp (<= 3u, 4u here), and each
//     of the t tiles' running-max corrections multiplies in one more exp and product (5u):
//     eps_j = a_j + 4u + 5u t (+ the merge's own exp, product and sum over c chunks: 6u + c u);
//   sums over the n keys: acc = sum_j w_j v_j and l = sum_j w_j, each <= (n + 1) u of the
//     sum of the absolute terms; the final acc * (1 / l): 2u.
//   |do_e| <= [sum_j w_j eps_j (|v_je| + |o_e|) + (n + 1) u (sum_j w_j |v_je| + L |o_e|)] / L
//             + 2u |o_e|.
RefOut reference(const Problem& p, int row, int h, int key_begin, int key_end, int chunks) {
  const AttnShape& a = p.shape;
  const int d = a.head_dim, g = h / a.group;
  const float* q = p.Q.data() + static_cast<std::size_t>(row) * p.q_stride +
                   static_cast<std::size_t>(h) * d;
  const int n = key_end - key_begin;
  std::vector<double> s(static_cast<std::size_t>(n)), abs_dot(static_cast<std::size_t>(n));
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  double m = -INFINITY, max_ds = 0.0;
  for (int j = 0; j < n; ++j) {
    const float* k = k_rows(p, g) + static_cast<std::size_t>(key_begin + j) * d;
    double dot = 0.0, abs_sum = 0.0;
    for (int e = 0; e < d; ++e) {
      dot += static_cast<double>(q[e]) * k[e];
      abs_sum += std::fabs(static_cast<double>(q[e]) * k[e]);
    }
    s[static_cast<std::size_t>(j)] = dot * scale;
    abs_dot[static_cast<std::size_t>(j)] = abs_sum * scale;
    m = std::max(m, dot * scale);
    max_ds = std::max(max_ds, (d + 2) * kU * abs_sum * scale);
  }
  const int tiles = (n + a.tile - 1) / a.tile + chunks;  // a chunk starts at a tile boundary
  const double merge_eps = chunks > 1 ? (6 + chunks) * kU : 0.0;
  RefOut r;
  r.o.assign(static_cast<std::size_t>(d), 0.0);
  r.bound.assign(static_cast<std::size_t>(d), 0.0);
  std::vector<double> w(static_cast<std::size_t>(n)), eps(static_cast<std::size_t>(n));
  double L = 0.0;
  for (int j = 0; j < n; ++j) {
    w[static_cast<std::size_t>(j)] = std::exp(s[static_cast<std::size_t>(j)] - m);
    eps[static_cast<std::size_t>(j)] = 2 * max_ds + kU * (m - s[static_cast<std::size_t>(j)]) +
                                       4 * kU + 5 * kU * tiles + merge_eps;
    L += w[static_cast<std::size_t>(j)];
  }
  for (int e = 0; e < d; ++e) {
    double num = 0.0;
    for (int j = 0; j < n; ++j) {
      num += w[static_cast<std::size_t>(j)] * v_rows(p, g)[static_cast<std::size_t>(key_begin + j) * d + e];
    }
    r.o[static_cast<std::size_t>(e)] = num / L;
  }
  for (int e = 0; e < d; ++e) {
    const double o = std::fabs(r.o[static_cast<std::size_t>(e)]);
    double weighted = 0.0, abs_terms = 0.0;
    for (int j = 0; j < n; ++j) {
      const double v = std::fabs(v_rows(p, g)[static_cast<std::size_t>(key_begin + j) * d + e]);
      weighted += w[static_cast<std::size_t>(j)] * eps[static_cast<std::size_t>(j)] * (v + o);
      abs_terms += w[static_cast<std::size_t>(j)] * v;
    }
    const double first_order =
        (weighted + (n + 1 + chunks) * kU * (abs_terms + L * o)) / L + 2 * kU * o;
    r.bound[static_cast<std::size_t>(e)] = 2.0 * first_order;  // x2: second-order terms
  }
  return r;
}

// Checks the O rows [row0, row0 + rows) of KV head g against the reference; the keys of row
// i are [0, pos0 + i + 1) (an item over all its keys) or [0, keys) split in `chunks`.
void expect_rows(const Problem& p, const std::vector<float>& O, int row0, int rows, int g,
                 int pos0, int chunks, const std::string& what) {
  const AttnShape& a = p.shape;
  const int d = a.head_dim;
  const std::size_t qw = static_cast<std::size_t>(a.heads) * d;
  int failures = 0;
  double worst_ratio = 0.0;
  for (int i = 0; i < rows; ++i) {
    for (int hg = 0; hg < a.group; ++hg) {
      const int h = g * a.group + hg;
      const RefOut r = reference(p, row0 + i, h, 0, pos0 + i + 1, chunks);
      for (int e = 0; e < d; ++e) {
        const double got = O[(row0 + i) * qw + static_cast<std::size_t>(h) * d + e];
        const double err = std::fabs(got - r.o[static_cast<std::size_t>(e)]);
        const double bound = r.bound[static_cast<std::size_t>(e)];
        worst_ratio = std::max(worst_ratio, err / bound);
        EXPECT_LT(bound, 1e-3) << what << ": the bound must stay far below a real error";
        if (!(err <= bound) && ++failures <= 5) {
          ADD_FAILURE() << what << ": row " << row0 + i << " head " << h << " e " << e
                        << ": got " << got << ", exact " << r.o[static_cast<std::size_t>(e)]
                        << ", |error| " << err << " > bound " << bound;
        }
      }
    }
  }
  EXPECT_EQ(failures, 0) << what << " (worst error / bound " << worst_ratio << ")";
}

struct Case {
  int kv_heads, group, d, tile;
};

// Shapes through the kernel's paths: G = 1 and 5 (one query at a time), G = 4 and 8 (four
// query heads per pass), d with and without a vector tail, tiles of 8 keys (many tiles) and
// cpu_cached's own choice max(8, min(128, 4096 / d)).
const Case kCases[] = {{1, 1, 8, 8},  {2, 4, 16, 8},  {1, 5, 13, 8},
                       {2, 8, 64, 64}, {3, 2, 32, 128}, {1, 4, 24, 8}};

TEST(CpuAttention, DecodeRowsMatchTheDoubleLoop) {
  unsigned seed = 1;
  for (const Case& c : kCases) {
    for (int keys : {1, 7, 8, 9, 50, 200}) {
      for (float gain : {1.0f, 6.0f}) {
        const AttnShape a = make_shape(c.kv_heads, c.group, c.d, c.tile);
        // Three decode rows (of three sequences that share one K/V here), last KV head.
        const int n = 3, g = c.kv_heads - 1;
        Problem p = make_problem(a, c.kv_heads, n, keys, gain, seed++);
        std::vector<float> O(static_cast<std::size_t>(n) * a.heads * a.head_dim, kNaN);
        AttnScratch s;
        s.reserve(a.group, a.head_dim, a.tile);
        for (int row = 0; row < n; ++row) {
          AttnItem item;
          item.row0 = row;
          item.rows = 1;
          item.g = g;
          item.pos0 = keys - 1;
          item.key_end = keys;
          item.k = k_rows(p, g);
          item.v = v_rows(p, g);
          cpu::attend(a, item, p.Q.data(), p.q_stride, s);
          cpu::store_output(a, item, s, O.data());
        }
        for (int row = 0; row < n; ++row) {
          expect_rows(p, O, row, 1, g, keys - 1, 1,
                      "decode G=" + std::to_string(c.group) + " d=" + std::to_string(c.d) +
                          " tile=" + std::to_string(c.tile) + " keys=" + std::to_string(keys));
        }
      }
    }
  }
}

TEST(CpuAttention, PrefillBlocksKeepTheCausalLimit) {
  unsigned seed = 100;
  for (const Case& c : kCases) {
    for (int pos0 : {0, 5, 30}) {
      for (int rows : {1, 2, 4, 9}) {
        const AttnShape a = make_shape(c.kv_heads, c.group, c.d, c.tile);
        const int g = c.kv_heads - 1, row0 = 1, n = row0 + rows;
        // Keys >= pos0 + rows are NaN: row i must see exactly keys < pos0 + i + 1.
        Problem p = make_problem(a, c.kv_heads, n, pos0 + rows, 3.0f, seed++);
        std::vector<float> O(static_cast<std::size_t>(n) * a.heads * a.head_dim, kNaN);
        AttnScratch s;
        s.reserve(rows * a.group, a.head_dim, a.tile);
        AttnItem item;
        item.row0 = row0;
        item.rows = rows;
        item.g = g;
        item.pos0 = pos0;
        item.key_end = pos0 + rows;
        item.k = k_rows(p, g);
        item.v = v_rows(p, g);
        cpu::attend(a, item, p.Q.data(), p.q_stride, s);
        cpu::store_output(a, item, s, O.data());
        expect_rows(p, O, row0, rows, g, pos0, 1,
                    "prefill G=" + std::to_string(c.group) + " d=" + std::to_string(c.d) +
                        " pos0=" + std::to_string(pos0) + " rows=" + std::to_string(rows));
      }
    }
  }
}

TEST(CpuAttention, SplitKvChunksMergeToTheDoubleLoop) {
  unsigned seed = 200;
  for (const Case& c : kCases) {
    for (int keys : {9, 64, 300}) {
      for (int chunk_tiles : {1, 3}) {
        const AttnShape a = make_shape(c.kv_heads, c.group, c.d, c.tile);
        const int g = c.kv_heads - 1, n = 2, row = 1;
        Problem p = make_problem(a, c.kv_heads, n, keys, 6.0f, seed++);
        std::vector<float> O(static_cast<std::size_t>(n) * a.heads * a.head_dim, kNaN);
        AttnScratch s;
        s.reserve(a.group, a.head_dim, a.tile);
        const int chunk = chunk_tiles * a.tile;  // whole tiles, as cpu_cached plans them
        const int slots = (keys + chunk - 1) / chunk;
        std::vector<float> partials(static_cast<std::size_t>(slots) * cpu::partial_floats(a), kNaN);
        AttnMerge merge{row, g, 0, 0};
        for (int k0 = 0; k0 < keys; k0 += chunk) {
          AttnItem item;
          item.row0 = row;
          item.g = g;
          item.pos0 = keys - 1;
          item.key_begin = k0;
          item.key_end = std::min(keys, k0 + chunk);
          item.k = k_rows(p, g);
          item.v = v_rows(p, g);
          item.slot = merge.slots++;
          cpu::attend(a, item, p.Q.data(), p.q_stride, s);
          cpu::store_partial(a, item, s, partials.data());
        }
        ASSERT_EQ(merge.slots, slots);
        cpu::merge_partials(a, merge, partials.data(), O.data());
        expect_rows(p, O, row, 1, g, keys - 1, slots,
                    "split G=" + std::to_string(c.group) + " d=" + std::to_string(c.d) +
                        " keys=" + std::to_string(keys) + " chunks=" + std::to_string(slots));
        // The other KV heads' outputs and the other row stay untouched.
        const std::size_t qw = static_cast<std::size_t>(a.heads) * a.head_dim;
        for (std::size_t e = 0; e < qw; ++e) EXPECT_TRUE(std::isnan(O[e])) << "row 0 written";
      }
    }
  }
}

}  // namespace
}  // namespace kvbench
