// A device's own bandwidth ceilings, measured in the benchmark process when a selected
// implementation runs on that device, so that a report can set a device implementation's K/V
// bytes read per second against what the device streams in the same run (not against the
// host's single-thread bandwidth, which says nothing about a GPU).
//
// A device is measured by the bandwidth probe its implementation registered (harness/
// device_probes.h; "cuda": impls/cuda_probes.cpp, CUDA builds). The JSON layout written
// into the `kvbench` context under "device_bandwidth" is built here from plain numbers, so it
// is tested without a device.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "harness/device_probes.h"
#include "harness/registry.h"

namespace kvbench::bench {

// One timed measurement of one kind on the device.
// One probe's figures (harness/device_probes.h says what each counts) and when they were taken.
struct DeviceBandwidthRun : BandwidthMeasurement {
  std::string when;  // "before" or "after" the sweeps
};

struct DeviceBandwidth {
  std::string device;  // ImplInfo::device: "cuda"
  std::string name;    // the device's own name ("NVIDIA H100 80GB HBM3")
  std::vector<DeviceBandwidthRun> runs;
  std::string error;   // non-empty: the measurement failed (what was thrown)
};

// RETURNS: the devices other than "cpu" that some of `impls` run on, in order of first
// appearance (each once). The runner measures each (recording an error for one that has no
// registered probe).
std::vector<std::string> devices_of(const std::vector<const ImplInfo*>& impls);

// Measures `device`'s read-only and copy bandwidth once each (label `when`) and appends the
// runs to `into`, through the probe registered in Registry::global() for into.device; sets
// into.error (and stops) when the device cannot be measured or has no probe (e.g. "cuda" in
// a build without CUDA). Never throws.
void measure_device_bandwidth(const std::string& when, DeviceBandwidth& into);

// RETURNS: the context entry. Keys: device, name; read_bytes_per_second and
// copy_bytes_per_second (the best pass over all runs of each kind; 0 when none);
// read_counts / copy_counts (what a rate counts: the copy counts bytes read + written,
// 2 x the bytes copied); copy_bytes_counted_per_byte_copied (2); buffer_bytes; runs (each
// with its best and median rates); error when set.
nlohmann::json device_bandwidth_json(const DeviceBandwidth& measured);

}  // namespace kvbench::bench
