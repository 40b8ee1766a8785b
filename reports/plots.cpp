#include "reports/plots.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "harness/atomic_file.h"
#include "harness/error.h"
#include "reports/format.h"
#include "reports/op_model.h"

extern char** environ;

namespace kvbench::reports {

using bench::BenchKind;
namespace fs = std::filesystem;

namespace {

// Runs `gnuplot script` with stdout and stderr going to `log`. RETURNS: its exit status
// (127 when it could not be started).
int run_gnuplot(const std::string& script, const std::string& log) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  std::string prog = "gnuplot";
  std::vector<char*> argv = {prog.data(), const_cast<char*>(script.c_str()), nullptr};
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, "gnuplot", &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return 127;
  int status = 0;
  if (waitpid(pid, &status, 0) < 0) return 127;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// gnuplot exits 0 when a write of its output fails (a full disk, a file size limit) and
// leaves the file cut short. RETURNS: whether `path` ends as a whole SVG (its closing tag)
// or PNG (the IEND chunk) does.
bool complete_plot(const std::string& path, const std::string& ext) {
  const std::string text = read_text(path);
  if (ext == "png") {
    static const std::string iend("IEND\xae\x42\x60\x82", 8);
    return text.size() >= 8 && text.compare(text.size() - 8, 8, iend) == 0;
  }
  const std::size_t end = text.find_last_not_of(" \t\r\n");
  return end != std::string::npos && end >= 5 && text.compare(end - 5, 6, "</svg>") == 0;
}

std::string threads_text(int n) {
  return " (" + std::to_string(n) + (n == 1 ? " thread)" : " threads)");
}

// A name safe in file names and gnuplot titles.
std::string file_safe(const std::string& name) {
  std::string out;
  for (char c : name) out += (std::isalnum(static_cast<unsigned char>(c)) || c == '_') ? c : '-';
  return out;
}

std::string title_safe(const std::string& text) {
  std::string out;
  for (char c : text) out += (c == '"' || c == '\\') ? '\'' : c;
  return out;
}

// One colour per implementation, the same in every plot.
class Palette {
 public:
  explicit Palette(const std::vector<std::string>& impls) {
    for (const auto& i : impls) {
      if (!index_.count(i)) index_[i] = static_cast<int>(index_.size());
    }
  }
  std::string color(const std::string& impl) const {
    static const char* colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
                                   "#9467bd", "#8c564b", "#e377c2", "#17becf"};
    const auto it = index_.find(impl);
    const int i = it == index_.end() ? 7 : it->second % 8;
    return std::string("rgb '") + colors[i] + "'";
  }

 private:
  std::map<std::string, int> index_;
};

const char* kPreamble =
    "set encoding utf8\n"
    "set grid xtics ytics lc rgb '#dddddd' lt 1\n"
    "set border lc rgb '#555555'\n"
    "set key inside left top box opaque noenhanced spacing 1.05 samplen 2.5 width 1 "
    "font keyfont\n"
    "set mxtics 10\n"
    "set mytics 10\n"
    "set format x '%g'\n"
    "set offsets 0, 0, graph 0.06, graph 0.06\n";

class PlotWriter {
 public:
  PlotWriter(const BenchData& data, const Analysis& a, const std::string& dir)
      : d_(data), a_(a), dir_(fs::absolute(dir).string()), data_dir_(dir_ + "/data"),
        palette_(all_impls()) {
    require(dir_.find('\'') == std::string::npos, "report: output directory '", dir_,
            "' contains a single quote, which gnuplot scripts cannot quote");
    prepare_output_directory(data_dir_, "--out");
  }

  std::vector<Plot> draw() {
    std::vector<Plot> plots;
    plots.push_back(scaling());
    plots.push_back(latency());
    plots.push_back(speedup());
    plots.push_back(memory());
    plots.push_back(bandwidth());
    if (!a_.beam.empty()) plots.push_back(beam_memory());  // older outputs have no beams
    for (const Plot& p : plots) render(p);
    return plots;
  }

 private:
  std::vector<std::string> all_impls() const {
    std::vector<std::string> out = d_.impls(BenchKind::generate);
    for (BenchKind kind : {BenchKind::decode_step, BenchKind::beam, BenchKind::prefix_prefill}) {
      for (const auto& i : d_.impls(kind)) {
        if (std::find(out.begin(), out.end(), i) == out.end()) out.push_back(i);
      }
    }
    return out;
  }

