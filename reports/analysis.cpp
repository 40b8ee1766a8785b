#include "reports/analysis.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>

#include "reports/format.h"
#include "reports/op_model.h"

namespace kvbench::reports {

using bench::BenchKind;
using nlohmann::json;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::string range_text(const std::vector<double>& sizes) {
  return sig(sizes.front()) + ".." + sig(sizes.back());
}

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

Target make_target(const std::string& id, const std::string& description,
                   const std::string& requirement, double threshold, bool at_most = false) {
  Target t;
  t.id = id;
  t.description = description;
  t.requirement = requirement;
  t.threshold = threshold;
  t.at_most = at_most;
  t.measured = kNaN;
  t.verdict = "not measured";
  return t;
}

void settle(Target& t, double measured, const std::string& detail) {
  t.measured = measured;
  t.detail = detail;
  const bool met = t.at_most ? measured <= t.threshold : measured >= t.threshold;
  t.verdict = met ? "met" : "not met";
}

// A target whose measure is a fraction of a physical limit: above 1 the limit was measured
// wrong (nothing runs faster than its limit), which is said, never counted as met.
void settle_fraction(Target& t, double fraction, const std::string& detail) {
  settle(t, fraction, detail);
  if (fraction > 1) {
    t.verdict = "reference invalid";
    t.detail += "; " + percent(fraction) +
                " of a limit means the limit was measured wrong, so this is not a pass";
  }
}

class Analyzer {
 public:
  explicit Analyzer(const BenchData& d) : d_(d) {}

  Analysis run() {
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
    targets();
    verdicts();
    notes();
    return a_;
  }

