// The projection kernel alone: the four-row path a decode step takes (n = 1) must give the
// same bits as one dot product per row for every width (tails included), and project_rows
// must write every row of its range once, and nothing else, for every row count (rows left
// over after the groups of four).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "harness/weights.h"
#include "impls/cpu_kernels.h"

namespace kvbench::kernels {
namespace {

TEST(CpuKernels, FourRowDotsAreBitIdenticalToOneRowDots) {
  InputStream in(7);
  for (int n : {1, 7, 8, 9, 16, 23, 64, 100}) {
    const std::vector<float> w = in.rows(4, n), x = in.rows(1, n);
    float out[4];
    dot_rows4(w.data(), w.data() + n, w.data() + 2 * n, w.data() + 3 * n, x.data(), n, out);
    for (int k = 0; k < 4; ++k) {
      const float one = dot(w.data() + k * n, x.data(), n);
      EXPECT_EQ(std::memcmp(&out[k], &one, sizeof one), 0) << "n " << n << " row " << k;
    }
  }
}

TEST(CpuKernels, SingleInputProjectionCoversEveryRowOnce) {
  InputStream in(11);
  for (int rows : {1, 3, 4, 5, 11}) {
    const int cols = 37;
    const std::vector<float> W = in.rows(rows + 2, cols), x = in.rows(1, cols);
    // Rows [1, rows + 1) of W: an offset start and a leftover after the groups of four.
    std::vector<float> y(rows + 2, -1.0f), acc(rows + 2, 0.5f);
    project_rows(W.data(), cols, 1, rows + 1, x.data(), cols, 1, y.data(), rows + 2, false);
    project_rows(W.data(), cols, 1, rows + 1, x.data(), cols, 1, acc.data(), rows + 2, true);
    EXPECT_EQ(y[0], -1.0f);
    EXPECT_EQ(y[rows + 1], -1.0f);
    for (int r = 1; r <= rows; ++r) {
      // project_rows runs its x86-64-v3 clone (FMA contraction) where this test's own code
      // is baseline, so the two float sums of `cols` products differ by rounding only: each
      // is within cols u sum|w x| of the exact value (u = 2^-24), so they are within twice
      // that of each other (plus one rounding of the + 0.5 when accumulating).
      double exact = 0, magnitude = 0;
      for (int e = 0; e < cols; ++e) {
        exact += static_cast<double>(W[r * cols + e]) * x[e];
        magnitude += std::fabs(static_cast<double>(W[r * cols + e]) * x[e]);
      }
      const double u = std::ldexp(1.0, -24), bound = 2 * cols * u * magnitude;
      EXPECT_NEAR(y[r], exact, bound) << rows << " rows, row " << r;
      EXPECT_NEAR(acc[r], 0.5 + exact, bound + u * (0.5 + std::fabs(exact)))
          << rows << " rows, row " << r;
    }
  }
}

}  // namespace
}  // namespace kvbench::kernels
