// paged: a K/V cache whose rows live in a pool of fixed-size blocks (vLLM's PagedAttention
// design, on the CPU), the base that prefix caching builds on.
//
// Storage: one BlockPool per instance (impls/paged_pool.h). A block holds block_size tokens
// of every layer's K and V: L x 2 (K then V) x H_kv sub-arrays of [block_size, d], each
// contiguous; the pool's slabs lay the blocks out per sub-array, so that blocks taken one
// after the other hold one head's rows contiguously, as cpu_cached's head-major rows. A
// sequence is a block table. Blocks are taken when a write reaches them, so nothing is
// reserved per sequence: a sequence of T tokens holds ceil(T / block_size) blocks, of
// which only the last is partly filled.
//   fork:     the child's table shares the parent's blocks (reference counts), no copy;
//             the partly filled last block is copied the first time either side writes to
//             it (copy-on-write); full blocks stay shared for good.
//   truncate: releases the blocks past the kept length; drop releases all of them; a
//             block returns to the free list when its count reaches 0.
//   budget:   ImplOptions::kv_budget_bytes caps the pool at floor(budget / block bytes)
//             blocks. A prefill or decode first counts the blocks its writes need (copies
//             included) and throws Error if they are not available, before it changes
//             anything; only then are blocks taken and rows written.
// A step is cpu_cached's step (impls/cpu_cached.cpp): the same projections (cpu_kernels.h),
// the same items, split-KV chunks for threads and merges; the attention kernel is
// attend_blocks (cpu_attention.h), cpu_cached's tiles and online softmax over a block
// table. bytes_held is blocks_in_use x the bytes of one block; bytes_reserved the slabs.
#include "impls/paged.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
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

using AlignedFloats = std::unique_ptr<float[], FreeDeleter>;
using cpu::AttnItem;
using cpu::AttnMerge;
using cpu::AttnScratch;
using cpu::AttnShape;
using cpu::WorkerPool;
using kernels::project_rows;
using paged::BlockLayout;
using paged::BlockPool;
using paged::BlockTable;
using paged::Fault;
using paged::PendingWrite;

AlignedFloats allocate_floats(std::size_t n) {
  return AlignedFloats(reinterpret_cast<float*>(
      allocate_aligned(n * sizeof(float), "paged: a weight block").release()));
}

// RETURNS: a * b, or throws Error naming `what` when it passes 64 bits.
std::uint64_t checked_mul(std::uint64_t a, std::uint64_t b, const char* what) {
  std::uint64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r)) fail("paged: ", what, " overflows 64 bits");
  return r;
}

BlockLayout layout_of(const ModelConfig& c, int block_size) {
  BlockLayout l;
  l.arrays = 2 * c.layers * c.kv_heads;
  l.rows = block_size;
  l.row_floats = c.head_dim;
  return l;
}

// Bytes of one block: block_size x L x 2 x H_kv x d x 4, checked.
std::uint64_t block_bytes_of(const ModelConfig& c, int block_size) {
  std::uint64_t b = checked_mul(static_cast<std::uint64_t>(block_size),
                                static_cast<std::uint64_t>(c.layers) * 2u, "the block size");
  b = checked_mul(b, static_cast<std::uint64_t>(c.kv_heads), "the block size");
  b = checked_mul(b, static_cast<std::uint64_t>(c.head_dim), "the block size");
  return checked_mul(b, sizeof(float), "the block size");
}

// The block count the budget allows (0: unlimited), or Error when it cannot hold one block.
std::uint64_t max_blocks_of(const ModelConfig& c, const ImplOptions& o) {
  require(o.block_size >= 1, "paged: block_size must be >= 1 (tokens per block), got ",
          o.block_size);
  const std::uint64_t block = block_bytes_of(c, o.block_size);
  if (o.kv_budget_bytes == 0) return 0;
  require(o.kv_budget_bytes >= block, "paged: kv_budget_bytes ", o.kv_budget_bytes,
          " cannot hold one block of ", block, " bytes (block_size ", o.block_size, " x L ",
          c.layers, " x 2 x H_kv ", c.kv_heads, " x d ", c.head_dim, " x 4)");
  return o.kv_budget_bytes / block;
}

