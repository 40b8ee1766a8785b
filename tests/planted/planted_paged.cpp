#include "tests/planted/planted_paged.h"

#include "impls/paged.h"

namespace kvbench::testing {
namespace {

struct Variant {
  const char* name;
  const char* description;
  paged::Fault fault;
  bool prefix = false;  // prefix_cached (with its prefix index) rather than paged
};

const std::vector<Variant>& variants() {
  static const std::vector<Variant> list = {
      {"planted_paged_boundary_off_by_one", "paged, attention reads one key past each block",
       paged::Fault::boundary_off_by_one},
      {"planted_paged_cow_without_copy", "paged, fork without the copy of a shared block",
       paged::Fault::cow_without_copy},
      {"planted_paged_leak_on_truncate", "paged, truncate leaks the blocks it cuts off",
       paged::Fault::leak_on_truncate},
      {"planted_paged_half_write", "paged, a step over the budget keeps the blocks it took",
       paged::Fault::half_write},
      {"planted_paged_stale_read", "paged, drop frees blocks a fork still reads",
       paged::Fault::drop_ignores_refs},
      {"planted_prefix_collision_unchecked",
       "prefix_cached, a lookup takes its hash bucket's first block unverified",
       paged::Fault::collision_unchecked, true},
      {"planted_prefix_parent_unchecked",
       "prefix_cached, a lookup checks a block's rows but not its predecessor",
       paged::Fault::parent_unchecked, true},
      {"planted_prefix_hit_not_revived",
       "prefix_cached, a reused cached block stays evictable while in use",
       paged::Fault::hit_not_revived, true},
  };
  return list;
}

}  // namespace

void register_planted_paged(Registry& registry) {
  for (const Variant& v : variants()) {
    ImplInfo info;
    info.name = v.name;
    info.description = v.description;
    info.device = "cpu";
    info.caps.holds_kv_cache = true;
    info.caps.fork = true;
    info.caps.truncate = true;
    info.caps.threads = true;
    info.caps.blocks = true;
    info.caps.prefix_cache = v.prefix;
    info.caps.planted = true;
    info.caps.gated = false;
    info.caps.dtypes = {DType::f32};
    info.caps.kv_read_model = KvReadModel::per_kv_head;
    const paged::Fault fault = v.fault;
    const char* name = v.name;
    const bool prefix = v.prefix;
    info.create = [fault, name, prefix](std::shared_ptr<const ModelWeights> weights,
                                        const ImplOptions& options) {
      return make_paged_cache(std::move(weights), options, fault, name, prefix);
    };
    registry.add(std::move(info));
  }
}

std::vector<std::string> planted_paged_names() {
  std::vector<std::string> names;
  for (const Variant& v : variants()) names.push_back(v.name);
  return names;
}

}  // namespace kvbench::testing
