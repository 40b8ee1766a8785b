// Unit tests of paged's block pool and block tables (impls/paged_pool.h), alone, and of
// attend_blocks (impls/cpu_attention.h) against attend over the same rows held
// contiguously: no registry, no reference.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "harness/error.h"
#include "impls/cpu_attention.h"
#include "impls/paged_pool.h"

namespace kvbench {
namespace {

using paged::BlockLayout;
using paged::BlockPool;
using paged::BlockTable;
using paged::PendingWrite;

BlockLayout layout(int arrays, int rows, int row_floats) {
  BlockLayout l;
  l.arrays = arrays;
  l.rows = rows;
  l.row_floats = row_floats;
  return l;
}

// Writes value `v(t, a, e)` into row t of every sub-array, as the cache writes a token.
void write_rows(const BlockPool& pool, BlockTable& t, int n) {
  const BlockLayout& l = pool.layout();
  for (int i = 0; i < n; ++i) {
    const int p = t.length + i;
    float* block = t.data[static_cast<std::size_t>(p / l.rows)];
    for (int a = 0; a < l.arrays; ++a) {
      for (int e = 0; e < l.row_floats; ++e) {
        block[pool.array_offset(a) + static_cast<std::size_t>(p % l.rows) * l.row_floats + e] =
            static_cast<float>(p * 100 + a * 10 + e);
      }
    }
  }
  t.length += n;
}

float row_value(const BlockPool& pool, const BlockTable& t, int p, int a, int e) {
  const BlockLayout& l = pool.layout();
  return t.data[static_cast<std::size_t>(p / l.rows)]
               [pool.array_offset(a) + static_cast<std::size_t>(p % l.rows) * l.row_floats + e];
}

void append(BlockPool& pool, BlockTable& t, int n) {
  pool.prepare_write(t, n);
  write_rows(pool, t, n);
}

TEST(PagedPool, BlocksAreTakenOnDemand) {
  BlockPool pool(layout(2, 4, 3), 0, false);
  BlockTable t;
  EXPECT_EQ(pool.blocks_needed({PendingWrite{&t, 0}}), 0u);
  EXPECT_EQ(pool.blocks_needed({PendingWrite{&t, 1}}), 1u);
  EXPECT_EQ(pool.blocks_needed({PendingWrite{&t, 5}}), 2u);
  append(pool, t, 5);
  EXPECT_EQ(t.ids.size(), 2u);
  EXPECT_EQ(pool.in_use(), 2u);
  EXPECT_EQ(pool.blocks_needed({PendingWrite{&t, 3}}), 0u);  // rows 5..7 fit block 1
  EXPECT_EQ(pool.blocks_needed({PendingWrite{&t, 4}}), 1u);
  append(pool, t, 3);
  EXPECT_EQ(pool.in_use(), 2u);
  for (int p = 0; p < 8; ++p) EXPECT_EQ(row_value(pool, t, p, 1, 2), p * 100 + 12);
}

TEST(PagedPool, ForkSharesAndTheFirstWriterCopiesAPartBlock) {
  BlockPool pool(layout(2, 4, 3), 0, true);
  BlockTable parent, child;
  append(pool, parent, 6);  // block 0 full, block 1 holds rows 4, 5
  pool.fork(parent, child);
  EXPECT_EQ(pool.in_use(), 2u);  // a fork adds no block
  EXPECT_EQ(pool.refs(parent.ids[0]), 2);
  EXPECT_EQ(pool.refs(parent.ids[1]), 2);
  // Both write one row in one step: the first copies block 1, the second then owns it.
  const std::vector<PendingWrite> both = {{&child, 1}, {&parent, 1}};
  EXPECT_EQ(pool.blocks_needed(both), 1u);
  const paged::BlockId shared = parent.ids[1];
  pool.prepare_write(child, 1);
  EXPECT_NE(child.ids[1], shared);          // the child's copy
  EXPECT_EQ(child.ids[0], parent.ids[0]);   // the full block stays shared
  EXPECT_EQ(pool.refs(shared), 1);
  EXPECT_EQ(pool.cow_copies(), 1u);
  pool.prepare_write(parent, 1);            // sole owner now: writes in place
  EXPECT_EQ(parent.ids[1], shared);
  EXPECT_EQ(pool.cow_copies(), 1u);
  EXPECT_EQ(pool.in_use(), 3u);
  // The copy holds the child's rows 4, 5 exactly; the rows past them are poisoned.
  for (int p = 4; p < 6; ++p) {
    for (int a = 0; a < 2; ++a) {
      for (int e = 0; e < 3; ++e) {
        EXPECT_EQ(row_value(pool, child, p, a, e), row_value(pool, parent, p, a, e));
      }
    }
  }
  EXPECT_TRUE(std::isnan(row_value(pool, child, 6, 0, 0)));
  write_rows(pool, child, 1);
  write_rows(pool, parent, 1);
  EXPECT_EQ(row_value(pool, child, 6, 1, 0), row_value(pool, parent, 6, 1, 0));
}

TEST(PagedPool, AWriteAtABoundaryOfASharedTableCopiesNothing) {
  BlockPool pool(layout(1, 4, 1), 0, false);
  BlockTable parent, child;
  append(pool, parent, 8);
  pool.fork(parent, child);
  EXPECT_EQ(pool.blocks_needed({PendingWrite{&child, 1}}), 1u);  // a new block, no copy
  append(pool, child, 1);
  EXPECT_EQ(pool.cow_copies(), 0u);
  EXPECT_EQ(pool.in_use(), 3u);
}

TEST(PagedPool, ThreeSharersWritingInOneStepCopyTwice) {
  BlockPool pool(layout(1, 4, 1), 0, false);
  BlockTable a, b, c;
  append(pool, a, 2);
  pool.fork(a, b);
  pool.fork(a, c);
  EXPECT_EQ(pool.blocks_needed({{&a, 1}, {&b, 1}, {&c, 1}}), 2u);
  EXPECT_EQ(pool.blocks_needed({{&a, 1}, {&b, 1}}), 2u);  // c still shares: both copy
  EXPECT_EQ(pool.blocks_needed({{&a, 3}}), 2u);           // a copy and a new block
}

TEST(PagedPool, TruncateReleasesAndPoisonsOnlyUnsharedRows) {
  BlockPool pool(layout(2, 4, 2), 0, true);
  BlockTable t, fork;
  append(pool, t, 10);  // 3 blocks
  EXPECT_EQ(pool.in_use(), 3u);
  pool.truncate(t, 5);  // keeps 2 blocks; rows 5..7 of block 1 poisoned (unshared)
  EXPECT_EQ(t.ids.size(), 2u);
  EXPECT_EQ(t.length, 5);
  EXPECT_EQ(pool.in_use(), 2u);
  EXPECT_EQ(pool.free_blocks(), pool.allocated() - 2);
  EXPECT_EQ(row_value(pool, t, 4, 1, 1), 4 * 100 + 10 + 1);
  EXPECT_TRUE(std::isnan(row_value(pool, t, 5, 0, 0)));
  pool.fork(t, fork);
  pool.truncate(fork, 4);  // block 1 is shared: the parent's row 4 must survive
  EXPECT_EQ(fork.ids.size(), 1u);
  EXPECT_EQ(row_value(pool, t, 4, 0, 1), 4 * 100 + 1);
  pool.truncate(t, 0);
  EXPECT_TRUE(t.ids.empty());
  EXPECT_EQ(pool.in_use(), 1u);  // the fork's block 0
  pool.drop(fork);
  EXPECT_EQ(pool.in_use(), 0u);
}

TEST(PagedPool, FreedBlocksArePoisonedAndTakenAgainInTokenOrder) {
  BlockPool pool(layout(1, 2, 1), 0, true);
  BlockTable t;
  append(pool, t, 6);  // blocks b0 b1 b2
  const std::vector<paged::BlockId> ids = t.ids;
  const float* data = pool.data(ids[2]);
  pool.drop(t);
  EXPECT_EQ(pool.in_use(), 0u);
  EXPECT_TRUE(std::isnan(data[0]) && std::isnan(data[1]));  // freed: poisoned
  BlockTable u;
  pool.prepare_write(u, 5);
  EXPECT_EQ(u.ids, ids);  // taken again first, and in the order they held the tokens
  EXPECT_TRUE(std::isnan(u.data[0][0]));  // recycled: poisoned again until written
  // Blocks taken one after the other out of a slab hold each sub-array contiguously.
  EXPECT_EQ(u.data[1], u.data[0] + 2);
}

TEST(PagedPool, TheBudgetCapsBlocksAndSlabs) {
  BlockPool pool(layout(1, 2, 1), 5, false);
  BlockTable t;
  EXPECT_EQ(pool.available(), 5u);
  EXPECT_EQ(pool.blocks_needed({PendingWrite{&t, 11}}), 6u);
  append(pool, t, 10);
  EXPECT_EQ(pool.available(), 0u);
  EXPECT_EQ(pool.allocated(), 5u);  // the slab is capped at the budget
  EXPECT_THROW(pool.prepare_write(t, 1), Error);
  pool.truncate(t, 4);
  EXPECT_EQ(pool.available(), 3u);
}

TEST(PagedPool, DataPointersSurviveGrowth) {
  BlockPool pool(layout(1, 1, 1), 0, false);
  BlockTable t;
  append(pool, t, 3);
  const std::vector<float*> before = t.data;
  append(pool, t, 1000);  // many slabs later
  for (std::size_t i = 0; i < before.size(); ++i) EXPECT_EQ(t.data[i], before[i]);
  for (int p = 0; p < 1003; ++p) EXPECT_EQ(row_value(pool, t, p, 0, 0), p * 100);
  EXPECT_GE(pool.allocated(), 1003u);
}

// attend_blocks over rows scattered through a block table gives, for decode rows, bitwise
// what attend gives over the same rows held contiguously (same tiles, same sums in the
// same order); prefill blocks within a rounding bound (four keys at a time start at block
// segments there).
TEST(AttendBlocks, MatchesContiguousAttention) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (int B : {1, 2, 3, 16, 5}) {
    for (int group : {1, 4}) {
      const int d = 8, keys = 37, rows = group == 1 ? 5 : 1;
      cpu::AttnShape a;
      a.group = group;
      a.heads = group;  // one KV head
      a.head_dim = d;
      a.tile = 16;
      a.scale = 1.0f / std::sqrt(static_cast<float>(d));
      std::vector<float> K(static_cast<std::size_t>(keys) * d), V(K.size());
      for (float& x : K) x = u(rng);
      for (float& x : V) x = u(rng);
      std::vector<float> Q(static_cast<std::size_t>(rows) * a.heads * d);
      for (float& x : Q) x = u(rng);
      // Blocks in a shuffled order: [K rows, V rows] each block, NaN elsewhere.
      const int nblocks = (keys + B - 1) / B;
      std::vector<int> order(static_cast<std::size_t>(nblocks));
      std::iota(order.begin(), order.end(), 0);
      std::shuffle(order.begin(), order.end(), rng);
      std::vector<float> store(static_cast<std::size_t>(nblocks) * 2 * B * d + d,
                               std::numeric_limits<float>::quiet_NaN());
      std::vector<const float*> table(static_cast<std::size_t>(nblocks));
      for (int b = 0; b < nblocks; ++b) {
        float* base = store.data() + static_cast<std::size_t>(order[static_cast<std::size_t>(b)]) * 2 * B * d;
        table[static_cast<std::size_t>(b)] = base;
        for (int j = b * B; j < std::min(keys, (b + 1) * B); ++j) {
          std::copy_n(K.data() + static_cast<std::size_t>(j) * d, d, base + static_cast<std::size_t>(j - b * B) * d);
          std::copy_n(V.data() + static_cast<std::size_t>(j) * d, d,
                      base + static_cast<std::size_t>(B + j - b * B) * d);
        }
      }
      cpu::AttnItem item;
      item.rows = rows;
      item.pos0 = keys - rows;
      item.key_end = keys;
      item.k = K.data();
      item.v = V.data();
      cpu::AttnScratch s1, s2;
      s1.reserve(rows * group, d, a.tile);
      s2.reserve(rows * group, d, a.tile);
      const std::size_t q_stride = static_cast<std::size_t>(a.heads) * d;
      cpu::attend(a, item, Q.data(), q_stride, s1);
      item.k = item.v = nullptr;
      item.blocks = table.data();
      item.k_offset = 0;
      item.v_offset = static_cast<std::size_t>(B) * d;
      item.block_rows = B;
      cpu::attend_blocks(a, item, Q.data(), q_stride, s2);
      for (int q = 0; q < rows * group; ++q) {
        for (int e = 0; e < d; ++e) {
          const std::size_t i = static_cast<std::size_t>(q) * d + e;
          const float x = s1.acc[i] / s1.l[static_cast<std::size_t>(q)];
          const float y = s2.acc[i] / s2.l[static_cast<std::size_t>(q)];
          ASSERT_TRUE(std::isfinite(y)) << "B " << B << " query " << q;
          if (rows == 1) {
            EXPECT_EQ(std::memcmp(&x, &y, sizeof x), 0) << "B " << B << " query " << q << ": " << x
                                                        << " vs " << y << " (bitwise)";
          } else {
            EXPECT_NEAR(x, y, 1e-5) << "B " << B << " query " << q;
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace kvbench
