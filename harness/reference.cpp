// The reference forward pass, from the formula (see config.h), in LibTorch.
// Deliberately simple: full-sequence matrices, an explicit -inf causal mask, GQA by
// repeating each KV head for its group. Nothing here is shared with impls/.
#include "harness/reference.h"

#include <torch/torch.h>

#include <cmath>

#include "harness/error.h"

namespace kvbench {

namespace {

torch::Tensor to_tensor(const std::vector<float>& values, std::int64_t rows, std::int64_t cols,
                        torch::ScalarType type) {
  auto t = torch::from_blob(const_cast<float*>(values.data()), {rows, cols}, torch::kFloat32);
  return t.to(type);  // a copy: the result owns its memory
}

std::vector<double> to_vector(const torch::Tensor& t) {
  auto d = t.to(torch::kFloat64).contiguous();
  return std::vector<double>(d.data_ptr<double>(), d.data_ptr<double>() + d.numel());
}

}  // namespace

ReferenceResult reference_forward(const ModelWeights& weights, const std::vector<float>& inputs,
                                  RefPrecision precision) {
  const ModelConfig& c = weights.config;
  require(inputs.size() % static_cast<std::size_t>(c.d_model) == 0, "reference: inputs have ",
          inputs.size(), " floats, not a multiple of d_model ", c.d_model);
  const auto type = precision == RefPrecision::f64 ? torch::kFloat64 : torch::kFloat32;
  const std::int64_t T = static_cast<std::int64_t>(inputs.size()) / c.d_model;
  const std::int64_t H = c.heads, G = c.kv_heads, d = c.head_dim;

  torch::NoGradGuard no_grad;
  ReferenceResult result;
  result.tokens = static_cast<int>(T);
  torch::Tensor x = to_tensor(inputs, T, c.d_model, type);  // [T, d_model]
  // mask[i][j] = -inf where j > i (a query never sees a later key).
  torch::Tensor mask =
      torch::full({T, T}, -std::numeric_limits<double>::infinity(), torch::dtype(type)).triu(1);

  for (int l = 0; l < c.layers; ++l) {
    const LayerWeights& w = weights.layers[static_cast<std::size_t>(l)];
    torch::Tensor wq = to_tensor(w.wq, H * d, c.d_model, type);
    torch::Tensor wk = to_tensor(w.wk, G * d, c.d_model, type);
    torch::Tensor wv = to_tensor(w.wv, G * d, c.d_model, type);
    torch::Tensor wo = to_tensor(w.wo, c.d_model, H * d, type);

    torch::Tensor q = x.matmul(wq.t()).view({T, H, d}).permute({1, 0, 2});  // [H, T, d]
    torch::Tensor k = x.matmul(wk.t()).view({T, G, d}).permute({1, 0, 2});  // [G, T, d]
    torch::Tensor v = x.matmul(wv.t()).view({T, G, d}).permute({1, 0, 2});  // [G, T, d]
    for (std::int64_t g = 0; g < G; ++g) {
      result.k.push_back(to_vector(k[g]));
      result.v.push_back(to_vector(v[g]));
    }
    // GQA: query head h uses KV head h / (H / G).
    torch::Tensor k_rep = k.repeat_interleave(H / G, 0);  // [H, T, d]
    torch::Tensor v_rep = v.repeat_interleave(H / G, 0);  // [H, T, d]
    torch::Tensor scores = q.matmul(k_rep.transpose(1, 2)) / std::sqrt(static_cast<double>(d));
    if (T > 0) {
      // Only the causal pairs count (the masked ones are never computed by a decoder).
      torch::Tensor visible = scores.masked_fill(mask.isinf(), 0.0);
      result.max_abs_score =
          std::max(result.max_abs_score, visible.abs().max().item<double>());
    }
    torch::Tensor probs = torch::softmax(scores + mask, -1);        // [H, T, T]
    torch::Tensor o = probs.matmul(v_rep).permute({1, 0, 2}).reshape({T, H * d});
    x = x + o.matmul(wo.t());                                       // residual
  }
  result.outputs = to_vector(x);
  return result;
}

}  // namespace kvbench
