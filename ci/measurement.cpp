#include "ci/measurement.h"

#include <gnu/libc-version.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "ci/subprocess.h"
#include "harness/atomic_file.h"
#include "harness/error.h"
#include "harness/json_file.h"

#ifndef KVBENCH_BUILD_TYPE
#define KVBENCH_BUILD_TYPE "unknown"
#endif

namespace kvbench::gate {

using nlohmann::json;

namespace {

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

std::string detect_cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) return trim(line.substr(line.find(':') + 1));
  }
  return "unknown";
}

// The CPU flags that select code variants inside the measured regions: glibc picks memcpy,
// memset and expf variants by avx/avx2/fma/erms/fsrm (with erms, large copies are one
// `rep movsb`, which callgrind counts once per byte), LibTorch picks kernels by avx2/avx512.
std::string detect_cpu_features() {
  std::ifstream in("/proc/cpuinfo");
  std::string line, flags;
  while (std::getline(in, line)) {
    if (line.rfind("flags", 0) == 0) {
      flags = " " + line.substr(line.find(':') + 1) + " ";
      break;
    }
  }
  std::string out;
  for (const char* name : {"sse4_2", "avx", "avx2", "fma", "avx512f", "erms", "fsrm"}) {
    if (flags.find(" " + std::string(name) + " ") != std::string::npos) {
      out += (out.empty() ? "" : " ") + std::string(name);
    }
  }
  return out.empty() ? "unknown" : out;
}

// RETURNS: the LibTorch and BLAS libraries mapped into this process, by path ("none"): the
// torch peers' counts are mostly theirs (the file names carry versions, the BLAS path says
// which alternative: reference, OpenBLAS pthreads or OpenMP).
std::string detect_libraries() {
  std::ifstream in("/proc/self/maps");
  std::string line, out;
  while (std::getline(in, line)) {
    const auto at = line.find('/');
    if (at == std::string::npos) continue;
    const std::string path = line.substr(at);
    const std::string file = path.substr(path.rfind('/') + 1);
    const bool wanted = file.rfind("libtorch_cpu", 0) == 0 || file.rfind("libblas", 0) == 0 ||
                        file.rfind("libopenblas", 0) == 0;
    if (wanted && out.find(path) == std::string::npos) out += (out.empty() ? "" : " ") + path;
  }
  return out.empty() ? "none" : out;
}

std::string valgrind_version() {
  try {
    const Captured run = capture({"valgrind", "--version"});
    if (run.status == 0) return trim(run.output);
    return "unavailable (valgrind --version exited " + std::to_string(run.status) + ")";
  } catch (const Error& e) {
    return std::string("unavailable (") + e.what() + ")";
  }
}

}  // namespace

Toolchain Toolchain::current() {
  Toolchain t;
#if defined(__clang__)
  t.compiler = std::string("Clang ") + __clang_version__;
#elif defined(__GNUC__)
  t.compiler = std::string("GCC ") + __VERSION__;
#else
  t.compiler = "unknown";
#endif
  t.build_type = KVBENCH_BUILD_TYPE;
  t.valgrind = valgrind_version();
  t.glibc = gnu_get_libc_version();
  t.cpu = detect_cpu_model();
  t.cpu_features = detect_cpu_features();
  t.libraries = detect_libraries();
  return t;
}

std::string Toolchain::describe_difference(const Toolchain& o) const {
  std::ostringstream out;
  int shown = 0;
  const auto field = [&](const char* name, const std::string& a, const std::string& b) {
    if (a == b) return;
    out << (shown++ ? "; " : "") << name << " '" << a << "' vs '" << b << "'";
  };
  field("compiler", compiler, o.compiler);
  field("build type", build_type, o.build_type);
  field("valgrind", valgrind, o.valgrind);
  field("glibc", glibc, o.glibc);
  field("cpu", cpu, o.cpu);
  field("cpu features", cpu_features, o.cpu_features);
  field("libraries", libraries, o.libraries);
  return out.str();
}

json to_json(const Measurement& m) {
  json impls = json::object();
  for (const auto& [name, im] : m.impls) {
    json j;
    j["device"] = im.device;
    json counters;
    for (const auto& [key, value] : im.counters.as_map()) counters[key] = value;
    counters["phases"] = im.counters.phases;
    j["counters"] = counters;
    if (im.instructions) {
      json sweep = json::object();
      for (const auto& [t, ir] : im.instructions->sweep) sweep[std::to_string(t)] = ir;
      j["instructions"] = {{"decode", im.instructions->decode}, {"sweep", sweep}};
    } else {
      j["instructions_skipped"] = im.instructions_skipped;
    }
    j["seconds_per_step"] = im.seconds_per_step;
    impls[name] = j;
  }
  const Toolchain& t = m.toolchain;
  return json{{"schema", kSchema},
              {"version", kSchemaVersion},
              {"toolchain",
               {{"compiler", t.compiler},
                {"build_type", t.build_type},
                {"valgrind", t.valgrind},
                {"glibc", t.glibc},
                {"cpu", t.cpu},
                {"cpu_features", t.cpu_features},
                {"libraries", t.libraries}}},
              {"workload", to_json(m.workload)},
              {"impls", impls},
              {"unavailable", m.unavailable}};
}

