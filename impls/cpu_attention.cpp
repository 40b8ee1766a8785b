// cpu_attention: see cpu_attention.h.
#include "impls/cpu_attention.h"

#include <algorithm>
#include <cstddef>
#include <limits>
#include <type_traits>

#include "impls/cpu_kernels.h"

namespace kvbench {
namespace cpu {

using namespace kernels;  // NOLINT: the kernels' building blocks

namespace {

// p[j] = q . k_j for the n rows k_j of kt [n, d].
KVBENCH_INLINE void score_tile(const float* q, const float* kt, int n, int d, bool blocked,
                               float* p) {
  int j = 0;
  if (blocked) {
    for (; j + 4 <= n; j += 4) {
      const float* k0 = kt + static_cast<std::size_t>(j) * d;
      dot4(q, k0, k0 + d, k0 + 2 * d, k0 + 3 * d, d, p + j);
    }
  }
  for (; j < n; ++j) p[j] = dot(q, kt + static_cast<std::size_t>(j) * d, d);
}

// acc += sum_j p[j] v_j over the n rows v_j of vt [n, d], in order of j (row by row, in
// memory order: a column-chunked pass with acc in registers measured slower, since it
// walks the tile with a stride).
KVBENCH_INLINE void accumulate_tile(const float* p, const float* vt, int n, int d, bool blocked,
                                    float* acc) {
  int j = 0;
  if (blocked) {
    for (; j + 4 <= n; j += 4) {
      const float* v0 = vt + static_cast<std::size_t>(j) * d;
      axpy4(acc, v0, v0 + d, v0 + 2 * d, v0 + 3 * d, p + j, d);
    }
  }
  for (; j < n; ++j) axpy(acc, vt + static_cast<std::size_t>(j) * d, p[j], d);
}

// p_i[j] = q_i . k_j for four queries q_i = q + i * d and the n rows k_j of kt [n, d]:
// each K row is loaded once for the four. p_i starts at p + i * p_stride.
KVBENCH_INLINE void score_tile_4q(const float* q, const float* kt, int n, int d, int p_stride,
                                  float* p) {
  for (int j = 0; j < n; ++j) {
    float out[4];
    dot4(kt + static_cast<std::size_t>(j) * d, q, q + d, q + 2 * d, q + 3 * d, d, out);
    for (int i = 0; i < 4; ++i) p[static_cast<std::size_t>(i) * p_stride + j] = out[i];
  }
}

// acc_i += sum_j p_i[j] v_j for four accumulators acc_i = acc + i * d (p_i as above): each
// V row is loaded once for the four.
KVBENCH_INLINE void accumulate_tile_4q(const float* p, int p_stride, const float* vt, int n,
                                       int d, float* acc) {
  for (int j = 0; j < n; ++j) {
    const float* v = vt + static_cast<std::size_t>(j) * d;
    axpy_to4(acc, d, v, p[j], p[p_stride + j], p[2 * p_stride + j], p[3 * p_stride + j], d);
  }
}

// Online softmax: folds one tile's scores p [n] into the running (m, l, acc [d]) of one
// query. Leaves p[j] = exp(score_j - m_new), the weights of the tile's V rows.
KVBENCH_INLINE void add_tile_to_softmax(float* p, int n, int d, float& m, float& l, float* acc) {
  const float m_new = std::max(m, max_of(p, n));
  const float correction = exp_nonpositive(m - m_new);  // rescales what the old max weighted
  for (int j = 0; j < n; ++j) p[j] -= m_new;
  exp_nonpositive(p, n);
  l = l * correction + sum(p, n);
  m = m_new;
  if (correction != 1.0f) {
    for (int e = 0; e < d; ++e) acc[e] *= correction;
  }
}

// Where key j's rows are: contiguous (cpu_cached: item.k, item.v) or in blocks (paged).
// BlockedRows::segment() sets k and v to the rows of keys j, j + 1, ... and RETURNS how
// many of the next n keys follow there contiguously (up to the block's end).
struct ContiguousRows {};

struct BlockedRows {
  KVBENCH_INLINE static int segment(const AttnItem& item, int j, int n, int d, const float*& k,
                                    const float*& v) {
    const int B = item.block_rows;
    const int in_block = j % B;
    const float* base = item.blocks[j / B] + static_cast<std::size_t>(in_block) * d;
    k = base + item.k_offset;
    v = base + item.v_offset;
    return std::min(n, B - in_block + item.overread);
  }
};

// The attention of one item (see attend in cpu_attention.h), over rows found by `Rows`.
template <class Rows>
KVBENCH_INLINE void attend_rows(const AttnShape& a, const AttnItem& item, const float* Q,
                                std::size_t q_stride, AttnScratch& s) {
  const int d = a.head_dim, G = a.group, nq = item.rows * G, tile = a.tile;
  for (int i = 0; i < item.rows; ++i) {
    const float* src = Q + (item.row0 + i) * q_stride + static_cast<std::size_t>(item.g) * G * d;
    float* dst = s.q.data() + static_cast<std::size_t>(i) * G * d;
    for (int e = 0; e < G * d; ++e) dst[e] = src[e] * a.scale;
  }
  std::fill(s.m.begin(), s.m.begin() + nq, -std::numeric_limits<float>::infinity());
  std::fill(s.l.begin(), s.l.begin() + nq, 0.0f);
  std::fill(s.acc.begin(), s.acc.begin() + static_cast<std::size_t>(nq) * d, 0.0f);

  // A prefill block reuses each tile for many queries from L1: there, four keys per pass
  // over a query (and four V rows per pass over acc) save loads. A decode row reads each
  // tile once from memory, and one row at a time streams it fastest (measured: 1.1 ms
  // against 1.6 ms per step for T = 16384, d = 64).
  const bool blocked = item.rows > 1;
  constexpr bool kContiguous = std::is_same_v<Rows, ContiguousRows>;
  for (int j0 = item.key_begin; j0 < item.key_end; j0 += tile) {
    const int j1 = std::min(j0 + tile, item.key_end);
    const float* kt = kContiguous ? item.k + static_cast<std::size_t>(j0) * d : nullptr;
    const float* vt = kContiguous ? item.v + static_cast<std::size_t>(j0) * d : nullptr;
    for (int r = 0; r < nq;) {
      // Query r (row r / G) sees keys < limit; in this tile, the first `valid` of them.
      const int limit = item.pos0 + r / G + 1;
      const int valid = std::min(j1, limit) - j0;
      // Four query heads of one row (of one GQA group) read each K and V row once for all
      // four, unless a prefill block already shares the tile between its rows.
      const int width = !blocked && r + 4 <= nq && r / G == (r + 3) / G ? 4 : 1;
      if (valid > 0) {
        const float* q = s.q.data() + static_cast<std::size_t>(r) * d;
        float* p = s.scores.data() + static_cast<std::size_t>(r) * tile;  // [width, tile]
        float* acc = s.acc.data() + static_cast<std::size_t>(r) * d;       // [width, d]
        // Scores, then the weighted V rows, segment by segment: one per block the tile
        // touches for blocked rows; contiguous rows are the tile at once, as the code
        // cpu_cached ran before blocks existed (the same instructions).
        if constexpr (kContiguous) {
          if (width == 4) {
            score_tile_4q(q, kt, valid, d, tile, p);
          } else {
            score_tile(q, kt, valid, d, blocked, p);
          }
        } else {
          for (int off = 0; off < valid;) {
            const float *ks, *vs;
            const int n = Rows::segment(item, j0 + off, valid - off, d, ks, vs);
            if (width == 4) {
              score_tile_4q(q, ks, n, d, tile, p + off);
            } else {
              score_tile(q, ks, n, d, blocked, p + off);
            }
            off += n;
          }
        }
        for (int i = 0; i < width; ++i) {
          add_tile_to_softmax(p + static_cast<std::size_t>(i) * tile, valid, d, s.m[r + i],
                              s.l[r + i], acc + static_cast<std::size_t>(i) * d);
        }
        if constexpr (kContiguous) {
          if (width == 4) {
            accumulate_tile_4q(p, tile, vt, valid, d, acc);
          } else {
            accumulate_tile(p, vt, valid, d, blocked, acc);
          }
        } else {
          for (int off = 0; off < valid;) {
            const float *ks, *vs;
            const int n = Rows::segment(item, j0 + off, valid - off, d, ks, vs);
            if (width == 4) {
              accumulate_tile_4q(p + off, tile, vs, n, d, acc);
            } else {
              accumulate_tile(p + off, vs, n, d, blocked, acc);
            }
            off += n;
          }
        }
      }
      r += width;
    }
  }
}

}  // namespace

KVBENCH_HOT void attend(const AttnShape& a, const AttnItem& item, const float* Q,
                        std::size_t q_stride, AttnScratch& s) {
  attend_rows<ContiguousRows>(a, item, Q, q_stride, s);
}

KVBENCH_HOT void attend_blocks(const AttnShape& a, const AttnItem& item, const float* Q,
                               std::size_t q_stride, AttnScratch& s) {
  attend_rows<BlockedRows>(a, item, Q, q_stride, s);
}

KVBENCH_HOT void merge_partials(const AttnShape& a, const AttnMerge& merge, const float* partials,
                    float* O) {
  const int G = a.group, d = a.head_dim;
  const std::size_t stride = partial_floats(a);
  const std::size_t qw = static_cast<std::size_t>(a.heads) * d;
  for (int h = 0; h < G; ++h) {
    float m = -std::numeric_limits<float>::infinity();
    for (int c = 0; c < merge.slots; ++c) {
      m = std::max(m, partials[(merge.slot0 + c) * stride + h]);
    }
    float* o = O + merge.row * qw + (static_cast<std::size_t>(merge.g) * G + h) * d;
    std::fill(o, o + d, 0.0f);
    float l = 0.0f;
    for (int c = 0; c < merge.slots; ++c) {
      const float* part = partials + (merge.slot0 + c) * stride;
      const float w = exp_nonpositive(part[h] - m);
      l += w * part[G + h];
      axpy(o, part + 2 * G + static_cast<std::size_t>(h) * d, w, d);
    }
    const float inv = 1.0f / l;
    for (int e = 0; e < d; ++e) o[e] *= inv;
  }
}


}  // namespace cpu
}  // namespace kvbench