  std::string data_path(const std::string& name) const { return data_dir_ + "/" + name + ".dat"; }
  // Scripts name their data relative to DIR/data (gnuplot runs there), so that a report
  // directory can be moved and its plots redrawn by hand.
  static std::string data_ref(const std::string& name) { return name + ".dat"; }

  void write_data(const std::string& name, const std::string& header,
                  const std::vector<std::vector<double>>& rows) {
    std::ostringstream out;
    out << "# " << header << "\n";
    out.precision(10);
    for (const auto& r : rows) {
      for (std::size_t i = 0; i < r.size(); ++i) out << (i ? " " : "") << r[i];
      out << "\n";
    }
    write_file_atomically(data_path(name), out.str(), "--out");
  }

  Plot start(const std::string& name, const std::string& title, const std::string& caption) {
    Plot p;
    p.name = name;
    p.title = title;
    p.caption = caption;
    p.svg = dir_ + "/" + name + ".svg";
    p.png = dir_ + "/" + name + ".png";
    script_.str("");
    script_ << "# " << title << ", drawn by kvbench report. To redraw by hand:\n"
            << "#   cd DIR/data && gnuplot -e \"set terminal pngcairo size 1500,960 font ',19'; "
            << "set output '../" << name << ".png'; keyfont=',16'; labelfont=',14'\" " << name
            << ".gp\n"
            << kPreamble;
    return p;
  }

  // A plot with nothing to show still renders, saying why, so the report keeps its shape.
  void empty_plot(Plot& p, const std::string& why) {
    p.empty = true;
    script_ << "unset key\nunset border\nunset tics\nunset grid\nset xrange [0:1]\n"
               "set yrange [0:1]\nset label 1 \""
            << title_safe(why) << "\" at 0.5,0.5 center noenhanced\nplot 2 notitle\n";
  }

  void finish(const Plot& p) {
    write_file_atomically(data_dir_ + "/" + p.name + ".gp", script_.str(), "--out");
  }

  void render(const Plot& p) {
    const std::string body = data_dir_ + "/" + p.name + ".gp";
    const struct {
      const char* ext;
      const char* terminal;
      std::string out;
    } outputs[] = {
        {"svg",
         "svg size 1000,640 dynamic enhanced font 'DejaVu Sans,13' background rgb 'white'\n"
         "keyfont = ',11'\nlabelfont = ',10'",
         p.svg},
        {"png",
         "pngcairo size 1500,960 enhanced font 'DejaVu Sans,19' background rgb 'white'\n"
         "keyfont = ',16'\nlabelfont = ',14'",
         p.png},
    };
    for (const auto& o : outputs) {
      // gnuplot writes a temporary file beside the plot, renamed over it once complete.
      AtomicOutput plot(o.out, "--out");
      const std::string wrapper = data_dir_ + "/" + p.name + "." + o.ext + ".gp";
      {
        std::ofstream w(wrapper);
        w << "set terminal " << o.terminal << "\nset output '" << plot.temp_path() << "'\ncd '"
          << data_dir_ << "'\nload '" << p.name << ".gp'\nunset output\n";
      }
      const std::string log = data_dir_ + "/" + p.name + "." + o.ext + ".log";
      const int rc = run_gnuplot(wrapper, log);
      if (rc == 127) require_gnuplot();
      require(rc == 0, "report: gnuplot failed drawing ", p.name, ".", o.ext, " (exit ", rc,
              "): ", read_text(log), " (script ", body, ")");
      require(fs::exists(plot.temp_path()) && fs::file_size(plot.temp_path()) > 0,
              "report: gnuplot wrote no ", o.out, ": ", read_text(log));
      require(complete_plot(plot.temp_path(), o.ext), "report: gnuplot wrote an incomplete ",
              o.out, " (", fs::file_size(plot.temp_path()),
              " bytes, no end marker: a full disk or a file size limit?); the old one is kept");
      plot.commit();
      // Kept only when gnuplot failed; the body script and data stay for redrawing.
      fs::remove(wrapper);
      fs::remove(log);
    }
  }

