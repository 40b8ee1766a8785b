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

// ---- BeamSearch ------------------------------------------------------------------------------

BeamSearch::BeamSearch(KvCache& cache, const BeamShape& shape, std::uint64_t input_seed)
    : cache_(cache), shape_(shape) {
  const ModelConfig& c = cache_.config();
  require(shape.width >= 2 && shape.width % 2 == 0,
          "beam search: width must be even and >= 2 (a prune keeps half), got ", shape.width);
  require(shape.prompt >= 1, "beam search: prompt must be >= 1 token, got ", shape.prompt);
  require(shape.steps >= 1, "beam search: steps must be >= 1, got ", shape.steps);
  require(shape.prune_every >= 1, "beam search: prune_every must be >= 1, got ",
          shape.prune_every);
  require(shape.prompt + shape.steps <= c.capacity, "beam search: prompt ", shape.prompt,
          " + steps ", shape.steps, " exceeds the capacity ", c.capacity);
  prompt_ = benchmark_inputs(c, shape.prompt, input_seed);
  rows_ = benchmark_inputs(c, shape.steps * shape.width, input_seed ^ 0xbea3ULL);
  batch_.resize(static_cast<std::size_t>(shape.width) * c.d_model);
}

void BeamSearch::start() {
  require(beams_.empty(), "beam search: start() while a round is running");
  const SeqId prompt = cache_.create_sequence();
  beams_.push_back(prompt);
  cache_.prefill(prompt, prompt_, PrefillRows::last);
  while (static_cast<int>(beams_.size()) < shape_.width) beams_.push_back(cache_.fork(prompt));
  steps_done_ = 0;
  sample();
}

void BeamSearch::step() {
  const int width = cache_.config().d_model;
  const auto row = static_cast<std::ptrdiff_t>(steps_done_) * shape_.width * width;
  std::copy_n(rows_.begin() + row, batch_.size(), batch_.begin());
  cache_.decode(beams_, batch_);
  ++steps_done_;
}

void BeamSearch::after_step() {
  sample();
  if (steps_done_ % shape_.prune_every != 0 || done()) return;
  for (std::size_t b = 1; b < beams_.size(); b += 2) {
    cache_.drop(beams_[b]);
    beams_[b] = cache_.fork(beams_[b - 1]);
  }
}

void BeamSearch::finish() {
  for (SeqId id : beams_) cache_.drop(id);
  beams_.clear();
}

int BeamSearch::prunes_per_round() const { return (shape_.steps - 1) / shape_.prune_every; }

int BeamSearch::forks_per_round() const {
  return shape_.width - 1 + prunes_per_round() * shape_.width / 2;
}

void BeamSearch::sample() {
  const Stats s = cache_.stats();
  memory_.held_peak = std::max(memory_.held_peak, s.bytes_held);
  memory_.reserved_peak = std::max(memory_.reserved_peak, s.bytes_reserved);
  held_sum_ += static_cast<double>(s.bytes_held);
  reserved_sum_ += static_cast<double>(s.bytes_reserved);
  ++memory_.samples;
  memory_.held_mean = held_sum_ / memory_.samples;
  memory_.reserved_mean = reserved_sum_ / memory_.samples;
}

// ---- PrefixPrefill ---------------------------------------------------------------------------

int cached_prefix_tokens(int prompt, int block_size) {
  require(prompt >= 0 && block_size >= 1, "cached_prefix_tokens: prompt ", prompt,
          " must be >= 0 and block_size ", block_size, " >= 1");
  const long long ninety = 9LL * prompt / 10;
  return static_cast<int>(ninety / block_size * block_size);
}

PrefixPrefill::PrefixPrefill(KvCache& cache, int prompt, int block_size,
                             std::uint64_t input_seed)
    : cache_(cache), prompt_(prompt), prefix_(0), input_seed_(input_seed) {
  require(prompt >= 1 && prompt <= cache.config().capacity, "prefix prefill: prompt must be in [1, ",
          cache.config().capacity, "], got ", prompt);
  prefix_ = cached_prefix_tokens(prompt, block_size);
}

void PrefixPrefill::prepare() {
  require(cold_id_ < 0, "prefix prefill: prepare() while a round is running");
  const ModelConfig& c = cache_.config();
  // Three streams per round: the shared prefix with the warm prompt's tail after it, and the
  // cold prompt. A splitmix64 output as each seed (as DecodeAtPosition::prompt_rows).
  InputStream seeder(input_seed_ + 3 * round_++);
  warm_rows_ = benchmark_inputs(c, prompt_, seeder.next_u64());
  cold_rows_ = benchmark_inputs(c, prompt_, seeder.next_u64());
  if (prefix_ > 0) {
    const SeqId earlier = cache_.create_sequence();
    const std::vector<float> prefix(warm_rows_.begin(),
                                    warm_rows_.begin() + static_cast<std::ptrdiff_t>(prefix_) * c.d_model);
    cache_.prefill(earlier, prefix, PrefillRows::last);
    cache_.drop(earlier);
  }
  cold_id_ = cache_.create_sequence();
  warm_id_ = cache_.create_sequence();
}

void PrefixPrefill::cold() { cache_.prefill(cold_id_, cold_rows_, PrefillRows::last); }

void PrefixPrefill::warm() { cache_.prefill(warm_id_, warm_rows_, PrefillRows::last); }

void PrefixPrefill::finish() {
  if (cold_id_ >= 0) cache_.drop(cold_id_);
  if (warm_id_ >= 0) cache_.drop(warm_id_);
  cold_id_ = warm_id_ = -1;
}

}  // namespace kvbench::bench