class PagedCache final : public KvCache {
 public:
  PagedCache(std::shared_ptr<const ModelWeights> model, const ImplOptions& options, Fault fault,
             const char* name);

 private:
  struct LayerPack {
    AlignedFloats wqkv;  // [H*d + 2*H_kv*d, d_model]: W_q, W_k, W_v stacked
    AlignedFloats wo;    // [d_model, H*d]
  };
  struct RowBlock {
    int r0, r1;
  };

  void do_create(SeqId id) override { seqs_[id] = BlockTable{}; }
  void do_prefill(SeqId id, const float* x, int n, float* out) override;
  void do_decode(const std::vector<SeqId>& ids, const float* x, float* out) override;
  void do_fork(SeqId parent, SeqId child) override;
  void do_drop(SeqId id) override;
  void do_truncate(SeqId id, int length) override;
  bool holds_kv_cache() const override { return true; }
  KvRows do_read_kv(SeqId id, int layer, int kv_head) const override;
  Memory memory_in_use() const override;

  // Sub-array of (layer, K|V, g) in a block (the pool's layout order).
  int array_of(int layer, int kind, int g) const {
    return (layer * 2 + kind) * config().kv_heads + g;
  }
  // Takes the blocks the writes need (Error naming what it needed, what was free and the
  // budget when they do not fit; nothing changed then), copy-on-write included.
  void reserve_blocks(const std::vector<PendingWrite>& writes, const char* op);
  void reserve_rows(int n);
  void run_step(int n);
  void write_kv(int layer, int n);
  void plan_attention(int layer, int n);
  int split_target(int n) const;
  static bool worth_threads(std::uint64_t bytes, int n) {
    return bytes * static_cast<std::uint64_t>((n + 3) / 4) >= kMinParallelBytes;
  }
  static constexpr std::uint64_t kMinParallelBytes = 256 * 1024;
  static std::vector<RowBlock> row_blocks(int rows, int cols, int threads);

  const int block_size_;
  const std::uint64_t block_bytes_;
  BlockPool blocks_;
  AttnShape shape_;
  WorkerPool pool_;
  std::uint64_t qkv_work_ = 0;
  std::uint64_t out_work_ = 0;
  std::uint64_t attention_work_ = 0;
  int prefill_block_;
  std::map<SeqId, BlockTable> seqs_;

  std::vector<LayerPack> packed_;
  std::vector<RowBlock> qkv_blocks_;
  std::vector<RowBlock> out_blocks_;

  int rows_reserved_ = 0;
  std::vector<float> x_;             // [N, d_model] residual stream
  std::vector<float> qkv_;           // [N, H*d + 2*H_kv*d]
  std::vector<float> o_;             // [N, H*d]
  std::vector<BlockTable*> rows_;    // [N]
  std::vector<int> pos_;             // [N]
  std::vector<AttnItem> items_;
  std::vector<AttnMerge> merges_;
  std::vector<float> partials_;
  std::vector<AttnScratch> scratch_;
  std::vector<PendingWrite> writes_;  // this step's writes, for reserve_blocks
};

