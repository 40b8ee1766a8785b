// cpu_cached: a K/V cache in plain C++, written to be memory-bandwidth bound.
//
// Storage: one allocation per sequence, sized from config().capacity when the sequence is
// created or forked and never grown:
//   [L, 2 (K then V), H_kv, capacity, d]   head-major, so one head's rows are contiguous.
// A step (decode of a batch, or a prefill) is impls/cpu_decoder.h, shared with paged: the
// projections, the K/V writes at each row's position (projected once, reused after), the
// attention per (query rows, KV head) streaming that head's K and V rows once for the whole
// GQA group with an online softmax in fp32, and x += W_o o. This file says where the rows
// live (the decoder's KvStore). Scratch buffers grow only when a larger step than any before
// arrives, so steady-state decoding allocates nothing.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "harness/aligned_buffer.h"
#include "harness/error.h"
#include "impls/cpu_attention.h"
#include "impls/cpu_decoder.h"
#include "impls/impls.h"

namespace kvbench {
namespace {

// ---- aligned storage: harness/aligned_buffer.h (the bench's read-only reference is held
// the same way, so that the bandwidth it measures applies to this K/V) ---------------------

using AlignedFloats = std::unique_ptr<float[], FreeDeleter>;

// RETURNS: the bytes allocate_floats(n) allocates.
std::size_t allocation_bytes(std::size_t n) { return aligned_allocation_bytes(n * sizeof(float)); }

// RETURNS: n floats, uninitialized (allocate_aligned).
AlignedFloats allocate_floats(std::size_t n) {
  return AlignedFloats(reinterpret_cast<float*>(
      allocate_aligned(n * sizeof(float), "cpu_cached: a sequence block").release()));
}

using cpu::AttnItem;

// ---- the cache --------------------------------------------------------------------------

class CpuCachedCache final : public KvCache, private cpu::KvStore {
 public:
  CpuCachedCache(std::shared_ptr<const ModelWeights> model, const ImplOptions& options);

 private:
  struct Sequence {
    AlignedFloats kv;  // [L, 2, H_kv, capacity, d]
    int length = 0;
  };

  void do_create(SeqId id) override;
  void do_prefill(SeqId id, const float* x, int n, float* out) override;
  void do_decode(const std::vector<SeqId>& ids, const float* x, float* out) override;
  void do_fork(SeqId parent, SeqId child) override;
  void do_drop(SeqId id) override { seqs_.erase(id); }
  void do_truncate(SeqId id, int length) override;
  bool holds_kv_cache() const override { return true; }
  KvRows do_read_kv(SeqId id, int layer, int kv_head) const override;
  Memory memory_in_use() const override;

  std::size_t head_floats() const {  // one (layer, K|V, head) block: [capacity, d]
    return static_cast<std::size_t>(config().capacity) * config().head_dim;
  }
  std::size_t sequence_floats() const {
    return 2u * config().layers * config().kv_heads * head_floats();
  }
  // [capacity, d] rows of K (kind 0) or V (kind 1) for (layer, g).
  float* head_rows(const Sequence& s, int layer, int kind, int g) const {
    return s.kv.get() + ((static_cast<std::size_t>(layer) * 2 + kind) * config().kv_heads + g) *
                            head_floats();
  }
  // Fills positions [from, capacity) of every head block with quiet NaN (poison_unused).
  void poison_from(const Sequence& s, int from) const;
  // Writes the first huge page of every head block (see new_sequence).
  void prefault_first_rows(const Sequence& s) const;
  Sequence new_sequence() const;

  // The decoder's KvStore: a sequence's rows at position pos are row pos of its head blocks.
  void write(const void* seq, int layer, int pos, const float* k, const float* v) override;
  void address(const void* seq, int layer, AttnItem& item) const override;

