#include "reports/render.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "harness/atomic_file.h"
#include "harness/error.h"
#include "reports/format.h"
#include "reports/op_model.h"

namespace kvbench::reports {

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  require(in.good(), "report: cannot read ", path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}


std::string context_string(const BenchData& d, const std::string& key) {
  if (d.context.contains(key) && d.context[key].is_string()) return d.context[key];
  return "";
}

// Facts about the run, as (label, text) pairs, shared by both documents.
std::vector<std::pair<std::string, std::string>> run_facts(const BenchData& d, const Analysis& a) {
  std::vector<std::pair<std::string, std::string>> f;
  f.push_back({"bench output", d.path});
  if (!a.shape.empty()) {
    f.push_back({"model", "shape '" + a.shape + "': " + (a.has_config ? a.config.describe() : "")});
  }
  const json& k = d.kvbench;
  if (k.contains("machine")) {
    const json& m = k["machine"];
    f.push_back({"machine", m.value("cpu_model", "?") + ", " +
                                std::to_string(m.value("logical_cpus", 0)) +
                                " logical CPUs, last-level cache " +
                                bytes_text(m.value("llc_bytes", 0.0)) +
                                (m.value("llc_detected", true) ? "" : " (not detected: assumed)")});
  }
  if (a.read_bandwidth > 0) {
    const json& b = k["bandwidth"];
    f.push_back({"bandwidth (1 thread, this process)",
                 "read-only " + rate_text(a.read_bandwidth) +
                     " (vectorized sum; counts bytes read once), copy " +
                     rate_text(a.copy_bandwidth) +
                     " (memcpy; counts bytes read + bytes written); best of " +
                     std::to_string(b["before"].value("passes", 0)) + " passes over " +
                     bytes_text(b["before"].value("buffer_bytes", 0.0)) +
                     " buffers, before and after the sweeps (before: read " +
                     rate_text(b["before"].value("read_bytes_per_second", 0.0)) + ", after: " +
                     rate_text(b["after"].value("read_bytes_per_second", 0.0)) + ")"});
  }
  for (const auto& db : a.device_bandwidth) {
    f.push_back({db.device + " device bandwidth (this run)",
                 (db.name.empty() ? std::string() : db.name + ": ") + "read-only " +
                     rate_text(db.read) + " (reduction kernel over " +
                     bytes_text(db.buffer_bytes) + "; counts bytes read once), copy " +
                     rate_text(db.copy) +
                     " (device to device; counts bytes read + bytes written); best passes"});
  }
  const std::string date = context_string(d, "date");
  if (!date.empty()) f.push_back({"date", date});
  const std::string command = context_string(d, "kvbench_command");
  if (!command.empty()) f.push_back({"command", command});
  if (k.contains("wall_seconds")) {
    f.push_back({"bench wall time", seconds_text(k.value("wall_seconds", 0.0)) + ", " +
                                        std::to_string(k.value("ran", 0)) + " benchmarks"});
  }
  if (k.contains("naive_stopped_at")) {
    const json& n = k["naive_stopped_at"];
    f.push_back({"naive stopped",
                 n.is_null() ? std::string("no: every T in the sweep was measured")
                             : "before T = " + std::to_string(n.value("stopped_before", 0)) +
                                   " (last measured " + std::to_string(n.value("last_measured", 0)) +
                                   "): " + n.value("reason", "")});
  }
  return f;
}

// ---- the Serving section: the beam-memory and prefix-prefill tables ------------------------

struct Table {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
};

std::string saving_text(double x) { return std::isfinite(x) ? percent(x) : "—"; }

Table beam_table(const Analysis& a) {
  Table t;
  t.header = {"implementation", "width", "peak held", "mean held", "peak reserved",
              "saved vs cpu_cached held (peak)", "saved vs cpu_cached reserved",
              "vLLM paper (comparison)", "time per beam step"};
  for (const auto& b : a.beam) {
    t.rows.push_back({b.impl, std::to_string(b.width), bytes_text(b.held_peak),
                      bytes_text(b.held_mean), bytes_text(b.reserved_peak),
                      saving_text(b.saving_vs_held), saving_text(b.saving_vs_reserved),
                      b.impl == "cpu_cached" ? "—"
                                             : percent(kVllmBeamSavingLow) + "-" +
                                                   percent(kVllmBeamSavingHigh),
                      seconds_text(b.seconds_per_step)});
  }
  return t;
}

Table prefix_table(const Analysis& a) {
  Table t;
  t.header = {"implementation", "prompt P", "cached prefix", "warm prefill", "cold prefill",
              "warm / cold", "prefix hit tokens"};
  for (const auto& p : a.prefix_prefill) {
    t.rows.push_back({p.impl, std::to_string(p.prompt), std::to_string(p.prefix),
                      seconds_text(p.warm_seconds), seconds_text(p.cold_seconds),
                      fixed(p.ratio, 2), sig(p.hit_tokens)});
  }
  return t;
}

bool serving_topic(const std::string& topic) { return topic.rfind("Serving:", 0) == 0; }

void markdown_table(std::ostringstream& md, const Table& t) {
  md << "|";
  for (const auto& h : t.header) md << " " << h << " |";
  md << "\n|";
  for (std::size_t i = 0; i < t.header.size(); ++i) md << "---|";
  md << "\n";
  for (const auto& r : t.rows) {
    md << "|";
    for (const auto& c : r) md << " " << c << " |";
    md << "\n";
  }
}

void html_table(std::ostringstream& h, const Table& t) {
  h << "<table><tr>";
  for (const auto& c : t.header) h << "<th>" << html_escape(c) << "</th>";
  h << "</tr>\n";
  for (const auto& r : t.rows) {
    h << "<tr>";
    for (const auto& c : r) h << "<td>" << html_escape(c) << "</td>";
    h << "</tr>\n";
  }
  h << "</table>\n";
}

void markdown_serving(std::ostringstream& md, const Analysis& a) {
  md << "\n## Serving\n\n";
  if (!a.beam.empty()) {
    md << "Beam search (bytes held: Stats::bytes_held; saving: 1 - held / cpu_cached's at the "
          "same width):\n\n";
    markdown_table(md, beam_table(a));
    md << "\n";
  }
  if (!a.prefix_prefill.empty()) {
    md << "Prefill with a cached prefix against a cold prefill (PrefillRows::last):\n\n";
    markdown_table(md, prefix_table(a));
    md << "\n";
  }
  for (const auto& v : a.verdicts) {
    if (serving_topic(v.topic)) md << "- " << v.text << "\n";
  }
}

void html_serving(std::ostringstream& h, const Analysis& a) {
  h << "<h2>Serving</h2>\n";
  if (!a.beam.empty()) {
    h << "<h3>Beam search memory</h3>\n";
    html_table(h, beam_table(a));
  }
  if (!a.prefix_prefill.empty()) {
    h << "<h3>Prefill with a cached prefix</h3>\n";
    html_table(h, prefix_table(a));
  }
  h << "<ul class=\"verdicts\">\n";
  for (const auto& v : a.verdicts) {
    if (serving_topic(v.topic)) h << "<li>" << html_escape(v.text) << "</li>\n";
  }
  h << "</ul>\n";
}

std::string measured_text(const Target& t) {
  if (!std::isfinite(t.measured)) return "—";
  if (t.id == "cpu_cached_read_bandwidth" || t.id == "cpu_cached_floor_efficiency") {
    return percent(t.measured);
  }
  if (t.id == "paged_vs_cpu_cached") return sig(t.measured) + "x";
  if (t.at_most) return percent(t.measured) + " worst deviation";
  return sig(t.measured) + "x";
}

std::string local_text(const SeriesAnalysis& s) {
  std::string out;
  for (const auto& l : s.local) {
    if (!out.empty()) out += ", ";
    out += sig(l.x_from) + "→" + sig(l.x_to) + ": " + fixed(l.exponent, 2);
  }
  return out;
}

const char* kHowToRead =
    "Every number here comes from one `kvbench bench` run. The cost of decoding T tokens "
    "splits into K/V projections (a cache computes one row per token; without a cache every "
    "step recomputes the whole prefix, T(T+1)/2 rows) and query-key dot products (T(T+1)/2 "
    "either way). So the no-cache baseline grows as T^2 throughout, while a cache grows as T "
    "only while its projections dominate; past T of about 2 d_model (H + H_kv) / H the dot "
    "products take over and it, too, grows as T^2. Plot 1 shows this as fitted exponents b "
    "(log t = a + b log T, with an intercept; R^2 of that fit) and as local exponents between "
    "neighbouring T; a b below 0.8 is called sublinear, a finding to explain (fixed per-step "
    "costs that amortize, cache effects), not linear. A generation's time is its T decode "
    "steps: creating the sequence (setup) is timed apart, reported under its own heading "
    "with where it would have dominated, and kept out of every fit and ratio. Plot 3 checks that the measured speedup is what the op counts predict; "
    "plot 5 compares the K/V read rate of a decode step with the machine's own memory "
    "bandwidth, measured in the same process. Targets are verdicts on ratios measured in this "
    "one run; a target not met shows the measured figure.";

// One row per implementation's generation series: the scaling figures at a glance.
struct GlanceRow {
  std::string impl, time, rows, dots, local, quadratic_from, rate;
};

std::vector<GlanceRow> glance(const Analysis& a) {
  std::vector<GlanceRow> out;
  for (const auto& s : a.generation) {
    if (!s.time_fit) continue;
    GlanceRow r;
    r.impl = s.impl;
    r.time = growth_law(s.time_fit->exponent) + " (b = " + fixed(s.time_fit->exponent, 2) +
             ", R² = " + fixed(s.time_fit->r2, 3) + ")";
    r.rows = s.projection_fit ? growth_law(s.projection_fit->exponent) + " (b = " +
                                    fixed(s.projection_fit->exponent, 2) + ")"
                              : "—";
    r.dots = s.dots_fit ? growth_law(s.dots_fit->exponent) + " (b = " +
                              fixed(s.dots_fit->exponent, 2) + ")"
                        : "—";
    r.local = fixed(s.local.front().exponent, 2) + " → " + fixed(s.local.back().exponent, 2) +
              " (T " + sig(s.sizes.front()) + " → " + sig(s.sizes.back()) + ")";
    if (!s.local.empty() && s.local.front().exponent >= 1.5) {
      r.quadratic_from = "already at the first pair (T " + sig(s.local.front().x_from) + "→" +
                         sig(s.local.front().x_to) + ")";
    } else {
      r.quadratic_from = s.quadratic_from > 0 ? "T ≈ " + sig(s.quadratic_from) : "not reached";
    }
    if (!s.flops_per_second.empty() && s.flops_per_second.front() > 0) {
      r.rate = sig(s.flops_per_second.front() / 1e9) + " → " +
               sig(s.flops_per_second.back() / 1e9);
    } else {
      r.rate = "—";
    }
    out.push_back(r);
  }
  return out;
}

const char* kGlanceHeader[] = {"implementation", "generation time grows as",
                               "K/V projection rows", "query-key dot products",
                               "local exponent (first → last pair)",
                               "local exponent reaches 1.5 at", "model GFLOP/s (first → last T)"};

}  // namespace

