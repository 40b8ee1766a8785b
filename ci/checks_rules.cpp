#include "ci/checks_rules.h"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <sstream>

#include "ci/gate_stats.h"
#include "harness/error.h"
#include "harness/fit.h"

namespace kvbench::gate::rules {

const char* const kCounterZero =
    "impossible under the counters workload, which prefills, decodes and ends with live sequences";
const char* const kRegionZero =
    "impossible for a region that decodes tokens; callgrind counted nothing";

std::string with_commas(double value) {
  if (!std::isfinite(value)) return fixed(value, 0);
  const long long v = std::llround(value);
  std::string digits = std::to_string(v < 0 ? -v : v);
  for (int i = static_cast<int>(digits.size()) - 3; i > 0; i -= 3) digits.insert(static_cast<std::size_t>(i), ",");
  return (v < 0 ? "-" : "") + digits;
}

std::string fixed(double value, int decimals) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(decimals) << value;
  return out.str();
}

namespace {

std::string signed_percent(double fraction) {
  return (fraction >= 0 ? "+" : "") + fixed(100.0 * fraction, 1) + "%";
}

std::string band_percent(double fraction) { return fixed(100.0 * fraction, 0) + "%"; }

std::string seconds_text(double s) {
  if (s >= 1e-3) return fixed(s * 1e3, 3) + " ms";
  return fixed(s * 1e6, 2) + " us";
}

// RETURNS: "baseline: why; current: why" for the unusable sides ("" when both are usable).
std::string problems_note(const Reading& base, const Reading& cur) {
  std::string note;
  if (!base.usable()) note = "baseline: " + base.problem;
  if (!cur.usable()) note += (note.empty() ? "" : "; ") + std::string("current: ") + cur.problem;
  return note;
}

// A check that cannot be computed: it fails, naming what made it so.
Check unusable_check(const std::string& name, const std::string& band, const Reading& base, const Reading& cur) {
  return {name, base.text, cur.text, band, Verdict::fail, problems_note(base, cur)};
}

bool both_usable(const Reading& base, const Reading& cur) { return base.usable() && cur.usable(); }

// RETURNS: the reading of sweep position t of a counted implementation.
Reading step_reading(const InstructionCounts& counts, const GateWorkload& w, int t) {
  const auto it = counts.sweep.find(t);
  if (it == counts.sweep.end()) return missing("not measured", "not measured");
  Reading r = count(it->second, kRegionZero, w.sweep.steps);
  const std::vector<int> known = w.sweep_positions(true);
  if (r.usable() && std::find(known.begin(), known.end(), t) == known.end()) {
    r.problem = "t=" + std::to_string(t) + " is not a sweep position of the workload";
  }
  return r;
}

// RETURNS: b of Ir per step ~ t^b over every step, or why it cannot be fitted.
Reading fit_exponent(const std::map<int, Reading>& steps) {
  std::vector<double> t, ir;
  for (const auto& [position, r] : steps) {
    if (!r.usable()) {
      return missing("not fitted",
                     "not fitted: t=" + std::to_string(position) + " is unusable (" + r.problem + ")");
    }
    t.push_back(position);
    ir.push_back(r.value);
  }
  if (t.size() < 2) return missing("not fitted", "not fitted: fewer than 2 sweep positions");
  try {
    return finite(reports::fit_power_law(t, ir).exponent, 3);
  } catch (const Error& e) {
    return missing("not fitted", std::string("not fitted: ") + e.what());
  }
}

}  // namespace

Reading missing(const std::string& text, const std::string& problem) { return {0, text, problem}; }

Reading count(std::uint64_t value, const std::string& zero_means, double divisor) {
  if (value == 0) return {0, "0", "0 is " + zero_means};
  // Counts stay below 2^53 (the largest region here is ~1e8 Ir), so a double holds them exactly.
  const double v = static_cast<double>(value) / divisor;
  return {v, with_commas(v), ""};
}

Reading finite(double value, int decimals) {
  const std::string text = fixed(value, decimals);
  if (std::isfinite(value)) return {value, text, ""};
  return {value, text, text + " is not a finite number"};
}

std::set<int> expected_positions(const GateWorkload& w, const ImplMeasurement& im) {
  std::set<int> out(w.sweep.positions.begin(), w.sweep.positions.end());
  if (im.instructions) {
    for (const auto& [t, ir] : im.instructions->sweep) out.insert(t);
  }
  return out;
}

std::string samples_problem(const std::vector<double>& seconds) {
  for (std::size_t i = 0; i < seconds.size(); ++i) {
    if (!std::isfinite(seconds[i]) || seconds[i] <= 0) {
      std::ostringstream out;
      out << "seconds_per_step[" << i << "] is " << seconds[i] << " (a duration is finite and > 0)";
      return out.str();
    }
  }
  return "";
}

ImplReadings read_impl(const ImplMeasurement& im, const GateWorkload& w, const std::set<int>& positions) {
  ImplReadings r;
  for (const auto& [name, value] : im.counters.as_map()) r.counters[name] = count(value, kCounterZero);
  r.counted = im.instructions.has_value();
  if (r.counted) {
    r.decode = count(im.instructions->decode, kRegionZero);
    for (int t : positions) r.steps[t] = step_reading(*im.instructions, w, t);
    r.exponent = fit_exponent(r.steps);
  } else {
    const std::string why = "not counted (" + im.instructions_skipped + ")";
    r.decode = missing("not counted", why);
    r.exponent = missing("not counted", why);
  }
  r.samples_problem = samples_problem(im.seconds_per_step);
  return r;
}

