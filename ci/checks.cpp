#include "ci/checks.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iomanip>
#include <sstream>

#include "ci/gate_stats.h"
#include "harness/error.h"
#include "harness/fit.h"

namespace kvbench::gate {
namespace {

std::string with_commas(double value) {
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

std::string signed_percent(double fraction) {
  return (fraction >= 0 ? "+" : "") + fixed(100.0 * fraction, 1) + "%";
}

std::string band_percent(double fraction) { return fixed(100.0 * fraction, 0) + "%"; }

std::string seconds_text(double s) {
  if (s >= 1e-3) return fixed(s * 1e3, 3) + " ms";
  return fixed(s * 1e6, 2) + " us";
}

// Exact: any difference fails, whatever its direction (work or memory that changed).
Check exact_check(const std::string& name, std::uint64_t base, std::uint64_t cur) {
  Check c{name, with_commas(static_cast<double>(base)), with_commas(static_cast<double>(cur)),
          "exact", base == cur ? Verdict::pass : Verdict::fail, ""};
  if (base != cur) {
    const double diff = static_cast<double>(cur) - static_cast<double>(base);
    c.note = (diff > 0 ? "+" : "") + with_commas(diff);
    if (base > 0) c.note += " (" + signed_percent(diff / static_cast<double>(base)) + ")";
  }
  return c;
}

// One-sided: more instructions than the band fails; fewer passes, and asks for an update
// when it is more than the improvement threshold.
Check instructions_check(const std::string& name, double base, double cur, const GateBands& b) {
  const double change = cur / base - 1.0;
  Check c{name, with_commas(base), with_commas(cur), "<= +" + fixed(100 * b.instructions_up, 0) + "%",
          change > b.instructions_up ? Verdict::fail : Verdict::pass, signed_percent(change)};
  if (change < -b.instructions_down) c.note += " improved: update the baseline";
  return c;
}

double exponent_of(const InstructionCounts& counts, int steps) {
  std::vector<double> t, ir;
  for (const auto& [position, value] : per_step(counts, steps)) {
    t.push_back(position);
    ir.push_back(value);
  }
  return reports::fit_power_law(t, ir).exponent;
}

void add_time_check(GateResult& result, const std::string& name, const ImplMeasurement& base,
                    const ImplMeasurement& cur, const GateBands& b) {
  if (base.seconds_per_step.empty() || cur.seconds_per_step.empty()) return;
  const double mb = median(base.seconds_per_step), mc = median(cur.seconds_per_step);
  const MannWhitney u = mann_whitney_u(cur.seconds_per_step, base.seconds_per_step);
  const double change = mc / mb - 1.0;
  Check c{"time/" + name + "/decode_step", seconds_text(mb), seconds_text(mc), "reported",
          Verdict::info, ""};
  std::ostringstream note;
  note << signed_percent(change) << ", U-test p=" << fixed(u.p_two_sided, 3) << " ("
       << base.seconds_per_step.size() << " vs " << cur.seconds_per_step.size() << " medians)";
  c.note = note.str();
  if (b.strict_time) {
    c.band = "p<" + fixed(b.time_alpha, 2) + " & >+" + band_percent(b.time_min_effect);
    const bool slower = u.p_two_sided < b.time_alpha && change > b.time_min_effect;
    c.verdict = slower ? Verdict::fail : Verdict::pass;
  }
  result.checks.push_back(c);
}

}  // namespace

std::vector<std::pair<int, double>> per_step(const InstructionCounts& counts, int steps) {
  std::vector<std::pair<int, double>> out;
  for (const auto& [t, ir] : counts.sweep) out.emplace_back(t, static_cast<double>(ir) / steps);
  return out;
}

int GateResult::count(Verdict verdict) const {
  return static_cast<int>(std::count_if(checks.begin(), checks.end(),
                                        [verdict](const Check& c) { return c.verdict == verdict; }));
}

GateResult compare(const Measurement& base, const Measurement& cur, const GateBands& b) {
  const std::string workload_diff = describe_difference(base.workload, cur.workload);
  require(workload_diff.empty(), "the baseline was measured with another workload (baseline vs current: ",
          workload_diff, "); write a new baseline with --update (ci/README.md)");
  if (b.strict_time) {
    for (const auto& [name, im] : base.impls) {
      const auto it = cur.impls.find(name);
      if (it == cur.impls.end()) continue;
      const std::size_t nb = im.seconds_per_step.size(), nc = it->second.seconds_per_step.size();
      require(static_cast<int>(std::min(nb, nc)) >= b.time_min_repetitions, "--strict-time needs >= ",
              b.time_min_repetitions, " wall-clock repetitions on each side; '", name, "' has ", nb,
              " in the baseline and ", nc, " now");
    }
  }

  GateResult result;
  const std::string toolchain_diff = base.toolchain.describe_difference(cur.toolchain);
  if (!toolchain_diff.empty()) {
    result.notes.push_back("toolchain differs from the baseline's (baseline vs current): " + toolchain_diff +
                           ". Instruction counts depend on it; if this is the CI toolchain now, "
                           "update the baseline (ci/README.md).");
  }
  for (const auto& [name, im] : cur.impls) {
    (void)im;
    if (!base.impls.count(name)) {
      result.notes.push_back("'" + name + "' is not in the baseline: not gated (add it with --update)");
    }
  }
  const int sweep_steps = cur.workload.sweep.steps;
  for (const auto& [name, bi] : base.impls) {
    const auto found = cur.impls.find(name);
    if (found == cur.impls.end()) {
      const auto why = cur.unavailable.find(name);
      if (why != cur.unavailable.end()) {
        result.checks.push_back({"present/" + name, "measured", "unavailable", "-", Verdict::skip, why->second});
      } else {
        result.checks.push_back({"present/" + name, "measured", "absent", "present", Verdict::fail,
                                 "not in this build: update the baseline if it was removed on purpose"});
      }
      continue;
    }
    const ImplMeasurement& ci = found->second;
    const auto bc = bi.counters.as_map(), cc = ci.counters.as_map();
    for (const auto& [counter, value] : bc) {
      Check c = exact_check("counters/" + name + "/" + counter, value, cc.at(counter));
      if (bi.counters.phases != ci.counters.phases) {
        c.note += (c.note.empty() ? "" : "; ") + std::string("phases ") + bi.counters.phases + " vs " +
                  ci.counters.phases;
      }
      result.checks.push_back(c);
    }
    if (bi.instructions && !ci.instructions) {
      result.checks.push_back({"instructions/" + name, "counted", "not counted", "counted", Verdict::fail,
                               ci.instructions_skipped});
    } else if (bi.instructions && ci.instructions) {
      const InstructionCounts& bn = *bi.instructions;
      const InstructionCounts& cn = *ci.instructions;
      result.checks.push_back(instructions_check("instructions/" + name + "/decode",
                                                 static_cast<double>(bn.decode),
                                                 static_cast<double>(cn.decode), b));
      // Sweep positions both measured (the same workload measures the same ones; a build
      // that moved an implementation to another worker may not).
      InstructionCounts bcommon, ccommon;
      for (const auto& [t, ir] : bn.sweep) {
        const std::string check_name = "instructions/" + name + "/step@t=" + std::to_string(t);
        const auto it = cn.sweep.find(t);
        if (it == cn.sweep.end()) {
          result.checks.push_back({check_name, with_commas(static_cast<double>(ir) / sweep_steps),
                                   "not measured", "measured", Verdict::fail, ""});
          continue;
        }
        result.checks.push_back(instructions_check(check_name, static_cast<double>(ir) / sweep_steps,
                                                   static_cast<double>(it->second) / sweep_steps, b));
        bcommon.sweep[t] = ir;
        ccommon.sweep[t] = it->second;
      }
      if (bcommon.sweep.size() < 2) continue;
      const double eb = exponent_of(bcommon, sweep_steps), ec = exponent_of(ccommon, sweep_steps);
      // Steeper growth is worse; a flatter one passes and asks for a baseline update.
      Check c{"scaling/" + name + "/exponent", fixed(eb, 3), fixed(ec, 3), "<= +" + fixed(b.exponent, 2),
              ec - eb > b.exponent ? Verdict::fail : Verdict::pass, (ec >= eb ? "+" : "") + fixed(ec - eb, 3)};
      if (eb - ec > b.exponent) c.note += " improved: update the baseline";
      result.checks.push_back(c);
    }
  }

  // naive against each other counted implementation, at the ratio position.
  const int t = cur.workload.sweep.ratio_position;
  const auto naive_b = base.impls.find("naive"), naive_c = cur.impls.find("naive");
  if (naive_b != base.impls.end() && naive_c != cur.impls.end() && naive_b->second.instructions &&
      naive_c->second.instructions) {
    for (const auto& [name, bi] : base.impls) {
      const auto found = cur.impls.find(name);
      if (name == "naive" || !bi.instructions || found == cur.impls.end() || !found->second.instructions) {
        continue;
      }
      const auto at_t = [t](const ImplMeasurement& im) {
        const auto it = im.instructions->sweep.find(t);
        return it == im.instructions->sweep.end() ? 0.0 : static_cast<double>(it->second);
      };
      const double nb = at_t(naive_b->second), nc = at_t(naive_c->second);
      const double xb = at_t(bi), xc = at_t(found->second);
      if (nb <= 0 || nc <= 0 || xb <= 0 || xc <= 0) continue;  // "not measured" failed above
      const double rb = nb / xb, rc = nc / xc;
      const double change = rc / rb - 1.0;
      // A smaller ratio is a smaller advantage of the cache over no cache: worse.
      Check c{"scaling/naive_over_" + name + "@t=" + std::to_string(t), fixed(rb, 2), fixed(rc, 2),
              ">= -" + band_percent(b.ratio), change < -b.ratio ? Verdict::fail : Verdict::pass,
              signed_percent(change)};
      if (change > b.ratio) c.note += " improved: update the baseline";
      result.checks.push_back(c);
    }
  }

  for (const auto& [name, bi] : base.impls) {
    const auto found = cur.impls.find(name);
    if (found != cur.impls.end()) add_time_check(result, name, bi, found->second, b);
  }
  return result;
}

void print_result(const GateResult& result, std::ostream& out) {
  for (const std::string& note : result.notes) out << "note: " << note << "\n";
  std::size_t name_width = 5;
  for (const Check& c : result.checks) name_width = std::max(name_width, c.name.size());
  const auto verdict_text = [](Verdict v) {
    switch (v) {
      case Verdict::pass: return "pass";
      case Verdict::fail: return "FAIL";
      case Verdict::info: return "info";
      case Verdict::skip: return "skip";
    }
    return "?";
  };
  const auto row = [&](const std::string& name, const std::string& base, const std::string& cur,
                       const std::string& band, const std::string& verdict, const std::string& note) {
    out << std::left << std::setw(static_cast<int>(name_width) + 2) << name << std::right << std::setw(14)
        << base << std::setw(14) << cur << "  " << std::left << std::setw(19) << band << std::setw(7)
        << verdict << note << "\n";
  };
  row("CHECK", "BASELINE", "CURRENT", "BAND", "RESULT", "CHANGE");
  for (const Check& c : result.checks) row(c.name, c.baseline, c.current, c.band, verdict_text(c.verdict), c.note);
  out << result.count(Verdict::pass) << " passed, " << result.count(Verdict::fail) << " failed ("
      << result.count(Verdict::info) << " reported only, " << result.count(Verdict::skip) << " skipped)\n";
}

}  // namespace kvbench::gate
