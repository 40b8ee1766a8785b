// The registry: implementations by name, with what each supports and whether it can run
// here, and the probes of the devices they run on (harness/device_probes.h). `kvbench list`,
// `verify`, `bench` and the tests all iterate over it. Core knows no implementation: a
// program's main fills the registry (register_builtin_impls in impls/impls.h, plugins).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "harness/device_probes.h"
#include "harness/kv_cache.h"

namespace kvbench {

// How a decode step's attention reads the cached K/V rows: how many times each K and V row
// of a KV head is read per decode row and layer. op_counts checks kv_bytes_read against
// this exactly:
//   per decode call: kv_bytes_read += L * sum over its rows of (t + 1) * 2 * d * sizeof(elem)
//                                     * kv_row_reads(H, H_kv)
// with t the row's sequence length before the step. Prefill reads are not covered (they
// depend on how an implementation blocks the rows). Split-KV does not change the count:
// the chunks of a row's keys add up to its keys.
enum class KvReadModel {
  unspecified,     // not declared: op_counts only checks [H_kv, H] reads and says so
  per_kv_head,     // once per KV head: one pass over a row serves its whole GQA group (H_kv)
  per_query_head,  // once per query head, each head reads its KV head's rows itself (H)
  per_group_of_n,  // once per block of kv_read_group query heads: H_kv * ceil(G / N), G = H / H_kv
};

struct Capabilities {
  bool holds_kv_cache = true;   // read_kv works and bytes_held follows the K/V formula
  bool fork = true;
  bool truncate = true;
  bool threads = false;         // honours ImplOptions::threads > 1
  bool planted = false;         // a deliberately broken variant (tests only)
  // K/V held in a pool of fixed-size blocks (ImplOptions::block_size tokens each, shared by
  // forks): bytes_held is blocks_in_use * block bytes, not the per-token formula, and the
  // block properties (block_boundaries, pool_accounting, ...) run on it.
  bool blocks = false;
  // A prefix cache over its blocks (prefix_cached): full blocks stay indexed by their
  // chained content after their sequences let go, are reused by a later prompt with the same
  // prefix (Stats::prefix_hit_tokens) and evicted least recently used when the pool needs
  // room (ImplOptions::prefix_hash_bits shrinks the lookup key, a test hook). REQUIRES
  // blocks; the prefix_reuse property and the block model's cache run on it.
  bool prefix_cache = false;
  // Measured by `kvbench gate`. false: left out (reported as a skip row) until the baseline
  // records it; paged is, until its benchmarks are added (issue 10, second half).
  bool gated = true;
  std::vector<DType> dtypes = {DType::f32};
  KvReadModel kv_read_model = KvReadModel::unspecified;
  int kv_read_group = 0;        // N of per_group_of_n (>= 1); unused by the other models

  bool supports(DType dtype) const;
  // RETURNS: reads of each cached K/V row per decode row and layer, summed over the KV heads
  // (H_kv, H or H_kv * ceil(G / N)); 0 when kv_read_model is unspecified.
  // REQUIRES: kv_heads >= 1 divides heads.
  std::uint64_t kv_row_reads(int heads, int kv_heads) const;
  // RETURNS: "per KV head", "per query head", "per group of 8 query heads", "unspecified".
  std::string describe_kv_reads() const;
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
  // The process-wide registry. Empty until someone fills it: the kvbench CLI's main, a
  // test's main or a worker's main calls register_builtin_impls (impls/impls.h).
  static Registry& global();

  // Throws Error when the name is taken or empty, `create` is null, or the read model is
  // per_group_of_n with kv_read_group < 1.
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

  // Timers and bandwidth probes by device name, registered by the implementations of each
  // device (or a plugin's kvbench_register).
  DeviceProbes& devices() { return devices_; }
  const DeviceProbes& devices() const { return devices_; }

 private:
  std::vector<std::unique_ptr<ImplInfo>> entries_;
  DeviceProbes devices_;
};

// Convenience: weights from `config` and an instance of `name` from the global registry.
std::unique_ptr<KvCache> make_cache(const std::string& name, const ModelConfig& config,
                                    const ImplOptions& options = {});

}  // namespace kvbench