Reading ratio_reading(const ImplReadings* naive, const ImplReadings& impl, int t) {
  if (naive == nullptr) return missing("-", "naive is not measured");
  if (!naive->counted) return missing("-", "naive is not counted");
  if (!impl.counted) return missing("-", "not counted");
  const auto n = naive->steps.find(t), x = impl.steps.find(t);
  const std::string at = " at t=" + std::to_string(t);
  if (n == naive->steps.end() || !n->second.usable()) {
    return missing("-", "naive" + at + " is " + (n == naive->steps.end() ? "not measured" : n->second.problem));
  }
  if (x == impl.steps.end() || !x->second.usable()) {
    return missing("-", "the count" + at + " is " + (x == impl.steps.end() ? "not measured" : x->second.problem));
  }
  return finite(n->second.value / x->second.value, 2);
}

// Exact: any difference fails, whatever its direction (work or memory that changed).
Check exact_check(const std::string& name, const Reading& base, const Reading& cur) {
  if (!both_usable(base, cur)) return unusable_check(name, "exact", base, cur);
  const bool same = base.value == cur.value;
  Check c{name, base.text, cur.text, "exact", same ? Verdict::pass : Verdict::fail, ""};
  if (!same) {
    const double diff = cur.value - base.value;
    c.note = (diff > 0 ? "+" : "") + with_commas(diff) + " (" + signed_percent(diff / base.value) + ")";
  }
  return c;
}

// One-sided: more instructions than the band fails; fewer passes, and asks for an update
// when it is more than the improvement threshold.
Check instructions_check(const std::string& name, const Reading& base, const Reading& cur, const GateBands& b) {
  const std::string band = "<= +" + band_percent(b.instructions_up);
  if (!both_usable(base, cur)) return unusable_check(name, band, base, cur);
  const double change = cur.value / base.value - 1.0;
  Check c{name, base.text, cur.text, band, change > b.instructions_up ? Verdict::fail : Verdict::pass,
          signed_percent(change)};
  if (change < -b.instructions_down) c.note += " improved: update the baseline";
  return c;
}

// Steeper growth is worse; a flatter one passes and asks for a baseline update.
Check exponent_check(const std::string& name, const Reading& base, const Reading& cur, const GateBands& b) {
  const std::string band = "<= +" + fixed(b.exponent, 2);
  if (!both_usable(base, cur)) return unusable_check(name, band, base, cur);
  const double diff = cur.value - base.value;
  Check c{name, base.text, cur.text, band, diff > b.exponent ? Verdict::fail : Verdict::pass,
          (diff >= 0 ? "+" : "") + fixed(diff, 3)};
  if (-diff > b.exponent) c.note += " improved: update the baseline";
  return c;
}

// A smaller ratio is a smaller advantage of the cache over no cache: worse.
Check ratio_check(const std::string& name, const Reading& base, const Reading& cur, const GateBands& b) {
  const std::string band = ">= -" + band_percent(b.ratio);
  if (!both_usable(base, cur)) return unusable_check(name, band, base, cur);
  const double change = cur.value / base.value - 1.0;
  Check c{name, base.text, cur.text, band, change < -b.ratio ? Verdict::fail : Verdict::pass,
          signed_percent(change)};
  if (change > b.ratio) c.note += " improved: update the baseline";
  return c;
}

Check time_check(const std::string& name, const std::vector<double>& base, const std::vector<double>& cur,
                 const GateBands& b) {
  const auto samples = [](const std::vector<double>& s) {
    const std::string why = samples_problem(s);
    return why.empty() ? Reading{0, s.empty() ? "not timed" : seconds_text(median(s)), ""} : missing("invalid", why);
  };
  const Reading bs = samples(base), cs = samples(cur);
  if (!both_usable(bs, cs)) return unusable_check(name, b.strict_time ? "strict" : "reported", bs, cs);
  if (base.empty() || cur.empty()) {
    // Nothing to compare (--time-repetitions 0): said so, reported only, never a pass.
    const char* which = base.empty() && cur.empty() ? "either" : base.empty() ? "the baseline" : "the current";
    return {name, bs.text, cs.text, "reported", Verdict::info, std::string("no comparison: not timed in ") + which};
  }
  const double mb = median(base), mc = median(cur);
  const MannWhitney u = mann_whitney_u(cur, base);
  const double change = mc / mb - 1.0;
  Check c{name, seconds_text(mb), seconds_text(mc), "reported", Verdict::info, ""};
  std::ostringstream note;
  note << signed_percent(change) << ", U-test p=" << fixed(u.p_two_sided, 3) << " (" << base.size() << " vs "
       << cur.size() << " medians)";
  c.note = note.str();
  if (b.strict_time) {
    c.band = "p<" + fixed(b.time_alpha, 2) + " & >+" + band_percent(b.time_min_effect);
    const bool slower = u.p_two_sided < b.time_alpha && change > b.time_min_effect;
    c.verdict = slower ? Verdict::fail : Verdict::pass;
  }
  return c;
}

}  // namespace kvbench::gate::rules
