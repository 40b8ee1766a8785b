// The summary's sentences (analysis.h Verdict), under their topics, each built from the
// numbers the Analyzer computed (analyzer.h): no conclusion is written in advance.
#include <algorithm>
#include <cmath>
#include <string>

#include "reports/analyzer.h"
#include "reports/format.h"

namespace kvbench::reports::detail {

void Analyzer::generation_verdicts() {
  for (const auto& s : a_.generation) {
    if (!s.time_fit) continue;
    std::string v = s.impl + ": generation time (" +
                    (s.setup_recorded() ? "the T decode steps" : "setup included") + ") " +
                    grows(s.time_fit->exponent) +
                    " (fit b = " +
                    fixed(s.time_fit->exponent, 2) + ", R^2 = " + fixed(s.time_fit->r2, 3) +
                    ", T = " + range_text(s.sizes) + ")";
    if (s.projection_fit && s.dots_fit) {
      v += "; its K/V projection rows " + grows(s.projection_fit->exponent, true) + " (b = " +
           fixed(s.projection_fit->exponent, 2) + ") and its query-key dot products " +
           grows(s.dots_fit->exponent, true) + " (b = " + fixed(s.dots_fit->exponent, 2) + ")";
    }
    v += ". Local exponent " + fixed(s.local.front().exponent, 2) + " at T " +
         sig(s.local.front().x_from) + "->" + sig(s.local.front().x_to) + ", " +
         fixed(s.local.back().exponent, 2) + " at T " + sig(s.local.back().x_from) + "->" +
         sig(s.local.back().x_to) + ".";
    if (growth_law(s.time_fit->exponent) == "sublinear") {
      v += " Sublinear (b < 0.8) is " + std::string(kSublinearWhy) + ".";
    }
    if (!s.setup_recorded()) {
      v += " (Setup not recorded: these times, and the fit, include creating the sequence.)";
    }
    say(kGrowth, v);
  }
  for (const auto& s : a_.generation) {
    if (!s.time_fit || s.impl == a_.baseline) continue;
    const double first = s.local.front().exponent, last = s.local.back().exponent;
    std::string v = s.impl + ": ";
    if (growth_law(first) == "sublinear") {
      v += "sublinear at the smallest T (local exponent " + fixed(first, 2) + " at T " +
           sig(s.local.front().x_from) + "->" + sig(s.local.front().x_to) +
           "): a finding to explain, not linear (usually fixed per-step costs that amortize, "
           "or cache effects)";
      if (s.quadratic_from > 0) {
        v += "; the local exponent reaches 1.5 at T ~ " + sig(s.quadratic_from) + ", and is " +
             fixed(last, 2) + " at T " + sig(s.local.back().x_from) + "->" +
             sig(s.local.back().x_to);
      } else {
        v += "; local exponent " + fixed(last, 2) + " at T " + sig(s.local.back().x_from) +
             "->" + sig(s.local.back().x_to);
      }
    } else if (growth_law(first) != "T") {
      v += "not linear even at the smallest T (local exponent " + fixed(first, 2) + " at T " +
           sig(s.local.front().x_from) + "->" + sig(s.local.front().x_to) + ")";
    } else if (s.quadratic_from > 0) {
      v += "linear while the projections dominate (local exponent " + fixed(first, 2) +
           " at T " + sig(s.local.front().x_from) + "->" + sig(s.local.front().x_to) +
           "); no longer linear from T ~ " + sig(s.quadratic_from) +
           ", where the local exponent reaches 1.5, and " + fixed(last, 2) + " at T " +
           sig(s.local.back().x_from) + "->" + sig(s.local.back().x_to) +
           " as the T(T+1)/2 dot products take over";
    } else {
      v += "linear (local exponent " + fixed(first, 2) + " at the smallest T, " +
           fixed(last, 2) + " at T " + sig(s.local.back().x_from) + "->" +
           sig(s.local.back().x_to) + "): the sweep ends before the dot products take over";
    }
    if (a_.predicted_generation_crossover > 0) {
      v += ". The op-count model puts the change (local exponent 1.5) at T = " +
           sig(a_.predicted_generation_crossover);
    }
    say(kLinear, v + ".");
  }
}

// FLOPs per second of `impl`'s generation at T, or 0.
double Analyzer::generation_rate(const std::string& impl, double tokens) const {
  const SeriesAnalysis* s = a_.find_generation(impl);
  if (!s) return 0;
  for (std::size_t i = 0; i < s->sizes.size(); ++i) {
    if (s->sizes[i] == tokens) return s->flops_per_second[i];
  }
  return 0;
}

void Analyzer::speedup_verdicts() {
  for (const auto& sp : a_.speedups) {
    const SpeedupPoint& last = sp.points.back();
    const double rb = generation_rate(sp.baseline, last.tokens);
    const double rc = generation_rate(sp.cached, last.tokens);
    std::string v =
        "Speedup " + sp.baseline + "/" + sp.cached + ": measured " + sig(last.measured) +
        "x at T = " + sig(last.tokens) + " against " + sig(last.analytic) +
        "x from the op counts (FLOPs: projections, dot products, Q/O projections); over T = " +
        sig(sp.points.front().tokens) + ".." + sig(last.tokens) +
        " the measured ratio is within " + percent(sp.worst_relative_error) +
        " of the analytic one";
    if (rb > 0 && rc > 0) {
      // measured / analytic = rate(cached) / rate(baseline): the deviation is exactly the
      // difference in how fast each turns the model's FLOPs into time.
      v += ". At T = " + sig(last.tokens) + " " + sp.baseline + " runs the model's FLOPs at " +
           sig(rb / 1e9) + " GFLOP/s and " + sp.cached + " at " + sig(rc / 1e9) +
           " GFLOP/s; the measured/analytic ratio is the ratio of these rates";
    }
    say(kSpeedup, v + ".");
  }
}

void Analyzer::decode_verdicts() {
  for (const auto& s : a_.decode) {
    if (!s.line || !s.time_fit) continue;
    say(kLatency,
        s.series + ": a decode step costs " + seconds_text(s.line->intercept) + " + " +
        seconds_text(s.line->slope) + " per cached token (line fit on relative error, R^2 = " +
        fixed(s.line->r2, 3) + ", t = " + range_text(s.sizes) + "); local exponent " +
        fixed(s.local.front().exponent, 2) + " at the smallest t, " +
        fixed(s.local.back().exponent, 2) + " at the largest.");
  }
}

void Analyzer::bandwidth_verdicts() {
  // Per series: the rate at the longest context (where the K/V is most likely to stream
  // from memory) and the highest rate (often a K/V that fits in cache), each against both
  // bandwidths and placed relative to the last-level cache.
  auto where = [&](const BandwidthPoint& p) {
    std::string w = "t = " + sig(p.position) + ", " + bytes_text(p.kv_bytes) + " of K/V read";
    if (a_.llc_bytes > 0 && p.device == "cpu") {  // the host's last-level cache
      w += p.kv_bytes > a_.llc_bytes ? ", " + sig(p.kv_bytes / a_.llc_bytes) + "x the LLC"
                                     : ", within the LLC";
    }
    return w;
  };
  auto fractions = [&](const BandwidthPoint& p) {
    if (p.device != "cpu") {
      const auto* device = d_.device_bandwidth_of(p.device);
      if (!device) return " (no " + p.device + " device bandwidth in the run to compare with)";
      return " = " + percent(p.of_read) + " of the " + p.device + " device's read-only " +
             "bandwidth (" + rate_text(device->read) + ", bytes read) and " +
             percent(p.of_copy) + " of its copy bandwidth (" + rate_text(device->copy) +
             ", bytes read + written)";
    }
    if (a_.read_bandwidth <= 0 || p.of_read <= 0) return std::string();
    std::string text = " = " + percent(p.of_read) + " of the read-only reference (" +
                       rate_text(p.bytes_per_second / p.of_read) + " with " +
                       std::to_string(p.threads) + (p.threads == 1 ? " thread" : " threads") +
                       ", bytes read) and " + percent(p.of_copy) + " of the copy bandwidth (" +
                       rate_text(a_.copy_bandwidth) + ", bytes read + written)";
    if (p.of_read > 1) {
      // Above the reference: possible only where the K/V is served by the caches.
      text += a_.llc_bytes > 0 && p.kv_bytes >= kDramBoundLlcMultiple * a_.llc_bytes
                  ? " -- above its limit at a DRAM-bound size: the reference is invalid"
                  : " -- above the DRAM reference, which a K/V below 8x the last-level cache "
                    "can be (the caches serve part of it)";
    }
    return text;
  };
  for (const auto& s : a_.decode) {
    const BandwidthPoint *best = nullptr, *longest = nullptr;
    for (const auto& p : a_.bandwidth) {
      if (p.impl != s.impl || p.threads != s.threads || p.kv_bytes <= 0) continue;
      if (!best || p.bytes_per_second > best->bytes_per_second) best = &p;
      if (!longest || p.position > longest->position) longest = &p;
    }
    if (!best) continue;
    std::string v = s.series + ": reads K/V at " + rate_text(longest->bytes_per_second) +
                    " at its longest context (" + where(*longest) + ")" + fractions(*longest);
    if (best != longest) {
      v += "; fastest " + rate_text(best->bytes_per_second) + " (" + where(*best) + ")" +
           fractions(*best);
    }
    say(kBandwidth, v + ".");
  }
}

void Analyzer::floor_verdicts() {
  for (const auto& s : a_.decode) {
    std::string list, source;
    int dram = 0, resident = 0;
    for (const auto& f : a_.floors) {
      if (f.impl != s.impl || f.threads != s.threads) continue;
      source = f.bandwidth_source + ", " + rate_text(f.bandwidth);
      list += (list.empty() ? "" : ", ") + std::string("t = ") + sig(f.position) + ": " +
              percent(f.efficiency) + (f.dram_bound ? "" : "*");
      if (f.efficiency > 1 && f.dram_bound) list += " (reference invalid)";
      (f.dram_bound ? dram : resident) += 1;
    }
    if (list.empty()) continue;
    std::string v = s.series + ": efficiency (floor / measured time) " + list + " (floor over " +
                    source + ")";
    if (resident > 0) {
      v += "; * marks positions moving < 8x the last-level cache, where the caches beat DRAM "
           "and the floor does not bind";
    }
    if (dram == 0) v += "; no position here is DRAM-bound";
    say(kFloor, v + ".");
  }
}

// Per generation series, its setup at each T and the share of decode + setup it would
// have been; then one sentence on where setup would have dominated a timing that included
// it (setup >= the decode steps' time), or that it did nowhere.
void Analyzer::setup_verdicts() {
  struct Dominated {
    std::string impl;
    double tokens, setup, decode, share;
  };
  std::vector<Dominated> dominated;
  std::vector<std::string> unrecorded;
  const SeriesAnalysis* largest = nullptr;
  std::size_t largest_at = 0;
  bool any_recorded = false;
  for (const auto& s : a_.generation) {
    if (s.sizes.empty()) continue;
    std::string v = s.impl + ": ";
    std::string missing;
    bool first = true;
    for (std::size_t i = 0; i < s.sizes.size(); ++i) {
      if (!std::isfinite(s.setup_seconds[i])) {
        missing += (missing.empty() ? "" : ", ") + sig(s.sizes[i]);
        continue;
      }
      any_recorded = true;
      const double share = s.setup_share(i);
      v += std::string(first ? "setup " : ", ") + seconds_text(s.setup_seconds[i]) +
           " at T = " + sig(s.sizes[i]) + " (" + percent(share) + " of decode + setup)";
      first = false;
      if (!largest || share > largest->setup_share(largest_at)) {
        largest = &s;
        largest_at = i;
      }
      if (s.setup_seconds[i] >= s.seconds[i]) {
        dominated.push_back({s.impl, s.sizes[i], s.setup_seconds[i], s.seconds[i], share});
      }
    }
    if (first) {
      v += "setup not recorded (an older bench output: its generation times include "
           "creating the sequence, and so does its fit)";
      unrecorded.push_back(s.impl);
    } else {
      v += "; kept out of the generation times and their fit";
      if (!missing.empty()) v += "; not recorded at T = " + missing;
    }
    say(kSetup, v + ".");
  }
  if (a_.generation.empty()) return;
  std::string v;
  if (!any_recorded) {
    v = "Not known: this bench output records no setup time (it is older than the "
        "setup_seconds counter), so its generation times include creating the sequence";
  } else if (dominated.empty()) {
    v = "Nowhere: setup stayed below the decode steps' time at every T measured (largest "
        "share " + percent(largest->setup_share(largest_at)) + ", " + largest->impl +
        " at T = " + sig(largest->sizes[largest_at]) + ")";
  } else {
    v = "Setup would have dominated a timing that included it (setup >= the decode steps' "
        "time, >= 50% of decode + setup) at: ";
    for (std::size_t i = 0; i < dominated.size(); ++i) {
      const Dominated& d = dominated[i];
      v += (i ? "; " : "") + d.impl + " at T = " + sig(d.tokens) + " (" +
           seconds_text(d.setup) + " setup against " + seconds_text(d.decode) +
           " decoding, " + percent(d.share) + ")";
    }
    v += ". There a whole-generation time would have measured creating the sequence "
         "(allocation, page faults) more than decoding; the fits and speedups here use the "
         "decode steps alone";
  }
  if (any_recorded && !unrecorded.empty()) {
    v += " (setup not recorded for " + join_names(unrecorded) + ")";
  }
  say(kSetupDominates, v + ".");
}

std::string Analyzer::join_names(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

void Analyzer::verdicts() {
  generation_verdicts();
  setup_verdicts();
  speedup_verdicts();
  decode_verdicts();
  bandwidth_verdicts();
  floor_verdicts();
  serving_verdicts();
}

}  // namespace kvbench::reports::detail
