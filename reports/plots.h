// The report's plots, drawn by gnuplot (Debian gnuplot-nox) from data files kvbench writes:
//   1 scaling    generation time (decode steps) against T, log-log, fitted lines, T and T^2 guides;
//                below it, the local exponent between neighbouring T
//   2 latency    decode-step time against position t
//   3 speedup    naive/cached time ratio against T beside the op-count ratio
//   4 memory     bytes held against T with 2 L H_kv d T sizeof(element)
//   5 bandwidth  K/V bytes read per second against t with the measured read-only and copy
//                bandwidths
//   6 beam_memory  peak bytes held in beam search against the width, beside cpu_cached's
//                reserved bytes (only when the bench output has beam benchmarks)
// Each plot is written as DIR/<name>.svg and DIR/<name>.png; its data and gnuplot script stay
// in DIR/data/ so that it can be redrawn or restyled by hand.
#pragma once

#include <string>
#include <vector>

#include "reports/analysis.h"
#include "reports/bench_data.h"

namespace kvbench::reports {

struct Plot {
  std::string name;     // "scaling"
  std::string title;    // "1. Generation time (the T decode steps) against T"
  std::string caption;  // how to read it
  std::string svg;      // DIR/<name>.svg
  std::string png;      // DIR/<name>.png
  bool empty = false;   // no data for it in this bench output (drawn with a note)
};

// Throws Error "gnuplot not found ... (Debian package gnuplot-nox)" unless `gnuplot` runs.
void require_gnuplot();

// REQUIRES: dir exists. Writes DIR/data/*.dat, *.gp and the SVG and PNG of every plot.
// Throws Error naming the plot and gnuplot's messages when gnuplot fails.
std::vector<Plot> draw_plots(const BenchData& data, const Analysis& analysis,
                             const std::string& dir);

}  // namespace kvbench::reports
