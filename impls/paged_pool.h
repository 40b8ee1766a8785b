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
// Prefix index (prefix caches, PrefixSetup::enabled): a full block whose predecessor in its
// table is indexed (or that is a table's first block) is indexed when its last row is written,
// under a hash chained over the predecessor's hash and the block's input rows (the rows the
// sequence was fed, kept beside the block with the output rows they gave). A lookup walks a
// prompt's full blocks from a table's end: a candidate is taken only if its predecessor is
// the block just matched (id and generation: an evicted or rewritten block never leads to
// its old successors) and its input rows equal the prompt's bitwise, so a hash collision
// costs a miss, never a wrong block. A block whose count reaches 0 stays indexed (cached,
// evictable) in least-recently-released order; taking a block when none is free and the
// budget allows no growth evicts the least recently released one. An indexed block is never
// written: a table that is to write into its partly held indexed last block (after a
// truncate) unindexes it first when it is the only holder, else copies it.
// With `poison`, a slab is filled with NaN when allocated, a block when it is freed and
// when it is taken again (recycled), and the rows past a truncated length in an unshared
// last block, so that reading stale memory shows up as NaN in verification runs.
#ifndef KVBENCH_IMPLS_PAGED_POOL_H_
#define KVBENCH_IMPLS_PAGED_POOL_H_

#include <cstddef>
#include <cstdint>
#include <list>
#include <unordered_map>
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
  // Prefix caches:
  collision_unchecked,  // a lookup takes the first candidate of its hash bucket unverified
  parent_unchecked,     // blocks hashed and compared by their own rows, not chained over
                        // (nor checked against) their predecessor
  hit_not_revived,      // a hit on a cached (unreferenced) block leaves it evictable
};

// The prefix index of a pool (prefix caches only).
struct PrefixSetup {
  bool enabled = false;
  int row_floats = 1;  // floats per input and output row: d_model
  int hash_bits = 0;   // bits of the chained hash kept (0: 64; the test hook)
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
  BlockPool(BlockLayout layout, std::uint64_t max_blocks, bool poison, Fault fault = Fault::none,
            PrefixSetup prefix = {});
  BlockPool(const BlockPool&) = delete;
  BlockPool& operator=(const BlockPool&) = delete;

  const BlockLayout& layout() const { return layout_; }
  std::uint64_t slab_blocks() const { return slab_blocks_; }
  // Offset of sub-array a of a block from data(block), in floats (the same for every block).
  std::size_t array_offset(int a) const { return static_cast<std::size_t>(a) * array_stride_; }
  std::uint64_t max_blocks() const { return max_blocks_; }  // 0: unlimited
  std::uint64_t in_use() const { return in_use_; }        // referenced blocks
  std::uint64_t free_blocks() const { return free_.size(); }  // allocated, unreferenced
  std::uint64_t cached_blocks() const { return lru_.size(); }  // unreferenced, indexed
  std::uint64_t evictions() const { return evictions_; }
  // Bytes of the input and output rows kept beside the blocks for the prefix index.
  std::uint64_t side_bytes() const { return side_.size() * sizeof(float); }
  std::uint64_t allocated() const { return data_.size(); }
  std::uint64_t bytes_allocated() const { return bytes_allocated_; }
  // RETURNS: blocks that can still be taken (free and cached ones plus what the budget lets
  // the pool grow by); UINT64_MAX when unlimited.
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

  // ---- prefix index (PrefixSetup::enabled; otherwise match() finds nothing) ----
  // RETURNS: the indexed blocks that continue `table` with the full blocks of rows x[0, n)
  // ([n, row_floats]), in order, up to the first miss. Nothing unless table.length is a
  // multiple of rows and its last block (if any) is indexed.
  std::vector<BlockId> match(const BlockTable& table, const float* x, int n) const;
  // RETURNS: how many of `ids` are cached (unreferenced): attaching them takes them from
  // what available() counts.
  std::uint64_t unreferenced(const std::vector<BlockId>& ids) const;
  // Appends the matched blocks to `table` (sharing them) and advances its length.
  void attach(BlockTable& table, const std::vector<BlockId>& ids);
  // Input and output rows of row r of block id: [row_floats] each.
  const float* input_row(BlockId id, int r) const { return side_row(id, r, 0); }
  const float* output_row(BlockId id, int r) const { return side_row(id, r, 1); }
  float* input_row(BlockId id, int r) { return const_cast<float*>(side_row(id, r, 0)); }
  float* output_row(BlockId id, int r) { return const_cast<float*>(side_row(id, r, 1)); }
  // Indexes the blocks of `table` that are full now and were not before it held
  // `from_length` tokens (in token order, each if its predecessor is indexed and no indexed
  // block has the same predecessor and rows).
  void index_full(const BlockTable& table, int from_length);
  bool indexed(BlockId id) const { return !meta_.empty() && meta_[id].indexed; }

  // `child` (empty) shares every block of `parent`.
  void fork(const BlockTable& parent, BlockTable& child);
  // Keeps the first `length` tokens; releases the blocks past ceil(length / rows).
  void truncate(BlockTable& table, int length);
  // Releases every block of `table` and empties it.
  void drop(BlockTable& table);

 private:
  // Identity of an indexed block: its id and the generation it was indexed in.
  struct BlockKey {
    BlockId id;
    std::uint32_t gen;
    bool operator==(const BlockKey& o) const { return id == o.id && gen == o.gen; }
  };
  struct Meta {  // per block, prefix caches only
    bool indexed = false;
    std::uint64_t hash = 0;      // chained, kept to hash_bits
    BlockKey parent{};           // the predecessor when indexed (root: id kNoBlock)
    std::uint32_t gen = 0;       // bumped at every indexing
    std::list<BlockId>::iterator lru;  // valid while cached
  };
  static constexpr BlockId kNoBlock = 0xffffffffu;
  std::uint64_t chain(std::uint64_t parent_hash, const float* rows) const;
  // The identity and hash a block after `prev` chains from (kNoBlock: a table's first block,
  // the root). RETURNS false when prev is not indexed (nothing after it can be indexed or found).
  bool follows(BlockId prev, BlockKey& parent, std::uint64_t& hash) const;
  // Unindexes the table's partly held last block when the table is its only holder (it is
  // about to be rewritten or has been cut into).
  void leave_index_if_sole(const BlockTable& table);
  // RETURNS: the indexed block with this predecessor, hash and rows (kNoBlock: none).
  BlockId find(BlockKey parent, std::uint64_t hash, const float* rows) const;
  void unindex(BlockId id);
  const float* side_row(BlockId id, int r, int which) const;  // which: 0 input, 1 output

  BlockId take();
  void share(BlockId id);
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

  PrefixSetup prefix_;
  std::uint64_t hash_mask_ = ~0ull;
  std::vector<Meta> meta_;                    // [allocated] when prefix_.enabled
  std::vector<float> side_;                   // [allocated, 2, rows, prefix_.row_floats]
  std::unordered_multimap<std::uint64_t, BlockId> index_;  // hash -> indexed blocks
  std::list<BlockId> lru_;                    // cached blocks, least recently released first
  std::uint64_t evictions_ = 0;
};

}  // namespace paged
}  // namespace kvbench

#endif  // KVBENCH_IMPLS_PAGED_POOL_H_
