// The reference forward pass, from the formula (see config.h), in LibTorch.
// Deliberately simple: full-sequence matrices, an explicit -inf causal mask, GQA by
// repeating each KV head for its group. Nothing here is shared with impls/.
#include "harness/reference.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "harness/error.h"

namespace kvbench {

namespace {

torch::Tensor to_tensor(const std::vector<float>& values, std::int64_t rows, std::int64_t cols,
                        torch::ScalarType type) {
  auto t = torch::from_blob(const_cast<float*>(values.data()), {rows, cols}, torch::kFloat32);
  return t.to(type);  // a copy: the result owns its memory
}

// The cache's storage format applied to projected K or V rows (config.h round_to_storage).
torch::Tensor round_to(torch::Tensor t, DType storage) {
  if (storage == DType::f32) return t;
  t = t.contiguous().clone();
  if (t.scalar_type() == torch::kFloat64) {
    double* p = t.data_ptr<double>();
    for (std::int64_t i = 0; i < t.numel(); ++i) p[i] = round_to_storage(p[i], storage);
  } else {
    float* p = t.data_ptr<float>();
    for (std::int64_t i = 0; i < t.numel(); ++i) {
      p[i] = static_cast<float>(round_to_storage(p[i], storage));
    }
  }
  return t;
}

std::vector<double> to_vector(const torch::Tensor& t) {
  auto d = t.to(torch::kFloat64).contiguous();
  return std::vector<double>(d.data_ptr<double>(), d.data_ptr<double>() + d.numel());
}

}  // namespace

ReferenceResult reference_forward(const ModelWeights& weights, const std::vector<float>& inputs,
                                  RefPrecision precision, const std::vector<int>& rows) {
  const ModelConfig& c = weights.config;
  require(inputs.size() % static_cast<std::size_t>(c.d_model) == 0, "reference: inputs have ",
          inputs.size(), " floats, not a multiple of d_model ", c.d_model);
  const auto type = precision == RefPrecision::f64 ? torch::kFloat64 : torch::kFloat32;
  const std::int64_t T = static_cast<std::int64_t>(inputs.size()) / c.d_model;
  const std::int64_t H = c.heads, G = c.kv_heads, d = c.head_dim;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    require(rows[i] >= 0 && rows[i] < T && (i == 0 || rows[i] > rows[i - 1]),
            "reference: rows must be ascending positions below ", T, ", row ", i, " is ",
            rows[i]);
  }

  torch::NoGradGuard no_grad;
  ReferenceResult result;
  result.tokens = static_cast<int>(T);
  result.rows = rows;
  torch::Tensor x = to_tensor(inputs, T, c.d_model, type);  // [T, d_model]
  const auto index_options = torch::dtype(torch::kInt64);
  torch::Tensor all_rows = torch::arange(T, index_options);
  torch::Tensor wanted = all_rows;
  if (!rows.empty()) {
    std::vector<std::int64_t> r(rows.begin(), rows.end());
    wanted = torch::tensor(r, index_options);
  }
  // Query rows in blocks: a block whose last query is at position p needs only keys
  // [0, p], and a block's score matrix [H, rows, keys] is kept near 2M elements (16 MB in
  // float64: below glibc's largest mmap threshold, so the temporaries are reused from the
  // heap instead of being mapped and faulted in anew each time; H * T * T would be 4 GB at
  // 8192 tokens and 8 heads). Each output element is the same sum either way: blocking
  // changes which elements are computed together, not the formula.
  const std::int64_t kRows =
      std::clamp<std::int64_t>((std::int64_t{1} << 21) / std::max<std::int64_t>(1, H * T), 16, 512);

  for (int l = 0; l < c.layers; ++l) {
    const LayerWeights& w = weights.layers[static_cast<std::size_t>(l)];
    torch::Tensor wq = to_tensor(w.wq, H * d, c.d_model, type);
    torch::Tensor wk = to_tensor(w.wk, G * d, c.d_model, type);
    torch::Tensor wv = to_tensor(w.wv, G * d, c.d_model, type);
    torch::Tensor wo = to_tensor(w.wo, c.d_model, H * d, type);
    // The last layer's outputs are needed only at the wanted rows; every earlier layer's
    // at all rows (they are the next layer's inputs, whose K/V every later row reads).
    const bool last = l == c.layers - 1;
    torch::Tensor queries = last ? wanted : all_rows;  // [Q] positions
    const std::int64_t Q = queries.size(0);

    torch::Tensor q = x.index_select(0, queries).matmul(wq.t()).view({Q, H, d}).permute({1, 0, 2});
    // K and V as the cache stores them (rounded to fp16/bf16 when the config says so).
    torch::Tensor k = round_to(x.matmul(wk.t()), c.dtype).view({T, G, d}).permute({1, 0, 2});
    torch::Tensor v = round_to(x.matmul(wv.t()), c.dtype).view({T, G, d}).permute({1, 0, 2});
    for (std::int64_t g = 0; g < G; ++g) {
      result.k.push_back(to_vector(k[g]));
      result.v.push_back(to_vector(v[g]));
    }
    // GQA: query head h uses KV head h / (H / G).
    torch::Tensor k_rep = k.repeat_interleave(H / G, 0);  // [H, T, d]
    torch::Tensor v_rep = v.repeat_interleave(H / G, 0);  // [H, T, d]
    std::vector<torch::Tensor> o_blocks;
    for (std::int64_t b0 = 0; b0 < Q; b0 += kRows) {
      const std::int64_t b1 = std::min(Q, b0 + kRows);
      torch::Tensor pos = queries.slice(0, b0, b1);              // [B] query positions
      const std::int64_t keys = pos[b1 - b0 - 1].item<std::int64_t>() + 1;
      torch::Tensor qb = q.slice(1, b0, b1);                      // [H, B, d]
      torch::Tensor scores =
          qb.matmul(k_rep.slice(1, 0, keys).transpose(1, 2)) / std::sqrt(static_cast<double>(d));
      // masked[i][j]: key j is later than query i (a query never sees a later key).
      torch::Tensor masked = all_rows.slice(0, 0, keys).unsqueeze(0) > pos.unsqueeze(1);
      // Only the causal pairs count (the masked ones are never computed by a decoder).
      result.max_abs_score = std::max(
          result.max_abs_score, scores.masked_fill(masked, 0.0).abs().max().item<double>());
      torch::Tensor probs = torch::softmax(
          scores.masked_fill(masked, -std::numeric_limits<double>::infinity()), -1);
      o_blocks.push_back(probs.matmul(v_rep.slice(1, 0, keys)));  // [H, B, d]
    }
    if (Q > 0) {
      torch::Tensor o = torch::cat(o_blocks, 1).permute({1, 0, 2}).reshape({Q, H * d});
      x = x.index_select(0, queries) + o.matmul(wo.t());  // residual
    } else {
      x = x.index_select(0, queries);
    }
  }
  result.outputs = to_vector(x);
  return result;
}

}  // namespace kvbench
