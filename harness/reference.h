// The reference: the model's forward pass over a whole sequence with an explicit causal
// mask, written from the formula with LibTorch in float64 (or float32, to measure what
// rounding alone costs at that precision). It shares no code with the implementations.
// LibTorch stays inside reference.cpp; this header exposes plain vectors only.
#pragma once

#include <vector>

#include "harness/weights.h"

namespace kvbench {

enum class RefPrecision { f64, f32 };

struct ReferenceResult {
  int tokens = 0;
  std::vector<double> outputs;               // [T, d_model], the last layer's outputs
  // K and V projections per (layer, kv_head), index layer * H_kv + kv_head: [T, d] each.
  std::vector<std::vector<double>> k;
  std::vector<std::vector<double>> v;
  // Largest |q.k| / sqrt(d) over all layers, heads and causal pairs (for robustness tests).
  double max_abs_score = 0;
};

// REQUIRES: inputs.size() == T * d_model for some T >= 0.
// RETURNS: the forward pass of `weights` over the T input rows (row t attends to rows <= t).
ReferenceResult reference_forward(const ModelWeights& weights, const std::vector<float>& inputs,
                                  RefPrecision precision = RefPrecision::f64);

}  // namespace kvbench
