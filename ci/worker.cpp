#include "ci/worker.h"

#include <valgrind/callgrind.h>

#include <fstream>
#include <iostream>
#include <string>

#include "ci/gate_runs.h"
#include "harness/error.h"

namespace kvbench::gate {
namespace {

// Instrumentation is switched on only around a region: everything else (prefill, setup) runs
// at valgrind's uninstrumented speed, and each region's cost is dumped under its own name.
class CallgrindMarker final : public RegionMarker {
 public:
  void begin(const std::string&) override {
    CALLGRIND_START_INSTRUMENTATION;
    CALLGRIND_ZERO_STATS;
    CALLGRIND_TOGGLE_COLLECT;
  }
  void end(const std::string& region) override {
    CALLGRIND_TOGGLE_COLLECT;
    CALLGRIND_DUMP_STATS_AT(region.c_str());
    CALLGRIND_STOP_INSTRUMENTATION;
  }
};

int run(const Registry& registry, const std::string& impl_name, const std::string& path,
        const std::string& sweep) {
  require(sweep == "short" || sweep == "long", "worker: the sweep is 'short' or 'long', got '", sweep, "'");
  std::ifstream file(path);
  require(file.good(), "worker: cannot read workload file '", path, "'");
  nlohmann::json json;
  try {
    file >> json;
  } catch (const nlohmann::json::exception& e) {
    fail("worker: workload file '", path, "' is not JSON: ", e.what());
  }
  const GateWorkload workload = workload_from_json(json);
  const ImplInfo& impl = registry.get(impl_name);
  CallgrindMarker marker;
  run_decode_region(impl, workload, marker);
  run_sweep_regions(impl, workload, sweep == "long", marker);
  return 0;
}

}  // namespace

int worker_main(const Registry& registry, int argc, char** argv) {
  const std::string usage = "usage: WORKER list | WORKER default-workload | WORKER run IMPL WORKLOAD.json short|long";
  try {
    const std::string command = argc > 1 ? argv[1] : "";
    if (command == "list" && argc == 2) {
      for (const ImplInfo* info : registry.all(/*include_planted=*/true)) {
        if (info->available()) std::cout << info->name << " " << info->caps.holds_kv_cache << "\n";
      }
      return 0;
    }
    if (command == "default-workload" && argc == 2) {
      std::cout << to_json(default_workload()).dump(2) << "\n";
      return 0;
    }
    if (command == "run" && argc == 5) return run(registry, argv[2], argv[3], argv[4]);
    std::cerr << usage << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "kvbench-gate-worker: error: " << e.what() << "\n";
    return 2;
  }
}

}  // namespace kvbench::gate
