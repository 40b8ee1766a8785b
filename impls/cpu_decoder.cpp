#include "impls/cpu_decoder.h"

#include <algorithm>
#include <cmath>

#include "harness/error.h"
#include "impls/cpu_kernels.h"

namespace kvbench::cpu {

namespace {

using kernels::project_rows;

// RETURNS: n floats, uninitialized (allocate_aligned: huge-page advised when large).
std::unique_ptr<float[], FreeDeleter> allocate_floats(std::size_t n, const char* what) {
  return std::unique_ptr<float[], FreeDeleter>(
      reinterpret_cast<float*>(allocate_aligned(n * sizeof(float), what).release()));
}

// RETURNS: c, once it is fp32: checked before any weights are packed or threads started.
const ModelConfig& fp32_only(const ModelConfig& c, const char* cache) {
  require(c.dtype == DType::f32, cache, ": dtype ", dtype_name(c.dtype), " is not supported (",
          cache, " stores fp32 only)");
  return c;
}

}  // namespace

Decoder::Decoder(const ModelConfig& config, const ModelWeights& weights, int threads,
                 Kernel kernel, const char* cache)
    : config_(fp32_only(config, cache)), kernel_(kernel), pool_(threads) {
  const ModelConfig& c = config_;
  const std::string what = std::string(cache) + ": a weight block";
  shape_.heads = c.heads;
  shape_.group = c.group_size();
  shape_.head_dim = c.head_dim;
  // A K tile of <= 16 KiB stays in L1 while every query of the item reads it.
  shape_.tile = std::max(8, std::min(128, 4096 / c.head_dim));
  shape_.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  // Up to 64 queries (rows x group) share one pass over K/V in a prefill block.
  prefill_block_ = std::max(1, 64 / shape_.group);
  scratch_.resize(static_cast<std::size_t>(pool_.size()));
  for (AttnScratch& s : scratch_) s.reserve(prefill_block_ * shape_.group, c.head_dim, shape_.tile);

  qkv_work_ = static_cast<std::uint64_t>(c.q_width() + 2 * c.kv_width()) * c.d_model * 4u;
  out_work_ = static_cast<std::uint64_t>(c.d_model) * c.q_width() * 4u;
  const int qkv_rows = c.q_width() + 2 * c.kv_width();
  for (const LayerWeights& w : weights.layers) {
    // [W_q; W_k; W_v] stacked, so one product fills a qkv_ row: q, then k, then v.
    LayerPack pack;
    pack.wqkv = allocate_floats(static_cast<std::size_t>(qkv_rows) * c.d_model, what.c_str());
    float* dst = std::copy(w.wq.begin(), w.wq.end(), pack.wqkv.get());
    dst = std::copy(w.wk.begin(), w.wk.end(), dst);
    std::copy(w.wv.begin(), w.wv.end(), dst);
    pack.wo = allocate_floats(w.wo.size(), what.c_str());
    std::copy(w.wo.begin(), w.wo.end(), pack.wo.get());
    packed_.push_back(std::move(pack));
  }
  qkv_blocks_ = row_blocks(qkv_rows, c.d_model, pool_.size());
  out_blocks_ = row_blocks(c.d_model, c.q_width(), pool_.size());
}

std::vector<Decoder::RowBlock> Decoder::row_blocks(int rows, int cols, int threads) {
  // 256 KiB of weights per block: long sequential runs for a decode step, and still in L2
  // while a prefill applies the block to all its rows (measured on llama2-7b shapes, 1 and
  // 2 threads: 64 KiB blocks were 5-15% slower, 1 MiB no better). At least 4 blocks per
  // thread, so that small matrices still spread.
  const int per_thread = (rows + 4 * threads - 1) / (4 * threads);
  const int block = std::max(1, std::min(65536 / cols, per_thread));
  std::vector<RowBlock> blocks;
  for (int r0 = 0; r0 < rows; r0 += block) blocks.push_back(RowBlock{r0, std::min(rows, r0 + block)});
  return blocks;
}

void Decoder::reserve(int n) {
  if (n <= rows_reserved_) return;
  const ModelConfig& c = config_;
  const std::size_t rows = static_cast<std::size_t>(n);
  x_.resize(rows * c.d_model);
  qkv_.resize(rows * (c.q_width() + 2 * c.kv_width()));
  o_.resize(rows * c.q_width());
  rows_.resize(rows);
  pos_.resize(rows);
  // One item per (row, KV head), plus the chunks of split rows: split_target() makes chunks
  // of >= 1/(4 * threads) of all keys, so splitting adds at most 4 * threads items.
  items_.reserve(rows * c.kv_heads + 4u * static_cast<std::size_t>(pool_.size()));
  merges_.reserve(rows * c.kv_heads);
  rows_reserved_ = n;
}

void Decoder::run(int n, KvStore& store, Stats& counters) {
  const ModelConfig& c = config_;
  const std::size_t qkv_width = static_cast<std::size_t>(c.q_width() + 2 * c.kv_width());
  std::uint64_t keys = 0;  // sum over rows of the keys each row's queries see
  for (int i = 0; i < n; ++i) keys += static_cast<std::uint64_t>(pos_[i]) + 1;

  for (int l = 0; l < c.layers; ++l) {
    const LayerPack& w = packed_[static_cast<std::size_t>(l)];
    auto project_qkv = [&](int i, int) {
      const RowBlock& b = qkv_blocks_[static_cast<std::size_t>(i)];
      project_rows(w.wqkv.get(), c.d_model, b.r0, b.r1, x_.data(), c.d_model, n, qkv_.data(),
                   qkv_width, false);
    };
    pool_.run(static_cast<int>(qkv_blocks_.size()), project_qkv, worth_threads(qkv_work_, n));
    write_kv(l, n, store);
    counters.kv_projection_rows += static_cast<std::uint64_t>(n);

    plan_attention(l, n, store);
    auto attend_item = [&](int i, int thread) {
      const AttnItem& item = items_[static_cast<std::size_t>(i)];
      AttnScratch& s = scratch_[static_cast<std::size_t>(thread)];
      // q: the first H*d columns of a qkv_ row
      if (kernel_ == Kernel::blocks) {
        attend_blocks(shape_, item, qkv_.data(), qkv_width, s);
      } else {
        attend(shape_, item, qkv_.data(), qkv_width, s);
      }
      if (item.slot < 0) {
        store_output(shape_, item, s, o_.data());
      } else {
        store_partial(shape_, item, s, partials_.data());
      }
    };
    pool_.run(static_cast<int>(items_.size()), attend_item, attention_work_ >= kMinParallelBytes);
    for (const AttnMerge& merge : merges_) {
      merge_partials(shape_, merge, partials_.data(), o_.data());
    }
    for (const AttnItem& item : items_) {
      counters.kv_bytes_read += static_cast<std::uint64_t>(item.key_end - item.key_begin) * 2u *
                                c.head_dim * sizeof(float);
    }
    counters.qk_dot_products += keys * static_cast<std::uint64_t>(c.heads);

    // x += W_o o: the residual stream becomes the next layer's input.
    auto project_out = [&](int i, int) {
      const RowBlock& b = out_blocks_[static_cast<std::size_t>(i)];
      project_rows(w.wo.get(), c.q_width(), b.r0, b.r1, o_.data(), c.q_width(), n, x_.data(),
                   c.d_model, true);
    };
    pool_.run(static_cast<int>(out_blocks_.size()), project_out, worth_threads(out_work_, n));
  }
}

void Decoder::write_kv(int layer, int n, KvStore& store) {
  const ModelConfig& c = config_;
  const std::size_t qkv_width = static_cast<std::size_t>(c.q_width() + 2 * c.kv_width());
  for (int i = 0; i < n; ++i) {
    const float* k = qkv_.data() + static_cast<std::size_t>(i) * qkv_width + c.q_width();
    store.write(rows_[static_cast<std::size_t>(i)], layer, pos_[static_cast<std::size_t>(i)], k,
                k + c.kv_width());
  }
}

int Decoder::split_target(int n) const {
  const int threads = pool_.size();
  std::uint64_t keys = 0;
  for (int i = 0; i < n; ++i) keys += static_cast<std::uint64_t>(pos_[i]) + 1;
  keys *= static_cast<std::uint64_t>(config_.kv_heads);
  const std::uint64_t bytes = keys * 2u * config_.head_dim * sizeof(float);
  if (threads == 1 || bytes < kMinParallelBytes) return 0;
  // Aim at >= 4 items per thread so that dynamic claiming evens out the ends, but keep
  // chunks long (>= 512 keys) so the merge and the item overhead stay negligible.
  const std::uint64_t want = (keys + 4u * threads - 1) / (4u * threads);
  return static_cast<int>(std::min<std::uint64_t>(std::max<std::uint64_t>(512, want),
                                                  static_cast<std::uint64_t>(config_.capacity)));
}

void Decoder::plan_attention(int layer, int n, const KvStore& store) {
  const ModelConfig& c = config_;
  const int target = split_target(n);
  items_.clear();
  merges_.clear();
  attention_work_ = 0;
  int slots = 0;
  for (int i = 0; i < n;) {
    // A block: consecutive rows of one sequence at consecutive positions (a prefill).
    int rows = 1;
    while (i + rows < n && rows < prefill_block_ && rows_[i + rows] == rows_[i] &&
           pos_[i + rows] == pos_[i] + rows) {
      ++rows;
    }
    const int keys = pos_[i] + rows;
    for (int g = 0; g < c.kv_heads; ++g) {
      AttnItem item;
      item.row0 = i;
      item.rows = rows;
      item.g = g;
      item.pos0 = pos_[i];
      store.address(rows_[i], layer, item);
      attention_work_ += static_cast<std::uint64_t>(keys) * rows * 2u * c.head_dim * 4u;
      if (rows > 1 || target == 0 || keys <= target) {
        item.key_end = keys;
        items_.push_back(item);
        continue;
      }
      // Split-KV: one decode row's keys in equal chunks (whole tiles), combined by a merge.
      const int pieces = (keys + target - 1) / target;
      const int chunk = ((keys + pieces - 1) / pieces + shape_.tile - 1) / shape_.tile * shape_.tile;
      merges_.push_back(AttnMerge{i, g, slots, 0});
      for (int k0 = 0; k0 < keys; k0 += chunk) {
        item.key_begin = k0;
        item.key_end = std::min(keys, k0 + chunk);
        item.slot = slots++;
        ++merges_.back().slots;
        items_.push_back(item);
      }
    }
    i += rows;
  }
  const std::size_t need = static_cast<std::size_t>(slots) * partial_floats(shape_);
  if (partials_.size() < need) partials_.resize(need);
  // Longest items first, so the last ones claimed are short and threads finish together.
  if (pool_.size() > 1) {
    std::sort(items_.begin(), items_.end(), [](const AttnItem& a, const AttnItem& b) {
      return a.rows * (a.key_end - a.key_begin) > b.rows * (b.key_end - b.key_begin);
    });
  }
}

}  // namespace kvbench::cpu
