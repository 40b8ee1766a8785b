// cpu_attention: the attention kernels of cpu_cached and paged (internal to impls/): per
// (rows, KV head) online-softmax attention over cached K/V rows, streamed tile by tile in
// fp32, and the split-KV merge of partial states. The rows are contiguous (attend:
// cpu_cached's [capacity, d] per head) or in fixed-size blocks reached through a block
// table (attend_blocks: paged); both run the same tiles and the same online softmax, a
// tile that spans blocks being scored and accumulated block segment by block segment.
// Tested alone in tests/impls/test_cpu_attention.cpp.
#ifndef KVBENCH_IMPLS_CPU_ATTENTION_H_
#define KVBENCH_IMPLS_CPU_ATTENTION_H_

#include <algorithm>
#include <cstddef>
#include <vector>

#include "impls/cpu_kernels.h"  // KVBENCH_HOT

namespace kvbench {
namespace cpu {

// One unit of attention work: `rows` consecutive rows of one sequence (positions pos0,
// pos0 + 1, ...), all G query heads of KV head g, over keys [key_begin, key_end).
// Row i sees keys < pos0 + i + 1 (causal). A decode row's keys may be split into chunks
// (split-KV, as in flash-decoding): each chunk leaves its partial softmax state in `slot`
// and a merge combines them.
struct AttnItem {
  int row0 = 0;        // first row of the step (index into Q and O)
  int rows = 1;
  int g = 0;           // KV head
  int pos0 = 0;
  int key_begin = 0;
  int key_end = 0;     // <= pos0 + rows
  const float* k = nullptr;  // [capacity, d] this sequence's K rows of (layer, g)
  const float* v = nullptr;  // [capacity, d]
  int slot = -1;       // -1: the item covers all keys of its rows; else its partial state
  // attend_blocks only (k and v unused): key j's K row is at
  //   blocks[j / block_rows] + k_offset + (j % block_rows) * d,
  // its V row the same with v_offset (blocks: the sequence's block data pointers, in token
  // order). `overread` (a planted bug of the suite's tests, 0 otherwise) makes each block
  // segment one key longer, reading past the block's rows.
  const float* const* blocks = nullptr;
  std::size_t k_offset = 0;
  std::size_t v_offset = 0;
  int block_rows = 0;
  int overread = 0;
};

// The chunks [slot0, slot0 + slots) of one decode row's KV head g, to combine.
struct AttnMerge {
  int row = 0;
  int g = 0;
  int slot0 = 0;
  int slots = 0;
};

// Per-thread working memory of the attention kernel (nq = rows * G queries at most).
struct AttnScratch {
  std::vector<float> q;       // [nq, d] the item's queries, scaled by 1/sqrt(d)
  std::vector<float> scores;  // [nq, tile]
  std::vector<float> m;       // [nq] running max of the scores
  std::vector<float> l;       // [nq] running sum of exp(score - m)
  std::vector<float> acc;     // [nq, d] running sum of exp(score - m) * v

  void reserve(int nq, int d, int tile) {
    q.resize(static_cast<std::size_t>(nq) * d);
    scores.resize(static_cast<std::size_t>(nq) * tile);
    m.resize(static_cast<std::size_t>(nq));
    l.resize(static_cast<std::size_t>(nq));
    acc.resize(static_cast<std::size_t>(nq) * d);
  }
};

// Shapes one attention pass needs.
struct AttnShape {
  int heads;      // H
  int group;      // G = H / H_kv
  int head_dim;   // d
  int tile;       // keys per tile: a K tile of tile * d floats stays in L1
  float scale;    // 1 / sqrt(d)
};

// Runs `item`: gathers its queries from Q (row i at Q + i * q_stride, H*d floats), streams
// the K/V tiles once for all of them, and leaves the unnormalized state (m, l, acc) for its
// rows * G queries in `s`.
// KVBENCH_HOT (an AVX2/FMA clone where the CPU has it), defined in cpu_attention.cpp.
void attend(const AttnShape& a, const AttnItem& item, const float* Q, std::size_t q_stride,
            AttnScratch& s);
// The same over blocked K/V rows (AttnItem::blocks). KVBENCH_HOT.
void attend_blocks(const AttnShape& a, const AttnItem& item, const float* Q,
                   std::size_t q_stride, AttnScratch& s);

// Floats of one partial state of G queries: m [G], l [G], acc [G, d].
inline std::size_t partial_floats(const AttnShape& a) {
  return static_cast<std::size_t>(a.group) * (a.head_dim + 2);
}

// Copies the item's state (one decode row: G queries) to its slot of `partials`.
inline void store_partial(const AttnShape& a, const AttnItem& item, const AttnScratch& s,
                          float* partials) {
  const int G = a.group, d = a.head_dim;
  float* dst = partials + static_cast<std::size_t>(item.slot) * partial_floats(a);
  std::copy_n(s.m.data(), G, dst);
  std::copy_n(s.l.data(), G, dst + G);
  std::copy_n(s.acc.data(), static_cast<std::size_t>(G) * d, dst + 2 * G);
}

// Combines the chunks' states of `merge` into o = sum_c e^(m_c - m) acc_c / sum_c e^(m_c - m) l_c
// (m = max_c m_c) and writes it into O [N, H*d].
// KVBENCH_HOT, defined in cpu_attention.cpp.
void merge_partials(const AttnShape& a, const AttnMerge& merge, const float* partials, float* O);

// Writes o = acc / l for the item's queries into O [N, H*d].
inline void store_output(const AttnShape& a, const AttnItem& item, const AttnScratch& s, float* O) {
  const int d = a.head_dim, G = a.group;
  const std::size_t qw = static_cast<std::size_t>(a.heads) * d;
  for (int r = 0; r < item.rows * G; ++r) {
    float* dst = O + (item.row0 + r / G) * qw + (static_cast<std::size_t>(item.g) * G + r % G) * d;
    const float* acc = s.acc.data() + static_cast<std::size_t>(r) * d;
    const float inv = 1.0f / s.l[r];
    for (int e = 0; e < d; ++e) dst[e] = acc[e] * inv;
  }
}

}  // namespace cpu
}  // namespace kvbench

#endif  // KVBENCH_IMPLS_CPU_ATTENTION_H_
