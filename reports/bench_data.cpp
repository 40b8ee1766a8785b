#include "reports/bench_data.h"

#include <algorithm>
#include <cmath>

#include "harness/error.h"
#include "harness/json_file.h"

namespace kvbench::reports {

using nlohmann::json;
using bench::BenchKind;

namespace {

using json_file::Field;

double unit_seconds(const Field& b) {
  Field unit = b;
  if (!b.get("time_unit", &unit)) return 1e-9;  // Google Benchmark's default
  const std::string u = unit.string();
  if (u == "ns") return 1e-9;
  if (u == "us") return 1e-6;
  if (u == "ms") return 1e-3;
  if (u == "s") return 1.0;
  unit.fail_expected("a time unit: ns, us, ms or s");
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

// ---- the kvbench context: the types of the fields the report reads --------------------------
//
// Checked once here, so that the renderers can read them without a type error far from
// the file (which would name neither the file nor the field).

enum class Kind { string, number, integer, boolean, object, array };

void expect_kind(const Field& f, Kind kind) {
  switch (kind) {
    case Kind::string:
      f.string();
      break;
    case Kind::number:
      f.number();
      break;
    case Kind::integer:
      f.integer();
      break;
    case Kind::boolean:
      f.boolean();
      break;
    case Kind::object:
      if (!f.is_object()) f.fail_expected("an object");
      break;
    case Kind::array:
      f.elements();
      break;
  }
}

// Each (key, kind) of `fields` that `parent` holds has that kind. RETURNS: parent.
const Field& expect_fields(const Field& parent, std::initializer_list<std::pair<const char*, Kind>> fields) {
  if (!parent.is_object()) parent.fail_expected("an object");
  for (const auto& [key, kind] : fields) {
    if (parent.has(key)) expect_kind(parent.at(key), kind);
  }
  return parent;
}

void check_each(const Field& parent, const char* key,
                std::initializer_list<std::pair<const char*, Kind>> fields) {
  if (!parent.has(key)) return;
  for (const Field& e : parent.at(key).elements()) expect_fields(e, fields);
}

void check_bandwidth(const Field& b) {
  const auto rates = {std::pair<const char*, Kind>{"read_bytes_per_second", Kind::number},
                      {"copy_bytes_per_second", Kind::number}, {"buffer_bytes", Kind::number},
                      {"passes", Kind::integer}};
  expect_fields(b, rates);
  if (b.number_or("read_bytes_per_second", 0.0) > 0) {
    // The report describes the measurement before and after the sweeps.
    expect_fields(b.at("before"), rates);
    expect_fields(b.at("after"), rates);
  }
  check_each(b, "by_size",
             {{"buffer_bytes", Kind::number}, {"read_bytes_per_second", Kind::number},
              {"copy_bytes_per_second", Kind::number}, {"matches", Kind::string}});
  check_each(b, "read_reference",
             {{"threads", Kind::integer}, {"buffer_bytes", Kind::number},
              {"best_bytes_per_second", Kind::number}, {"median_bytes_per_second", Kind::number},
              {"best_variant", Kind::string}});
}

void check_context(const Field& k) {
  expect_fields(k, {{"shape", Kind::string}, {"baseline", Kind::string},
                    {"config", Kind::object}, {"bandwidth", Kind::object},
                    {"machine", Kind::object}, {"implementations", Kind::array},
                    {"device_bandwidth", Kind::object}, {"wall_seconds", Kind::number},
                    {"ran", Kind::integer}, {"check", Kind::string}});
  if (k.has("bandwidth")) check_bandwidth(k.at("bandwidth"));
  if (k.has("machine")) {
    expect_fields(k.at("machine"), {{"cpu_model", Kind::string}, {"logical_cpus", Kind::integer},
                                    {"llc_bytes", Kind::number}, {"llc_detected", Kind::boolean}});
  }
  check_each(k, "implementations", {{"name", Kind::string}, {"device", Kind::string}});
  if (k.has("device_bandwidth")) {
    for (const auto& [device, b] : k.at("device_bandwidth").members()) {
      expect_fields(b, {{"name", Kind::string}, {"read_bytes_per_second", Kind::number},
                        {"copy_bytes_per_second", Kind::number}, {"buffer_bytes", Kind::number}});
    }
  }
  const std::initializer_list<std::pair<const char*, Kind>> stop = {
      {"series", Kind::string}, {"stopped_before", Kind::integer},
      {"last_measured", Kind::integer}, {"reason", Kind::string}};
  check_each(k, "stops", stop);
  if (k.has("naive_stopped_at") && !k.at("naive_stopped_at").json().is_null()) {
    expect_fields(k.at("naive_stopped_at"), stop);
  }
  if (k.has("skipped_implementations")) {
    for (const Field& s : k.at("skipped_implementations").elements()) s.string();
  }
  check_each(k, "checks", {{"implementation", Kind::string}, {"threads", Kind::integer},
                           {"summary", Kind::string}, {"verdict", Kind::string}});
}

void read_config(const Field& c, ModelConfig& config) {
  config.layers = c.at("layers").int32();
  config.d_model = c.at("d_model").int32();
  config.heads = c.at("heads").int32();
  config.kv_heads = c.at("kv_heads").int32();
  config.head_dim = c.at("head_dim").int32();
  config.capacity = c.at("capacity").int32();
  const Field dtype = c.at("dtype");
  try {
    config.dtype = parse_dtype(dtype.string());
  } catch (const Error& e) {
    fail(dtype.where(), ": ", e.what());
  }
  config.seed = c.at("seed").unsigned_integer();
}

void read_context(BenchData& d, const std::string& source) {
  const Field context(d.context, source, "context");
  Field text = context;
  if (!context.is_object() || !context.get("kvbench", &text) || !text.json().is_string()) return;
  // context.kvbench is JSON inside a string (Google Benchmark's context holds strings).
  d.kvbench = json_file::parse(text.string(), text.where());
  const Field k(d.kvbench, source, "context.kvbench");
  check_context(k);
  d.shape = k.string_or("shape", "");
  d.baseline = k.string_or("baseline", "");
  if (k.has("config")) {
    read_config(k.at("config"), d.config);
    d.has_config = true;
  }
  if (k.has("bandwidth")) {
    const Field b = k.at("bandwidth");
    d.read_bandwidth = b.number_or("read_bytes_per_second", 0.0);
    d.copy_bandwidth = b.number_or("copy_bytes_per_second", 0.0);
    if (b.has("before")) d.bandwidth_buffer_bytes = b.at("before").number_or("buffer_bytes", 0.0);
    if (b.has("by_size")) {
      for (const Field& s : b.at("by_size").elements()) {
        d.bandwidth_by_size.push_back({s.number_or("buffer_bytes", 0.0),
                                       s.number_or("read_bytes_per_second", 0.0),
                                       s.number_or("copy_bytes_per_second", 0.0),
                                       s.string_or("matches", "")});
      }
    }
    if (b.has("read_reference")) {
      for (const Field& r : b.at("read_reference").elements()) {
        BenchData::ReadReference ref;
        ref.threads = r.at("threads").int32();
        ref.buffer_bytes = r.at("buffer_bytes").number();
        ref.best = r.at("best_bytes_per_second").number();
        ref.median = r.at("median_bytes_per_second").number();
        ref.variant = r.at("best_variant").string();
        ref.allocation = r.string_or("allocation", "");
        if (ref.best > 0) d.read_reference.push_back(ref);
      }
    }
  }
  if (k.has("machine")) d.llc_bytes = k.at("machine").number_or("llc_bytes", 0.0);
  if (k.has("implementations")) {
    for (const Field& impl : k.at("implementations").elements()) {
      if (impl.has("name") && impl.has("device")) {
        d.impl_device[impl.at("name").string()] = impl.at("device").string();
      }
    }
  }
  // {"cuda": {"name", "read_bytes_per_second", "copy_bytes_per_second", "buffer_bytes", ...}};
  // a device whose measurement failed has rates of 0 and an "error": it is left out.
  if (k.has("device_bandwidth")) {
    for (const auto& [device, b] : k.at("device_bandwidth").members()) {
      BenchData::DeviceBandwidth db;
      db.device = device;
      db.name = b.string_or("name", "");
      db.read = b.number_or("read_bytes_per_second", 0.0);
      db.copy = b.number_or("copy_bytes_per_second", 0.0);
      db.buffer_bytes = b.number_or("buffer_bytes", 0.0);
      if (db.read > 0) d.device_bandwidth.push_back(db);
    }
  }
}

// ---- the benchmarks --------------------------------------------------------------------------

// The runs of one benchmark: its repetitions, or Google Benchmark's median of them.
struct Group {
  std::vector<Field> iterations;
  std::vector<Field> medians;
};

// RETURNS: b[field] in seconds; a real time must be > 0 (a run that took no time measured
// nothing).
double seconds_of(const Field& b, const char* field) {
  const Field f = b.at(field);
  const double value = f.number() * unit_seconds(b);
  if (std::string(field) == "real_time" && !(value > 0)) f.fail_expected("a time > 0");
  if (!(value >= 0)) f.fail_expected("a time >= 0");
  return value;
}

Measurement measure_group(const std::string& key, const Group& g) {
  Measurement m;
  m.id = *bench::parse_benchmark_name(key);
  m.name = key;
  m.repetitions = static_cast<int>(g.iterations.size());
  if (!g.medians.empty()) {
    const Field& b = g.medians.front();
    m.seconds = seconds_of(b, "real_time");
    m.cpu_seconds = seconds_of(b, "cpu_time");
    m.counters = counters_of(b.json());
    return m;
  }
  std::vector<double> real, cpu;
  for (const Field& b : g.iterations) {
    real.push_back(seconds_of(b, "real_time"));
    cpu.push_back(seconds_of(b, "cpu_time"));
  }
  m.seconds = median(real);
  m.cpu_seconds = median(cpu);
  // Counters that are rates follow the time; op counts are the same in every repetition.
  const std::size_t fastest = std::min_element(real.begin(), real.end()) - real.begin();
  m.counters = counters_of(g.iterations[fastest].json());
  if (g.iterations.size() > 1) {
    for (auto& kv : m.counters) {
      std::vector<double> values;
      for (const Field& b : g.iterations) {
        const json& j = b.json();
        values.push_back(j.contains(kv.first) && j[kv.first].is_number()
                             ? j[kv.first].get<double>() : kv.second);
      }
      kv.second = median(values);
    }
  }
  return m;
}

}  // namespace

double Measurement::counter(const std::string& key) const {
  const auto it = counters.find(key);
  require(it != counters.end(), "benchmark '", name, "' has no counter '", key, "'");
  return it->second;
}

BenchData parse_bench(const json& doc, const std::string& path) {
  const std::string source = "bench output '" + path + "'";
  require(doc.is_object() && doc.contains("benchmarks"), source,
          ": not a Google Benchmark JSON output (no \"benchmarks\" array)");
  const Field root(doc, source);
  BenchData d;
  d.path = path;
  d.context = doc.contains("context") ? doc["context"] : json::object();
  read_context(d, source);

  std::map<std::string, Group> groups;
  std::vector<std::string> order;
  for (const Field& b : root.at("benchmarks").elements()) {
    if (!b.is_object()) b.fail_expected("an object (one benchmark's run)");
    const std::string name = b.string_or("name", "");
    const auto id = bench::parse_benchmark_name(name);
    if (!id || b.boolean_or("error_occurred", false)) continue;
    // A setup time (runner.cpp: generation_body) is a duration: >= 0 and finite.
    if (b.has("setup_seconds")) {
      const Field setup = b.at("setup_seconds");
      if (!(setup.number() >= 0) || !std::isfinite(setup.number())) {
        setup.fail_expected("a setup time >= 0 (seconds)");
      }
    }
    const std::string key = strip_suffixes(name);
    if (!groups.count(key)) order.push_back(key);
    Group& g = groups[key];
    if (b.string_or("run_type", "iteration") == "aggregate") {
      if (b.string_or("aggregate_name", "") == "median") g.medians.push_back(b);
    } else {
      g.iterations.push_back(b);
    }
  }
  for (const std::string& key : order) {
    const Group& g = groups.at(key);
    if (g.iterations.empty() && g.medians.empty()) continue;
    Measurement m = measure_group(key, g);
    const auto setup = m.counters.find("setup_seconds");
    if (setup != m.counters.end()) m.setup_seconds = setup->second;
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
  return parse_bench(json_file::read(path, "bench output"), path);
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

const BenchData::ReadReference* BenchData::reference_for(int threads) const {
  for (const auto& r : read_reference) {
    if (r.threads == threads) return &r;
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
