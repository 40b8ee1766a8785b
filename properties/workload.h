// Generators and drivers shared by the properties: random models, ragged batches of
// sequences, their token rows, replaying a batch through a KvCache, and the float64 and
// float32 references with the tolerance of every row.
//
// The generators call RapidCheck's `*gen` and so run only inside a property. Every LENGTH
// grows with RapidCheck's size parameter (small cases first, shrinking towards the
// smallest), and the tokens a case may decode are capped by a work budget so that the
// whole suite stays fast even for `naive`, whose decode costs O(T^2) per sequence.
//
// CHOICES do not wait for the size: a feature that only a large size could draw (2
// threads, GQA, a second sequence, a `drop`) would escape a short run. RapidCheck gives case
// i of a run of N the size i * 100 / (N - 1) (N <= 101) or i % 101, so with inRange a
// choice between two things flips only near size 50. Instead:
//  - per-case choices (draw_choice) are a function of the size through a table that makes
//    the first 10 cases of every run of 10..1000 cases (max_size 100) take every value of
//    every axis (choice_table(); proven by tests/properties/test_suite.cpp), and shrink
//    towards 0, the simplest (1 thread, MHA, one sequence, ...);
//  - per-operation choices (draw_uniform) are uniform at every size and shrink towards 0.
// Both are pure functions of the case's Random and size, so reproduce strings replay them.
#pragma once

#include <cstdint>
#include <functional>
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

// ---- choices ---------------------------------------------------------------------------

// The independent axes of per-case choices. Draws on different axes are independent over a
// run; a property uses `variant` and `scenario` for choices of its own.
enum class Axis {
  attention,  // 3: MHA, GQA, MQA (gen_model)
  threads,    // 2: 1 or 2 threads (gen_options)
  batch,      // 2: one sequence or several (gen_workload)
  layers,     // 2: one layer or several (gen_model)
  variant,    // 3: memory_accounting's dtype, bad_input_rejected's family of bad calls
  scenario,   // 5: fork_truncate_drop's scripted path, inconsistent_dims_rejected's kind
  block_size, // 5: a block pool's block size (gen_options; block_boundaries its own set)
  count
};
// RETURNS: how many values the axis takes (the k of the comment above).
int axis_radix(Axis axis);
// RETURNS: "attention", "threads", ...
const char* axis_name(Axis axis);

// RETURNS: the value of `axis` at RapidCheck size `size`, in [0, axis_radix(axis)): one
// entry of choice_table() (size modulo its length), decoded as a mixed-radix digit.
int covered_choice(Axis axis, int size);
// The table behind covered_choice: for every size 0..100, one number whose mixed-radix
// digits are the axes' values. Found by a deterministic search (a fixed seed, ~1000 random
// single-entry changes, each kept when it covers no fewer (run, axis) value sets) for this
// condition: for every run length N in 10..101 (longer runs start with sizes 0..9 like
// N = 100), the sizes of cases 0..9 show every value of every axis. Size 0 (every run's
// first case) is all zeros, the simplest case.
const std::vector<int>& choice_table();

// Draws one choice among k on `axis` (1 <= k <= axis_radix(axis)): covered_choice(axis,
// size) % k, shrinking towards 0. `what` names it for the observer ("threads").
int draw_choice(Axis axis, int k, const char* what);

// Draws uniformly from [0, k) whatever the size, shrinking towards 0 (an operation's kind,
// which sequence it acts on). `what` names it for the observer; nullptr: not observed.
int draw_uniform(int k, const char* what = nullptr);

// Test hook: called with every draw_choice/draw_uniform (name, value, k) while set.
// Not thread-safe; set it around a run, then clear it (nullptr).
using ChoiceObserver = std::function<void(const char* what, int value, int k)>;
void set_choice_observer(ChoiceObserver observer);

// RETURNS: multiply-adds to decode one sequence of `tokens` tokens through all layers one
// token at a time: projections (Q, K, V, O), q.k and p.v per key, and, when
// `reprojects_prefix` (an implementation without a K/V cache), the K/V rows of the whole
// prefix again at every step.
double decode_work(const ModelConfig& config, bool reprojects_prefix, int tokens);

// RETURNS: the most tokens each of `sequences` sequences may hold so that decoding all of
// them fits limits.work (at least 1, at most limits.prompt + limits.steps).
int token_cap(const ModelConfig& config, const ImplInfo& impl, int sequences,
              const Limits& limits);

// A random model: L (one, or a choice of several), the attention (a choice: MHA with
// H_kv = H; GQA with H in {4, 6, 8} and 1 < H_kv < H; MQA with H >= 2 and H_kv = 1, as far
// as limits.heads allows), d, d_model, seed. capacity is set to limits.prompt +
// limits.steps; callers that test capacity set it themselves. dtype f32.
ModelConfig gen_model(const Limits& limits);

// ImplOptions{threads, poison_unused = true}: threads 1, or a choice of 1 or 2 for an
// implementation whose capabilities say it honours threads; for a block pool
// (caps.blocks) a block_size among 16, 1, 2, 3, 7 (a choice, shrinking towards 16).
ImplOptions gen_options(const ImplInfo& impl);

// One sequence of a batch: `prompt` tokens prefilled, then `steps` decoded one at a time.
struct SequencePlan {
  int prompt = 0;
  int steps = 1;
  std::vector<int> chunks;  // the prompt's prefill calls (sum = prompt); empty: one call
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

// RETURNS: a random workload for `impl` within `limits` (capacity = longest sequence + 0..3):
// one sequence, or (a choice) 2..limits.batch with ragged lengths.
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