  // ---- 1. scaling -------------------------------------------------------------------
  Plot scaling() {
    Plot p = start("scaling", "1. Generation time (the T decode steps) against T",
                   "Log-log: a cost growing as T^b is a straight line of slope b. Points are "
                   "measured seconds of the T decode steps of a generation (creating the "
                   "sequence is timed apart and not included, unless the bench output is "
                   "older than its setup_seconds counter), solid lines the fits "
                   "log t = a + b log T (b and R^2 in the key); grey dashed guides have slopes "
                   "1 (T) and 2 (T^2). Below: the local exponent between neighbouring T; a "
                   "cache that stays near 1 and then climbs towards 2 has changed regime "
                   "(dotted line: where the op-count model puts the change).");
    std::vector<std::string> curves, locals;
    double t0 = 0, y0 = 0, t1 = 0, lmin = 0, lmax = 0;
    for (const auto& s : a_.generation) {
      if (s.sizes.empty()) continue;
      const std::string name = "gen_" + file_safe(s.impl);
      std::vector<std::vector<double>> rows;
      for (std::size_t i = 0; i < s.sizes.size(); ++i) {
        rows.push_back({s.sizes[i], s.seconds[i], s.time_fit ? s.time_fit->at(s.sizes[i]) : s.seconds[i]});
      }
      write_data(name, "T seconds fitted_seconds", rows);
      std::string title = title_safe(s.impl);
      if (s.time_fit) {
        title += ": b = " + fixed(s.time_fit->exponent, 2) + ", R² = " + fixed(s.time_fit->r2, 3);
      }
      const std::string c = palette_.color(s.impl);
      curves.push_back("'" + data_ref(name) + "' using 1:2 with points pt 7 ps 1.1 lc " + c +
                       " title \"" + title + "\"");
      if (s.time_fit) {
        curves.push_back("'" + data_ref(name) + "' using 1:3 with lines lw 2 lc " + c + " notitle");
      }
      if (!s.local.empty()) {
        std::vector<std::vector<double>> lrows;
        for (const auto& l : s.local) {
          lrows.push_back({std::sqrt(l.x_from * l.x_to), l.exponent});
          lmin = std::min(lmin, l.exponent);
          lmax = std::max(lmax, l.exponent);
        }
        write_data("local_" + file_safe(s.impl), "T_geometric_middle local_exponent", lrows);
        locals.push_back("'" + data_ref("local_" + file_safe(s.impl)) +
                         "' using 1:2 with linespoints pt 7 lw 2 lc " + c + " title \"" +
                         title_safe(s.impl) + "\"");
      }
      if (t0 == 0 || s.sizes.front() < t0) t0 = s.sizes.front();
      if (y0 == 0 || s.seconds.front() < y0) y0 = s.seconds.front();
      t1 = std::max(t1, s.sizes.back());
    }
    if (curves.empty()) {
      empty_plot(p, "no generation benchmarks in this bench output");
      finish(p);
      return p;
    }
    // Guides start below the fastest first point so that they do not hide data.
    const double g0 = y0 / 4;
    write_data("guides", "T slope_1 slope_2",
               {{t0, g0, g0}, {t1, g0 * (t1 / t0), g0 * (t1 / t0) * (t1 / t0)}});
    curves.push_back("'" + data_ref("guides") +
                     "' using 1:2 with lines dt 2 lw 1.5 lc rgb '#888888' title \"∝ T\"");
    curves.push_back("'" + data_ref("guides") +
                     "' using 1:3 with lines dt 3 lw 1.5 lc rgb '#888888' title \"∝ T²\"");
    script_ << "set multiplot title 'Generation time against T (log-log)'\n"
            << "set size 1,0.64\nset origin 0,0.34\nset lmargin 12\nset rmargin 4\n"
            << "set key inside right bottom\n"
            << "set logscale xy 2\nset format y '%g'\nset logscale y 10\n"
            << "set ylabel 'seconds per generation'\nset xlabel ''\n"
            << "set xrange [" << t0 / 1.3 << ":" << t1 * 1.3 << "]\n"
            << "plot " << join(curves) << "\n";
    script_ << "set size 1,0.34\nset origin 0,0\nunset logscale y\nset format y '%.1f'\n"
            << "set ylabel 'local exponent'\nset xlabel 'T (tokens generated)'\n"
            << "set yrange [" << std::min(0.0, lmin - 0.25) << ":" << std::max(3.0, lmax + 0.25)
            << "]\nset ytics -5,0.5,10\nset mytics 1\nunset key\n"
            << "set label 2 'local exponent between neighbouring T (colours as above); "
               "grey: 1 and 2' at graph 0.01, graph 0.92 font labelfont noenhanced\n";
    if (inside(a_.predicted_generation_crossover, t0, t1)) {
      script_ << "set arrow 1 from " << a_.predicted_generation_crossover
              << ", graph 0 to " << a_.predicted_generation_crossover
              << ", graph 1 nohead dt 3 lw 1.5 lc rgb '#444444'\n";
    }
    locals.push_back("1 with lines dt 2 lc rgb '#888888' title \"T\"");
    locals.push_back("2 with lines dt 3 lc rgb '#888888' title \"T²\"");
    script_ << "plot " << join(locals) << "\nunset multiplot\n";
    finish(p);
    return p;
  }