 private:
  // The cache the speedup and bandwidth targets are about: cpu_cached when it ran, else the
  // first implementation other than the baseline.
  void pick_cached() {
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

  void collect_bandwidth() {
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
        double read = a_.read_bandwidth, copy = a_.copy_bandwidth;
        if (p.device != "cpu") {
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

  void collect_floors() {
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

  // time(other) / time(cpu_cached) for single-thread decode steps at `position`.
  std::optional<double> decode_ratio(const std::string& other, int position) const {
    const Measurement* mine = d_.find(BenchKind::decode_step, "cpu_cached", 1, position);
    const Measurement* theirs = d_.find(BenchKind::decode_step, other, 1, position);
    if (!mine || !theirs) return std::nullopt;
    return theirs->seconds / mine->seconds;
  }

  void decode_target_short(const std::string& other, double factor) {
    Target t = make_target("decode_vs_" + other + "_short",
                           "cpu_cached decode step vs " + other +
                               " at every position t <= 1024 (default shape, 1 thread each)",
                           ">= " + sig(factor) + "x faster", factor);
    if (d_.shape != "default") {
      t.detail = "defined on the default shape; this run used '" + d_.shape + "'";
    } else {
      double worst = kNaN;
      std::string where;
      for (const Measurement* m : d_.series(BenchKind::decode_step, "cpu_cached", 1)) {
        if (m->id.size > 1024) continue;
        const auto r = decode_ratio(other, m->id.size);
        if (!r) continue;
        if (!(worst <= *r)) {
          worst = *r;
          where = std::to_string(m->id.size);
        }
      }
      if (std::isfinite(worst)) {
        settle(t, worst, "smallest ratio over the positions <= 1024, at t = " + where);
      } else {
        t.detail = "needs decode steps of cpu_cached and " + other + " at some t <= 1024";
      }
    }
    a_.targets.push_back(t);
  }

  void decode_target_long(const std::string& other, double factor, const std::string& req) {
    Target t = make_target("decode_vs_" + other + "_16384",
                           "cpu_cached decode step vs " + other +
                               " at t = 16384 (default shape, 1 thread each)",
                           req, factor);
    if (d_.shape != "default") {
      t.detail = "defined on the default shape; this run used '" + d_.shape + "'";
    } else if (const auto r = decode_ratio(other, 16384)) {
      settle(t, *r, "time(" + other + ") / time(cpu_cached) at t = 16384");
    } else {
      t.detail = "needs decode steps of cpu_cached and " + other + " at t = 16384";
    }
    a_.targets.push_back(t);
  }

  // The read-only limit for `threads` threads on the host: the reference measured with that
  // many threads, else (older outputs, 1 thread) the context's read bandwidth.
  std::pair<double, std::string> host_reference(int threads) const {
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

  void bandwidth_target() {
    Target t = make_target(
        "cpu_cached_read_bandwidth",
        "cpu_cached K/V bytes read per second (1 thread) over the machine's read-only "
        "reference (1 thread, a buffer >= 8x the last-level cache held like the K/V, best of "
        "several kernels), at positions whose K/V is >= 8x the last-level cache",
        ">= 85%", 0.85);
    const auto [reference, source] = host_reference(1);
    if (reference <= 0 || a_.llc_bytes <= 0) {
      t.detail = "the bench output has no read-only reference or cache size in its context";
      a_.targets.push_back(t);
      return;
    }
    double worst = kNaN, largest = 0;
    std::string where;
    for (const auto& p : a_.bandwidth) {
      if (p.impl != "cpu_cached" || p.threads != 1) continue;
      largest = std::max(largest, p.kv_bytes);
      if (p.kv_bytes < kDramBoundLlcMultiple * a_.llc_bytes) continue;
      const double fraction = p.bytes_per_second / reference;
      if (!(worst <= fraction)) {
        worst = fraction;
        where = "t = " + sig(p.position) + " (" + bytes_text(p.kv_bytes) + " of K/V read, " +
                sig(p.kv_bytes / a_.llc_bytes) + "x the LLC): " + rate_text(p.bytes_per_second) +
                " against " + rate_text(reference) + " (" + source + ")";
      }
    }
    if (std::isfinite(worst)) {
      settle_fraction(t, worst, "lowest over positions reading K/V >= 8x LLC, at " + where);
    } else {
      t.detail = "no cpu_cached decode step read K/V >= 8x the last-level cache (" +
                 bytes_text(kDramBoundLlcMultiple * a_.llc_bytes) + "); the largest read " +
                 bytes_text(largest) +
                 (a_.has_config ? " (this shape's K/V at capacity: " +
                                      bytes_text(static_cast<double>(a_.config.capacity) *
                                                 a_.config.kv_bytes_per_token()) + ")"
                                : std::string()) +
                 ": judge it on a wider shape (--shape llama2-7b) or a longer context";
    }
    a_.targets.push_back(t);
  }

  // The floor target: cpu_cached single-thread steps at DRAM-bound positions.
  void floor_target() {
    Target t = make_target("cpu_cached_floor_efficiency",
                           "cpu_cached decode step (1 thread) against its per-step floor "
                           "(weights once + K/V rows, over the 1-thread read-only reference), "
                           "at positions whose bytes are >= 8x the last-level cache (shape '" +
                               (a_.shape.empty() ? std::string("?") : a_.shape) + "')",
                           ">= 90% of the floor", 0.90);
    double worst = kNaN, largest = 0;
    std::string where;
    for (const auto& f : a_.floors) {
      if (f.impl != "cpu_cached" || f.threads != 1) continue;
      largest = std::max(largest, f.bytes);
      if (!f.dram_bound) continue;
      if (!(worst <= f.efficiency)) {
        worst = f.efficiency;
        where = "t = " + sig(f.position) + ": floor " + seconds_text(f.floor_seconds) + " (" +
                bytes_text(f.bytes) + " = " + bytes_text(f.weight_bytes) + " weights + " +
                bytes_text(f.kv_bytes) + " K/V, " + sig(f.bytes / a_.llc_bytes) +
                "x the LLC, at " + rate_text(f.bandwidth) + ") against " +
                seconds_text(f.measured_seconds) + " measured";
      }
    }
    if (std::isfinite(worst)) {
      settle_fraction(t, worst, "lowest efficiency over the DRAM-bound positions, at " + where);
    } else if (a_.floors.empty()) {
      t.detail = "needs cpu_cached decode steps and a read-only reference in the bench output";
    } else {
      t.detail = "no cpu_cached step moved >= 8x the last-level cache (" +
                 bytes_text(kDramBoundLlcMultiple * a_.llc_bytes) + "); the largest moved " +
                 bytes_text(largest) + ": judge it on --shape llama2-7b (256 MiB of weights)";
    }
    a_.targets.push_back(t);
  }

  // 2 threads against 1 where the step is DRAM-bound (bytes >= 8x LLC); elsewhere the
  // ratio is given for information only.
  void threads_target() {
    Target t = make_target("cpu_cached_two_threads",
                           "cpu_cached decode step with 2 threads vs 1, at positions whose "
                           "bytes (weights + K/V) are >= 8x the last-level cache",
                           ">= 1.8x faster", 1.8);
    const FloorPoint* worst_one = nullptr;
    double worst = kNaN;
    std::string informative;
    for (const auto& one : a_.floors) {
      if (one.impl != "cpu_cached" || one.threads != 1) continue;
      const Measurement* two = d_.find(BenchKind::decode_step, "cpu_cached", 2,
                                       static_cast<int>(one.position));
      if (!two) continue;
      const double ratio = one.measured_seconds / two->seconds;
      if (!one.dram_bound) {
        informative = "; not DRAM-bound, for information: " + sig(ratio) + "x at t = " +
                      sig(one.position);
        continue;
      }
      if (!(worst <= ratio)) {
        worst = ratio;
        worst_one = &one;
      }
    }
    if (worst_one) {
      const Measurement* two = d_.find(BenchKind::decode_step, "cpu_cached", 2,
                                       static_cast<int>(worst_one->position));
      settle(t, worst,
             "lowest time(1 thread) / time(2 threads) over the DRAM-bound positions, at t = " +
                 sig(worst_one->position) + ": " + seconds_text(worst_one->measured_seconds) +
                 " / " + seconds_text(two->seconds));
    } else {
      t.detail = "needs cpu_cached decode steps with 1 and 2 threads at a position moving >= "
                 "8x the last-level cache" + informative;
    }
    a_.targets.push_back(t);
  }

  void speedup_target() {
    Target t = make_target("naive_over_cached_vs_analytic",
                           "measured naive/cached generation time ratio vs the op-count "
                           "(FLOP) ratio, across the sweep",
                           "within 25%", 0.25, /*at_most=*/true);
    for (const auto& sp : a_.speedups) {
      if (sp.cached != a_.cached) continue;
      const SpeedupPoint* worst = &sp.points.front();
      for (const auto& p : sp.points) {
        if (std::fabs(p.relative_error) > std::fabs(worst->relative_error)) worst = &p;
      }
      settle(t, sp.worst_relative_error,
             sp.baseline + "/" + sp.cached + " over T = " + sig(sp.points.front().tokens) + ".." +
                 sig(sp.points.back().tokens) + "; worst at T = " + sig(worst->tokens) +
                 ": measured " + sig(worst->measured) + "x vs analytic " + sig(worst->analytic) +
                 "x");
    }
    if (!std::isfinite(t.measured)) {
      t.detail = "needs generations of the no-cache baseline and " +
                 (a_.cached.empty() ? std::string("a cache") : a_.cached) + " at common T";
    }
    a_.targets.push_back(t);
  }

  void targets() {
    decode_target_short("torch_cached", 10);
    decode_target_short("torch_static", 2);
    decode_target_long("torch_cached", 5, ">= 5x faster");
    decode_target_long("torch_static", 1, "no slower (>= 1x)");
    bandwidth_target();
    floor_target();
    threads_target();
    speedup_target();
  }

  void say(const char* topic, const std::string& text) { a_.verdicts.push_back({topic, text}); }

  static constexpr const char* kGrowth = "Which costs grow as T and which as T^2";
  static constexpr const char* kLinear = "Where cached decoding stops being linear";
  static constexpr const char* kSpeedup = "Speedup: measured against the op-count ratio";
  static constexpr const char* kLatency = "Per-token latency against position";
  static constexpr const char* kBandwidth = "Achieved K/V bandwidth";
  static constexpr const char* kFloor = "Per-step floor: bytes a step must move over the bandwidth";
  static constexpr const char* kSetup =
      "Setup: creating the sequence, timed apart from the decode steps";
  static constexpr const char* kSetupDominates = "Where setup would have dominated";

  // Why a sublinear time is worth a look rather than a "linear".
  static constexpr const char* kSublinearWhy =
      "a finding to explain, not linear: the time per token falls as T grows, which usually "
      "means fixed per-step costs that amortize over more steps (dispatch, thread wake-ups, "
      "per-call allocation) or cache effects (a small T's working set fits in a faster cache)";

  void generation_verdicts() {
    for (const auto& s : a_.generation) {
      if (!s.time_fit) continue;
      std::string v = s.impl + ": generation time (" +
                      (s.setup_recorded() ? "the T decode steps" : "setup included") + ") " +
                      grows(s.time_fit->exponent) +
                      " (fit b = " +
                      fixed(s.time_fit->exponent, 2) + ", R^2 = " + fixed(s.time_fit->r2, 3) +
                      ", T = " + range_text(s.sizes) + ")";
      if (s.projection_fit && s.dots_fit) {
        v += "; its K/V projection rows " + grows(s.projection_fit->exponent, true) + " (b = " +
             fixed(s.projection_fit->exponent, 2) + ") and its query-key dot products " +
             grows(s.dots_fit->exponent, true) + " (b = " + fixed(s.dots_fit->exponent, 2) + ")";
      }
      v += ". Local exponent " + fixed(s.local.front().exponent, 2) + " at T " +
           sig(s.local.front().x_from) + "->" + sig(s.local.front().x_to) + ", " +
           fixed(s.local.back().exponent, 2) + " at T " + sig(s.local.back().x_from) + "->" +
           sig(s.local.back().x_to) + ".";
      if (growth_law(s.time_fit->exponent) == "sublinear") {
        v += " Sublinear (b < 0.8) is " + std::string(kSublinearWhy) + ".";
      }
      if (!s.setup_recorded()) {
        v += " (Setup not recorded: these times, and the fit, include creating the sequence.)";
      }
      say(kGrowth, v);
    }
    for (const auto& s : a_.generation) {
      if (!s.time_fit || s.impl == a_.baseline) continue;
      const double first = s.local.front().exponent, last = s.local.back().exponent;
      std::string v = s.impl + ": ";
      if (growth_law(first) == "sublinear") {
        v += "sublinear at the smallest T (local exponent " + fixed(first, 2) + " at T " +
             sig(s.local.front().x_from) + "->" + sig(s.local.front().x_to) +
             "): a finding to explain, not linear (usually fixed per-step costs that amortize, "
             "or cache effects)";
        if (s.quadratic_from > 0) {
          v += "; the local exponent reaches 1.5 at T ~ " + sig(s.quadratic_from) + ", and is " +
               fixed(last, 2) + " at T " + sig(s.local.back().x_from) + "->" +
               sig(s.local.back().x_to);
        } else {
          v += "; local exponent " + fixed(last, 2) + " at T " + sig(s.local.back().x_from) +
               "->" + sig(s.local.back().x_to);
        }
      } else if (growth_law(first) != "T") {
        v += "not linear even at the smallest T (local exponent " + fixed(first, 2) + " at T " +
             sig(s.local.front().x_from) + "->" + sig(s.local.front().x_to) + ")";
      } else if (s.quadratic_from > 0) {
        v += "linear while the projections dominate (local exponent " + fixed(first, 2) +
             " at T " + sig(s.local.front().x_from) + "->" + sig(s.local.front().x_to) +
             "); no longer linear from T ~ " + sig(s.quadratic_from) +
             ", where the local exponent reaches 1.5, and " + fixed(last, 2) + " at T " +
             sig(s.local.back().x_from) + "->" + sig(s.local.back().x_to) +
             " as the T(T+1)/2 dot products take over";
      } else {
        v += "linear (local exponent " + fixed(first, 2) + " at the smallest T, " +
             fixed(last, 2) + " at T " + sig(s.local.back().x_from) + "->" +
             sig(s.local.back().x_to) + "): the sweep ends before the dot products take over";
      }
      if (a_.predicted_generation_crossover > 0) {
        v += ". The op-count model puts the change (local exponent 1.5) at T = " +
             sig(a_.predicted_generation_crossover);
      }
      say(kLinear, v + ".");
    }
  }

  // FLOPs per second of `impl`'s generation at T, or 0.
  double generation_rate(const std::string& impl, double tokens) const {
    const SeriesAnalysis* s = a_.find_generation(impl);
    if (!s) return 0;
    for (std::size_t i = 0; i < s->sizes.size(); ++i) {
      if (s->sizes[i] == tokens) return s->flops_per_second[i];
    }
    return 0;
  }

  void speedup_verdicts() {
    for (const auto& sp : a_.speedups) {
      const SpeedupPoint& last = sp.points.back();
      const double rb = generation_rate(sp.baseline, last.tokens);
      const double rc = generation_rate(sp.cached, last.tokens);
      std::string v =
          "Speedup " + sp.baseline + "/" + sp.cached + ": measured " + sig(last.measured) +
          "x at T = " + sig(last.tokens) + " against " + sig(last.analytic) +
          "x from the op counts (FLOPs: projections, dot products, Q/O projections); over T = " +
          sig(sp.points.front().tokens) + ".." + sig(last.tokens) +
          " the measured ratio is within " + percent(sp.worst_relative_error) +
          " of the analytic one";
      if (rb > 0 && rc > 0) {
        // measured / analytic = rate(cached) / rate(baseline): the deviation is exactly the
        // difference in how fast each turns the model's FLOPs into time.
        v += ". At T = " + sig(last.tokens) + " " + sp.baseline + " runs the model's FLOPs at " +
             sig(rb / 1e9) + " GFLOP/s and " + sp.cached + " at " + sig(rc / 1e9) +
             " GFLOP/s; the measured/analytic ratio is the ratio of these rates";
      }
      say(kSpeedup, v + ".");
    }
  }

  void decode_verdicts() {
    for (const auto& s : a_.decode) {
      if (!s.line || !s.time_fit) continue;
      say(kLatency,
          s.series + ": a decode step costs " + seconds_text(s.line->intercept) + " + " +
          seconds_text(s.line->slope) + " per cached token (line fit on relative error, R^2 = " +
          fixed(s.line->r2, 3) + ", t = " + range_text(s.sizes) + "); local exponent " +
          fixed(s.local.front().exponent, 2) + " at the smallest t, " +
          fixed(s.local.back().exponent, 2) + " at the largest.");
    }
  }

  void bandwidth_verdicts() {
    // Per series: the rate at the longest context (where the K/V is most likely to stream
    // from memory) and the highest rate (often a K/V that fits in cache), each against both
    // bandwidths and placed relative to the last-level cache.
    auto where = [&](const BandwidthPoint& p) {
      std::string w = "t = " + sig(p.position) + ", " + bytes_text(p.kv_bytes) + " of K/V read";
      if (a_.llc_bytes > 0 && p.device == "cpu") {  // the host's last-level cache
        w += p.kv_bytes > a_.llc_bytes ? ", " + sig(p.kv_bytes / a_.llc_bytes) + "x the LLC"
                                       : ", within the LLC";
      }
      return w;
    };
    auto fractions = [&](const BandwidthPoint& p) {
      if (p.device != "cpu") {
        const auto* device = d_.device_bandwidth_of(p.device);
        if (!device) return " (no " + p.device + " device bandwidth in the run to compare with)";
        return " = " + percent(p.of_read) + " of the " + p.device + " device's read-only " +
               "bandwidth (" + rate_text(device->read) + ", bytes read) and " +
               percent(p.of_copy) + " of its copy bandwidth (" + rate_text(device->copy) +
               ", bytes read + written)";
      }
      if (a_.read_bandwidth <= 0) return std::string();
      return " = " + percent(p.of_read) + " of the read-only bandwidth (" +
             rate_text(a_.read_bandwidth) + ", bytes read) and " + percent(p.of_copy) +
             " of the copy bandwidth (" + rate_text(a_.copy_bandwidth) +
             ", bytes read + written)";
    };
    for (const auto& s : a_.decode) {
      const BandwidthPoint *best = nullptr, *longest = nullptr;
      for (const auto& p : a_.bandwidth) {
        if (p.impl != s.impl || p.threads != s.threads || p.kv_bytes <= 0) continue;
        if (!best || p.bytes_per_second > best->bytes_per_second) best = &p;
        if (!longest || p.position > longest->position) longest = &p;
      }
      if (!best) continue;
      std::string v = s.series + ": reads K/V at " + rate_text(longest->bytes_per_second) +
                      " at its longest context (" + where(*longest) + ")" + fractions(*longest);
      if (best != longest) {
        v += "; fastest " + rate_text(best->bytes_per_second) + " (" + where(*best) + ")" +
             fractions(*best);
      }
      say(kBandwidth, v + ".");
    }
  }

  void floor_verdicts() {
    for (const auto& s : a_.decode) {
      std::string list, source;
      int dram = 0, resident = 0;
      for (const auto& f : a_.floors) {
        if (f.impl != s.impl || f.threads != s.threads) continue;
        source = f.bandwidth_source + ", " + rate_text(f.bandwidth);
        list += (list.empty() ? "" : ", ") + std::string("t = ") + sig(f.position) + ": " +
                percent(f.efficiency) + (f.dram_bound ? "" : "*");
        if (f.efficiency > 1 && f.dram_bound) list += " (reference invalid)";
        (f.dram_bound ? dram : resident) += 1;
      }
      if (list.empty()) continue;
      std::string v = s.series + ": efficiency (floor / measured time) " + list + " (floor over " +
                      source + ")";
      if (resident > 0) {
        v += "; * marks positions moving < 8x the last-level cache, where the caches beat DRAM "
             "and the floor does not bind";
      }
      if (dram == 0) v += "; no position here is DRAM-bound";
      say(kFloor, v + ".");
    }
  }

  // Per generation series, its setup at each T and the share of decode + setup it would
  // have been; then one sentence on where setup would have dominated a timing that included
  // it (setup >= the decode steps' time), or that it did nowhere.
  void setup_verdicts() {
    struct Dominated {
      std::string impl;
      double tokens, setup, decode, share;
    };
    std::vector<Dominated> dominated;
    std::vector<std::string> unrecorded;
    const SeriesAnalysis* largest = nullptr;
    std::size_t largest_at = 0;
    bool any_recorded = false;
    for (const auto& s : a_.generation) {
      if (s.sizes.empty()) continue;
      std::string v = s.impl + ": ";
      std::string missing;
      bool first = true;
      for (std::size_t i = 0; i < s.sizes.size(); ++i) {
        if (!std::isfinite(s.setup_seconds[i])) {
          missing += (missing.empty() ? "" : ", ") + sig(s.sizes[i]);
          continue;
        }
        any_recorded = true;
        const double share = s.setup_share(i);
        v += std::string(first ? "setup " : ", ") + seconds_text(s.setup_seconds[i]) +
             " at T = " + sig(s.sizes[i]) + " (" + percent(share) + " of decode + setup)";
        first = false;
        if (!largest || share > largest->setup_share(largest_at)) {
          largest = &s;
          largest_at = i;
        }
        if (s.setup_seconds[i] >= s.seconds[i]) {
          dominated.push_back({s.impl, s.sizes[i], s.setup_seconds[i], s.seconds[i], share});
        }
      }
      if (first) {
        v += "setup not recorded (an older bench output: its generation times include "
             "creating the sequence, and so does its fit)";
        unrecorded.push_back(s.impl);
      } else {
        v += "; kept out of the generation times and their fit";
        if (!missing.empty()) v += "; not recorded at T = " + missing;
      }
      say(kSetup, v + ".");
    }
    if (a_.generation.empty()) return;
    std::string v;
    if (!any_recorded) {
      v = "Not known: this bench output records no setup time (it is older than the "
          "setup_seconds counter), so its generation times include creating the sequence";
    } else if (dominated.empty()) {
      v = "Nowhere: setup stayed below the decode steps' time at every T measured (largest "
          "share " + percent(largest->setup_share(largest_at)) + ", " + largest->impl +
          " at T = " + sig(largest->sizes[largest_at]) + ")";
    } else {
      v = "Setup would have dominated a timing that included it (setup >= the decode steps' "
          "time, >= 50% of decode + setup) at: ";
      for (std::size_t i = 0; i < dominated.size(); ++i) {
        const Dominated& d = dominated[i];
        v += (i ? "; " : "") + d.impl + " at T = " + sig(d.tokens) + " (" +
             seconds_text(d.setup) + " setup against " + seconds_text(d.decode) +
             " decoding, " + percent(d.share) + ")";
      }
      v += ". There a whole-generation time would have measured creating the sequence "
           "(allocation, page faults) more than decoding; the fits and speedups here use the "
           "decode steps alone";
    }
    if (any_recorded && !unrecorded.empty()) {
      v += " (setup not recorded for " + join_names(unrecorded) + ")";
    }
    say(kSetupDominates, v + ".");
  }

  static std::string join_names(const std::vector<std::string>& names) {
    std::string out;
    for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
    return out;
  }

  void verdicts() {
    generation_verdicts();
    setup_verdicts();
    speedup_verdicts();
    decode_verdicts();
    bandwidth_verdicts();
    floor_verdicts();
  }

  void notes() {
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

  const BenchData& d_;
  Analysis a_;
};

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
          {"targets", tg},
          {"verdicts", verdict_json},
          {"notes", notes}};
}

Analysis analyze(const BenchData& data) { return Analyzer(data).run(); }

}  // namespace kvbench::reports
