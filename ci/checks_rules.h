// The rules of the gate's checks, one side and one value at a time (internal to ci/; the
// tests reach through it to cases compare() cannot produce, such as a NaN exponent).
//
// checks.cpp walks the union of what the baseline and the current measurement hold and asks
// these functions for one Reading per side of each expected signal. A Reading is either a
// usable number or the reason it is not one (not measured, 0 where the workload cannot give
// 0, not finite); a check with an unusable side FAILS and its note names the side, the value
// and why. No check passes on a value it could not read: a relative change from 0, a ratio
// over a missing count or the fit of a sweep with a hole is never computed.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "ci/checks.h"
#include "ci/measurement.h"

namespace kvbench::gate::rules {

struct Reading {
  double value = 0;     // meaningful when usable()
  std::string text;     // what the table shows: "1,234", "not measured", "0", "nan"
  std::string problem;  // "" when usable, else why not: "0 (... cannot be 0)"
  bool usable() const { return problem.empty(); }
};

// RETURNS: an unusable reading showing `text` ("not measured") for `problem`.
Reading missing(const std::string& text, const std::string& problem);
// RETURNS: a count of a region or counter that the workload cannot leave at 0, scaled by
// 1 / divisor (per step). `zero_means` says why 0 is impossible, for the note.
Reading count(std::uint64_t value, const std::string& zero_means, double divisor = 1);
// RETURNS: a fitted exponent or a ratio: usable when finite.
Reading finite(double value, int decimals);

// Why each count cannot be 0 under the gate's workloads (the notes quote these).
extern const char* const kCounterZero;  // counters workload: prefill, decode, live sequences
extern const char* const kRegionZero;   // a decode region: callgrind counted nothing

// One implementation's readings on one side, over the positions asked for.
struct ImplReadings {
  std::map<std::string, Reading> counters;  // kv_projection_rows, ..., bytes_held
  bool counted = false;                     // has instruction counts
  Reading decode;                           // Ir of the decode workload
  std::map<int, Reading> steps;             // position -> Ir per step
  Reading exponent;                         // fitted over `steps`; unusable if any step is
  std::string samples_problem;              // "" or why seconds_per_step is unusable
};

// REQUIRES: workload.sweep.steps >= 1. `positions`: the sweep positions this side must hold
// (a missing one, or one that is not a position of `workload`, is an unusable step).
ImplReadings read_impl(const ImplMeasurement& im, const GateWorkload& workload, const std::set<int>& positions);

// RETURNS: workload.sweep.positions plus the positions `im` measured (when counted).
std::set<int> expected_positions(const GateWorkload& workload, const ImplMeasurement& im);

// RETURNS: "" when every sample is a finite duration > 0, else the first bad one and why.
std::string samples_problem(const std::vector<double>& seconds);

// The checks, each from the baseline's reading and the current's. Any unusable side: FAIL,
// the note "baseline: <problem>; current: <problem>" naming the sides that are unusable.
Check exact_check(const std::string& name, const Reading& base, const Reading& cur);
Check instructions_check(const std::string& name, const Reading& base, const Reading& cur, const GateBands& b);
Check exponent_check(const std::string& name, const Reading& base, const Reading& cur, const GateBands& b);
Check ratio_check(const std::string& name, const Reading& base, const Reading& cur, const GateBands& b);
// Wall-clock, reported (or gated with strict_time). Samples that are no durations FAIL;
// a side without samples is reported as such (info), never as a comparison.
Check time_check(const std::string& name, const std::vector<double>& base, const std::vector<double>& cur,
                 const GateBands& b);

// RETURNS: naive's Ir per step over `impl`'s at one position, from one side's readings
// (unusable when either is, or naive is not counted on that side).
Reading ratio_reading(const ImplReadings* naive, const ImplReadings& impl, int position);

// Table text helpers shared with checks.cpp.
std::string with_commas(double value);
std::string fixed(double value, int decimals);

}  // namespace kvbench::gate::rules
