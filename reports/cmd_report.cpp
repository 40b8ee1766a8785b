// `kvbench report FILE.json --out DIR`: turns a bench output into report.html, summary.md,
// fits.json and the plots (reports/render.h).
#include <iostream>
#include <memory>

#include "reports/cmd_report.h"
#include "harness/error.h"
#include "reports/render.h"

namespace kvbench::cli {

void add_report_command(CLI::App& app) {
  auto input = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>("report");
  auto* cmd = app.add_subcommand(
      "report",
      "Turn a `kvbench bench` output into a scaling report: DIR/report.html (self-contained,\n"
      "plots embedded), DIR/summary.md (verdicts and targets), DIR/fits.json (exponents, R^2,\n"
      "local exponents, targets), and each plot as SVG and PNG (drawn with gnuplot):\n"
      "scaling (generation time vs T with fits and local exponents), latency (decode step vs\n"
      "position), speedup (naive/cached vs the op-count ratio), memory (bytes held vs T),\n"
      "bandwidth (K/V bytes read per second vs the measured memory bandwidth).");
  cmd->add_option("FILE", *input, "Bench output (Google Benchmark JSON from kvbench bench)")
      ->required();
  cmd->add_option("--out", *out, "Output directory (created)")->capture_default_str();
  cmd->callback([input, out] {
    reports::ReportFiles files;
    try {
      files = reports::write_report(*input, *out);
    } catch (const nlohmann::json::exception& e) {
      // bench_data checks every field the report reads; a field read without that check
      // still names the file rather than surfacing as an internal error.
      fail("bench output '", *input, "': a field has an unexpected type or is missing (",
           e.what(), ")");
    }
    std::cout << "wrote " << files.html << "\n      " << files.markdown << "\n      "
              << files.fits << "\n";
    for (const auto& p : files.plots) {
      std::cout << "      " << p.svg << ", " << p.png << (p.empty ? "  (no data: note drawn)" : "")
                << "\n";
    }
  });
}

}  // namespace kvbench::cli
