// What a property run actually asked of an implementation: the sizes reached, the model
// shapes, dtypes and thread counts instantiated, and the operations called, counted from
// the calls that reached the KvCache (harness/kv_cache.h, KvCacheObserver), not from what
// the generators meant to draw. `verify` prints it per property and implementation, and
// summed over the whole run.
#pragma once

#include <cstdint>
#include <set>
#include <string>

#include "harness/config.h"
#include "harness/kv_cache.h"

namespace kvbench::props {

// Operation kinds, as counted. A call is one kind, except that a prefill on a non-empty
// sequence counts as `prefill` and `prefill_nonempty`, a decode step of 2 or more
// sequences as `decode` and `batched_decode`, and a rejected call only as `rejected`.
struct OpCounts {
  std::uint64_t create = 0;
  std::uint64_t prefill = 0;           // prefill calls of >= 1 row
  std::uint64_t prefill_nonempty = 0;  // ... onto a sequence already holding tokens
  std::uint64_t decode = 0;            // decode steps of >= 1 sequence
  std::uint64_t batched_decode = 0;    // ... of >= 2 sequences
  std::uint64_t fork = 0;
  std::uint64_t truncate = 0;          // that changed the length
  std::uint64_t drop = 0;
  std::uint64_t read_kv = 0;
  std::uint64_t rejected = 0;          // calls that threw (the state is unchanged)

  // RETURNS: the total number of calls counted.
  std::uint64_t total() const;
};

struct Coverage {
  int max_tokens = 0;            // most tokens one sequence held after any call (max T)
  int max_decode_position = -1;  // largest position a decode step computed (-1: none)
  int max_prefill_chunk = 0;     // most rows one prefill call appended
  int max_decode_batch = 0;      // most sequences in one decode step
  std::set<int> layers;          // L of the instances called
  std::set<int> group_sizes;     // H / H_kv
  int max_head_dim = 0;          // largest d
  int max_d_model = 0;
  std::set<DType> dtypes;
  std::set<int> threads;         // ImplOptions::threads
  OpCounts ops;

  bool empty() const { return ops.total() == 0; }

  // Accounts for one observed call (what CoverageRecorder does).
  void add(const ModelConfig& config, const ImplOptions& options, const CacheEvent& event);
  // Joins `other` into this one (maxima, unions, sums).
  void merge(const Coverage& other);

  // One bracket for a property line:
  //   "[T≤128 pos≤127 prefill≤64 batch≤4 L1-3 H/Hkv 1,2,4,8 d≤128 fp32 threads 1,2;
  //     ops: create prefill prefill+ decode batched fork truncate drop read_kv rejected]"
  // ("[no call reached the cache]" when empty).
  std::string brief() const;
  // The run's closing summary, without a leading "coverage: " ("none" for a position or
  // chunk never reached; every op kind with its count, 0 included):
  //   "T≤8192 (decode position ≤8191, prefill chunk ≤4096), batch≤4, L 1-3, H/H_kv 1,2,4,8,
  //    d≤128, d_model≤96, fp32 fp16, threads 1,2; ops: create 1.2k, prefill 3.4k, ..."
  std::string summary() const;
};

// Records the calls made on this thread while it lives (it installs itself as the
// thread's KvCacheObserver and restores the previous one at the end).
class CoverageRecorder final : public KvCacheObserver {
 public:
  CoverageRecorder();
  ~CoverageRecorder() override;
  CoverageRecorder(const CoverageRecorder&) = delete;
  CoverageRecorder& operator=(const CoverageRecorder&) = delete;

  void on_call(const KvCache& cache, const CacheEvent& event) noexcept override;
  const Coverage& coverage() const { return coverage_; }

 private:
  Coverage coverage_;
  ScopedCacheObserver scope_;  // declared last: installed after coverage_ exists
};

// "1-3" for a contiguous set, "1,2,4,8" otherwise ("" when empty).
std::string format_set(const std::set<int>& values);

}  // namespace kvbench::props