  // ---- 2. latency -------------------------------------------------------------------
  Plot latency() {
    Plot p = start("latency", "2. Per-token latency against position t",
                   "One decode step at position t (t tokens already cached), log-log. A cache "
                   "costs a constant (the projections) plus a part proportional to t (the "
                   "attention reads t keys and values); the curve bends from flat to slope 1 "
                   "where the two are equal (dotted line: the op-count model's t). Without a "
                   "cache the step re-projects the whole prefix and grows as t from the start. "
                   "Dashed lines: the least-squares line time = a + b t. Dotted grey: the per-step "
                   "floor, the bytes a step must move (weights once + its K/V rows) over the "
                   "read-only reference with that many threads; it binds where those bytes are "
                   ">= 8x the last-level cache (below that, caches beat DRAM).");
    std::vector<std::string> curves;
    double lo = 0, hi = 0;
    for (const auto& s : a_.decode) {
      if (s.sizes.empty()) continue;
      const std::string name = "decode_" + file_safe(s.impl) + "_t" + std::to_string(s.threads);
      std::vector<std::vector<double>> rows;
      for (std::size_t i = 0; i < s.sizes.size(); ++i) {
        // A fitted value <= 0 has no place on a log axis: NaN leaves a gap.
        const double fitted = s.line ? s.line->at(s.sizes[i]) : s.seconds[i];
        rows.push_back({std::max(s.sizes[i], 1.0), s.seconds[i] * 1e6,
                        fitted > 0 ? fitted * 1e6 : std::nan("")});
      }
      write_data(name, "position microseconds line_fit_microseconds", rows);
      const std::string c = palette_.color(s.impl);
      const int dash = s.threads == 1 ? 1 : 4;
      const std::string title = s.impl + (d_.decode_threads(s.impl).size() > 1
                                              ? threads_text(s.threads)
                                              : "");
      curves.push_back("'" + data_ref(name) + "' using 1:2 with linespoints pt " +
                       std::to_string(s.threads == 1 ? 7 : 5) + " lw 2 dt " + std::to_string(dash) +
                       " lc " + c + " title \"" + title_safe(title) + "\"");
      if (s.line) {
        curves.push_back("'" + data_ref(name) + "' using 1:3 with lines dt 2 lw 1 lc " + c +
                         " notitle");
      }
      lo = lo == 0 ? s.sizes.front() : std::min(lo, s.sizes.front());
      hi = std::max(hi, s.sizes.back());
    }
    // The per-step floor (analysis.h FloorPoint): one line per thread count, the same for
    // every implementation with that many threads on the host.
    std::map<int, std::map<double, double>> floors;  // threads -> position -> seconds
    for (const auto& f : a_.floors) {
      if (f.device == "cpu") floors[f.threads][f.position] = f.floor_seconds;
    }
    for (const auto& [threads, points] : floors) {
      std::vector<std::vector<double>> rows;
      for (const auto& [position, seconds] : points) {
        rows.push_back({std::max(position, 1.0), seconds * 1e6});
      }
      const std::string name = "floor_t" + std::to_string(threads);
      write_data(name, "position floor_microseconds", rows);
      curves.push_back("'" + data_ref(name) + "' using 1:2 with lines dt 3 lw 2 lc rgb '" +
                       (threads == 1 ? "#333333" : "#888888") + "' title \"floor" +
                       title_safe(threads_text(threads)) + "\"");
    }
    if (curves.empty()) {
      empty_plot(p, "no decode-step benchmarks in this bench output");
    } else {
      if (inside(a_.predicted_decode_crossover, lo, hi)) {
        script_ << "set arrow 1 from " << a_.predicted_decode_crossover << ", graph 0 to "
                << a_.predicted_decode_crossover
                << ", graph 1 nohead dt 3 lw 1.5 lc rgb '#444444'\n"
                << "set label 1 'projections = attention (model)' at "
                << a_.predicted_decode_crossover << ", graph 0.04 left offset 0.5,0 font labelfont\n";
      }
      script_ << "set title 'Decode-step latency against position t (log-log)'\n"
              << "set logscale x 2\nset logscale y 10\nset format y '%g'\n"
              << "set xrange [" << std::max(lo, 1.0) / 1.3 << ":" << hi * 1.3 << "]\n"
              << "set xlabel 'position t (tokens already cached)'\n"
              << "set ylabel 'microseconds per decode step'\n"
              << "plot " << join(curves) << "\n";
    }
    finish(p);
    return p;
  }

