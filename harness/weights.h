// Model weights, drawn deterministically from ModelConfig::seed so that every
// implementation and the reference see the same model.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "harness/config.h"

namespace kvbench {

// Row-major matrices; y = W x means y[r] = sum_c W[r * cols + c] x[c].
struct LayerWeights {
  std::vector<float> wq;  // [H * d, d_model]
  std::vector<float> wk;  // [H_kv * d, d_model]
  std::vector<float> wv;  // [H_kv * d, d_model]
  std::vector<float> wo;  // [d_model, H * d]
};

struct ModelWeights {
  ModelConfig config;
  std::vector<LayerWeights> layers;  // [L]

  // REQUIRES: config.validate() passes (it is called here).
  // RETURNS: weights uniform in +-sqrt(3 / fan_in) (variance 1 / fan_in), the same bits on
  // every platform for the same config (a splitmix64 stream; no std:: distributions).
  static std::shared_ptr<const ModelWeights> from_seed(const ModelConfig& config);
};

// A deterministic stream of floats for token inputs (tests, benchmarks): uniform in
// [-scale, scale], the same on every platform.
class InputStream {
 public:
  explicit InputStream(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next_u64();
  float next_uniform(float scale);                   // in [-scale, scale]
  std::vector<float> rows(int n, int width, float scale = 1.0f);  // [n, width]

 private:
  std::uint64_t state_;
};

}  // namespace kvbench