PagedCache::PagedCache(std::shared_ptr<const ModelWeights> model, const ImplOptions& options,
                       Fault fault, const char* name)
    : KvCache(name, std::move(model), options),
      block_size_(options.block_size),
      block_bytes_(block_bytes_of(config(), std::max(1, options.block_size))),
      blocks_(layout_of(config(), std::max(1, options.block_size)),
              max_blocks_of(config(), options), options.poison_unused, fault),
      pool_(options.threads) {
  const ModelConfig& c = config();
  require(c.dtype == DType::f32, "paged: dtype ", dtype_name(c.dtype),
          " is not supported (paged stores fp32 only)");
  shape_.heads = c.heads;
  shape_.group = c.group_size();
  shape_.head_dim = c.head_dim;
  shape_.tile = std::max(8, std::min(128, 4096 / c.head_dim));
  shape_.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  prefill_block_ = std::max(1, 64 / shape_.group);
  scratch_.resize(static_cast<std::size_t>(pool_.size()));
  for (AttnScratch& s : scratch_) s.reserve(prefill_block_ * shape_.group, c.head_dim, shape_.tile);

  qkv_work_ = static_cast<std::uint64_t>(c.q_width() + 2 * c.kv_width()) * c.d_model * 4u;
  out_work_ = static_cast<std::uint64_t>(c.d_model) * c.q_width() * 4u;
  const int qkv_rows = c.q_width() + 2 * c.kv_width();
  for (const LayerWeights& w : weights().layers) {
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

// As cpu_cached: 256 KiB of weights per block, at least 4 blocks per thread.
std::vector<PagedCache::RowBlock> PagedCache::row_blocks(int rows, int cols, int threads) {
  const int per_thread = (rows + 4 * threads - 1) / (4 * threads);
  const int block = std::max(1, std::min(65536 / cols, per_thread));
  std::vector<RowBlock> blocks;
  for (int r0 = 0; r0 < rows; r0 += block) blocks.push_back(RowBlock{r0, std::min(rows, r0 + block)});
  return blocks;
}

// ---- sequences ----------------------------------------------------------------------------

void PagedCache::do_fork(SeqId parent, SeqId child) {
  BlockTable t;
  blocks_.fork(seqs_.at(parent), t);
  seqs_[child] = std::move(t);
}

void PagedCache::do_drop(SeqId id) {
  blocks_.drop(seqs_.at(id));
  seqs_.erase(id);
}

void PagedCache::do_truncate(SeqId id, int length) { blocks_.truncate(seqs_.at(id), length); }

KvRows PagedCache::do_read_kv(SeqId id, int layer, int kv_head) const {
  const BlockTable& t = seqs_.at(id);
  const int d = config().head_dim;
  const std::size_t k_off = blocks_.array_offset(array_of(layer, 0, kv_head));
  const std::size_t v_off = blocks_.array_offset(array_of(layer, 1, kv_head));
  KvRows rows;
  rows.length = t.length;
  rows.head_dim = d;
  rows.k.reserve(static_cast<std::size_t>(t.length) * d);
  rows.v.reserve(static_cast<std::size_t>(t.length) * d);
  for (int j0 = 0; j0 < t.length; j0 += block_size_) {
    const std::size_t n = static_cast<std::size_t>(std::min(block_size_, t.length - j0)) * d;
    const float* block = t.data[static_cast<std::size_t>(j0 / block_size_)];
    rows.k.insert(rows.k.end(), block + k_off, block + k_off + n);
    rows.v.insert(rows.v.end(), block + v_off, block + v_off + n);
  }
  return rows;
}

KvCache::Memory PagedCache::memory_in_use() const {
  Memory m;
  m.blocks_in_use = blocks_.in_use();
  m.blocks_free = blocks_.free_blocks();
  m.held = m.blocks_in_use * block_bytes_;
  m.reserved = blocks_.bytes_allocated();
  return m;
}

void PagedCache::reserve_blocks(const std::vector<PendingWrite>& writes, const char* op) {
  const std::uint64_t need = blocks_.blocks_needed(writes);
  const std::uint64_t free = blocks_.available();
  if (need > free) {
    if (blocks_.fault() == Fault::half_write) {
      // Planted: takes what it can before noticing (the bug the budget property catches).
      for (const PendingWrite& w : writes) {
        if (blocks_.blocks_needed({w}) > blocks_.available()) break;
        blocks_.prepare_write(*w.table, w.n);
      }
    }
    fail(name(), ".", op, ": needs ", need, " more blocks of ", block_bytes_, " bytes, ", free,
         " free of the budget's ", blocks_.max_blocks(), " blocks (kv_budget_bytes ",
         options().kv_budget_bytes, ", block_size ", block_size_, ")");
  }
  const std::uint64_t copies = blocks_.cow_copies();
  for (const PendingWrite& w : writes) blocks_.prepare_write(*w.table, w.n);
  counters().cow_copies += blocks_.cow_copies() - copies;
}

// ---- steps --------------------------------------------------------------------------------

void PagedCache::reserve_rows(int n) {
  if (n <= rows_reserved_) return;
  const ModelConfig& c = config();
  const std::size_t rows = static_cast<std::size_t>(n);
  x_.resize(rows * c.d_model);
  qkv_.resize(rows * (c.q_width() + 2 * c.kv_width()));
  o_.resize(rows * c.q_width());
  rows_.resize(rows);
  pos_.resize(rows);
  items_.reserve(rows * c.kv_heads + 4u * static_cast<std::size_t>(pool_.size()));
  merges_.reserve(rows * c.kv_heads);
  writes_.reserve(rows);
  rows_reserved_ = n;
}

void PagedCache::do_prefill(SeqId id, const float* x, int n, float* out) {
  BlockTable& t = seqs_.at(id);
  writes_.assign(1, PendingWrite{&t, n});
  reserve_blocks(writes_, "prefill");  // before anything else changes
  const std::size_t width = static_cast<std::size_t>(config().d_model);
  reserve_rows(n);
  std::copy_n(x, static_cast<std::size_t>(n) * width, x_.data());
  for (int i = 0; i < n; ++i) {
    rows_[static_cast<std::size_t>(i)] = &t;
    pos_[static_cast<std::size_t>(i)] = t.length + i;
  }
  run_step(n);
  t.length += n;
  std::copy_n(x_.data(), static_cast<std::size_t>(n) * width, out);
}

void PagedCache::do_decode(const std::vector<SeqId>& ids, const float* x, float* out) {
  const int n = static_cast<int>(ids.size());
  writes_.clear();
  for (SeqId id : ids) writes_.push_back(PendingWrite{&seqs_.at(id), 1});
  reserve_blocks(writes_, "decode");
  const std::size_t width = static_cast<std::size_t>(config().d_model);
  reserve_rows(n);
  std::copy_n(x, static_cast<std::size_t>(n) * width, x_.data());
  for (int i = 0; i < n; ++i) {
    BlockTable& t = seqs_.at(ids[static_cast<std::size_t>(i)]);
    rows_[static_cast<std::size_t>(i)] = &t;
    pos_[static_cast<std::size_t>(i)] = t.length;
  }
  run_step(n);
  for (int i = 0; i < n; ++i) ++rows_[static_cast<std::size_t>(i)]->length;
  std::copy_n(x_.data(), static_cast<std::size_t>(n) * width, out);
}

void PagedCache::run_step(int n) {
  const ModelConfig& c = config();
  const std::size_t qkv_width = static_cast<std::size_t>(c.q_width() + 2 * c.kv_width());
  std::uint64_t keys = 0;
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
      cpu::attend_blocks(shape_, item, qkv_.data(), qkv_width, s);
      if (item.slot < 0) {
        cpu::store_output(shape_, item, s, o_.data());
      } else {
        cpu::store_partial(shape_, item, s, partials_.data());
      }
    };
    pool_.run(static_cast<int>(items_.size()), attend_item, attention_work_ >= kMinParallelBytes);
    for (const AttnMerge& merge : merges_) {
      cpu::merge_partials(shape_, merge, partials_.data(), o_.data());
    }
    for (const AttnItem& item : items_) {
      counters().kv_bytes_read += static_cast<std::uint64_t>(item.key_end - item.key_begin) *
                                  2u * c.head_dim * sizeof(float);
    }
    counters().qk_dot_products += keys * static_cast<std::uint64_t>(c.heads);

    auto project_out = [&](int i, int) {
      const RowBlock& b = out_blocks_[static_cast<std::size_t>(i)];
      project_rows(w.wo.get(), c.q_width(), b.r0, b.r1, o_.data(), c.q_width(), n, x_.data(),
                   c.d_model, true);
    };
    pool_.run(static_cast<int>(out_blocks_.size()), project_out, worth_threads(out_work_, n));
  }
}

