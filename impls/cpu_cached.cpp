// cpu_cached: a K/V cache in plain C++, written to be memory-bandwidth bound.
//
// Storage: one allocation per sequence, sized from config().capacity when the sequence is
// created or forked and never grown:
//   [L, 2 (K then V), H_kv, capacity, d]   head-major, so one head's rows are contiguous.
// A step (decode of a batch, or a prefill) runs every layer over its N new rows:
//   1. q, k, v = W x for all N rows (each weight row read once per block of 4 rows);
//   2. k, v are written to the cache at each row's position (projected once, reused after);
//   3. attention per (query rows, KV head): the K and V rows of that head are streamed once
//      for the whole GQA group (and for a block of prefill rows), tile by tile, with an
//      online (running-max) softmax in fp32;
//   4. x += W_o o (residual), which is the next layer's input.
// Scratch buffers belong to the instance and grow only when a larger step than any before
// arrives, so steady-state decoding allocates nothing.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "harness/error.h"
#include "impls/cpu_kernels.h"
#include "impls/impls.h"

namespace kvbench {
namespace {

// ---- aligned storage -------------------------------------------------------------------

struct FreeDeleter {
  void operator()(float* p) const { std::free(p); }
};
using AlignedFloats = std::unique_ptr<float[], FreeDeleter>;

// Blocks of at least this size are aligned to it and, on Linux, asked to be backed by
// transparent huge pages: a long K/V stream then takes one TLB miss per 2 MiB, not per
// 4 KiB (where THP is in "madvise" mode, as on Debian, nothing else turns it on).
constexpr std::size_t kHugePage = std::size_t{2} << 20;

// RETURNS: the bytes allocate_floats(n) allocates.
std::size_t allocation_bytes(std::size_t n) {
  const std::size_t align = n * sizeof(float) >= kHugePage ? kHugePage : 64;
  return std::max(align, (n * sizeof(float) + align - 1) / align * align);
}

// RETURNS: n floats, 64-byte aligned, uninitialized (large blocks are mapped lazily by the
// OS, so capacity that is never written costs address space only).
AlignedFloats allocate_floats(std::size_t n) {
  const std::size_t bytes = allocation_bytes(n);
  const std::size_t align = bytes >= kHugePage ? kHugePage : 64;
  void* p = std::aligned_alloc(align, bytes);
  if (p == nullptr) fail("cpu_cached: cannot allocate ", bytes, " bytes for a sequence");
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (bytes >= kHugePage) madvise(p, bytes, MADV_HUGEPAGE);  // a hint: failure is harmless
#endif
  return AlignedFloats(static_cast<float*>(p));
}

// ---- a small persistent thread pool ----------------------------------------------------

// `threads - 1` workers plus the calling thread share each run(); items are claimed one at
// a time from an atomic counter, so uneven items balance themselves. A decode step is a
// few runs microseconds apart, so after a run the workers poll for up to kSpin before
// sleeping on a condition variable: handing a run to a polling worker is cheaper than
// waking a sleeping one (measured: 2 threads took 40 us for a step that 1 thread did in
// 20 us, when every run woke the workers from sleep). Polling yields the core at each
// turn, never pause-spins: on a shared machine a spinning thread took the core that the
// thread with the work needed (2 threads became 5x slower than 1 at load 6 on 2 cores).
class WorkerPool {
 public:
  explicit WorkerPool(int threads) {
    for (int w = 0; w + 1 < threads; ++w) workers_.emplace_back([this, w] { work(w); });
  }
  ~WorkerPool() {
    stop_.store(true, std::memory_order_relaxed);
    {
      std::lock_guard<std::mutex> lock(mu_);
      generation_.fetch_add(1, std::memory_order_release);  // publishes stop_
    }
    wake_.notify_all();
    for (std::thread& t : workers_) t.join();
  }
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // Calls fn(item, thread) for every item in [0, n), thread in [0, size()), and returns
  // when all calls have returned; on the calling thread alone when !parallel (work too
  // small to pay for the hand-off). fn must not throw.
  template <typename Fn>
  void run(int n, Fn& fn, bool parallel = true) {
    run_erased(
        n, [](void* f, int item, int thread) { (*static_cast<Fn*>(f))(item, thread); }, &fn,
        parallel);
  }

