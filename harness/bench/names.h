// Benchmark names: the one place that writes and parses them, so that `kvbench bench` and
// `kvbench report` (and the gate) agree.
//
//   generate/<impl>/T:<T>                          one whole generation of T tokens
//   decode_step/<impl>/threads:<n>/pos:<t>         one decode step at position t (t tokens held)
//   beam/<impl>/width:<W>                          beam search of width W over a shared prompt
//   prefix_prefill/<impl>/P:<P>                    a P-token prefill whose first 90 % is cached
//
// Google Benchmark appends its own parts ("/manual_time", "_mean", "/repeats:3", ...);
// parse_benchmark_name ignores them.
#pragma once

#include <optional>
#include <string>

namespace kvbench::bench {

enum class BenchKind { generate, decode_step, beam, prefix_prefill };

struct BenchmarkId {
  BenchKind kind = BenchKind::generate;
  std::string impl;
  int threads = 1;  // the implementation's threads (ImplOptions::threads)
  // T for generate, the position t for decode_step, the width W for beam, the prompt
  // length P for prefix_prefill.
  int size = 0;
};

// "generate", "decode_step", "beam", "prefix_prefill"
std::string kind_name(BenchKind kind);
std::string benchmark_name(const BenchmarkId& id);
// The series a benchmark belongs to, without its size: "generate/naive",
// "decode_step/cpu_cached/threads:2".
std::string series_name(const BenchmarkId& id);

// RETURNS: the parts of a name written by benchmark_name (with or without Google Benchmark's
// suffixes), or nullopt for any other name.
std::optional<BenchmarkId> parse_benchmark_name(const std::string& name);

}  // namespace kvbench::bench
