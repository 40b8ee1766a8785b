// The work the benchmarks time, kept apart from Google Benchmark so that other tools (the
// regression gate, tests) run exactly the same workloads.
//
//   generation     a fresh sequence decodes T tokens one step at a time, each step attending
//                  to every earlier token (T decode calls), then is dropped; the benchmark
//                  times creating the sequence (setup) apart from the T decode steps;
//   decode step    one token decoded at position t of a sequence that already holds t
//                  tokens, then rolled back, so that the step repeats at the same position;
//   beam search    a prompt forked into W beams that decode in one batch, diverge, and are
//                  pruned and re-forked every K steps (memory shared by forks: BeamSearch);
//   prefix prefill a prompt whose first 90 % an earlier, dropped sequence prefilled on the
//                  same instance, against a cold prompt of the same length (PrefixPrefill).
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

// ---- Serving workloads ---------------------------------------------------------------------

// The fixed shape of a beam search (written into the bench JSON).
struct BeamShape {
  int width = 4;         // W beams (>= 2, even: a prune keeps half)
  int prompt = 512;      // P prompt tokens, prefilled once and shared by every beam
  int steps = 32;        // S decode steps of all beams
  int prune_every = 8;   // K: after every K-th step but the last, half the beams are dropped
                         // and each survivor forked once, restoring the width
};

// Memory over one beam search, sampled once the prompt is forked into W beams and after
// every decode step (before a prune): Stats::bytes_held and bytes_reserved.
struct BeamMemory {
  std::uint64_t held_peak = 0, reserved_peak = 0;
  double held_mean = 0, reserved_mean = 0;
  int samples = 0;
};

// One beam search on `cache`, in the parts the benchmark times apart:
//   start()       untimed: a new sequence prefills the P prompt rows and is forked W - 1
//                 times (beam 0 is the prompt sequence itself)
//   step()        timed: one decode call for all W beams, each with its own row (they diverge)
//   after_step()  untimed: samples memory; after every K-th step but the last, drops the
//                 beams in odd slots and forks each even slot's beam into the odd slot after
//                 it (a deterministic prune: the survivors' histories are shared again)
//   finish()      untimed: drops every beam
// Every round decodes the same rows: the memory is the same in every round.
class BeamSearch {
 public:
  // REQUIRES: `cache` outlives this object, supports fork; shape.width >= 2 and even;
  // prompt >= 1; steps >= 1; prune_every >= 1; prompt + steps <= capacity.
  BeamSearch(KvCache& cache, const BeamShape& shape, std::uint64_t input_seed);

  void start();
  void step();
  void after_step();
  void finish();
  // RETURNS: whether step() has run S times since start().
  bool done() const { return steps_done_ == shape_.steps; }

  const BeamShape& shape() const { return shape_; }
  // Over every round since construction.
  const BeamMemory& memory() const { return memory_; }
  // Per round: forks (W - 1 at the start, W / 2 per prune) and prunes.
  int forks_per_round() const;
  int prunes_per_round() const;

 private:
  void sample();

  KvCache& cache_;
  BeamShape shape_;
  std::vector<float> prompt_;  // [P, d_model]
  std::vector<float> rows_;    // [S * W, d_model]: beam slot b decodes row s * W + b at step s
  std::vector<SeqId> beams_;   // one per slot
  std::vector<float> batch_;   // [W, d_model], step()'s input
  int steps_done_ = 0;
  double held_sum_ = 0, reserved_sum_ = 0;
  BeamMemory memory_;
};

// RETURNS: the tokens of a P-token prompt that an earlier prompt shares in the prefix-prefill
// workload: 90 % of P rounded down to a multiple of block_size (0 when that is below one
// block). REQUIRES: prompt >= 0, block_size >= 1.
int cached_prefix_tokens(int prompt, int block_size);

// The prefix-prefill workload, one round at a time:
//   prepare()  untimed: new rows for the round; a sequence prefills the shared prefix and is
//              dropped (a prefix cache keeps its full blocks); creates the two sequences below
//   cold()     timed: prefills a P-token prompt nothing on the instance has seen
//   warm()     timed: prefills a P-token prompt whose first prefix() rows are the dropped
//              sequence's
//   finish()   untimed: drops both sequences
// Both timed calls return only the last row (PrefillRows::last): what serving samples from,
// so a prefix cache need compute only the uncached rows. Each round's rows are new, so that no
// round hits blocks an earlier round left.
class PrefixPrefill {
 public:
  // REQUIRES: `cache` outlives this object; 1 <= prompt <= capacity; block_size >= 1.
  PrefixPrefill(KvCache& cache, int prompt, int block_size, std::uint64_t input_seed);

  int prompt() const { return prompt_; }
  int prefix() const { return prefix_; }

  void prepare();
  void cold();
  void warm();
  void finish();

 private:
  KvCache& cache_;
  int prompt_, prefix_;
  std::uint64_t input_seed_;
  std::uint64_t round_ = 0;
  std::vector<float> cold_rows_, warm_rows_;  // [P, d_model]
  SeqId cold_id_ = -1, warm_id_ = -1;
};

}  // namespace kvbench::bench
