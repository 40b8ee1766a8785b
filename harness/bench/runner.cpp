// The sweep of `kvbench bench` (runner.h): the plan of series, the check before timing, each
// benchmark run alone in increasing size until a budget stops its series. The pieces around
// it are apart: the budget predictions (budget.h), the reporter that gathers the runs
// (collecting_reporter.h), when bandwidth is measured (bandwidth_schedule.h) and the JSON
// file written at the end (bench_json.h).
#include "harness/bench/runner.h"

#include <benchmark/benchmark.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <vector>

#include "harness/bench/bandwidth_schedule.h"
#include "harness/bench/bench_json.h"
#include "harness/bench/budget.h"
#include "harness/bench/collecting_reporter.h"
#include "harness/bench/names.h"
#include "harness/bench/progress.h"
#include "harness/bench/sweep.h"
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

// One series: the sizes of one (kind, implementation, threads), run in increasing order.
struct Series {
  BenchmarkId proto;  // size unset
  const ImplInfo* impl = nullptr;
  std::vector<int> sizes;
};

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
      sizes = merge_sweeps(sizes, o.long_positions);
      if (impl->caps.threads) threads = merge_sweeps(o.threads, {1});
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
  // The serving benchmarks: caches only (a cache-less decoder has no memory to share and no
  // prefix to reuse); beam search needs fork.
  for (const ImplInfo* impl : impls) {
    if (!impl->caps.holds_kv_cache) continue;
    Series beam;
    beam.proto.kind = BenchKind::beam;
    beam.proto.impl = impl->name;
    beam.impl = impl;
    beam.sizes = o.beam_widths;
    if (impl->caps.fork && !beam.sizes.empty()) plan.push_back(beam);
    Series prefix = beam;
    prefix.proto.kind = BenchKind::prefix_prefill;
    prefix.sizes = {prefix_prompt(o)};
    if (o.prefix_prefill && prefix.sizes.front() >= 1) plan.push_back(prefix);
  }
  return plan;
}

