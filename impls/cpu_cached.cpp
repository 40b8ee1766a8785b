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
// The thread pool is impls/cpu_thread_pool.h, the attention kernels impls/cpu_attention.h.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "harness/aligned_buffer.h"
#include "harness/error.h"
#include "impls/cpu_attention.h"
#include "impls/cpu_kernels.h"
#include "impls/cpu_thread_pool.h"
#include "impls/impls.h"

namespace kvbench {
namespace {

// ---- aligned storage: harness/aligned_buffer.h (the bench's read-only reference is held
// the same way, so that the bandwidth it measures applies to this K/V) ---------------------

using AlignedFloats = std::unique_ptr<float[], FreeDeleter>;

// RETURNS: the bytes allocate_floats(n) allocates.
std::size_t allocation_bytes(std::size_t n) { return aligned_allocation_bytes(n * sizeof(float)); }

// RETURNS: n floats, uninitialized (allocate_aligned).
AlignedFloats allocate_floats(std::size_t n) {
  return AlignedFloats(reinterpret_cast<float*>(
      allocate_aligned(n * sizeof(float), "cpu_cached: a sequence or weight block").release()));
}

// ---- kernels: impls/cpu_kernels.h, impls/cpu_attention.h, impls/cpu_thread_pool.h -----

using kernels::project_rows;
using cpu::AttnItem;
using cpu::AttnMerge;
using cpu::AttnScratch;
using cpu::AttnShape;
using cpu::attend;
using cpu::merge_partials;
using cpu::partial_floats;
using cpu::store_output;
using cpu::store_partial;
using cpu::WorkerPool;

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
  // Writes the first huge page of every head block (see new_sequence).
  void prefault_first_rows(const Sequence& s) const;
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
  if (options().poison_unused) {
    poison_from(s, 0);
  } else {
    prefault_first_rows(s);
  }
  return s;
}

// The block is mapped lazily, and its head-major layout puts each (layer, K|V, head) block
// capacity rows apart: the first token a sequence decodes touches 2 L H_kv distinct pages
// (huge pages, where THP grants them: 2 MiB each to zero). Left to the first decode steps,
// that first-touch cost made a short generation look sublinear (bench: at T = 16 on the
// default shape, ~15 huge-page faults per generation). Creating the sequence now writes the
// first huge page of every block (one write per 4 KiB page, so 4 KiB pages are covered too):
// a cost of creation, which the bench times apart from the decode steps as setup. The
// later pages (past 2 MiB / (d x 4) positions) still fault when first reached, amortized.
void CpuCachedCache::prefault_first_rows(const Sequence& s) const {
  const ModelConfig& c = config();
  const std::size_t floats = std::min(head_floats(), kHugePageBytes / sizeof(float));
  constexpr std::size_t kStride = 4096 / sizeof(float);
  for (int l = 0; l < c.layers; ++l) {
    for (int kind = 0; kind < 2; ++kind) {
      for (int g = 0; g < c.kv_heads; ++g) {
        float* rows = head_rows(s, l, kind, g);
        for (std::size_t i = 0; i < floats; i += kStride) rows[i] = 0.0f;
      }
    }
  }
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
