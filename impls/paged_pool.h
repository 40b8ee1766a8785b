// paged_pool: the block pool and block tables of the paged K/V cache (internal to impls/;
// tested alone in tests/impls/test_paged_pool.cpp).
//
// A block holds `rows` tokens of every layer's K and V: `arrays` = L * 2 * H_kv sub-arrays
// of [rows, row_floats] floats, one per (layer, K|V, KV head), so that one (layer, K|V,
// head)'s rows inside a block are contiguous. Blocks carry reference counts: a fork shares
// its parent's blocks, and a block returns to the free list when its count reaches 0. A
// sequence's BlockTable lists its blocks in token order: token t lives in block
// ids[t / rows], row t % rows; the table always holds exactly ceil(length / rows) blocks.
//
// Writing is two-phase, so that a write that does not fit changes nothing: blocks_needed()
// counts (exactly, copies of shared partial blocks included) what a step's writes will
// take, the caller checks it against available(), and only then prepare_write() takes the
// blocks (copying a shared partly filled last block first: copy-on-write) and the caller
// writes the rows.
//
// Memory: slabs of `slab_blocks` blocks each, which never move (block data pointers stay
// valid while the block is referenced). Inside a slab the sub-arrays are head-major,
//   [arrays, slab_blocks, rows, row_floats],
// so sub-array a of block b is at data(b) + array_offset(a), and the blocks a sequence
// takes one after the other out of a fresh slab hold each head's rows contiguously, as
// cpu_cached's do: the hardware prefetcher streams them. (A block as one contiguous
// [arrays, rows, row_floats] chunk made each head's rows 4 KiB runs 32 KiB apart on the
// default shape, which this machine streams 3x slower than one run: decode steps at
// t = 8192 took 2-3x cpu_cached's time.) Slabs of about 32 MiB (address space: pages are
// mapped when first written; 2 MiB when poisoning, which writes them whole), 8 to 4096
// blocks, fewer if the budget is smaller; the last slab under a budget holds only the
// blocks the budget still allows.
// With `poison`, a slab is filled with NaN when allocated, a block when it is freed and
// when it is taken again (recycled), and the rows past a truncated length in an unshared
// last block, so that reading stale memory shows up as NaN in verification runs.
#ifndef KVBENCH_IMPLS_PAGED_POOL_H_
#define KVBENCH_IMPLS_PAGED_POOL_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "harness/aligned_buffer.h"

namespace kvbench {
namespace paged {

using BlockId = std::uint32_t;

// Deliberate bugs for the suite's planted tests (tests/planted): none in real use.
enum class Fault {
  none,
  cow_without_copy,     // a write to a shared partly filled block writes into it (no copy)
  leak_on_truncate,     // truncate forgets the blocks it cuts off without releasing them
  drop_ignores_refs,    // drop frees every block of the sequence, shared ones too (stale)
  half_write,           // a step that does not fit takes blocks until the pool runs out,
                        // keeps them, then throws
  boundary_off_by_one,  // attention reads one key past each block's end (paged.cpp)
};

struct BlockLayout {
  int arrays = 1;      // sub-arrays per block: L * 2 * H_kv
  int rows = 16;       // tokens per block (ImplOptions::block_size)
  int row_floats = 1;  // floats per row: head_dim
  std::size_t array_floats() const {  // one sub-array of one block
    return static_cast<std::size_t>(rows) * static_cast<std::size_t>(row_floats);
  }
  std::size_t block_floats() const { return static_cast<std::size_t>(arrays) * array_floats(); }
};

// One sequence's blocks in token order, with each block's data pointer beside its id.
struct BlockTable {
  std::vector<BlockId> ids;
  std::vector<float*> data;  // data[i] = pool.data(ids[i])
  int length = 0;            // tokens held
};

// A write of `n` rows at the end of `table` (one sequence of one step).
struct PendingWrite {
  BlockTable* table = nullptr;
  int n = 0;
};

class BlockPool {
 public:
  // max_blocks: the most blocks the pool may hold (0: unlimited). REQUIRES: layout sizes >= 1.
  BlockPool(BlockLayout layout, std::uint64_t max_blocks, bool poison, Fault fault = Fault::none);
  BlockPool(const BlockPool&) = delete;
  BlockPool& operator=(const BlockPool&) = delete;

  const BlockLayout& layout() const { return layout_; }
  std::uint64_t slab_blocks() const { return slab_blocks_; }
  // Offset of sub-array a of a block from data(block), in floats (the same for every block).
  std::size_t array_offset(int a) const { return static_cast<std::size_t>(a) * array_stride_; }
  std::uint64_t max_blocks() const { return max_blocks_; }  // 0: unlimited
  std::uint64_t in_use() const { return in_use_; }        // referenced blocks
  std::uint64_t free_blocks() const { return free_.size(); }  // allocated, unreferenced
  std::uint64_t allocated() const { return data_.size(); }
  std::uint64_t bytes_allocated() const { return bytes_allocated_; }
  // RETURNS: blocks that can still be taken (free ones plus what the budget lets the pool
  // grow by); UINT64_MAX when unlimited.
  std::uint64_t available() const;
  std::uint64_t cow_copies() const { return cow_copies_; }
  Fault fault() const { return fault_; }

  int refs(BlockId id) const { return static_cast<int>(refs_[id]); }
  // Sub-array 0 of block `id`; sub-array a at data(id) + array_offset(a).
  float* data(BlockId id) const { return data_[id]; }

  // RETURNS: the blocks the writes, made in this order, will take: a new block for every
  // block boundary a write starts at or crosses, plus one copy for a write into a partly
  // filled last block that another table still references at that point.
  std::uint64_t blocks_needed(const std::vector<PendingWrite>& writes) const;
  // Makes rows [length, length + n) of `table` writable (copy-on-write of a shared partly
  // filled last block, then new blocks). REQUIRES: available() covers blocks_needed() of
  // this write. Does not change table.length (the caller sets it once the rows are written).
  void prepare_write(BlockTable& table, int n);

  // `child` (empty) shares every block of `parent`.
  void fork(const BlockTable& parent, BlockTable& child);
  // Keeps the first `length` tokens; releases the blocks past ceil(length / rows).
  void truncate(BlockTable& table, int length);
  // Releases every block of `table` and empties it.
  void drop(BlockTable& table);

 private:
  BlockId take();
  void share(BlockId id) { ++refs_[id]; }
  void release(BlockId id);
  void grow();
  void poison_rows(BlockId id, int from_row) const;

  BlockLayout layout_;
  std::uint64_t max_blocks_;
  bool poison_;
  Fault fault_;
  std::uint64_t slab_blocks_;   // blocks per slab
  std::size_t array_stride_;    // floats between sub-arrays a and a + 1 of a block
  std::vector<AlignedBlock> slabs_;
  std::vector<float*> data_;            // [allocated] by id
  std::vector<std::uint32_t> refs_;     // [allocated]
  std::vector<BlockId> free_;           // stack: the most recently freed is taken first
  std::uint64_t in_use_ = 0;
  std::uint64_t bytes_allocated_ = 0;
  std::uint64_t cow_copies_ = 0;
};

}  // namespace paged
}  // namespace kvbench

#endif  // KVBENCH_IMPLS_PAGED_POOL_H_
