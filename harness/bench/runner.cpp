#include "harness/bench/runner.h"

#include <benchmark/benchmark.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <ostream>
#include <sstream>

#include "harness/aligned_buffer.h"
#include "harness/atomic_file.h"
#include "harness/bench/names.h"
#include "harness/bench/timer.h"
#include "harness/bench/workload.h"
#include "harness/error.h"

namespace kvbench::bench {

namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

// CPU seconds of the whole process (all threads), to tell a slow step from a busy machine.
double process_cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_utime.tv_sec + usage.ru_stime.tv_sec +
         1e-6 * (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec);
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::string format_seconds(double s) {
  std::ostringstream out;
  out << std::setprecision(3);
  if (s >= 1) {
    out << s << " s";
  } else if (s >= 1e-3) {
    out << s * 1e3 << " ms";
  } else {
    out << s * 1e6 << " us";
  }
  return out.str();
}

// One series: the sizes of one (kind, implementation, threads), run in increasing order.
struct Series {
  BenchmarkId proto;  // size unset
  const ImplInfo* impl = nullptr;
  std::vector<int> sizes;
};

std::vector<int> merged(std::vector<int> a, const std::vector<int>& b) {
  a.insert(a.end(), b.begin(), b.end());
  std::sort(a.begin(), a.end());
  a.erase(std::unique(a.begin(), a.end()), a.end());
  return a;
}

std::vector<Series> plan_series(const BenchOptions& o, const std::vector<const ImplInfo*>& impls) {
  std::vector<Series> plan;
  for (const ImplInfo* impl : impls) {
    Series s;
    s.proto.kind = BenchKind::generate;
    s.proto.impl = impl->name;
    s.impl = impl;
    s.sizes = o.tokens;
    if (!s.sizes.empty()) plan.push_back(s);
  }
  for (const ImplInfo* impl : impls) {
    std::vector<int> threads = {1};
    std::vector<int> sizes = o.positions;
    if (std::find(o.long_impls.begin(), o.long_impls.end(), impl->name) != o.long_impls.end()) {
      sizes = merged(sizes, o.long_positions);
      if (impl->caps.threads) threads = merged(o.threads, {1});
    }
    for (int n : threads) {
      Series s;
      s.proto.kind = BenchKind::decode_step;
      s.proto.impl = impl->name;
      s.proto.threads = n;
      s.impl = impl;
      s.sizes = sizes;
      if (!s.sizes.empty()) plan.push_back(s);
    }
  }
  return plan;
}

// Predicts one iteration's time at the next size from the sizes measured so far: a power law
// through the last point, with the larger of the measured local exponent and the series'
// asymptotic one (a generation is at least quadratic in T, a decode step at least linear in
// t), so that the budget is not overrun on the strength of a noisy small-size exponent.
class Predictor {
 public:
  explicit Predictor(double floor_exponent) : floor_(floor_exponent) {}
  void add(int size, double seconds) { points_.push_back({size, seconds}); }
  double predict(int size) const {
    if (points_.empty()) return 0;
    const auto& last = points_.back();
    double exponent = floor_;
    if (points_.size() >= 2) {
      const auto& prev = points_[points_.size() - 2];
      if (prev.second > 0 && last.second > 0 && last.first > prev.first) {
        exponent = std::max(exponent, std::log(last.second / prev.second) /
                                          std::log(static_cast<double>(last.first) / prev.first));
      }
    }
    return last.second * std::pow(static_cast<double>(size) / last.first, exponent);
  }
  int last_size() const { return points_.empty() ? 0 : points_.back().first; }

 private:
  double floor_;
  std::vector<std::pair<int, double>> points_;
};

// Forwards to the console table once per process (Google Benchmark prints its context on
// every RunSpecifiedBenchmarks call) and keeps a copy of every run, so that the JSON file can
// be written at the end with the complete context (where each series stopped, the
// bandwidth measured after the sweeps) by Google Benchmark's own JSONReporter.
class CollectingReporter : public benchmark::BenchmarkReporter {
 public:
  CollectingReporter(benchmark::BenchmarkReporter* display, std::size_t name_width)
      : display_(display), name_width_(name_width) {}

