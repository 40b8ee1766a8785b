// cuda_cached: the K/V cache and decode attention on the GPU. Host side: memory, the KvCache
// hooks, cuBLAS projections and the launch of the kernels of impls/cuda_attention.cuh.
// Design and what is verified where: impls/CUDA.md.
//
// Memory. Each live sequence owns one slot, a single allocation of
//   K [L, H_kv, cap, d] then V [L, H_kv, cap, d]   (storage dtype; cap = config capacity).
// Slots are never freed before the cache: a dropped sequence's slot goes to a free list and
// the next create/fork reuses it. cudaMalloc runs at construction (weights, one slot), when
// the live sequences outnumber every earlier count (one more slot), and when a step has more
// rows or splits than every earlier step (scratch, grown x2) - never in a steady decode loop.
//
// One step (decode: one row per sequence; prefill: up to prefill_chunk rows of one sequence),
// per layer, all on one stream:
//   qkv  = x W_qkv^T                cuBLAS SGEMM, fp32 (pedantic: no TF32)
//   append k, v rows to the slots   append_kv_kernel (converts to the storage dtype)
//   attention per row and head      split_attention_kernel (splits merged by its last block)
//   y    = x + attn W_o^T            cuBLAS SGEMM with beta = 1 onto a copy of x
#include "impls/cuda_cached.h"

#include <cublas_v2.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <optional>
#include <sstream>
#include <vector>

#include "harness/error.h"
#include "impls/cuda_kernels.h"
#include "impls/cuda_plan.h"
#include "impls/cuda_support.h"
#include "impls/impls.h"

namespace kvbench {

namespace {

using cuda::DeviceBuffer;

class CublasHandle {
 public:
  CublasHandle() { KVBENCH_CUBLAS_CHECK(cublasCreate(&handle_)); }
  ~CublasHandle() {
    if (handle_) cublasDestroy(handle_);
  }
  CublasHandle(const CublasHandle&) = delete;
  CublasHandle& operator=(const CublasHandle&) = delete;
  cublasHandle_t get() const { return handle_; }

 private:
  cublasHandle_t handle_ = nullptr;
};

// Storage elements -> floats (read_kv, probes).
std::vector<float> decode_elements(const std::vector<unsigned char>& raw, DType dtype) {
  const std::size_t size = dtype_size(dtype);
  std::vector<float> out(raw.size() / size);
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (dtype == DType::f32) {
      std::memcpy(&out[i], raw.data() + 4 * i, 4);
    } else {
      std::uint16_t bits;
      std::memcpy(&bits, raw.data() + 2 * i, 2);
      out[i] = dtype == DType::f16 ? cuda::half_bits_to_float(bits) : cuda::bf16_bits_to_float(bits);
    }
  }
  return out;
}

class CudaCached final : public KvCache {
 public:
  CudaCached(std::shared_ptr<const ModelWeights> weights, const ImplOptions& options,
             const CudaCachedTuning& tuning);
  ~CudaCached() override;

  CudaAttentionLaunchInfo last_launch() const { return last_launch_; }
  // The launch of a step of `items` rows whose longest row attends max_kv_len keys.
  CudaAttentionLaunchInfo plan_launch(int items, int max_kv_len) const;
  double last_attention_ms() const;
  std::uint64_t unused_not_nan(SeqId id) const;

 private:
  // ---- hooks ----
  void do_create(SeqId id) override {
    use_device();
    slot_of_[id] = acquire_slot();
  }
  void do_prefill(SeqId id, const float* x, int n, float* out) override;
  void do_decode(const std::vector<SeqId>& ids, const float* x, float* out) override;
  void do_fork(SeqId parent, SeqId child) override;
  void do_drop(SeqId id) override;
  void do_truncate(SeqId id, int length) override;
  bool holds_kv_cache() const override { return true; }
  KvRows do_read_kv(SeqId id, int layer, int kv_head) const override;
  Memory memory_in_use() const override;

