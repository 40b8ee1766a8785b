#include "harness/config.h"

#include <algorithm>
#include <cmath>

#include <sstream>

#include "harness/error.h"

namespace kvbench {

std::size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::f32: return 4;
    case DType::f16: return 2;
    case DType::bf16: return 2;
  }
  fail("dtype_size: unknown dtype ", static_cast<int>(dtype));
}

double round_to_storage(double value, DType dtype) {
  if (dtype == DType::f32 || !std::isfinite(value) || value == 0.0) return value;
  const int mantissa_bits = dtype == DType::f16 ? 10 : 7;
  const int min_exponent = dtype == DType::f16 ? -14 : -126;  // of the normal numbers
  int e = 0;
  std::frexp(value, &e);  // |value| = f * 2^e, f in [0.5, 1): the leading bit is 2^(e-1)
  const int exponent = std::max(e - 1, min_exponent);  // subnormals share the last spacing
  const double spacing = std::ldexp(1.0, exponent - mantissa_bits);
  const double rounded = std::nearbyint(value / spacing) * spacing;  // FE_TONEAREST: ties even
  const double largest = dtype == DType::f16 ? 65504.0 : 3.3895313892515355e38;
  if (std::abs(rounded) > largest) return std::copysign(INFINITY, value);
  return rounded;
}

double storage_unit_roundoff(DType dtype) {
  switch (dtype) {
    case DType::f32: return std::ldexp(1.0, -24);
    case DType::f16: return std::ldexp(1.0, -11);
    case DType::bf16: return std::ldexp(1.0, -8);
  }
  fail("storage_unit_roundoff: unknown dtype ", static_cast<int>(dtype));
}

std::string dtype_name(DType dtype) {
  switch (dtype) {
    case DType::f32: return "fp32";
    case DType::f16: return "fp16";
    case DType::bf16: return "bf16";
  }
  fail("dtype_name: unknown dtype ", static_cast<int>(dtype));
}

DType parse_dtype(const std::string& name) {
  if (name == "fp32" || name == "f32" || name == "float32") return DType::f32;
  if (name == "fp16" || name == "f16" || name == "float16" || name == "half") return DType::f16;
  if (name == "bf16" || name == "bfloat16") return DType::bf16;
  fail("unknown dtype '", name, "' (expected fp32, fp16 or bf16)");
}

void ModelConfig::validate() const {
  require(layers >= 1, "model config: layers must be >= 1, got ", layers);
  require(d_model >= 1, "model config: d_model must be >= 1, got ", d_model);
  require(heads >= 1, "model config: heads must be >= 1, got ", heads);
  require(kv_heads >= 1, "model config: kv_heads must be >= 1, got ", kv_heads);
  require(heads % kv_heads == 0, "model config: heads (", heads,
          ") must be a multiple of kv_heads, got kv_heads=", kv_heads);
  require(head_dim >= 1, "model config: head_dim must be >= 1, got ", head_dim);
  require(capacity >= 1, "model config: capacity must be >= 1, got ", capacity);
}

std::size_t ModelConfig::kv_bytes_per_token() const {
  return 2u * static_cast<std::size_t>(layers) * static_cast<std::size_t>(kv_heads) *
         static_cast<std::size_t>(head_dim) * dtype_size(dtype);
}

std::string ModelConfig::describe() const {
  std::ostringstream out;
  out << "L=" << layers << " d_model=" << d_model << " H=" << heads << " H_kv=" << kv_heads
      << " d=" << head_dim << " cap=" << capacity << " " << dtype_name(dtype) << " seed=" << seed;
  return out.str();
}

ModelConfig ModelConfig::make(int layers, int d_model, int heads, int kv_heads, int head_dim,
                              int capacity, DType dtype, std::uint64_t seed) {
  ModelConfig c;
  c.layers = layers;
  c.d_model = d_model;
  c.heads = heads;
  c.kv_heads = kv_heads;
  c.head_dim = head_dim;
  c.capacity = capacity;
  c.dtype = dtype;
  c.seed = seed;
  return c;
}

namespace {
ModelConfig shape(int layers, int d_model, int heads, int kv_heads, int head_dim, int capacity) {
  return ModelConfig::make(layers, d_model, heads, kv_heads, head_dim, capacity);
}
}  // namespace

const std::vector<NamedShape>& named_shapes() {
  // Benchmarks run one attention layer of each real shape: per-layer costs are what scale
  // with T, and L only multiplies them.
  static const std::vector<NamedShape> shapes = {
      {"default", "small model that keeps CI fast: 1 layer, d_model 256, 4 heads of 64",
       shape(1, 256, 4, 4, 64, 65536)},
      {"llama2-7b", "one Llama-2-7B layer: d_model 4096, 32 heads of 128 (MHA)",
       shape(1, 4096, 32, 32, 128, 32768)},
      {"llama3-8b", "one Llama-3-8B layer: d_model 4096, 32 query heads, 8 KV heads of 128 (GQA)",
       shape(1, 4096, 32, 8, 128, 32768)},
      {"gpt2", "one GPT-2 small layer: d_model 768, 12 heads of 64",
       shape(1, 768, 12, 12, 64, 32768)},
  };
  return shapes;
}

const NamedShape& find_shape(const std::string& name) {
  std::string known;
  for (const auto& s : named_shapes()) {
    if (s.name == name) return s;
    known += (known.empty() ? "" : ", ") + s.name;
  }
  fail("unknown shape '", name, "' (known: ", known, ")");
}

}  // namespace kvbench
