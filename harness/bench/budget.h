// The time budgets of `kvbench bench`: a series runs its sizes in increasing order and stops
// before a size whose one iteration is predicted to take longer than
// BenchOptions::budget_seconds, or (a decode step) whose preparation, prefilling the
// sequence to the next position, is predicted to take longer than prepare_budget_seconds.
// The predictions are here, apart from the sweep, so that their formulas are tested alone.
#pragma once

#include <utility>
#include <vector>

namespace kvbench::bench {

// Predicts one iteration's time at the next size from the sizes measured so far: a power law
// through the last point, with the larger of the measured local exponent and the series'
// asymptotic one (a generation is at least quadratic in T, a decode step at least linear in
// t), so that the budget is not overrun on the strength of a noisy small-size exponent.
class Predictor {
 public:
  explicit Predictor(double floor_exponent) : floor_(floor_exponent) {}
  void add(int size, double seconds) { points_.push_back({size, seconds}); }
  // RETURNS: the predicted seconds of one iteration at `size`; 0 before any point was added.
  double predict(int size) const;
  int last_size() const { return points_.empty() ? 0 : points_.back().first; }

 private:
  double floor_;
  std::vector<std::pair<int, double>> points_;
};

// Predicts the seconds of prefilling a decode-step sequence from position `done` to `next`,
// from the last prefill, which took `last_seconds` from position `last_from` to `done`: the
// prefill to position t costs ~t^2 (each token attends to those before it), so
//   last_seconds x (next^2 - done^2) / max(1, done^2 - last_from^2).
// RETURNS: 0 (no prediction: the size is not stopped) when last_from <= 0 (the first prefill,
// from an empty sequence, is not extrapolated from) or last_seconds <= 0.
double predict_preparation_seconds(double last_seconds, int last_from, int done, int next);

}  // namespace kvbench::bench
