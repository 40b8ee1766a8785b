#include "ci/gate_runs.h"

#include <algorithm>
#include <chrono>
#include <memory>

#include "harness/error.h"

namespace kvbench::gate {
namespace {

std::unique_ptr<KvCache> fresh_instance(const ImplInfo& impl, const GateWorkload& w,
                                        const std::shared_ptr<const ModelWeights>& weights) {
  const std::string why = impl.why_unavailable();
  require(why.empty(), "gate: implementation '", impl.name, "' is unavailable: ", why);
  ImplOptions options;
  options.threads = w.threads;
  options.poison_unused = false;  // poisoning costs work that is not the implementation's
  return impl.create(weights, options);
}

// Distinct input streams per workload, so that changing one leaves the others' inputs alone.
enum class Stream : std::uint64_t { counters = 1, decode = 2, sweep = 3 };

InputStream inputs(const GateWorkload& w, Stream stream, std::uint64_t salt = 0) {
  return InputStream(w.input_seed * 1000003u + static_cast<std::uint64_t>(stream) * 7919u + salt);
}

}  // namespace

std::map<std::string, std::uint64_t> CounterResult::as_map() const {
  return {{"kv_projection_rows", kv_projection_rows},
          {"qk_dot_products", qk_dot_products},
          {"kv_bytes_read", kv_bytes_read},
          {"bytes_held", bytes_held}};
}

CounterResult run_counter_workload(const ImplInfo& impl, const GateWorkload& w) {
  const auto weights = ModelWeights::from_seed(w.model);
  auto cache = fresh_instance(impl, w, weights);
  InputStream in = inputs(w, Stream::counters);
  const int dm = w.model.d_model;
  CounterResult result;

  std::vector<SeqId> ids;
  std::vector<float> first_prompt;
  for (int prompt : w.counters.prompts) {
    ids.push_back(cache->create_sequence());
    std::vector<float> rows = in.rows(prompt, dm);
    cache->prefill(ids.back(), rows);
    if (first_prompt.empty()) first_prompt = std::move(rows);
  }
  result.phases = "prefill";
  for (int s = 0; s < w.counters.batch_steps; ++s) {
    cache->decode(ids, in.rows(static_cast<int>(ids.size()), dm));
  }
  result.phases += ",batch";

  SeqId child = -1;
  if (impl.caps.fork && w.counters.fork_steps > 0) {
    child = cache->fork(ids.front());
    std::vector<SeqId> step_ids = {child};
    step_ids.insert(step_ids.end(), ids.begin() + 1, ids.end());
    for (int s = 0; s < w.counters.fork_steps; ++s) {
      cache->decode(step_ids, in.rows(static_cast<int>(step_ids.size()), dm));
    }
    result.phases += ",fork";
  }
  if (impl.caps.truncate) {
    const SeqId last = ids.back();
    cache->truncate(last, std::min(w.counters.truncate_to, cache->length(last)));
    result.phases += ",truncate";
  }
  const std::vector<SeqId> live = cache->sequences();
  for (int s = 0; s < w.counters.final_steps; ++s) {
    cache->decode(live, in.rows(static_cast<int>(live.size()), dm));
  }
  if (child >= 0) {
    cache->drop(child);
    result.phases += ",drop";
  }
  if (w.counters.shared_prefix > 0) {
    std::vector<float> rows(first_prompt.begin(),
                            first_prompt.begin() + static_cast<long>(w.counters.shared_prefix) * dm);
    const std::vector<float> own = in.rows(8, dm);
    rows.insert(rows.end(), own.begin(), own.end());
    cache->prefill(cache->create_sequence(), rows, PrefillRows::last);
    result.phases += ",shared_prompt";
  }

  const Stats stats = cache->stats();
  result.kv_projection_rows = stats.kv_projection_rows;
  result.qk_dot_products = stats.qk_dot_products;
  result.kv_bytes_read = stats.kv_bytes_read;
  result.bytes_held = stats.bytes_held;
  return result;
}

std::string sweep_region(int position) { return "sweep@" + std::to_string(position); }

namespace {

// A batch of sequences at `positions`, ready to decode: each prefilled with position - 1 rows
// and advanced by one warm-up decode call (which grows scratch buffers to the batch size).
std::vector<SeqId> prepare_batch(KvCache& cache, const std::vector<int>& positions,
                                 InputStream& in) {
  const int dm = cache.config().d_model;
  std::vector<SeqId> ids;
  for (int p : positions) {
    ids.push_back(cache.create_sequence());
    if (p > 1) cache.prefill(ids.back(), in.rows(p - 1, dm));
  }
  cache.decode(ids, in.rows(static_cast<int>(ids.size()), dm));
  return ids;
}

// Decodes `steps` calls of `ids` inside region `name`. The rows are drawn before the region.
void decode_region(KvCache& cache, const std::vector<SeqId>& ids, int steps, InputStream& in,
                   const std::string& name, RegionMarker& marker) {
  const int dm = cache.config().d_model;
  std::vector<std::vector<float>> rows;
  for (int s = 0; s < steps; ++s) rows.push_back(in.rows(static_cast<int>(ids.size()), dm));
  std::vector<float> out;
  marker.begin(name);
  for (int s = 0; s < steps; ++s) out = cache.decode(ids, rows[static_cast<std::size_t>(s)]);
  marker.end(name);
}

}  // namespace

void run_decode_region(const ImplInfo& impl, const GateWorkload& w, RegionMarker& marker) {
  const auto weights = ModelWeights::from_seed(w.model);
  auto cache = fresh_instance(impl, w, weights);
  InputStream in = inputs(w, Stream::decode);
  const std::vector<SeqId> ids = prepare_batch(*cache, w.decode.positions, in);
  decode_region(*cache, ids, w.decode.steps, in, "decode", marker);
}

void run_sweep_regions(const ImplInfo& impl, const GateWorkload& w, bool long_sweep,
                       RegionMarker& marker) {
  const auto weights = ModelWeights::from_seed(w.model);
  for (int t : w.sweep_positions(long_sweep)) {
    auto cache = fresh_instance(impl, w, weights);
    InputStream in = inputs(w, Stream::sweep, static_cast<std::uint64_t>(t));
    const std::vector<SeqId> ids = prepare_batch(*cache, {t}, in);
    decode_region(*cache, ids, w.sweep.steps, in, sweep_region(t), marker);
  }
}

namespace {

class Stopwatch final : public RegionMarker {
 public:
  void begin(const std::string&) override { start_ = std::chrono::steady_clock::now(); }
  void end(const std::string&) override {
    seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }
  double seconds = 0;

 private:
  std::chrono::steady_clock::time_point start_;
};

}  // namespace

std::vector<double> time_decode_region(const ImplInfo& impl, const GateWorkload& w,
                                       int repetitions) {
  std::vector<double> samples;
  for (int r = 0; r < repetitions; ++r) {
    Stopwatch watch;
    run_decode_region(impl, w, watch);
    samples.push_back(watch.seconds / w.decode.steps);
  }
  return samples;
}

}  // namespace kvbench::gate