 private:
  using Call = void (*)(void*, int, int);
  static constexpr std::chrono::microseconds kSpin{50};

  void run_erased(int n, Call call, void* ctx, bool parallel) {
    if (workers_.empty() || n <= 1 || !parallel) {
      for (int i = 0; i < n; ++i) call(ctx, i, 0);
      return;
    }
    // No worker is inside a run here (the last one ended with busy_ == 0), so the fields
    // can be written; the release on generation_ publishes them.
    call_ = call;
    ctx_ = ctx;
    items_ = n;
    next_.store(0, std::memory_order_relaxed);
    busy_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
    {
      std::lock_guard<std::mutex> lock(mu_);  // so a worker about to sleep cannot miss it
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    drain(size() - 1);  // the caller is the last thread
    // The workers finish their last items about when the caller does.
    while (busy_.load(std::memory_order_acquire) != 0) std::this_thread::yield();
  }

  void drain(int thread) {
    for (int i = next_.fetch_add(1); i < items_; i = next_.fetch_add(1)) call_(ctx_, i, thread);
  }

  // RETURNS: once generation_ differs from `seen`: polling for kSpin, then asleep.
  std::uint64_t wait_for_run(std::uint64_t seen) {
    const auto until = std::chrono::steady_clock::now() + kSpin;
    do {
      const std::uint64_t now = generation_.load(std::memory_order_acquire);
      if (now != seen) return now;
      std::this_thread::yield();
    } while (std::chrono::steady_clock::now() < until);
    std::unique_lock<std::mutex> lock(mu_);
    wake_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
    return generation_.load(std::memory_order_acquire);
  }

  void work(int thread) {
    for (std::uint64_t seen = 0;;) {
      seen = wait_for_run(seen);
      if (stop_.load(std::memory_order_relaxed)) return;
      drain(thread);
      busy_.fetch_sub(1, std::memory_order_release);
    }
  }

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable wake_;  // a new run, or stop
  // The current run; written by the caller before generation_ moves, read by workers after.
  Call call_ = nullptr;
  void* ctx_ = nullptr;
  int items_ = 0;
  std::atomic<int> next_{0};
  std::atomic<int> busy_{0};  // workers still inside the current run
  std::atomic<std::uint64_t> generation_{0};
  std::atomic<bool> stop_{false};
};

// ---- kernels: impls/cpu_kernels.h ----------------------------------------------------

using namespace kernels;  // NOLINT: this file is the kernels' main user

// ---- attention ----------------------------------------------------------------------

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

// Runs `item`: gathers its queries from Q (row i at Q + i * q_stride, H*d floats), streams
// the K/V tiles once for all of them, and leaves the unnormalized state (m, l, acc) for its
// rows * G queries in `s`.
KVBENCH_HOT void attend(const AttnShape& a, const AttnItem& item, const float* Q, std::size_t q_stride,
            AttnScratch& s) {
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
  for (int j0 = item.key_begin; j0 < item.key_end; j0 += tile) {
    const int j1 = std::min(j0 + tile, item.key_end);
    const float* kt = item.k + static_cast<std::size_t>(j0) * d;
    const float* vt = item.v + static_cast<std::size_t>(j0) * d;
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
        if (width == 4) {
          score_tile_4q(q, kt, valid, d, tile, p);
        } else {
          score_tile(q, kt, valid, d, blocked, p);
        }
        for (int i = 0; i < width; ++i) {
          add_tile_to_softmax(p + static_cast<std::size_t>(i) * tile, valid, d, s.m[r + i],
                              s.l[r + i], acc + static_cast<std::size_t>(i) * d);
        }
        if (width == 4) {
          accumulate_tile_4q(p, tile, vt, valid, d, acc);
        } else {
          accumulate_tile(p, vt, valid, d, blocked, acc);
        }
      }
      r += width;
    }
  }
}

// Floats of one partial state of G queries: m [G], l [G], acc [G, d].
inline std::size_t partial_floats(const AttnShape& a) {
  return static_cast<std::size_t>(a.group) * (a.head_dim + 2);
}

// Copies the item's state (one decode row: G queries) to its slot of `partials`.
void store_partial(const AttnShape& a, const AttnItem& item, const AttnScratch& s,
                   float* partials) {
  const int G = a.group, d = a.head_dim;
  float* dst = partials + static_cast<std::size_t>(item.slot) * partial_floats(a);
  std::copy_n(s.m.data(), G, dst);
  std::copy_n(s.l.data(), G, dst + G);
  std::copy_n(s.acc.data(), static_cast<std::size_t>(G) * d, dst + 2 * G);
}

// Combines the chunks' states of `merge` into o = sum_c e^(m_c - m) acc_c / sum_c e^(m_c - m) l_c
// (m = max_c m_c) and writes it into O [N, H*d].
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

// Writes o = acc / l for the item's queries into O [N, H*d].
void store_output(const AttnShape& a, const AttnItem& item, const AttnScratch& s, float* O) {
  const int d = a.head_dim, G = a.group;
  const std::size_t qw = static_cast<std::size_t>(a.heads) * d;
  for (int r = 0; r < item.rows * G; ++r) {
    float* dst = O + (item.row0 + r / G) * qw + (static_cast<std::size_t>(item.g) * G + r % G) * d;
    const float* acc = s.acc.data() + static_cast<std::size_t>(r) * d;
    const float inv = 1.0f / s.l[r];
    for (int e = 0; e < d; ++e) dst[e] = acc[e] * inv;
  }
}

// ---- the cache --------------------------------------------------------------------------

class CpuCachedCache final : public KvCache {
 public:
  CpuCachedCache(std::shared_ptr<const ModelWeights> model, const ImplOptions& options);

