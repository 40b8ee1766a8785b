#include "harness/fit.h"

#include <cmath>

#include "harness/error.h"

namespace kvbench {

namespace {

void check_sizes(const char* what, const std::vector<double>& x, const std::vector<double>& y) {
  require(x.size() == y.size(), what, ": x has ", x.size(), " values but y has ", y.size());
  require(x.size() >= 2, what, ": needs at least 2 points, got ", x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    require(std::isfinite(x[i]) && std::isfinite(y[i]), what, ": point ", i, " (", x[i], ", ",
            y[i], ") is not finite");
  }
}

// Weighted least squares of y on x: minimises sum w_i (y_i - a - b x_i)^2; R^2 is
// 1 - (weighted residual sum) / (weighted sum of squares about the weighted mean). Unit
// weights (w empty) give the ordinary fit exactly (multiplying by 1.0 rounds nothing).
LineFit least_squares(const std::vector<double>& x, const std::vector<double>& y,
                      const std::vector<double>& w, const char* what) {
  const auto weight = [&w](std::size_t i) { return w.empty() ? 1.0 : w[i]; };
  double sw = 0, sx = 0, sy = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    sw += weight(i);
    sx += weight(i) * x[i];
    sy += weight(i) * y[i];
  }
  const double mx = sx / sw, my = sy / sw;
  double sxx = 0, sxy = 0, syy = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    sxx += weight(i) * (x[i] - mx) * (x[i] - mx);
    sxy += weight(i) * (x[i] - mx) * (y[i] - my);
    syy += weight(i) * (y[i] - my) * (y[i] - my);
  }
  require(sxx > 0, what, ": all x values are equal (", x.front(), "); no slope can be fitted");
  LineFit f;
  f.slope = sxy / sxx;
  f.intercept = my - f.slope * mx;
  f.points = static_cast<int>(x.size());
  double ss_res = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double r = y[i] - f.at(x[i]);
    ss_res += weight(i) * r * r;
  }
  // Relative to the data's scale, so that exact data with rounding noise still gives 1.
  f.r2 = syy > 0 ? 1.0 - ss_res / syy : 1.0;
  return f;
}

}  // namespace

double PowerFit::at(double x) const { return std::exp(intercept) * std::pow(x, exponent); }

PowerFit fit_power_law(const std::vector<double>& x, const std::vector<double>& y) {
  check_sizes("power-law fit", x, y);
  std::vector<double> lx, ly;
  for (std::size_t i = 0; i < x.size(); ++i) {
    require(x[i] > 0 && y[i] > 0, "power-law fit: point ", i, " (", x[i], ", ", y[i],
            ") is not positive; logs need x, y > 0");
    lx.push_back(std::log(x[i]));
    ly.push_back(std::log(y[i]));
  }
  const LineFit line = least_squares(lx, ly, {}, "power-law fit");
  PowerFit f;
  f.intercept = line.intercept;
  f.exponent = line.slope;
  f.r2 = line.r2;
  f.points = line.points;
  return f;
}

LineFit fit_line(const std::vector<double>& x, const std::vector<double>& y) {
  check_sizes("line fit", x, y);
  return least_squares(x, y, {}, "line fit");
}

LineFit fit_line_relative(const std::vector<double>& x, const std::vector<double>& y) {
  check_sizes("relative line fit", x, y);
  std::vector<double> w;  // 1 / y^2: each residual counted relative to its y
  for (std::size_t i = 0; i < x.size(); ++i) {
    require(y[i] > 0, "relative line fit: point ", i, " (", x[i], ", ", y[i],
            ") has y <= 0; relative errors need y > 0");
    w.push_back(1 / (y[i] * y[i]));
  }
  return least_squares(x, y, w, "relative line fit");
}

std::vector<LocalExponent> local_exponents(const std::vector<double>& x,
                                           const std::vector<double>& y) {
  require(x.size() == y.size(), "local exponents: x has ", x.size(), " values but y has ",
          y.size());
  std::vector<LocalExponent> out;
  for (std::size_t i = 0; i < x.size(); ++i) {
    require(x[i] > 0 && y[i] > 0 && std::isfinite(x[i]) && std::isfinite(y[i]),
            "local exponents: point ", i, " (", x[i], ", ", y[i], ") is not positive");
    if (i == 0) continue;
    require(x[i] > x[i - 1], "local exponents: x must increase, but x[", i, "] = ", x[i],
            " follows ", x[i - 1]);
    out.push_back({x[i - 1], x[i], std::log(y[i] / y[i - 1]) / std::log(x[i] / x[i - 1])});
  }
  return out;
}

double first_crossing(const std::vector<LocalExponent>& exponents, double level) {
  for (std::size_t i = 0; i < exponents.size(); ++i) {
    if (exponents[i].exponent < level) continue;
    const double mid = std::sqrt(exponents[i].x_from * exponents[i].x_to);
    if (i == 0) return exponents[0].x_from;
    const double prev_mid = std::sqrt(exponents[i - 1].x_from * exponents[i - 1].x_to);
    const double e0 = exponents[i - 1].exponent, e1 = exponents[i].exponent;
    const double f = (level - e0) / (e1 - e0);  // e1 >= level > e0, so f in (0, 1]
    return std::exp(std::log(prev_mid) + f * (std::log(mid) - std::log(prev_mid)));
  }
  return -1;
}

}  // namespace kvbench
