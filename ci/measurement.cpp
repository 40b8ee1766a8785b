#include "ci/measurement.h"

#include <gnu/libc-version.h>

#include <algorithm>
#include <cstdio>
#include <initializer_list>
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

// The parser takes only what the gate writes: counts are JSON integers >= 0 (nlohmann's
// get<uint64_t> would turn -5 into 18446744073709551611 and 1.5 into 1), seconds are numbers,
// and every key of an implementation is one this version knows. Whether a well-typed value
// is usable (a count of 0, a duration <= 0) is the checks' business (checks_rules.h): those
// are failures named in the table, not unusable files.

// RETURNS: the JSON type of `v` as a message says it, with the value when short.
std::string describe(const json& v) {
  if (v.is_null()) return "null (how a NaN or an infinity is written in JSON)";
  if (v.is_string()) return "a string";
  if (v.is_boolean()) return std::string("a boolean (") + (v.get<bool>() ? "true" : "false") + ")";
  if (v.is_array()) return "an array";
  if (v.is_object()) return "an object";
  return v.dump();
}

const json& field(const json& j, const std::string& where, const char* key) {
  require(j.is_object() && j.contains(key), "missing field ", where, key);
  return j.at(key);
}

std::string get_string(const json& j, const std::string& where, const char* key) {
  const json& v = field(j, where, key);
  require(v.is_string(), "field ", where, key, " is ", describe(v), ", expected a string");
  return v.get<std::string>();
}

std::uint64_t count_value(const json& v, const std::string& path) {
  require(v.is_number_unsigned(), "field ", path, " is ", describe(v),
          ", expected a count (an integer >= 0)");
  return v.get<std::uint64_t>();
}

std::uint64_t get_count(const json& j, const std::string& where, const char* key) {
  return count_value(field(j, where, key), where + key);
}

// Throws unless every key of the object `j` is one of `known` (a field this version does not
// read would otherwise be ignored on one side of a comparison).
void require_known_keys(const json& j, const std::string& where, std::initializer_list<const char*> known) {
  require(j.is_object(), "field ", where.empty() ? "(top level)" : where.substr(0, where.size() - 1), " is ",
          describe(j), ", expected an object");
  for (const auto& item : j.items()) {
    const bool ok = std::any_of(known.begin(), known.end(), [&](const char* k) { return item.key() == k; });
    require(ok, "unknown field ", where, item.key(), " (version ", kSchemaVersion, " has no such field)");
  }
}