  cpu::Decoder decoder_;
  std::map<SeqId, Sequence> seqs_;
};

CpuCachedCache::CpuCachedCache(std::shared_ptr<const ModelWeights> model,
                               const ImplOptions& options)
    : KvCache("cpu_cached", std::move(model), options),
      decoder_(config(), weights(), options.threads, cpu::Decoder::Kernel::contiguous,
               "cpu_cached") {}

// ---- sequences ----------------------------------------------------------------------------

CpuCachedCache::Sequence CpuCachedCache::new_sequence() const {
  Sequence s;
  s.kv = allocate_floats(sequence_floats());
  if (options().poison_unused) {
    poison_from(s, 0);
  } else {
    prefault_first_rows(s);
  }
  return s;
}

// The block is mapped lazily, and its head-major layout puts each (layer, K|V, head) block
// capacity rows apart: the first token a sequence decodes touches 2 L H_kv distinct pages
// (huge pages, where THP grants them: 2 MiB each to zero). Left to the first decode steps,
// that first-touch cost made a short generation look sublinear (bench: at T = 16 on the
// default shape, ~15 huge-page faults per generation). Creating the sequence now writes the
// first huge page of every block (one write per 4 KiB page, so 4 KiB pages are covered too):
// a cost of creation, which the bench times apart from the decode steps as setup. The
// later pages (past 2 MiB / (d x 4) positions) still fault when first reached, amortized.
void CpuCachedCache::prefault_first_rows(const Sequence& s) const {
  const ModelConfig& c = config();
  const std::size_t floats = std::min(head_floats(), kHugePageBytes / sizeof(float));
  constexpr std::size_t kStride = 4096 / sizeof(float);
  for (int l = 0; l < c.layers; ++l) {
    for (int kind = 0; kind < 2; ++kind) {
      for (int g = 0; g < c.kv_heads; ++g) {
        float* rows = head_rows(s, l, kind, g);
        for (std::size_t i = 0; i < floats; i += kStride) rows[i] = 0.0f;
      }
    }
  }
}

void CpuCachedCache::poison_from(const Sequence& s, int from) const {
  const ModelConfig& c = config();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (int l = 0; l < c.layers; ++l) {
    for (int kind = 0; kind < 2; ++kind) {
      for (int g = 0; g < c.kv_heads; ++g) {
        float* rows = head_rows(s, l, kind, g);
        std::fill(rows + static_cast<std::size_t>(from) * c.head_dim, rows + head_floats(), nan);
      }
    }
  }
}

void CpuCachedCache::do_create(SeqId id) { seqs_[id] = new_sequence(); }

void CpuCachedCache::do_fork(SeqId parent, SeqId child) {
  const ModelConfig& c = config();
  const Sequence& from = seqs_.at(parent);
  Sequence s = new_sequence();
  s.length = from.length;
  const std::size_t used = static_cast<std::size_t>(from.length) * c.head_dim;
  for (int l = 0; l < c.layers; ++l) {
    for (int kind = 0; kind < 2; ++kind) {
      for (int g = 0; g < c.kv_heads; ++g) {
        std::copy_n(head_rows(from, l, kind, g), used, head_rows(s, l, kind, g));
      }
    }
  }
  seqs_[child] = std::move(s);
}

void CpuCachedCache::do_truncate(SeqId id, int length) {
  Sequence& s = seqs_.at(id);
  s.length = length;
  if (options().poison_unused) poison_from(s, length);
}

KvRows CpuCachedCache::do_read_kv(SeqId id, int layer, int kv_head) const {
  const Sequence& s = seqs_.at(id);
  KvRows rows;
  rows.length = s.length;
  rows.head_dim = config().head_dim;
  const std::size_t used = static_cast<std::size_t>(s.length) * config().head_dim;
  const float* k = head_rows(s, layer, 0, kv_head);
  const float* v = head_rows(s, layer, 1, kv_head);
  rows.k.assign(k, k + used);
  rows.v.assign(v, v + used);
  return rows;
}

KvCache::Memory CpuCachedCache::memory_in_use() const {
  // held: 2 * L * H_kv * d * T * 4 per sequence; reserved: the capacity-sized allocations.
  const std::uint64_t per_token = config().kv_bytes_per_token();
  Memory m;
  for (const auto& entry : seqs_) {
    m.held += per_token * static_cast<std::uint64_t>(entry.second.length);
    m.reserved += allocation_bytes(sequence_floats());
  }
  return m;
}

// ---- steps: impls/cpu_decoder.h --------------------------------------------------------

void CpuCachedCache::write(const void* seq, int layer, int pos, const float* k, const float* v) {
  const Sequence& s = *static_cast<const Sequence*>(seq);
  const int d = config().head_dim;
  const std::size_t at = static_cast<std::size_t>(pos) * d;
  for (int g = 0; g < config().kv_heads; ++g) {
    std::copy_n(k + g * d, d, head_rows(s, layer, 0, g) + at);
    std::copy_n(v + g * d, d, head_rows(s, layer, 1, g) + at);
  }
}

void CpuCachedCache::address(const void* seq, int layer, AttnItem& item) const {
  const Sequence& s = *static_cast<const Sequence*>(seq);
  item.k = head_rows(s, layer, 0, item.g);
  item.v = head_rows(s, layer, 1, item.g);
}

void CpuCachedCache::do_prefill(SeqId id, const float* x, int n, float* out) {
  const std::size_t width = static_cast<std::size_t>(config().d_model);
  decoder_.reserve(n);
  Sequence& s = seqs_.at(id);
  std::copy_n(x, static_cast<std::size_t>(n) * width, decoder_.x());
  for (int i = 0; i < n; ++i) decoder_.set_row(i, &s, s.length + i);
  decoder_.run(n, *this, counters());
  s.length += n;
  std::copy_n(decoder_.x(), static_cast<std::size_t>(n) * width, out);
}

void CpuCachedCache::do_decode(const std::vector<SeqId>& ids, const float* x, float* out) {
  const int n = static_cast<int>(ids.size());
  const std::size_t width = static_cast<std::size_t>(config().d_model);
  decoder_.reserve(n);
  std::copy_n(x, static_cast<std::size_t>(n) * width, decoder_.x());
  for (int i = 0; i < n; ++i) {
    const Sequence& s = seqs_.at(ids[static_cast<std::size_t>(i)]);
    decoder_.set_row(i, &s, s.length);
  }
  decoder_.run(n, *this, counters());
  for (SeqId id : ids) ++seqs_.at(id).length;
  std::copy_n(decoder_.x(), static_cast<std::size_t>(n) * width, out);
}

}  // namespace

void register_cpu_cached(Registry& registry) {
  ImplInfo info;
  info.name = "cpu_cached";
  info.description =
      "fp32 K/V cache preallocated per sequence, head-major rows, online-softmax attention";
  info.device = "cpu";
  info.caps.holds_kv_cache = true;
  info.caps.fork = true;
  info.caps.truncate = true;
  info.caps.threads = true;
  info.caps.dtypes = {DType::f32};
  // One attention item per (row, KV head) serves the whole GQA group; split-KV chunks of a
  // row add up to its keys, so threads do not change the count.
  info.caps.kv_read_model = KvReadModel::per_kv_head;
  info.create = [](std::shared_ptr<const ModelWeights> weights, const ImplOptions& options) {
    return std::unique_ptr<KvCache>(new CpuCachedCache(std::move(weights), options));
  };
  registry.add(std::move(info));
}

}  // namespace kvbench
