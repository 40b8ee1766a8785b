// The gate's checks: a baseline and a current measurement in, one line per check out.
//
// Pass/fail only on signals noise cannot move (ci/README.md gives the reasoning):
//   counters/IMPL/NAME            exact: op counters and bytes held of the counters workload;
//   instructions/IMPL/decode      callgrind Ir of the decode workload, at most +3% (band);
//   instructions/IMPL/step@t=T    callgrind Ir per decode step at each sweep position, +3%;
//   scaling/IMPL/exponent         b of Ir per step ~ t^b over the sweep, at most +0.15;
//   scaling/naive_over_IMPL@t=T   naive's Ir per step / IMPL's at t = T, at most -15%.
// Bands are one-sided: a build fails only when it got worse; an improvement beyond the band
// passes with a note to update the baseline.
// Every check is built from the union of what the two measurements hold (implementations,
// counters, instruction counts, sweep positions, with the workload's sweep positions always
// expected): a signal missing on one side, or a value that cannot be a measurement (a count
// of 0, a duration that is not finite and > 0, an exponent that is not finite), fails by name
// and side (checks_rules.h); nothing passes on a value that could not be read. An
// implementation on one side only fails (removed, or new: gated once --update adds it)
// unless it is unavailable on the other (skipped, with the reason).
// Wall-clock (time/IMPL/decode_step) is reported only, unless strict_time: then a slowdown
// fails when the Mann-Whitney U test rejects "same distribution" (p < alpha) and the median
// grew by more than the minimum effect.
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "ci/measurement.h"

namespace kvbench::gate {

struct GateBands {
  double instructions_up = 0.03;    // fail when Ir grows by more than this fraction
  double instructions_down = 0.03;  // pass, but say "improved: update the baseline", below -this
  double exponent = 0.15;           // b - b_baseline allowed
  double ratio = 0.15;              // 1 - ratio / ratio_baseline allowed
  bool strict_time = false;
  double time_alpha = 0.05;         // U-test significance level
  double time_min_effect = 0.05;    // median must grow by more than this to fail
  int time_min_repetitions = 9;     // samples each side that strict_time requires
};

enum class Verdict { pass, fail, info, skip };

struct Check {
  std::string name;
  std::string baseline;  // formatted values
  std::string current;
  std::string band;      // "exact", "<= +3%", "<= +0.15", ">= -15%", "reported"
  Verdict verdict = Verdict::pass;
  std::string note;      // "+10.2%", "improved by 12%: update the baseline", "U-test p=0.3"
};

struct GateResult {
  std::vector<std::string> notes;  // printed before the table (a toolchain difference)
  std::vector<Check> checks;
  int count(Verdict verdict) const;
  bool passed() const { return count(Verdict::fail) == 0; }
};

// Throws Error (unusable input, exit 2) when the workloads differ, either side holds no
// implementation, or strict_time is asked for with fewer than time_min_repetitions samples
// on either side.
GateResult compare(const Measurement& baseline, const Measurement& current,
                   const GateBands& bands);

// RETURNS: one line per value of `measurement` that no check could read, each naming its JSON
// field ("impls.naive.instructions.decode: 0 is impossible: ..."); empty when every value is
// usable. --update refuses to write a baseline while this is not empty.
std::vector<std::string> measurement_problems(const Measurement& measurement);

// Prints the notes, a table (CHECK BASELINE CURRENT BAND VERDICT NOTE) and, last,
// "N passed, M failed" plus the reported-only and skipped counts.
void print_result(const GateResult& result, std::ostream& out);

// RETURNS: Ir per step of each sweep position (region total / sweep steps).
std::vector<std::pair<int, double>> per_step(const InstructionCounts& counts, int steps);

}  // namespace kvbench::gate
