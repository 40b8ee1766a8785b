#include "harness/bench/budget.h"

#include <algorithm>
#include <cmath>

namespace kvbench::bench {

double Predictor::predict(int size) const {
  if (points_.empty()) return 0;
  const auto& last = points_.back();
  double exponent = floor_;
  if (points_.size() >= 2) {
    const auto& prev = points_[points_.size() - 2];
    if (prev.second > 0 && last.second > 0 && last.first > prev.first) {
      exponent = std::max(exponent, std::log(last.second / prev.second) /
                                        std::log(static_cast<double>(last.first) / prev.first));
    }
  }
  return last.second * std::pow(static_cast<double>(size) / last.first, exponent);
}

double predict_preparation_seconds(double last_seconds, int last_from, int done, int next) {
  if (last_from <= 0 || last_seconds <= 0) return 0;
  const double p = last_from, q = next, d = done;
  return last_seconds * (q * q - d * d) / std::max(1.0, d * d - p * p);
}

}  // namespace kvbench::bench