  bool ReportContext(const Context& context) override {
    if (display_ && !context_shown_) {
      Context wide = context;
      wide.name_field_width = name_width_;
      display_->ReportContext(wide);
    }
    context_shown_ = true;
    return true;
  }

  void ReportRuns(const std::vector<Run>& runs) override {
    if (display_) display_->ReportRuns(runs);
    for (Run run : runs) {
      run.family_index = family_index_;
      run.per_family_instance_index = 0;
      run.statistics = nullptr;  // points into the benchmark, which is cleared after it ran
      current_.push_back(run);
    }
  }

  void Finalize() override {}

  // Starts collecting the runs of benchmark number `family_index`.
  void begin(int family_index) {
    family_index_ = family_index;
    current_.clear();
  }
  // RETURNS: the runs of the current benchmark.
  const std::vector<Run>& current() const { return current_; }
  // Keeps the current benchmark's runs for the JSON file.
  void keep() { kept_.insert(kept_.end(), current_.begin(), current_.end()); }
  const std::vector<Run>& kept() const { return kept_; }
  void finish() {
    if (display_) display_->Finalize();
  }

 private:
  benchmark::BenchmarkReporter* display_;
  std::size_t name_width_;
  bool context_shown_ = false;
  int family_index_ = 0;
  std::vector<Run> current_;
  std::vector<Run> kept_;
};

// RETURNS: seconds per iteration of the benchmark's runs (the median over repetitions), or
// a negative number when it produced no successful iteration run.
double seconds_per_iteration(const std::vector<benchmark::BenchmarkReporter::Run>& runs) {
  std::vector<double> seconds;
  for (const auto& run : runs) {
    if (run.run_type != benchmark::BenchmarkReporter::Run::RT_Iteration) continue;
    if (run.error_occurred || run.iterations <= 0) continue;
    seconds.push_back(run.real_accumulated_time / static_cast<double>(run.iterations));
  }
  if (seconds.empty()) return -1;
  std::sort(seconds.begin(), seconds.end());
  return seconds[seconds.size() / 2];
}

// The counters every kvbench benchmark records. `work` holds the counter deltas over all
// iterations; `tokens` the tokens decoded per iteration.
void record_counters(benchmark::State& state, const Stats& work, double tokens,
                     std::uint64_t bytes_held, std::uint64_t bytes_reserved, int threads,
                     int size) {
  using benchmark::Counter;
  const double iterations = static_cast<double>(state.iterations());
  state.SetComplexityN(size);
  state.counters["tokens_per_second"] = Counter(tokens * iterations, Counter::kIsRate);
  state.counters["kv_bytes_read_per_second"] =
      Counter(static_cast<double>(work.kv_bytes_read), Counter::kIsRate);
  state.counters["projection_rows"] =
      Counter(static_cast<double>(work.kv_projection_rows), Counter::kAvgIterations);
  state.counters["qk_dot_products"] =
      Counter(static_cast<double>(work.qk_dot_products), Counter::kAvgIterations);
  state.counters["kv_bytes_read"] =
      Counter(static_cast<double>(work.kv_bytes_read), Counter::kAvgIterations);
  state.counters["bytes_held"] = Counter(static_cast<double>(bytes_held));
  state.counters["bytes_reserved"] = Counter(static_cast<double>(bytes_reserved));
  state.counters["threads_used"] = Counter(threads);
  state.counters["size"] = Counter(size);
}

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
          {"caches", caches},         {"llc_bytes", m.llc_bytes},       {"llc_detected", m.llc_detected}};
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

class Runner {
 public:
  explicit Runner(const BenchOptions& o) : o_(o) {}

