#include "properties/coverage.h"

#include <algorithm>
#include <cstdio>
#include <sstream>
#include <utility>
#include <vector>

namespace kvbench::props {

std::uint64_t OpCounts::total() const {
  // prefill_nonempty and batched_decode are subsets of prefill and decode.
  return create + prefill + decode + fork + truncate + drop + read_kv + rejected;
}

void Coverage::add(const ModelConfig& config, const ImplOptions& options,
                   const CacheEvent& event) {
  if (event.rejected) {
    ++ops.rejected;
    return;
  }
  layers.insert(config.layers);
  group_sizes.insert(config.group_size());
  max_head_dim = std::max(max_head_dim, config.head_dim);
  max_d_model = std::max(max_d_model, config.d_model);
  dtypes.insert(config.dtype);
  threads.insert(options.threads);
  max_tokens = std::max({max_tokens, event.length_before, event.length_after});
  switch (event.op) {
    case CacheOp::create: ++ops.create; break;
    case CacheOp::prefill:
      ++ops.prefill;
      if (event.length_before > 0) ++ops.prefill_nonempty;
      max_prefill_chunk = std::max(max_prefill_chunk, event.rows);
      break;
    case CacheOp::decode:
      ++ops.decode;
      if (event.rows >= 2) ++ops.batched_decode;
      max_decode_batch = std::max(max_decode_batch, event.rows);
      max_decode_position = std::max(max_decode_position, event.length_before);
      break;
    case CacheOp::fork: ++ops.fork; break;
    case CacheOp::truncate: ++ops.truncate; break;
    case CacheOp::drop: ++ops.drop; break;
    case CacheOp::read_kv: ++ops.read_kv; break;
  }
}

void Coverage::merge(const Coverage& o) {
  max_tokens = std::max(max_tokens, o.max_tokens);
  max_decode_position = std::max(max_decode_position, o.max_decode_position);
  max_prefill_chunk = std::max(max_prefill_chunk, o.max_prefill_chunk);
  max_decode_batch = std::max(max_decode_batch, o.max_decode_batch);
  layers.insert(o.layers.begin(), o.layers.end());
  group_sizes.insert(o.group_sizes.begin(), o.group_sizes.end());
  max_head_dim = std::max(max_head_dim, o.max_head_dim);
  max_d_model = std::max(max_d_model, o.max_d_model);
  dtypes.insert(o.dtypes.begin(), o.dtypes.end());
  threads.insert(o.threads.begin(), o.threads.end());
  ops.create += o.ops.create;
  ops.prefill += o.ops.prefill;
  ops.prefill_nonempty += o.ops.prefill_nonempty;
  ops.decode += o.ops.decode;
  ops.batched_decode += o.ops.batched_decode;
  ops.fork += o.ops.fork;
  ops.truncate += o.ops.truncate;
  ops.drop += o.ops.drop;
  ops.read_kv += o.ops.read_kv;
  ops.rejected += o.ops.rejected;
}

std::string format_set(const std::set<int>& values) {
  if (values.empty()) return "";
  const int lo = *values.begin();
  const int hi = *values.rbegin();
  if (values.size() >= 3 && static_cast<std::size_t>(hi - lo) + 1 == values.size()) {
    return std::to_string(lo) + "-" + std::to_string(hi);
  }
  std::string out;
  for (int v : values) out += (out.empty() ? "" : ",") + std::to_string(v);
  return out;
}

namespace {

// The short names of the op kinds, in the order they are printed.
std::vector<std::pair<const char*, std::uint64_t>> op_list(const OpCounts& o) {
  return {{"create", o.create},   {"prefill", o.prefill}, {"prefill+", o.prefill_nonempty},
          {"decode", o.decode},   {"batched", o.batched_decode}, {"fork", o.fork},
          {"truncate", o.truncate}, {"drop", o.drop}, {"read_kv", o.read_kv},
          {"rejected", o.rejected}};
}

std::string dtype_list(const std::set<DType>& dtypes) {
  std::string out;
  for (DType t : dtypes) out += (out.empty() ? "" : " ") + dtype_name(t);
  return out;
}

// 999, 1.2k, 12k, 1.2M: counts at a glance (the JSON has them exactly).
std::string compact(std::uint64_t n) {
  char buf[32];
  if (n < 1000) {
    std::snprintf(buf, sizeof buf, "%llu", static_cast<unsigned long long>(n));
  } else if (n < 10000) {
    std::snprintf(buf, sizeof buf, "%.1fk", static_cast<double>(n) / 1e3);
  } else if (n < 1000000) {
    std::snprintf(buf, sizeof buf, "%.0fk", static_cast<double>(n) / 1e3);
  } else {
    std::snprintf(buf, sizeof buf, "%.1fM", static_cast<double>(n) / 1e6);
  }
  return buf;
}

}  // namespace

std::string Coverage::brief() const {
  if (empty()) return "[no call reached the cache]";
  std::ostringstream s;
  s << "[";
  if (!layers.empty()) {  // some call succeeded (not only rejected ones)
    s << "T≤" << max_tokens;
    if (max_decode_position >= 0) s << " pos≤" << max_decode_position;
    if (max_prefill_chunk > 0) s << " prefill≤" << max_prefill_chunk;
    if (max_decode_batch > 0) s << " batch≤" << max_decode_batch;
    s << " L" << format_set(layers) << " H/Hkv " << format_set(group_sizes) << " d≤"
      << max_head_dim << " " << dtype_list(dtypes) << " threads " << format_set(threads)
      << "; ";
  }
  s << "ops:";
  for (const auto& [name, count] : op_list(ops)) {
    if (count > 0) s << " " << name;
  }
  s << "]";
  return s.str();
}

std::string Coverage::summary() const {
  if (empty()) return "no call reached a cache";
  std::ostringstream s;
  if (!layers.empty()) {
    s << "T≤" << max_tokens << " (decode position ";
    if (max_decode_position >= 0) {
      s << "≤" << max_decode_position;
    } else {
      s << "none";
    }
    s << ", prefill chunk ";
    if (max_prefill_chunk > 0) {
      s << "≤" << max_prefill_chunk;
    } else {
      s << "none";
    }
    s << "), batch≤" << max_decode_batch << ", L "
      << format_set(layers) << ", H/H_kv " << format_set(group_sizes) << ", d≤" << max_head_dim
      << ", d_model≤" << max_d_model << ", " << dtype_list(dtypes) << ", threads "
      << format_set(threads) << "; ";
  }
  s << "ops:";
  bool first = true;
  for (const auto& [name, count] : op_list(ops)) {
    s << (first ? " " : ", ") << name << " " << compact(count);
    first = false;
  }
  return s.str();
}

CoverageRecorder::CoverageRecorder() : scope_(this) {}

CoverageRecorder::~CoverageRecorder() = default;

void CoverageRecorder::on_call(const KvCache& cache, const CacheEvent& event) noexcept {
  try {
    coverage_.add(cache.config(), cache.options(), event);
  } catch (...) {
    // std::set::insert can only fail for memory; losing one record is better than abort.
  }
}

}  // namespace kvbench::props
