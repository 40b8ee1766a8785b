// Two small implementations for the bench and report tests, so that they do not depend on
// the real ones (which land separately and run at their own speed):
//   fake_cached  keeps K/V per layer and projects one row per token and layer;
//   fake_naive   keeps the layer inputs and re-projects K/V for the whole prefix each step.
// And planted wrong variants of fake_cached, for the bench's check (caps.planted, so "all"
// leaves them out; harness/bench/check.h must catch each):
//   planted_fp16_as_fp32  rounds every stored K/V element to fp16 while declaring fp32;
//   planted_offset        from position `offset_from` on, writes a token's K/V row one slot
//                         early (over the previous token's), as a wrong position offset would;
//   planted_read_past     attends over one row past the sequence (the unused slot: NaN when
//                         ImplOptions::poison_unused, else 0).
// Both compute real attention (so their times grow like the real ones) and keep the
// counters exactly as harness/kv_cache.h defines them.
// And fake_slow_create (register_slow_create_fake): fake_cached whose create_sequence costs a
// known amount, for the bench's timing of setup apart from the decode steps.
#pragma once

#include <memory>
#include <string>

#include "harness/device_probes.h"
#include "harness/registry.h"

namespace kvbench::testing {

// Adds "fake_cached" (caps.threads = true, so it gets thread-scaling series) and
// "fake_naive" (holds_kv_cache = false) to `registry`.
void register_fake_impls(Registry& registry);

// Adds the three planted variants above to `registry`.
void register_planted_fakes(Registry& registry, int offset_from = 300);

// How fake_slow_create spends its time. Virtual seconds advance only when it says so, so that
// a timer reading them (make_virtual_timer) measures exactly what the fake declares, whatever
// the machine's load.
struct SlowCreate {
  std::string device = "cpu";     // ImplInfo::device (a device with a virtual timer: exact)
  double create_sleep = 0;        // real seconds create_sequence sleeps
  double create_virtual = 0;      // virtual seconds create_sequence takes
  double decode_virtual = 0;      // virtual seconds each decoded token takes
};

// Adds "fake_slow_create" (keeps K/V as fake_cached; caps.threads false) to `registry`.
void register_slow_create_fake(Registry& registry, const SlowCreate& how);

// RETURNS: a timer of the virtual seconds fake_slow_create advances.
std::unique_ptr<RegionTimer> make_virtual_timer();

// RETURNS: x rounded to the nearest fp16 value (ties to even; subnormals kept), as a float.
float round_to_fp16(float x);

}  // namespace kvbench::testing
