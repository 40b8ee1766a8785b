// Generators and drivers shared by the properties: random models, ragged batches of
// sequences, their token rows, replaying a batch through a KvCache, and the float64 and
// float32 references with the tolerance of every row.
//
// The generators call RapidCheck's `*gen` and so run only inside a property. Every size
// grows with RapidCheck's size parameter (small cases first, shrinking towards the
// smallest), and the tokens a case may decode are capped by a work budget so that the
// whole suite stays fast even for `naive`, whose decode costs O(T^2) per sequence.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "harness/kv_cache.h"
#include "harness/reference.h"
#include "harness/registry.h"
#include "properties/tolerance.h"

namespace kvbench::props {

// Inclusive upper bounds of the generated cases.
struct Limits {
  int layers = 3;
  int heads = 8;        // H; H_kv is drawn among the divisors of H (MHA, GQA, MQA)
  int head_dim = 128;   // d, odd sizes included
  int d_model = 96;
  int prompt = 64;      // tokens prefilled per sequence (0 allowed)
  int steps = 64;       // decode steps per sequence (>= 1)
  int batch = 4;        // sequences
  // Multiply-adds one case may cost the implementation (decode_work). At ~1e9 multiply-adds
  // per second for plain loops this is ~10 ms; a case's sequences are shortened to fit.
  double work = 1.0e7;
};

// RETURNS: multiply-adds to decode one sequence of `tokens` tokens through all layers one
// token at a time: projections (Q, K, V, O), q.k and p.v per key, and, when
// `reprojects_prefix` (an implementation without a K/V cache), the K/V rows of the whole
// prefix again at every step.
double decode_work(const ModelConfig& config, bool reprojects_prefix, int tokens);

// RETURNS: the most tokens each of `sequences` sequences may hold so that decoding all of
// them fits limits.work (at least 1, at most limits.prompt + limits.steps).
int token_cap(const ModelConfig& config, const ImplInfo& impl, int sequences,
              const Limits& limits);

// A random model: L, H with a random divisor H_kv, d, d_model, seed. capacity is set to
// limits.prompt + limits.steps; callers that test capacity set it themselves. dtype f32.
ModelConfig gen_model(const Limits& limits);

// ImplOptions{threads, poison_unused = true}: threads 1, or 1..2 for an implementation
// whose capabilities say it honours threads.
ImplOptions gen_options(const ImplInfo& impl);

// One sequence of a batch: `prompt` tokens prefilled, then `steps` decoded one at a time.
struct SequencePlan {
  int prompt = 0;
  int steps = 1;
  int tokens() const { return prompt + steps; }
};

// A ragged batch of sequences decoded together: step s decodes every sequence that has
// more than s steps, in an order shuffled per step.
struct Workload {
  ModelConfig config;
  ImplOptions options;
  std::vector<SequencePlan> seqs;
  std::uint64_t input_seed = 0;  // token rows come from InputStream (see history())
  std::uint64_t order_seed = 0;  // per-step decode order
  float input_scale = 1.0f;      // token rows are uniform in +-input_scale

  // RETURNS: the token rows of sequence i, [seqs[i].tokens(), d_model].
  std::vector<float> history(int i) const;
  std::vector<std::vector<float>> histories() const;
  int max_tokens() const;
  // "L=2 d_model=7 H=4 H_kv=2 d=3 ...; threads 1; 3 seqs (prompt+steps): 5+2, 0+9, 1+1"
  std::string describe() const;
};

// RETURNS: a random workload for `impl` within `limits` (capacity = longest sequence + 0..3).
Workload gen_workload(const ImplInfo& impl, const Limits& limits);

// The outputs of a workload run.
struct Replay {
  std::vector<SeqId> ids;                    // [batch]
  std::vector<std::vector<float>> outputs;   // [batch][tokens, d_model], in token order
};

// Runs `w` on `cache`: creates the sequences, prefills every prompt, then decodes the
// ragged steps. `tokens` are the histories (usually w.histories()).
Replay replay(KvCache& cache, const Workload& w, const std::vector<std::vector<float>>& tokens);

// The float64 reference of one token history, the fp32 errors and the per-row tolerances.
struct Expected {
  ReferenceResult f64;
  F32Error f32;
  std::vector<RowTolerance> tol;  // output_tolerances(...)
};
// With `rows` (ascending positions), only those output rows (see reference_forward).
Expected expected_outputs(const ModelWeights& weights, const std::vector<float>& tokens,
                          const std::vector<int>& rows = {});

// An instance of `impl` for `config`. A construction error fails the case.
std::unique_ptr<KvCache> make_instance(const ImplInfo& impl,
                                       std::shared_ptr<const ModelWeights> weights,
                                       const ImplOptions& options);

// Fails the current RapidCheck case with `message` as its description (like RC_FAIL, but
// without RC_FAIL's echo of the source expression, which only clutters a report).
[[noreturn]] void fail_case(const std::string& message);

// Fails the current case with `what`, the comparison's description and the case.
// Does nothing when c.ok.
void require_close(const Comparison& c, const std::string& what, const std::string& context);

// RETURNS: "[0.1, -2, ...]" the first `n` values of a row (for failure messages).
std::string show_row(const float* row, int width, int n = 4);

}  // namespace kvbench::props