 private:
  struct Sequence {
    AlignedFloats kv;  // [L, 2, H_kv, capacity, d]
    int length = 0;
  };

  // One layer's weights, repacked at construction into huge-page-backed blocks (the
  // weights are the biggest stream of a decode step for wide models).
  struct LayerPack {
    AlignedFloats wqkv;  // [H*d + 2*H_kv*d, d_model]: W_q, W_k, W_v stacked
    AlignedFloats wo;    // [d_model, H*d]
  };

  // Rows [r0, r1) of a weight matrix: one projection work item.
  struct RowBlock {
    int r0, r1;
  };

  void do_create(SeqId id) override;
  void do_prefill(SeqId id, const float* x, int n, float* out) override;
  void do_decode(const std::vector<SeqId>& ids, const float* x, float* out) override;
  void do_fork(SeqId parent, SeqId child) override;
  void do_drop(SeqId id) override { seqs_.erase(id); }
  void do_truncate(SeqId id, int length) override;
  bool holds_kv_cache() const override { return true; }
  KvRows do_read_kv(SeqId id, int layer, int kv_head) const override;
  Memory memory_in_use() const override;

  std::size_t head_floats() const {  // one (layer, K|V, head) block: [capacity, d]
    return static_cast<std::size_t>(config().capacity) * config().head_dim;
  }
  std::size_t sequence_floats() const {
    return 2u * config().layers * config().kv_heads * head_floats();
  }
  // [capacity, d] rows of K (kind 0) or V (kind 1) for (layer, g).
  float* head_rows(const Sequence& s, int layer, int kind, int g) const {
    return s.kv.get() + ((static_cast<std::size_t>(layer) * 2 + kind) * config().kv_heads + g) *
                            head_floats();
  }
  // Fills positions [from, capacity) of every head block with quiet NaN (poison_unused).
  void poison_from(const Sequence& s, int from) const;
  Sequence new_sequence() const;

  // Makes room for a step of n rows.
  void reserve_rows(int n);
  // Runs all layers over the n rows staged in x_ (row i of sequence rows_[i] at position
  // pos_[i]); leaves the outputs in x_.
  void run_step(int n);
  void write_kv(int layer, int n);
  void plan_attention(int layer, int n);
  // Most keys per chunk when decode rows are split across threads (0: no split).
  int split_target(int n) const;
  // Whether applying weights of `bytes` to n rows is worth handing to the pool.
  static bool worth_threads(std::uint64_t bytes, int n) {
    return bytes * static_cast<std::uint64_t>((n + 3) / 4) >= kMinParallelBytes;
  }
  // A phase that streams less than this (~10 us at 25 GB/s) runs on the calling thread:
  // splitting it would save less than the hand-off costs.
  static constexpr std::uint64_t kMinParallelBytes = 256 * 1024;
  // Splits a matrix [rows, cols] into blocks of rows small enough to stay in L2 while
  // each block is applied to every row of a step.
  static std::vector<RowBlock> row_blocks(int rows, int cols, int threads);