  // ---- helpers ----
  // Makes this cache's device current (another library may have switched it).
  void use_device() const { KVBENCH_CUDA_CHECK(cudaSetDevice(device_)); }
  std::size_t element_bytes() const { return dtype_size(config().dtype); }
  // Elements of one [cap, d] plane (one layer, one KV head, K or V) of a slot.
  std::int64_t plane_elements() const {
    return static_cast<std::int64_t>(config().capacity) * config().head_dim;
  }
  // Planes in a slot: K and V for every layer and KV head.
  int planes() const { return 2 * config().layers * config().kv_heads; }
  std::size_t slot_bytes() const { return planes() * plane_elements() * element_bytes(); }
  unsigned char* slot_ptr(int slot) const { return slots_[slot].as<unsigned char>(); }
  int acquire_slot();
  // Sets plane bytes [from, to) of every plane of `slot` to 0xFF: NaN in fp32, fp16 and bf16.
  void poison_positions(int slot, int from, int to);
  void ensure_scratch(int rows, int max_splits);
  void gemm(const float* x, int n, int cols, const float* w, int rows, float* out,
            bool accumulate);
  // Runs all layers for `items` (rows of x_host), writes the last layer's rows to out_host.
  void run_layers(const std::vector<cuda::AttentionItem>& items, const float* x_host,
                  float* out_host, bool decode_step);

  CudaCachedTuning tuning_;
  cuda::AttentionShape shape_;
  cuda::CacheLayout layout_;
  int device_ = 0;
  int sm_count_ = 0;
  int blocks_per_sm_ = 0;  // occupancy of the attention kernel this cache launches
  float q_scale_ = 0;
  int qkv_width_ = 0;  // H*d + 2*H_kv*d

  // Declared first so that they are destroyed last (after every buffer).
  std::optional<cuda::Stream> stream_;
  std::optional<CublasHandle> cublas_;

  std::vector<DeviceBuffer> w_qkv_;  // per layer: [qkv_width, d_model] (W_q, W_k, W_v rows)
  std::vector<DeviceBuffer> w_o_;    // per layer: [d_model, H*d]
  std::vector<DeviceBuffer> slots_;  // every slot allocated: K [L,H_kv,cap,d] then V
  std::vector<int> free_slots_;
  std::map<SeqId, int> slot_of_;

  struct Scratch {
    int rows = 0;                  // rows the row buffers hold
    std::int64_t states = 0;       // (row, head, split) states the partial buffers hold
    DeviceBuffer x, y;             // [rows, d_model] layer input / output
    DeviceBuffer qkv;              // [rows, qkv_width]
    DeviceBuffer attn;             // [rows, H*d] merged attention output
    DeviceBuffer items;            // [rows] cuda::AttentionItem
    DeviceBuffer arrivals;         // [rows, H_kv * group blocks] int, zero between launches
    DeviceBuffer partial_o;        // [states, d]
    DeviceBuffer partial_m;        // [states]
    DeviceBuffer partial_l;        // [states]
  } scratch_;

