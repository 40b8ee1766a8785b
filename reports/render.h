// The report's documents: summary.md (verdicts, targets, fits; links the PNGs) and
// report.html (self-contained: the same plus every plot embedded as an SVG data URI, so it
// opens offline from anywhere), and fits.json (Analysis::to_json).
#pragma once

#include <string>
#include <vector>

#include "reports/analysis.h"
#include "reports/bench_data.h"
#include "reports/plots.h"

namespace kvbench::reports {

std::string render_markdown(const BenchData& data, const Analysis& analysis,
                            const std::vector<Plot>& plots);

// REQUIRES: every plot's SVG exists (it is read and embedded).
std::string render_html(const BenchData& data, const Analysis& analysis,
                        const std::vector<Plot>& plots);

// RETURNS: standard base64 (RFC 4648) of `bytes`, for data URIs.
std::string base64(const std::string& bytes);

struct ReportFiles {
  std::string html, markdown, fits;
  std::vector<Plot> plots;
};

// Everything `kvbench report FILE.json --out DIR` writes. Creates DIR. Throws Error naming
// the file or tool that failed.
ReportFiles write_report(const std::string& bench_json, const std::string& dir);

}  // namespace kvbench::reports
