#include "properties/property.h"

#include "harness/error.h"

namespace kvbench::props {

const std::vector<Property>& all_properties() {
  static const std::vector<Property> list = {
      decode_matches_reference(), cache_matches_reference(), causal_and_batch_independent(),
      prefill_matches_decode(),   fork_truncate_drop(),      memory_accounting(),
      op_counts(),                large_scores(),            bad_input_rejected(),
      inconsistent_dims_rejected(), long_context(), reduced_precision_storage(),
      block_boundaries(), pool_accounting(), budget_rejects_unchanged(), copy_on_write(),
      stale_blocks(), prefix_reuse(),
  };
  return list;
}

const Property& find_property(const std::string& name) {
  std::string known;
  for (const Property& p : all_properties()) {
    if (p.name == name) return p;
    known += (known.empty() ? "" : ", ") + p.name;
  }
  fail("unknown property '", name, "' (known: ", known, ")");
}

bool supports_f32(const ImplInfo& impl, std::string* why_not) {
  if (impl.caps.supports(DType::f32)) return true;
  *why_not = "does not support fp32 (the numerical properties compare fp32 with the reference)";
  return false;
}

bool holds_kv_cache(const ImplInfo& impl, std::string* why_not) {
  if (impl.caps.holds_kv_cache) return true;
  *why_not = "holds no K/V cache (capabilities.holds_kv_cache = false)";
  return false;
}

}  // namespace kvbench::props
