// Planted regressions for the gate's self-test: variants of cpu_cached that compute the same
// outputs with more work. They are compiled into the test executables only (tests/ci/) and
// registered with caps.planted, never into the shipped kvbench binary.
//
// Each wraps a real cpu_cached instance (made through the registry, so they follow whatever
// cpu_cached becomes) and reports its counters:
//   wrapped_cpu_cached       the control: forwards every call, adds nothing. It must PASS the
//                            gate, so the failures below come from the planted work and not
//                            from the wrapping.
//   planted_copy_every_step  before each decode, forks every decoded sequence into a new one
//                            and drops the old: the whole cache is copied every step (as a
//                            cache that reallocates on append does). Counted work unchanged.
//   planted_recompute_last16 each decode truncates the last 16 tokens and prefills them again
//                            with the new one: K/V of the last 16 tokens recomputed every step
//                            (the counters show it).
//   planted_extra_10pct      every 10th decode call is done twice (rolled back with truncate
//                            and decoded again), i.e. ~10% more decode work; the repeat is
//                            left out of its counters, like work an implementation forgets to
//                            count, so that only the instruction counts can see it.
#pragma once

#include <string>
#include <vector>

#include "harness/registry.h"

namespace kvbench::planted {

inline const std::vector<std::string>& names() {
  static const std::vector<std::string> all = {"wrapped_cpu_cached", "planted_copy_every_step",
                                               "planted_recompute_last16", "planted_extra_10pct"};
  return all;
}

// Adds the four entries above (caps.planted = true). Their instances create the inner
// cpu_cached through Registry::global().
void register_planted(Registry& registry);

}  // namespace kvbench::planted
