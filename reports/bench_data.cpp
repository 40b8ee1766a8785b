#include "reports/bench_data.h"

#include <algorithm>
#include <fstream>

#include "harness/error.h"

namespace kvbench::reports {

using nlohmann::json;
using bench::BenchKind;

namespace {

double unit_seconds(const std::string& unit, const std::string& path, const std::string& name) {
  if (unit == "ns") return 1e-9;
  if (unit == "us") return 1e-6;
  if (unit == "ms") return 1e-3;
  if (unit == "s") return 1.0;
  fail(path, ": benchmark '", name, "' has unknown time_unit '", unit, "'");
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

std::string strip_suffixes(const std::string& name) {
  const bench::BenchmarkId id = *bench::parse_benchmark_name(name);
  return bench::benchmark_name(id);
}

// Counters are every numeric field Google Benchmark writes that is not one of its own.
std::map<std::string, double> counters_of(const json& b) {
  static const std::vector<std::string> own = {
      "family_index", "per_family_instance_index", "repetitions", "repetition_index",
      "threads",      "iterations",                "real_time",   "cpu_time"};
  std::map<std::string, double> out;
  for (auto it = b.begin(); it != b.end(); ++it) {
    if (!it.value().is_number()) continue;
    if (std::find(own.begin(), own.end(), it.key()) != own.end()) continue;
    out[it.key()] = it.value().get<double>();
  }
  return out;
}

void read_context(BenchData& d) {
  if (!d.context.contains("kvbench") || !d.context["kvbench"].is_string()) return;
  try {
    d.kvbench = json::parse(d.context["kvbench"].get<std::string>());
  } catch (const json::exception& e) {
    fail(d.path, ": context.kvbench is not valid JSON: ", e.what());
  }
  const json& k = d.kvbench;
  d.shape = k.value("shape", "");
  d.baseline = k.value("baseline", "");
  if (k.contains("config")) {
    const json& c = k["config"];
    d.config.layers = c.at("layers");
    d.config.d_model = c.at("d_model");
    d.config.heads = c.at("heads");
    d.config.kv_heads = c.at("kv_heads");
    d.config.head_dim = c.at("head_dim");
    d.config.capacity = c.at("capacity");
    d.config.dtype = parse_dtype(c.at("dtype").get<std::string>());
    d.config.seed = c.at("seed");
    d.has_config = true;
  }
  if (k.contains("bandwidth")) {
    d.read_bandwidth = k["bandwidth"].value("read_bytes_per_second", 0.0);
    d.copy_bandwidth = k["bandwidth"].value("copy_bytes_per_second", 0.0);
    if (k["bandwidth"].contains("before")) {
      d.bandwidth_buffer_bytes = k["bandwidth"]["before"].value("buffer_bytes", 0.0);
    }
    if (k["bandwidth"].contains("by_size")) {
      for (const auto& b : k["bandwidth"]["by_size"]) {
        d.bandwidth_by_size.push_back({b.value("buffer_bytes", 0.0),
                                       b.value("read_bytes_per_second", 0.0),
                                       b.value("copy_bytes_per_second", 0.0),
                                       b.value("matches", "")});
      }
    }
  }
  if (k.contains("machine")) d.llc_bytes = k["machine"].value("llc_bytes", 0.0);
  if (k.contains("implementations") && k["implementations"].is_array()) {
    for (const auto& impl : k["implementations"]) {
      if (impl.contains("name") && impl.contains("device")) {
        d.impl_device[impl["name"].get<std::string>()] = impl["device"].get<std::string>();
      }
    }
  }
  // {"cuda": {"name", "read_bytes_per_second", "copy_bytes_per_second", "buffer_bytes", ...}};
  // a device whose measurement failed has rates of 0 and an "error": it is left out.
  if (k.contains("device_bandwidth") && k["device_bandwidth"].is_object()) {
    for (const auto& [device, b] : k["device_bandwidth"].items()) {
      BenchData::DeviceBandwidth db;
      db.device = device;
      db.name = b.value("name", "");
      db.read = b.value("read_bytes_per_second", 0.0);
      db.copy = b.value("copy_bytes_per_second", 0.0);
      db.buffer_bytes = b.value("buffer_bytes", 0.0);
      if (db.read > 0) d.device_bandwidth.push_back(db);
    }
  }
}

}  // namespace

double Measurement::counter(const std::string& key) const {
  const auto it = counters.find(key);
  require(it != counters.end(), "benchmark '", name, "' has no counter '", key, "'");
  return it->second;
}

BenchData parse_bench(const json& doc, const std::string& path) {
  require(doc.is_object() && doc.contains("benchmarks") && doc["benchmarks"].is_array(), path,
          ": not a Google Benchmark JSON output (no \"benchmarks\" array)");
  BenchData d;
  d.path = path;
  d.context = doc.value("context", json::object());
  read_context(d);

  struct Group {
    std::vector<json> iterations;
    const json* median = nullptr;
  };
  std::map<std::string, Group> groups;
  std::vector<std::string> order;
  for (const json& b : doc["benchmarks"]) {
    const std::string name = b.value("name", "");
    const auto id = bench::parse_benchmark_name(name);
    if (!id || b.value("error_occurred", false)) continue;
    const std::string key = strip_suffixes(name);
    if (!groups.count(key)) order.push_back(key);
    Group& g = groups[key];
    if (b.value("run_type", "iteration") == "aggregate") {
      if (b.value("aggregate_name", "") == "median") g.median = &b;
    } else {
      g.iterations.push_back(b);
    }
  }
  for (const std::string& key : order) {
    const Group& g = groups[key];
    if (g.iterations.empty() && !g.median) continue;
    Measurement m;
    m.id = *bench::parse_benchmark_name(key);
    m.name = key;
    m.repetitions = static_cast<int>(g.iterations.size());
    std::vector<double> real, cpu;
    auto seconds = [&](const json& b, const char* field) {
      require(b.contains(field) && b[field].is_number(), path, ": benchmark '", key,
              "' has no number '", field, "'");
      return b[field].get<double>() * unit_seconds(b.value("time_unit", "ns"), path, key);
    };
    if (g.median) {
      m.seconds = seconds(*g.median, "real_time");
      m.cpu_seconds = seconds(*g.median, "cpu_time");
      m.counters = counters_of(*g.median);
    } else {
      for (const json& b : g.iterations) {
        real.push_back(seconds(b, "real_time"));
        cpu.push_back(seconds(b, "cpu_time"));
      }
      m.seconds = median(real);
      m.cpu_seconds = median(cpu);
      // Counters that are rates follow the time; op counts are the same in every repetition.
      m.counters = counters_of(g.iterations[std::min_element(real.begin(), real.end()) -
                                            real.begin()]);
      if (g.iterations.size() > 1) {
        for (auto& kv : m.counters) {
          std::vector<double> values;
          for (const json& b : g.iterations) values.push_back(b.value(kv.first, kv.second));
          kv.second = median(values);
        }
      }
    }
    require(m.seconds > 0, path, ": benchmark '", key, "' has time ", m.seconds, " s");
    d.measurements.push_back(m);
  }
  std::sort(d.measurements.begin(), d.measurements.end(),
            [](const Measurement& a, const Measurement& b) {
              return std::make_tuple(a.id.kind, a.id.impl, a.id.threads, a.id.size) <
                     std::make_tuple(b.id.kind, b.id.impl, b.id.threads, b.id.size);
            });
  return d;
}

BenchData load_bench(const std::string& path) {
  std::ifstream in(path);
  require(in.good(), "cannot read bench output '", path, "'");
  json doc;
  try {
    doc = json::parse(in);
  } catch (const json::exception& e) {
    fail("'", path, "' is not valid JSON: ", e.what());
  }
  return parse_bench(doc, path);
}

std::string BenchData::device_of(const std::string& impl) const {
  const auto it = impl_device.find(impl);
  return it == impl_device.end() ? "cpu" : it->second;
}

const BenchData::DeviceBandwidth* BenchData::device_bandwidth_of(const std::string& device) const {
  for (const auto& b : device_bandwidth) {
    if (b.device == device) return &b;
  }
  return nullptr;
}

const BenchData::SizedBandwidth* BenchData::bandwidth_near(double bytes) const {
  for (const auto& b : bandwidth_by_size) {
    if (b.bytes > 0 && b.read > 0 && b.bytes / bytes < 1.25 && bytes / b.bytes < 1.25) return &b;
  }
  return nullptr;
}

std::vector<const Measurement*> BenchData::series(BenchKind kind, const std::string& impl,
                                                  int threads) const {
  std::vector<const Measurement*> out;
  for (const auto& m : measurements) {
    if (m.id.kind != kind || m.id.impl != impl) continue;
    if (kind == BenchKind::decode_step && m.id.threads != threads) continue;
    out.push_back(&m);
  }
  return out;
}

std::vector<std::string> BenchData::impls(BenchKind kind) const {
  std::vector<std::string> known;
  if (kvbench.contains("implementations")) {
    for (const auto& i : kvbench["implementations"]) known.push_back(i.value("name", ""));
  }
  std::vector<std::string> found;
  for (const auto& m : measurements) {
    if (m.id.kind == kind &&
        std::find(found.begin(), found.end(), m.id.impl) == found.end()) {
      found.push_back(m.id.impl);
    }
  }
  auto rank = [&](const std::string& name) {
    const auto it = std::find(known.begin(), known.end(), name);
    return it == known.end() ? known.size() : static_cast<std::size_t>(it - known.begin());
  };
  std::stable_sort(found.begin(), found.end(), [&](const std::string& a, const std::string& b) {
    return std::make_pair(rank(a), a) < std::make_pair(rank(b), b);
  });
  return found;
}

std::vector<int> BenchData::decode_threads(const std::string& impl) const {
  std::vector<int> out;
  for (const auto& m : measurements) {
    if (m.id.kind == BenchKind::decode_step && m.id.impl == impl &&
        std::find(out.begin(), out.end(), m.id.threads) == out.end()) {
      out.push_back(m.id.threads);
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

const Measurement* BenchData::find(BenchKind kind, const std::string& impl, int threads,
                                   int size) const {
  for (const auto& m : measurements) {
    if (m.id.kind == kind && m.id.impl == impl && m.id.size == size &&
        (kind == BenchKind::generate || m.id.threads == threads)) {
      return &m;
    }
  }
  return nullptr;
}

}  // namespace kvbench::reports