  AttnShape shape_;
  WorkerPool pool_;
  std::uint64_t qkv_work_ = 0;        // bytes of [W_q; W_k; W_v] of one layer
  std::uint64_t out_work_ = 0;        // bytes of W_o of one layer
  std::uint64_t attention_work_ = 0;  // bytes of K/V this layer's attention reads
  int prefill_block_;  // rows of one sequence that share a pass over its K/V in a prefill
  std::map<SeqId, Sequence> seqs_;

  // Work lists that depend on the weights only, per layer.
  std::vector<LayerPack> packed_;       // [L]
  std::vector<RowBlock> qkv_blocks_;    // of LayerPack::wqkv
  std::vector<RowBlock> out_blocks_;    // of LayerPack::wo

  // Step scratch, grown to the largest step seen.
  int rows_reserved_ = 0;
  std::vector<float> x_;                // [N, d_model] residual stream
  std::vector<float> qkv_;              // [N, H*d + 2*H_kv*d]
  std::vector<float> o_;                // [N, H*d] attention outputs
  std::vector<Sequence*> rows_;         // [N]
  std::vector<int> pos_;                // [N]
  std::vector<AttnItem> items_;         // this layer's attention work
  std::vector<AttnMerge> merges_;       // split decode rows to combine
  std::vector<float> partials_;         // [slots, G * (d + 2)] split-KV partial states
  std::vector<AttnScratch> scratch_;    // [threads]
};

CpuCachedCache::CpuCachedCache(std::shared_ptr<const ModelWeights> model,
                               const ImplOptions& options)
    : KvCache("cpu_cached", std::move(model), options), pool_(options.threads) {
  const ModelConfig& c = config();
  require(c.dtype == DType::f32, "cpu_cached: dtype ", dtype_name(c.dtype),
          " is not supported (cpu_cached stores fp32 only)");
  shape_.heads = c.heads;
  shape_.group = c.group_size();
  shape_.head_dim = c.head_dim;
  // A K tile of <= 16 KiB stays in L1 while every query of the item reads it.
  shape_.tile = std::max(8, std::min(128, 4096 / c.head_dim));
  shape_.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  // Up to 64 queries (rows x group) share one pass over K/V in a prefill block.
  prefill_block_ = std::max(1, 64 / shape_.group);
  scratch_.resize(static_cast<std::size_t>(pool_.size()));
  for (AttnScratch& s : scratch_) s.reserve(prefill_block_ * shape_.group, c.head_dim, shape_.tile);

  qkv_work_ = static_cast<std::uint64_t>(c.q_width() + 2 * c.kv_width()) * c.d_model * 4u;
  out_work_ = static_cast<std::uint64_t>(c.d_model) * c.q_width() * 4u;
  const int qkv_rows = c.q_width() + 2 * c.kv_width();
  for (const LayerWeights& w : weights().layers) {
    // [W_q; W_k; W_v] stacked, so one product fills a qkv_ row: q, then k, then v.
    LayerPack pack;
    pack.wqkv = allocate_floats(static_cast<std::size_t>(qkv_rows) * c.d_model);
    float* dst = std::copy(w.wq.begin(), w.wq.end(), pack.wqkv.get());
    dst = std::copy(w.wk.begin(), w.wk.end(), dst);
    std::copy(w.wv.begin(), w.wv.end(), dst);
    pack.wo = allocate_floats(w.wo.size());
    std::copy(w.wo.begin(), w.wo.end(), pack.wo.get());
    packed_.push_back(std::move(pack));
  }
  qkv_blocks_ = row_blocks(qkv_rows, c.d_model, pool_.size());
  out_blocks_ = row_blocks(c.d_model, c.q_width(), pool_.size());
}

std::vector<CpuCachedCache::RowBlock> CpuCachedCache::row_blocks(int rows, int cols,
                                                                 int threads) {
  // 256 KiB of weights per block: long sequential runs for a decode step, and still in L2
  // while a prefill applies the block to all its rows (measured on llama2-7b shapes, 1 and
  // 2 threads: 64 KiB blocks were 5-15% slower, 1 MiB no better). At least 4 blocks per
  // thread, so that small matrices still spread.
  const int per_thread = (rows + 4 * threads - 1) / (4 * threads);
  const int block = std::max(1, std::min(65536 / cols, per_thread));
  std::vector<RowBlock> blocks;
  for (int r0 = 0; r0 < rows; r0 += block) blocks.push_back(RowBlock{r0, std::min(rows, r0 + block)});
  return blocks;
}

// ---- sequences ----------------------------------------------------------------------------

CpuCachedCache::Sequence CpuCachedCache::new_sequence() const {
  Sequence s;
  s.kv = allocate_floats(sequence_floats());
  if (options().poison_unused) poison_from(s, 0);
  return s;
}

void CpuCachedCache::poison_from(const Sequence& s, int from) const {
  const ModelConfig& c = config();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (int l = 0; l < c.layers; ++l) {
    for (int kind = 0; kind < 2; ++kind) {
      for (int g = 0; g < c.kv_heads; ++g) {
        float* rows = head_rows(s, l, kind, g);
        std::fill(rows + static_cast<std::size_t>(from) * c.head_dim, rows + head_floats(), nan);
      }
    }
  }
}

void CpuCachedCache::do_create(SeqId id) { seqs_[id] = new_sequence(); }

void CpuCachedCache::do_fork(SeqId parent, SeqId child) {
  const ModelConfig& c = config();
  const Sequence& from = seqs_.at(parent);
  Sequence s = new_sequence();
  s.length = from.length;
  const std::size_t used = static_cast<std::size_t>(from.length) * c.head_dim;
  for (int l = 0; l < c.layers; ++l) {
    for (int kind = 0; kind < 2; ++kind) {
      for (int g = 0; g < c.kv_heads; ++g) {
        std::copy_n(head_rows(from, l, kind, g), used, head_rows(s, l, kind, g));
      }
    }
  }
  seqs_[child] = std::move(s);
}

void CpuCachedCache::do_truncate(SeqId id, int length) {
  Sequence& s = seqs_.at(id);
  s.length = length;
  if (options().poison_unused) poison_from(s, length);
}

KvRows CpuCachedCache::do_read_kv(SeqId id, int layer, int kv_head) const {
  const Sequence& s = seqs_.at(id);
  KvRows rows;
  rows.length = s.length;
  rows.head_dim = config().head_dim;
  const std::size_t used = static_cast<std::size_t>(s.length) * config().head_dim;
  const float* k = head_rows(s, layer, 0, kv_head);
  const float* v = head_rows(s, layer, 1, kv_head);
  rows.k.assign(k, k + used);
  rows.v.assign(v, v + used);
  return rows;
}

KvCache::Memory CpuCachedCache::memory_in_use() const {
  // held: 2 * L * H_kv * d * T * 4 per sequence; reserved: the capacity-sized allocations.
  const std::uint64_t per_token = config().kv_bytes_per_token();
  Memory m;
  for (const auto& entry : seqs_) {
    m.held += per_token * static_cast<std::uint64_t>(entry.second.length);
    m.reserved += allocation_bytes(sequence_floats());
  }
  return m;
}

// ---- steps --------------------------------------------------------------------------------

void CpuCachedCache::reserve_rows(int n) {
  if (n <= rows_reserved_) return;
  const ModelConfig& c = config();
  const std::size_t rows = static_cast<std::size_t>(n);
  x_.resize(rows * c.d_model);
  qkv_.resize(rows * (c.q_width() + 2 * c.kv_width()));
  o_.resize(rows * c.q_width());
  rows_.resize(rows);
  pos_.resize(rows);
  // One item per (row, KV head), plus the chunks of split rows: split_target() makes chunks
  // of >= 1/(4 * threads) of all keys, so splitting adds at most 4 * threads items.
  items_.reserve(rows * c.kv_heads + 4u * static_cast<std::size_t>(pool_.size()));
  merges_.reserve(rows * c.kv_heads);
  rows_reserved_ = n;
}

void CpuCachedCache::do_prefill(SeqId id, const float* x, int n, float* out) {
  const std::size_t width = static_cast<std::size_t>(config().d_model);
  reserve_rows(n);
  Sequence& s = seqs_.at(id);
  std::copy_n(x, static_cast<std::size_t>(n) * width, x_.data());
  for (int i = 0; i < n; ++i) {
    rows_[static_cast<std::size_t>(i)] = &s;
    pos_[static_cast<std::size_t>(i)] = s.length + i;
  }
  run_step(n);
  s.length += n;
  std::copy_n(x_.data(), static_cast<std::size_t>(n) * width, out);
}

void CpuCachedCache::do_decode(const std::vector<SeqId>& ids, const float* x, float* out) {
  const int n = static_cast<int>(ids.size());
  const std::size_t width = static_cast<std::size_t>(config().d_model);
  reserve_rows(n);
  std::copy_n(x, static_cast<std::size_t>(n) * width, x_.data());
  for (int i = 0; i < n; ++i) {
    Sequence& s = seqs_.at(ids[static_cast<std::size_t>(i)]);
    rows_[static_cast<std::size_t>(i)] = &s;
    pos_[static_cast<std::size_t>(i)] = s.length;
  }
  run_step(n);
  for (int i = 0; i < n; ++i) ++rows_[static_cast<std::size_t>(i)]->length;
  std::copy_n(x_.data(), static_cast<std::size_t>(n) * width, out);
}

void CpuCachedCache::run_step(int n) {
  const ModelConfig& c = config();
  const std::size_t qkv_width = static_cast<std::size_t>(c.q_width() + 2 * c.kv_width());
  std::uint64_t keys = 0;  // sum over rows of the keys each row's queries see
  for (int i = 0; i < n; ++i) keys += static_cast<std::uint64_t>(pos_[i]) + 1;

  for (int l = 0; l < c.layers; ++l) {
    const LayerPack& w = packed_[static_cast<std::size_t>(l)];
    auto project_qkv = [&](int i, int) {
      const RowBlock& b = qkv_blocks_[static_cast<std::size_t>(i)];
      project_rows(w.wqkv.get(), c.d_model, b.r0, b.r1, x_.data(), c.d_model, n, qkv_.data(),
                   qkv_width, false);
    };
    pool_.run(static_cast<int>(qkv_blocks_.size()), project_qkv, worth_threads(qkv_work_, n));
    write_kv(l, n);
    counters().kv_projection_rows += static_cast<std::uint64_t>(n);

    plan_attention(l, n);
    auto attend_item = [&](int i, int thread) {
      const AttnItem& item = items_[static_cast<std::size_t>(i)];
      AttnScratch& s = scratch_[static_cast<std::size_t>(thread)];
      attend(shape_, item, qkv_.data(), qkv_width, s);  // q: the first H*d columns
      if (item.slot < 0) {
        store_output(shape_, item, s, o_.data());
      } else {
        store_partial(shape_, item, s, partials_.data());
      }
    };
    pool_.run(static_cast<int>(items_.size()), attend_item, attention_work_ >= kMinParallelBytes);
    for (const AttnMerge& merge : merges_) {
      merge_partials(shape_, merge, partials_.data(), o_.data());
    }
    for (const AttnItem& item : items_) {
      counters().kv_bytes_read += static_cast<std::uint64_t>(item.key_end - item.key_begin) *
                                  2u * c.head_dim * sizeof(float);
    }
    counters().qk_dot_products += keys * static_cast<std::uint64_t>(c.heads);

    // x += W_o o: the residual stream becomes the next layer's input.
    auto project_out = [&](int i, int) {
      const RowBlock& b = out_blocks_[static_cast<std::size_t>(i)];
      project_rows(w.wo.get(), c.q_width(), b.r0, b.r1, o_.data(), c.q_width(), n, x_.data(),
                   c.d_model, true);
    };
    pool_.run(static_cast<int>(out_blocks_.size()), project_out, worth_threads(out_work_, n));
  }
}

void CpuCachedCache::write_kv(int layer, int n) {
  const ModelConfig& c = config();
  const int d = c.head_dim;
  const std::size_t qkv_width = static_cast<std::size_t>(c.q_width() + 2 * c.kv_width());
  for (int i = 0; i < n; ++i) {
    const float* row = qkv_.data() + static_cast<std::size_t>(i) * qkv_width + c.q_width();
    const std::size_t at = static_cast<std::size_t>(pos_[i]) * d;
    for (int g = 0; g < c.kv_heads; ++g) {
      std::copy_n(row + g * d, d, head_rows(*rows_[i], layer, 0, g) + at);
      std::copy_n(row + c.kv_width() + g * d, d, head_rows(*rows_[i], layer, 1, g) + at);
    }
  }
}

int CpuCachedCache::split_target(int n) const {
  const int threads = pool_.size();
  std::uint64_t keys = 0;
  for (int i = 0; i < n; ++i) keys += static_cast<std::uint64_t>(pos_[i]) + 1;
  keys *= static_cast<std::uint64_t>(config().kv_heads);
  const std::uint64_t bytes = keys * 2u * config().head_dim * sizeof(float);
  if (threads == 1 || bytes < kMinParallelBytes) return 0;
  // Aim at >= 4 items per thread so that dynamic claiming evens out the ends, but keep
  // chunks long (>= 512 keys) so the merge and the item overhead stay negligible.
  const std::uint64_t want = (keys + 4u * threads - 1) / (4u * threads);
  return static_cast<int>(std::min<std::uint64_t>(std::max<std::uint64_t>(512, want),
                                                  static_cast<std::uint64_t>(config().capacity)));
}

void CpuCachedCache::plan_attention(int layer, int n) {
  const ModelConfig& c = config();
  const int target = split_target(n);
  items_.clear();
  merges_.clear();
  attention_work_ = 0;
  int slots = 0;
  for (int i = 0; i < n;) {
    // A block: consecutive rows of one sequence at consecutive positions (a prefill).
    int rows = 1;
    while (i + rows < n && rows < prefill_block_ && rows_[i + rows] == rows_[i] &&
           pos_[i + rows] == pos_[i] + rows) {
      ++rows;
    }
    const int keys = pos_[i] + rows;
    for (int g = 0; g < c.kv_heads; ++g) {
      AttnItem item;
      item.row0 = i;
      item.rows = rows;
      item.g = g;
      item.pos0 = pos_[i];
      item.k = head_rows(*rows_[i], layer, 0, g);
      item.v = head_rows(*rows_[i], layer, 1, g);
      attention_work_ += static_cast<std::uint64_t>(keys) * rows * 2u * c.head_dim * 4u;
      if (rows > 1 || target == 0 || keys <= target) {
        item.key_end = keys;
        items_.push_back(item);
        continue;
      }
      // Split-KV: one decode row's keys in equal chunks (whole tiles), combined by a merge.
      const int pieces = (keys + target - 1) / target;
      const int chunk = ((keys + pieces - 1) / pieces + shape_.tile - 1) / shape_.tile * shape_.tile;
      merges_.push_back(AttnMerge{i, g, slots, 0});
      for (int k0 = 0; k0 < keys; k0 += chunk) {
        item.key_begin = k0;
        item.key_end = std::min(keys, k0 + chunk);
        item.slot = slots++;
        ++merges_.back().slots;
        items_.push_back(item);
      }
    }
    i += rows;
  }
  const std::size_t need = static_cast<std::size_t>(slots) * partial_floats(shape_);
  if (partials_.size() < need) partials_.resize(need);
  // Longest items first, so the last ones claimed are short and threads finish together.
  if (pool_.size() > 1) {
    std::sort(items_.begin(), items_.end(), [](const AttnItem& a, const AttnItem& b) {
      return a.rows * (a.key_end - a.key_begin) > b.rows * (b.key_end - b.key_begin);
    });
  }
}

}  // namespace

void register_cpu_cached(Registry& registry) {
  ImplInfo info;
  info.name = "cpu_cached";
  info.description =
      "fp32 K/V cache preallocated per sequence, head-major rows, online-softmax attention";
  info.device = "cpu";
  info.caps.holds_kv_cache = true;
  info.caps.fork = true;
  info.caps.truncate = true;
  info.caps.threads = true;
  info.caps.dtypes = {DType::f32};
  // One attention item per (row, KV head) serves the whole GQA group; split-KV chunks of a
  // row add up to its keys, so threads do not change the count.
  info.caps.kv_read_model = KvReadModel::per_kv_head;
  info.create = [](std::shared_ptr<const ModelWeights> weights, const ImplOptions& options) {
    return std::unique_ptr<KvCache>(new CpuCachedCache(std::move(weights), options));
  };
  registry.add(std::move(info));
}

}  // namespace kvbench