  // ---- 3. speedup -------------------------------------------------------------------
  Plot speedup() {
    Plot p = start("speedup", "3. Speedup of the cache over no cache, against T",
                   "Time of a whole generation without a cache divided by the time with one "
                   "(points), beside the ratio of their FLOPs computed from the op counters "
                   "(dashed): K/V projection rows x 4 H_kv d d_model, dot products x 4d, plus "
                   "the Q and O projections of each token. Where the two agree, the cost model "
                   "explains the measured times; the target asks for agreement within 25%.");
    std::vector<std::string> curves;
    std::vector<const Speedup*> analytic_drawn;
    double lo = 0, hi = 0;
    for (const auto& sp : a_.speedups) {
      const std::string name = "speedup_" + file_safe(sp.cached);
      std::vector<std::vector<double>> rows;
      for (const auto& pt : sp.points) rows.push_back({pt.tokens, pt.measured, pt.analytic});
      write_data(name, "T measured_ratio analytic_ratio", rows);
      const std::string c = palette_.color(sp.cached);
      curves.push_back("'" + data_ref(name) + "' using 1:2 with linespoints pt 7 lw 2 lc " + c +
                       " title \"" + title_safe(sp.baseline + " / " + sp.cached + " measured") +
                       "\"");
      // Caches with the same op counts share one analytic line.
      bool drawn = false;
      for (const auto& other : analytic_drawn) drawn = drawn || same_ratios(*other, sp);
      if (!drawn) {
        analytic_drawn.push_back(&sp);
        curves.push_back("'" + data_ref(name) + "' using 1:3 with lines dt 2 lw 2 lc " +
                         (a_.speedups.size() > 1 ? std::string("rgb '#000000'") : c) +
                         " title \"" + title_safe(sp.baseline + " / cache, analytic (op counts)") +
                         "\"");
      }
      lo = lo == 0 ? sp.points.front().tokens : std::min(lo, sp.points.front().tokens);
      hi = std::max(hi, sp.points.back().tokens);
    }
    if (curves.empty()) {
      empty_plot(p, "needs generations of naive and a cache at common T");
    } else {
      script_ << "set title 'Speedup naive / cached against T'\n"
              << "set logscale x 2\nset logscale y 10\nset format y '%g'\n"
              << "set xrange [" << lo / 1.3 << ":" << hi * 1.3 << "]\n"
              << "set xlabel 'T (tokens generated)'\nset ylabel 'time ratio (x)'\n"
              << "plot " << join(curves) << "\n";
    }
    finish(p);
    return p;
  }

