// Fits for scaling reports and the regression gate (core: plain C++, no LibTorch).
//
// Google Benchmark 1.7.1 fits time = c * g(N) with no constant term and picks g among fixed
// curves; kvbench instead fits a power law with an intercept on logs,
//     log y = a + b log x,
// so the exponent b is measured rather than chosen, and gives R^2 of that fit. Local
// exponents between neighbouring sizes show where a cost changes regime (e.g. cached
// decoding going from T to T^2 once the attention outweighs the projections).
#pragma once

#include <vector>

namespace kvbench {

struct PowerFit {
  double intercept = 0;  // a (natural log): y ~ exp(a) x^b
  double exponent = 0;   // b
  double r2 = 0;         // of the fit on logs; 1 when the logs lie on a line
  int points = 0;
  double at(double x) const;  // exp(a) x^b
};

// REQUIRES: x.size() == y.size() >= 2; every x, y > 0 and finite; not all x equal.
// RETURNS: the least-squares fit of log y = a + b log x. R^2 = 1 - SS_res / SS_tot, and 1
// when SS_tot is 0 (all y equal: the flat line fits exactly).
// Throws Error naming the bad input otherwise.
PowerFit fit_power_law(const std::vector<double>& x, const std::vector<double>& y);

struct LineFit {
  double intercept = 0;  // y ~ intercept + slope x
  double slope = 0;
  double r2 = 0;
  int points = 0;
  double at(double x) const { return intercept + slope * x; }
};

// REQUIRES: as fit_power_law, but values may be <= 0. RETURNS: least squares y = a + b x.
LineFit fit_line(const std::vector<double>& x, const std::vector<double>& y);

// REQUIRES: as fit_power_law (y > 0). RETURNS: y = a + b x minimizing the squared relative
// error sum ((y_i - a - b x_i) / y_i)^2, so that sizes spanning decades weigh alike (an
// unweighted fit is decided by the largest y alone). r2 is the weighted coefficient of
// determination, 1 - sum w r^2 / sum w (y - ybar_w)^2 with w = 1 / y^2.
LineFit fit_line_relative(const std::vector<double>& x, const std::vector<double>& y);

struct LocalExponent {
  double x_from = 0, x_to = 0;  // neighbouring sizes
  double exponent = 0;          // log(y_to / y_from) / log(x_to / x_from)
};

// REQUIRES: x strictly increasing; every x, y > 0. RETURNS: one per neighbouring pair.
std::vector<LocalExponent> local_exponents(const std::vector<double>& x,
                                           const std::vector<double>& y);

// RETURNS: the x (log-interpolated between the two sizes of the first pair whose local
// exponent is >= `level`, placed at the geometric middle of each pair) where the local
// exponent first reaches `level`; a negative number when it never does; the smallest x
// when it is already there at the first pair.
double first_crossing(const std::vector<LocalExponent>& exponents, double level);

}  // namespace kvbench

// The fits lived in reports/ (namespace kvbench::reports) before they moved to core; the
// reports and the gate still name them reports::..., which these declarations keep valid.
namespace kvbench::reports {
using kvbench::first_crossing;
using kvbench::fit_line;
using kvbench::fit_line_relative;
using kvbench::fit_power_law;
using kvbench::LineFit;
using kvbench::local_exponents;
using kvbench::LocalExponent;
using kvbench::PowerFit;
}  // namespace kvbench::reports
