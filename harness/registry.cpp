#include "harness/registry.h"

#include <dlfcn.h>

#include <algorithm>
#include <sstream>

#include "harness/error.h"

namespace kvbench {

bool Capabilities::supports(DType dtype) const {
  return std::find(dtypes.begin(), dtypes.end(), dtype) != dtypes.end();
}

std::uint64_t Capabilities::kv_row_reads(int heads, int kv_heads) const {
  const std::uint64_t H = static_cast<std::uint64_t>(heads);
  const std::uint64_t G = static_cast<std::uint64_t>(heads / kv_heads);
  const std::uint64_t H_kv = static_cast<std::uint64_t>(kv_heads);
  switch (kv_read_model) {
    case KvReadModel::per_kv_head: return H_kv;
    case KvReadModel::per_query_head: return H;
    case KvReadModel::per_group_of_n: {
      const std::uint64_t N = static_cast<std::uint64_t>(std::max(1, kv_read_group));
      return H_kv * ((G + N - 1) / N);
    }
    case KvReadModel::unspecified: break;
  }
  return 0;
}

std::string Capabilities::describe_kv_reads() const {
  switch (kv_read_model) {
    case KvReadModel::per_kv_head: return "per KV head";
    case KvReadModel::per_query_head: return "per query head";
    case KvReadModel::per_group_of_n:
      return "per group of " + std::to_string(kv_read_group) + " query heads";
    case KvReadModel::unspecified: break;
  }
  return "unspecified";
}

Registry& Registry::global() {
  static Registry* registry = new Registry();  // never destroyed: no order of destruction at exit
  return *registry;
}

void Registry::add(ImplInfo info) {
  require(!info.name.empty(), "registry: an implementation needs a name");
  require(find(info.name) == nullptr, "registry: implementation '", info.name,
          "' is already registered");
  require(static_cast<bool>(info.create), "registry: implementation '", info.name,
          "' has no create function");
  require(info.caps.kv_read_model != KvReadModel::per_group_of_n || info.caps.kv_read_group >= 1,
          "registry: implementation '", info.name,
          "' declares kv_read_model per_group_of_n with kv_read_group ", info.caps.kv_read_group,
          " (must be >= 1)");
  require(!info.caps.prefix_cache || info.caps.blocks, "registry: implementation '", info.name,
          "' declares prefix_cache without blocks (a prefix cache indexes its blocks)");
  entries_.push_back(std::make_unique<ImplInfo>(std::move(info)));
}

const ImplInfo* Registry::find(const std::string& name) const {
  for (const auto& e : entries_) {
    if (e->name == name) return e.get();
  }
  return nullptr;
}

const ImplInfo& Registry::get(const std::string& name) const {
  if (const ImplInfo* info = find(name)) return *info;
  std::string known;
  for (const auto& e : entries_) {
    if (!e->caps.planted) known += (known.empty() ? "" : ", ") + e->name;
  }
  fail("unknown implementation '", name, "' (known: ", known, ")");
}

std::vector<const ImplInfo*> Registry::all(bool include_planted) const {
  std::vector<const ImplInfo*> out;
  for (const auto& e : entries_) {
    if (include_planted || !e->caps.planted) out.push_back(e.get());
  }
  return out;
}

std::vector<const ImplInfo*> Registry::select(const std::string& list) const {
  if (list == "all") return all();
  std::vector<const ImplInfo*> out;
  std::stringstream in(list);
  std::string name;
  while (std::getline(in, name, ',')) {
    if (name.empty()) continue;
    const ImplInfo* info = &get(name);
    if (std::find(out.begin(), out.end(), info) == out.end()) out.push_back(info);
  }
  require(!out.empty(), "no implementation named in '", list, "'");
  return out;
}

void Registry::load_plugin(const std::string& path) {
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) fail("plugin '", path, "': cannot load: ", dlerror());
  using RegisterFn = void (*)(Registry&);
  auto fn = reinterpret_cast<RegisterFn>(dlsym(handle, "kvbench_register"));
  if (fn == nullptr) {
    fail("plugin '", path, "': no symbol kvbench_register (declare it extern \"C\")");
  }
  fn(*this);
}

std::unique_ptr<KvCache> make_cache(const std::string& name, const ModelConfig& config,
                                    const ImplOptions& options) {
  const ImplInfo& info = Registry::global().get(name);
  const std::string why = info.why_unavailable();
  require(why.empty(), "implementation '", name, "' is unavailable: ", why);
  return info.create(ModelWeights::from_seed(config), options);
}

}  // namespace kvbench
