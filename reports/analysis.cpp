#include "reports/analysis.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>

#include "reports/analyzer.h"
#include "reports/format.h"
#include "reports/op_model.h"

namespace kvbench::reports {

using bench::BenchKind;
using nlohmann::json;

namespace detail {

std::string range_text(const std::vector<double>& sizes) {
  return sig(sizes.front()) + ".." + sig(sizes.back());
}

namespace {

SeriesAnalysis analyze_series(const BenchData& data, BenchKind kind, const std::string& impl,
                              int threads) {
  SeriesAnalysis s;
  s.kind = kind;
  s.impl = impl;
  s.threads = threads;
  const auto ms = data.series(kind, impl, threads);
  bench::BenchmarkId id{kind, impl, threads, 0};
  s.series = bench::series_name(id);
  std::vector<double> rows, dots;
  for (const Measurement* m : ms) {
    s.sizes.push_back(m->id.size);
    s.seconds.push_back(m->seconds);
    s.setup_seconds.push_back(m->setup_seconds ? *m->setup_seconds : kNaN);
    rows.push_back(m->has("projection_rows") ? m->counter("projection_rows") : 0);
    dots.push_back(m->has("qk_dot_products") ? m->counter("qk_dot_products") : 0);
    const double tokens = kind == BenchKind::generate ? m->id.size : 1;
    s.flops_per_second.push_back(
        data.has_config ? analytic_flops(data.config, {rows.back(), dots.back(), tokens}) /
                              m->seconds
                        : 0);
  }
  if (s.sizes.size() >= 2 && s.sizes.front() > 0) {
    s.time_fit = fit_power_law(s.sizes, s.seconds);
    s.local = local_exponents(s.sizes, s.seconds);
    if (kind == BenchKind::generate) {
      auto positive = [](const std::vector<double>& v) {
        return std::all_of(v.begin(), v.end(), [](double x) { return x > 0; });
      };
      if (positive(rows)) s.projection_fit = fit_power_law(s.sizes, rows);
      if (positive(dots)) s.dots_fit = fit_power_law(s.sizes, dots);
      s.quadratic_from = first_crossing(s.local, 1.5);
    } else {
      s.line = fit_line_relative(s.sizes, s.seconds);
    }
  }
  return s;
}

OpCounts counts_of(const Measurement& m) {
  OpCounts c;
  c.projection_rows = m.counter("projection_rows");
  c.dot_products = m.counter("qk_dot_products");
  c.tokens = m.id.kind == BenchKind::generate ? m.id.size : 1;
  return c;
}

Speedup speedup_of(const BenchData& data, const std::string& baseline, const std::string& cached) {
  Speedup sp;
  sp.baseline = baseline;
  sp.cached = cached;
  for (const Measurement* n : data.series(BenchKind::generate, baseline)) {
    const Measurement* c = data.find(BenchKind::generate, cached, 1, n->id.size);
    if (!c || !n->has("projection_rows") || !c->has("projection_rows")) continue;
    SpeedupPoint p;
    p.tokens = n->id.size;
    p.measured = n->seconds / c->seconds;
    p.analytic = analytic_flops(data.config, counts_of(*n)) /
                 analytic_flops(data.config, counts_of(*c));
    p.relative_error = p.measured / p.analytic - 1;
    sp.worst_relative_error = std::max(sp.worst_relative_error, std::fabs(p.relative_error));
    sp.points.push_back(p);
  }
  return sp;
}

}  // namespace

Analysis Analyzer::run() {
  a_.source = d_.path;
  a_.shape = d_.shape;
  a_.config = d_.config;
  a_.has_config = d_.has_config;
  a_.baseline = d_.baseline;
  a_.read_bandwidth = d_.read_bandwidth;
  a_.copy_bandwidth = d_.copy_bandwidth;
  a_.llc_bytes = d_.llc_bytes;
  a_.device_bandwidth = d_.device_bandwidth;
  if (a_.baseline.empty()) {
    for (const auto& impl : d_.impls(BenchKind::generate)) {
      if (impl == "naive") a_.baseline = impl;
    }
  }
  if (d_.has_config) {
    a_.predicted_generation_crossover = crossover_generation_tokens(d_.config);
    a_.predicted_decode_crossover = crossover_decode_position(d_.config);
  }
  for (const auto& impl : d_.impls(BenchKind::generate)) {
    a_.generation.push_back(analyze_series(d_, BenchKind::generate, impl, 1));
  }
  for (const auto& impl : d_.impls(BenchKind::decode_step)) {
    for (int n : d_.decode_threads(impl)) {
      a_.decode.push_back(analyze_series(d_, BenchKind::decode_step, impl, n));
    }
  }
  pick_cached();
  if (!a_.baseline.empty() && d_.has_config) {
    for (const auto& s : a_.generation) {
      if (s.impl == a_.baseline) continue;
      Speedup sp = speedup_of(d_, a_.baseline, s.impl);
      if (!sp.points.empty()) a_.speedups.push_back(sp);
    }
  }
  collect_bandwidth();
  collect_floors();
  collect_serving();
  targets();
  verdicts();
  notes();
  return a_;
}

// The cache the speedup and bandwidth targets are about: cpu_cached when it ran, else the
// first implementation other than the baseline.
void Analyzer::pick_cached() {
  for (const auto& s : a_.generation) {
    if (s.impl == "cpu_cached") a_.cached = s.impl;
  }
  for (const auto& s : a_.decode) {
    if (s.impl == "cpu_cached") a_.cached = s.impl;
  }
  if (!a_.cached.empty()) return;
  for (const auto& s : a_.generation) {
    if (s.impl != a_.baseline) {
      a_.cached = s.impl;
      return;
    }
  }
}

void Analyzer::collect_bandwidth() {
  for (const auto& s : a_.decode) {
    for (const Measurement* m : d_.series(BenchKind::decode_step, s.impl, s.threads)) {
      if (!m->has("kv_bytes_read")) continue;
      BandwidthPoint p;
      p.impl = s.impl;
      p.device = d_.device_of(s.impl);
      p.threads = s.threads;
      p.position = m->id.size;
      p.kv_bytes = m->counter("kv_bytes_read");
      p.bytes_per_second = p.kv_bytes / m->seconds;
      // A device implementation is set against its device's own bandwidth (0 when that was
      // not measured), never against the host's.
      // A host step is set against the read-only reference with its own thread count
      // (older outputs: the single-thread read bandwidth).
      double read = a_.read_bandwidth, copy = a_.copy_bandwidth;
      if (p.device == "cpu") {
        const double reference = host_reference(p.threads).first;
        if (reference > 0) read = reference;
      } else {
        const auto* device = d_.device_bandwidth_of(p.device);
        read = device ? device->read : 0;
        copy = device ? device->copy : 0;
      }
      p.of_read = read > 0 ? p.bytes_per_second / read : 0;
      p.of_copy = copy > 0 ? p.bytes_per_second / copy : 0;
      a_.bandwidth.push_back(p);
    }
  }
}

void Analyzer::collect_floors() {
  if (!d_.has_config) return;
  const double weights = weight_bytes(d_.config);
  for (const auto& s : a_.decode) {
    const std::string device = d_.device_of(s.impl);
    double bandwidth = 0;
    std::string source;
    if (device == "cpu") {
      std::tie(bandwidth, source) = host_reference(s.threads);
    } else if (const auto* b = d_.device_bandwidth_of(device)) {
      bandwidth = b->read;
      source = device + " device read-only bandwidth (" + b->name + ")";
    }
    if (bandwidth <= 0) continue;
    for (const Measurement* m : d_.series(BenchKind::decode_step, s.impl, s.threads)) {
      FloorPoint f;
      f.impl = s.impl;
      f.device = device;
      f.threads = s.threads;
      f.position = m->id.size;
      f.weight_bytes = weights;
      f.kv_bytes = (f.position + 1) * static_cast<double>(d_.config.kv_bytes_per_token());
      f.bytes = f.weight_bytes + f.kv_bytes;
      f.bandwidth = bandwidth;
      f.bandwidth_source = source;
      f.floor_seconds = f.bytes / bandwidth;
      f.measured_seconds = m->seconds;
      f.efficiency = f.floor_seconds / m->seconds;
      f.dram_bound = device == "cpu" && a_.llc_bytes > 0 &&
                     f.bytes >= kDramBoundLlcMultiple * a_.llc_bytes;
      a_.floors.push_back(f);
    }
  }
}

// The read-only limit for `threads` threads on the host: the reference measured with that
// many threads, else (older outputs, 1 thread) the context's read bandwidth.
std::pair<double, std::string> Analyzer::host_reference(int threads) const {
  if (const auto* r = d_.reference_for(threads)) {
    return {r->best, "read-only reference, " + std::to_string(threads) + " thread" +
                         (threads == 1 ? "" : "s") + ", " + bytes_text(r->buffer_bytes) +
                         " buffer, best of its kernel variants (" + r->variant + ")"};
  }
  if (threads == 1 && a_.read_bandwidth > 0) {
    return {a_.read_bandwidth, "single-thread read-only bandwidth (an older bench output: "
                               "no read_reference)"};
  }
  return {0.0, ""};
}

void Analyzer::notes() {
  if (d_.kvbench.contains("stops")) {
    for (const auto& s : d_.kvbench["stops"]) {
      a_.notes.push_back(s.value("series", "?") + " stopped before " +
                         std::to_string(s.value("stopped_before", 0)) + " (last measured " +
                         std::to_string(s.value("last_measured", 0)) + "): " +
                         s.value("reason", ""));
    }
  }
  if (d_.kvbench.contains("skipped_implementations")) {
    for (const auto& s : d_.kvbench["skipped_implementations"]) {
      a_.notes.push_back("skipped " + s.get<std::string>());
    }
  }
  if (a_.baseline.empty()) a_.notes.push_back("no no-cache baseline (naive) in this run");
  if (d_.kvbench.contains("checks")) {
    for (const auto& c : d_.kvbench["checks"]) {
      a_.checks.push_back(c.value("implementation", "?") + " (threads " +
                          std::to_string(c.value("threads", 1)) + "): " +
                          c.value("summary", c.value("verdict", "?")));
    }
    if (a_.checks.empty() && d_.kvbench.contains("check")) {
      a_.checks.push_back(d_.kvbench.value("check", ""));
    }
  }
}

}  // namespace detail

using detail::kNaN;

namespace {

json fit_json(const std::optional<PowerFit>& f) {
  if (!f) return nullptr;
  return {{"exponent", f->exponent}, {"intercept", f->intercept}, {"r2", f->r2},
          {"points", f->points}};
}

json series_json(const SeriesAnalysis& s) {
  json local = json::array();
  for (const auto& l : s.local) {
    local.push_back({{"from", l.x_from}, {"to", l.x_to}, {"exponent", l.exponent}});
  }
  json j = {{"series", s.series},
            {"sizes", s.sizes},
            {"seconds", s.seconds},
            {"seconds_are", s.kind == BenchKind::decode_step ? "one decode step"
                            : s.setup_recorded()
                                ? "the T decode steps (setup timed apart: setup_seconds)"
                                : "the whole generation, setup included (setup not recorded)"},
            {"exponent", s.time_fit ? json(s.time_fit->exponent) : json(nullptr)},
            {"r2", s.time_fit ? json(s.time_fit->r2) : json(nullptr)},
            {"fit", fit_json(s.time_fit)},
            {"growth", s.time_fit ? json(growth_law(s.time_fit->exponent)) : json(nullptr)},
            {"local_exponents", local},
            {"model_flops_per_second", s.flops_per_second}};
  if (s.kind == BenchKind::generate) {
    json setup = json::array(), share = json::array();
    for (std::size_t i = 0; i < s.sizes.size(); ++i) {
      setup.push_back(std::isfinite(s.setup_seconds[i]) ? json(s.setup_seconds[i]) : json(nullptr));
      const double f = s.setup_share(i);
      share.push_back(std::isfinite(f) ? json(f) : json(nullptr));
    }
    j["setup_recorded"] = s.setup_recorded();
    j["setup_seconds"] = setup;           // per iteration; null: not recorded
    j["setup_share_of_total"] = share;    // setup / (setup + decode steps)
    j["setup_dominates_at"] = json::array();
    for (std::size_t i = 0; i < s.sizes.size(); ++i) {
      if (std::isfinite(s.setup_seconds[i]) && s.setup_seconds[i] >= s.seconds[i]) {
        j["setup_dominates_at"].push_back(s.sizes[i]);
      }
    }
    j["projection_rows_fit"] = fit_json(s.projection_fit);
    j["dot_products_fit"] = fit_json(s.dots_fit);
    j["local_exponent_reaches_1_5_at"] =
        s.quadratic_from > 0 ? json(s.quadratic_from) : json(nullptr);
  } else if (s.line) {
    j["line"] = {{"intercept_seconds", s.line->intercept},
                 {"seconds_per_token", s.line->slope},
                 {"r2", s.line->r2}};
  }
  return j;
}

}  // namespace

double weight_bytes(const ModelConfig& c) {
  const double q = static_cast<double>(c.heads) * c.head_dim * c.d_model;
  const double kv = static_cast<double>(c.kv_heads) * c.head_dim * c.d_model;
  return c.layers * (2 * q + 2 * kv) * sizeof(float);
}

std::string grows(double exponent, bool plural) {
  const std::string law = growth_law(exponent);
  const std::string verb = plural ? "grow " : "grows ";
  if (law == "sublinear") return verb + "sublinearly";
  return law == "T" || law == "T^2" ? verb + "as " + law : verb + law;
}

std::string growth_law(double exponent) {
  if (exponent < 0.8) return "sublinear";
  if (exponent < 1.25) return "T";
  if (exponent > 1.75) return "T^2";
  return "between T and T^2";
}

bool SeriesAnalysis::setup_recorded() const {
  return !setup_seconds.empty() &&
         std::all_of(setup_seconds.begin(), setup_seconds.end(),
                     [](double x) { return std::isfinite(x); });
}

double SeriesAnalysis::setup_share(std::size_t i) const {
  if (i >= setup_seconds.size() || !std::isfinite(setup_seconds[i])) return kNaN;
  const double total = setup_seconds[i] + seconds[i];
  return total > 0 ? setup_seconds[i] / total : kNaN;
}

const SeriesAnalysis* Analysis::find_generation(const std::string& impl) const {
  for (const auto& s : generation) {
    if (s.impl == impl) return &s;
  }
  return nullptr;
}

const SeriesAnalysis* Analysis::find_decode(const std::string& impl, int threads) const {
  for (const auto& s : decode) {
    if (s.impl == impl && s.threads == threads) return &s;
  }
  return nullptr;
}

json Analysis::to_json() const {
  json impls = json::object();
  for (const auto& s : generation) impls[s.impl]["generate"] = series_json(s);
  for (const auto& s : decode) {
    impls[s.impl]["decode_step"]["threads:" + std::to_string(s.threads)] = series_json(s);
  }
  json speed = json::array();
  for (const auto& sp : speedups) {
    json points = json::array();
    for (const auto& p : sp.points) {
      points.push_back({{"T", p.tokens},
                        {"measured", p.measured},
                        {"analytic", p.analytic},
                        {"relative_error", p.relative_error}});
    }
    speed.push_back({{"baseline", sp.baseline},
                     {"cached", sp.cached},
                     {"worst_relative_error", sp.worst_relative_error},
                     {"points", points}});
  }
  json bw = json::array();
  for (const auto& p : bandwidth) {
    bw.push_back({{"impl", p.impl},
                  {"device", p.device},
                  {"threads", p.threads},
                  {"position", p.position},
                  {"kv_bytes_read", p.kv_bytes},
                  {"bytes_per_second", p.bytes_per_second},
                  {"fraction_of_read_bandwidth", p.of_read},
                  {"fraction_of_copy_bandwidth", p.of_copy}});
  }
  json fl = json::array();
  for (const auto& f : floors) {
    fl.push_back({{"impl", f.impl},
                  {"device", f.device},
                  {"threads", f.threads},
                  {"position", f.position},
                  {"weight_bytes", f.weight_bytes},
                  {"kv_bytes", f.kv_bytes},
                  {"bytes", f.bytes},
                  {"bandwidth_bytes_per_second", f.bandwidth},
                  {"bandwidth_source", f.bandwidth_source},
                  {"floor_seconds", f.floor_seconds},
                  {"measured_seconds", f.measured_seconds},
                  {"efficiency", f.efficiency},
                  {"dram_bound", f.dram_bound}});
  }
  json tg = json::array();
  for (const auto& t : targets) {
    tg.push_back({{"id", t.id},
                  {"description", t.description},
                  {"requirement", t.requirement},
                  {"threshold", t.threshold},
                  {"comparison", t.at_most ? "<=" : ">="},
                  {"measured", std::isfinite(t.measured) ? json(t.measured) : json(nullptr)},
                  {"verdict", t.verdict},
                  {"detail", t.detail}});
  }
  json beam_json = json::array();
  for (const auto& b : beam) {
    auto maybe = [](double x) { return std::isfinite(x) ? json(x) : json(nullptr); };
    beam_json.push_back({{"impl", b.impl},
                         {"width", b.width},
                         {"prompt_tokens", b.prompt},
                         {"steps", b.steps},
                         {"prune_every", b.prune_every},
                         {"bytes_held_peak", b.held_peak},
                         {"bytes_held_mean", b.held_mean},
                         {"bytes_reserved_peak", b.reserved_peak},
                         {"bytes_reserved_mean", b.reserved_mean},
                         {"seconds_per_step", b.seconds_per_step},
                         {"cow_copies", b.cow_copies},
                         {"saving_vs_cpu_cached_held", maybe(b.saving_vs_held)},
                         {"saving_vs_cpu_cached_reserved", maybe(b.saving_vs_reserved)}});
  }
  json prefix_json = json::array();
  for (const auto& p : prefix_prefill) {
    prefix_json.push_back({{"impl", p.impl},
                           {"prompt_tokens", p.prompt},
                           {"prefix_tokens", p.prefix},
                           {"warm_seconds", p.warm_seconds},
                           {"cold_seconds", p.cold_seconds},
                           {"warm_over_cold", p.ratio},
                           {"prefix_hit_tokens", p.hit_tokens}});
  }
  const json serving = {
      {"beam", beam.empty() ? json("not measured") : beam_json},
      {"prefix_prefill", prefix_prefill.empty() ? json("not measured") : prefix_json},
      {"vllm_beam_saving", {{"low", kVllmBeamSavingLow}, {"high", kVllmBeamSavingHigh},
                            {"source", "Kwon et al., SOSP 2023 (PagedAttention), beam search"},
                            {"use", "comparison, not a target"}}}};
  json verdict_json = json::array();
  for (const auto& v : verdicts) verdict_json.push_back({{"topic", v.topic}, {"text", v.text}});
  json devices = json::object();
  for (const auto& d : device_bandwidth) {
    devices[d.device] = {{"name", d.name},
                         {"read_bytes_per_second", d.read},
                         {"copy_bytes_per_second", d.copy},
                         {"read_counts", "bytes read once"},
                         {"copy_counts", "bytes read + bytes written"},
                         {"buffer_bytes", d.buffer_bytes}};
  }
  json model = nullptr;
  if (has_config) {
    model = {{"flops_per_projection_row", flops_per_projection_row(config)},
             {"flops_per_dot_product", flops_per_dot_product(config)},
             {"flops_per_token_layer_q_and_o", flops_per_token_layer(config)},
             {"predicted_generation_crossover_T", predicted_generation_crossover},
             {"predicted_decode_crossover_position", predicted_decode_crossover}};
  }
  return {{"source", source},
          {"shape", shape},
          {"config", has_config ? json(config.describe()) : json(nullptr)},
          {"model", model},
          {"baseline", baseline},
          {"cached", cached},
          {"bandwidth",
           {{"read_bytes_per_second", read_bandwidth},
            {"copy_bytes_per_second", copy_bandwidth},
            {"read_counts", "bytes read once"},
            {"copy_counts", "bytes read + bytes written"},
            {"llc_bytes", llc_bytes}}},
          {"device_bandwidth", devices},
          {"implementations", impls},
          {"speedup", speed},
          {"bandwidth_points", bw},
          {"floors", fl},
          {"serving", serving},
          {"targets", tg},
          {"verdicts", verdict_json},
          {"notes", notes}};
}

Analysis analyze(const BenchData& data) { return detail::Analyzer(data).run(); }

}  // namespace kvbench::reports