  std::vector<cuda::Event> attention_start_;  // per layer, recorded by decode steps
  std::vector<cuda::Event> attention_stop_;
  bool timed_ = false;                        // a decode step recorded them
  CudaAttentionLaunchInfo last_launch_;
};

CudaCached::CudaCached(std::shared_ptr<const ModelWeights> weights, const ImplOptions& options,
                       const CudaCachedTuning& tuning)
    : KvCache("cuda_cached", std::move(weights), options), tuning_(tuning) {
  const std::string why = cuda::device_unavailable_reason();
  require(why.empty(), "cuda_cached: ", why);
  const ModelConfig& c = config();
  require(tuning_.split_size >= 0, "cuda_cached: tuning.split_size must be >= 0 (0 = planned), got ",
          tuning_.split_size);
  require(tuning_.prefill_chunk >= 1, "cuda_cached: tuning.prefill_chunk must be >= 1, got ",
          tuning_.prefill_chunk);
  require(c.head_dim <= cuda::kMaxHeadDim, "cuda_cached: head_dim must be <= ", cuda::kMaxHeadDim,
          ", got ", c.head_dim);
  shape_ = cuda::plan_attention_shape(c.head_dim, static_cast<int>(element_bytes()), c.group_size());
  require(static_cast<std::int64_t>(c.kv_heads) * shape_.group_blocks <= 65535 && c.heads <= 65535,
          "cuda_cached: heads (", c.heads, ") and kv_heads x group blocks (", c.kv_heads, " x ",
          shape_.group_blocks, ") must be <= 65535 (CUDA grid limit)");

  layout_.dtype = c.dtype;
  layout_.layers = c.layers;
  layout_.heads = c.heads;
  layout_.kv_heads = c.kv_heads;
  layout_.head_dim = c.head_dim;
  layout_.capacity = c.capacity;
  layout_.v_offset = static_cast<std::int64_t>(c.layers) * c.kv_heads * plane_elements();
  q_scale_ = static_cast<float>(1.4426950408889634 / std::sqrt(static_cast<double>(c.head_dim)));
  qkv_width_ = c.q_width() + 2 * c.kv_width();

  KVBENCH_CUDA_CHECK(cudaGetDevice(&device_));
  sm_count_ = cuda::current_sm_count();
  KVBENCH_CUDA_CHECK(cuda::attention_blocks_per_sm(c.dtype, shape_, &blocks_per_sm_));
  require(blocks_per_sm_ >= 1, "cuda_cached: the attention kernel for ", c.describe(),
          " does not fit on a multiprocessor of this GPU (", shape_.shared_bytes,
          " bytes of shared memory)");
  stream_.emplace();
  cublas_.emplace();
  KVBENCH_CUBLAS_CHECK(cublasSetStream(cublas_->get(), stream_->get()));
  // fp32 throughout: never TF32, whatever NVIDIA_TF32_OVERRIDE says.
  KVBENCH_CUBLAS_CHECK(cublasSetMathMode(cublas_->get(), CUBLAS_PEDANTIC_MATH));

  for (int l = 0; l < c.layers; ++l) {
    const LayerWeights& w = this->weights().layers[l];
    std::vector<float> qkv;
    qkv.reserve(static_cast<std::size_t>(qkv_width_) * c.d_model);
    qkv.insert(qkv.end(), w.wq.begin(), w.wq.end());
    qkv.insert(qkv.end(), w.wk.begin(), w.wk.end());
    qkv.insert(qkv.end(), w.wv.begin(), w.wv.end());
    const std::string layer = "cuda_cached's layer " + std::to_string(l);
    w_qkv_.emplace_back(qkv.size() * sizeof(float), layer + " W_q|W_k|W_v");
    KVBENCH_CUDA_CHECK(cudaMemcpy(w_qkv_.back().get(), qkv.data(), qkv.size() * sizeof(float),
                                  cudaMemcpyHostToDevice));
    w_o_.emplace_back(w.wo.size() * sizeof(float), layer + " W_o");
    KVBENCH_CUDA_CHECK(cudaMemcpy(w_o_.back().get(), w.wo.data(), w.wo.size() * sizeof(float),
                                  cudaMemcpyHostToDevice));
    attention_start_.emplace_back();
    attention_stop_.emplace_back();
  }
  // One slot up front: a capacity the device cannot hold fails here, with a clear message.
  free_slots_.push_back(acquire_slot());
}

CudaCached::~CudaCached() {
  if (!stream_) return;
  cudaSetDevice(device_);
  cudaStreamSynchronize(stream_->get());  // nothing in flight may touch the memory freed next
}

int CudaCached::acquire_slot() {
  if (free_slots_.empty()) {
    const ModelConfig& c = config();
    std::ostringstream what;
    what << "cuda_cached's sequence slot " << slots_.size() << " (K and V: 2 x L=" << c.layers
         << " x H_kv=" << c.kv_heads << " x capacity=" << c.capacity << " x d=" << c.head_dim
         << " x " << element_bytes() << " bytes)";
    slots_.emplace_back(slot_bytes(), what.str());
    free_slots_.push_back(static_cast<int>(slots_.size()) - 1);
  }
  const int slot = free_slots_.back();
  if (options().poison_unused) {
    KVBENCH_CUDA_CHECK(cudaMemsetAsync(slot_ptr(slot), 0xFF, slot_bytes(), stream_->get()));
  }
  free_slots_.pop_back();
  return slot;
}

void CudaCached::poison_positions(int slot, int from, int to) {
  if (to <= from) return;
  const std::size_t row = static_cast<std::size_t>(config().head_dim) * element_bytes();
  const std::size_t plane = static_cast<std::size_t>(plane_elements()) * element_bytes();
  for (int p = 0; p < planes(); ++p) {
    KVBENCH_CUDA_CHECK(cudaMemsetAsync(slot_ptr(slot) + p * plane + from * row, 0xFF,
                                       (to - from) * row, stream_->get()));
  }
}

void CudaCached::do_fork(SeqId parent, SeqId child) {
  use_device();
  const int from = slot_of_.at(parent);
  const int to = acquire_slot();
  try {
    const std::size_t used = static_cast<std::size_t>(length(parent)) * config().head_dim *
                             element_bytes();
    const std::size_t plane = static_cast<std::size_t>(plane_elements()) * element_bytes();
    for (int p = 0; used > 0 && p < planes(); ++p) {
      KVBENCH_CUDA_CHECK(cudaMemcpyAsync(slot_ptr(to) + p * plane, slot_ptr(from) + p * plane, used,
                                         cudaMemcpyDeviceToDevice, stream_->get()));
    }
  } catch (...) {
    free_slots_.push_back(to);  // leave the cache as it was
    throw;
  }
  slot_of_[child] = to;
}

void CudaCached::do_drop(SeqId id) {
  free_slots_.push_back(slot_of_.at(id));  // poisoned again when reused (acquire_slot)
  slot_of_.erase(id);
}

void CudaCached::do_truncate(SeqId id, int new_length) {
  use_device();
  if (options().poison_unused) poison_positions(slot_of_.at(id), new_length, length(id));
}

KvRows CudaCached::do_read_kv(SeqId id, int layer, int kv_head) const {
  use_device();
  const ModelConfig& c = config();
  KvRows rows;
  rows.length = length(id);
  rows.head_dim = c.head_dim;
  const std::size_t bytes = static_cast<std::size_t>(rows.length) * c.head_dim * element_bytes();
  // [L, H_kv, cap, d]: plane (layer, kv_head) of K; V is layout_.v_offset elements further.
  const std::size_t k_at = (static_cast<std::size_t>(layer) * c.kv_heads + kv_head) *
                           plane_elements() * element_bytes();
  const std::size_t v_at = k_at + layout_.v_offset * element_bytes();
  std::vector<unsigned char> k(bytes), v(bytes);
  if (bytes > 0) {
    const unsigned char* slot = slot_ptr(slot_of_.at(id));
    KVBENCH_CUDA_CHECK(cudaMemcpyAsync(k.data(), slot + k_at, bytes, cudaMemcpyDeviceToHost,
                                       stream_->get()));
    KVBENCH_CUDA_CHECK(cudaMemcpyAsync(v.data(), slot + v_at, bytes, cudaMemcpyDeviceToHost,
                                       stream_->get()));
    KVBENCH_CUDA_CHECK(cudaStreamSynchronize(stream_->get()));
  }
  rows.k = decode_elements(k, c.dtype);
  rows.v = decode_elements(v, c.dtype);
  return rows;
}

KvCache::Memory CudaCached::memory_in_use() const {
  Memory m;
  for (const auto& entry : slot_of_) {
    m.held += static_cast<std::uint64_t>(length(entry.first)) * config().kv_bytes_per_token();
  }
  m.reserved = static_cast<std::uint64_t>(slots_.size()) * slot_bytes();
  return m;
}

void CudaCached::ensure_scratch(int rows, int max_splits) {
  const ModelConfig& c = config();
  const std::int64_t states = static_cast<std::int64_t>(rows) * c.heads * max_splits;
  if (rows <= scratch_.rows && states <= scratch_.states) return;
  KVBENCH_CUDA_CHECK(cudaStreamSynchronize(stream_->get()));  // nothing may use the old buffers
  if (rows > scratch_.rows) {
    const std::size_t n = static_cast<std::size_t>(std::max(rows, 2 * scratch_.rows));
    scratch_.x = DeviceBuffer(n * c.d_model * sizeof(float), "cuda_cached's layer inputs");
    scratch_.y = DeviceBuffer(n * c.d_model * sizeof(float), "cuda_cached's layer outputs");
    scratch_.qkv = DeviceBuffer(n * qkv_width_ * sizeof(float), "cuda_cached's q|k|v rows");
    scratch_.attn = DeviceBuffer(n * c.q_width() * sizeof(float), "cuda_cached's attention rows");
    scratch_.items = DeviceBuffer(n * sizeof(cuda::AttentionItem), "cuda_cached's row descriptors");
    const std::size_t counters = n * c.kv_heads * shape_.group_blocks * sizeof(int);
    scratch_.arrivals = DeviceBuffer(counters, "cuda_cached's split arrival counters");
    // Zero once; each launch's last block per row resets its counter.
    KVBENCH_CUDA_CHECK(cudaMemsetAsync(scratch_.arrivals.get(), 0, counters, stream_->get()));
    scratch_.rows = static_cast<int>(n);
  }
  if (states > scratch_.states) {
    const std::int64_t n = std::max(states, 2 * scratch_.states);
    const std::size_t count = static_cast<std::size_t>(n);
    scratch_.partial_o =
        DeviceBuffer(count * c.head_dim * sizeof(float), "cuda_cached's partial outputs");
    scratch_.partial_m = DeviceBuffer(count * sizeof(float), "cuda_cached's partial maxima");
    scratch_.partial_l = DeviceBuffer(count * sizeof(float), "cuda_cached's partial sums");
    scratch_.states = n;
  }
}

void CudaCached::gemm(const float* x, int n, int cols, const float* w, int rows, float* out,
                      bool accumulate) {
  // Row-major out[n, rows] = x[n, cols] W[rows, cols]^T (+ out). In cuBLAS's column-major
  // terms: out^T (rows x n, ld rows) = op(A) B with A = W^T stored (cols x rows, ld cols),
  // op = transpose, and B = x^T (cols x n, ld cols).
  const float alpha = 1.0f;
  const float beta = accumulate ? 1.0f : 0.0f;
  KVBENCH_CUBLAS_CHECK(cublasSgemm(cublas_->get(), CUBLAS_OP_T, CUBLAS_OP_N, rows, n, cols, &alpha,
                                   w, cols, x, cols, &beta, out, rows));
}

void CudaCached::run_layers(const std::vector<cuda::AttentionItem>& items, const float* x_host,
                            float* out_host, bool decode_step) {
  use_device();
  const ModelConfig& c = config();
  const int n = static_cast<int>(items.size());
  int max_len = 0;
  for (const cuda::AttentionItem& it : items) {
    require(it.position >= 0 && it.position < c.capacity && it.kv_len == it.position + 1,
            "cuda_cached: internal error: row position ", it.position, " kv_len ", it.kv_len,
            " (capacity ", c.capacity, ")");
    max_len = std::max(max_len, it.kv_len);
  }
  const CudaAttentionLaunchInfo launch = plan_launch(n, max_len);
  cuda::SplitPlan plan;
  plan.split_size = launch.split_size;
  plan.max_splits = launch.max_splits;
  ensure_scratch(n, plan.max_splits);
  cudaStream_t stream = stream_->get();
  const std::size_t row_bytes = static_cast<std::size_t>(c.d_model) * sizeof(float);

  KVBENCH_CUDA_CHECK(cudaMemcpyAsync(scratch_.items.get(), items.data(),
                                     items.size() * sizeof(cuda::AttentionItem),
                                     cudaMemcpyHostToDevice, stream));
  KVBENCH_CUDA_CHECK(cudaMemcpyAsync(scratch_.x.get(), x_host, n * row_bytes,
                                     cudaMemcpyHostToDevice, stream));
  float* x = scratch_.x.as<float>();
  float* y = scratch_.y.as<float>();
  const auto* items_dev = scratch_.items.as<const cuda::AttentionItem>();

  cuda::AppendLaunch append;
  append.cache = layout_;
  append.items = items_dev;
  append.qkv = scratch_.qkv.as<float>();
  append.qkv_stride = qkv_width_;
  append.num_items = n;

  cuda::AttentionLaunch attention;
  attention.cache = layout_;
  attention.items = items_dev;
  attention.qkv = scratch_.qkv.as<float>();
  attention.qkv_stride = qkv_width_;
  attention.num_items = n;
  attention.split_size = plan.split_size;
  attention.max_splits = plan.max_splits;
  attention.partial_o = scratch_.partial_o.as<float>();
  attention.partial_m = scratch_.partial_m.as<float>();
  attention.partial_l = scratch_.partial_l.as<float>();
  attention.arrivals = scratch_.arrivals.as<int>();
  attention.out = scratch_.attn.as<float>();
  attention.q_scale = q_scale_;
  attention.shape = shape_;

  for (int l = 0; l < c.layers; ++l) {
    gemm(x, n, c.d_model, w_qkv_[l].as<float>(), qkv_width_, scratch_.qkv.as<float>(), false);
    append.layer = l;
    KVBENCH_CUDA_CHECK(cuda::launch_append(append, stream));
    if (decode_step) KVBENCH_CUDA_CHECK(cudaEventRecord(attention_start_[l].get(), stream));
    attention.layer = l;
    KVBENCH_CUDA_CHECK(cuda::launch_attention(attention, stream));
    if (decode_step) KVBENCH_CUDA_CHECK(cudaEventRecord(attention_stop_[l].get(), stream));
    KVBENCH_CUDA_CHECK(cudaMemcpyAsync(y, x, n * row_bytes, cudaMemcpyDeviceToDevice, stream));
    gemm(scratch_.attn.as<float>(), n, c.q_width(), w_o_[l].as<float>(), c.d_model, y, true);
    std::swap(x, y);
  }
  KVBENCH_CUDA_CHECK(cudaMemcpyAsync(out_host, x, n * row_bytes, cudaMemcpyDeviceToHost, stream));
  KVBENCH_CUDA_CHECK(cudaStreamSynchronize(stream));

  // Counters, per layer: each row's k/v projected once; every query head dots every key of
  // the row once; each KV head's rows read once per group block (see AttentionShape).
  std::uint64_t keys = 0;
  for (const cuda::AttentionItem& it : items) keys += static_cast<std::uint64_t>(it.kv_len);
  const std::uint64_t layers = static_cast<std::uint64_t>(c.layers);
  Stats& s = counters();
  s.kv_projection_rows += static_cast<std::uint64_t>(n) * layers;
  s.qk_dot_products += keys * static_cast<std::uint64_t>(c.heads) * layers;
  s.kv_bytes_read += keys * 2u * static_cast<std::uint64_t>(c.head_dim) * element_bytes() *
                     static_cast<std::uint64_t>(c.kv_heads) * shape_.group_blocks * layers;

  if (decode_step) {
    timed_ = true;
    last_launch_ = launch;
  }
}

CudaAttentionLaunchInfo CudaCached::plan_launch(int items, int max_kv_len) const {
  const std::int64_t work_rows =
      static_cast<std::int64_t>(items) * config().kv_heads * shape_.group_blocks;
  const cuda::SplitPlan plan =
      cuda::plan_splits(max_kv_len, work_rows, sm_count_, blocks_per_sm_, tuning_.split_size);
  CudaAttentionLaunchInfo launch;
  launch.items = items;
  launch.max_kv_len = max_kv_len;
  launch.split_size = plan.split_size;
  launch.max_splits = plan.max_splits;
  launch.blocks_per_sm = blocks_per_sm_;
  launch.sm_count = sm_count_;
  launch.lanes = shape_.lanes;
  launch.rows = shape_.rows;
  launch.group_per_block = shape_.group_per_block;
  launch.group_blocks = shape_.group_blocks;
  launch.vectorized = shape_.vectorized;
  return launch;
}

void CudaCached::do_prefill(SeqId id, const float* x, int n, float* out) {
  const void* slot = slot_ptr(slot_of_.at(id));
  const int have = length(id);
  const std::size_t width = static_cast<std::size_t>(config().d_model);
  for (int first = 0; first < n; first += tuning_.prefill_chunk) {
    const int rows = std::min(tuning_.prefill_chunk, n - first);
    std::vector<cuda::AttentionItem> items(static_cast<std::size_t>(rows));
    for (int i = 0; i < rows; ++i) {
      items[i].slot = slot;
      items[i].position = have + first + i;
      items[i].kv_len = have + first + i + 1;  // causal: itself and every earlier row
    }
    run_layers(items, x + first * width, out + first * width, false);
  }
}

void CudaCached::do_decode(const std::vector<SeqId>& ids, const float* x, float* out) {
  std::vector<cuda::AttentionItem> items(ids.size());
  for (std::size_t i = 0; i < ids.size(); ++i) {
    items[i].slot = slot_ptr(slot_of_.at(ids[i]));
    items[i].position = length(ids[i]);
    items[i].kv_len = items[i].position + 1;
  }
  run_layers(items, x, out, true);
}

double CudaCached::last_attention_ms() const {
  require(timed_, "cuda_cached_last_attention_ms: no decode step has run yet");
  use_device();
  double total = 0;
  for (std::size_t l = 0; l < attention_start_.size(); ++l) {
    float ms = 0;
    KVBENCH_CUDA_CHECK(
        cudaEventElapsedTime(&ms, attention_start_[l].get(), attention_stop_[l].get()));
    total += ms;
  }
  return total;
}

std::uint64_t CudaCached::unused_not_nan(SeqId id) const {
  require(contains(id), "cuda_cached_unused_not_nan: sequence id ", id, " is unknown");
  use_device();
  std::vector<unsigned char> raw(slot_bytes());
  KVBENCH_CUDA_CHECK(cudaStreamSynchronize(stream_->get()));
  KVBENCH_CUDA_CHECK(cudaMemcpy(raw.data(), slot_ptr(slot_of_.at(id)), raw.size(),
                                cudaMemcpyDeviceToHost));
  const std::vector<float> values = decode_elements(raw, config().dtype);
  const std::int64_t used = static_cast<std::int64_t>(length(id)) * config().head_dim;
  std::uint64_t not_nan = 0;
  for (int p = 0; p < planes(); ++p) {
    for (std::int64_t e = used; e < plane_elements(); ++e) {
      if (!std::isnan(values[p * plane_elements() + e])) ++not_nan;
    }
  }
  return not_nan;
}

const CudaCached& as_cuda_cached(const KvCache& cache, const char* probe) {
  const auto* cuda_cache = dynamic_cast<const CudaCached*>(&cache);
  require(cuda_cache != nullptr, probe, ": '", cache.name(), "' is not a cuda_cached instance");
  return *cuda_cache;
}

}  // namespace

