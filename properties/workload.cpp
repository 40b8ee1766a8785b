#include "properties/workload.h"

#include <rapidcheck.h>

#include <algorithm>
#include <sstream>

#include "harness/error.h"
#include "harness/weights.h"

namespace kvbench::props {

// ---- choices ---------------------------------------------------------------------------

namespace {

constexpr int kAxes = static_cast<int>(Axis::count);
constexpr int kRadix[kAxes] = {3, 2, 2, 2, 3, 5, 5};
constexpr const char* kAxisNames[kAxes] = {"attention", "threads",  "batch",     "layers",
                                           "variant",   "scenario", "block_size"};
// The axes the table was first searched for: their digits stay what that search gave (so
// every draw of the properties before block_size, and every reproduce string, is the same);
// later axes are searched apart, one digit each, on top.
constexpr int kFirstAxes = 6;
constexpr int kTableSizes = 101;  // RapidCheck's default max_size 100, sizes 0..100

int digit(int value, int axis) {
  for (int a = 0; a < axis; ++a) value /= kRadix[a];
  return value % kRadix[axis];
}

// The sizes of cases 0..9 of a run of n cases at max_size 100 (RapidCheck's sizeFor:
// i * 100 / (n - 1) while n < 101; from n = 101 on the first 101 cases take sizes 0..100).
std::vector<int> first_sizes(int n) {
  std::vector<int> out;
  for (int i = 0; i < 10; ++i) out.push_back(n >= kTableSizes ? i : i * 100 / (n - 1));
  return out;
}

// Values missing from the first 10 cases, summed over run lengths and axes: the search's
// cost, 0 when the table covers everything.
int missing(const std::vector<int>& table, const std::vector<std::vector<int>>& runs,
            int axis_begin, int axis_end) {
  int miss = 0;
  for (const auto& sizes : runs) {
    for (int a = axis_begin; a < axis_end; ++a) {
      unsigned seen = 0;
      for (int s : sizes) seen |= 1u << digit(table[static_cast<std::size_t>(s)], a);
      miss += kRadix[a] - __builtin_popcount(seen);
    }
  }
  return miss;
}

std::vector<int> search_choice_table() {
  int combos = 1;
  for (int a = 0; a < kFirstAxes; ++a) combos *= kRadix[a];
  std::vector<std::vector<int>> runs;
  for (int n = 10; n <= kTableSizes; ++n) {
    std::vector<int> sizes = first_sizes(n);
    if (std::find(runs.begin(), runs.end(), sizes) == runs.end()) runs.push_back(sizes);
  }
  InputStream rng(0xC0FFEEull);  // fixed: the table is part of every reproduce string
  std::vector<int> table(kTableSizes);
  for (std::size_t s = 1; s < table.size(); ++s) table[s] = static_cast<int>(rng.next_u64() % combos);
  table[0] = 0;  // size 0, every run's first case: the simplest of everything
  int cost = missing(table, runs, 0, kFirstAxes);
  for (int step = 0; step < 200000 && cost > 0; ++step) {
    const std::size_t s = 1 + rng.next_u64() % (table.size() - 1);
    const int old = table[s];
    table[s] = static_cast<int>(rng.next_u64() % combos);
    const int c = missing(table, runs, 0, kFirstAxes);
    if (c <= cost) {
      cost = c;
    } else {
      table[s] = old;
    }
  }
  // Each later axis: a digit per size, searched the same way with its own fixed seed.
  int place = combos;
  for (int a = kFirstAxes; a < kAxes; ++a) {
    InputStream axis_rng(0xB10C5ull + static_cast<std::uint64_t>(a));
    std::vector<int> digits(table.size(), 0);
    for (std::size_t s = 1; s < digits.size(); ++s) {
      digits[s] = static_cast<int>(axis_rng.next_u64() % static_cast<std::uint64_t>(kRadix[a]));
    }
    auto with = [&] {
      std::vector<int> t = table;
      for (std::size_t s = 0; s < t.size(); ++s) t[s] += place * digits[s];
      return t;
    };
    // Its cost: values missing from first-10 windows, plus pairs of values with each
    // earlier axis that no size shows (the axes must stay independent over a long run).
    auto cost_of = [&](const std::vector<int>& t) {
      int c = missing(t, runs, a, a + 1);
      for (int b = 0; b < a; ++b) {
        std::vector<char> seen(static_cast<std::size_t>(kRadix[a] * kRadix[b]), 0);
        for (int v : t) seen[static_cast<std::size_t>(digit(v, a) * kRadix[b] + digit(v, b))] = 1;
        for (char x : seen) c += x ? 0 : 1;
      }
      return c;
    };
    int axis_cost = cost_of(with());
    for (int step = 0; step < 200000 && axis_cost > 0; ++step) {
      const std::size_t s = 1 + axis_rng.next_u64() % (digits.size() - 1);
      const int old = digits[s];
      digits[s] = static_cast<int>(axis_rng.next_u64() % static_cast<std::uint64_t>(kRadix[a]));
      const int c = cost_of(with());
      if (c <= axis_cost) {
        axis_cost = c;
      } else {
        digits[s] = old;
      }
    }
    table = with();
    place *= kRadix[a];
  }
  return table;
}

ChoiceObserver& observer() {
  static ChoiceObserver o;
  return o;
}

void observe(const char* what, int value, int k) {
  if (what != nullptr && observer()) observer()(what, value, k);
}

}  // namespace

int axis_radix(Axis axis) { return kRadix[static_cast<int>(axis)]; }

const char* axis_name(Axis axis) { return kAxisNames[static_cast<int>(axis)]; }

const std::vector<int>& choice_table() {
  static const std::vector<int> table = search_choice_table();
  return table;
}

int covered_choice(Axis axis, int size) {
  const std::vector<int>& t = choice_table();
  return digit(t[static_cast<std::size_t>(std::max(0, size)) % t.size()], static_cast<int>(axis));
}

int draw_choice(Axis axis, int k, const char* what) {
  require(k >= 1 && k <= axis_radix(axis), "draw_choice: k = ", k, " outside 1..",
          axis_radix(axis), " for axis ", axis_name(axis));
  const int value = *rc::Gen<int>([axis, k](const rc::Random&, int size) {
    return rc::shrinkable::shrinkRecur(covered_choice(axis, size) % k,
                                       [](int x) { return rc::shrink::towards(x, 0); });
  });
  observe(what, value, k);
  return value;
}

int draw_uniform(int k, const char* what) {
  require(k >= 1, "draw_uniform: k = ", k, " must be >= 1");
  const int value = *rc::gen::resize(rc::kNominalSize, rc::gen::inRange(0, k));
  observe(what, value, k);
  return value;
}

void set_choice_observer(ChoiceObserver o) { observer() = std::move(o); }

// ---- sizes -----------------------------------------------------------------------------

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
  const bool several_layers = draw_choice(Axis::layers, limits.layers >= 2 ? 2 : 1, "layers") == 1;
  c.layers = several_layers ? *rc::gen::inRange(2, limits.layers + 1) : 1;
  // MHA first (where shrinking goes), then GQA, MQA, as far as limits.heads allows.
  enum Attention { kMha, kGqa, kMqa };
  std::vector<Attention> kinds = {kMha};
  if (limits.heads >= 4) kinds.push_back(kGqa);
  if (limits.heads >= 2) kinds.push_back(kMqa);
  switch (kinds[static_cast<std::size_t>(
      draw_choice(Axis::attention, static_cast<int>(kinds.size()), "attention"))]) {
    case kMha:
      c.heads = *rc::gen::inRange(1, limits.heads + 1);
      c.kv_heads = c.heads;
      break;
    case kGqa: {
      c.heads = 2 * *rc::gen::inRange(2, limits.heads / 2 + 1);  // 4, 6, 8, ...
      std::vector<int> groups;  // proper divisors, the largest first (the smallest group)
      for (int g = c.heads / 2; g > 1; --g) {
        if (c.heads % g == 0) groups.push_back(g);
      }
      c.kv_heads = groups[static_cast<std::size_t>(
          draw_uniform(static_cast<int>(groups.size())))];
      break;
    }
    case kMqa:
      c.heads = *rc::gen::inRange(2, limits.heads + 1);
      c.kv_heads = 1;
      break;
  }
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
  o.threads = impl.caps.threads ? 1 + draw_choice(Axis::threads, 2, "threads") : 1;
  if (impl.caps.blocks) {
    // Small blocks put block boundaries inside every short case (the default 16 first: a
    // shrunk case keeps a small size only when the failure needs it).
    static const int kBlockSizes[] = {16, 1, 2, 3, 7};
    o.block_size = kBlockSizes[draw_choice(Axis::block_size, 5, "block_size")];
  }
  // Prefix caches: a 2-bit lookup key in two cases of three, so that unrelated blocks share
  // a bucket in every run and only the content and predecessor checks keep lookups right.
  if (impl.caps.prefix_cache) o.prefix_hash_bits = *rc::gen::element(2, 2, 0);
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
  out << config.describe() << "; threads " << options.threads;
  if (options.block_size != ImplOptions{}.block_size) out << "; block_size " << options.block_size;
  out << "; input scale "
      << input_scale << ", input seed " << input_seed << "; " << seqs.size()
      << " seqs (prompt+steps):";
  for (std::size_t i = 0; i < seqs.size(); ++i) {
    out << (i ? ", " : " ") << seqs[i].prompt;
    if (seqs[i].chunks.size() > 1) {
      out << " [";
      for (std::size_t c = 0; c < seqs[i].chunks.size(); ++c) {
        out << (c ? "+" : "") << seqs[i].chunks[c];
      }
      out << "]";
    }
    out << "+" << seqs[i].steps;
  }
  return out.str();
}

Workload gen_workload(const ImplInfo& impl, const Limits& limits) {
  Workload w;
  w.config = gen_model(limits);
  w.options = gen_options(impl);
  const bool several = draw_choice(Axis::batch, limits.batch >= 2 ? 2 : 1, "batch") == 1;
  const int batch = several ? *rc::gen::inRange(2, limits.batch + 1) : 1;
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
    const SequencePlan& s = w.seqs[static_cast<std::size_t>(i)];
    const auto& h = tokens[static_cast<std::size_t>(i)];
    auto& out = r.outputs[static_cast<std::size_t>(i)];
    // An empty prompt is prefilled too: prefill of 0 rows must be accepted and do nothing.
    const std::vector<int> calls = s.chunks.empty() ? std::vector<int>{s.prompt} : s.chunks;
    std::size_t pos = 0;
    for (int n : calls) {
      const std::size_t end = pos + static_cast<std::size_t>(n);
      const std::vector<float> y = cache.prefill(
          id, std::vector<float>(h.begin() + static_cast<long>(pos * dm),
                                 h.begin() + static_cast<long>(end * dm)));
      out.insert(out.end(), y.begin(), y.end());
      pos = end;
    }
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
