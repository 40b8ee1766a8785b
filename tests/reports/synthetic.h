// A synthetic `kvbench bench` output on the default shape whose times follow the op-count
// model exactly (seconds = FLOPs x a constant per implementation), so that every fit,
// ratio and verdict has a known answer.
#pragma once

#include <cmath>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "harness/bench/names.h"
#include "harness/config.h"
#include "reports/op_model.h"

namespace kvbench::reports::testing {

using nlohmann::json;

struct Synthetic {
  ModelConfig config = find_shape("default").config;
  double read_bandwidth = 20e9, copy_bandwidth = 30e9, llc = 32.0 * 1024 * 1024;
  double seconds_per_flop = 1e-10;
  // > 0: a read bandwidth measured over a buffer the size of the K/V at t = 32768.
  double matched_read = 0;
  // The read-only reference per thread count (context bandwidth.read_reference); empty: none
  // (an older bench output).
  std::vector<std::pair<int, double>> reference;
  std::string shape = "default";
  // Multiplies a benchmark's model time: (impl, threads, kind, size) -> factor.
  std::function<double(const std::string&, int, bench::BenchKind, int)> factor =
      [](const std::string&, int, bench::BenchKind, int) { return 1.0; };
  // A generation's setup_seconds counter (seconds per iteration creating the sequence, timed
  // apart from the decode steps the time holds): (impl, T) -> seconds; < 0 leaves it out, as
  // a bench output older than the counter does (the default).
  std::function<double(const std::string&, int)> setup = [](const std::string&, int) {
    return -1.0;
  };
  json doc = {{"context", json::object()}, {"benchmarks", json::array()}};

  void add(const std::string& impl, bench::BenchKind kind, int size, int threads = 1) {
    const double L = config.layers, H = config.heads;
    const bool cached = impl != "naive";
    double rows, dots, tokens, kv_read, held;
    const double kvrow = 2.0 * config.kv_heads * config.head_dim * 4;  // bytes per position
    if (kind == bench::BenchKind::generate) {
      const double T = size, tri = T * (T + 1) / 2;
      rows = L * (cached ? T : tri);
      dots = H * L * tri;
      tokens = T;
      kv_read = L * tri * kvrow;
      held = T * config.kv_bytes_per_token();
    } else {
      const double n = size + 1.0;
      rows = L * (cached ? 1 : n);
      dots = H * L * n;
      tokens = 1;
      kv_read = L * n * kvrow;
      held = n * config.kv_bytes_per_token();
    }
    const double flops = analytic_flops(config, {rows, dots, tokens});
    const double seconds = flops * seconds_per_flop * factor(impl, threads, kind, size);
    bench::BenchmarkId id{kind, impl, threads, size};
    const bool gen = kind == bench::BenchKind::generate;
    add_raw(id, seconds,
            {{"projection_rows", rows},
             {"qk_dot_products", dots},
             {"kv_bytes_read", kv_read},
             {"kv_bytes_read_per_second", kv_read / seconds},
             {"tokens_per_second", tokens / seconds},
             {"bytes_held", held},
             {"size", size},
             {"threads_used", threads}},
            gen ? "ms" : "us");
    if (gen && setup(impl, size) >= 0) doc["benchmarks"].back()["setup_seconds"] = setup(impl, size);
  }

  // A beam search as the runner writes it (harness/bench/runner.cpp: beam_body): the time
  // is its `steps` decode steps; memory peak and mean as given.
  void add_beam(const std::string& impl, int width, double held_peak, double held_mean,
                double reserved_peak, double seconds_per_step, int prompt = 512, int steps = 32,
                int prune_every = 8) {
    bench::BenchmarkId id{bench::BenchKind::beam, impl, 1, width};
    add_raw(id, seconds_per_step * steps,
            {{"width", width}, {"size", width}, {"prompt_tokens", prompt}, {"steps", steps},
             {"prune_every", prune_every}, {"bytes_held_peak", held_peak},
             {"bytes_held_mean", held_mean}, {"bytes_reserved_peak", reserved_peak},
             {"bytes_reserved_mean", reserved_peak}, {"bytes_held", held_peak},
             {"bytes_reserved", reserved_peak}, {"seconds_per_step", seconds_per_step},
             {"cow_copies", 4}});
  }

