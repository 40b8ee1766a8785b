// The work the benchmarks time, kept apart from Google Benchmark so that other tools (the
// regression gate, tests) run exactly the same workloads.
//
//   generation     a fresh sequence decodes T tokens one step at a time, each step attending
//                  to every earlier token (T decode calls), then is dropped; the benchmark
//                  times creating the sequence (setup) apart from the T decode steps;
//   decode step    one token decoded at position t of a sequence that already holds t
//                  tokens, then rolled back, so that the step repeats at the same position.
#pragma once

#include <cstdint>
#include <vector>

#include "harness/kv_cache.h"
#include "harness/registry.h"

namespace kvbench::bench {

// RETURNS: after - before, field by field, except bytes_held and bytes_reserved, which are
// taken from `after` (they are levels, not running totals).
Stats stats_delta(const Stats& before, const Stats& after);

// A deterministic input rows for a benchmark: [tokens, d_model], uniform in [-1, 1].
std::vector<float> benchmark_inputs(const ModelConfig& config, int tokens, std::uint64_t seed);

// Decodes `tokens` rows of `inputs` into a new sequence, one decode call per token:
// create_sequence(), then decode_tokens(). The regression gate and the tests run this whole;
// the benchmark times its two parts apart (setup, then the decode steps).
// REQUIRES: 1 <= tokens <= capacity; inputs.size() >= tokens * d_model.
// RETURNS: the new sequence's id; it holds `tokens` tokens (the caller drops it).
SeqId generate(KvCache& cache, const std::vector<float>& inputs, int tokens);

// Decodes rows [0, tokens) of `inputs` into the existing sequence `id`, one decode call per
// token (the loop generate() runs after creating its sequence).
// REQUIRES: `id` is a live sequence of `cache`; 1 <= tokens and its length + tokens <=
// capacity (the cache checks the length); inputs.size() >= tokens * d_model.
void decode_tokens(KvCache& cache, SeqId id, const std::vector<float>& inputs, int tokens);

// How a decode step is undone so that it can repeat at the same position.
enum class Rollback {
  truncate,  // truncate(id, t) after the step: O(1) for a cache
  fork,      // fork before the step, decode the child, drop the child (copies the cache,
             // outside the timed region)
};

// RETURNS: the rollback `impl` supports (truncate preferred), or throws Error naming the
// implementation when it supports neither.
Rollback rollback_for(const ImplInfo& impl);

// One sequence grown to a position, on which a decode step repeats:
//   before_step()   untimed: forks when the rollback is `fork`
//   step()          timed: decodes one token at position()
//   after_step()    untimed: removes that token again
class DecodeAtPosition {
 public:
  // REQUIRES: `cache` outlives this object.
  DecodeAtPosition(KvCache& cache, Rollback rollback, std::uint64_t input_seed);

  // Prefills the sequence, in chunks of at most `chunk` tokens (so that implementations that
  // materialize [chunk, position] score matrices stay within memory), up to `position`.
  // REQUIRES: length() <= position < capacity; chunk >= 1.
  void extend_to(int position, int chunk = 512);

  int position() const { return position_; }
  // The sequence being grown, and the row every step decodes (the bench's check reads both).
  SeqId sequence() const { return id_; }
  const std::vector<float>& token() const { return token_; }
  // RETURNS: the prompt rows extend_to() prefills at positions [first, first + n)
  // [n, d_model]: row j depends on j and the seed only, not on how the prefill was chunked,
  // so that a check that prefills straight to a position sees the rows a series that grew
  // there in steps sees.
  std::vector<float> prompt_rows(int first, int n) const;

  void before_step();
  void step();
  void after_step();

 private:
  KvCache& cache_;
  Rollback rollback_;
  SeqId id_;
  SeqId stepping_;  // the sequence step() decodes: id_, or the fork
  int position_ = 0;
  std::vector<float> token_;  // [d_model], the row every step decodes
  std::uint64_t input_seed_;
};

}  // namespace kvbench::bench
