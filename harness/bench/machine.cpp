#include "harness/bench/machine.h"

#include <benchmark/benchmark.h>

#include <fstream>
#include <thread>

namespace kvbench::bench {

namespace {

std::string cpu_model_name() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      const std::size_t colon = line.find(':');
      if (colon != std::string::npos) {
        std::size_t start = line.find_first_not_of(" \t", colon + 1);
        if (start != std::string::npos) return line.substr(start);
      }
    }
  }
  return "unknown";
}

}  // namespace

MachineInfo detect_machine() {
  MachineInfo m;
  m.cpu_model = cpu_model_name();
  const benchmark::CPUInfo& cpu = benchmark::CPUInfo::Get();
  m.logical_cpus = cpu.num_cpus > 0 ? cpu.num_cpus
                                    : static_cast<int>(std::thread::hardware_concurrency());
  m.mhz = cpu.cycles_per_second / 1e6;
  int top_level = 0;
  for (const auto& c : cpu.caches) {
    CacheLevel level;
    level.level = c.level;
    level.type = c.type;
    level.bytes = c.size > 0 ? static_cast<std::size_t>(c.size) : 0;
    level.shared_by = c.num_sharing;
    m.caches.push_back(level);
    if (c.type == "Instruction" || c.size <= 0) continue;
    if (c.level > top_level || (c.level == top_level && level.bytes > m.llc_bytes)) {
      top_level = c.level;
      m.llc_bytes = level.bytes;
    }
  }
  m.llc_detected = m.llc_bytes > 0;
  if (!m.llc_detected) m.llc_bytes = std::size_t{32} << 20;
  return m;
}

}  // namespace kvbench::bench
