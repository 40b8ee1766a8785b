#include "ci/checks.h"

#include <algorithm>
#include <iomanip>
#include <set>

#include "ci/checks_rules.h"
#include "harness/error.h"
#include "harness/fit.h"

namespace kvbench::gate {
namespace {

using rules::ImplReadings;
using rules::Reading;

// Both sides, by implementation name: the readings of each side where it was measured.
struct Sides {
  const Measurement& base;
  const Measurement& cur;
  std::map<std::string, ImplReadings> base_readings, cur_readings;
};

const ImplMeasurement* measured(const Measurement& m, const std::string& name) {
  const auto it = m.impls.find(name);
  return it == m.impls.end() ? nullptr : &it->second;
}

const ImplReadings* readings(const std::map<std::string, ImplReadings>& r, const std::string& name) {
  const auto it = r.find(name);
  return it == r.end() ? nullptr : &it->second;
}

// RETURNS: every name either side holds, measured or unavailable.
std::set<std::string> all_names(const Measurement& base, const Measurement& cur) {
  std::set<std::string> names;
  for (const Measurement* m : {&base, &cur}) {
    for (const auto& [name, im] : m->impls) names.insert(name);
    for (const auto& [name, why] : m->unavailable) names.insert(name);
  }
  return names;
}

// Reads each side of each implementation over the same positions: the union of what the
// workload asks for and what either side measured.
Sides read_sides(const Measurement& base, const Measurement& cur) {
  Sides s{base, cur, {}, {}};
  for (const std::string& name : all_names(base, cur)) {
    const ImplMeasurement* b = measured(base, name);
    const ImplMeasurement* c = measured(cur, name);
    std::set<int> positions;
    if (b) positions = rules::expected_positions(base.workload, *b);
    if (c) {
      const std::set<int> more = rules::expected_positions(cur.workload, *c);
      positions.insert(more.begin(), more.end());
    }
    if (b) s.base_readings[name] = rules::read_impl(*b, base.workload, positions);
    if (c) s.cur_readings[name] = rules::read_impl(*c, cur.workload, positions);
  }
  return s;
}

std::string reason(const std::map<std::string, std::string>& unavailable, const std::string& name) {
  const auto it = unavailable.find(name);
  return it == unavailable.end() ? "" : it->second;
}

// The row for an implementation that is not measured on both sides. Losing a gated
// implementation fails; so does a new one (it is gated once --update has added it). One
// that is unavailable (no device here, or where the baseline was written) is skipped, by name.
Check presence_check(const Measurement& base, const Measurement& cur, const std::string& name) {
  const std::string name_b = "present/" + name;
  const bool in_b = base.impls.count(name) > 0, in_c = cur.impls.count(name) > 0;
  const std::string why_b = reason(base.unavailable, name), why_c = reason(cur.unavailable, name);
  if (in_b && !why_c.empty()) return {name_b, "measured", "unavailable", "-", Verdict::skip, "current: " + why_c};
  if (in_b) {
    return {name_b, "measured", "absent", "present", Verdict::fail,
            "current: not in this build; update the baseline if it was removed on purpose"};
  }
  if (in_c && !why_b.empty()) {
    return {name_b, "unavailable", "measured", "-", Verdict::skip,
            "not gated: unavailable where the baseline was written (" + why_b + ")"};
  }
  if (in_c) {
    return {name_b, "absent", "measured", "present", Verdict::fail,
            "baseline: not in it; a new implementation is gated once --update adds it"};
  }
  // Measured on neither side: nothing gated is lost.
  std::string why = !why_b.empty() && !why_c.empty() ? "unavailable on both sides; current: " + why_c
                    : !why_c.empty()                 ? "current: " + why_c + "; not in the baseline"
                                                     : "baseline: " + why_b + "; not registered in this build";
  return {name_b, why_b.empty() ? "absent" : "unavailable", why_c.empty() ? "absent" : "unavailable", "-",
          Verdict::skip, why};
}

void add_counter_checks(GateResult& result, const std::string& name, const ImplMeasurement& bi,
                        const ImplMeasurement& ci, const ImplReadings& rb, const ImplReadings& rc) {
  for (const auto& [counter, base] : rb.counters) {
    const auto cur = rc.counters.find(counter);
    const Reading c = cur == rc.counters.end() ? rules::missing("absent", "absent") : cur->second;
    Check check = rules::exact_check("counters/" + name + "/" + counter, base, c);
    // Counters of different phases count different work: no equality of them means anything.
    if (bi.counters.phases != ci.counters.phases) {
      check.verdict = Verdict::fail;
      check.note += (check.note.empty() ? "" : "; ") + std::string("phases ") + bi.counters.phases + " vs " +
                    ci.counters.phases;
    }
    result.checks.push_back(check);
  }
}

// Instruction counts counted on one side only fail (lost, or not in the baseline yet);
// counted on neither, the row says so (skip).
void add_instruction_checks(GateResult& result, const std::string& name, const ImplMeasurement& bi,
                            const ImplMeasurement& ci, const ImplReadings& rb, const ImplReadings& rc,
                            const GateBands& b) {
  const std::string prefix = "instructions/" + name;
  if (!rb.counted || !rc.counted) {
    const std::string why_b = "not counted (" + bi.instructions_skipped + ")";
    const std::string why_c = "not counted (" + ci.instructions_skipped + ")";
    if (!rb.counted && !rc.counted) {
      result.checks.push_back({prefix, "not counted", "not counted", "-", Verdict::skip, "current: " + why_c});
    } else if (rb.counted) {
      result.checks.push_back({prefix, "counted", "not counted", "counted", Verdict::fail, "current: " + why_c});
    } else {
      result.checks.push_back({prefix, "not counted", "counted", "counted", Verdict::fail,
                               "baseline: " + why_b + "; gated once --update writes them into it"});
    }
    return;
  }
  result.checks.push_back(rules::instructions_check(prefix + "/decode", rb.decode, rc.decode, b));
  for (const auto& [t, base] : rb.steps) {
    result.checks.push_back(
        rules::instructions_check(prefix + "/step@t=" + std::to_string(t), base, rc.steps.at(t), b));
  }
  result.checks.push_back(rules::exponent_check("scaling/" + name + "/exponent", rb.exponent, rc.exponent, b));
}

// naive against each other implementation counted on either side, at the ratio position.
void add_ratio_checks(GateResult& result, const Sides& s, const std::set<std::string>& both,
                      const GateBands& b) {
  const ImplReadings* naive_b = readings(s.base_readings, "naive");
  const ImplReadings* naive_c = readings(s.cur_readings, "naive");
  if (!(naive_b && naive_b->counted) && !(naive_c && naive_c->counted)) return;  // no reference either side
  const int t = s.cur.workload.sweep.ratio_position;
  for (const std::string& name : both) {
    const ImplReadings& rb = s.base_readings.at(name);
    const ImplReadings& rc = s.cur_readings.at(name);
    if (name == "naive" || (!rb.counted && !rc.counted)) continue;
    result.checks.push_back(rules::ratio_check("scaling/naive_over_" + name + "@t=" + std::to_string(t),
                                               rules::ratio_reading(naive_b, rb, t),
                                               rules::ratio_reading(naive_c, rc, t), b));
  }
}

void require_comparable(const Measurement& base, const Measurement& cur, const GateBands& b) {
  const std::string workload_diff = describe_difference(base.workload, cur.workload);
  require(workload_diff.empty(), "the baseline was measured with another workload (baseline vs current: ",
          workload_diff, "); write a new baseline with --update (ci/README.md)");
  require(!base.impls.empty(), "the baseline holds no implementations: nothing to compare");
  require(!cur.impls.empty(), "the current measurement holds no implementations: nothing to compare");
  base.workload.validate();  // the per-step counts divide by its steps
  if (!b.strict_time) return;
  for (const auto& [name, im] : base.impls) {
    const auto it = cur.impls.find(name);
    if (it == cur.impls.end()) continue;
    const std::size_t nb = im.seconds_per_step.size(), nc = it->second.seconds_per_step.size();
    require(static_cast<int>(std::min(nb, nc)) >= b.time_min_repetitions, "--strict-time needs >= ",
            b.time_min_repetitions, " wall-clock repetitions on each side; '", name, "' has ", nb,
            " in the baseline and ", nc, " now");
  }
}

}  // namespace

int GateResult::count(Verdict verdict) const {
  return static_cast<int>(std::count_if(checks.begin(), checks.end(),
                                        [verdict](const Check& c) { return c.verdict == verdict; }));
}

std::vector<std::pair<int, double>> per_step(const InstructionCounts& counts, int steps) {
  std::vector<std::pair<int, double>> out;
  for (const auto& [t, ir] : counts.sweep) out.emplace_back(t, static_cast<double>(ir) / steps);
  return out;
}

GateResult compare(const Measurement& base, const Measurement& cur, const GateBands& b) {
  require_comparable(base, cur, b);
  GateResult result;
  const std::string toolchain_diff = base.toolchain.describe_difference(cur.toolchain);
  if (!toolchain_diff.empty()) {
    result.notes.push_back("toolchain differs from the baseline's (baseline vs current): " + toolchain_diff +
                           ". Instruction counts depend on it; if this is the CI toolchain now, "
                           "update the baseline (ci/README.md).");
  }
  const Sides s = read_sides(base, cur);
  std::set<std::string> both;  // measured on both sides
  for (const std::string& name : all_names(base, cur)) {
    const ImplMeasurement* bi = measured(base, name);
    const ImplMeasurement* ci = measured(cur, name);
    if (!bi || !ci) {
      result.checks.push_back(presence_check(base, cur, name));
      continue;
    }
    both.insert(name);
    const ImplReadings& rb = s.base_readings.at(name);
    const ImplReadings& rc = s.cur_readings.at(name);
    add_counter_checks(result, name, *bi, *ci, rb, rc);
    add_instruction_checks(result, name, *bi, *ci, rb, rc, b);
  }
  add_ratio_checks(result, s, both, b);
  for (const std::string& name : both) {
    result.checks.push_back(rules::time_check("time/" + name + "/decode_step", base.impls.at(name).seconds_per_step,
                                              cur.impls.at(name).seconds_per_step, b));
  }
  return result;
}

std::vector<std::string> measurement_problems(const Measurement& m) {
  std::vector<std::string> out;
  if (m.impls.empty()) out.push_back("impls: empty (no implementation was measured)");
  for (const auto& [name, im] : m.impls) {
    const std::string at = "impls." + name + ".";
    const ImplReadings r = rules::read_impl(im, m.workload, rules::expected_positions(m.workload, im));
    for (const auto& [counter, reading] : r.counters) {
      if (!reading.usable()) out.push_back(at + "counters." + counter + ": " + reading.problem);
    }
    if (r.counted) {
      if (!r.decode.usable()) out.push_back(at + "instructions.decode: " + r.decode.problem);
      bool steps_usable = true;
      for (const auto& [t, reading] : r.steps) {
        if (reading.usable()) continue;
        steps_usable = false;
        out.push_back(at + "instructions.sweep." + std::to_string(t) + ": " + reading.problem);
      }
      // An unusable step already says why the fit fails; this is for a fit that fails alone.
      if (steps_usable && !r.exponent.usable()) {
        out.push_back(at + "instructions.sweep (its scaling exponent): " + r.exponent.problem);
      }
    }
    if (!r.samples_problem.empty()) out.push_back(at + r.samples_problem);
  }
  return out;
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
