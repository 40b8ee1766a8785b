// Property 12, reduced_precision_storage: an implementation that declares fp16 or bf16
// storage gets its numerics verified, not only its memory.
//
// The float64 reference models the storage exactly (reference.h: K and V rounded to the
// format right after their projection, round_to_storage), so the implementation's outputs
// are compared with the reference OF THE SAME STORED MODEL, within the fp32 policy of
// tolerance.h plus one term for rounding flips:
//
//   FLIPS. The implementation rounds its fp32 K/V value, the reference its float64 one; the
//   two round to different neighbours when they straddle a midpoint of the format, i.e.
//   when the value lies within the fp32 error (~u |x|) of a midpoint: probability about
//   2u / u_s per element (2^-12 for fp16, 2^-15 for bf16). A flip moves one element by one
//   storage spacing, 2 u_s |x| <= 2 u_s M, and through the softmax (weights <= 1) and a
//   weight of magnitude <= sqrt(3) moves an output by at most ~2 sqrt(3) u_s M per layer:
//       flip(r) = 4 * u_s * L * M(r)    (u_s = 2^-11 fp16, 2^-8 bf16; M(r) as in tolerance.h)
//   allowed for ~one flip per row's cone; several flips in one cone have probability
//   ~(n 2^-12)^2, small for the suite's sizes.
//
// The cached rows are checked strictly:
//   * every element of every layer is a value of the declared format (round_to_storage(e)
//     == e): storing fp16 while declaring bf16, or keeping fp32, fails here;
//   * layer 0's rows are the reference projection ROUNDED TO NEAREST: the exact float64
//     projection k = W_k x (x: the token rows, exact in fp32) is known, and any fp32
//     evaluation of that dot product errs by at most gamma(d_model) * sum_i |w_i x_i|
//     (Higham, Thm. 3.1, any order, FMA included), so a round-to-nearest cache stores a
//     value in [round(k - b), round(k + b)]; rounding toward zero leaves it for about half
//     of the elements;
//   * deeper layers' rows: within the fp32 K/V tolerance plus one storage spacing (a flip
//     of the row's own rounding: its input carries the earlier layers' fp32 errors).
#include <rapidcheck.h>

#include <cmath>
#include <iomanip>
#include <sstream>

#include "harness/weights.h"
#include "properties/property.h"
#include "properties/workload.h"

