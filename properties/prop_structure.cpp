// Properties of the cache's structure and bookkeeping: 3 causal_and_batch_independent,
// 5 fork_truncate_drop, 6 memory_accounting, 7 op_counts.
#include <rapidcheck.h>

#include <cstring>
#include <sstream>

#include "harness/error.h"
#include "harness/weights.h"
#include "properties/ops_run.h"
#include "properties/property.h"
#include "properties/workload.h"

namespace kvbench::props {
namespace {

// ---------------------------------------------------------------------------------------
// 3. Causality and batch independence, bitwise.
//
// Two instances run the same workload with the same call shapes; only the tokens of
// sequence 0 from position t on differ. Every output the instances produce for sequence 0
// before position t, and every output of the other sequences, must then be BITWISE equal:
// the two runs make the same calls with the same shapes (same kernels, same summation
// orders), and the inputs those outputs may depend on are identical, so any difference can
// only come from reading a later token of sequence 0 (a causality leak, e.g. a prefill
// block's mask that lets row i see row i+1, or a softmax max taken over masked scores) or
// from a batch-mate's rows. A tolerance would hide a leak of small weight; bitwise does not.
// (This assumes an implementation is deterministic for identical calls, which the
// fork/truncate and bad-input properties rely on as well.)
void causal_body(const ImplInfo& impl) {
  const Workload w = gen_workload(impl, Limits{});
  const auto weights = ModelWeights::from_seed(w.config);
  const std::size_t dm = static_cast<std::size_t>(w.config.d_model);
  const int T0 = w.seqs[0].tokens();
  const int t = *rc::gen::inRange(0, T0);  // rows [0, t] shared, later ones differ
  const auto tokens_a = w.histories();
  auto tokens_b = tokens_a;
  InputStream other(w.input_seed + 0x5EEDull);
  const std::vector<float> later = other.rows(T0 - t - 1, w.config.d_model, w.input_scale);
  std::copy(later.begin(), later.end(),
            tokens_b[0].begin() + static_cast<long>((static_cast<std::size_t>(t) + 1) * dm));

  auto a = make_instance(impl, weights, w.options);
  auto b = make_instance(impl, weights, w.options);
  const Replay ra = replay(*a, w, tokens_a);
  const Replay rb = replay(*b, w, tokens_b);

  for (std::size_t i = 0; i < w.seqs.size(); ++i) {
    const std::size_t rows = i == 0 ? static_cast<std::size_t>(t) + 1
                                    : static_cast<std::size_t>(w.seqs[i].tokens());
    const std::size_t n = rows * dm;
    const std::size_t at = first_difference(ra.outputs[i].data(), rb.outputs[i].data(), n);
    if (at < n) {
      std::ostringstream msg;
      if (i == 0) {
        msg << "causality: sequence 0's output row " << at / dm
            << " changed when only its tokens after row " << t << " changed";
      } else {
        msg << "batch independence: sequence " << i << "'s output row " << at / dm
            << " changed when only sequence 0's tokens after row " << t << " changed";
      }
      msg << ": column " << at % dm << " is " << ra.outputs[i][at] << " vs " << rb.outputs[i][at]
          << " (bitwise comparison)\n  case: " << w.describe();
      fail_case(msg.str());
    }
    if (!impl.caps.holds_kv_cache) continue;
    for (int l = 0; l < w.config.layers; ++l) {
      for (int g = 0; g < w.config.kv_heads; ++g) {
        const KvRows ka = a->read_kv(ra.ids[i], l, g);
        const KvRows kb = b->read_kv(rb.ids[i], l, g);
        const std::size_t m = rows * static_cast<std::size_t>(w.config.head_dim);
        RC_ASSERT(ka.k.size() >= m && kb.k.size() >= m && ka.v.size() >= m && kb.v.size() >= m);
        if (!same_bits(ka.k.data(), kb.k.data(), m) || !same_bits(ka.v.data(), kb.v.data(), m)) {
          std::ostringstream msg;
          msg << "causality: cached K/V rows 0.." << rows - 1 << " of sequence " << i
              << " (layer " << l << ", kv_head " << g
              << ") differ although the tokens they come from are equal\n  case: "
              << w.describe();
          fail_case(msg.str());
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------
void fork_truncate_drop_body(const ImplInfo& impl) {
  Limits limits;
  ModelConfig c = gen_model(limits);
  c.capacity = token_cap(c, impl, 4, limits);
  OpsChecks checks;
  checks.outputs = true;
  checks.drop_share = true;
  checks.kv_bitwise = true;
  OpsRun run(impl, c, gen_options(impl), checks);
  run.run(12, 4);
  run.check_outputs();
}

void memory_body(const ImplInfo& impl) {
  Limits limits;
  ModelConfig c = gen_model(limits);
  // The dtype is a per-case choice (every declared dtype within the first cases).
  const int dtypes = static_cast<int>(impl.caps.dtypes.size());
  c.dtype = impl.caps.dtypes[static_cast<std::size_t>(
      dtypes <= axis_radix(Axis::variant) ? draw_choice(Axis::variant, dtypes, "dtype")
                                          : draw_uniform(dtypes, "dtype"))];
  c.capacity = token_cap(c, impl, 4, limits);
  OpsChecks checks;
  checks.kv_formula = true;
  OpsRun run(impl, c, gen_options(impl), checks);
  run.run(12, 4);
}

// ---------------------------------------------------------------------------------------
// 7. Op counts, exact. A ragged batch: every sequence prefills its prompt (sequence i gets
// i more tokens, so that no two lengths are equal), then all decode together, each from
// its own length. After every call the counters must have grown by exactly:
//   prefill of n rows onto an empty sequence:
//     kv_projection_rows: L * n (the n rows; no prefix to project again);
//   decode call, t the length of each of its sequences before the step:
//     kv_projection_rows: L * sum over the call's sequences of (t + 1) without a K/V cache
//                         (the whole prefix is projected again), L * (number of sequences)
//                         with one (only the new token);
//     qk_dot_products:    L * H * sum (t + 1), either way (one per query head and key);
//     kv_bytes_read:      L * sum (t + 1) * 2 * d * sizeof(elem) * caps.kv_row_reads(H, H_kv),
//                         the implementation's declared read model (registry.h); with an
//                         unspecified model, K/V caches only, between one read per KV head
//                         (H_kv) and one per query head (H), and the pass says so.
// Prefill dot products and bytes read are implementation-defined (torch_* compute the full
// masked score matrix; cpu_cached reads K/V once per block of rows).
// "Without a K/V cache" is caps.holds_kv_cache == false: an implementation that keeps no
// K/V rows has to project them again to attend (naive keeps the layer inputs instead).
void op_counts_body(const ImplInfo& impl) {
  Workload w = gen_workload(impl, Limits{});
  for (std::size_t i = 0; i < w.seqs.size(); ++i) w.seqs[i].prompt += static_cast<int>(i);
  w.config.capacity = std::max(w.config.capacity, w.max_tokens());
  const auto weights = ModelWeights::from_seed(w.config);
  auto cache = make_instance(impl, weights, w.options);
  const auto tokens = w.histories();
  const ModelConfig& c = w.config;
  const std::size_t dm = static_cast<std::size_t>(c.d_model);
  std::vector<SeqId> all;
  for (std::size_t i = 0; i < w.seqs.size(); ++i) all.push_back(cache->create_sequence());
  cache->reset_stats();
  const bool cached = impl.caps.holds_kv_cache;
  const std::uint64_t L = static_cast<std::uint64_t>(c.layers);
  const std::uint64_t reads = impl.caps.kv_row_reads(c.heads, c.kv_heads);

  for (std::size_t i = 0; i < w.seqs.size(); ++i) {
    const int n = w.seqs[i].prompt;
    const Stats before = cache->stats();
    cache->prefill(all[i], std::vector<float>(tokens[i].begin(),
                                              tokens[i].begin() + static_cast<long>(n * dm)));
    const std::uint64_t proj = cache->stats().kv_projection_rows - before.kv_projection_rows;
    if (proj != L * static_cast<std::uint64_t>(n)) {
      fail_case("kv_projection_rows grew by " + std::to_string(proj) + ", expected L*n = " +
                std::to_string(L * static_cast<std::uint64_t>(n)) + " at the prefill of " +
                std::to_string(n) + " rows onto empty sequence " + std::to_string(i) +
                "\n  case: " + w.describe());
    }
  }

  int max_steps = 0;
  for (const auto& s : w.seqs) max_steps = std::max(max_steps, s.steps);
  for (int step = 0; step < max_steps; ++step) {
    std::vector<SeqId> ids;
    std::vector<float> x;
    std::ostringstream lengths;  // the lengths t before the step, in call order
    std::uint64_t keys = 0;      // sum of (t + 1) over the call's sequences
    for (std::size_t i = 0; i < w.seqs.size(); ++i) {
      if (w.seqs[i].steps <= step) continue;
      const int t = w.seqs[i].prompt + step;
      ids.push_back(all[i]);
      keys += static_cast<std::uint64_t>(t) + 1;
      lengths << (ids.size() > 1 ? ", " : "") << t;
      x.insert(x.end(), tokens[i].begin() + static_cast<long>(t * dm),
               tokens[i].begin() + static_cast<long>((t + 1) * dm));
    }
    const Stats before = cache->stats();
    cache->decode(ids, x);
    const Stats after = cache->stats();
    const std::uint64_t proj = after.kv_projection_rows - before.kv_projection_rows;
    const std::uint64_t dots = after.qk_dot_products - before.qk_dot_products;
    const std::uint64_t read = after.kv_bytes_read - before.kv_bytes_read;
    const std::uint64_t want_proj = L * (cached ? ids.size() : keys);
    const std::uint64_t want_dots = L * static_cast<std::uint64_t>(c.heads) * keys;
    const std::uint64_t row = 2ull * c.head_dim * dtype_size(c.dtype);  // one K and one V row
    std::ostringstream where;
    where << "decode step " << step << " of " << ids.size() << " sequence(s) holding ["
          << lengths.str() << "] tokens (" << (cached ? "K/V cache" : "no K/V cache") << ")";
    const std::string at = " at " + where.str() + "\n  case: " + w.describe();
    if (dots != want_dots) {
      fail_case("qk_dot_products grew by " + std::to_string(dots) +
                ", expected L*H*sum(t+1) = " + std::to_string(want_dots) + at);
    }
    if (proj != want_proj) {
      fail_case("kv_projection_rows grew by " + std::to_string(proj) + ", expected " +
                std::to_string(want_proj) + at);
    }
    if (reads != 0) {
      const std::uint64_t want = L * keys * row * reads;
      if (read != want) {
        fail_case("kv_bytes_read grew by " + std::to_string(read) + ", expected L*sum(t+1)*2*d*" +
                  std::to_string(dtype_size(c.dtype)) + "*" + std::to_string(reads) + " = " +
                  std::to_string(want) + " (read model: each K/V row read " +
                  impl.caps.describe_kv_reads() + ", " + std::to_string(reads) +
                  " reads for H=" + std::to_string(c.heads) + ", H_kv=" +
                  std::to_string(c.kv_heads) + ")" + at);
      }
    } else if (cached) {
      const std::uint64_t lo = L * keys * row * c.kv_heads, hi = L * keys * row * c.heads;
      if (read < lo || read > hi) {
        fail_case("kv_bytes_read grew by " + std::to_string(read) + ", outside [" +
                  std::to_string(lo) + ", " + std::to_string(hi) +
                  "] (read model unspecified: each K/V row read once per KV head .. once per "
                  "query head)" + at);
      }
    }
  }
}

}  // namespace

Property causal_and_batch_independent() {
  return {"causal_and_batch_independent",
          "outputs and cached rows before position t are bitwise unchanged when only later "
          "tokens (or a batch-mate's tokens) change",
          [](const ImplInfo&, std::string*) { return true; }, causal_body};
}

Property fork_truncate_drop() {
  return {"fork_truncate_drop",
          "random create/prefill/decode/fork/truncate/drop sequences after a scripted path "
          "(prefill after truncate, on a fork, fork of empty, drop of a parent): every output "
          "equals the reference of its history; drop releases exactly the sequence's share",
          [](const ImplInfo& impl, std::string* why) {
            if (!supports_f32(impl, why)) return false;
            if (impl.caps.fork || impl.caps.truncate) return true;
            *why = "supports neither fork nor truncate";
            return false;
          },
          fork_truncate_drop_body};
}

Property memory_accounting() {
  return {"memory_accounting",
          "bytes_held == 2*L*H_kv*d*sizeof(elem)*sum(T) after every operation, for each "
          "supported dtype",
          holds_kv_cache, memory_body};
}

Property op_counts() {
  Property p{"op_counts",
             "exact counters on ragged batches: K/V projection rows per prefill and decode "
             "step, query-key dot products, K/V bytes read per the declared read model",
             [](const ImplInfo&, std::string*) { return true; }, op_counts_body};
  p.note = [](const ImplInfo& impl) -> std::string {
    if (impl.caps.kv_read_model != KvReadModel::unspecified) return "";
    return impl.caps.holds_kv_cache
               ? "kv_read_model unspecified: kv_bytes_read checked only within [H_kv, H] reads"
               : "kv_read_model unspecified: kv_bytes_read not checked";
  };
  return p;
}

}  // namespace kvbench::props
