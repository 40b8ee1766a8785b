#include "harness/bench/bandwidth_schedule.h"

#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>
#include <string>

#include "harness/bench/device_bandwidth.h"
#include "harness/bench/progress.h"
#include "harness/bench/sweep.h"

namespace kvbench::bench {

namespace {
using Clock = std::chrono::steady_clock;
}  // namespace

void BandwidthSchedule::before() {
  outcome_.bandwidth_before = measure_now("before");
  outcome_.reference_before = measure_reference("before");
  for (const auto& [position, bytes] : matched_sizes()) {
    BenchOutcome::MatchedBandwidth m;
    m.position = position;
    m.runs.push_back({"before", measure_now("before", bytes)});
    outcome_.matched_bandwidth.push_back(m);
  }
  for (const std::string& device : devices_of(impls_)) {
    outcome_.device_bandwidth.push_back(DeviceBandwidth{device, "", {}, ""});
  }
  measure_devices("before");
}

void BandwidthSchedule::adjacent(const BenchmarkId& id) {
  if (std::find(o_.long_impls.begin(), o_.long_impls.end(), id.impl) == o_.long_impls.end()) {
    return;
  }
  const auto sizes = matched_sizes();
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    if (sizes[i].first != id.size) continue;
    const Bandwidth b = measure_now("adjacent", sizes[i].second);
    outcome_.matched_bandwidth[i].runs.push_back({"adjacent to " + benchmark_name(id), b});
  }
}

void BandwidthSchedule::after() {
  outcome_.bandwidth_after = measure_now("after");
  outcome_.reference_after = measure_reference("after");
  const auto sizes = matched_sizes();
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    outcome_.matched_bandwidth[i].runs.push_back({"after", measure_now("after", sizes[i].second)});
  }
  measure_devices("after");
}

std::vector<std::pair<int, std::size_t>> BandwidthSchedule::matched_sizes() const {
  std::vector<std::pair<int, std::size_t>> sizes;
  bool long_impl_runs = false;
  for (const ImplInfo* impl : impls_) {
    long_impl_runs = long_impl_runs || std::find(o_.long_impls.begin(), o_.long_impls.end(),
                                                 impl->name) != o_.long_impls.end();
  }
  if (!long_impl_runs) return sizes;
  for (int t : o_.long_positions) {
    if (t >= o_.config.capacity) continue;
    sizes.push_back({t, std::max<std::size_t>(4096, (static_cast<std::size_t>(t) + 1) *
                                                        o_.config.kv_bytes_per_token())});
  }
  return sizes;
}

std::size_t BandwidthSchedule::reference_bytes() const {
  if (o_.bandwidth_bytes > 0) return o_.bandwidth_bytes;
  return std::max<std::size_t>(8 * outcome_.machine.llc_bytes, std::size_t{64} << 20);
}

std::vector<ReadReference> BandwidthSchedule::measure_reference(const char* when) {
  const auto start = Clock::now();
  const std::vector<int> threads = merge_sweeps({1}, o_.threads);
  std::vector<ReadReference> refs = measure_read_reference(
      std::max<std::size_t>(reference_bytes(), std::size_t{1} << 20), threads,
      o_.bandwidth_passes);
  for (const ReadReference& r : refs) {
    say(o_.progress, "read-only reference (", when, ", ", r.threads, " thread",
        r.threads == 1 ? "" : "s", ", ", r.buffer_bytes / 1048576.0,
        " MiB, huge-page advised): best ", r.best_bytes_per_second / 1e9, " GB/s (",
        r.best_variant, "), median ", r.median_bytes_per_second / 1e9, " GB/s");
  }
  say(o_.progress, "    (", format_seconds(seconds_since(start)), ")");
  return refs;
}

Bandwidth BandwidthSchedule::measure_now(const char* when, std::size_t bytes) {
  if (bytes == 0) bytes = reference_bytes();
  const auto start = Clock::now();
  const Bandwidth b = measure_bandwidth(bytes, o_.bandwidth_passes);
  say(o_.progress, "bandwidth (", when, ", one thread, ", bytes / 1048576.0,
      " MiB buffers): read ", b.read_bytes_per_second / 1e9, " GB/s, copy ",
      b.copy_bytes_per_second / 1e9, " GB/s (read + written), ",
      format_seconds(seconds_since(start)));
  return b;
}

void BandwidthSchedule::measure_devices(const char* when) {
  for (DeviceBandwidth& d : outcome_.device_bandwidth) {
    const auto start = Clock::now();
    measure_device_bandwidth(when, d);
    if (!d.error.empty()) {
      say(o_.progress, "device bandwidth (", d.device, ", ", when, "): not measured: ", d.error);
      continue;
    }
    const nlohmann::json j = device_bandwidth_json(d);
    say(o_.progress, "device bandwidth (", d.device, " ", d.name, ", ", when, "): read ",
        j["read_bytes_per_second"].get<double>() / 1e9, " GB/s, copy ",
        j["copy_bytes_per_second"].get<double>() / 1e9, " GB/s (read + written), ",
        format_seconds(seconds_since(start)));
  }
}

}  // namespace kvbench::bench
