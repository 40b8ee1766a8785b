// Property 11, long_context: the verified region covers the benchmarked one.
//
// The other properties draw at most 128 tokens per sequence; `kvbench bench` times contexts
// of 32k. Paths that only start deep into a sequence (cpu_cached splits a decode row's keys
// across threads from t >= 512; prefill tiles blocks of >= 64 rows; block tables cross
// their boundaries; a position offset or a storage format that goes wrong only past some
// position) are never reached there. This property runs FEW cases of LONG sequences on
// NARROW models, so the float64 reference stays cheap:
//
//   model    L 1-2 (L = 2 only up to max/2 tokens: its first layer's reference is O(T^2)),
//            d_model 1-32, H 1-8 with any divisor as H_kv (MHA, GQA, MQA), d 1-32 with
//            H * d <= 128; threads 1-2 where the implementation honours them.
//   lengths  every case has one LONG sequence of max/2 .. max tokens, the first exactly max (8192,
//            `verify --max-tokens` raises it), drawn among boundary values (just below, at
//            and above powers of two and multiples of 64/256/512) or at random in between;
//            shrinking walks it down towards 1.
//   shapes   "prefill" mode: the long prompt in 1-3 prefill calls (so prefill also runs at
//            long offsets), then 1-16 decode steps; "decode" mode: a short prompt, then a
//            long run of single-token decode steps (up to 4096 of them; an implementation
//            without a K/V cache, which re-projects its whole prefix every step, gets 16).
//            0-3 short sequences (1-300 tokens) ride along in the same decode calls
//            (ragged batches mixing a long sequence with short ones).
//   checks   every output row of the short sequences and a sample of the long one's (the
//            first 64, every row next to a multiple of 64 or a power of two, every 16th row
//            from a random offset, the first 16 and the last 64 decoded rows) against the float64 reference of the
//            exact history, and every cached K/V row (read_kv) of every layer and KV head,
//            with the one tolerance policy (tolerance.h), NaN poison in unused slots.
//
// Why the sample catches what it must: a bug that starts at position P changes every row
// from P on (an offset reads the wrong key: error ~ M / P on a row just past P, against a
// tolerance ~ 1e-6 M), and the sample has a row within 16 positions of any P; a storage
// format bug shows in the cached rows themselves, all of which are compared.
#include <rapidcheck.h>

#include <algorithm>
#include <set>
#include <sstream>

#include "harness/error.h"
#include "harness/weights.h"
#include "properties/property.h"
#include "properties/workload.h"

