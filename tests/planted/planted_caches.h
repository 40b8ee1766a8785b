// Deliberately broken K/V caches: the planted bugs that the property suite (and the
// libFuzzer engine) must catch, kept as committed tests so CI keeps proving that the
// checks can fail. Test-only: never part of `kvbench verify --impl all`
// (Capabilities::planted = true), registered only by tests and the fuzz target.
//
// All of them share one small, readable K/V cache (planted_caches.cpp): contiguous
// per-sequence storage of `capacity` rows (NaN-poisoned when ImplOptions::poison_unused),
// fp32 arithmetic, a GQA group's query heads served by one pass over the KV head's rows
// (so it reads each K/V row once per KV head). Each variant changes one thing:
//
//   planted_reference_cache       no bug (the control: passes every property); stores
//                                 fp32, or fp16/bf16 rounded to nearest even when the
//                                 config asks for them
//   planted_read_past_end         attends to one slot past the sequence (only the NaN
//                                 poison of the unused slot shows it)
//   planted_offset_after_300      keys at positions >= 300 are read from the slot before
//   planted_offset_after_3000     (an offset bug that appears only deep into a sequence)
//   planted_fp16_as_fp32          declares fp32, stores K/V rounded to fp16
//   planted_bf16_as_fp32          declares fp32, stores K/V rounded to bf16
//   planted_fp16_after_2000       declares fp32, stores rows at positions >= 2000 as fp16
//   planted_gqa_overcount         reads once per KV head, counts kv_bytes_read once per
//                                 query head
//   planted_prefill_after_truncate_stale
//                                 prefill after a truncate writes its rows after the old
//                                 end, so the truncated (stale) rows are attended to
//   planted_bf16_stores_fp16      declares fp16 and bf16, stores fp16 for both
//   planted_truncating_rounding   declares fp16 and bf16, rounds towards zero
#pragma once

#include <string>
#include <vector>

#include "harness/registry.h"

namespace kvbench::testing {

// Adds every planted variant above to `registry` (names must not be taken yet).
void register_planted_caches(Registry& registry);

// RETURNS: the names register_planted_caches adds, in order.
std::vector<std::string> planted_cache_names();

}  // namespace kvbench::testing
