#include "harness/weights.h"

#include <cmath>

namespace kvbench {

std::uint64_t InputStream::next_u64() {
  // splitmix64 (Steele, Lea, Flood 2014): fixed arithmetic, identical on every platform.
  std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

float InputStream::next_uniform(float scale) {
  // 24 random bits -> exactly representable float in [0, 1), then to [-1, 1).
  const float unit = static_cast<float>(next_u64() >> 40) * (1.0f / 16777216.0f);
  return scale * (2.0f * unit - 1.0f);
}

std::vector<float> InputStream::rows(int n, int width, float scale) {
  std::vector<float> out(static_cast<std::size_t>(n) * static_cast<std::size_t>(width));
  for (float& x : out) x = next_uniform(scale);
  return out;
}

namespace {
std::vector<float> matrix(InputStream& rng, int rows, int cols) {
  const float bound = std::sqrt(3.0f / static_cast<float>(cols));
  return rng.rows(rows, cols, bound);
}
}  // namespace

std::shared_ptr<const ModelWeights> ModelWeights::from_seed(const ModelConfig& config) {
  config.validate();
  auto weights = std::make_shared<ModelWeights>();
  weights->config = config;
  InputStream rng(config.seed * 0x2545F4914F6CDD1Dull + 0x1234567ull);
  for (int l = 0; l < config.layers; ++l) {
    LayerWeights w;
    w.wq = matrix(rng, config.q_width(), config.d_model);
    w.wk = matrix(rng, config.kv_width(), config.d_model);
    w.wv = matrix(rng, config.kv_width(), config.d_model);
    w.wo = matrix(rng, config.d_model, config.q_width());
    weights->layers.push_back(std::move(w));
  }
  return weights;
}

}  // namespace kvbench
