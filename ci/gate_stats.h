// Statistics the gate needs: a power-law fit for the scaling exponents and the Mann-Whitney
// U test for the (optional) wall-clock check.
#pragma once

#include <vector>

namespace kvbench::gate {

// TEMPORARY: reports/fit.h (branch `bench`) provides the same fit as
// kvbench::reports::fit_power_law; the gate switches to it once it lands on main.
struct PowerFit {
  double intercept = 0;  // a (natural log): y ~ exp(a) x^b
  double exponent = 0;   // b
  double r2 = 0;         // of the fit on logs
};

// REQUIRES: x.size() == y.size() >= 2; every x, y > 0; not all x equal.
// RETURNS: least squares log y = a + b log x. Throws Error otherwise.
PowerFit fit_power_law(const std::vector<double>& x, const std::vector<double>& y);

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
