// Planted bugs in the paged K/V cache (impls/paged.h, paged::Fault): the real implementation
// with one fault each, which the block properties must catch (tests/properties/
// test_planted.cpp). Test-only (Capabilities::planted = true), never in `verify --impl all`.
//
//   planted_paged_boundary_off_by_one  attention reads one key past each block's end (and
//                                      skips the next block's first)
//   planted_paged_cow_without_copy     a write into a shared partly filled block writes
//                                      into it: the other side sees the row
//   planted_paged_leak_on_truncate     truncate forgets the blocks it cuts off without
//                                      releasing them
//   planted_paged_half_write           a step over the budget takes the blocks it can,
//                                      keeps them, then throws
//   planted_paged_stale_read           drop frees shared blocks too: a fork then reads
//                                      freed (poisoned) or recycled memory
//   planted_prefix_collision_unchecked prefix_cached whose lookup takes the first block of
//                                      its hash bucket without checking it (the vLLM-style
//                                      collision bug; prefix_hash_bits 2 makes it happen)
//   planted_prefix_parent_unchecked    prefix_cached that hashes and compares a block's
//                                      own rows, not chained over its predecessor (the
//                                      same rows after another prefix hold other K/V)
//   planted_prefix_hit_not_revived     prefix_cached that leaves a reused cached block in
//                                      the eviction order: evicted and recycled while read
#pragma once

#include <string>
#include <vector>

#include "harness/registry.h"

namespace kvbench::testing {

// Adds the variants above to `registry` (names must not be taken yet).
void register_planted_paged(Registry& registry);

// RETURNS: the names register_planted_paged adds, in order.
std::vector<std::string> planted_paged_names();

}  // namespace kvbench::testing