  // ---- 4. memory --------------------------------------------------------------------
  Plot memory() {
    Plot p = start("memory", "4. Bytes held against T",
                   "Bytes of cached state after a generation of T tokens (the bytes_held "
                   "counter), log-log, beside the formula 2 L H_kv d T sizeof(element) for a "
                   "K/V cache (black line). A no-cache decoder holds its layer inputs instead "
                   "(L T d_model x 4 bytes).");
    std::vector<std::string> curves;
    double lo = 0, hi = 0, rows_max = 0;
    for (const auto& impl : d_.impls(BenchKind::generate)) {
      std::vector<std::vector<double>> rows;
      for (const Measurement* m : d_.series(BenchKind::generate, impl)) {
        if (m->has("bytes_held") && m->counter("bytes_held") > 0) {
          rows.push_back({static_cast<double>(m->id.size), m->counter("bytes_held")});
        }
      }
      if (rows.empty()) continue;
      write_data("memory_" + file_safe(impl), "T bytes_held", rows);
      // Caches hold the same bytes: shrinking markers of different shapes keep each visible.
      static const int shapes[] = {7, 5, 9, 13, 11, 15};
      const int k = static_cast<int>(curves.size());
      curves.push_back("'" + data_ref("memory_" + file_safe(impl)) + "' using 1:2 with points pt " +
                       std::to_string(shapes[k % 6]) + " ps " + fixed(std::max(0.6, 2.0 - 0.4 * k), 1) +
                       " lc " + palette_.color(impl) + " title \"" + title_safe(impl) + "\"");
      lo = lo == 0 ? rows.front()[0] : std::min(lo, rows.front()[0]);
      hi = std::max(hi, rows.back()[0]);
      for (const auto& r : rows) rows_max = std::max(rows_max, r[1]);
    }
    if (curves.empty() || !a_.has_config) {
      empty_plot(p, "no generation with a bytes_held counter in this bench output");
    } else {
      const double per_token = static_cast<double>(a_.config.kv_bytes_per_token());
      write_data("memory_formula", "T 2*L*H_kv*d*T*sizeof", {{lo, per_token * lo}, {hi, per_token * hi}});
      curves.push_back("'" + data_ref("memory_formula") +
                       "' using 1:2 with lines lw 2 lc rgb '#000000' title \"2 L H_kv d T × " +
                       std::to_string(dtype_size(a_.config.dtype)) + " B\"");
      script_ << "set title 'Bytes held against T (log-log)'\n"
              << "set logscale x 2\nset logscale y 2\n" << byte_tics(lo * per_token, hi * per_token, rows_max)
              << "set xrange [" << lo / 1.3 << ":" << hi * 1.3 << "]\n"
              << "set xlabel 'T (tokens held)'\nset ylabel 'bytes held'\n"
              << "plot " << join(curves) << "\n";
    }
    finish(p);
    return p;
  }

  // ---- 6. beam-search memory ---------------------------------------------------------
  Plot beam_memory() {
    Plot p = start("beam_memory", "6. Beam-search memory against the beam width",
                   "Peak bytes held over a beam search (the bytes_held_peak counter: a shared "
                   "prompt forked into W beams, decoded, pruned and re-forked), per "
                   "implementation, log scale; dashed: the bytes cpu_cached reserves (its "
                   "capacity per sequence). A block pool that shares forked blocks sits below "
                   "cpu_cached by the saving the Serving section states.");
    std::vector<std::string> curves;
    double lo = 0, hi = 0;
    std::vector<std::string> impls;
    for (const auto& b : a_.beam) {
      if (std::find(impls.begin(), impls.end(), b.impl) == impls.end()) impls.push_back(b.impl);
    }
    for (const auto& impl : impls) {
      std::vector<std::vector<double>> rows;
      for (const auto& b : a_.beam) {
        if (b.impl == impl) rows.push_back({static_cast<double>(b.width), b.held_peak, b.reserved_peak});
      }
      const std::string name = "beam_" + file_safe(impl);
      write_data(name, "width bytes_held_peak bytes_reserved_peak", rows);
      curves.push_back("'" + data_ref(name) + "' using 1:2 with linespoints pt 7 lw 2 lc " +
                       palette_.color(impl) + " title \"" + title_safe(impl) + " held\"");
      if (impl == "cpu_cached") {
        curves.push_back("'" + data_ref(name) + "' using 1:3 with linespoints pt 6 dt 2 lc " +
                         palette_.color(impl) + " title \"cpu_cached reserved\"");
      }
      for (const auto& r : rows) {
        if (r[1] > 0) lo = lo == 0 ? r[1] : std::min(lo, r[1]);
        hi = std::max({hi, r[1], impl == "cpu_cached" ? r[2] : 0.0});
      }
    }
    std::pair<int, int> widest = {a_.beam.front().width, a_.beam.front().width};
    for (const auto& b : a_.beam) {
      widest = {std::min(widest.first, b.width), std::max(widest.second, b.width)};
    }
    if (lo <= 0) {
      empty_plot(p, "no beam search with a bytes_held_peak counter in this bench output");
    } else {
      script_ << "set title 'Peak bytes held in beam search (log y)'\n"
              << "set logscale y 2\n" << byte_tics(lo, hi, hi)
              << "set xrange [" << std::max(0, widest.first - 2) << ":" << widest.second + 2
              << "]\nset xtics 2\nset mxtics 1\n"
              << "set xlabel 'beam width W'\nset ylabel 'bytes held (peak)'\n"
              << "plot " << join(curves) << "\n";
    }
    finish(p);
    return p;
  }

