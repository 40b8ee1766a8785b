#include "ci/gate_stats.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <utility>

#include "harness/error.h"

namespace kvbench::gate {

double median(std::vector<double> values) {
  require(!values.empty(), "median: no values");
  std::sort(values.begin(), values.end());
  const std::size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

namespace {

// RETURNS: P(U <= u) under the null hypothesis for samples of sizes m and n with no ties:
// the number of arrangements with U = k follows the recurrence
// c(m, n, k) = c(m - 1, n, k - n) + c(m, n - 1, k) (the largest value is an a or a b).
double exact_cdf(int m, int n, double u) {
  // counts[j][k]: arrangements of i a's and j b's with U = k, built up over i.
  const int max_u = m * n;
  std::vector<std::vector<double>> prev(static_cast<std::size_t>(n) + 1,
                                        std::vector<double>(static_cast<std::size_t>(max_u) + 1, 0.0));
  for (int j = 0; j <= n; ++j) prev[static_cast<std::size_t>(j)][0] = 1.0;  // i = 0: U = 0
  for (int i = 1; i <= m; ++i) {
    std::vector<std::vector<double>> cur = prev;
    for (auto& row : cur) std::fill(row.begin(), row.end(), 0.0);
    for (int j = 0; j <= n; ++j) {
      for (int k = 0; k <= max_u; ++k) {
        // The largest value is an a: it beats all j b's.
        double c = k - j >= 0 ? prev[static_cast<std::size_t>(j)][static_cast<std::size_t>(k - j)] : 0.0;
        // ... or a b.
        if (j > 0) c += cur[static_cast<std::size_t>(j - 1)][static_cast<std::size_t>(k)];
        cur[static_cast<std::size_t>(j)][static_cast<std::size_t>(k)] = c;
      }
    }
    prev = std::move(cur);
  }
  const std::vector<double>& counts = prev[static_cast<std::size_t>(n)];
  double total = 0, below = 0;
  for (int k = 0; k <= max_u; ++k) {
    total += counts[static_cast<std::size_t>(k)];
    if (k <= u + 1e-9) below += counts[static_cast<std::size_t>(k)];
  }
  return below / total;
}

}  // namespace

MannWhitney mann_whitney_u(const std::vector<double>& a, const std::vector<double>& b) {
  require(!a.empty() && !b.empty(), "mann_whitney_u: both samples need values (got ", a.size(),
          " and ", b.size(), ")");
  // Ranks of the pooled sample, ties sharing their mean rank.
  std::vector<std::pair<double, int>> pooled;  // (value, 0 for a / 1 for b)
  for (double v : a) pooled.emplace_back(v, 0);
  for (double v : b) pooled.emplace_back(v, 1);
  std::sort(pooled.begin(), pooled.end());
  const double m = static_cast<double>(a.size()), n = static_cast<double>(b.size());
  double rank_sum_a = 0, tie_term = 0;
  bool ties = false;
  for (std::size_t i = 0; i < pooled.size();) {
    std::size_t j = i;
    while (j < pooled.size() && pooled[j].first == pooled[i].first) ++j;
    const double t = static_cast<double>(j - i);
    const double mean_rank = (static_cast<double>(i + 1) + static_cast<double>(j)) / 2.0;
    for (std::size_t k = i; k < j; ++k) {
      if (pooled[k].second == 0) rank_sum_a += mean_rank;
    }
    if (t > 1) ties = true;
    tie_term += t * t * t - t;
    i = j;
  }
  MannWhitney result;
  result.u = rank_sum_a - m * (m + 1) / 2.0;
  const double mean = m * n / 2.0;
  if (!ties && a.size() <= 50 && b.size() <= 50) {
    const double tail = std::min(result.u, m * n - result.u);  // the symmetric smaller tail
    result.p_two_sided = std::min(1.0, 2.0 * exact_cdf(static_cast<int>(a.size()),
                                                       static_cast<int>(b.size()), tail));
    result.exact = true;
    return result;
  }
  const double total = m + n;
  const double variance = m * n / 12.0 * ((total + 1) - tie_term / (total * (total - 1)));
  if (variance <= 0) return result;  // every value equal: no evidence of a difference
  const double z = std::max(0.0, std::fabs(result.u - mean) - 0.5) / std::sqrt(variance);
  result.p_two_sided = std::min(1.0, std::erfc(z / std::sqrt(2.0)));
  return result;
}

}  // namespace kvbench::gate
