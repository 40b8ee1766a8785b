// paged_pool: see paged_pool.h.
#include "impls/paged_pool.h"

#include <algorithm>
#include <limits>
#include <map>

#include "harness/error.h"

namespace kvbench {
namespace paged {

BlockPool::BlockPool(BlockLayout layout, std::uint64_t max_blocks, bool poison, Fault fault)
    : layout_(layout), max_blocks_(max_blocks), poison_(poison), fault_(fault) {
  require(layout.arrays >= 1 && layout.rows >= 1 && layout.row_floats >= 1,
          "paged: a block layout needs arrays, rows and row_floats >= 1, got ", layout.arrays,
          ", ", layout.rows, ", ", layout.row_floats);
  const std::uint64_t bytes = layout.block_floats() * sizeof(float);
  const std::uint64_t target = poison ? kHugePageBytes : 16 * kHugePageBytes;
  slab_blocks_ = std::max<std::uint64_t>(8, std::min<std::uint64_t>(4096, (target + bytes - 1) / bytes));
  if (max_blocks != 0) slab_blocks_ = std::min(slab_blocks_, max_blocks);
  // Sub-arrays start on cache lines (a vector load never straddles two of them).
  array_stride_ = (slab_blocks_ * layout.array_floats() + 15) / 16 * 16;
}

std::uint64_t BlockPool::available() const {
  if (max_blocks_ == 0) return std::numeric_limits<std::uint64_t>::max();
  return max_blocks_ - in_use_;
}

void BlockPool::grow() {
  // Every slab has the same layout (array_stride_); the last one under a budget holds
  // only the blocks the budget still allows.
  const std::uint64_t n =
      max_blocks_ == 0 ? slab_blocks_ : std::min(slab_blocks_, max_blocks_ - data_.size());
  require(data_.size() + n <= std::numeric_limits<BlockId>::max(),
          "paged: the block pool cannot grow past ", data_.size(), " blocks");
  const std::size_t floats = static_cast<std::size_t>(layout_.arrays) * array_stride_;
  slabs_.push_back(allocate_aligned(floats * sizeof(float), "paged: a slab of K/V blocks"));
  bytes_allocated_ += aligned_allocation_bytes(floats * sizeof(float));
  float* base = reinterpret_cast<float*>(slabs_.back().get());
  // Poisoned whole, the padding too: a read past a block's rows is NaN.
  if (poison_) std::fill(base, base + floats, std::numeric_limits<float>::quiet_NaN());
  const BlockId first = static_cast<BlockId>(data_.size());
  for (std::uint64_t i = 0; i < n; ++i) {
    data_.push_back(base + i * layout_.array_floats());
    refs_.push_back(0);
  }
  // Lowest id on top of the stack: fresh blocks are taken in address order.
  for (std::uint64_t i = n; i-- > 0;) free_.push_back(first + static_cast<BlockId>(i));
}

BlockId BlockPool::take() {
  require(available() > 0, "paged: take() with no block available (", in_use_, " of ",
          max_blocks_, " in use)");
  if (free_.empty()) grow();
  const BlockId id = free_.back();
  free_.pop_back();
  refs_[id] = 1;
  ++in_use_;
  if (poison_) poison_rows(id, 0);  // recycled: whatever it held must not be read
  return id;
}

void BlockPool::release(BlockId id) {
  if (--refs_[id] != 0) return;
  --in_use_;
  free_.push_back(id);
  if (poison_) poison_rows(id, 0);
}

void BlockPool::poison_rows(BlockId id, int from_row) const {
  if (from_row >= layout_.rows) return;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::size_t rf = static_cast<std::size_t>(layout_.row_floats);
  for (int a = 0; a < layout_.arrays; ++a) {
    float* rows = data_[id] + array_offset(a);
    std::fill(rows + static_cast<std::size_t>(from_row) * rf,
              rows + static_cast<std::size_t>(layout_.rows) * rf, nan);
  }
}

std::uint64_t BlockPool::blocks_needed(const std::vector<PendingWrite>& writes) const {
  const int B = layout_.rows;
  std::map<BlockId, std::uint32_t> refs;  // counts as the earlier writes leave them
  std::uint64_t need = 0;
  for (const PendingWrite& w : writes) {
    if (w.n <= 0) continue;
    const int t = w.table->length;
    if (t % B != 0) {
      const BlockId last = w.table->ids.back();
      auto it = refs.find(last);
      if (it == refs.end()) it = refs.emplace(last, refs_[last]).first;
      if (it->second > 1 && fault_ != Fault::cow_without_copy) {
        ++need;       // the copy
        --it->second;  // this table lets go of the shared block
      }
    }
    const std::uint64_t have = (static_cast<std::uint64_t>(t) + B - 1) / B;
    const std::uint64_t want = (static_cast<std::uint64_t>(t) + w.n + B - 1) / B;
    need += want - have;
  }
  return need;
}

void BlockPool::prepare_write(BlockTable& table, int n) {
  if (n <= 0) return;
  const int B = layout_.rows;
  const int t = table.length;
  if (t % B != 0 && refs_[table.ids.back()] > 1 && fault_ != Fault::cow_without_copy) {
    // Copy-on-write: the rows [0, t % B) this table holds, of every sub-array.
    const BlockId old = table.ids.back();
    const BlockId copy = take();
    const std::size_t used = static_cast<std::size_t>(t % B) * layout_.row_floats;
    for (int a = 0; a < layout_.arrays; ++a) {
      std::copy_n(data_[old] + array_offset(a), used, data_[copy] + array_offset(a));
    }
    release(old);  // still referenced by another table: never freed here
    table.ids.back() = copy;
    table.data.back() = data_[copy];
    ++cow_copies_;
  }
  const std::size_t want = (static_cast<std::size_t>(t) + n + B - 1) / B;
  while (table.ids.size() < want) {
    const BlockId id = take();
    table.ids.push_back(id);
    table.data.push_back(data_[id]);
  }
}

void BlockPool::fork(const BlockTable& parent, BlockTable& child) {
  child.ids = parent.ids;
  child.data = parent.data;
  child.length = parent.length;
  for (BlockId id : child.ids) share(id);
}

void BlockPool::truncate(BlockTable& table, int length) {
  const int B = layout_.rows;
  const std::size_t keep = (static_cast<std::size_t>(length) + B - 1) / B;
  while (table.ids.size() > keep) {
    if (fault_ != Fault::leak_on_truncate) release(table.ids.back());
    table.ids.pop_back();
    table.data.pop_back();
  }
  table.length = length;
  // The cut-off rows of a last block that no other table reads: stale from now on.
  if (poison_ && length % B != 0 && refs_[table.ids.back()] == 1) {
    poison_rows(table.ids.back(), length % B);
  }
}

void BlockPool::drop(BlockTable& table) {
  // Last block first, so that the free stack hands them out again in token order.
  for (auto it = table.ids.rbegin(); it != table.ids.rend(); ++it) {
    if (fault_ == Fault::drop_ignores_refs && refs_[*it] > 1) {
      refs_[*it] = 1;  // frees a block other tables still read
    }
    release(*it);
  }
  table = BlockTable{};
}

}  // namespace paged
}  // namespace kvbench
