// Fits against data whose answer is known exactly.
#include <gtest/gtest.h>

#include <cmath>

#include "harness/error.h"
#include "harness/fit.h"

namespace kvbench {
namespace {

std::vector<double> powers_of_two(int from, int to) {
  std::vector<double> x;
  for (int v = from; v <= to; v *= 2) x.push_back(v);
  return x;
}

TEST(PowerFit, ExactQuadraticGivesExponentTwoAndRSquaredOne) {
  const auto x = powers_of_two(16, 4096);
  std::vector<double> y;
  for (double v : x) y.push_back(3 * v * v);
  const PowerFit f = fit_power_law(x, y);
  // Exact data: the only error is rounding in ~10 log/sum operations on doubles.
  EXPECT_NEAR(f.exponent, 2.0, 1e-12);
  EXPECT_NEAR(std::exp(f.intercept), 3.0, 1e-10);
  EXPECT_NEAR(f.r2, 1.0, 1e-12);
  EXPECT_EQ(f.points, static_cast<int>(x.size()));
  EXPECT_NEAR(f.at(100), 3e4, 1e-6);
}

TEST(PowerFit, InterceptIsFittedNotForcedThroughOrigin) {
  // y = 5 x^1.5: a fit without intercept on logs would have to bend the exponent to match
  // the prefactor; with it the exponent comes out exactly.
  const std::vector<double> x = {10, 20, 50, 100, 1000};
  std::vector<double> y;
  for (double v : x) y.push_back(5 * std::pow(v, 1.5));
  const PowerFit f = fit_power_law(x, y);
  EXPECT_NEAR(f.exponent, 1.5, 1e-12);
  EXPECT_NEAR(std::exp(f.intercept), 5.0, 1e-10);
}

TEST(PowerFit, RSquaredDropsForScatteredData) {
  // Alternating factors of 2 around x^1: the best exponent is still near 1, but the logs
  // deviate from the line by +-log 2, so R^2 is clearly below 1.
  const auto x = powers_of_two(1, 256);
  std::vector<double> y;
  for (std::size_t i = 0; i < x.size(); ++i) y.push_back(x[i] * (i % 2 ? 2.0 : 0.5));
  const PowerFit f = fit_power_law(x, y);
  EXPECT_NEAR(f.exponent, 1.0, 0.1);
  EXPECT_LT(f.r2, 0.9);
  EXPECT_GT(f.r2, 0.0);
}

TEST(PowerFit, FlatDataHasExponentZeroAndRSquaredOne) {
  const PowerFit f = fit_power_law({1, 2, 4}, {7, 7, 7});
  EXPECT_NEAR(f.exponent, 0.0, 1e-12);
  EXPECT_EQ(f.r2, 1.0);
}

TEST(PowerFit, RejectsBadInputNamingIt) {
  EXPECT_THROW(fit_power_law({1}, {1}), Error);
  EXPECT_THROW(fit_power_law({1, 2}, {1}), Error);
  EXPECT_THROW(fit_power_law({1, 2}, {1, 0}), Error);
  EXPECT_THROW(fit_power_law({1, -2}, {1, 1}), Error);
  EXPECT_THROW(fit_power_law({4, 4}, {1, 2}), Error);
  EXPECT_THROW(fit_power_law({1, 2}, {1, NAN}), Error);
  try {
    fit_power_law({1, 2, 3}, {1, 2, -3});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("point 2"), std::string::npos) << e.what();
  }
}

TEST(LineFit, ExactLine) {
  const LineFit f = fit_line({0, 1, 2, 10}, {5, 7, 9, 25});
  EXPECT_NEAR(f.slope, 2.0, 1e-12);
  EXPECT_NEAR(f.intercept, 5.0, 1e-12);
  EXPECT_NEAR(f.r2, 1.0, 1e-12);
}

TEST(LocalExponents, ShowTheChangeOfRegime) {
  // y = T + T^2 / 1024: slope 1 well below 1024, slope 2 well above.
  const auto x = powers_of_two(1, 1 << 20);
  std::vector<double> y;
  for (double v : x) y.push_back(v + v * v / 1024);
  const auto local = local_exponents(x, y);
  ASSERT_EQ(local.size(), x.size() - 1);
  EXPECT_NEAR(local.front().exponent, 1.0, 0.002);
  EXPECT_NEAR(local.back().exponent, 2.0, 0.002);
  for (std::size_t i = 1; i < local.size(); ++i) {
    EXPECT_GT(local[i].exponent, local[i - 1].exponent) << "monotone for this curve";
  }
  // The exact local exponent of T + T^2/c is (1 + 2u) / (1 + u), u = T / c; it is 1.5 at
  // T = c. The crossing estimated from neighbouring pairs lands within a factor 2**0.5.
  const double at = first_crossing(local, 1.5);
  EXPECT_GT(at, 1024 / std::sqrt(2.0));
  EXPECT_LT(at, 1024 * std::sqrt(2.0));
  EXPECT_LT(first_crossing(local, 2.5), 0);
  EXPECT_EQ(first_crossing(local, 0.5), 1);
}

TEST(LocalExponents, ExactPowerLaw) {
  const auto local = local_exponents({2, 4, 16}, {8, 64, 4096});
  ASSERT_EQ(local.size(), 2u);
  EXPECT_NEAR(local[0].exponent, 3.0, 1e-12);
  EXPECT_NEAR(local[1].exponent, 3.0, 1e-12);
  EXPECT_EQ(local[1].x_from, 4);
  EXPECT_EQ(local[1].x_to, 16);
  EXPECT_THROW(local_exponents({2, 2}, {1, 1}), Error);
  EXPECT_THROW(local_exponents({2, 1}, {1, 1}), Error);
}

}  // namespace
}  // namespace kvbench

namespace kvbench {
namespace {

TEST(LineFit, RelativeFitWeighsSmallAndLargeSizesAlike) {
  // y = 50 + 0.1 x exactly at x spanning 16..32768: both fits are exact.
  std::vector<double> x, y;
  for (double v = 16; v <= 32768; v *= 2) {
    x.push_back(v);
    y.push_back(50 + 0.1 * v);
  }
  const LineFit r = fit_line_relative(x, y);
  EXPECT_NEAR(r.intercept, 50, 1e-9);
  EXPECT_NEAR(r.slope, 0.1, 1e-12);
  EXPECT_NEAR(r.r2, 1, 1e-12);
  // 10% noise on the largest point only (+333 on 3327): the plain fit, which follows the
  // largest y, drops its intercept to 31.5 (-37%); the relative fit, where that point weighs
  // 1/3327^2, keeps it at 49.7 (-0.6%). (Figures from numpy.linalg.lstsq on the same data.)
  y.back() *= 1.1;
  EXPECT_NEAR(fit_line(x, y).intercept, 31.534, 0.01);
  EXPECT_NEAR(fit_line_relative(x, y).intercept, 49.707, 0.01);
  EXPECT_THROW(fit_line_relative({1, 2}, {1, 0}), Error);
}

}  // namespace
}  // namespace kvbench