namespace kvbench::props {
namespace {

std::vector<DType> reduced_dtypes(const ImplInfo& impl) {
  std::vector<DType> out;
  for (DType t : {DType::f16, DType::bf16}) {
    if (impl.caps.supports(t)) out.push_back(t);
  }
  return out;
}

void check_stored_rows(const Workload& w, const ModelWeights& weights,
                       const std::vector<float>& tokens, const Expected& e, const KvRows& kv,
                       int layer, int g, bool values, const std::string& where) {
  const ModelConfig& c = w.config;
  const int d = c.head_dim, dm = c.d_model, T = kv.length;
  const std::vector<float>& rows = values ? kv.v : kv.k;
  const std::string side = values ? "V" : "K";
  const std::string fmt = dtype_name(c.dtype);
  auto fail_at = [&](int t, int i, const std::string& why) {
    std::ostringstream m;
    m << "cached " << side << " " << where << ", position " << t << ", element " << i
      << ": " << why << "\n  case: " << w.describe();
    fail_case(m.str());
  };
  for (int t = 0; t < T; ++t) {
    for (int i = 0; i < d; ++i) {
      const double stored = rows[static_cast<std::size_t>(t) * d + i];
      if (round_to_storage(stored, c.dtype) != stored) {
        std::ostringstream why;
        why << std::setprecision(9) << stored << " is not a " << fmt << " value (nearest "
            << round_to_storage(stored, c.dtype) << ")";
        fail_at(t, i, why.str());
      }
    }
  }
  const std::size_t block = static_cast<std::size_t>(layer * c.kv_heads + g);
  const std::vector<double>& ref = values ? e.f64.v[block] : e.f64.k[block];
  const double u = kF32UnitRoundoff;
  if (layer == 0) {
    const LayerWeights& lw = weights.layers[0];
    const std::vector<float>& wm = values ? lw.wv : lw.wk;
    const double gamma = dm * u / (1 - dm * u);
    for (int t = 0; t < T; ++t) {
      for (int i = 0; i < d; ++i) {
        const float* wr = wm.data() + static_cast<std::size_t>(g * d + i) * dm;
        const float* x = tokens.data() + static_cast<std::size_t>(t) * dm;
        double exact = 0, magnitude = 0;
        for (int j = 0; j < dm; ++j) {
          exact += static_cast<double>(wr[j]) * x[j];
          magnitude += std::abs(static_cast<double>(wr[j]) * x[j]);
        }
        const double b = gamma * magnitude;
        const double lo = round_to_storage(exact - b, c.dtype);
        const double hi = round_to_storage(exact + b, c.dtype);
        const double stored = rows[static_cast<std::size_t>(t) * d + i];
        if (stored < lo || stored > hi) {
          std::ostringstream why;
          why << std::setprecision(9) << "stored " << stored << ", but the projection is "
              << exact << " +- " << b << " (fp32 error bound), which rounds to nearest in "
              << fmt << " to [" << lo << ", " << hi << "]";
          fail_at(t, i, why.str());
        }
      }
    }
    return;
  }
  std::vector<RowTolerance> tol = kv_tolerances(c, tokens, e.f64, e.f32, layer, g, values);
  const double us = storage_unit_roundoff(c.dtype);
  for (int t = 0; t < T; ++t) {
    double row_max = 0;
    for (int i = 0; i < d; ++i) row_max = std::max(row_max, std::abs(ref[t * d + i]));
    tol[static_cast<std::size_t>(t)].floor += 2 * us * row_max;  // one spacing: a flip
  }
  require_close(compare_rows(rows.data(), ref.data(), T, d, tol.data()),
                "cached " + side + " vs the " + fmt + "-stored reference, " + where,
                w.describe());
}

void storage_body(const ImplInfo& impl) {
  Workload w = gen_workload(impl, Limits{});
  const std::vector<DType> dtypes = reduced_dtypes(impl);
  w.config.dtype = dtypes[static_cast<std::size_t>(
      draw_uniform(static_cast<int>(dtypes.size()), "storage dtype"))];
  const auto weights = ModelWeights::from_seed(w.config);
  auto cache = make_instance(impl, weights, w.options);
  const auto tokens = w.histories();
  const Replay r = replay(*cache, w, tokens);
  const ModelConfig& c = w.config;
  const double us = storage_unit_roundoff(c.dtype);
  for (std::size_t i = 0; i < w.seqs.size(); ++i) {
    const int T = w.seqs[i].tokens();
    Expected e = expected_outputs(*weights, tokens[i]);  // the reference stores dtype too
    const std::vector<double> m = causal_magnitude(c, tokens[i], e.f64);
    for (int t = 0; t < T; ++t) {
      e.tol[static_cast<std::size_t>(t)].floor += 4 * us * c.layers * m[static_cast<std::size_t>(t)];
    }
    std::ostringstream where;
    where << "sequence " << i << " (" << T << " tokens, " << dtype_name(c.dtype) << " storage)";
    require_close(compare_rows(r.outputs[i].data(), e.f64.outputs.data(), T, c.d_model,
                               e.tol.data()),
                  "outputs vs the float64 reference of the " + dtype_name(c.dtype) +
                      "-stored model, " + where.str(),
                  w.describe());
    if (!impl.caps.holds_kv_cache) continue;
    for (int l = 0; l < c.layers; ++l) {
      for (int g = 0; g < c.kv_heads; ++g) {
        const KvRows kv = cache->read_kv(r.ids[i], l, g);
        std::ostringstream at;
        at << "of " << where.str() << ", layer " << l << ", kv_head " << g;
        if (kv.length != T || kv.k.size() != static_cast<std::size_t>(T) * c.head_dim ||
            kv.v.size() != kv.k.size()) {
          fail_case("read_kv shape " + at.str() + ": length " + std::to_string(kv.length) +
                    "\n  case: " + w.describe());
        }
        check_stored_rows(w, *weights, tokens[i], e, kv, l, g, false, at.str());
        check_stored_rows(w, *weights, tokens[i], e, kv, l, g, true, at.str());
      }
    }
  }
}

}  // namespace

Property reduced_precision_storage() {
  return {"reduced_precision_storage",
          "declared fp16/bf16 storage: outputs vs the reference of the same stored model, "
          "cached rows are values of the format rounded to nearest",
          [](const ImplInfo& impl, std::string* why) {
            if (!reduced_dtypes(impl).empty()) return true;
            *why = "declares fp32 storage only";
            return false;
          },
          storage_body};
}

}  // namespace kvbench::props