  // ---- 5. bandwidth -----------------------------------------------------------------
  Plot bandwidth() {
    Plot p = start("bandwidth", "5. K/V bytes read per second against t",
                   "K/V bytes the attention of one decode step reads (the kv_bytes_read counter) "
                   "divided by the step's time. Horizontal lines: this machine's single-thread "
                   "read-only streaming bandwidth (a vectorized sum; bytes read) and copy "
                   "bandwidth (memcpy; bytes read + written), measured in the same process over "
                   "buffers 4x the last-level cache; dash-dotted, the read-only bandwidth over a "
                   "buffer the size of the K/V at the long position (a working set of a few "
                   "caches' size still partly hits in the cache, the K/V as much as the buffer: "
                   "compare like with like). Dotted vertical line: the position where the K/V "
                   "equal the last-level cache; to its right they stream from memory. When an "
                   "implementation ran on a device (CUDA), green lines: that device's own "
                   "read-only (a reduction kernel) and copy (device to device; bytes read + "
                   "written) bandwidths, measured in the same run; the y axis is then logarithmic.");
    std::vector<std::string> curves;
    std::map<std::pair<std::string, int>, std::vector<std::vector<double>>> rows;
    double lo = 0, hi = 0;
    for (const auto& b : a_.bandwidth) {
      if (b.kv_bytes <= 0 || b.position <= 0) continue;
      rows[{b.impl, b.threads}].push_back({b.position, b.bytes_per_second / 1e9});
      lo = lo == 0 ? b.position : std::min(lo, b.position);
      hi = std::max(hi, b.position);
    }
    for (const auto& entry : rows) {
      const std::string name = "bandwidth_" + file_safe(entry.first.first) + "_t" +
                               std::to_string(entry.first.second);
      write_data(name, "position GB_per_second", entry.second);
      const std::string title = entry.first.first +
                                (d_.decode_threads(entry.first.first).size() > 1
                                     ? threads_text(entry.first.second)
                                     : "");
      curves.push_back("'" + data_ref(name) + "' using 1:2 with linespoints pt " +
                       std::string(entry.first.second == 1 ? "7" : "5") + " lw 2 dt " +
                       std::string(entry.first.second == 1 ? "1" : "4") + " lc " +
                       palette_.color(entry.first.first) + " title \"" + title_safe(title) + "\"");
    }
    // The y axis reaches just above the highest line or point.
    double top = std::max(a_.read_bandwidth, a_.copy_bandwidth) / 1e9;
    for (const auto& entry : rows) {
      for (const auto& r : entry.second) top = std::max(top, r[1]);
    }
    if (curves.empty()) {
      empty_plot(p, "no decode-step benchmarks with a kv_bytes_read counter");
    } else {
      if (a_.read_bandwidth > 0) {
        curves.push_back(fixed(a_.read_bandwidth / 1e9, 3) +
                         " with lines lw 2 dt 2 lc rgb '#000000' title \"read-only " +
                         rate_text(a_.read_bandwidth) + " over " +
                         bytes_text(d_.bandwidth_buffer_bytes) + "\"");
        curves.push_back(fixed(a_.copy_bandwidth / 1e9, 3) +
                         " with lines lw 2 dt 3 lc rgb '#666666' title \"copy " +
                         rate_text(a_.copy_bandwidth) + " (read+write)\"");
        for (const auto& b : d_.bandwidth_by_size) {
          if (b.read <= 0 || b.bytes < a_.llc_bytes) continue;
          curves.push_back(fixed(b.read / 1e9, 3) +
                           " with lines lw 1.5 dt 4 lc rgb '#000000' title \"read-only " +
                           rate_text(b.read) + " over " + bytes_text(b.bytes) + "\"");
          top = std::max(top, b.read / 1e9);
        }
      }
      // A device's own ceilings (when a device implementation ran and they were measured):
      // the device implementations' points are set against these, not the host's lines.
      for (const auto& d : a_.device_bandwidth) {
        const std::string who = d.device + (d.name.empty() ? "" : " " + d.name);
        curves.push_back(fixed(d.read / 1e9, 3) +
                         " with lines lw 2 dt 2 lc rgb '#1b7837' title \"" +
                         title_safe(who + " read-only " + rate_text(d.read) + " over " +
                                    bytes_text(d.buffer_bytes)) + "\"");
        top = std::max(top, d.read / 1e9);
        if (d.copy > 0) {
          curves.push_back(fixed(d.copy / 1e9, 3) +
                           " with lines lw 2 dt 3 lc rgb '#5aae61' title \"" +
                           title_safe(who + " copy " + rate_text(d.copy) + " (read+write)") +
                           "\"");
          top = std::max(top, d.copy / 1e9);
        }
      }
      const double at = a_.has_config ? a_.llc_bytes / a_.config.kv_bytes_per_token() : 0;
      if (inside(at, lo, hi)) {
        script_ << "set arrow 1 from " << at << ", graph 0 to " << at
                << ", graph 1 nohead dt 3 lw 1.5 lc rgb '#444444'\n"
                << "set label 1 'K/V = last-level cache' at " << at
                << ", graph 0.95 right offset -0.5,0 font labelfont\n";
      }
      // A device's rates are ~100x the host's: with device lines the y axis is logarithmic,
      // down to the lowest point, so that the host's series stay readable.
      if (!a_.device_bandwidth.empty()) {
        double bottom = top;
        for (const auto& entry : rows) {
          for (const auto& r : entry.second) {
            if (r[1] > 0) bottom = std::min(bottom, r[1]);
          }
        }
        script_ << "set logscale y 10\nset yrange [" << bottom / 1.5 << ":" << top * 1.5 << "]\n";
      } else {
        script_ << "set yrange [0:" << top * 1.15 << "]\n";
      }
      // Rates fill the whole area (rising in cache, falling past it): the key goes outside.
      script_ << "set key outside right top\n"
              << "set title 'K/V bytes read per second against position t'\n"
              << "set logscale x 2\nset format y '%g'\n"
              << "set xrange [" << lo / 1.3 << ":" << hi * 1.3 << "]\n"
              << "set xlabel 'position t (tokens already cached)'\n"
              << "set ylabel 'GB/s (10^9 bytes per second)'\n"
              << "plot " << join(curves) << "\n";
    }
    finish(p);
    return p;
  }

