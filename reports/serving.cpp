// The serving benchmarks in the report (Analyzer, analyzer.h): beam-search memory against
// cpu_cached's at each width, beside the vLLM paper's saving from sharing, and the
// prefix-hit prefill's time against a cold prefill.
#include <algorithm>
#include <cmath>
#include <string>

#include "reports/analyzer.h"
#include "reports/format.h"

namespace kvbench::reports::detail {

namespace {

double counter_or(const Measurement& m, const char* key, double fallback) {
  return m.has(key) ? m.counter(key) : fallback;
}

}  // namespace

void Analyzer::collect_serving() {
  for (const auto& impl : d_.impls(BenchKind::beam)) {
    for (const Measurement* m : d_.series(BenchKind::beam, impl)) {
      BeamPoint b;
      b.impl = impl;
      b.width = m->id.size;
      b.prompt = static_cast<int>(counter_or(*m, "prompt_tokens", 0));
      b.steps = static_cast<int>(counter_or(*m, "steps", 0));
      b.prune_every = static_cast<int>(counter_or(*m, "prune_every", 0));
      b.held_peak = counter_or(*m, "bytes_held_peak", counter_or(*m, "bytes_held", 0));
      b.held_mean = counter_or(*m, "bytes_held_mean", b.held_peak);
      b.reserved_peak = counter_or(*m, "bytes_reserved_peak", counter_or(*m, "bytes_reserved", 0));
      b.reserved_mean = counter_or(*m, "bytes_reserved_mean", b.reserved_peak);
      // The time per iteration is the S decode steps.
      b.seconds_per_step = counter_or(*m, "seconds_per_step",
                                      b.steps > 0 ? m->seconds / b.steps : m->seconds);
      b.cow_copies = counter_or(*m, "cow_copies", 0);
      a_.beam.push_back(b);
    }
  }
  for (BeamPoint& b : a_.beam) {
    if (b.impl == "cpu_cached") continue;
    for (const BeamPoint& c : a_.beam) {
      if (c.impl != "cpu_cached" || c.width != b.width) continue;
      if (c.held_peak > 0) b.saving_vs_held = 1 - b.held_peak / c.held_peak;
      if (c.reserved_peak > 0) b.saving_vs_reserved = 1 - b.reserved_peak / c.reserved_peak;
    }
  }
  for (const auto& impl : d_.impls(BenchKind::prefix_prefill)) {
    for (const Measurement* m : d_.series(BenchKind::prefix_prefill, impl)) {
      PrefixPrefillPoint p;
      p.impl = impl;
      p.prompt = m->id.size;
      p.prefix = static_cast<int>(counter_or(*m, "prefix_tokens", 0));
      p.warm_seconds = counter_or(*m, "warm_seconds", m->seconds);
      p.cold_seconds = counter_or(*m, "cold_seconds", 0);
      p.ratio = p.cold_seconds > 0 ? p.warm_seconds / p.cold_seconds : 0;
      p.hit_tokens = counter_or(*m, "prefix_hit_tokens", 0);
      a_.prefix_prefill.push_back(p);
    }
  }
}

void Analyzer::serving_verdicts() {
  const std::string vllm = "the vLLM paper (Kwon et al., SOSP 2023) reports " +
                           percent(kVllmBeamSavingLow) + "-" + percent(kVllmBeamSavingHigh) +
                           " of KV memory saved by sharing in beam search (a comparison, not a "
                           "target: its workloads, widths and block sizes differ)";
  if (a_.beam.empty()) {
    say(kBeam, "not measured: the bench output has no beam benchmarks (older output, or "
               "--serving without beam); " + vllm + ".");
  } else {
    const BeamPoint& first = a_.beam.front();
    bool compared = false;
    for (const BeamPoint& b : a_.beam) {
      if (b.impl == "cpu_cached" || !std::isfinite(b.saving_vs_held)) continue;
      compared = true;
      say(kBeam, b.impl + " at width " + std::to_string(b.width) + ": peak " +
                     bytes_text(b.held_peak) + " held (mean " + bytes_text(b.held_mean) +
                     ") against cpu_cached's " +
                     bytes_text(b.held_peak / (1 - b.saving_vs_held)) + ": " +
                     percent(b.saving_vs_held) + " saved; " + bytes_text(b.reserved_peak) +
                     " reserved against cpu_cached's " +
                     bytes_text(b.reserved_peak / (1 - b.saving_vs_reserved)) + ", " +
                     percent(b.saving_vs_reserved) + " saved; " + sig(b.cow_copies) +
                     " copy-on-write block copies per search.");
    }
    say(kBeam, std::string(compared ? "Measured" : "Not compared (no cpu_cached beam search "
                                                   "beside another implementation's)") +
                   " over a prompt of " + std::to_string(first.prompt) + " tokens forked into W "
                   "beams, " + std::to_string(first.steps) + " steps, half the beams pruned "
                   "and the survivors forked every " + std::to_string(first.prune_every) +
                   " steps; cpu_cached copies a forked sequence's K/V and reserves its "
                   "capacity per sequence; " + vllm + ".");
  }
  if (a_.prefix_prefill.empty()) {
    say(kPrefix, "not measured: the bench output has no prefix_prefill benchmarks (older "
                 "output, or --serving without prefix).");
    return;
  }
  for (const PrefixPrefillPoint& p : a_.prefix_prefill) {
    const bool hits = p.hit_tokens > 0;
    say(kPrefix, p.impl + ": a " + std::to_string(p.prompt) + "-token prefill whose first " +
                     std::to_string(p.prefix) + " tokens were prefilled before took " +
                     seconds_text(p.warm_seconds) + " against " + seconds_text(p.cold_seconds) +
                     " cold: " + fixed(p.ratio, 2) + "x the cold time, " + sig(p.hit_tokens) +
                     " prompt tokens taken from cached blocks" +
                     (hits ? "" : " (no prefix reuse: warm and cold do the same work, so the ratio "
                                   "differs from 1 by noise only: the contrast to a prefix "
                                   "cache)") + ".");
  }
}

}  // namespace kvbench::reports::detail
