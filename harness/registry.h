// The registry: implementations by name, with what each supports and whether it can run
// here. `kvbench list`, `verify`, `bench` and the tests all iterate over it.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "harness/kv_cache.h"

namespace kvbench {

struct Capabilities {
  bool holds_kv_cache = true;   // read_kv works and bytes_held follows the K/V formula
  bool fork = true;
  bool truncate = true;
  bool threads = false;         // honours ImplOptions::threads > 1
  bool planted = false;         // a deliberately broken variant (tests only)
  std::vector<DType> dtypes = {DType::f32};

  bool supports(DType dtype) const;
};

struct ImplInfo {
  std::string name;          // "cpu_cached"
  std::string description;   // one line for `kvbench list`
  std::string device;        // "cpu" or "cuda"
  Capabilities caps;
  // RETURNS: "" when the implementation can run on this machine, else why not
  // ("no CUDA device"). Null means always available.
  std::function<std::string()> unavailable_reason;
  // Builds an instance. Throws Error for a config it cannot serve (dtype, size).
  std::function<std::unique_ptr<KvCache>(std::shared_ptr<const ModelWeights>, const ImplOptions&)>
      create;

  std::string why_unavailable() const { return unavailable_reason ? unavailable_reason() : ""; }
  bool available() const { return why_unavailable().empty(); }
};

class Registry {
 public:
  // The process-wide registry, filled with the built-in implementations on first use.
  static Registry& global();

  // Throws Error when the name is taken or empty, or `create` is null.
  void add(ImplInfo info);
  // RETURNS: nullptr when unknown.
  const ImplInfo* find(const std::string& name) const;
  // Throws Error listing the known names when unknown.
  const ImplInfo& get(const std::string& name) const;
  // All entries in registration order (planted ones included only when asked).
  std::vector<const ImplInfo*> all(bool include_planted = false) const;
  // Parses "A,B" or "all" (all non-planted) into entries. Throws Error on an unknown name.
  std::vector<const ImplInfo*> select(const std::string& list) const;

  // Loads a shared library that defines
  //   extern "C" void kvbench_register(kvbench::Registry&);
  // and calls it. Throws Error naming the file and dlerror() on failure.
  void load_plugin(const std::string& path);

 private:
  std::vector<std::unique_ptr<ImplInfo>> entries_;
};

// Registers naive, cpu_cached, torch_cached, torch_static (and cuda_cached when built).
// Defined in impls/; Registry::global() calls it once.
void register_builtin_impls(Registry& registry);

// Convenience: weights from `config` and an instance of `name` from the global registry.
std::unique_ptr<KvCache> make_cache(const std::string& name, const ModelConfig& config,
                                    const ImplOptions& options = {});

}  // namespace kvbench
