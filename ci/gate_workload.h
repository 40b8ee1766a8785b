// GateWorkload: the fixed work the regression gate runs on every implementation.
//
// Three workloads, all on one small model (gate_model()):
//   counters  a scripted session (prefill two prompts, batched decode, fork, truncate, drop,
//             a prompt sharing sequence 0's first block)
//             whose op counters and bytes held must equal the baseline exactly;
//   decode    a batch of sequences, each already holding some tokens, decodes `steps` tokens;
//             callgrind counts the instructions of those decode calls only (and the same
//             region is timed natively for the wall-clock report);
//   sweep     one sequence at each position t of a list decodes `steps` tokens; the
//             instructions per step against t give the fitted scaling exponents (the long
//             positions only where worth it, see SweepWorkload::long_positions).
// The workload is written into every measurement; a baseline measured with another workload
// cannot be compared (the gate exits 2), so changing anything here means a new baseline.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness/config.h"

namespace kvbench::gate {

struct CounterWorkload {
  std::vector<int> prompts = {24, 40};  // one sequence per prompt, prefilled with that many rows
  int batch_steps = 16;                 // decode steps of all of them together
  int fork_steps = 8;                   // fork sequence 0, decode the child and sequence 1
  int truncate_to = 30;                 // truncate sequence 1 to this length...
  int final_steps = 4;                  // ...then decode every live sequence this many steps
  // Then a new sequence prefilled with the first `shared_prefix` rows of sequence 0's prompt
  // and 8 rows of its own: a prefix cache (block size 16) reuses sequence 0's first block,
  // so its kv_projection_rows count the reuse (0: no such phase).
  int shared_prefix = 16;
};

struct DecodeWorkload {
  std::vector<int> positions = {48, 80};  // the batch: one sequence at each position
  int steps = 20;                         // decode calls measured (a multiple of 10, see README)
};

struct SweepWorkload {
  std::vector<int> positions = {32, 64, 128, 256, 512};  // every implementation
  // Also, for implementations that hold a K/V cache and whose prefill valgrind runs fast
  // (those of the LibTorch-free worker: a second; LibTorch's BLAS prefill of 2048 tokens
  // takes minutes under valgrind, which emulates each FMA with a helper call).
  std::vector<int> long_positions = {1024, 2048};
  int steps = 10;                                         // decode calls measured per position
  int ratio_position = 512;  // naive / cached instructions per step compared at this t
};

struct GateWorkload {
  ModelConfig model;
  CounterWorkload counters;
  DecodeWorkload decode;
  SweepWorkload sweep;
  std::uint64_t input_seed = 20240601;  // the token rows every workload decodes
  int threads = 1;                      // ImplOptions::threads (1: deterministic counts)

  // RETURNS: sweep.positions, followed by sweep.long_positions when `long_sweep`.
  std::vector<int> sweep_positions(bool long_sweep) const;
  // Throws Error naming the first inconsistent field (e.g. a position past the capacity).
  void validate() const;
};

// RETURNS: the workload the gate runs: a 2-layer GQA model (d_model 64, 4 query heads, 2 KV
// heads of 16), small enough that callgrind runs it in seconds, with the projections and the
// attention of about equal cost near t = 100 so that the sweep sees both regimes.
GateWorkload default_workload();

nlohmann::json to_json(const GateWorkload& workload);
// Throws Error naming the missing or ill-typed field.
GateWorkload workload_from_json(const nlohmann::json& json);

// RETURNS: "" when equal, else the first differing fields ("decode.steps: 20 vs 30; ...").
std::string describe_difference(const GateWorkload& a, const GateWorkload& b);

}  // namespace kvbench::gate