  // A prefix-hit prefill (runner.cpp: prefix_body): the time is the warm prefill.
  void add_prefix(const std::string& impl, int prompt, int prefix, double warm, double cold,
                  double hits) {
    bench::BenchmarkId id{bench::BenchKind::prefix_prefill, impl, 1, prompt};
    add_raw(id, warm,
            {{"size", prompt}, {"prompt_tokens", prompt}, {"prefix_tokens", prefix},
             {"warm_seconds", warm}, {"cold_seconds", cold}, {"warm_over_cold", warm / cold},
             {"prefix_hit_tokens", hits}, {"cold_hit_tokens", 0}});
  }

  // One benchmark entry as Google Benchmark writes it: `seconds` per iteration in `unit`
  // ("ms" or "us"), then `counters`.
  void add_raw(const bench::BenchmarkId& id, double seconds, const json& counters,
               const std::string& unit = "ms") {
    const double scale = unit == "ms" ? 1e3 : 1e6;
    json b = {{"name", bench::benchmark_name(id) + "/manual_time"},
              {"family_index", doc["benchmarks"].size()},
              {"per_family_instance_index", 0},
              {"run_name", bench::benchmark_name(id) + "/manual_time"},
              {"run_type", "iteration"},
              {"repetitions", 1},
              {"repetition_index", 0},
              {"threads", 1},
              {"iterations", 10},
              {"real_time", seconds * scale},
              {"cpu_time", seconds * scale},
              {"time_unit", unit}};
    b.update(counters);
    doc["benchmarks"].push_back(b);
  }

  json reference_json() const {
    json out = json::array();
    for (const auto& [threads, rate] : reference) {
      out.push_back({{"threads", threads},
                     {"buffer_bytes", 8 * llc},
                     {"best_bytes_per_second", rate},
                     {"median_bytes_per_second", 0.95 * rate},
                     {"best_variant", "8 streams x 2 vectors"}});
    }
    return out;
  }

  json finish() {
    const json k = {
        {"shape", shape},
        {"baseline", "naive"},
        {"config",
         {{"layers", config.layers}, {"d_model", config.d_model}, {"heads", config.heads},
          {"kv_heads", config.kv_heads}, {"head_dim", config.head_dim},
          {"capacity", config.capacity}, {"dtype", "fp32"}, {"seed", 1}}},
        {"machine", {{"cpu_model", "synthetic"}, {"logical_cpus", 2}, {"llc_bytes", llc}}},
        {"bandwidth",
         {{"read_bytes_per_second", read_bandwidth},
          {"copy_bytes_per_second", copy_bandwidth},
          {"before", {{"passes", 4}, {"buffer_bytes", 4 * llc},
                      {"read_bytes_per_second", read_bandwidth}}},
          {"after", {{"passes", 4}, {"buffer_bytes", 4 * llc},
                     {"read_bytes_per_second", read_bandwidth}}},
          {"read_reference", reference_json()},
          {"by_size", matched_read > 0
                          ? json::array({{{"buffer_bytes", 32769.0 * config.kv_bytes_per_token()},
                                          {"read_bytes_per_second", matched_read},
                                          {"copy_bytes_per_second", copy_bandwidth},
                                          {"matches", "K/V bytes a decode step reads at t = 32768"}}})
                          : json::array()}}},
        {"implementations",
         json::array({{{"name", "naive"}}, {{"name", "cpu_cached"}}, {{"name", "torch_cached"}},
                      {{"name", "torch_static"}}})},
        {"stops", json::array({{{"series", "generate/naive"}, {"last_measured", 1024},
                                {"stopped_before", 2048}, {"reason", "budget"}}})},
        {"naive_stopped_at", {{"series", "generate/naive"}, {"last_measured", 1024},
                              {"stopped_before", 2048}, {"reason", "budget"}}}};
    doc["context"]["kvbench"] = k.dump();
    return doc;
  }

  // The full default sweep: generations 16..4096 (naive to 1024), decode steps 16..16384
  // for every impl plus 32768 for cpu_cached with 1 and 2 threads.
  json standard() {
    for (const char* impl : {"naive", "cpu_cached", "torch_cached", "torch_static"}) {
      const int top = std::string(impl) == "naive" ? 1024 : 4096;
      for (int T = 16; T <= top; T *= 2) add(impl, bench::BenchKind::generate, T);
      for (int t = 16; t <= 16384; t *= 4) add(impl, bench::BenchKind::decode_step, t);
    }
    for (int threads : {1, 2}) {
      add("cpu_cached", bench::BenchKind::decode_step, 32768, threads);
      if (threads == 2) {
        for (int t = 16; t <= 16384; t *= 4) add("cpu_cached", bench::BenchKind::decode_step, t, 2);
      }
    }
    return finish();
  }
};

}  // namespace kvbench::reports::testing
