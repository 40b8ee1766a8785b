// paged_pool: see paged_pool.h.
#include "impls/paged_pool.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <map>

#include "harness/error.h"

namespace kvbench {
namespace paged {

BlockPool::BlockPool(BlockLayout layout, std::uint64_t max_blocks, bool poison, Fault fault,
                     PrefixSetup prefix)
    : layout_(layout), max_blocks_(max_blocks), poison_(poison), fault_(fault), prefix_(prefix) {
  require(!prefix.enabled || (prefix.row_floats >= 1 && prefix.hash_bits >= 0 &&
                              prefix.hash_bits <= 64),
          "paged: a prefix index needs row_floats >= 1 and hash_bits 0..64, got ",
          prefix.row_floats, ", ", prefix.hash_bits);
  if (prefix.hash_bits > 0 && prefix.hash_bits < 64) hash_mask_ = (1ull << prefix.hash_bits) - 1;
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
  if (prefix_.enabled) {
    meta_.resize(data_.size());
    side_.resize(data_.size() * 2 * layout_.rows * static_cast<std::size_t>(prefix_.row_floats));
  }
  // Lowest id on top of the stack: fresh blocks are taken in address order.
  for (std::uint64_t i = n; i-- > 0;) free_.push_back(first + static_cast<BlockId>(i));
}

BlockId BlockPool::take() {
  require(available() > 0, "paged: take() with no block available (", in_use_, " of ",
          max_blocks_, " in use)");
  if (free_.empty()) {
    if (max_blocks_ == 0 || data_.size() < max_blocks_) {
      grow();
    } else {  // the budget is reached: evict the least recently released cached block
      const BlockId victim = lru_.front();
      lru_.pop_front();
      unindex(victim);
      ++evictions_;
      free_.push_back(victim);
    }
  }
  const BlockId id = free_.back();
  free_.pop_back();
  refs_[id] = 1;
  ++in_use_;
  if (poison_) poison_rows(id, 0);  // recycled: whatever it held must not be read
  return id;
}

void BlockPool::share(BlockId id) {
  if (refs_[id]++ != 0) return;
  // A cached block comes back into use (a prefix hit): no longer evictable.
  ++in_use_;
  if (indexed(id) && fault_ != Fault::hit_not_revived) lru_.erase(meta_[id].lru);
}

void BlockPool::release(BlockId id) {
  if (--refs_[id] != 0) return;
  --in_use_;
  if (indexed(id)) {  // stays cached, evictable once everything released before it is gone
    if (fault_ == Fault::hit_not_revived && std::find(lru_.begin(), lru_.end(), id) != lru_.end()) {
      return;  // planted: still in the list from before its hit
    }
    meta_[id].lru = lru_.insert(lru_.end(), id);
    return;
  }
  free_.push_back(id);
  if (poison_) poison_rows(id, 0);
}

// ---- prefix index ---------------------------------------------------------------------

const float* BlockPool::side_row(BlockId id, int r, int which) const {
  const std::size_t rf = static_cast<std::size_t>(prefix_.row_floats);
  const std::size_t rows = static_cast<std::size_t>(layout_.rows);
  return side_.data() + ((static_cast<std::size_t>(id) * 2 + which) * rows + r) * rf;
}

std::uint64_t BlockPool::chain(std::uint64_t parent_hash, const float* rows) const {
  // FNV-1a over the rows' bit patterns, seeded with the predecessor's hash, then a
  // splitmix64 finalizer so that the low bits (what hash_bits keeps) depend on every word.
  // (Planted parent_unchecked: the hash of the block's own rows, not chained.)
  std::uint64_t h = (fault_ == Fault::parent_unchecked ? 0 : parent_hash) ^ 0xcbf29ce484222325ull;
  const std::size_t words = static_cast<std::size_t>(layout_.rows) * prefix_.row_floats;
  for (std::size_t i = 0; i < words; ++i) {
    std::uint32_t bits;
    std::memcpy(&bits, rows + i, sizeof bits);
    h = (h ^ bits) * 0x100000001b3ull;
  }
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  h ^= h >> 31;
  return h & hash_mask_;
}

BlockId BlockPool::find(BlockKey parent, std::uint64_t hash, const float* rows) const {
  const std::size_t bytes =
      static_cast<std::size_t>(layout_.rows) * prefix_.row_floats * sizeof(float);
  auto [it, end] = index_.equal_range(hash);
  for (; it != end; ++it) {
    const BlockId c = it->second;
    if (fault_ == Fault::collision_unchecked) return c;
    const Meta& m = meta_[c];
    if (m.hash != hash) continue;
    if (fault_ != Fault::parent_unchecked && !(m.parent == parent)) continue;
    if (std::memcmp(input_row(c, 0), rows, bytes) != 0) continue;
    return c;
  }
  return kNoBlock;
}

std::vector<BlockId> BlockPool::match(const BlockTable& table, const float* x, int n) const {
  std::vector<BlockId> hits;
  const int B = layout_.rows;
  if (!prefix_.enabled || table.length % B != 0) return hits;
  BlockKey parent{kNoBlock, 0};
  std::uint64_t hash = 0;
  if (!follows(table.ids.empty() ? kNoBlock : table.ids.back(), parent, hash)) return hits;
  const std::size_t block_floats = static_cast<std::size_t>(B) * prefix_.row_floats;
  for (int k = 0; (k + 1) * B <= n; ++k) {
    const float* rows = x + static_cast<std::size_t>(k) * block_floats;
    const std::uint64_t h = chain(hash, rows);
    const BlockId found = find(parent, h, rows);
    if (found == kNoBlock) break;
    hits.push_back(found);
    follows(found, parent, hash);
  }
  return hits;
}

bool BlockPool::follows(BlockId prev, BlockKey& parent, std::uint64_t& hash) const {
  if (prev == kNoBlock) {  // a table's first block
    parent = BlockKey{kNoBlock, 0};
    hash = 0;
    return true;
  }
  if (!indexed(prev)) return false;
  parent = BlockKey{prev, meta_[prev].gen};
  hash = meta_[prev].hash;
  return true;
}

void BlockPool::leave_index_if_sole(const BlockTable& table) {
  if (table.length % layout_.rows == 0) return;
  const BlockId last = table.ids.back();
  if (refs_[last] == 1 && indexed(last)) unindex(last);
}

std::uint64_t BlockPool::unreferenced(const std::vector<BlockId>& ids) const {
  std::uint64_t n = 0;
  for (BlockId id : ids) n += refs_[id] == 0 ? 1 : 0;
  return n;
}

void BlockPool::attach(BlockTable& table, const std::vector<BlockId>& ids) {
  for (BlockId id : ids) {
    share(id);
    table.ids.push_back(id);
    table.data.push_back(data_[id]);
  }
  table.length += static_cast<int>(ids.size()) * layout_.rows;
}

void BlockPool::index_full(const BlockTable& table, int from_length) {
  if (!prefix_.enabled) return;
  const int B = layout_.rows;
  for (int k = from_length / B; (k + 1) * B <= table.length; ++k) {
    const BlockId b = table.ids[static_cast<std::size_t>(k)];
    if (indexed(b)) continue;  // attached by a hit
    BlockKey parent{kNoBlock, 0};
    std::uint64_t hash = 0;
    // A predecessor that is not indexed breaks the chain: nothing after it can be found.
    if (!follows(k > 0 ? table.ids[static_cast<std::size_t>(k - 1)] : kNoBlock, parent, hash)) {
      return;
    }
    const float* rows = input_row(b, 0);
    const std::uint64_t h = chain(hash, rows);
    if (find(parent, h, rows) != kNoBlock) return;  // a duplicate: the first one stays indexed
    Meta& m = meta_[b];
    m.indexed = true;
    m.hash = h;
    m.parent = parent;
    ++m.gen;
    index_.emplace(h, b);
  }
}

void BlockPool::unindex(BlockId id) {
  Meta& m = meta_[id];
  auto [it, end] = index_.equal_range(m.hash);
  for (; it != end; ++it) {
    if (it->second == id) {
      index_.erase(it);
      break;
    }
  }
  m.indexed = false;
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
  // A partly held indexed last block (its rows past t belong to a cached prefix): held
  // alone, it stops being indexed before it is written; shared, it is copied below.
  leave_index_if_sole(table);
  if (t % B != 0 && refs_[table.ids.back()] > 1 && fault_ != Fault::cow_without_copy) {
    // Copy-on-write: the rows [0, t % B) this table holds, of every sub-array.
    const BlockId old = table.ids.back();
    const BlockId copy = take();
    const std::size_t used = static_cast<std::size_t>(t % B) * layout_.row_floats;
    for (int a = 0; a < layout_.arrays; ++a) {
      std::copy_n(data_[old] + array_offset(a), used, data_[copy] + array_offset(a));
    }
    if (prefix_.enabled) {
      const std::size_t side = static_cast<std::size_t>(t % B) * prefix_.row_floats;
      std::copy_n(input_row(old, 0), side, input_row(copy, 0));
      std::copy_n(output_row(old, 0), side, output_row(copy, 0));
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
  // A last block cut into and held alone is rewritten from here: it leaves the index.
  leave_index_if_sole(table);
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
