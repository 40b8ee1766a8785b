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
// A step is cpu_cached's step, the same code (impls/cpu_decoder.h): the same projections,
// items, split-KV chunks for threads and merges; its kernel is attend_blocks
// (cpu_attention.h), cpu_cached's tiles and online softmax over a block table, and this
// file says where a position's rows are (the decoder's KvStore). bytes_held is blocks_in_use
// x the bytes of one block; bytes_reserved the slabs (and a prefix cache's kept rows).
//
// prefix_cached is the same class with the pool's prefix index on (paged_pool.h): every row
// written also keeps its input and output row beside its block; a full block is indexed
// under a hash chained over its predecessor's and its input rows. A prefill onto a table at a
// block boundary first takes the indexed blocks that continue it with the prompt's full
// blocks (content and predecessor checked: a collision is a miss), then computes only the
// rows after them; the reused rows' outputs are the kept ones (PrefillRows::last needs none).
// The budget check counts the reused cached blocks as taken before anything changes. Blocks
// no table holds stay cached, evicted least recently released when the pool needs one.
#include "impls/paged.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <map>
#include <sstream>
#include <string>
#include <memory>
#include <utility>
#include <vector>

#include "harness/aligned_buffer.h"
#include "harness/error.h"
#include "impls/cpu_attention.h"
#include "impls/cpu_decoder.h"
#include "impls/impls.h"

namespace kvbench {
namespace {

using cpu::AttnItem;
using paged::BlockLayout;
using paged::BlockPool;
using paged::BlockTable;
using paged::Fault;
using paged::PendingWrite;

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

class PagedCache final : public KvCache, private cpu::KvStore {
 public:
  PagedCache(std::shared_ptr<const ModelWeights> model, const ImplOptions& options, Fault fault,
             const char* name, bool prefix);

 private:
  void do_create(SeqId id) override { seqs_[id] = BlockTable{}; }
  void do_prefill(SeqId id, const float* x, int n, float* out) override {
    prefill_rows(id, x, n, out, true);
  }
  void do_prefill_last(SeqId id, const float* x, int n, float* out) override {
    prefill_rows(id, x, n, out, false);
  }
  // A prefill; out holds every row's output (all_rows) or the last row's.
  void prefill_rows(SeqId id, const float* x, int n, float* out, bool all_rows);
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
  // RETURNS: "" when `need` blocks can be taken once `revived` cached blocks (a prefix hit's)
  // are back in use, else the budget error naming what was needed, free and the budget.
  std::string over_budget(std::uint64_t need, std::uint64_t revived, const char* op) const;
  // Prefix caches: keeps the input and output rows of the n staged rows beside their blocks.
  void keep_rows(const BlockTable& t, int from_pos, const float* x, const float* y, int n);
  // The decoder's KvStore: position pos of a table is row pos % block_size of its block
  // pos / block_size, in each (layer, K|V, g) sub-array.
  void write(const void* seq, int layer, int pos, const float* k, const float* v) override;
  void address(const void* seq, int layer, AttnItem& item) const override;

  const bool prefix_;  // prefix_cached: the pool's prefix index is on
  const int block_size_;
  const std::uint64_t block_bytes_;
  BlockPool blocks_;
  cpu::Decoder decoder_;
  std::map<SeqId, BlockTable> seqs_;