namespace kvbench::props {
namespace {

int g_max_tokens = 8192;

// A draw uniform over [lo, hi] whatever RapidCheck's size, shrinking towards `target`
// (RapidCheck's inRange scales with the size, which would keep every case short).
rc::Gen<int> uniform_shrinking_to(int lo, int hi, int target) {
  return rc::Gen<int>([lo, hi, target](const rc::Random& random, int) {
    rc::Random r = random;
    const int span = hi - lo + 1;
    const int value = lo + static_cast<int>(r.next() % static_cast<std::uint64_t>(span));
    return rc::shrinkable::shrinkRecur(
        value, [target](int v) { return rc::shrink::towards(v, target); });
  });
}

// Lengths next to the boundaries where implementations change paths, within [lo, hi].
std::vector<int> boundary_lengths(int lo, int hi) {
  std::set<int> out;
  auto add_around = [&](long long b) {
    for (long long v = b - 1; v <= b + 1; ++v) {
      if (v >= lo && v <= hi) out.insert(static_cast<int>(v));
    }
  };
  for (long long p = 1; p <= 2LL * hi; p *= 2) add_around(p);
  for (int m : {64, 256, 512}) {
    for (long long b = m; b <= hi + 1; b += m) add_around(b);
  }
  return {out.begin(), out.end()};
}

// The long sequence's length: exactly max in a run's first case (RapidCheck's size 0, so
// every run reaches --max-tokens), else a boundary value or a random one in [max/2, max];
// shrinks towards 1 (a failure that needs length shows how much it needs).
int draw_long_length(int max_tokens) {
  const int lo = std::max(1, max_tokens / 2);
  const std::vector<int> boundaries = boundary_lengths(lo, max_tokens);
  return *rc::Gen<int>([=](const rc::Random& random, int size) {
    rc::Random r = random;
    int value = max_tokens;
    if (size > 0) {
      const std::uint64_t pick = r.next();
      value = pick % 2 == 0
                  ? boundaries[static_cast<std::size_t>((pick / 2) % boundaries.size())]
                  : lo + static_cast<int>((pick / 2) % static_cast<std::uint64_t>(max_tokens - lo + 1));
    }
    return rc::shrinkable::shrinkRecur(value, [](int v) { return rc::shrink::towards(v, 1); });
  });
}

// A long case is a Workload (workload.h: its token rows, its replay with ragged, shuffled
// decode steps) whose seqs[0] is the long sequence, plus the shape of that sequence.
struct LongCase {
  Workload w;
  bool decode_mode = false;
  std::string describe() const {
    return (decode_mode ? "decode run; " : "long prefill; ") + w.describe();
  }
};

// Splits `prompt` into 1-3 prefill calls.
std::vector<int> draw_chunks(int prompt) {
  if (prompt == 0) return {0};
  const int pieces = std::min(prompt, *uniform_shrinking_to(1, 3, 1));
  std::vector<int> cuts = {0, prompt};
  for (int i = 1; i < pieces; ++i) cuts.push_back(*uniform_shrinking_to(1, prompt - 1, 1));
  std::sort(cuts.begin(), cuts.end());
  std::vector<int> chunks;
  for (std::size_t i = 1; i < cuts.size(); ++i) {
    if (cuts[i] > cuts[i - 1]) chunks.push_back(cuts[i] - cuts[i - 1]);
  }
  return chunks;
}

LongCase gen_long_case(const ImplInfo& impl) {
  LongCase lc;
  Workload& w = lc.w;
  const int max_tokens = g_max_tokens;
  const int T = draw_long_length(max_tokens);
  ModelConfig& c = w.config;
  c.layers = T <= max_tokens / 2 ? *uniform_shrinking_to(1, 2, 1) : 1;
  c.heads = *uniform_shrinking_to(1, 8, 1);
  std::vector<int> divisors;  // H first (MHA, where shrinking goes), then GQA, MQA
  for (int g = c.heads; g >= 1; --g) {
    if (c.heads % g == 0) divisors.push_back(g);
  }
  c.kv_heads = divisors[static_cast<std::size_t>(
      *uniform_shrinking_to(0, static_cast<int>(divisors.size()) - 1, 0))];
  c.head_dim = *uniform_shrinking_to(1, std::min(32, 128 / c.heads), 1);
  c.d_model = *uniform_shrinking_to(1, 32, 1);
  c.seed = static_cast<std::uint64_t>(*uniform_shrinking_to(0, 1 << 20, 0));
  c.dtype = DType::f32;
  w.options.poison_unused = true;
  w.options.threads = impl.caps.threads ? *uniform_shrinking_to(1, 2, 1) : 1;

  // Decode runs: up to 4096 steps; an implementation that re-projects its prefix every
  // step (no K/V cache) pays O(T) per step, so it gets at most 16.
  const int max_run = impl.caps.holds_kv_cache ? 4096 : 16;
  lc.decode_mode = *uniform_shrinking_to(0, 1, 0) == 1;
  SequencePlan lp;
  if (lc.decode_mode) {
    lp.steps = std::min({T, max_run, *uniform_shrinking_to(1, T, 1)});
    lp.steps = std::max(lp.steps, std::min(T, max_run) / 2);  // a long run
  } else {
    lp.steps = std::min(T, *uniform_shrinking_to(1, 16, 1));
  }
  lp.prompt = T - lp.steps;
  lp.chunks = draw_chunks(lp.prompt);
  w.seqs.push_back(lp);

  const int shorts = *uniform_shrinking_to(0, 3, 0);
  for (int i = 0; i < shorts; ++i) {
    SequencePlan s;
    const int t = *uniform_shrinking_to(1, 300, 1);
    s.steps = std::min(t, std::max(1, *uniform_shrinking_to(1, lp.steps, 1)));
    s.prompt = t - s.steps;
    s.chunks = draw_chunks(s.prompt);
    w.seqs.push_back(s);
  }
  w.input_seed = static_cast<std::uint64_t>(*uniform_shrinking_to(0, 1 << 20, 0));
  w.order_seed = static_cast<std::uint64_t>(*uniform_shrinking_to(0, 1 << 20, 0));
  c.capacity = w.max_tokens() + *uniform_shrinking_to(0, 3, 0);
  return lc;
}

// The rows of a sequence whose outputs are compared (ascending positions < T).
std::vector<int> checked_rows(const SequencePlan& s, std::uint64_t seed) {
  const int T = s.tokens();
  if (T <= 1024) {
    std::vector<int> all(static_cast<std::size_t>(T));
    for (int t = 0; t < T; ++t) all[static_cast<std::size_t>(t)] = t;
    return all;
  }
  std::set<int> rows;
  for (int t = 0; t < 64; ++t) rows.insert(t);
  for (int b = 64; b <= T; b += 64) {
    for (int t = b - 1; t <= b + 1; ++t) rows.insert(t);
  }
  for (long long p = 128; p <= T; p *= 2) rows.insert(static_cast<int>(p));
  for (int t = static_cast<int>(seed % 16); t < T; t += 16) rows.insert(t);
  for (int t = std::max(s.prompt, T - 64); t < T; ++t) rows.insert(t);  // the last 64
  for (int t = s.prompt; t < std::min(T, s.prompt + 16); ++t) rows.insert(t);  // first decodes
  if (s.prompt > 0) rows.insert(s.prompt - 1);  // the last prefill row
  std::vector<int> out;
  for (int t : rows) {
    if (t >= 0 && t < T) out.push_back(t);
  }
  return out;
}

void long_body(const ImplInfo& impl) {
  const LongCase lc = gen_long_case(impl);
  const Workload& w = lc.w;
  const auto weights = ModelWeights::from_seed(w.config);
  auto cache = make_instance(impl, weights, w.options);
  const std::size_t dm = static_cast<std::size_t>(w.config.d_model);
  const std::size_t batch = w.seqs.size();
  const std::vector<std::vector<float>> tokens = w.histories();
  const Replay r = replay(*cache, w, tokens);
  const std::vector<SeqId>& ids = r.ids;
  const std::vector<std::vector<float>>& outputs = r.outputs;

  const ModelConfig& c = w.config;
  for (std::size_t i = 0; i < batch; ++i) {
    const SequencePlan& s = w.seqs[i];
    const int T = s.tokens();
    RC_ASSERT(outputs[i].size() == static_cast<std::size_t>(T) * dm);
    const std::vector<int> rows = checked_rows(s, w.input_seed + i);
    const Expected e = expected_outputs(*weights, tokens[i], rows);
    std::vector<float> actual;
    actual.reserve(rows.size() * dm);
    for (int r : rows) {
      actual.insert(actual.end(), outputs[i].begin() + static_cast<long>(r * dm),
                    outputs[i].begin() + static_cast<long>((r + 1) * dm));
    }
    const Comparison cmp = compare_rows(actual.data(), e.f64.outputs.data(),
                                        static_cast<int>(rows.size()), static_cast<int>(dm),
                                        e.tol.data());
    if (!cmp.ok) {
      const int pos = rows[static_cast<std::size_t>(cmp.worst_row)];
      std::ostringstream where;
      where << "outputs vs float64 reference, sequence " << i << " (" << T << " tokens, "
            << rows.size() << " rows checked), worst row is position " << pos << " ("
            << (pos < s.prompt ? "prefill" : "decode step") << ")";
      require_close(cmp, where.str(), lc.describe());
    }
    if (!impl.caps.holds_kv_cache) continue;
    for (int l = 0; l < c.layers; ++l) {
      for (int g = 0; g < c.kv_heads; ++g) {
        const KvRows kv = cache->read_kv(ids[i], l, g);
        std::ostringstream where;
        where << "sequence " << i << " (" << T << " tokens), layer " << l << ", kv_head " << g;
        if (kv.length != T || kv.k.size() != static_cast<std::size_t>(T) * c.head_dim ||
            kv.v.size() != kv.k.size()) {
          fail_case("read_kv shape: " + where.str() + " returned length " +
                    std::to_string(kv.length) + "\n  case: " + lc.describe());
        }
        const std::size_t block = static_cast<std::size_t>(l * c.kv_heads + g);
        for (bool values : {false, true}) {
          const auto tol = kv_tolerances(c, tokens[i], e.f64, e.f32, l, g, values);
          const Comparison kc =
              compare_rows(values ? kv.v.data() : kv.k.data(),
                           values ? e.f64.v[block].data() : e.f64.k[block].data(), T,
                           c.head_dim, tol.data());
          if (!kc.ok) {
            where << ", worst position " << kc.worst_row;
            require_close(kc, std::string(values ? "cached V" : "cached K") +
                                  " vs reference, " + where.str(),
                          lc.describe());
          }
        }
      }
    }
  }
}

}  // namespace

void set_long_context_max_tokens(int tokens) {
  require(tokens >= 64, "--max-tokens: ", tokens, " is below 64");
  g_max_tokens = tokens;
}

int long_context_max_tokens() { return g_max_tokens; }

Property long_context() {
  Property p{"long_context",
             "few cases of up to 8192 tokens (--max-tokens) on narrow models: long prefills, "
             "long decode runs, ragged batches; sampled outputs and every cached row vs the "
             "reference",
             supports_f32, long_body};
  p.cases_per_100 = 4;
  return p;
}

}  // namespace kvbench::props