// RETURNS: the longest position a series' benchmark of `size` decodes at (or prefills to).
int longest_position(const BenchOptions& o, BenchKind kind, int size) {
  switch (kind) {
    case BenchKind::generate: return size - 1;
    case BenchKind::decode_step: return size;
    case BenchKind::beam: {
      const BeamShape b = beam_shape(o, size);
      return b.prompt + b.steps - 1;
    }
    case BenchKind::prefix_prefill: return size - 1;
  }
  return size;
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

class Runner {
 public:
  explicit Runner(const BenchOptions& o) : o_(o), bandwidth_(o_, impls_, outcome_) {}
  Runner(const Runner&) = delete;  // bandwidth_ refers to the members
  Runner& operator=(const Runner&) = delete;

  BenchOutcome run() {
    const auto start = Clock::now();
    check_options();
    select_impls();
    weights_ = ModelWeights::from_seed(o_.config);
    if (o_.check) check_impls();
    outcome_.machine = detect_machine();
    bandwidth_.before();
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

    bandwidth_.after();
    outcome_.wall_seconds = seconds_since(start);
    write_bench_json(o_, impls_, outcome_, preparation_, collector.kept());
    say("wrote ", o_.out_path, ": ", outcome_.ran, " benchmarks in ",
        format_seconds(outcome_.wall_seconds));
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
    for (int w : o_.beam_widths) {
      require(w >= 2 && w % 2 == 0, "bench: beam widths must be even and >= 2, got ", w);
    }
    if (!o_.beam_widths.empty()) {
      require(o_.beam_steps >= 1 && o_.beam_prune_every >= 1, "bench: beam steps (",
              o_.beam_steps, ") and prune interval (", o_.beam_prune_every, ") must be >= 1");
      require(beam_shape(o_, 2).prompt >= 1, "bench: beam search of ", o_.beam_steps,
              " steps leaves no room for a prompt within the capacity ", o_.config.capacity);
    }
    if (!o_.beam_widths.empty() || o_.prefix_prefill) {
      require(o_.serving_prompt >= 1, "bench: serving prompt must be >= 1 token, got ",
              o_.serving_prompt);
    }
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
        longest = std::max(longest, longest_position(o_, s.proto.kind, s.sizes.back()));
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
    if (s.proto.kind == BenchKind::beam || s.proto.kind == BenchKind::prefix_prefill) {
      run_serving_series(s, collector);
      return;
    }
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
      cache = s.impl->create(weights_, series_options(s.proto.threads));
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
      setup_failed(s, e);
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
      if (!generate) {
        const double predicted_prepare = predict_preparation_seconds(
            last_prepare, prev_position, fixture->position(), id.size);
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
      if (!generate) bandwidth_.adjacent(id);
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

  // A beam or prefix-prefill series: one fresh instance (one thread) for the series; the beam
  // widths in increasing order, stopping before one predicted to pass the budget (linear in
  // the width: the beams decode in one batch).
  void run_serving_series(const Series& s, CollectingReporter& collector) {
    const bool beam = s.proto.kind == BenchKind::beam;
    Predictor predictor(1.0);
    std::unique_ptr<KvCache> cache;
    std::unique_ptr<RegionTimer> timer = TimerRegistry::global().make(*s.impl);
    try {
      cache = s.impl->create(weights_, series_options(1));
    } catch (const Error& e) {
      setup_failed(s, e);
      return;
    }
    for (std::size_t i = 0; i < s.sizes.size(); ++i) {
      BenchmarkId id = s.proto;
      id.size = s.sizes[i];
      const double predicted = predictor.predict(id.size);
      if (predicted > o_.budget_seconds) {
        stop(s, i, "one iteration predicted " + format_seconds(predicted) + " > budget " +
                       format_seconds(o_.budget_seconds), predicted, id.size);
        return;
      }
      std::unique_ptr<BeamSearch> search;
      std::unique_ptr<PrefixPrefill> prefix;
      try {
        if (beam) {
          search = std::make_unique<BeamSearch>(*cache, beam_shape(o_, id.size), o_.config.seed + 31);
        } else {
          prefix = std::make_unique<PrefixPrefill>(*cache, id.size, o_.block_size,
                                                   o_.config.seed + 37);
          if (prefix->prefix() < 1) {
            stop(s, i, "a prompt of " + std::to_string(id.size) + " tokens has no whole block of " +
                           std::to_string(o_.block_size) + " tokens in its first 90 %", 0, id.size);
            return;
          }
        }
      } catch (const Error& e) {
        ++outcome_.failed;
        stop(s, i, "error: " + std::string(e.what()), 0, id.size);
        return;
      }
      ++counter_;
      say("[", counter_, "/", outcome_.planned, "] ", benchmark_name(id));
      const double seconds = beam ? run_one(id, collector, beam_body(*cache, *search, *timer))
                                  : run_one(id, collector, prefix_body(*cache, *prefix, *timer));
      if (seconds < 0) {
        --counter_;
        stop(s, i, "error: " + error_, 0, id.size);
        return;
      }
      say("    ", format_seconds(seconds), " per iteration");
      predictor.add(id.size, seconds);
    }
  }

  // One iteration: one beam search (BeamSearch); the time is its S decode steps only (the
  // prompt's prefill, forks, prunes and drops are outside). Memory counters over every
  // round's samples; seconds_per_step is the time per beam step (all W beams).
  Body beam_body(KvCache& cache, BeamSearch& search, RegionTimer& timer) {
    return [&cache, &search, &timer](benchmark::State& state) {
      using benchmark::Counter;
      // One untimed round: a fresh instance's first pays one-off costs (first allocations).
      search.start();
      while (!search.done()) {
        search.step();
        search.after_step();
      }
      search.finish();
      const Stats warm = cache.stats();
      double decode = 0;
      for (auto _ : state) {
        search.start();
        double seconds = 0;
        while (!search.done()) {
          timer.start();
          search.step();
          seconds += timer.stop();
          search.after_step();
        }
        search.finish();
        decode += seconds;
        state.SetIterationTime(seconds);
      }
      const BeamShape& b = search.shape();
      const BeamMemory& m = search.memory();
      const double iterations = static_cast<double>(state.iterations());
      const double steps = static_cast<double>(b.steps) * iterations;
      const Stats work = stats_delta(warm, cache.stats());
      state.SetComplexityN(b.width);
      state.counters["width"] = Counter(b.width);
      state.counters["size"] = Counter(b.width);
      state.counters["prompt_tokens"] = Counter(b.prompt);
      state.counters["steps"] = Counter(b.steps);
      state.counters["prune_every"] = Counter(b.prune_every);
      state.counters["forks"] = Counter(search.forks_per_round());
      state.counters["prunes"] = Counter(search.prunes_per_round());
      state.counters["bytes_held_peak"] = Counter(static_cast<double>(m.held_peak));
      state.counters["bytes_held_mean"] = Counter(m.held_mean);
      state.counters["bytes_reserved_peak"] = Counter(static_cast<double>(m.reserved_peak));
      state.counters["bytes_reserved_mean"] = Counter(m.reserved_mean);
      state.counters["bytes_held"] = Counter(static_cast<double>(m.held_peak));
      state.counters["bytes_reserved"] = Counter(static_cast<double>(m.reserved_peak));
      state.counters["seconds_per_step"] = Counter(steps > 0 ? decode / steps : 0);
      state.counters["tokens_per_second"] =
          Counter(static_cast<double>(b.width) * steps, Counter::kIsRate);
      state.counters["cow_copies"] =
          Counter(static_cast<double>(cache.stats().cow_copies - warm.cow_copies),
                  Counter::kAvgIterations);
      state.counters["projection_rows"] =
          Counter(static_cast<double>(work.kv_projection_rows), Counter::kAvgIterations);
      state.counters["threads_used"] = Counter(cache.options().threads);
    };
  }

  // One iteration: one PrefixPrefill round; the time is the warm prefill call only, the cold
  // one is timed with the same timer and recorded as cold_seconds. prefix_hit_tokens are
  // those of the timed warm call (Stats::prefix_hit_tokens, per iteration), cold_hit_tokens
  // the cold call's (0 unless the cache found a prefix nobody wrote).
  Body prefix_body(KvCache& cache, PrefixPrefill& prefix, RegionTimer& timer) {
    return [&cache, &prefix, &timer](benchmark::State& state) {
      using benchmark::Counter;
      // One untimed round, as for the beam search.
      prefix.prepare();
      prefix.cold();
      prefix.warm();
      prefix.finish();
      double cold = 0, warm = 0;
      std::uint64_t cold_hits = 0, warm_hits = 0;
      for (auto _ : state) {
        prefix.prepare();
        std::uint64_t hits = cache.stats().prefix_hit_tokens;
        timer.start();
        prefix.cold();
        cold += timer.stop();
        std::uint64_t now = cache.stats().prefix_hit_tokens;
        cold_hits += now - hits;
        hits = now;
        timer.start();
        prefix.warm();
        const double seconds = timer.stop();
        warm += seconds;
        warm_hits += cache.stats().prefix_hit_tokens - hits;
        state.SetIterationTime(seconds);
        prefix.finish();
      }
      state.SetComplexityN(prefix.prompt());
      state.counters["size"] = Counter(prefix.prompt());
      state.counters["prompt_tokens"] = Counter(prefix.prompt());
      state.counters["prefix_tokens"] = Counter(prefix.prefix());
      state.counters["warm_seconds"] = Counter(warm, Counter::kAvgIterations);
      state.counters["cold_seconds"] = Counter(cold, Counter::kAvgIterations);
      state.counters["warm_over_cold"] = Counter(cold > 0 ? warm / cold : 0);
      state.counters["prefix_hit_tokens"] =
          Counter(static_cast<double>(warm_hits), Counter::kAvgIterations);
      state.counters["cold_hit_tokens"] =
          Counter(static_cast<double>(cold_hits), Counter::kAvgIterations);
      const Stats now = cache.stats();
      state.counters["bytes_held"] = Counter(static_cast<double>(now.bytes_held));
      state.counters["bytes_reserved"] = Counter(static_cast<double>(now.bytes_reserved));
      state.counters["threads_used"] = Counter(cache.options().threads);
    };
  }

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
        ->Unit(id.kind == BenchKind::decode_step ? benchmark::kMicrosecond
                                                 : benchmark::kMillisecond);
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

  // The options a series' instance is built with: `threads`, and the block pool's options.
  ImplOptions series_options(int threads) const {
    ImplOptions options;
    options.threads = threads;
    options.block_size = o_.block_size;
    options.kv_budget_bytes = o_.kv_budget_bytes;
    return options;
  }
  // A series whose instance or first preparation threw: counted as failed, stopped before
  // its first size with the error as the reason.
  void setup_failed(const Series& s, const Error& e) {
    ++outcome_.failed;
    stop(s, 0, "error: " + std::string(e.what()), 0, s.sizes.front());
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

  template <typename... Parts>
  void say(const Parts&... parts) {
    bench::say(o_.progress, parts...);
  }

  BenchOptions o_;
  std::vector<const ImplInfo*> impls_;
  BenchOutcome outcome_;
  BandwidthSchedule bandwidth_;  // on o_, impls_ and outcome_: declared after them
  std::shared_ptr<const ModelWeights> weights_;
  int counter_ = 0;
  int family_index_ = 0;
  std::string error_;
  json preparation_ = json::array();
};

}  // namespace

BenchOutcome run_bench(const BenchOptions& options) { return Runner(options).run(); }

BeamShape beam_shape(const BenchOptions& options, int width) {
  BeamShape b;
  b.width = width;
  b.steps = options.beam_steps;
  b.prune_every = options.beam_prune_every;
  b.prompt = std::min(options.serving_prompt, options.config.capacity - options.beam_steps);
  return b;
}

int prefix_prompt(const BenchOptions& options) {
  return std::min(options.serving_prompt, options.config.capacity);
}

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