std::string base64(const std::string& bytes) {
  static const char* table = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const unsigned v = (static_cast<unsigned char>(bytes[i]) << 16) |
                       (static_cast<unsigned char>(bytes[i + 1]) << 8) |
                       static_cast<unsigned char>(bytes[i + 2]);
    out += table[(v >> 18) & 63];
    out += table[(v >> 12) & 63];
    out += table[(v >> 6) & 63];
    out += table[v & 63];
  }
  if (i < bytes.size()) {
    unsigned v = static_cast<unsigned char>(bytes[i]) << 16;
    if (i + 1 < bytes.size()) v |= static_cast<unsigned char>(bytes[i + 1]) << 8;
    out += table[(v >> 18) & 63];
    out += table[(v >> 12) & 63];
    out += i + 1 < bytes.size() ? table[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::string render_markdown(const BenchData& d, const Analysis& a, const std::vector<Plot>& plots) {
  std::ostringstream md;
  md << "# kvbench scaling report\n\n";
  for (const auto& f : run_facts(d, a)) md << "- **" << f.first << "**: " << f.second << "\n";
  md << "\n## Scaling at a glance\n\n|";
  for (const char* h : kGlanceHeader) md << " " << h << " |";
  md << "\n|---|---|---|---|---|---|---|\n";
  for (const auto& r : glance(a)) {
    md << "| " << r.impl << " | " << r.time << " | " << r.rows << " | " << r.dots << " | "
       << r.local << " | " << r.quadratic_from << " | " << r.rate << " |\n";
  }
  md << "\n## Verdicts\n";
  if (a.verdicts.empty()) md << "\n- (no series with two or more sizes: nothing to fit)\n";
  std::string topic;
  for (const auto& v : a.verdicts) {
    if (serving_topic(v.topic)) continue;  // in the Serving section
    if (v.topic != topic) md << "\n### " << (topic = v.topic) << "\n\n";
    md << "- " << v.text << "\n";
  }
  md << "\n## Performance targets\n\n| target | required | measured | verdict | detail |\n"
        "|---|---|---|---|---|\n";
  for (const auto& t : a.targets) {
    md << "| " << t.description << " | " << t.requirement << " | " << measured_text(t) << " | **"
       << t.verdict << "** | " << t.detail << " |\n";
  }
  markdown_serving(md, a);
  if (!a.checks.empty()) {
    md << "\n## Checked before timing\n\n";
    for (const auto& c : a.checks) md << "- " << c << "\n";
  }
  if (!a.notes.empty()) {
    md << "\n## Where series stopped\n\n";
    for (const auto& n : a.notes) md << "- " << n << "\n";
  }
  md << "\n## Plots\n\n";
  for (const auto& p : plots) {
    md << "### " << p.title << "\n\n![" << p.name << "](" << p.name << ".png)\n\n" << p.caption
       << " ([SVG](" << p.name << ".svg))\n\n";
  }
  md << "## Fits\n\n| series | grows as | exponent b | R^2 | local exponents |\n"
        "|---|---|---|---|---|\n";
  for (const auto* group : {&a.generation, &a.decode}) {
    for (const auto& s : *group) {
      if (!s.time_fit) continue;
      md << "| " << s.series << " | " << growth_law(s.time_fit->exponent) << " | "
         << fixed(s.time_fit->exponent, 3) << " | " << fixed(s.time_fit->r2, 4) << " | "
         << local_text(s) << " |\n";
    }
  }
  for (const auto& sp : a.speedups) {
    md << "\n### Speedup " << sp.baseline << " / " << sp.cached
       << "\n\n| T | measured | analytic (FLOPs) | deviation |\n|---|---|---|---|\n";
    for (const auto& p : sp.points) {
      md << "| " << sig(p.tokens) << " | " << sig(p.measured) << "x | " << sig(p.analytic)
         << "x | " << (p.relative_error >= 0 ? "+" : "") << percent(p.relative_error) << " |\n";
    }
  }
  md << "\n## How to read this report\n\n" << kHowToRead << "\n\n"
     << "Machine-readable figures: `fits.json`. Full report with embedded plots: `report.html`.\n";
  return md.str();
}

std::string render_html(const BenchData& d, const Analysis& a, const std::vector<Plot>& plots) {
  std::ostringstream h;
  h << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
    << "<title>kvbench scaling report</title>\n<style>\n"
    << "body{font-family:'DejaVu Sans',Helvetica,Arial,sans-serif;max-width:1100px;margin:2em "
       "auto;padding:0 1em;color:#222;line-height:1.45}\n"
    << "h1{font-size:1.7em;margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:"
       ".2em;margin-top:1.8em}\n"
    << "table{border-collapse:collapse;margin:.8em 0;font-size:.92em;width:100%}\n"
    << "th,td{border:1px solid #ddd;padding:.35em .55em;text-align:left;vertical-align:top}\n"
    << "th{background:#f4f4f4}\n"
    << ".met,.notmet,.none{white-space:nowrap}\n"
    << ".met{color:#fff;background:#2e7d32;font-weight:bold;padding:.1em .5em;border-radius:3px}\n"
    << ".notmet{color:#fff;background:#c62828;font-weight:bold;padding:.1em .5em;border-radius:3px}\n"
    << ".none{color:#fff;background:#757575;padding:.1em .5em;border-radius:3px}\n"
    << "figure{margin:1.2em 0;border:1px solid #e4e4e4;padding:.6em;background:#fff}\n"
    << "figure img{width:100%;height:auto}figcaption{font-size:.9em;color:#444}\n"
    << "dl.facts{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}\n"
    << "dl.facts dt{font-weight:bold}dl.facts dd{margin:0}\n"
    << "ul.verdicts li{margin:.35em 0}code{background:#f4f4f4;padding:0 .2em}\n"
    << "</style></head><body>\n<h1>kvbench scaling report</h1>\n<dl class=\"facts\">\n";
  for (const auto& f : run_facts(d, a)) {
    h << "<dt>" << html_escape(f.first) << "</dt><dd>" << html_escape(f.second) << "</dd>\n";
  }
  h << "</dl>\n<h2>Scaling at a glance</h2>\n<table><tr>";
  for (const char* head : kGlanceHeader) h << "<th>" << html_escape(head) << "</th>";
  h << "</tr>\n";
  for (const auto& r : glance(a)) {
    h << "<tr><td>" << html_escape(r.impl) << "</td><td>" << html_escape(r.time) << "</td><td>"
      << html_escape(r.rows) << "</td><td>" << html_escape(r.dots) << "</td><td>"
      << html_escape(r.local) << "</td><td>" << html_escape(r.quadratic_from) << "</td><td>"
      << html_escape(r.rate) << "</td></tr>\n";
  }
  h << "</table>\n<h2>Verdicts</h2>\n";
  if (a.verdicts.empty()) h << "<p>No series with two or more sizes: nothing to fit.</p>\n";
  std::string topic;
  for (const auto& v : a.verdicts) {
    if (serving_topic(v.topic)) continue;  // in the Serving section
    if (v.topic != topic) {
      h << (topic.empty() ? "" : "</ul>\n") << "<h3>" << html_escape(v.topic)
        << "</h3>\n<ul class=\"verdicts\">\n";
      topic = v.topic;
    }
    h << "<li>" << html_escape(v.text) << "</li>\n";
  }
  if (!topic.empty()) h << "</ul>\n";
  h << "<h2>Performance targets</h2>\n<table><tr><th>target</th><th>required</th>"
       "<th>measured</th><th>verdict</th><th>detail</th></tr>\n";
  for (const auto& t : a.targets) {
    const char* cls = t.verdict == "met" ? "met"
                      : t.verdict == "not met" || t.verdict == "reference invalid" ? "notmet"
                                                                                  : "none";
    h << "<tr><td>" << html_escape(t.description) << "</td><td>" << html_escape(t.requirement)
      << "</td><td>" << html_escape(measured_text(t)) << "</td><td><span class=\"" << cls << "\">"
      << html_escape(t.verdict) << "</span></td><td>" << html_escape(t.detail) << "</td></tr>\n";
  }
  h << "</table>\n";
  html_serving(h, a);
  if (!a.checks.empty()) {
    h << "<h2>Checked before timing</h2>\n<ul>\n";
    for (const auto& c : a.checks) h << "<li>" << html_escape(c) << "</li>\n";
    h << "</ul>\n";
  }
  if (!a.notes.empty()) {
    h << "<h2>Where series stopped</h2>\n<ul>\n";
    for (const auto& n : a.notes) h << "<li>" << html_escape(n) << "</li>\n";
    h << "</ul>\n";
  }
  h << "<h2>Plots</h2>\n";
  for (const auto& p : plots) {
    h << "<figure id=\"" << p.name << "\"><h3>" << html_escape(p.title) << "</h3>\n"
      << "<img alt=\"" << html_escape(p.title) << "\" src=\"data:image/svg+xml;base64,"
      << base64(read_file(p.svg)) << "\">\n<figcaption>" << html_escape(p.caption)
      << "</figcaption></figure>\n";
  }
  h << "<h2>Fits</h2>\n<table><tr><th>series</th><th>grows as</th><th>exponent b</th>"
       "<th>R²</th><th>local exponents (between neighbouring sizes)</th></tr>\n";
  for (const auto* group : {&a.generation, &a.decode}) {
    for (const auto& s : *group) {
      if (!s.time_fit) continue;
      h << "<tr><td>" << html_escape(s.series) << "</td><td>"
        << html_escape(growth_law(s.time_fit->exponent)) << "</td><td>"
        << fixed(s.time_fit->exponent, 3) << "</td><td>" << fixed(s.time_fit->r2, 4)
        << "</td><td>" << html_escape(local_text(s)) << "</td></tr>\n";
    }
  }
  h << "</table>\n";
  for (const auto& sp : a.speedups) {
    h << "<h3>Speedup " << html_escape(sp.baseline + " / " + sp.cached)
      << "</h3>\n<table><tr><th>T</th><th>measured</th><th>analytic (FLOPs)</th>"
         "<th>deviation</th></tr>\n";
    for (const auto& p : sp.points) {
      h << "<tr><td>" << sig(p.tokens) << "</td><td>" << sig(p.measured) << "x</td><td>"
        << sig(p.analytic) << "x</td><td>" << (p.relative_error >= 0 ? "+" : "")
        << percent(p.relative_error) << "</td></tr>\n";
    }
    h << "</table>\n";
  }
  h << "<h2>How to read this report</h2>\n<p>" << html_escape(kHowToRead) << "</p>\n";
  if (a.has_config) {
    h << "<p>Op-count model for this shape (multiply-add = 2 FLOPs): a K/V projection row costs "
      << sig(flops_per_projection_row(a.config)) << " FLOPs, a query-key dot product with its "
      << "value accumulation " << sig(flops_per_dot_product(a.config))
      << ", the Q and O projections of a token " << sig(flops_per_token_layer(a.config))
      << " per layer. Projections and attention cost the same at decode position t = "
      << sig(a.predicted_decode_crossover) << "; a cached generation's local exponent reaches "
      << "1.5 at T = " << sig(a.predicted_generation_crossover) << ".</p>\n";
  }
  h << "<details><summary>All measurements (" << d.measurements.size()
    << ")</summary>\n<table><tr><th>benchmark</th><th>time / iteration</th><th>projection rows"
       "</th><th>dot products</th><th>K/V bytes read</th><th>bytes held</th><th>setup / iteration</th></tr>\n";
  for (const auto& m : d.measurements) {
    auto c = [&](const char* key) { return m.has(key) ? sig(m.counter(key), 4) : std::string("—"); };
    h << "<tr><td>" << html_escape(m.name) << "</td><td>" << seconds_text(m.seconds) << "</td><td>"
      << c("projection_rows") << "</td><td>" << c("qk_dot_products") << "</td><td>"
      << c("kv_bytes_read") << "</td><td>" << c("bytes_held") << "</td><td>"
      << (m.setup_seconds ? seconds_text(*m.setup_seconds)
                          : std::string(m.id.kind == bench::BenchKind::generate ? "not recorded"
                                                                                : "—"))
      << "</td></tr>\n";
  }
  h << "</table></details>\n<p style=\"color:#777;font-size:.85em\">Written by "
    << "<code>kvbench report</code>; plots drawn by gnuplot; figures in fits.json.</p>\n"
    << "</body></html>\n";
  return h.str();
}

ReportFiles write_report(const std::string& bench_json, const std::string& dir) {
  const BenchData data = load_bench(bench_json);  // a bad input fails before DIR is touched
  prepare_output_directory(dir, "--out");
  const Analysis analysis = analyze(data);
  ReportFiles files;
  files.plots = draw_plots(data, analysis, dir);
  files.fits = (fs::path(dir) / "fits.json").string();
  files.markdown = (fs::path(dir) / "summary.md").string();
  files.html = (fs::path(dir) / "report.html").string();
  write_file_atomically(files.fits, analysis.to_json().dump(2) + "\n", "--out");
  write_file_atomically(files.markdown, render_markdown(data, analysis, files.plots), "--out");
  write_file_atomically(files.html, render_html(data, analysis, files.plots), "--out");
  return files;
}

}  // namespace kvbench::reports
