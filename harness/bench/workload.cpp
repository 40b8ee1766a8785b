#include "harness/bench/workload.h"

#include <algorithm>

#include "harness/error.h"

namespace kvbench::bench {

Stats stats_delta(const Stats& before, const Stats& after) {
  Stats d;
  d.bytes_held = after.bytes_held;
  d.bytes_reserved = after.bytes_reserved;
  d.kv_projection_rows = after.kv_projection_rows - before.kv_projection_rows;
  d.qk_dot_products = after.qk_dot_products - before.qk_dot_products;
  d.kv_bytes_read = after.kv_bytes_read - before.kv_bytes_read;
  return d;
}

std::vector<float> benchmark_inputs(const ModelConfig& config, int tokens, std::uint64_t seed) {
  InputStream stream(seed);
  return stream.rows(tokens, config.d_model);
}

namespace {

void require_generation(const KvCache& cache, const std::vector<float>& inputs, int tokens,
                        const char* who) {
  const int width = cache.config().d_model;
  require(tokens >= 1 && tokens <= cache.config().capacity, who, ": tokens must be in [1, ",
          cache.config().capacity, "], got ", tokens);
  require(inputs.size() >= static_cast<std::size_t>(tokens) * width, who, ": ", tokens,
          " tokens need ", static_cast<std::size_t>(tokens) * width, " input floats, got ",
          inputs.size());
}

}  // namespace

SeqId generate(KvCache& cache, const std::vector<float>& inputs, int tokens) {
  require_generation(cache, inputs, tokens, "generate");
  const SeqId id = cache.create_sequence();
  decode_tokens(cache, id, inputs, tokens);
  return id;
}

void decode_tokens(KvCache& cache, SeqId id, const std::vector<float>& inputs, int tokens) {
  require_generation(cache, inputs, tokens, "decode_tokens");
  const int width = cache.config().d_model;
  const std::vector<SeqId> ids = {id};
  std::vector<float> row(width);
  for (int t = 0; t < tokens; ++t) {
    std::copy_n(inputs.begin() + static_cast<std::ptrdiff_t>(t) * width, width, row.begin());
    cache.decode(ids, row);
  }
}

Rollback rollback_for(const ImplInfo& impl) {
  if (impl.caps.truncate) return Rollback::truncate;
  if (impl.caps.fork) return Rollback::fork;
  fail("decode step: implementation '", impl.name,
       "' supports neither truncate nor fork, so a step cannot be repeated at one position");
}

DecodeAtPosition::DecodeAtPosition(KvCache& cache, Rollback rollback, std::uint64_t input_seed)
    : cache_(cache), rollback_(rollback), input_seed_(input_seed) {
  id_ = cache_.create_sequence();
  stepping_ = id_;
  token_ = benchmark_inputs(cache_.config(), 1, input_seed ^ 0x5eedULL);
}

void DecodeAtPosition::extend_to(int position, int chunk) {
  require(chunk >= 1, "extend_to: chunk must be >= 1, got ", chunk);
  require(position >= position_ && position < cache_.config().capacity,
          "extend_to: position must be in [", position_, ", ", cache_.config().capacity - 1,
          "] (the sequence holds ", position_, " tokens and a step needs one free slot), got ",
          position);
  while (position_ < position) {
    const int n = std::min(chunk, position - position_);
    // Token values do not matter for timing; they only need to be finite and repeatable.
    cache_.prefill(id_, prompt_rows(position_, n));
    position_ += n;
  }
}

std::vector<float> DecodeAtPosition::prompt_rows(int first, int n) const {
  const int width = cache_.config().d_model;
  std::vector<float> rows;
  rows.reserve(static_cast<std::size_t>(n) * width);
  for (int j = first; j < first + n; ++j) {
    // A splitmix64 output as the row's seed: rows of neighbouring positions share no values
    // (seeds one increment apart would give streams shifted by one element).
    InputStream seeder(input_seed_ + static_cast<std::uint64_t>(j));
    const std::vector<float> row = InputStream(seeder.next_u64()).rows(1, width);
    rows.insert(rows.end(), row.begin(), row.end());
  }
  return rows;
}

void DecodeAtPosition::before_step() {
  stepping_ = rollback_ == Rollback::fork ? cache_.fork(id_) : id_;
}

void DecodeAtPosition::step() { cache_.decode({stepping_}, token_); }

void DecodeAtPosition::after_step() {
  if (rollback_ == Rollback::fork) {
    cache_.drop(stepping_);
  } else {
    cache_.truncate(id_, position_);
  }
  stepping_ = id_;
}

}  // namespace kvbench::bench
