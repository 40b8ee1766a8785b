// Properties that compare outputs and cache contents with the float64 reference:
// 1 decode_matches_reference, 2 cache_matches_reference, 4 prefill_matches_decode,
// 8 large_scores. Every comparison uses the tolerance policy of tolerance.h.
#include <rapidcheck.h>

#include <cmath>
#include <sstream>

#include "harness/weights.h"
#include "properties/property.h"
#include "properties/workload.h"

namespace kvbench::props {
namespace {

std::string sequence_label(const Workload& w, std::size_t i, SeqId id) {
  std::ostringstream out;
  out << "sequence " << i << " (id " << id << ", prompt " << w.seqs[i].prompt << ", steps "
      << w.seqs[i].steps << ")";
  return out.str();
}

// Checks every output row of every sequence of a replayed workload against the reference.
void check_outputs(const Workload& w, const ModelWeights& weights,
                   const std::vector<std::vector<float>>& tokens, const Replay& r,
                   const std::string& what) {
  const int dm = w.config.d_model;
  for (std::size_t i = 0; i < w.seqs.size(); ++i) {
    const int T = w.seqs[i].tokens();
    RC_ASSERT(r.outputs[i].size() == static_cast<std::size_t>(T) * dm);
    const Expected e = expected_outputs(weights, tokens[i]);
    const Comparison c =
        compare_rows(r.outputs[i].data(), e.f64.outputs.data(), T, dm, e.tol.data());
    std::string where = sequence_label(w, i, r.ids[i]);
    if (!c.ok) {
      where += c.worst_row < w.seqs[i].prompt ? ", worst row is a prefill row"
                                              : ", worst row is a decode step";
    }
    require_close(c, what + ", " + where, w.describe());
  }
}

void decode_body(const ImplInfo& impl) {
  const Workload w = gen_workload(impl, Limits{});
  const auto weights = ModelWeights::from_seed(w.config);
  auto cache = make_instance(impl, weights, w.options);
  const auto tokens = w.histories();
  const Replay r = replay(*cache, w, tokens);
  check_outputs(w, *weights, tokens, r, "outputs vs float64 reference");
}

void cache_body(const ImplInfo& impl) {
  const Workload w = gen_workload(impl, Limits{});
  const auto weights = ModelWeights::from_seed(w.config);
  auto cache = make_instance(impl, weights, w.options);
  const auto tokens = w.histories();
  const Replay r = replay(*cache, w, tokens);
  const ModelConfig& c = w.config;
  for (std::size_t i = 0; i < w.seqs.size(); ++i) {
    const int T = w.seqs[i].tokens();
    const Expected e = expected_outputs(*weights, tokens[i]);
    const ReferenceResult& f64 = e.f64;
    for (int l = 0; l < c.layers; ++l) {
      for (int g = 0; g < c.kv_heads; ++g) {
        const KvRows rows = cache->read_kv(r.ids[i], l, g);
        std::ostringstream where;
        where << sequence_label(w, i, r.ids[i]) << ", layer " << l << ", kv_head " << g;
        if (rows.length != T || rows.head_dim != c.head_dim ||
            rows.k.size() != static_cast<std::size_t>(T) * c.head_dim ||
            rows.v.size() != rows.k.size()) {
          std::ostringstream msg;
          msg << "read_kv shape: " << where.str() << " returned length " << rows.length
              << ", head_dim " << rows.head_dim << ", " << rows.k.size() << " K and "
              << rows.v.size() << " V floats; expected length " << T << ", head_dim "
              << c.head_dim << "\n  case: " << w.describe();
          fail_case(msg.str());
        }
        const std::size_t block = static_cast<std::size_t>(l * c.kv_heads + g);
        const auto tol_k = kv_tolerances(c, tokens[i], f64, e.f32, l, g, false);
        const auto tol_v = kv_tolerances(c, tokens[i], f64, e.f32, l, g, true);
        require_close(compare_rows(rows.k.data(), f64.k[block].data(), T, c.head_dim,
                                   tol_k.data()),
                      "cached K vs reference, " + where.str(), w.describe());
        require_close(compare_rows(rows.v.data(), f64.v[block].data(), T, c.head_dim,
                                   tol_v.data()),
                      "cached V vs reference, " + where.str(), w.describe());
      }
    }
  }
}

// Property 4. Path A feeds each sequence's history in random chunks, each a prefill of
// 1..rest rows or a single decode step (so prefill also runs on a non-empty sequence:
// the block's causal offsets). Path B decodes every token one at a time, the sequences
// batched in lockstep. Both must match the reference, and each other within the sum of
// their tolerances (triangle inequality; the summation orders differ, so not bitwise).
void prefill_body(const ImplInfo& impl) {
  const Workload w = gen_workload(impl, Limits{});
  const auto weights = ModelWeights::from_seed(w.config);
  const auto tokens = w.histories();
  const std::size_t dm = static_cast<std::size_t>(w.config.d_model);
  const std::size_t batch = w.seqs.size();

  // Path A: chunks.
  auto a = make_instance(impl, weights, w.options);
  std::vector<std::vector<float>> out_a(batch);
  std::vector<std::string> chunks(batch);
  for (std::size_t i = 0; i < batch; ++i) {
    const SeqId id = a->create_sequence();
    const int T = w.seqs[i].tokens();
    for (int pos = 0; pos < T;) {
      // The kind of chunk is uniform at every size (with inRange it would be a prefill
      // at every small size); its length grows with the size.
      const bool by_prefill = draw_uniform(2) == 0;
      const int n = by_prefill ? *rc::gen::inRange(1, T - pos + 1) : 1;
      const std::vector<float> x(tokens[i].begin() + static_cast<long>(pos * dm),
                                 tokens[i].begin() + static_cast<long>((pos + n) * dm));
      const std::vector<float> y = by_prefill ? a->prefill(id, x) : a->decode({id}, x);
      out_a[i].insert(out_a[i].end(), y.begin(), y.end());
      chunks[i] += (chunks[i].empty() ? "" : " ") + std::string(by_prefill ? "P" : "D") +
                   std::to_string(n);
      pos += n;
    }
  }

  // Path B: one token at a time, all sequences in one decode call per step.
  auto b = make_instance(impl, weights, w.options);
  std::vector<SeqId> ids_b;
  for (std::size_t i = 0; i < batch; ++i) ids_b.push_back(b->create_sequence());
  std::vector<std::vector<float>> out_b(batch);
  for (int step = 0; step < w.max_tokens(); ++step) {
    std::vector<SeqId> ids;
    std::vector<std::size_t> which;
    std::vector<float> x;
    for (std::size_t i = 0; i < batch; ++i) {
      if (w.seqs[i].tokens() <= step) continue;
      ids.push_back(ids_b[i]);
      which.push_back(i);
      const std::size_t pos = static_cast<std::size_t>(step);
      x.insert(x.end(), tokens[i].begin() + static_cast<long>(pos * dm),
               tokens[i].begin() + static_cast<long>((pos + 1) * dm));
    }
    const std::vector<float> y = b->decode(ids, x);
    for (std::size_t k = 0; k < which.size(); ++k) {
      out_b[which[k]].insert(out_b[which[k]].end(), y.begin() + static_cast<long>(k * dm),
                             y.begin() + static_cast<long>((k + 1) * dm));
    }
  }

  for (std::size_t i = 0; i < batch; ++i) {
    const int T = w.seqs[i].tokens();
    const Expected e = expected_outputs(*weights, tokens[i]);
    const std::string where = "sequence " + std::to_string(i) + " of " +
                              std::to_string(T) + " tokens, chunks " + chunks[i];
    require_close(compare_rows(out_a[i].data(), e.f64.outputs.data(), T,
                               static_cast<int>(dm), e.tol.data()),
                  "chunked prefill/decode vs reference, " + where, w.describe());
    require_close(compare_rows(out_b[i].data(), e.f64.outputs.data(), T,
                               static_cast<int>(dm), e.tol.data()),
                  "token-by-token decode vs reference, " + where, w.describe());
    require_close(compare_rows(out_a[i].data(), out_b[i].data(), T, static_cast<int>(dm),
                               e.tol.data(), 2.0),
                  "chunked vs token-by-token (2x tolerance), " + where, w.describe());
  }
}

// Property 8. The token rows are scaled by c so that the largest |q.k|/sqrt(d) reaches
// kTargetScore. Layer-0 scores are exactly quadratic in c; deeper layers nearly so, hence
// a few refinements of c from the measured ReferenceResult::max_abs_score.
constexpr double kTargetScore = 1e4;

void large_scores_body(const ImplInfo& impl) {
  Workload w = gen_workload(impl, Limits{});
  const auto weights = ModelWeights::from_seed(w.config);
  auto max_score = [&](const std::vector<std::vector<float>>& tokens) {
    double s = 0;
    for (const auto& h : tokens) s = std::max(s, reference_forward(*weights, h).max_abs_score);
    return s;
  };
  double score = max_score(w.histories());
  RC_PRE(score > 0.0);  // all-zero scores cannot be scaled (never seen in practice)
  for (int refine = 0; refine < 4 && std::abs(score / kTargetScore - 1) > 0.25; ++refine) {
    w.input_scale = static_cast<float>(w.input_scale * std::sqrt(kTargetScore / score));
    score = max_score(w.histories());
  }
  if (score < 0.5 * kTargetScore) {
    fail_case("could not scale the inputs to attention scores of " + std::to_string(kTargetScore) +
            " (reached " + std::to_string(score) + ")\n  case: " + w.describe());
  }
  auto cache = make_instance(impl, weights, w.options);
  const auto tokens = w.histories();
  const Replay r = replay(*cache, w, tokens);
  std::ostringstream what;
  what << "outputs at attention scores up to " << score << " vs float64 reference";
  check_outputs(w, *weights, tokens, r, what.str());
}

}  // namespace

Property decode_matches_reference() {
  return {"decode_matches_reference",
          "prefill + ragged batched decode: every output row within tolerance of the float64 "
          "reference of its sequence's history",
          supports_f32, decode_body};
}

Property cache_matches_reference() {
  return {"cache_matches_reference",
          "read_kv rows equal the reference's K/V projections of every layer and KV head",
          [](const ImplInfo& impl, std::string* why) {
            return supports_f32(impl, why) && holds_kv_cache(impl, why);
          },
          cache_body};
}

Property prefill_matches_decode() {
  return {"prefill_matches_decode",
          "random prefill/decode chunking equals token-by-token decode (and the reference)",
          supports_f32, prefill_body};
}

Property large_scores() {
  return {"large_scores",
          "inputs scaled to attention scores of 1e4: finite outputs within tolerance of the "
          "reference",
          supports_f32, large_scores_body};
}

}  // namespace kvbench::props