void PagedCache::write_kv(int layer, int n) {
  const ModelConfig& c = config();
  const int d = c.head_dim;
  const std::size_t qkv_width = static_cast<std::size_t>(c.q_width() + 2 * c.kv_width());
  for (int i = 0; i < n; ++i) {
    const float* row = qkv_.data() + static_cast<std::size_t>(i) * qkv_width + c.q_width();
    const int p = pos_[static_cast<std::size_t>(i)];
    float* block = rows_[static_cast<std::size_t>(i)]->data[static_cast<std::size_t>(p / block_size_)];
    const std::size_t at = static_cast<std::size_t>(p % block_size_) * d;
    for (int g = 0; g < c.kv_heads; ++g) {
      std::copy_n(row + g * d, d, block + blocks_.array_offset(array_of(layer, 0, g)) + at);
      std::copy_n(row + c.kv_width() + g * d, d,
                  block + blocks_.array_offset(array_of(layer, 1, g)) + at);
    }
  }
}

int PagedCache::split_target(int n) const {
  const int threads = pool_.size();
  std::uint64_t keys = 0;
  for (int i = 0; i < n; ++i) keys += static_cast<std::uint64_t>(pos_[i]) + 1;
  keys *= static_cast<std::uint64_t>(config().kv_heads);
  const std::uint64_t bytes = keys * 2u * config().head_dim * sizeof(float);
  if (threads == 1 || bytes < kMinParallelBytes) return 0;
  const std::uint64_t want = (keys + 4u * threads - 1) / (4u * threads);
  return static_cast<int>(std::min<std::uint64_t>(std::max<std::uint64_t>(512, want),
                                                  static_cast<std::uint64_t>(config().capacity)));
}

