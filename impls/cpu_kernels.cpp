// cpu_kernels: the out-of-line kernels (see cpu_kernels.h).
#include "impls/cpu_kernels.h"

namespace kvbench {
namespace kernels {

KVBENCH_HOT void project_rows(const float* W, int cols, int r0, int r1, const float* X, std::size_t x_stride,
                  int n, float* Y, std::size_t y_stride, bool accumulate) {
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    const float* x = X + static_cast<std::size_t>(i) * x_stride;
    float* y = Y + static_cast<std::size_t>(i) * y_stride;
    for (int r = r0; r < r1; ++r) {
      float out[4];
      dot4(W + static_cast<std::size_t>(r) * cols, x, x + x_stride, x + 2 * x_stride,
           x + 3 * x_stride, cols, out);
      for (int k = 0; k < 4; ++k) {
        float& dst = y[k * y_stride + r];
        dst = accumulate ? dst + out[k] : out[k];
      }
    }
  }
  for (; i < n; ++i) {
    const float* x = X + static_cast<std::size_t>(i) * x_stride;
    float* y = Y + static_cast<std::size_t>(i) * y_stride;
    int r = r0;
    for (; r + 4 <= r1; r += 4) {  // four weight rows at once: four concurrent streams
      const float* w = W + static_cast<std::size_t>(r) * cols;
      float out[4];
      dot_rows4(w, w + cols, w + 2 * static_cast<std::size_t>(cols),
                w + 3 * static_cast<std::size_t>(cols), x, cols, out);
      for (int k = 0; k < 4; ++k) y[r + k] = accumulate ? y[r + k] + out[k] : out[k];
    }
    for (; r < r1; ++r) {
      const float out = dot(W + static_cast<std::size_t>(r) * cols, x, cols);
      y[r] = accumulate ? y[r] + out : out;
    }
  }
}

}  // namespace kernels
}  // namespace kvbench