  std::vector<PendingWrite> writes_;  // this step's writes, for reserve_blocks
};

paged::PrefixSetup prefix_setup(const ModelConfig& c, const ImplOptions& o, bool enabled) {
  paged::PrefixSetup p;
  p.enabled = enabled;
  p.row_floats = c.d_model;
  p.hash_bits = o.prefix_hash_bits;
  return p;
}

PagedCache::PagedCache(std::shared_ptr<const ModelWeights> model, const ImplOptions& options,
                       Fault fault, const char* name, bool prefix)
    : KvCache(name, std::move(model), options),
      prefix_(prefix),
      block_size_(options.block_size),
      block_bytes_(block_bytes_of(config(), std::max(1, options.block_size))),
      blocks_(layout_of(config(), std::max(1, options.block_size)),
              max_blocks_of(config(), options), options.poison_unused, fault,
              prefix_setup(config(), options, prefix)),
      decoder_(config(), weights(), options.threads, cpu::Decoder::Kernel::blocks, "paged") {}

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
  m.blocks_cached = blocks_.cached_blocks();
  m.held = m.blocks_in_use * block_bytes_;
  // The slabs, and a prefix cache's input and output rows kept beside them.
  m.reserved = blocks_.bytes_allocated() + blocks_.side_bytes();
  return m;
}

std::string PagedCache::over_budget(std::uint64_t need, std::uint64_t revived,
                                    const char* op) const {
  const std::uint64_t available = blocks_.available();
  const std::uint64_t free = available - std::min(available, revived);
  if (need <= free) return "";
  std::ostringstream msg;
  msg << name() << "." << op << ": needs " << need << " more blocks of " << block_bytes_
      << " bytes, " << free << " free of the budget's " << blocks_.max_blocks()
      << " blocks (kv_budget_bytes " << options().kv_budget_bytes << ", block_size "
      << block_size_
      << (prefix_ ? "; cached blocks count as free: they are evicted to make room" : "")
      << ")";
  return msg.str();
}

void PagedCache::reserve_blocks(const std::vector<PendingWrite>& writes, const char* op) {
  const std::uint64_t need = blocks_.blocks_needed(writes);
  const std::string over = over_budget(need, 0, op);
  if (!over.empty()) {
    if (blocks_.fault() == Fault::half_write) {
      // Planted: takes what it can before noticing (the bug the budget property catches).
      for (const PendingWrite& w : writes) {
        if (blocks_.blocks_needed({w}) > blocks_.available()) break;
        blocks_.prepare_write(*w.table, w.n);
      }
    }
    fail(over);
  }
  const std::uint64_t copies = blocks_.cow_copies();
  const std::uint64_t evictions = blocks_.evictions();
  for (const PendingWrite& w : writes) blocks_.prepare_write(*w.table, w.n);
  counters().cow_copies += blocks_.cow_copies() - copies;
  counters().evictions += blocks_.evictions() - evictions;
}

void PagedCache::keep_rows(const BlockTable& t, int from_pos, const float* x, const float* y,
                           int n) {
  if (!prefix_) return;
  const std::size_t dm = static_cast<std::size_t>(config().d_model);
  for (int i = 0; i < n; ++i) {
    const int p = from_pos + i;
    const paged::BlockId b = t.ids[static_cast<std::size_t>(p / block_size_)];
    std::copy_n(x + i * dm, dm, blocks_.input_row(b, p % block_size_));
    std::copy_n(y + i * dm, dm, blocks_.output_row(b, p % block_size_));
  }
}

// ---- steps --------------------------------------------------------------------------------

void PagedCache::write(const void* seq, int layer, int pos, const float* k, const float* v) {
  const BlockTable& t = *static_cast<const BlockTable*>(seq);
  const int d = config().head_dim;
  float* block = t.data[static_cast<std::size_t>(pos / block_size_)];
  const std::size_t at = static_cast<std::size_t>(pos % block_size_) * d;
  for (int g = 0; g < config().kv_heads; ++g) {
    std::copy_n(k + g * d, d, block + blocks_.array_offset(array_of(layer, 0, g)) + at);
    std::copy_n(v + g * d, d, block + blocks_.array_offset(array_of(layer, 1, g)) + at);
  }
}

void PagedCache::address(const void* seq, int layer, AttnItem& item) const {
  const BlockTable& t = *static_cast<const BlockTable*>(seq);
  item.blocks = t.data.data();
  item.k_offset = blocks_.array_offset(array_of(layer, 0, item.g));
  item.v_offset = blocks_.array_offset(array_of(layer, 1, item.g));
  item.block_rows = block_size_;
  item.overread = blocks_.fault() == Fault::boundary_off_by_one ? 1 : 0;
}

void PagedCache::prefill_rows(SeqId id, const float* x, int n, float* out, bool all_rows) {
  BlockTable& t = seqs_.at(id);
  const int from = t.length;
  const std::size_t width = static_cast<std::size_t>(config().d_model);
  // A prefix cache reuses the indexed blocks that continue this table with the prompt's
  // full blocks; only the rows after them are computed.
  const std::vector<paged::BlockId> hits = blocks_.match(t, x, n);
  const int h = static_cast<int>(hits.size()) * block_size_;
  const int rest = n - h;
  if (!hits.empty()) {
    // Before anything changes: the hits leave the cached blocks, the rest takes new ones
    // (the table is at a block boundary, so nothing is copied).
    const std::uint64_t need = (static_cast<std::uint64_t>(rest) + block_size_ - 1) /
                               static_cast<std::uint64_t>(block_size_);
    const std::string over = over_budget(need, blocks_.unreferenced(hits), "prefill");
    if (!over.empty()) fail(over);
    blocks_.attach(t, hits);
    counters().prefix_hit_tokens += static_cast<std::uint64_t>(h);
  }
  if (rest > 0) {
    writes_.assign(1, PendingWrite{&t, rest});
    reserve_blocks(writes_, "prefill");  // before anything else changes (when no hit)
    decoder_.reserve(rest);
    const float* xr = x + static_cast<std::size_t>(h) * width;
    std::copy_n(xr, static_cast<std::size_t>(rest) * width, decoder_.x());
    for (int i = 0; i < rest; ++i) decoder_.set_row(i, &t, t.length + i);
    decoder_.run(rest, *this, counters());
    keep_rows(t, t.length, xr, decoder_.x(), rest);
    t.length += rest;
  }
  if (all_rows) {
    for (int r = 0; r < h; ++r) {  // the reused rows' outputs, kept with their blocks
      std::copy_n(blocks_.output_row(hits[static_cast<std::size_t>(r / block_size_)],
                                     r % block_size_),
                  width, out + static_cast<std::size_t>(r) * width);
    }
    std::copy_n(decoder_.x(), static_cast<std::size_t>(rest) * width,
                out + static_cast<std::size_t>(h) * width);
  } else if (rest > 0) {
    std::copy_n(decoder_.x() + static_cast<std::size_t>(rest - 1) * width, width, out);
  } else {
    std::copy_n(blocks_.output_row(hits.back(), block_size_ - 1), width, out);
  }
  blocks_.index_full(t, from);
}

void PagedCache::do_decode(const std::vector<SeqId>& ids, const float* x, float* out) {
  const int n = static_cast<int>(ids.size());
  writes_.clear();
  for (SeqId id : ids) writes_.push_back(PendingWrite{&seqs_.at(id), 1});
  reserve_blocks(writes_, "decode");
  const std::size_t width = static_cast<std::size_t>(config().d_model);
  decoder_.reserve(n);
  std::copy_n(x, static_cast<std::size_t>(n) * width, decoder_.x());
  for (int i = 0; i < n; ++i) {
    const BlockTable& t = seqs_.at(ids[static_cast<std::size_t>(i)]);
    decoder_.set_row(i, &t, t.length);
  }
  decoder_.run(n, *this, counters());
  for (int i = 0; i < n; ++i) {
    BlockTable& t = seqs_.at(ids[static_cast<std::size_t>(i)]);
    keep_rows(t, t.length, x + static_cast<std::size_t>(i) * width,
              decoder_.x() + static_cast<std::size_t>(i) * width, 1);
    ++t.length;
    if (prefix_ && t.length % block_size_ == 0) blocks_.index_full(t, t.length - 1);
  }
  std::copy_n(decoder_.x(), static_cast<std::size_t>(n) * width, out);
}

}  // namespace

std::unique_ptr<KvCache> make_paged_cache(std::shared_ptr<const ModelWeights> weights,
                                          const ImplOptions& options, paged::Fault fault,
                                          const char* name, bool prefix) {
  return std::unique_ptr<KvCache>(
      new PagedCache(std::move(weights), options, fault, name, prefix));
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
  info.caps.dtypes = {DType::f32};
  info.caps.kv_read_model = KvReadModel::per_kv_head;
  info.create = [](std::shared_ptr<const ModelWeights> weights, const ImplOptions& options) {
    return make_paged_cache(std::move(weights), options);
  };
  registry.add(std::move(info));

  ImplInfo prefix;
  prefix.name = "prefix_cached";
  prefix.description =
      "paged plus a prefix cache: full blocks indexed by a chained hash of their inputs "
      "(content-checked), reused by later prompts, evicted least recently used";
  prefix.device = "cpu";
  prefix.caps = registry.get("paged").caps;
  prefix.caps.prefix_cache = true;
  prefix.create = [](std::shared_ptr<const ModelWeights> weights, const ImplOptions& options) {
    return make_paged_cache(std::move(weights), options, Fault::none, "prefix_cached", true);
  };
  registry.add(std::move(prefix));
}

}  // namespace kvbench
