// The analytic cost model: FLOPs from the op counters the implementations keep, so that a
// measured time ratio can be set beside the ratio the op counts predict.
//
// Per layer and token (multiply-add = 2 FLOPs; W is [rows, d_model]):
//   K and V projection of one row          4 * H_kv * d * d_model   counted in projection_rows
//   Q and O projections of the new token   4 * H * d * d_model      one per (token, layer)
//   one query head against one key         2d (q.k) + 2d (p * v)    counted in qk_dot_products
// A cache computes one projection row per token and layer, a cache-less decoder recomputes
// the whole prefix: T(T+1)/2 rows per layer over a T-token generation. Both make
// T(T+1)/2 dot products per query head and layer. Softmax, residual and bookkeeping are left
// out: they are O(H) and O(d_model) per key or token, small beside the terms above.
#pragma once

#include "harness/config.h"

namespace kvbench::reports {

struct OpCounts {
  double projection_rows = 0;  // (token, layer) pairs whose K and V rows were projected
  double dot_products = 0;     // (query head, key position, layer) triples
  double tokens = 0;           // tokens decoded (each gets Q and O projections per layer)
};

double flops_per_projection_row(const ModelConfig& c);   // 4 H_kv d d_model
double flops_per_dot_product(const ModelConfig& c);      // 4 d
double flops_per_token_layer(const ModelConfig& c);      // 4 H d d_model
// RETURNS: the FLOPs of `counts` under the model above.
double analytic_flops(const ModelConfig& c, const OpCounts& counts);

// Where a cached decoder's projections and attention cost the same (from the model above):
//   decode step at position t: L(4 H_kv d dm + 4 H d dm) = L H (t + 1) 4 d
//     -> t = d_model (H + H_kv) / H - 1
//   generation of T tokens: the local exponent of L T P + L H 4d T(T+1)/2 reaches 1.5 at
//     T = P / (2 H d) = 2 d_model (H + H_kv) / H   (P = 4 d d_model (H + H_kv))
double crossover_decode_position(const ModelConfig& c);
double crossover_generation_tokens(const ModelConfig& c);

}  // namespace kvbench::reports
