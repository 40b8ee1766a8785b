// `kvbench gate`: compares this build with a committed baseline (ci/README.md).
//   exit 0: every check passed; 1: a regression (or a missing, zero or non-finite value: a
//   failed check); 2: unusable input (missing file, not JSON, another schema or version, a
//   field of the wrong type, no implementations, another workload), a measurement that could
//   not run, or --update on a broken measurement.
#include <unistd.h>

#include <algorithm>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "ci/callgrind.h"
#include "ci/checks.h"
#include "ci/measure.h"
#include "ci/measurement.h"
#include "ci/cmd_gate.h"
#include "harness/atomic_file.h"
#include "harness/cli_validators.h"
#include "harness/error.h"

namespace kvbench::cli {
namespace {

struct GateArgs {
  std::string baseline;
  std::string current;
  std::string out;
  bool update = false;
  bool strict_time = false;
  double time_min_effect = 0.05;
  int time_repetitions = 9;
  int jobs = 0;
  std::string worker_dir;
};

// RETURNS: the directory of this executable ("" when /proc is unavailable).
std::string own_directory() {
  std::string path(4096, '\0');
  const ssize_t n = readlink("/proc/self/exe", &path[0], path.size() - 1);
  if (n <= 0) return "";
  path.resize(static_cast<std::size_t>(n));
  return path.substr(0, path.rfind('/'));
}

// The callgrind workers, the LibTorch-free one first (it starts ~8 s of CPU faster under
// valgrind, so it counts every implementation it holds).
std::vector<gate::Worker> workers(const GateArgs& a) {
  const std::string dir = a.worker_dir.empty() ? own_directory() : a.worker_dir;
  std::vector<gate::Worker> out;
  for (const char* name : {"kvbench-gate-worker", "kvbench-gate-worker-torch"}) {
    gate::Worker w;
    w.path = dir + "/" + name;
    require(access(w.path.c_str(), X_OK) == 0, "the callgrind worker '", w.path,
            "' is missing or not executable (build the target ", name, ", or pass --worker-dir)");
    w.impls = gate::worker_impls(w.path);
    w.fast_prefill = out.empty();  // the LibTorch-free one
    out.push_back(w);
  }
  return out;
}

gate::Measurement measure_this_build(const GateArgs& a) {
  gate::MeasureOptions options;
  options.workload = gate::default_workload();
  options.targets = gate::default_targets(Registry::global(), workers(a));
  options.jobs = a.jobs > 0 ? a.jobs : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  options.time_repetitions = a.time_repetitions;
  options.progress = &std::cerr;
  return gate::measure(options);
}

gate::GateBands bands_of(const GateArgs& a) {
  gate::GateBands bands;
  bands.strict_time = a.strict_time;
  bands.time_min_effect = a.time_min_effect;
  return bands;
}

gate::Measurement current_measurement(const GateArgs& a) {
  gate::Measurement current =
      a.current.empty() ? measure_this_build(a) : gate::read_measurement(a.current);
  if (!a.out.empty()) {
    gate::write_measurement(current, a.out);
    std::cerr << "gate: wrote the current measurement to " << a.out << "\n";
  }
  return current;
}

void print_header(const GateArgs& a) {
  std::cout << "kvbench gate: baseline " << a.baseline << ", current "
            << (a.current.empty() ? "measured by this build" : a.current) << std::endl;
}

// Throws Error (exit 2) when `current` holds a value no check could read: a baseline written
// from it would make every later comparison of that value fail or mean nothing.
void require_usable_as_baseline(const gate::Measurement& current, const GateArgs& a) {
  const std::vector<std::string> problems = gate::measurement_problems(current);
  if (problems.empty()) return;
  std::string list;
  for (const std::string& p : problems) list += "\n  " + p;
  fail("refusing to write the baseline '", a.baseline, "': the measurement",
       a.current.empty() ? std::string() : " '" + a.current + "'", " is broken (nothing was written):", list);
}

// --update: the comparison with the old baseline, when it is usable, is for information.
void update_baseline(const GateArgs& a) {
  const gate::Measurement current = current_measurement(a);
  require_usable_as_baseline(current, a);
  print_header(a);
  if (access(a.baseline.c_str(), F_OK) == 0) {
    try {
      const gate::Measurement old = gate::read_measurement(a.baseline);
      gate::print_result(gate::compare(old, current, bands_of(a)), std::cout);
    } catch (const Error& e) {
      std::cout << "note: the old baseline is not comparable (" << e.what() << ")\n";
    }
  }
  gate::write_measurement(current, a.baseline);
  std::cout << "gate: wrote a new baseline to " << a.baseline
            << " (commit it with the change that explains it)\n";
}

void run_gate(const GateArgs& a) {
  require(!a.baseline.empty(), "--baseline FILE is required (the committed one is ci/baseline.json)");
  require(a.time_repetitions >= 0, "--time-repetitions must be >= 0, got ", a.time_repetitions);
  require(a.time_min_effect >= 0, "--time-min-effect must be >= 0, got ", a.time_min_effect);
  // Outputs are checked before the measuring, which takes minutes.
  if (!a.out.empty()) check_writable(a.out, "--out");
  if (a.update) check_writable(a.baseline, "--baseline");
  if (a.update) {
    update_baseline(a);
    return;
  }
  // Unusable input fails before the measuring, which takes a while.
  const gate::Measurement baseline = gate::read_measurement(a.baseline);
  if (a.current.empty()) {
    const std::string diff = gate::describe_difference(baseline.workload, gate::default_workload());
    require(diff.empty(), "the baseline '", a.baseline,
            "' was measured with another workload than this build runs (baseline vs this build: ", diff,
            "); write a new baseline with --update (ci/README.md)");
  }
  const gate::Measurement current = current_measurement(a);
  const gate::GateResult result = gate::compare(baseline, current, bands_of(a));
  print_header(a);
  gate::print_result(result, std::cout);  // its last line counts passed and failed checks
  if (!result.passed()) throw CommandExit{1};
}

}  // namespace

void add_gate_command(CLI::App& app) {
  auto a = std::make_shared<GateArgs>();
  auto* cmd = app.add_subcommand(
      "gate",
      "CI regression gate: compare this build with a baseline on signals noise cannot move.\n"
      "Checks: exact op counters and bytes held; callgrind instruction counts of a fixed decode\n"
      "workload and of a T sweep (at most +3%); the scaling exponent fitted on the sweep (at\n"
      "most +0.15) and naive/cached at a fixed T (at most -15%). Wall-clock is reported, and\n"
      "gated only with --strict-time.\n"
      "Exit 0: all checks pass; 1: a regression; 2: unusable input (missing file, other schema\n"
      "or version, different workload) or a measurement that could not run. See ci/README.md.");
  cmd->add_option("--baseline", a->baseline,
                  "Baseline measurement to compare with (the committed one: ci/baseline.json); "
                  "with --update, the file to write")
      ->type_name("FILE");
  cmd->add_option("--current", a->current,
                  "Read the current measurement from this file (written by --out or --update) "
                  "instead of measuring this build")
      ->type_name("FILE");
  cmd->add_flag("--update", a->update,
                "Write the current measurement as the new baseline (an intended change updates "
                "the baseline in the same commit); prints the comparison with the old one, if "
                "usable, and exits 0");
  cmd->add_option("--out", a->out, "Also write the current measurement to this file")
      ->type_name("FILE");
  cmd->add_flag("--strict-time", a->strict_time,
                "Gate wall-clock too (quiet dedicated machines whose baseline was measured there): "
                "fail when the Mann-Whitney U test gives p < 0.05 and the median step time grew "
                "by more than --time-min-effect; needs >= 9 repetitions on both sides");
  cmd->add_option("--time-min-effect", a->time_min_effect,
                  "Smallest relative slowdown --strict-time fails on")
      ->capture_default_str()
      ->check(number_above(0, true));
  cmd->add_option("--time-repetitions", a->time_repetitions,
                  "Wall-clock repetitions of the decode workload per implementation (0: none)")
      ->capture_default_str()
      ->check(integer_in(0, 1000));
  cmd->add_option("--jobs", a->jobs, "Callgrind runs at a time (default: the number of cores)")
      ->check(integer_in(1, 1024));
  cmd->add_option("--worker-dir", a->worker_dir,
                  "Directory of the callgrind workers kvbench-gate-worker and "
                  "kvbench-gate-worker-torch (default: the one holding kvbench)")
      ->type_name("DIR");
  cmd->callback([a] { run_gate(*a); });
}

}  // namespace kvbench::cli
