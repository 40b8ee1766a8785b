#include "properties/workload.h"

#include <rapidcheck.h>

#include <algorithm>
#include <sstream>

#include "harness/error.h"
#include "harness/weights.h"

namespace kvbench::props {

double decode_work(const ModelConfig& c, bool reprojects_prefix, int tokens) {
  const double dm = c.d_model, d = c.head_dim, H = c.heads, G = c.kv_heads;
  const double T = tokens;
  const double projections = dm * d * (H + 2 * G) + H * d * dm;  // Q, K, V, O of one row
  const double attention = 2 * H * d * T * (T + 1) / 2;          // q.k and p.v, sum_t t keys
  const double reprojection = reprojects_prefix ? 2 * G * d * dm * (T - 1) * T / 2 : 0;
  return c.layers * (T * projections + attention + reprojection);
}

int token_cap(const ModelConfig& c, const ImplInfo& impl, int sequences, const Limits& limits) {
  const bool reprojects = !impl.caps.holds_kv_cache;
  int cap = 1;
  while (cap < limits.prompt + limits.steps &&
         sequences * decode_work(c, reprojects, cap + 1) <= limits.work) {
    ++cap;
  }
  return cap;
}

ModelConfig gen_model(const Limits& limits) {
  ModelConfig c;
  c.layers = *rc::gen::inRange(1, limits.layers + 1);
  c.heads = *rc::gen::inRange(1, limits.heads + 1);
  // Divisors of H from H down to 1: MHA first (where shrinking goes), then GQA, MQA last.
  std::vector<int> divisors;
  for (int g = c.heads; g >= 1; --g) {
    if (c.heads % g == 0) divisors.push_back(g);
  }
  c.kv_heads = *rc::gen::elementOf(divisors);
  c.head_dim = *rc::gen::inRange(1, limits.head_dim + 1);
  c.d_model = *rc::gen::inRange(1, limits.d_model + 1);
  c.seed = *rc::gen::inRange<std::uint64_t>(0, 1u << 20);
  c.capacity = limits.prompt + limits.steps;
  c.dtype = DType::f32;
  return c;
}

ImplOptions gen_options(const ImplInfo& impl) {
  ImplOptions o;
  o.poison_unused = true;
  o.threads = impl.caps.threads ? *rc::gen::inRange(1, 3) : 1;
  return o;
}

std::vector<float> Workload::history(int i) const {
  // One independent stream per sequence, so shrinking one sequence leaves the others' rows.
  InputStream stream(input_seed * 0x9E3779B97F4A7C15ull + static_cast<std::uint64_t>(i) + 1);
  return stream.rows(seqs[static_cast<std::size_t>(i)].tokens(), config.d_model, input_scale);
}

std::vector<std::vector<float>> Workload::histories() const {
  std::vector<std::vector<float>> out;
  for (int i = 0; i < static_cast<int>(seqs.size()); ++i) out.push_back(history(i));
  return out;
}

int Workload::max_tokens() const {
  int m = 0;
  for (const auto& s : seqs) m = std::max(m, s.tokens());
  return m;
}

std::string Workload::describe() const {
  std::ostringstream out;
  out << config.describe() << "; threads " << options.threads << "; input scale "
      << input_scale << ", input seed " << input_seed << "; " << seqs.size()
      << " seqs (prompt+steps):";
  for (std::size_t i = 0; i < seqs.size(); ++i) {
    out << (i ? ", " : " ") << seqs[i].prompt << "+" << seqs[i].steps;
  }
  return out.str();
}

Workload gen_workload(const ImplInfo& impl, const Limits& limits) {
  Workload w;
  w.config = gen_model(limits);
  w.options = gen_options(impl);
  const int batch = *rc::gen::inRange(1, limits.batch + 1);
  const int cap = token_cap(w.config, impl, batch, limits);
  for (int i = 0; i < batch; ++i) {
    SequencePlan s;
    s.prompt = *rc::gen::inRange(0, std::min(limits.prompt, cap - 1) + 1);
    s.steps = *rc::gen::inRange(1, std::min(limits.steps, cap - s.prompt) + 1);
    w.seqs.push_back(s);
  }
  w.input_seed = *rc::gen::inRange<std::uint64_t>(0, 1u << 20);
  w.order_seed = *rc::gen::inRange<std::uint64_t>(0, 1u << 20);
  // Capacity exactly the longest sequence sometimes: the last slot gets used.
  w.config.capacity = w.max_tokens() + *rc::gen::inRange(0, 4);
  return w;
}

namespace {

// Fisher-Yates with the platform-independent InputStream (std::shuffle's algorithm is
// implementation-defined, and a reproduce string must replay the same order everywhere).
void shuffle(std::vector<int>& v, std::uint64_t seed) {
  InputStream rng(seed);
  for (std::size_t i = v.size(); i > 1; --i) {
    std::swap(v[i - 1], v[rng.next_u64() % i]);
  }
}

}  // namespace

Replay replay(KvCache& cache, const Workload& w, const std::vector<std::vector<float>>& tokens) {
  const std::size_t dm = static_cast<std::size_t>(w.config.d_model);
  const int batch = static_cast<int>(w.seqs.size());
  Replay r;
  r.outputs.resize(static_cast<std::size_t>(batch));
  for (int i = 0; i < batch; ++i) {
    const SeqId id = cache.create_sequence();
    r.ids.push_back(id);
    const std::size_t p = static_cast<std::size_t>(w.seqs[static_cast<std::size_t>(i)].prompt);
    const auto& h = tokens[static_cast<std::size_t>(i)];
    // An empty prompt is prefilled too: prefill of 0 rows must be accepted and do nothing.
    r.outputs[static_cast<std::size_t>(i)] =
        cache.prefill(id, std::vector<float>(h.begin(), h.begin() + static_cast<long>(p * dm)));
  }
  for (int step = 0;; ++step) {
    std::vector<int> active;
    for (int i = 0; i < batch; ++i) {
      if (w.seqs[static_cast<std::size_t>(i)].steps > step) active.push_back(i);
    }
    if (active.empty()) break;
    shuffle(active, w.order_seed + static_cast<std::uint64_t>(step));
    std::vector<SeqId> ids;
    std::vector<float> x;
    for (int i : active) {
      const std::size_t pos =
          static_cast<std::size_t>(w.seqs[static_cast<std::size_t>(i)].prompt + step);
      const auto& h = tokens[static_cast<std::size_t>(i)];
      ids.push_back(r.ids[static_cast<std::size_t>(i)]);
      x.insert(x.end(), h.begin() + static_cast<long>(pos * dm),
               h.begin() + static_cast<long>((pos + 1) * dm));
    }
    const std::vector<float> y = cache.decode(ids, x);
    for (std::size_t k = 0; k < active.size(); ++k) {
      auto& out = r.outputs[static_cast<std::size_t>(active[k])];
      out.insert(out.end(), y.begin() + static_cast<long>(k * dm),
                 y.begin() + static_cast<long>((k + 1) * dm));
    }
  }
  return r;
}

Expected expected_outputs(const ModelWeights& weights, const std::vector<float>& tokens,
                          const std::vector<int>& rows) {
  Expected e;
  e.f64 = reference_forward(weights, tokens, RefPrecision::f64, rows);
  e.f32 = measure_f32_error(weights, tokens, e.f64);
  e.tol = output_tolerances(weights.config, tokens, e.f64, e.f32);
  return e;
}

std::unique_ptr<KvCache> make_instance(const ImplInfo& impl,
                                       std::shared_ptr<const ModelWeights> weights,
                                       const ImplOptions& options) {
  const std::string described = weights->config.describe();
  try {
    auto cache = impl.create(std::move(weights), options);
    if (!cache) fail_case(impl.name + ".create returned null for " + described);
    return cache;
  } catch (const Error& e) {
    fail_case(impl.name + " rejected a valid model (" + described + "): " + e.what());
  }
}

void fail_case(const std::string& message) {
  throw rc::detail::CaseResult(rc::detail::CaseResult::Type::Failure, message);
}

void require_close(const Comparison& c, const std::string& what, const std::string& context) {
  if (c.ok) return;
  fail_case(what + ": " + c.describe() + "\n  case: " + context);
}

std::string show_row(const float* row, int width, int n) {
  std::ostringstream out;
  out << "[";
  for (int j = 0; j < std::min(width, n); ++j) out << (j ? ", " : "") << row[j];
  if (width > n) out << ", ...";
  out << "]";
  return out.str();
}

}  // namespace kvbench::props
