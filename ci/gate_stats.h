// Statistics the gate needs beyond the shared power-law fit (harness/fit.h, used for the
// scaling exponents): the median and the Mann-Whitney U test for the (optional) wall-clock
// check.
#pragma once

#include <vector>

namespace kvbench::gate {

// REQUIRES: non-empty. RETURNS: the median (mean of the middle two for an even count).
double median(std::vector<double> values);

struct MannWhitney {
  double u = 0;        // U of the first sample: pairs (a_i, b_j) with a_i > b_j, ties count 1/2
  double p_two_sided = 1;
  bool exact = false;  // exact distribution (no ties, n_a * n_b small) or normal approximation
};

// The two-sided Mann-Whitney U test of "a and b come from the same distribution" (what
// Google Benchmark's compare.py runs on repetitions). Exact p-value by counting rank sums
// when there are no ties and both samples have <= 50 values; otherwise the normal
// approximation with the tie correction and a continuity correction of 1/2.
// REQUIRES: both non-empty.
MannWhitney mann_whitney_u(const std::vector<double>& a, const std::vector<double>& b);

}  // namespace kvbench::gate
