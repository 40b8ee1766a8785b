#include "harness/bench/bench_json.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <sstream>

#include "harness/aligned_buffer.h"
#include "harness/atomic_file.h"
#include "harness/bench/timer.h"

namespace kvbench::bench {

namespace {

using nlohmann::json;

json bandwidth_json(const Bandwidth& b) {
  return {{"read_bytes_per_second", b.read_bytes_per_second},
          {"copy_bytes_per_second", b.copy_bytes_per_second},
          {"buffer_bytes", b.buffer_bytes},
          {"passes", b.passes}};
}

json config_json(const ModelConfig& c) {
  return {{"layers", c.layers},       {"d_model", c.d_model},
          {"heads", c.heads},         {"kv_heads", c.kv_heads},
          {"head_dim", c.head_dim},   {"capacity", c.capacity},
          {"dtype", dtype_name(c.dtype)}, {"dtype_bytes", dtype_size(c.dtype)},
          {"seed", c.seed},           {"kv_bytes_per_token", c.kv_bytes_per_token()}};
}

json machine_json(const MachineInfo& m) {
  json caches = json::array();
  for (const auto& c : m.caches) {
    caches.push_back(
        {{"level", c.level}, {"type", c.type}, {"bytes", c.bytes}, {"shared_by", c.shared_by}});
  }
  return {{"cpu_model", m.cpu_model}, {"logical_cpus", m.logical_cpus}, {"mhz", m.mhz},
          {"caches", caches},         {"llc_bytes", m.llc_bytes},
          {"llc_detected", m.llc_detected}};
}

json worst_json(const CheckWorst& w) {
  return {{"elements", w.elements}, {"max_error", w.error}, {"allowed", w.allowed},
          {"ratio", std::isfinite(w.ratio) ? json(w.ratio) : json("inf")}, {"where", w.where}};
}

json check_json(const CheckResult& r) {
  return {{"implementation", r.impl},
          {"threads", r.threads},
          {"verdict", r.passed ? "pass" : "fail"},
          {"failure", r.failure},
          {"kind", r.kind},
          {"requested_position", r.requested_position},
          {"positions", r.positions},
          {"sampled_positions", r.sampled_positions},
          {"weaker", r.weaker},
          {"output", worst_json(r.output)},
          {"rows", worst_json(r.rows)},
          {"prepare_seconds", r.prepare_seconds},
          {"reference_seconds", r.reference_seconds},
          {"summary", describe(r)}};
}

void set_context(const std::string& key, const std::string& value) {
  auto*& context = benchmark::internal::GetGlobalContext();
  if (context == nullptr) context = new std::map<std::string, std::string>();
  (*context)[key] = value;
}

}  // namespace

json bench_context_json(const BenchOptions& options, const std::vector<const ImplInfo*>& impls,
                        const BenchOutcome& outcome, const json& preparation) {
  const Bandwidth& b = outcome.bandwidth_before;
  const Bandwidth& a = outcome.bandwidth_after;
  double read = std::max(b.read_bytes_per_second, a.read_bytes_per_second);
  json reference = json::array();
  for (std::size_t i = 0; i < outcome.reference_before.size(); ++i) {
    json runs = json::array();
    const ReadReference* best = nullptr;
    for (const auto* side : {&outcome.reference_before, &outcome.reference_after}) {
      if (i >= side->size()) continue;
      const ReadReference& r = (*side)[i];
      if (!best || r.best_bytes_per_second > best->best_bytes_per_second) best = &r;
      json variants = json::array();
      for (const ReadVariant& v : r.variants) {
        variants.push_back({{"variant", v.name()},
                            {"streams", v.streams},
                            {"vectors", v.vectors},
                            {"best_bytes_per_second", v.best_bytes_per_second},
                            {"median_bytes_per_second", v.median_bytes_per_second}});
      }
      runs.push_back({{"when", side == &outcome.reference_before ? "before" : "after"},
                      {"best_bytes_per_second", r.best_bytes_per_second},
                      {"median_bytes_per_second", r.median_bytes_per_second},
                      {"best_variant", r.best_variant},
                      {"variants", variants}});
    }
    if (best->threads == 1) read = std::max(read, best->best_bytes_per_second);
    reference.push_back(
        {{"threads", best->threads},
         {"buffer_bytes", best->buffer_bytes},
         {"llc_multiple", outcome.machine.llc_bytes > 0
                              ? static_cast<double>(best->buffer_bytes) /
                                    static_cast<double>(outcome.machine.llc_bytes)
                              : 0.0},
         {"passes_per_variant", best->passes},
         {"allocation", aligned_allocation_policy()},
         {"counts", "every byte of the buffer read once per pass, all threads together"},
         {"best_bytes_per_second", best->best_bytes_per_second},
         {"median_bytes_per_second", best->median_bytes_per_second},
         {"best_variant", best->best_variant},
         {"runs", runs}});
  }
  const double copy = std::max(b.copy_bytes_per_second, a.copy_bytes_per_second);
  json matched = json::array();
  for (const auto& m : outcome.matched_bandwidth) {
    double best_read = 0, best_copy = 0;
    json runs = json::array();
    for (const auto& [when, b] : m.runs) {
      best_read = std::max(best_read, b.read_bytes_per_second);
      best_copy = std::max(best_copy, b.copy_bytes_per_second);
      json r = bandwidth_json(b);
      r["when"] = when;
      runs.push_back(r);
    }
    matched.push_back({{"buffer_bytes", m.runs.front().second.buffer_bytes},
                       {"read_bytes_per_second", best_read},
                       {"copy_bytes_per_second", best_copy},
                       {"matches", "K/V bytes a decode step reads at t = " +
                                       std::to_string(m.position)},
                       {"runs", runs}});
  }
  json stops = json::array();
  json naive_stop = nullptr;
  for (const auto& s : outcome.stops) {
    json j = {{"series", s.series},
              {"last_measured", s.last_measured},
              {"stopped_before", s.stopped_before},
              {"predicted_seconds", s.predicted_seconds},
              {"reason", s.reason}};
    if (s.series == "generate/" + baseline_name(impls)) naive_stop = j;
    stops.push_back(j);
  }
  json implementations = json::array();
  for (const ImplInfo* impl : impls) {
    implementations.push_back({{"name", impl->name},
                               {"device", impl->device},
                               {"description", impl->description},
                               {"holds_kv_cache", impl->caps.holds_kv_cache},
                               {"threads_capable", impl->caps.threads},
                               {"timer", TimerRegistry::global().make(*impl)->describe()}});
  }
  json checks = json::array();
  for (const CheckResult& r : outcome.checks) checks.push_back(check_json(r));
  json devices = json::object();
  for (const DeviceBandwidth& d : outcome.device_bandwidth) {
    devices[d.device] = device_bandwidth_json(d);
  }
  const json all = {
      {"format", 1},
      {"shape", options.shape},
      {"config", config_json(options.config)},
      {"machine", machine_json(outcome.machine)},
      {"bandwidth",
       {{"read_bytes_per_second", read},
        {"copy_bytes_per_second", copy},
        {"read_counts",
         "bytes read once: the best single-thread read-only figure (the 1-thread "
         "read_reference, or the 8-stream sum of `before`/`after` when higher)"},
        {"read_reference", reference},
        {"copy_counts",
         "bytes read + bytes written (2 x buffer per pass, as STREAM Copy): one-thread memcpy"},
        {"before", bandwidth_json(b)},
        {"after", bandwidth_json(a)},
        {"by_size", matched}}},
      {"device_bandwidth", devices},
      {"options",
       {{"quick", options.quick},
        {"min_time", options.min_time},
        {"repetitions", options.repetitions},
        {"budget_seconds", options.budget_seconds},
        {"prepare_budget_seconds", options.prepare_budget_seconds},
        {"tokens", options.tokens},
        {"positions", options.positions},
        {"long_impls", options.long_impls},
        {"long_positions", options.long_positions},
        {"threads", options.threads},
        {"block_size", options.block_size},
        {"kv_budget_bytes", options.kv_budget_bytes},
        {"beam",
         {{"widths", options.beam_widths},
          {"steps", options.beam_steps},
          {"prune_every", options.beam_prune_every},
          {"prompt_tokens", beam_shape(options, 2).prompt},
          {"prune", "after every prune_every-th step but the last: the beams in odd slots are "
                    "dropped and each even slot's beam forked into the slot after it"}}},
        {"prefix_prefill",
         {{"enabled", options.prefix_prefill},
          {"prompt_tokens", prefix_prompt(options)},
          {"prefix_tokens", cached_prefix_tokens(std::max(prefix_prompt(options), 0),
                                                 std::max(options.block_size, 1))}}}}},
      {"implementations", implementations},
      {"baseline", baseline_name(impls)},
      {"skipped_implementations", outcome.skipped_impls},
      {"check", check_summary(options, outcome)},
      {"checks", checks},
      {"failed_check_implementations", outcome.failed_checks},
      {"stops", stops},
      {"preparation", preparation},
      {"naive_stopped_at", naive_stop},
      {"planned", outcome.planned},
      {"ran", outcome.ran},
      {"failed", outcome.failed},
      {"wall_seconds", outcome.wall_seconds}};
  return all;
}

void write_bench_json(const BenchOptions& options, const std::vector<const ImplInfo*>& impls,
                      const BenchOutcome& outcome, const json& preparation,
                      const std::vector<benchmark::BenchmarkReporter::Run>& runs) {
  // Google Benchmark's custom context is process-wide; start from an empty one so that a
  // second run in the same process (tests) writes only its own keys. (Not Shutdown(): in
  // 1.7.1 it deletes the map without resetting the pointer.)
  if (auto* context = benchmark::internal::GetGlobalContext()) context->clear();
  const json all = bench_context_json(options, impls, outcome, preparation);
  const json& read = all["bandwidth"]["read_bytes_per_second"];
  const json& copy = all["bandwidth"]["copy_bytes_per_second"];
  const json& devices = all["device_bandwidth"];
  const json& naive_stop = all["naive_stopped_at"];

  set_context("kvbench", all.dump());
  set_context("kvbench_command", options.command_line);
  set_context("shape", options.shape);
  set_context("check", check_summary(options, outcome));
  set_context("model_config", options.config.describe());
  set_context("cpu_model", outcome.machine.cpu_model);
  set_context("cores", std::to_string(outcome.machine.logical_cpus));
  set_context("llc_bytes", std::to_string(outcome.machine.llc_bytes));
  set_context("read_bandwidth_bytes_per_second", json(read).dump());
  set_context("copy_bandwidth_bytes_per_second", json(copy).dump());
  for (const auto& [device, j] : devices.items()) {
    set_context(device + "_read_bandwidth_bytes_per_second",
                json(j["read_bytes_per_second"]).dump());
    set_context(device + "_copy_bandwidth_bytes_per_second",
                json(j["copy_bytes_per_second"]).dump());
    set_context(device + "_copy_bandwidth_counts", "read + write (2 x bytes copied)");
  }
  set_context("naive_stopped_at",
              naive_stop.is_null()
                  ? "not stopped"
                  : "T=" + std::to_string(naive_stop["stopped_before"].get<int>()) + " (" +
                        naive_stop["reason"].get<std::string>() + ")");

  std::ostringstream file;
  benchmark::JSONReporter writer;
  std::ostringstream errors;
  writer.SetOutputStream(&file);
  writer.SetErrorStream(&errors);
  benchmark::BenchmarkReporter::Context context;
  writer.ReportContext(context);
  if (!runs.empty()) writer.ReportRuns(runs);
  writer.Finalize();
  // Whole or not at all: an interrupted run never leaves a truncated JSON behind.
  write_file_atomically(options.out_path, file.str(), "--out");
}

std::string check_summary(const BenchOptions& options, const BenchOutcome& outcome) {
  if (!options.check) return "skipped (--no-check)";
  std::string passed, failed;
  for (const CheckResult& r : outcome.checks) {
    const bool bad = std::find(outcome.failed_checks.begin(), outcome.failed_checks.end(),
                               r.impl) != outcome.failed_checks.end();
    std::string& list = bad ? failed : passed;
    const std::string name = r.impl + " (threads " + std::to_string(r.threads) + ": " +
                             (r.passed ? "pass" : "FAIL") + ")";
    list += (list.empty() ? "" : ", ") + name;
  }
  std::string line;
  if (!failed.empty()) line = "FAILED (not timed): " + failed;
  if (!passed.empty()) line += (line.empty() ? "" : "; ") + std::string("passed: ") + passed;
  return line.empty() ? "nothing to check" : line;
}

std::string baseline_name(const std::vector<const ImplInfo*>& impls) {
  for (const ImplInfo* impl : impls) {
    if (impl->name == "naive") return impl->name;
  }
  for (const ImplInfo* impl : impls) {
    if (!impl->caps.holds_kv_cache) return impl->name;
  }
  return "";
}

}  // namespace kvbench::bench