  BenchOutcome run() {
    const auto start = Clock::now();
    check_options();
    select_impls();
    weights_ = ModelWeights::from_seed(o_.config);
    if (o_.check) check_impls();
    outcome_.machine = detect_machine();
    measure_now("before");
    outcome_.bandwidth_before = last_bandwidth_;
    outcome_.reference_before = measure_reference("before");
    for (const auto& [position, bytes] : matched_sizes()) {
      measure_now("before", bytes);
      BenchOutcome::MatchedBandwidth m;
      m.position = position;
      m.runs.push_back({"before", last_bandwidth_});
      outcome_.matched_bandwidth.push_back(m);
    }
    for (const std::string& device : devices_of(impls_)) {
      outcome_.device_bandwidth.push_back(DeviceBandwidth{device, "", {}, ""});
    }
    measure_devices("before");
    init_google_benchmark();

    const std::vector<Series> plan = plan_series(o_, impls_);
    for (const auto& s : plan) outcome_.planned += static_cast<int>(s.sizes.size());
    std::unique_ptr<benchmark::BenchmarkReporter> console;
    if (o_.display) {
      const bool color = o_.display == &std::cout && isatty(STDOUT_FILENO);
      console = std::make_unique<benchmark::ConsoleReporter>(
          color ? benchmark::ConsoleReporter::OO_Color : benchmark::ConsoleReporter::OO_None);
      console->SetOutputStream(o_.display);
      console->SetErrorStream(o_.display);
    }
    CollectingReporter collector(console.get(), longest_name(plan) + 12);
    for (const Series& s : plan) run_series(s, collector);
    collector.finish();

    measure_now("after");
    outcome_.bandwidth_after = last_bandwidth_;
    outcome_.reference_after = measure_reference("after");
    const auto sizes = matched_sizes();
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      measure_now("after", sizes[i].second);
      outcome_.matched_bandwidth[i].runs.push_back({"after", last_bandwidth_});
    }
    measure_devices("after");
    outcome_.wall_seconds = seconds_since(start);
    write_json(collector.kept());
    return outcome_;
  }

 private:
  void check_options() {
    require(!o_.out_path.empty(), "bench: an output file (--out) is required");
    o_.config.validate();
    require(o_.min_time > 0, "bench: min_time must be > 0, got ", o_.min_time);
    require(o_.repetitions >= 1, "bench: repetitions must be >= 1, got ", o_.repetitions);
    require(o_.budget_seconds > 0, "bench: budget must be > 0 s, got ", o_.budget_seconds);
    require(o_.prepare_budget_seconds > 0, "bench: preparation budget must be > 0 s, got ",
            o_.prepare_budget_seconds);
    for (int n : o_.threads) require(n >= 1, "bench: thread counts must be >= 1, got ", n);
    for (int t : o_.tokens) require(t >= 1, "bench: token counts must be >= 1, got ", t);
    for (int t : o_.positions) require(t >= 0, "bench: positions must be >= 0, got ", t);
    for (int t : o_.long_positions) require(t >= 0, "bench: positions must be >= 0, got ", t);
  }

  void select_impls() {
    for (const ImplInfo* impl : o_.impls) {
      const std::string why = impl->why_unavailable();
      if (!why.empty()) {
        outcome_.skipped_impls.push_back(impl->name + ": " + why);
        say("skipping ", impl->name, ": ", why);
        continue;
      }
      if (!impl->caps.supports(o_.config.dtype)) {
        outcome_.skipped_impls.push_back(impl->name + ": does not support " +
                                         dtype_name(o_.config.dtype));
        say("skipping ", impl->name, ": does not support ", dtype_name(o_.config.dtype));
        continue;
      }
      impls_.push_back(impl);
    }
  }

  // Checks every implementation, at each thread count it is timed with, at the longest
  // position its series reach (a generation of T tokens decodes up to position T - 1), before
  // anything is timed; those that fail leave impls_, so none of their benchmarks is planned.
  void check_impls() {
    const std::vector<Series> plan = plan_series(o_, impls_);
    std::vector<const ImplInfo*> passed;
    for (const ImplInfo* impl : impls_) {
      int longest = 0;
      std::vector<int> threads;
      for (const Series& s : plan) {
        if (s.impl != impl) continue;
        const int last = s.sizes.back() - (s.proto.kind == BenchKind::generate ? 1 : 0);
        longest = std::max(longest, last);
        if (std::find(threads.begin(), threads.end(), s.proto.threads) == threads.end()) {
          threads.push_back(s.proto.threads);
        }
      }
      if (threads.empty()) threads.push_back(1);
      std::sort(threads.begin(), threads.end());
      bool ok = true;
      for (int n : threads) {
        CheckOptions c;
        c.position = longest;
        c.threads = n;
        c.block_size = o_.block_size;
        c.kv_budget_bytes = o_.kv_budget_bytes;
        c.input_seed = o_.config.seed + 29;  // the decode-step fixtures' seed (run_series)
        c.no_cache_budget = o_.check_no_cache_budget;
        say("check ", impl->name, " (threads ", n, ") at its longest position ", longest, " ...");
        const CheckResult r = check_implementation(*impl, weights_, c);
        say("check ", impl->name, " (threads ", n, "): ", describe(r));
        ok = ok && r.passed;
        outcome_.checks.push_back(r);
      }
      if (ok) {
        passed.push_back(impl);
      } else {
        outcome_.failed_checks.push_back(impl->name);
        say("check ", impl->name, ": FAILED, not timed");
      }
    }
    impls_ = passed;
  }

  // Before a long implementation's decode step at a long position: the bandwidth over the
  // K/V's size, next to the step in time.
  void measure_adjacent(const BenchmarkId& id) {
    if (std::find(o_.long_impls.begin(), o_.long_impls.end(), id.impl) == o_.long_impls.end()) {
      return;
    }
    const auto sizes = matched_sizes();
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      if (sizes[i].first != id.size) continue;
      measure_now("adjacent", sizes[i].second);
      outcome_.matched_bandwidth[i].runs.push_back({"adjacent to " + benchmark_name(id),
                                                    last_bandwidth_});
    }
  }

  // The K/V bytes a decode step reads at each long position (when a long implementation
  // runs), at least 4 KiB: the sizes the matched bandwidths are measured over.
  // RETURNS: (position, bytes) pairs.
  std::vector<std::pair<int, std::size_t>> matched_sizes() const {
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

  // The buffer of the whole-memory measurements: --bandwidth-mib, else max(8 x LLC, 64 MiB).
  std::size_t reference_bytes() const {
    if (o_.bandwidth_bytes > 0) return o_.bandwidth_bytes;
    return std::max<std::size_t>(8 * outcome_.machine.llc_bytes, std::size_t{64} << 20);
  }

  std::vector<ReadReference> measure_reference(const char* when) {
    const auto start = Clock::now();
    const std::vector<int> threads = merged({1}, o_.threads);
    std::vector<ReadReference> refs = measure_read_reference(
        std::max<std::size_t>(reference_bytes(), std::size_t{1} << 20), threads,
        o_.bandwidth_passes);
    for (const ReadReference& r : refs) {
      say("read-only reference (", when, ", ", r.threads, " thread", r.threads == 1 ? "" : "s",
          ", ", r.buffer_bytes / 1048576.0, " MiB, huge-page advised): best ",
          r.best_bytes_per_second / 1e9, " GB/s (", r.best_variant, "), median ",
          r.median_bytes_per_second / 1e9, " GB/s");
    }
    say("    (", format_seconds(seconds_since(start)), ")");
    return refs;
  }

  void measure_now(const char* when, std::size_t bytes = 0) {
    if (bytes == 0) bytes = reference_bytes();
    const auto start = Clock::now();
    last_bandwidth_ = measure_bandwidth(bytes, o_.bandwidth_passes);
    say("bandwidth (", when, ", one thread, ", bytes / 1048576.0, " MiB buffers): read ",
        last_bandwidth_.read_bytes_per_second / 1e9, " GB/s, copy ",
        last_bandwidth_.copy_bytes_per_second / 1e9, " GB/s (read + written), ",
        format_seconds(seconds_since(start)));
  }

  void measure_devices(const char* when) {
    for (DeviceBandwidth& d : outcome_.device_bandwidth) {
      const auto start = Clock::now();
      measure_device_bandwidth(when, d);
      if (!d.error.empty()) {
        say("device bandwidth (", d.device, ", ", when, "): not measured: ", d.error);
        continue;
      }
      const json j = device_bandwidth_json(d);
      say("device bandwidth (", d.device, " ", d.name, ", ", when, "): read ",
          j["read_bytes_per_second"].get<double>() / 1e9, " GB/s, copy ",
          j["copy_bytes_per_second"].get<double>() / 1e9, " GB/s (read + written), ",
          format_seconds(seconds_since(start)));
    }
  }

  void init_google_benchmark() {
    // Only the flags kvbench controls; benchmark names do not change with them (MinTime()
    // on a benchmark would append "/min_time:..." to its name and defeat compare.py).
    // Static: Google Benchmark keeps argv[0] (the "executable" in the JSON context).
    static std::vector<std::string> args;
    args = {"kvbench-bench", "--benchmark_min_time=" + std::to_string(o_.min_time),
            "--benchmark_repetitions=" + std::to_string(o_.repetitions)};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    int argc = static_cast<int>(args.size());
    benchmark::Initialize(&argc, argv.data());
  }

  static std::size_t longest_name(const std::vector<Series>& plan) {
    std::size_t width = 10;
    for (const auto& s : plan) {
      BenchmarkId id = s.proto;
      id.size = s.sizes.back();
      width = std::max(width, benchmark_name(id).size());
    }
    return width;
  }

  void run_series(const Series& s, CollectingReporter& collector) {
    const std::string series = series_name(s.proto);
    const bool generate = s.proto.kind == BenchKind::generate;
    Predictor predictor(generate ? 2.0 : 1.0);
    std::unique_ptr<KvCache> cache;
    std::unique_ptr<DecodeAtPosition> fixture;
    std::vector<float> inputs;
    std::unique_ptr<RegionTimer> timer = TimerRegistry::global().make(*s.impl);
    double last_prepare = 0;
    int prev_position = 0;
    try {
      ImplOptions options;
      options.threads = s.proto.threads;
      options.block_size = o_.block_size;
      options.kv_budget_bytes = o_.kv_budget_bytes;
      cache = s.impl->create(weights_, options);
      if (generate) {
        inputs = benchmark_inputs(o_.config, s.sizes.back(), o_.config.seed + 17);
        // One untimed generation of the first size: a fresh instance's first one pays one-off
        // costs (thread start-up, first allocations; 30x a warm one for cpu_cached at T = 16),
        // which a one-iteration run would otherwise report.
        if (s.sizes.front() <= o_.config.capacity) {
          cache->drop(bench::generate(*cache, inputs, s.sizes.front()));
        }
      } else {
        fixture = std::make_unique<DecodeAtPosition>(*cache, rollback_for(*s.impl),
                                                     o_.config.seed + 29);
      }
    } catch (const Error& e) {
      ++outcome_.failed;
      stop(s, 0, "error: " + std::string(e.what()), 0, s.sizes.front());
      return;
    }

    for (std::size_t i = 0; i < s.sizes.size(); ++i) {
      BenchmarkId id = s.proto;
      id.size = s.sizes[i];
      const int limit = generate ? o_.config.capacity : o_.config.capacity - 1;
      if (id.size > limit) {
        stop(s, i, "past the capacity " + std::to_string(o_.config.capacity) +
                       (generate ? "" : " (a step needs a free slot)"), 0, id.size);
        return;
      }
      const double predicted = predictor.predict(id.size);
      if (predicted > o_.budget_seconds) {
        stop(s, i, "one iteration predicted " + format_seconds(predicted) + " > budget " +
                       format_seconds(o_.budget_seconds), predicted, id.size);
        return;
      }
      if (!generate && prev_position > 0 && last_prepare > 0) {
        const double p = prev_position, q = id.size, done = fixture->position();
        const double predicted_prepare = last_prepare * (q * q - done * done) /
                                         std::max(1.0, done * done - p * p);
        if (predicted_prepare > o_.prepare_budget_seconds) {
          stop(s, i, "preparation (prefill to " + std::to_string(id.size) + ") predicted " +
                         format_seconds(predicted_prepare) + " > budget " +
                         format_seconds(o_.prepare_budget_seconds), predicted_prepare, id.size);
          return;
        }
      }
      ++counter_;
      say("[", counter_, "/", outcome_.planned, "] ", benchmark_name(id));
      try {
        if (!generate && fixture->position() < id.size) {
          const auto start = Clock::now();
          const double cpu_start = process_cpu_seconds();
          prev_position = fixture->position();
          fixture->extend_to(id.size);
          last_prepare = seconds_since(start);
          // One untimed step: the first decode after a prefill can pay one-off costs (page
          // faults, buffers sized to the new length; 20x a warm step for cpu_cached at
          // t = 32768), which a run of one iteration would otherwise report as the latency.
          fixture->before_step();
          fixture->step();
          fixture->after_step();
          const double cpu = process_cpu_seconds() - cpu_start;
          preparation_.push_back({{"series", series_name(id)},
                                  {"from", prev_position},
                                  {"to", id.size},
                                  {"seconds", last_prepare},
                                  {"cpu_seconds", cpu}});
          say("    prepared: prefill ", prev_position, " -> ", id.size, " tokens in ",
              format_seconds(last_prepare), " (", format_seconds(cpu), " CPU)");
        }
      } catch (const Error& e) {
        --counter_;
        ++outcome_.failed;
        stop(s, i, "error: " + std::string(e.what()), 0, id.size);
        return;
      }
      if (!generate) measure_adjacent(id);
      const double seconds =
          generate ? run_one(id, collector, generation_body(*cache, inputs, id.size, *timer))
                   : run_one(id, collector, decode_body(*cache, *fixture, *timer, id));
      if (seconds < 0) {
        --counter_;
        stop(s, i, "error: " + error_, 0, id.size);
        return;
      }
      say("    ", format_seconds(seconds), " per iteration");
      predictor.add(id.size, seconds);
    }
  }

  using Body = std::function<void(benchmark::State&)>;

  // Runs one benchmark alone. RETURNS: seconds per iteration, or -1 after an error (error_).
  double run_one(const BenchmarkId& id, CollectingReporter& collector, Body body) {
    error_.clear();
    benchmark::ClearRegisteredBenchmarks();
    auto wrapped = [this, body](benchmark::State& state) {
      try {
        body(state);
      } catch (const std::exception& e) {
        error_ = e.what();
        state.SkipWithError(error_.c_str());
      }
    };
    benchmark::RegisterBenchmark(benchmark_name(id).c_str(), wrapped)
        ->UseManualTime()
        ->Unit(id.kind == BenchKind::generate ? benchmark::kMillisecond
                                              : benchmark::kMicrosecond);
    collector.begin(family_index_);
    benchmark::RunSpecifiedBenchmarks(&collector);
    benchmark::ClearRegisteredBenchmarks();
    const double seconds = error_.empty() ? seconds_per_iteration(collector.current()) : -1;
    if (seconds < 0) {
      if (error_.empty()) error_ = "no successful iteration";
      ++outcome_.failed;
      say("    failed: ", error_);
      return -1;
    }
    collector.keep();
    ++family_index_;
    ++outcome_.ran;
    return seconds;
  }

  // One iteration: create a sequence (setup: timed with the same timer, apart), decode T
  // tokens into it (the iteration time), drop it (untimed). Setup is recorded as the counter
  // setup_seconds (per iteration) and setup_fraction (setup / (setup + decode) over the run),
  // so that a small T whose time would be mostly allocation and page faults (cpu_cached
  // reserves its capacity on creation) neither inflates the generation time nor hides.
  Body generation_body(KvCache& cache, const std::vector<float>& inputs, int tokens,
                       RegionTimer& timer) {
    return [&cache, &inputs, tokens, &timer](benchmark::State& state) {
      const Stats before = cache.stats();
      std::uint64_t held = 0, reserved = 0;
      double setup = 0, decode = 0;
      for (auto _ : state) {
        timer.start();
        const SeqId id = cache.create_sequence();
        setup += timer.stop();
        timer.start();
        decode_tokens(cache, id, inputs, tokens);
        const double seconds = timer.stop();
        decode += seconds;
        state.SetIterationTime(seconds);
        const Stats now = cache.stats();
        held = now.bytes_held;
        reserved = now.bytes_reserved;
        cache.drop(id);
      }
      record_counters(state, stats_delta(before, cache.stats()), tokens, held, reserved,
                      cache.options().threads, tokens);
      using benchmark::Counter;
      state.counters["setup_seconds"] = Counter(setup, Counter::kAvgIterations);
      state.counters["setup_fraction"] = Counter(setup + decode > 0 ? setup / (setup + decode) : 0);
    };
  }

  Body decode_body(KvCache& cache, DecodeAtPosition& fixture, RegionTimer& timer,
                   const BenchmarkId& id) {
    const int position = id.size;
    return [&cache, &fixture, &timer, position](benchmark::State& state) {
      const Stats before = cache.stats();
      std::uint64_t held = 0, reserved = 0;
      for (auto _ : state) {
        fixture.before_step();
        timer.start();
        fixture.step();
        state.SetIterationTime(timer.stop());
        const Stats now = cache.stats();
        held = now.bytes_held;
        reserved = now.bytes_reserved;
        fixture.after_step();
      }
      record_counters(state, stats_delta(before, cache.stats()), 1.0, held, reserved,
                      cache.options().threads, position);
    };
  }

  void stop(const Series& s, std::size_t index, const std::string& reason, double predicted,
            int size) {
    SeriesStop st;
    st.series = series_name(s.proto);
    st.last_measured = index > 0 ? s.sizes[index - 1] : 0;
    st.stopped_before = size;
    st.predicted_seconds = predicted;
    st.reason = reason;
    outcome_.stops.push_back(st);
    const int skipped = static_cast<int>(s.sizes.size() - index);
    counter_ += skipped;
    say("    ", st.series, " stops before ", size, ": ", reason, " (", skipped,
        " benchmark", skipped == 1 ? "" : "s", " skipped)");
  }

  void write_json(const std::vector<benchmark::BenchmarkReporter::Run>& runs) {
    // Google Benchmark's custom context is process-wide; start from an empty one so that a
    // second run in the same process (tests) writes only its own keys. (Not Shutdown(): in
    // 1.7.1 it deletes the map without resetting the pointer.)
    if (auto* context = benchmark::internal::GetGlobalContext()) context->clear();
    const Bandwidth& b = outcome_.bandwidth_before;
    const Bandwidth& a = outcome_.bandwidth_after;
    double read = std::max(b.read_bytes_per_second, a.read_bytes_per_second);
    json reference = json::array();
    for (std::size_t i = 0; i < outcome_.reference_before.size(); ++i) {
      json runs = json::array();
      const ReadReference* best = nullptr;
      for (const auto* side : {&outcome_.reference_before, &outcome_.reference_after}) {
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
        runs.push_back({{"when", side == &outcome_.reference_before ? "before" : "after"},
                        {"best_bytes_per_second", r.best_bytes_per_second},
                        {"median_bytes_per_second", r.median_bytes_per_second},
                        {"best_variant", r.best_variant},
                        {"variants", variants}});
      }
      if (best->threads == 1) read = std::max(read, best->best_bytes_per_second);
      reference.push_back(
          {{"threads", best->threads},
           {"buffer_bytes", best->buffer_bytes},
           {"llc_multiple", outcome_.machine.llc_bytes > 0
                                ? static_cast<double>(best->buffer_bytes) /
                                      static_cast<double>(outcome_.machine.llc_bytes)
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
    for (const auto& m : outcome_.matched_bandwidth) {
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
    for (const auto& s : outcome_.stops) {
      json j = {{"series", s.series},
                {"last_measured", s.last_measured},
                {"stopped_before", s.stopped_before},
                {"predicted_seconds", s.predicted_seconds},
                {"reason", s.reason}};
      if (s.series == "generate/" + baseline_name()) naive_stop = j;
      stops.push_back(j);
    }
    json impls = json::array();
    for (const ImplInfo* impl : impls_) {
      impls.push_back({{"name", impl->name},
                       {"device", impl->device},
                       {"description", impl->description},
                       {"holds_kv_cache", impl->caps.holds_kv_cache},
                       {"threads_capable", impl->caps.threads},
                       {"timer", TimerRegistry::global().make(*impl)->describe()}});
    }
    json checks = json::array();
    for (const CheckResult& r : outcome_.checks) checks.push_back(check_json(r));
    json devices = json::object();
    for (const DeviceBandwidth& d : outcome_.device_bandwidth) {
      devices[d.device] = device_bandwidth_json(d);
    }
    const json all = {
        {"format", 1},
        {"shape", o_.shape},
        {"config", config_json(o_.config)},
        {"machine", machine_json(outcome_.machine)},
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
         {{"quick", o_.quick},
          {"min_time", o_.min_time},
          {"repetitions", o_.repetitions},
          {"budget_seconds", o_.budget_seconds},
          {"prepare_budget_seconds", o_.prepare_budget_seconds},
          {"tokens", o_.tokens},
          {"positions", o_.positions},
          {"long_impls", o_.long_impls},
          {"long_positions", o_.long_positions},
          {"threads", o_.threads},
          {"block_size", o_.block_size},
          {"kv_budget_bytes", o_.kv_budget_bytes}}},
        {"implementations", impls},
        {"baseline", baseline_name()},
        {"skipped_implementations", outcome_.skipped_impls},
        {"check", check_summary()},
        {"checks", checks},
        {"failed_check_implementations", outcome_.failed_checks},
        {"stops", stops},
        {"preparation", preparation_},
        {"naive_stopped_at", naive_stop},
        {"planned", outcome_.planned},
        {"ran", outcome_.ran},
        {"failed", outcome_.failed},
        {"wall_seconds", outcome_.wall_seconds}};

    set_context("kvbench", all.dump());
    set_context("kvbench_command", o_.command_line);
    set_context("shape", o_.shape);
    set_context("check", check_summary());
    set_context("model_config", o_.config.describe());
    set_context("cpu_model", outcome_.machine.cpu_model);
    set_context("cores", std::to_string(outcome_.machine.logical_cpus));
    set_context("llc_bytes", std::to_string(outcome_.machine.llc_bytes));
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
                naive_stop.is_null() ? "not stopped"
                                     : "T=" + std::to_string(naive_stop["stopped_before"].get<int>()) +
                                           " (" + naive_stop["reason"].get<std::string>() + ")");

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
    write_file_atomically(o_.out_path, file.str(), "--out");
    say("wrote ", o_.out_path, ": ", outcome_.ran, " benchmarks in ",
        format_seconds(outcome_.wall_seconds));
  }

  // One line: "skipped (--no-check)", "passed: a, b" or "FAILED (not timed): c; passed: a".
  std::string check_summary() const {
    if (!o_.check) return "skipped (--no-check)";
    std::string passed, failed;
    for (const CheckResult& r : outcome_.checks) {
      const bool bad = std::find(outcome_.failed_checks.begin(), outcome_.failed_checks.end(),
                                 r.impl) != outcome_.failed_checks.end();
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

  // The no-cache baseline the caches are measured against: "naive" when it runs, else the
  // first implementation that holds no K/V cache ("" when none).
  std::string baseline_name() const {
    for (const ImplInfo* impl : impls_) {
      if (impl->name == "naive") return impl->name;
    }
    for (const ImplInfo* impl : impls_) {
      if (!impl->caps.holds_kv_cache) return impl->name;
    }
    return "";
  }

  template <typename... Parts>
  void say(const Parts&... parts) {
    if (!o_.progress) return;
    std::ostringstream line;
    line << std::setprecision(3);
    (line << ... << parts);
    *o_.progress << line.str() << "\n" << std::flush;
  }

  BenchOptions o_;
  std::vector<const ImplInfo*> impls_;
  BenchOutcome outcome_;
  Bandwidth last_bandwidth_;
  std::shared_ptr<const ModelWeights> weights_;
  int counter_ = 0;
  int family_index_ = 0;
  std::string error_;
  json preparation_ = json::array();
};

}  // namespace

BenchOutcome run_bench(const BenchOptions& options) { return Runner(options).run(); }

int position_past_cache(const ModelConfig& config, std::size_t llc_bytes, double factor) {
  const double target = factor * static_cast<double>(llc_bytes);
  long long t = 16;
  while (static_cast<double>(t) * static_cast<double>(config.kv_bytes_per_token()) < target &&
         t < config.capacity) {
    t *= 2;
  }
  return static_cast<int>(std::min<long long>(t, config.capacity - 1));
}

}  // namespace kvbench::bench
