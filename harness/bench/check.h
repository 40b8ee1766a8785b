// The check `kvbench bench` makes of each implementation before it times it ("verify what
// you benchmark", DESIGN.md): at the bench's own shape, dtype and thread count, a sequence is
// prefilled the way the decode-step benchmarks prefill it (DecodeAtPosition) up to the
// longest position t of the sweep, then decodes the steps at t and t + 1. Then
//   output rows   each step's output row is compared with a float64 computation of that
//                 step over the implementation's OWN read_kv rows (all layers: layer l's
//                 input is the float64 output of layer l - 1; y = x + W_o attn), so the
//                 check costs O(t d), not the O(t^2 d) of a full reference;
//   K/V rows      the read_kv rows at ~16 sampled positions (the first, the last three,
//                 boundaries such as 63/64, 511/512, the largest power of two and multiple of
//                 256 below t, and seeded random ones) of every layer and KV head are compared
//                 with the reference projections W_k x_j, W_v x_j (deeper layers: x_j is the
//                 float64 layer input of token j, computed the same way over the rows of the
//                 layers below).
// An implementation that holds no K/V cache (caps.holds_kv_cache false: naive) has no rows
// to read: its output rows are compared with a full float64 reference of those steps instead
// (all t + 2 rows projected from the inputs), at the longest position whose cost fits
// `no_cache_budget`; when that is below t, the result says so (`weaker`).
//
// The allowed error of every compared element is derived from the arithmetic, not tuned
// (the derivation is in check.cpp, beside the code): fp32 rounding of each accumulation
// (probabilistic, lambda = 8), propagated through the layers, plus the storage dtype's
// relative rounding (2^-11 fp16, 2^-8 bf16) for the K/V rows.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "harness/registry.h"

namespace kvbench::bench {

struct CheckOptions {
  int position = 0;              // t, the longest position of the sweep (clamped to capacity - 2)
  int threads = 1;               // ImplOptions::threads, as the timed instance gets
  int block_size = ImplOptions{}.block_size;  // ImplOptions::block_size, likewise
  std::uint64_t kv_budget_bytes = 0;          // ImplOptions::kv_budget_bytes, likewise
  std::uint64_t input_seed = 0;  // the decode-step fixture's input seed
  double lambda = 8;             // the probabilistic bound's factor (see check.cpp)
  // Multiply-adds the no-cache check may cost (its prefill, two steps and the float64 full
  // reference): ~1e10 is a few seconds on one core.
  double no_cache_budget = 1.5e10;
};

// The worst compared element of one kind.
struct CheckWorst {
  std::int64_t elements = 0;  // elements compared
  double error = 0;           // |implementation - reference| at the worst element
  double allowed = 0;         // its allowed error
  double ratio = 0;           // error / allowed (> 1 fails; NaN/Inf values count as infinite)
  std::string where;          // "output t=4096 element 17", "K layer 0 head 1 position 511 element 3"
};

struct CheckResult {
  std::string impl;
  int threads = 1;
  std::string kind;                   // "own K/V rows" or "full float64 reference (no K/V cache)"
  int requested_position = 0;         // the longest position of the sweep
  std::vector<int> positions;         // the decode steps checked (t, t + 1)
  std::vector<int> sampled_positions; // K/V rows compared (empty without a K/V cache)
  std::string weaker;                 // non-empty: how and why the check is weaker than asked
  CheckWorst output, rows;
  bool passed = false;
  std::string failure;                // why it failed ("" when passed)
  double prepare_seconds = 0;         // the prefill to t and the two decode steps
  double reference_seconds = 0;       // read_kv and the float64 computation (the check proper)
};

// RETURNS: the outcome; never throws for the implementation's own errors (an exception it
// throws is a failure named in `failure`).
// REQUIRES: `impl` available and supporting weights->config.dtype; options.position >= 0.
CheckResult check_implementation(const ImplInfo& impl,
                                 const std::shared_ptr<const ModelWeights>& weights,
                                 const CheckOptions& options);

// RETURNS: the K/V positions the check compares in a sequence of `length` tokens (sorted,
// distinct, < length): 0, length - 3 .. length - 1, boundary pairs and seeded random ones.
std::vector<int> check_sample_positions(int length, std::uint64_t seed);

// RETURNS: one line for people: "pass at t = 4096, 4097: output error 1.2e-07 <= 9.5e-06
// (ratio 0.013); K/V rows ..." or "FAIL ...".
std::string describe(const CheckResult& result);

}  // namespace kvbench::bench
