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
  // The positions whose outputs were computed, ascending; empty: all T of them.
  std::vector<int> rows;
  // The last layer's outputs: [T, d_model], or [rows.size(), d_model] when rows is set.
  std::vector<double> outputs;
  // K and V projections per (layer, kv_head), index layer * H_kv + kv_head: [T, d] each.
  std::vector<std::vector<double>> k;
  std::vector<std::vector<double>> v;
  // Largest |q.k| / sqrt(d) over all layers, heads and causal pairs (for robustness tests).
  double max_abs_score = 0;
};

// REQUIRES: inputs.size() == T * d_model for some T >= 0; `rows` ascending, each < T.
// RETURNS: the forward pass of `weights` over the T input rows (row t attends to rows <= t).
// K and V are rounded to the config's storage dtype right after their projection (fp16 /
// bf16, round_to_storage), the rest computed in `precision`: the exact model of a cache
// that stores that format (fp32 storage: nothing rounded).
// With `rows`, only those rows' outputs (the K/V of every layer and position are always
// computed): long contexts are then checked at sampled positions for O(T * rows) work in
// the last layer instead of O(T^2). max_abs_score then covers the computed pairs only.
ReferenceResult reference_forward(const ModelWeights& weights, const std::vector<float>& inputs,
                                  RefPrecision precision = RefPrecision::f64,
                                  const std::vector<int>& rows = {});

}  // namespace kvbench
