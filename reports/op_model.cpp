#include "reports/op_model.h"

namespace kvbench::reports {

double flops_per_projection_row(const ModelConfig& c) {
  return 4.0 * c.kv_heads * c.head_dim * static_cast<double>(c.d_model);
}

double flops_per_dot_product(const ModelConfig& c) { return 4.0 * c.head_dim; }

double flops_per_token_layer(const ModelConfig& c) {
  return 4.0 * c.heads * c.head_dim * static_cast<double>(c.d_model);
}

double analytic_flops(const ModelConfig& c, const OpCounts& n) {
  return n.projection_rows * flops_per_projection_row(c) +
         n.dot_products * flops_per_dot_product(c) +
         n.tokens * c.layers * flops_per_token_layer(c);
}

double crossover_decode_position(const ModelConfig& c) {
  return static_cast<double>(c.d_model) * (c.heads + c.kv_heads) / c.heads - 1.0;
}

double crossover_generation_tokens(const ModelConfig& c) {
  return 2.0 * c.d_model * (c.heads + c.kv_heads) / c.heads;
}

}  // namespace kvbench::reports