// RETURNS: the sweep position a key names; "64" only (no sign, no leading zero, no suffix).
int position_key(const std::string& key, const std::string& where) {
  const bool digits = !key.empty() && key.size() <= 9 && key[0] != '0' &&
                      std::all_of(key.begin(), key.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
  require(digits, "field ", where, " has a key '", key, "' that is not a sweep position (an integer >= 1)");
  return std::stoi(key);
}

InstructionCounts instructions_from_json(const json& ins, const std::string& where) {
  require_known_keys(ins, where, {"decode", "sweep"});
  InstructionCounts counts;
  counts.decode = get_count(ins, where, "decode");
  const json& sweep = field(ins, where, "sweep");
  require(sweep.is_object(), "field ", where, "sweep is ", describe(sweep), ", expected an object");
  for (const auto& item : sweep.items()) {
    const int t = position_key(item.key(), where + "sweep");
    counts.sweep[t] = count_value(item.value(), where + "sweep." + item.key());
  }
  return counts;
}

std::vector<double> samples_from_json(const json& j, const std::string& where) {
  const json& v = field(j, where, "seconds_per_step");
  require(v.is_array(), "field ", where, "seconds_per_step is ", describe(v), ", expected an array of seconds");
  std::vector<double> out;
  for (std::size_t i = 0; i < v.size(); ++i) {
    require(v[i].is_number(), "field ", where, "seconds_per_step[", i, "] is ", describe(v[i]),
            ", expected a number of seconds");
    out.push_back(v[i].get<double>());
  }
  return out;
}

ImplMeasurement impl_from_json(const json& j, const std::string& where) {
  require_known_keys(j, where, {"device", "counters", "instructions", "instructions_skipped", "seconds_per_step"});
  ImplMeasurement im;
  im.device = get_string(j, where, "device");
  const std::string cw = where + "counters.";
  const json& c = field(j, where, "counters");
  require_known_keys(c, cw, {"kv_projection_rows", "qk_dot_products", "kv_bytes_read", "bytes_held", "phases"});
  im.counters.kv_projection_rows = get_count(c, cw, "kv_projection_rows");
  im.counters.qk_dot_products = get_count(c, cw, "qk_dot_products");
  im.counters.kv_bytes_read = get_count(c, cw, "kv_bytes_read");
  im.counters.bytes_held = get_count(c, cw, "bytes_held");
  im.counters.phases = get_string(c, cw, "phases");
  require(!(j.contains("instructions") && j.contains("instructions_skipped")), "fields ", where,
          "instructions and ", where, "instructions_skipped are both present (one or the other)");
  if (j.contains("instructions")) {
    im.instructions = instructions_from_json(j.at("instructions"), where + "instructions.");
  } else {
    im.instructions_skipped = get_string(j, where, "instructions_skipped");
  }
  im.seconds_per_step = samples_from_json(j, where);
  return im;
}

Toolchain toolchain_from_json(const json& j) {
  const json& t = field(j, "", "toolchain");
  Toolchain out;
  out.compiler = get_string(t, "toolchain.", "compiler");
  out.build_type = get_string(t, "toolchain.", "build_type");
  out.valgrind = get_string(t, "toolchain.", "valgrind");
  out.glibc = get_string(t, "toolchain.", "glibc");
  out.cpu = get_string(t, "toolchain.", "cpu");
  out.cpu_features = get_string(t, "toolchain.", "cpu_features");
  out.libraries = get_string(t, "toolchain.", "libraries");
  return out;
}

// workload_from_json validates too (steps >= 1: the checks divide region totals by them).
GateWorkload gate_workload_from_json(const json& j) {
  try {
    return workload_from_json(field(j, "", "workload"));
  } catch (const Error& e) {
    fail("workload: ", e.what());
  }
}

std::map<std::string, std::string> unavailable_from_json(const json& j) {
  const json& u = field(j, "", "unavailable");
  require(u.is_object(), "field unavailable is ", describe(u), ", expected an object of reasons");
  std::map<std::string, std::string> out;
  for (const auto& item : u.items()) out[item.key()] = get_string(u, "unavailable.", item.key().c_str());
  return out;
}

}  // namespace

Measurement measurement_from_json(const json& j) {
  require(j.is_object(), "not a kvbench gate measurement (the top level is ", describe(j), ", not an object)");
  const std::string schema = j.contains("schema") && j.at("schema").is_string()
                                 ? j.at("schema").get<std::string>() : std::string("(none)");
  require(schema == kSchema, "schema is '", schema, "', expected '", kSchema, "'");
  const json& version = field(j, "", "version");
  require(version.is_number_integer(), "field version is ", describe(version), ", expected an integer");
  require(version.get<long long>() == kSchemaVersion, "schema version is ", version.dump(),
          ", this kvbench reads version ", kSchemaVersion, " (write a new baseline with --update)");
  Measurement m;
  m.toolchain = toolchain_from_json(j);
  m.workload = gate_workload_from_json(j);
  const json& impls = field(j, "", "impls");
  require(impls.is_object(), "field impls is ", describe(impls), ", expected an object of implementations");
  // Nothing to compare is not a pass: the gate needs at least one measured implementation.
  require(!impls.empty(), "field impls is empty (a measurement holds at least one implementation)");
  for (const auto& item : impls.items()) {
    m.impls[item.key()] = impl_from_json(item.value(), "impls." + item.key() + ".");
  }
  m.unavailable = unavailable_from_json(j);
  for (const auto& [name, why] : m.unavailable) {
    require(m.impls.count(name) == 0, "'", name, "' is both in impls and in unavailable");
  }
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
