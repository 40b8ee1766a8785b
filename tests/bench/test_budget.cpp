// The budget predictions a series stops on (budget.h), alone: the power law through the last
// point with the floor exponent or the steeper measured one, and the quadratic prefill.
#include <gtest/gtest.h>

#include <cmath>

#include "harness/bench/budget.h"

namespace kvbench::bench {
namespace {

TEST(Predictor, NothingMeasuredPredictsNothing) {
  const Predictor p(2.0);
  EXPECT_EQ(p.predict(1000), 0.0);
  EXPECT_EQ(p.last_size(), 0);
}

TEST(Predictor, OnePointUsesTheFloorExponent) {
  Predictor generation(2.0);  // a generation: at least quadratic in T
  generation.add(16, 0.5);
  EXPECT_DOUBLE_EQ(generation.predict(32), 0.5 * 4);
  EXPECT_DOUBLE_EQ(generation.predict(64), 0.5 * 16);
  EXPECT_EQ(generation.last_size(), 16);

  Predictor step(1.0);  // a decode step: at least linear in t
  step.add(100, 2e-3);
  EXPECT_DOUBLE_EQ(step.predict(300), 6e-3);
}

TEST(Predictor, ASteeperMeasuredExponentIsUsedFromTheLastPoint) {
  Predictor p(1.0);
  p.add(10, 1.0);
  p.add(20, 8.0);  // local exponent 3 > floor 1
  EXPECT_NEAR(p.predict(40), 64.0, 1e-9);
  p.add(40, 64.0 * 2);  // from 20 to 40: 16x, exponent 4, through the last point (40, 128)
  EXPECT_NEAR(p.predict(80), 128.0 * 16, 1e-9);
  EXPECT_EQ(p.last_size(), 40);
}

TEST(Predictor, AShallowerMeasuredExponentIsRaisedToTheFloor) {
  // Noisy small sizes can look flat (or faster at the larger size): the floor still holds.
  Predictor p(2.0);
  p.add(16, 1.0);
  p.add(32, 1.1);
  EXPECT_DOUBLE_EQ(p.predict(64), 1.1 * 4);
  p.add(64, 0.9);
  EXPECT_DOUBLE_EQ(p.predict(128), 0.9 * 4);
}

TEST(Predictor, ANonPositiveTimeFallsBackToTheFloor) {
  Predictor p(1.0);
  p.add(10, 0.0);
  p.add(20, 5.0);  // no exponent from a zero time: floor 1 through (20, 5)
  EXPECT_DOUBLE_EQ(p.predict(40), 10.0);
}

TEST(PreparationPrediction, IsQuadraticInThePosition) {
  // Last prefill 100 -> 200 took 3 s: (200^2 - 100^2) = 30000 units; 200 -> 400 is 120000.
  EXPECT_DOUBLE_EQ(predict_preparation_seconds(3.0, 100, 200, 400), 12.0);
  // Shorter next step: 200 -> 300 is 50000 units.
  EXPECT_DOUBLE_EQ(predict_preparation_seconds(3.0, 100, 200, 300), 5.0);
  // The general formula: last x (q^2 - d^2) / (d^2 - p^2).
  const double p = 64, d = 1024, q = 32768;
  EXPECT_NEAR(predict_preparation_seconds(0.25, 64, 1024, 32768),
              0.25 * (q * q - d * d) / (d * d - p * p), 1e-12);
}

TEST(PreparationPrediction, NothingToExtrapolateFromPredictsNothing) {
  EXPECT_EQ(predict_preparation_seconds(3.0, 0, 16, 64), 0.0);   // only the first prefill
  EXPECT_EQ(predict_preparation_seconds(0.0, 16, 64, 256), 0.0);  // no time measured
}

TEST(PreparationPrediction, AZeroLengthLastPrefillDividesByAtLeastOne) {
  // done == last_from: the denominator is clamped to 1 rather than dividing by zero.
  EXPECT_DOUBLE_EQ(predict_preparation_seconds(2.0, 10, 10, 20), 2.0 * (400 - 100));
}

}  // namespace
}  // namespace kvbench::bench
