#include "ci/measure.h"

#include <chrono>
#include <iomanip>

#include "ci/callgrind.h"
#include "ci/gate_runs.h"
#include "harness/error.h"

namespace kvbench::gate {

std::vector<GateTarget> default_targets(const Registry& registry, const std::vector<Worker>& workers) {
  std::vector<GateTarget> targets;
  for (const ImplInfo* info : registry.all(/*include_planted=*/false)) {
    GateTarget t;
    t.name = info->name;
    t.impl = info;
    // Not measured (a skip row names why): unavailable here, or not gated yet.
    t.unavailable = !info->caps.gated ? "not gated yet (Capabilities::gated = false)"
                                      : info->why_unavailable();
    for (const Worker& w : workers) {
      if (info->device == "cpu" && t.worker.empty() && w.impls.count(info->name)) {
        t.worker = w.path;
        t.worker_impl = info->name;
        t.long_sweep = w.fast_prefill && info->caps.holds_kv_cache;
      }
    }
    if (t.worker.empty()) {
      t.no_instructions = info->device != "cpu"
                              ? "runs on " + info->device + " (callgrind counts host code only)"
                              : "no callgrind worker holds it (see ci/README.md)";
    }
    targets.push_back(t);
  }
  return targets;
}

namespace {

// "[12.3 s] " since the measurement started, for progress lines.
class Elapsed {
 public:
  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }
 private:
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

std::ostream& operator<<(std::ostream& out, const Elapsed& e) {
  return out << "[" << std::fixed << std::setprecision(1) << e.seconds() << " s] ";
}

}  // namespace

Measurement measure(const MeasureOptions& o) {
  o.workload.validate();
  const Elapsed elapsed;
  Measurement m;
  m.toolchain = Toolchain::current();
  m.workload = o.workload;
  std::vector<WorkerRun> runs;
  std::vector<std::string> run_target;  // the target name of each run
  for (const GateTarget& t : o.targets) {
    require(t.impl != nullptr, "gate: target '", t.name, "' has no implementation");
    require(m.impls.count(t.name) == 0 && m.unavailable.count(t.name) == 0, "gate: target '", t.name,
            "' is listed twice");
    if (!t.unavailable.empty()) {
      m.unavailable[t.name] = t.unavailable;
      continue;
    }
    ImplMeasurement& im = m.impls[t.name];
    im.device = t.impl->device;
    if (o.progress) *o.progress << "gate: " << elapsed << "counters of " << t.name << std::endl;
    im.counters = run_counter_workload(*t.impl, o.workload);
    if (!t.worker.empty()) {
      runs.push_back(WorkerRun{t.worker, t.worker_impl, t.long_sweep});
      run_target.push_back(t.name);
    } else {
      im.instructions_skipped = t.no_instructions.empty() ? "not counted" : t.no_instructions;
    }
  }
  if (!runs.empty()) {
    if (o.progress) *o.progress << "gate: " << elapsed;
    const auto counts = count_instructions(runs, o.workload, o.jobs, o.progress);
    for (std::size_t i = 0; i < runs.size(); ++i) m.impls[run_target[i]].instructions = counts[i];
  }
  if (o.time_repetitions > 0) {
    for (const GateTarget& t : o.targets) {
      if (!t.unavailable.empty()) continue;
      if (o.progress) {
        *o.progress << "gate: " << elapsed << "timing " << t.name << " (" << o.time_repetitions << " x "
                    << o.workload.decode.steps << " decode steps)" << std::endl;
      }
      m.impls[t.name].seconds_per_step = time_decode_region(*t.impl, o.workload, o.time_repetitions);
    }
  }
  if (o.progress) *o.progress << "gate: " << elapsed << "measured" << std::endl;
  return m;
}

}  // namespace kvbench::gate
