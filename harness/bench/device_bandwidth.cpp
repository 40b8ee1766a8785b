#include "harness/bench/device_bandwidth.h"

#include <algorithm>
#include <exception>

#include "harness/device_probes.h"

namespace kvbench::bench {

namespace {

constexpr const char* kReadKind = "read-only streaming";
constexpr const char* kCopyKind = "device-to-device copy";

double rate(std::size_t bytes, double ms) { return ms > 0 ? static_cast<double>(bytes) / (ms * 1e-3) : 0; }

DeviceBandwidthRun from_probe(const std::string& when, const BandwidthMeasurement& m) {
  DeviceBandwidthRun r;
  static_cast<BandwidthMeasurement&>(r) = m;
  r.when = when;
  return r;
}

}  // namespace

std::vector<std::string> devices_of(const std::vector<const ImplInfo*>& impls) {
  std::vector<std::string> devices;
  for (const ImplInfo* impl : impls) {
    if (impl->device == "cpu" || impl->device.empty()) continue;
    if (std::find(devices.begin(), devices.end(), impl->device) == devices.end()) {
      devices.push_back(impl->device);
    }
  }
  return devices;
}

void measure_device_bandwidth(const std::string& when, DeviceBandwidth& into) {
  if (!into.error.empty()) return;  // failed before: do not retry (and mix) half a measurement
  // The device's implementation registers its probe (e.g. impls/cuda_probes.cpp for "cuda").
  if (const BandwidthProbe* probe = Registry::global().devices().bandwidth_probe(into.device)) {
    try {
      if (into.name.empty()) into.name = probe->device_name();
      for (const BandwidthMeasurement& m : probe->measure()) into.runs.push_back(from_probe(when, m));
    } catch (const std::exception& e) {
      into.error = e.what();
    }
    return;
  }
  into.error = "no bandwidth measurement for device '" + into.device + "' in this build" +
               (into.device == "cuda" ? " (built without CUDA)" : "");
}

nlohmann::json device_bandwidth_json(const DeviceBandwidth& measured) {
  using nlohmann::json;
  double read = 0, copy = 0;
  std::size_t buffer = 0;
  json runs = json::array();
  for (const auto& r : measured.runs) {
    const double best = rate(r.bytes_counted, r.best_ms);
    if (r.kind == kReadKind) {
      read = std::max(read, best);
      buffer = std::max(buffer, r.buffer_bytes);
    }
    if (r.kind == kCopyKind) copy = std::max(copy, best);
    runs.push_back({{"when", r.when},
                    {"kind", r.kind},
                    {"buffer_bytes", r.buffer_bytes},
                    {"bytes_counted", r.bytes_counted},
                    {"counting", r.counting},
                    {"repetitions", r.repetitions},
                    {"best_ms", r.best_ms},
                    {"median_ms", r.median_ms},
                    {"best_bytes_per_second", best},
                    {"median_bytes_per_second", rate(r.bytes_counted, r.median_ms)}});
  }
  json j = {{"device", measured.device},
            {"name", measured.name},
            {"read_bytes_per_second", read},
            {"copy_bytes_per_second", copy},
            {"read_counts", "bytes read once: a reduction kernel summing a buffer much larger "
                            "than L2 (best pass)"},
            {"copy_counts", "bytes read + bytes written (2 x the bytes copied per pass): "
                            "cudaMemcpyAsync device to device (best pass)"},
            {"copy_bytes_counted_per_byte_copied", 2},
            {"buffer_bytes", buffer},
            {"runs", runs}};
  if (!measured.error.empty()) j["error"] = measured.error;
  return j;
}

}  // namespace kvbench::bench
