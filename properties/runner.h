// Runs one property over one implementation with RapidCheck, for `kvbench verify`,
// `kvbench fuzz` and the gtest runner alike, so that a reproduce string printed by any of
// them replays in the others (the RapidCheck test id is "<property>/<implementation>").
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include <rapidcheck/detail/TestParams.h>

#include "harness/registry.h"
#include "properties/coverage.h"
#include "properties/property.h"

namespace kvbench::props {

enum class Verdict { passed, failed, skipped };

struct Outcome {
  Verdict verdict = Verdict::passed;
  std::string reason;     // skipped: why (unavailable, not applicable, not in RC_PARAMS)
  std::string note;       // passed: a remark ("the reproduced case passes")
  std::string report;     // failed: RapidCheck's message (counterexample, shrunk case)
  std::string reproduce;  // failed: RC_PARAMS="reproduce=..." that replays the failure
  int cases = 0;          // test cases run (successful ones, plus the failing one)
  int shrinks = 0;        // accepted shrinks of a failing case
  double seconds = 0;
  // What the implementation was asked to do over every case run (shrinking included),
  // counted from the calls that reached its KvCache on this thread. Empty when skipped.
  Coverage coverage;
};

// RETURNS: "<property>/<implementation>", the RapidCheck test id (the key of reproduce=).
std::string test_id(const Property& property, const ImplInfo& impl);

// Called after every test case and every accepted shrink (for progress lines).
using Progress = std::function<void(int cases, int shrinks)>;

// RETURNS: the test parameters RapidCheck's configuration gives (RC_PARAMS or defaults).
rc::detail::TestParams configured_params();
// RETURNS: true when RC_PARAMS holds reproduce=... entries (then only their ids run).
bool reproducing();

// Runs `property` over `impl` with `params` (seed, max_success, max_size, noshrink).
// Skips with a reason when the implementation is unavailable here, the property does not
// apply to it, or RC_PARAMS reproduces other tests. When RC_PARAMS has a reproduce entry
// for this test id, that failing case is replayed instead of fresh cases. Records the
// run's coverage with a CoverageRecorder (the property body must call the caches on this
// thread, as RapidCheck runs it).
Outcome run_property(const Property& property, const ImplInfo& impl,
                     const rc::detail::TestParams& params, const Progress& progress = {});

}  // namespace kvbench::props
