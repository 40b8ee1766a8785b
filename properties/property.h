// A property of KV-cache implementations, checked by RapidCheck over random cases.
//
// The list all_properties() is the one list that `kvbench verify`, `kvbench fuzz` and the
// gtest runner (tests/properties) iterate: a property runs over every registered
// implementation it applies to.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "harness/registry.h"

namespace kvbench::props {

struct Property {
  std::string name;         // "decode_matches_reference", used in test ids and --property
  std::string description;  // one line for `kvbench verify --list`
  // RETURNS: true when the property applies to `impl`; else false with *why_not set
  // ("holds no K/V cache"). Availability (why_unavailable) is checked by the runner.
  std::function<bool(const ImplInfo& impl, std::string* why_not)> applies;
  // One random case: draws with *rc::gen, checks with RC_ASSERT / RC_FAIL.
  std::function<void(const ImplInfo& impl)> body;
  // Cases run per 100 asked for (at least 1): 100 for the ordinary properties; fewer for
  // properties whose every case is long (long_context: 4 per 100, so the default run has 4
  // cases of up to 8192 tokens and --cases 50 still has 2).
  int cases_per_100 = 100;
  // Optional: a remark on a pass over `impl`, "" for none (e.g. what could not be checked
  // exactly because the implementation declares too little). Shown after PASS.
  std::function<std::string(const ImplInfo& impl)> note = {};
};

// RETURNS: every property, in the order they are reported.
const std::vector<Property>& all_properties();

// Throws Error listing the known names when `name` is unknown.
const Property& find_property(const std::string& name);

// applies() helpers: capability checks with their reason.
bool supports_f32(const ImplInfo& impl, std::string* why_not);
bool holds_kv_cache(const ImplInfo& impl, std::string* why_not);

// The properties, one factory per file (properties/prop_*.cpp).
Property decode_matches_reference();   // 1
Property cache_matches_reference();    // 2
Property causal_and_batch_independent();  // 3
Property prefill_matches_decode();     // 4
Property fork_truncate_drop();         // 5
Property memory_accounting();          // 6
Property op_counts();                  // 7
Property large_scores();               // 8
Property bad_input_rejected();         // 9
Property inconsistent_dims_rejected(); // 9, construction
Property long_context();               // 11
Property reduced_precision_storage();  // 12
// Block pools (Capabilities::blocks), properties/prop_blocks.cpp.
Property block_boundaries();           // 13
Property pool_accounting();            // 14
Property budget_rejects_unchanged();   // 15
Property copy_on_write();              // 16
Property stale_blocks();               // 17
Property prefix_reuse();               // 18

// The longest sequence long_context draws (default 8192; `verify --max-tokens` raises it).
// REQUIRES: tokens >= 64.
void set_long_context_max_tokens(int tokens);
int long_context_max_tokens();

}  // namespace kvbench::props
