// The model under test: a stack of causal multi-head attention layers.
//
// Per layer l (x is the layer input, one d_model row per token):
//   q = W_q x  [H * d]      k = W_k x  [H_kv * d]      v = W_v x  [H_kv * d]
//   per query head h (KV head g = h / (H / H_kv)):
//     o_h = sum_j softmax_j(q_h . k_{g,j} / sqrt(d)) v_{g,j}   over positions j <= t
//   y = x + W_o [o_0 .. o_{H-1}]   (the next layer's input)
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace kvbench {

// Storage element type of the K/V cache. Arithmetic is fp32 or wider in every impl.
enum class DType { f32, f16, bf16 };

// RETURNS: 4 for f32, 2 for f16 and bf16.
std::size_t dtype_size(DType dtype);
// RETURNS: "fp32", "fp16" or "bf16".
std::string dtype_name(DType dtype);
// RETURNS: `value` rounded to the nearest value of the storage format (ties to even):
// itself for f32 storage (a float64 value is NOT rounded to fp32: the reference keeps its
// precision); fp16 (10 stored mantissa bits, normal exponents -14..15, subnormals to 2^-24,
// overflow to +-Inf past 65504) or bf16 (7 mantissa bits, fp32's exponent range) otherwise.
// Written from the formats' definitions with frexp/ldexp/nearbyint (the implementations
// convert by bit manipulation: two independent roundings check each other).
double round_to_storage(double value, DType dtype);
// RETURNS: the unit roundoff of the storage format: half its machine epsilon
// (fp16 2^-11, bf16 2^-8, fp32 2^-24).
double storage_unit_roundoff(DType dtype);

// Accepts fp32|f32|float32, fp16|f16|float16|half, bf16|bfloat16. Throws Error otherwise.
DType parse_dtype(const std::string& name);

struct ModelConfig {
  int layers = 1;        // L >= 1
  int d_model = 64;      // width of a token row
  int heads = 4;         // H, query heads
  int kv_heads = 4;      // H_kv, key/value heads; H % H_kv == 0 (MHA: equal, MQA: 1)
  int head_dim = 16;     // d
  int capacity = 4096;   // most tokens one sequence may hold
  DType dtype = DType::f32;
  std::uint64_t seed = 1;  // the weights come from this seed

  // RETURNS: the config with these fields (validate() is not called: tests build bad ones).
  static ModelConfig make(int layers, int d_model, int heads, int kv_heads, int head_dim,
                          int capacity = 4096, DType dtype = DType::f32, std::uint64_t seed = 1);

  // REQUIRES nothing. Throws Error naming the first bad field and its value.
  void validate() const;

  int group_size() const { return heads / kv_heads; }       // query heads per KV head
  int q_width() const { return heads * head_dim; }          // H * d
  int kv_width() const { return kv_heads * head_dim; }      // H_kv * d

  // Bytes of K and V for one token over all layers: 2 * L * H_kv * d * sizeof(element).
  std::size_t kv_bytes_per_token() const;

  std::string describe() const;  // "L=2 d_model=64 H=4 H_kv=2 d=16 cap=4096 fp32 seed=1"
};

// Named shapes for benchmarks ("default", "llama2-7b", "llama3-8b", "gpt2").
struct NamedShape {
  std::string name;
  std::string description;
  ModelConfig config;
};
const std::vector<NamedShape>& named_shapes();
// Throws Error listing the known names when `name` is unknown.
const NamedShape& find_shape(const std::string& name);

}  // namespace kvbench
