// `kvbench bench`: runs the benchmark sweeps (harness/bench/runner.h) and writes Google
// Benchmark's JSON.
#include <iostream>
#include <memory>
#include <sstream>

#include "harness/atomic_file.h"
#include "harness/bench/names.h"
#include "harness/bench/runner.h"
#include "harness/bench/sweep.h"
#include "harness/bench/cmd_bench.h"
#include "harness/cli_validators.h"
#include "harness/error.h"
#include "harness/registry.h"

namespace kvbench::cli {

namespace {

struct BenchArgs {
  std::string impls = "all";
  std::string shape = "default";
  std::string tokens;
  std::string positions;
  std::string long_impls = "cpu_cached";
  std::string long_positions = "auto";
  std::string threads = "1,2";
  std::string serving = "beam,prefix";
  std::string dtype = "fp32";
  bool quick = false;
  bool no_check = false;
  std::string out = "bench.json";
  double min_time = 0;
  int repetitions = 0;
  double budget = 0;
  double prepare_budget = 0;
  std::vector<std::string> plugins;
  int bandwidth_mib = 0;
  long long block_size = ImplOptions{}.block_size;
  long long kv_budget_bytes = 0;
};

// The sweep defaults. Preparing a decode-step position t costs a prefill of t tokens,
// quadratic in t, and dominates a run: --quick (CI, under two minutes on two cores) takes
// every implementation to t = 4096 and only the long-context implementations further; the
// full run takes every implementation to 16384 (the targets' long position) in doubling
// steps. Both stay below half the shape's capacity.
void apply_defaults(BenchArgs& a, const ModelConfig& config) {
  const int cap_half = config.capacity / 2;
  const int max_tokens = std::min(a.quick ? 2048 : 16384, config.capacity);
  const int max_position = std::min(a.quick ? 4096 : 16384, cap_half);
  if (a.tokens.empty()) a.tokens = "16.." + std::to_string(max_tokens);
  if (a.positions.empty()) {
    a.positions = "16.." + std::to_string(max_position) + (a.quick ? ":x4" : "");
  }
  if (a.min_time <= 0) a.min_time = a.quick ? 0.02 : 0.1;
  // Shared machines add one-sided noise; the full run takes the median of three.
  if (a.repetitions <= 0) a.repetitions = a.quick ? 1 : 3;
  if (a.budget <= 0) a.budget = a.quick ? 1.0 : 10.0;
  if (a.prepare_budget <= 0) a.prepare_budget = a.quick ? 45.0 : 240.0;
}

std::string describe(const BenchArgs& a) {
  std::ostringstream out;
  out << "kvbench bench --impl " << a.impls << " --shape " << a.shape << " --dtype " << a.dtype
      << " --tokens " << a.tokens << " --positions " << a.positions << " --long-impls " << a.long_impls
      << " --long-positions " << a.long_positions << " --threads " << a.threads << " --min-time " << a.min_time
      << " --repetitions " << a.repetitions << " --budget " << a.budget
      << " --prepare-budget " << a.prepare_budget << (a.quick ? " --quick" : "")
      << (a.no_check ? " --no-check" : "") << " --block-size " << a.block_size
      << " --kv-budget-bytes " << a.kv_budget_bytes << " --serving " << a.serving
      << " --out " << a.out;
  return out.str();
}

// RETURNS: the sweep `text` of option `arg`, each value in [lo, hi]; `why` says what the
// upper bound is. Throws Error naming the option and the value.
std::vector<int> sweep_option(const std::string& arg, const std::string& text, int lo, int hi,
                              const std::string& why) {
  const std::vector<int> values = for_option(arg, [&] { return bench::parse_sweep(text); });
  for (int v : values) {
    require(v >= lo, arg, ": ", v, " is not >= ", lo);
    require(v <= hi, arg, ": ", v, " is ", why);
  }
  return values;
}

// The implementations named in a comma-separated list (an unknown one is an error naming
// the option and the known ones).
std::vector<std::string> impl_list(const std::string& arg, const std::string& text) {
  std::vector<std::string> names;
  std::stringstream in(text);
  for (std::string name; std::getline(in, name, ',');) {
    for_option(arg, [&] { return &Registry::global().get(name); });
    names.push_back(name);
  }
  return names;
}

// Everything the command line says, checked before any work (a mistake found after a sweep
// of minutes would waste it): the output path is writable, plugins load, the shape, dtype,
// implementations and sweeps are known and fit the shape's capacity.
bench::BenchOptions options_of(BenchArgs& a) {
  check_writable(a.out, "--out");
  Registry& registry = Registry::global();
  for (const auto& path : a.plugins) for_option("--plugin", [&] { registry.load_plugin(path); });
  bench::BenchOptions o;
  o.impls = for_option("--impl", [&] { return registry.select(a.impls); });
  o.shape = a.shape;
  o.config = for_option("--shape", [&] { return find_shape(a.shape).config; });
  o.config.dtype = for_option("--dtype", [&] { return parse_dtype(a.dtype); });
  apply_defaults(a, o.config);
  const int cap = o.config.capacity;
  const std::string shape = " of shape '" + a.shape + "'";
  // "none": no series of that kind (e.g. decode steps only, on a wide shape).
  if (a.tokens != "none") o.tokens = sweep_option("--tokens", a.tokens, 1, cap,
                          "past the capacity " + std::to_string(cap) + shape +
                              " (a generation of T tokens needs T <= capacity)");
  const std::string past = "past the last position " + std::to_string(cap - 1) + shape +
                           " (a decode step at position t needs t < capacity)";
  if (a.positions != "none") o.positions = sweep_option("--positions", a.positions, 1, cap - 1, past);
  o.threads = sweep_option("--threads", a.threads, 1, 1024, "more than 1024 threads");
  if (a.long_impls != "none") o.long_impls = impl_list("--long-impls", a.long_impls);
  if (a.long_positions == "auto") {
    // A K/V >= 8x the last-level cache streams from DRAM (the bandwidth targets are judged
    // there only); where the capacity cannot hold that much (the default shape: 128 MiB),
    // >= 2x, partly cached. Quick runs add 16384 (the targets' long position), which the
    // other implementations skip.
    const std::size_t llc = bench::detect_machine().llc_bytes;
    const bool fits = static_cast<double>(cap - 1) * o.config.kv_bytes_per_token() >=
                      8.0 * static_cast<double>(llc);
    o.long_positions = {bench::position_past_cache(o.config, llc, fits ? 8.0 : 2.0)};
    if (a.quick && 16384 <= cap / 2) o.long_positions.push_back(16384);
  } else if (a.long_positions != "none") {
    o.long_positions = sweep_option("--long-positions", a.long_positions, 1, cap - 1, past);
  }
  // The serving benchmarks: beam search at widths 4 and 8, the prefix-hit prefill.
  std::stringstream serving(a.serving);
  for (std::string part; std::getline(serving, part, ',');) {
    if (part == "beam") {
      o.beam_widths = {4, 8};
    } else if (part == "prefix") {
      o.prefix_prefill = true;
    } else if (part == "none") {
      require(a.serving == "none", "--serving: none leaves out both and stands alone, got '",
              a.serving, "'");
    } else {
      fail("--serving: '", part, "' is not beam, prefix or none (a list: beam,prefix)");
    }
  }
  o.min_time = a.min_time;
  o.repetitions = a.repetitions;
  o.budget_seconds = a.budget;
  o.prepare_budget_seconds = a.prepare_budget;
  o.quick = a.quick;
  o.check = !a.no_check;
  o.out_path = a.out;
  o.command_line = describe(a);
  o.progress = &std::cerr;
  o.display = &std::cout;
  o.bandwidth_bytes = static_cast<std::size_t>(a.bandwidth_mib) << 20;
  o.block_size = static_cast<int>(a.block_size);
  o.kv_budget_bytes = static_cast<std::uint64_t>(a.kv_budget_bytes);
  // A block (Capabilities::blocks) holds block_size tokens of every layer's K and V: a
  // budget that cannot hold one is an error before any work, as the implementations'
  // constructors would say later.
  std::uint64_t block = 0;
  if (__builtin_mul_overflow(static_cast<std::uint64_t>(a.block_size),
                             static_cast<std::uint64_t>(o.config.kv_bytes_per_token()), &block)) {
    fail("--block-size ", a.block_size, ": a block of shape '", a.shape, "' (",
         o.config.kv_bytes_per_token(), " bytes per token) overflows 64 bits");
  }
  require(a.kv_budget_bytes == 0 || o.kv_budget_bytes >= block, "--kv-budget-bytes ",
          a.kv_budget_bytes, " cannot hold one block of ", block, " bytes (--block-size ",
          a.block_size, " x ", o.config.kv_bytes_per_token(), " bytes per token of shape '",
          a.shape, "')");
  return o;
}

void run(BenchArgs a) {
  const bench::BenchOptions o = options_of(a);
  std::cerr << o.command_line << "\n";
  const bench::BenchOutcome outcome = bench::run_bench(o);
  for (const auto& s : outcome.stops) {
    std::cerr << "stopped: " << s.series << " before " << s.stopped_before << ": " << s.reason
              << "\n";
  }
  for (const auto& c : outcome.checks) {
    if (!c.passed) {
      std::cerr << "check failed: " << c.impl << " (threads " << c.threads << "): " << c.failure
                << " -- not timed\n";
    }
  }
  if (!outcome.failed_checks.empty()) {
    std::cerr << "bench: " << outcome.failed_checks.size()
              << " implementation(s) failed the check before timing and were not timed; "
              << outcome.ran << " benchmarks of the others written to " << a.out << "\n";
    throw CommandExit{4};
  }
  if (outcome.failed > 0) {
    std::cerr << "bench: " << outcome.failed << " benchmark(s) failed (see above); "
              << outcome.ran << " measured and written to " << a.out << "\n";
    throw CommandExit{1};
  }
}

}  // namespace

void add_bench_command(CLI::App& app) {
  auto a = std::make_shared<BenchArgs>();
  auto* cmd = app.add_subcommand(
      "bench",
      "Benchmark implementations with Google Benchmark: a whole generation of T tokens for T\n"
      "in a sweep (generate/<impl>/T:<T>) and one decode step at position t\n"
      "(decode_step/<impl>/threads:<n>/pos:<t>), and the serving benchmarks (--serving).\n"
      "Writes Google Benchmark's JSON (compare.py\n"
      "reads it) whose context records the model, the machine and the read-only and copy\n"
      "bandwidths measured in the same process. A series stops before a size predicted to\n"
      "pass the time budget (naive first); the JSON records where. Progress goes to stderr,\n"
      "Google Benchmark's table to stdout. Then: kvbench report FILE.json --out DIR.\n"
      "Before timing, each implementation (at each thread count it is timed with) is checked\n"
      "at this shape and dtype: prefilled to the longest position t of its sweep, its decode\n"
      "steps at t and t+1 are compared with a float64 computation over its own read_kv rows,\n"
      "and sampled rows with the reference K/V projections (no-cache implementations: with a\n"
      "float64 full reference, at a lower t if that is too costly, said so). An implementation\n"
      "that fails is reported and not timed; the others still run and are written.\n"
      "Exit status: 0 ok; 1 some benchmark failed; 2 bad usage; 4 an implementation failed\n"
      "the check (takes precedence over 1).");
  cmd->add_option("--impl", a->impls, "Implementations: A,B or all (available ones)")
      ->capture_default_str();
  cmd->add_option("--shape", a->shape,
                  "Model shape: default (small, fast), llama2-7b, llama3-8b, gpt2")
      ->capture_default_str();
  cmd->add_option("--dtype", a->dtype, "Cache element type: fp32, fp16, bf16")
      ->capture_default_str();
  cmd->add_option("--tokens", a->tokens,
                  "Generation lengths T: a list and/or ranges, e.g. 16..4096 (doubling), "
                  "100..1000:+100, 64..4096:x4, 100,300, or none [default: 16..16384, quick 16..2048]");
  cmd->add_option("--positions", a->positions,
                  "Decode-step positions t for every implementation, same syntax [default: "
                  "16..16384, quick 16..4096:x4; at most capacity/2], or none");
  cmd->add_option("--long-impls", a->long_impls,
                  "Implementations also measured at --long-positions and with each of "
                  "--threads (thread scaling, memory bandwidth): A,B or none")
      ->capture_default_str();
  cmd->add_option("--long-positions", a->long_positions,
                  "Their extra decode-step positions: a list, none, or auto (the first power of "
                  "two whose K/V is >= 8x the last-level cache, or >= 2x where the capacity "
                  "cannot hold 8x; quick adds 16384)")
      ->capture_default_str();
  cmd->add_option("--threads", a->threads,
                  "Thread counts for the --long-impls that honour threads (decode steps)")
      ->capture_default_str();
  cmd->add_option("--block-size", a->block_size,
                  "Tokens per block of the block-pool implementations (paged)")
      ->capture_default_str()
      ->check(integer_in(1, 1 << 20));
  cmd->add_option("--kv-budget-bytes", a->kv_budget_bytes,
                  "K/V memory budget of the block-pool implementations in bytes (0: grow as "
                  "needed; else at least one block)")
      ->capture_default_str()
      ->check(integer_at_least(0));
  cmd->add_option("--serving", a->serving,
                  "Serving benchmarks: beam (beam/<impl>/width:4 and 8: forked beams over a "
                  "shared prompt of min(512, capacity - 32) tokens, pruned and re-forked every 8 of 32 steps; peak and "
                  "mean bytes held), prefix (prefix_prefill/<impl>/P:min(512, capacity): a prefill whose first "
                  "90 % an earlier sequence prefilled, against a cold one), a list of both, or "
                  "none")
      ->capture_default_str();
  cmd->add_flag("--quick", a->quick,
                "Short sweep and short measurements: under 2 minutes on 2 cores (CI)");
  cmd->add_flag("--no-check", a->no_check,
                "Skip the check before timing (the JSON context then says "
                "\"check\": \"skipped (--no-check)\")");
  cmd->add_option("--out", a->out, "Output JSON file")->capture_default_str();
  cmd->add_option("--min-time", a->min_time,
                  "Google Benchmark's minimum seconds per benchmark [default: 0.1, quick 0.02]")
      ->check(number_above(0));
  cmd->add_option("--repetitions", a->repetitions,
                  "Repetitions per benchmark; reports use the median (>= 9 for compare.py's "
                  "U test) [default: 3, quick 1]")
      ->check(integer_in(1, 1000));
  cmd->add_option("--budget", a->budget,
                  "Seconds one iteration may take: a series stops before a size predicted to "
                  "take longer [default: 10, quick 1]")
      ->check(number_above(0));
  cmd->add_option("--prepare-budget", a->prepare_budget,
                  "Seconds preparing a decode-step position (prefill) may take "
                  "[default: 240, quick 45]")
      ->check(number_above(0));
  cmd->add_option("--bandwidth-mib", a->bandwidth_mib,
                  "Buffer size of the read-only reference and copy measurements in MiB [default: 8x last-level "
                  "cache, at least 64]")
      ->check(integer_in(1, 1 << 20));
  cmd->add_option("--plugin", a->plugins, "Load implementations from a shared library first");
  cmd->callback([a] { run(*a); });
}

}  // namespace kvbench::cli
