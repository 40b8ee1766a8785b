#include "ci/callgrind.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "ci/subprocess.h"
#include "harness/error.h"

namespace kvbench::gate {

namespace fs = std::filesystem;

std::map<std::string, bool> worker_impls(const std::string& worker) {
  const Captured run = capture({worker, "list"});
  require(run.status == 0, "the callgrind worker '", worker, "' failed to list its implementations (exit ",
          run.status, "): ", run.output);
  std::map<std::string, bool> out;
  std::istringstream in(run.output);
  std::string name;
  int holds = 0;
  while (in >> name >> holds) out[name] = holds != 0;
  return out;
}

std::map<std::string, std::uint64_t> read_region_dumps(const std::string& out_file) {
  std::map<std::string, std::uint64_t> regions;
  for (int part = 1;; ++part) {
    const std::string path = out_file + "." + std::to_string(part);
    std::ifstream in(path);
    if (!in.good()) break;
    const std::string trigger_prefix = "desc: Trigger: Client Request: ";
    std::string line, region;
    bool have_totals = false;
    std::uint64_t totals = 0;
    while (std::getline(in, line)) {
      if (line.rfind(trigger_prefix, 0) == 0) region = line.substr(trigger_prefix.size());
      if (line.rfind("totals:", 0) == 0) {
        totals = std::stoull(line.substr(7));
        have_totals = true;
      }
    }
    require(!region.empty(), "callgrind dump '", path, "' has no client-request trigger line");
    require(have_totals, "callgrind dump '", path, "' has no totals line");
    require(regions.count(region) == 0, "callgrind dumps hold region '", region, "' twice");
    regions[region] = totals;
  }
  return regions;
}

namespace {

std::string make_temp_dir() {
  const char* base = std::getenv("TMPDIR");
  std::string templ = std::string(base && *base ? base : "/tmp") + "/kvbench-gate-XXXXXX";
  require(mkdtemp(&templ[0]) != nullptr, "cannot create a temporary directory from '", templ, "'");
  return templ;
}

// Removes the directory when it goes out of scope.
struct TempDir {
  std::string path = make_temp_dir();
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
};

}  // namespace

std::vector<InstructionCounts> count_instructions(const std::vector<WorkerRun>& runs,
                                                  const GateWorkload& workload, int jobs,
                                                  std::ostream* progress) {
  std::vector<InstructionCounts> result;
  if (runs.empty()) return result;
  TempDir dir;
  const std::string workload_path = dir.path + "/workload.json";
  {
    std::ofstream out(workload_path);
    out << to_json(workload).dump(2) << "\n";
    require(out.good(), "cannot write '", workload_path, "'");
  }
  std::vector<Command> commands;
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const std::string stem = dir.path + "/" + std::to_string(i) + "-" + runs[i].impl;
    Command c;
    c.argv = {"valgrind",
              "--tool=callgrind",
              "--instr-atstart=no",    // instrument only between the client requests
              "--collect-atstart=no",  // and count only inside the regions
              "--dump-instr=no",
              "--dump-line=no",
              "--callgrind-out-file=" + stem + ".out",
              runs[i].worker,
              "run",
              runs[i].impl,
              workload_path,
              runs[i].long_sweep ? "long" : "short"};
    // Resolve every dynamic symbol at start-up, so no lazy binding lands inside a region;
    // and one OpenMP thread that sleeps when idle (LibTorch and OpenBLAS), whatever the
    // caller's environment says, so that the counts do not depend on it.
    c.env = {{"LD_BIND_NOW", "1"}, {"OMP_NUM_THREADS", "1"}, {"OMP_WAIT_POLICY", "passive"}};
    c.log_path = stem + ".log";
    commands.push_back(c);
  }
  if (progress) {
    *progress << "callgrind over the decode and sweep workloads of ";
    for (std::size_t i = 0; i < runs.size(); ++i) *progress << (i ? ", " : "") << runs[i].impl;
    *progress << " (" << jobs << " at a time)" << std::endl;
  }
  const std::vector<int> status = run_commands(commands, jobs);
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const std::string& name = runs[i].impl;
    const std::string& log = commands[i].log_path;
    require(status[i] == 0, "callgrind run of '", name, "' failed (exit ", status[i],
            "); the end of its log:\n", tail_of_file(log, 15));
    const auto regions = read_region_dumps(dir.path + "/" + std::to_string(i) + "-" + name + ".out");
    const auto find = [&](const std::string& region) {
      const auto it = regions.find(region);
      require(it != regions.end(), "callgrind run of '", name, "' has no dump for region '", region,
              "'; the end of its log:\n", tail_of_file(log, 15));
      return it->second;
    };
    InstructionCounts counts;
    counts.decode = find("decode");
    for (int t : workload.sweep_positions(runs[i].long_sweep)) counts.sweep[t] = find(sweep_region(t));
    result.push_back(counts);
  }
  return result;
}

}  // namespace kvbench::gate