void PagedCache::plan_attention(int layer, int n) {
  const ModelConfig& c = config();
  const int target = split_target(n);
  const int overread = blocks_.fault() == Fault::boundary_off_by_one ? 1 : 0;
  items_.clear();
  merges_.clear();
  attention_work_ = 0;
  int slots = 0;
  for (int i = 0; i < n;) {
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
      item.blocks = rows_[i]->data.data();
      item.k_offset = blocks_.array_offset(array_of(layer, 0, g));
      item.v_offset = blocks_.array_offset(array_of(layer, 1, g));
      item.block_rows = block_size_;
      item.overread = overread;
      attention_work_ += static_cast<std::uint64_t>(keys) * rows * 2u * c.head_dim * 4u;
      if (rows > 1 || target == 0 || keys <= target) {
        item.key_end = keys;
        items_.push_back(item);
        continue;
      }
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
  const std::size_t need = static_cast<std::size_t>(slots) * cpu::partial_floats(shape_);
  if (partials_.size() < need) partials_.resize(need);
  if (pool_.size() > 1) {
    std::sort(items_.begin(), items_.end(), [](const AttnItem& a, const AttnItem& b) {
      return a.rows * (a.key_end - a.key_begin) > b.rows * (b.key_end - b.key_begin);
    });
  }
}

}  // namespace

std::unique_ptr<KvCache> make_paged_cache(std::shared_ptr<const ModelWeights> weights,
                                          const ImplOptions& options, paged::Fault fault,
                                          const char* name) {
  return std::unique_ptr<KvCache>(new PagedCache(std::move(weights), options, fault, name));
}

void register_paged(Registry& registry) {
  ImplInfo info;
  info.name = "paged";
  info.description =
      "fp32 K/V in a block pool (block_size tokens of every layer per block), block tables, "
      "copy-on-write fork, memory budget; cpu_cached's kernels";
  info.device = "cpu";
  info.caps.holds_kv_cache = true;
  info.caps.fork = true;
  info.caps.truncate = true;
  info.caps.threads = true;
  info.caps.blocks = true;
  info.caps.gated = false;  // not in ci/baseline.json yet
  info.caps.dtypes = {DType::f32};
  info.caps.kv_read_model = KvReadModel::per_kv_head;
  info.create = [](std::shared_ptr<const ModelWeights> weights, const ImplOptions& options) {
    return make_paged_cache(std::move(weights), options);
  };
  registry.add(std::move(info));
}

}  // namespace kvbench