std::unique_ptr<KvCache> make_cuda_cached(std::shared_ptr<const ModelWeights> weights,
                                          const ImplOptions& options,
                                          const CudaCachedTuning& tuning) {
  return std::make_unique<CudaCached>(std::move(weights), options, tuning);
}

CudaAttentionLaunchInfo cuda_cached_last_launch(const KvCache& cache) {
  return as_cuda_cached(cache, "cuda_cached_last_launch").last_launch();
}

CudaAttentionLaunchInfo cuda_cached_plan(const KvCache& cache, int items, int max_kv_len) {
  require(items >= 1 && max_kv_len >= 1, "cuda_cached_plan: items (", items,
          ") and max_kv_len (", max_kv_len, ") must be >= 1");
  return as_cuda_cached(cache, "cuda_cached_plan").plan_launch(items, max_kv_len);
}

double cuda_cached_last_attention_ms(const KvCache& cache) {
  return as_cuda_cached(cache, "cuda_cached_last_attention_ms").last_attention_ms();
}

std::uint64_t cuda_cached_unused_not_nan(const KvCache& cache, SeqId id) {
  return as_cuda_cached(cache, "cuda_cached_unused_not_nan").unused_not_nan(id);
}

void register_cuda_cached(Registry& registry) {
  ImplInfo info;
  info.name = "cuda_cached";
  info.description =
      "K/V cache in GPU memory; split-KV decode attention kernel (CUDA), cuBLAS projections";
  info.device = "cuda";
  info.caps.holds_kv_cache = true;
  info.caps.fork = true;
  info.caps.truncate = true;
  info.caps.threads = false;
  info.caps.dtypes = {DType::f32, DType::f16, DType::bf16};
  // A block serves up to 8 query heads of one KV head (cuda_plan.h: group_blocks =
  // ceil(G / group_per_block), group_per_block 1, 4 or 8), so ceil(G / 8) reads per KV head.
  info.caps.kv_read_model = KvReadModel::per_group_of_n;
  info.caps.kv_read_group = 8;
  info.unavailable_reason = [] { return cuda::device_unavailable_reason(); };
  info.create = [](std::shared_ptr<const ModelWeights> weights, const ImplOptions& options) {
    return make_cuda_cached(std::move(weights), options);
  };
  registry.add(std::move(info));
  // Its device's timers and bandwidth ceilings, for the benchmark (impls/cuda_probes.cpp).
  register_cuda_device_probes(registry.devices());
}

}  // namespace kvbench