namespace {

// RETURNS: j[key] as T. Throws Error "missing field WHEREkey" or "field WHEREkey: expected
// <kind>, got <value>" (json_file's strict conversion: a negative count is not a count).
template <typename T>
T get(const json& j, const std::string& where, const char* key) {
  require(j.is_object() && j.contains(key), "missing field ", where, key);
  return json_file::as<T>(json_file::Field(j.at(key), "", where + key));
}

ImplMeasurement impl_from_json(const json& j, const std::string& where) {
  ImplMeasurement im;
  im.device = get<std::string>(j, where, "device");
  const json& c = j.contains("counters") ? j.at("counters") : json();
  const std::string cw = where + "counters.";
  im.counters.kv_projection_rows = get<std::uint64_t>(c, cw, "kv_projection_rows");
  im.counters.qk_dot_products = get<std::uint64_t>(c, cw, "qk_dot_products");
  im.counters.kv_bytes_read = get<std::uint64_t>(c, cw, "kv_bytes_read");
  im.counters.bytes_held = get<std::uint64_t>(c, cw, "bytes_held");
  im.counters.phases = get<std::string>(c, cw, "phases");
  if (j.contains("instructions")) {
    const json& ins = j.at("instructions");
    InstructionCounts counts;
    counts.decode = get<std::uint64_t>(ins, where + "instructions.", "decode");
    const auto sweep = get<std::map<std::string, std::uint64_t>>(ins, where + "instructions.", "sweep");
    for (const auto& [t, ir] : sweep) {
      try {
        counts.sweep[std::stoi(t)] = ir;
      } catch (const std::exception&) {
        fail("field ", where, "instructions.sweep has a key '", t, "' that is not a position");
      }
    }
    im.instructions = counts;
  } else {
    im.instructions_skipped = get<std::string>(j, where, "instructions_skipped");
  }
  im.seconds_per_step = get<std::vector<double>>(j, where, "seconds_per_step");
  return im;
}

}  // namespace

Measurement measurement_from_json(const json& j) {
  require(j.is_object(), "not a kvbench gate measurement (the top level is not an object)");
  const std::string schema = j.contains("schema") && j.at("schema").is_string()
                                 ? j.at("schema").get<std::string>() : std::string("(none)");
  require(schema == kSchema, "schema is '", schema, "', expected '", kSchema, "'");
  const int version = get<int>(j, "", "version");
  require(version == kSchemaVersion, "schema version is ", version, ", this kvbench reads version ",
          kSchemaVersion, " (write a new baseline with --update)");
  Measurement m;
  const json& t = j.contains("toolchain") ? j.at("toolchain") : json();
  m.toolchain.compiler = get<std::string>(t, "toolchain.", "compiler");
  m.toolchain.build_type = get<std::string>(t, "toolchain.", "build_type");
  m.toolchain.valgrind = get<std::string>(t, "toolchain.", "valgrind");
  m.toolchain.glibc = get<std::string>(t, "toolchain.", "glibc");
  m.toolchain.cpu = get<std::string>(t, "toolchain.", "cpu");
  m.toolchain.cpu_features = get<std::string>(t, "toolchain.", "cpu_features");
  m.toolchain.libraries = get<std::string>(t, "toolchain.", "libraries");
  require(j.contains("workload"), "missing field workload");
  try {
    m.workload = workload_from_json(j.at("workload"));
  } catch (const Error& e) {
    fail("workload: ", e.what());
  }
  const json& impls = j.contains("impls") ? j.at("impls") : json();
  require(impls.is_object(), "missing field impls (an object of implementations)");
  for (const auto& item : impls.items()) {
    m.impls[item.key()] = impl_from_json(item.value(), "impls." + item.key() + ".");
  }
  m.unavailable = get<std::map<std::string, std::string>>(j, "", "unavailable");
  return m;
}

Measurement read_measurement(const std::string& path) {
  const json j = json_file::read(path, "gate measurement");
  try {
    return measurement_from_json(j);
  } catch (const Error& e) {
    fail("'", path, "' is not a usable gate measurement: ", e.what());
  }
}

void write_measurement(const Measurement& m, const std::string& path) {
  write_file_atomically(path, to_json(m).dump(2) + "\n");
}

}  // namespace kvbench::gate