  // Tics at powers of 4 bytes labelled in binary units, spanning [lo, max(hi, extra)].
  static std::string byte_tics(double lo, double hi, double extra) {
    hi = std::max(hi, extra);
    std::string tics;
    for (double b = 1; b <= hi * 4; b *= 4) {
      if (b * 4 < lo) continue;
      tics += (tics.empty() ? "" : ", ") + std::string("\"") + bytes_text(b) + "\" " + fixed(b, 0);
    }
    return "set ytics (" + tics + ")\nset mytics 2\n";
  }

  static bool same_ratios(const Speedup& a, const Speedup& b) {
    if (a.points.size() != b.points.size()) return false;
    for (std::size_t i = 0; i < a.points.size(); ++i) {
      if (a.points[i].tokens != b.points[i].tokens ||
          std::fabs(a.points[i].analytic / b.points[i].analytic - 1) > 1e-9) {
        return false;
      }
    }
    return true;
  }

  // Markers are drawn only inside the measured range (gnuplot would draw them outside the
  // axes otherwise).
  static bool inside(double x, double lo, double hi) { return x > 0 && x >= lo && x <= hi; }

  static std::string join(const std::vector<std::string>& parts) {
    std::string out;
    for (std::size_t i = 0; i < parts.size(); ++i) out += (i ? ", \\\n     " : "") + parts[i];
    return out;
  }

  const BenchData& d_;
  const Analysis& a_;
  std::string dir_, data_dir_;
  Palette palette_;
  std::ostringstream script_;
};

}  // namespace

void require_gnuplot() {
  const std::string log = (fs::temp_directory_path() / "kvbench-gnuplot-check.log").string();
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  std::string prog = "gnuplot", flag = "--version";
  std::vector<char*> argv = {prog.data(), flag.data(), nullptr};
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, "gnuplot", &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  int status = 1;
  if (rc == 0) waitpid(pid, &status, 0);
  require(rc == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "report: gnuplot was not found on PATH; kvbench draws its plots with gnuplot: "
          "install the Debian package gnuplot-nox (apt-get install gnuplot-nox)");
}

std::vector<Plot> draw_plots(const BenchData& data, const Analysis& analysis,
                             const std::string& dir) {
  require_gnuplot();
  return PlotWriter(data, analysis, dir).draw();
}

}  // namespace kvbench::reports
