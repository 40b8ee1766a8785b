// 9. Bad input: every rejected call raises kvbench::Error naming the problem and the value,
// and leaves the cache exactly as it was: a twin instance that never saw the bad call gives
// bitwise the same results afterwards. And inconsistent dimensions are rejected when an
// instance is constructed.
#include <rapidcheck.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <sstream>

#include "harness/error.h"
#include "harness/weights.h"
#include "properties/property.h"
#include "properties/workload.h"

namespace kvbench::props {
namespace {

// One bad call and the words its error message must contain.
struct BadCall {
  std::string what;                    // "decode of ids [3, 3]"
  std::function<void(KvCache&)> call;
  std::vector<std::string> needles;    // each must appear in Error::what()
};

std::string ids_text(const std::vector<SeqId>& ids) {
  std::string s = "[";
  for (std::size_t i = 0; i < ids.size(); ++i) s += (i ? ", " : "") + std::to_string(ids[i]);
  return s + "]";
}

// What a live instance looks like from outside: everything the bad call must not change.
struct Observed {
  std::vector<SeqId> ids;
  std::vector<int> lengths;
  Stats stats;
  std::vector<float> kv;  // every cached row of every sequence, flattened (K/V caches)
};

Observed observe(const KvCache& cache, bool holds_kv) {
  Observed o;
  o.ids = cache.sequences();
  for (SeqId id : o.ids) {
    o.lengths.push_back(cache.length(id));
    if (!holds_kv) continue;
    for (int l = 0; l < cache.config().layers; ++l) {
      for (int g = 0; g < cache.config().kv_heads; ++g) {
        const KvRows r = cache.read_kv(id, l, g);
        o.kv.insert(o.kv.end(), r.k.begin(), r.k.end());
        o.kv.insert(o.kv.end(), r.v.begin(), r.v.end());
      }
    }
  }
  o.stats = cache.stats();
  return o;
}

std::string differs(const Observed& a, const Observed& b) {
  if (a.ids != b.ids) return "live ids " + ids_text(a.ids) + " vs " + ids_text(b.ids);
  if (a.lengths != b.lengths) return "sequence lengths differ";
  const Stats& s = a.stats;
  const Stats& t = b.stats;
  if (s.bytes_held != t.bytes_held) return "bytes_held differs";
  if (s.bytes_reserved != t.bytes_reserved) return "bytes_reserved differs";
  if (s.kv_projection_rows != t.kv_projection_rows) return "kv_projection_rows differs";
  if (s.qk_dot_products != t.qk_dot_products) return "qk_dot_products differs";
  if (s.kv_bytes_read != t.kv_bytes_read) return "kv_bytes_read differs";
  if (a.kv.size() != b.kv.size() ||
      (!a.kv.empty() && std::memcmp(a.kv.data(), b.kv.data(), a.kv.size() * sizeof(float)))) {
    return "cached K/V rows differ";
  }
  return "";
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() &&
         (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

// Draws one bad call against the live state (same on both twins).
// The kinds of bad calls, in three families of three: a case makes the calls of one family
// (a per-case choice), so the first cases of any run make every kind.
enum BadKind {
  kPrefillWidth, kDecodeWidth, kDecodeFull, kPrefillPastCapacity, kUnknownId,
  kTruncateLength, kDuplicateId, kNonFinite, kReadKvRange, kKinds
};
constexpr int kFamilies = 3;

// Draws one bad call of `kind` against the live state (same on both twins). Its variants
// (which sign, which bad value) are uniform at every size; its lengths grow with it.
BadCall gen_bad_call(const KvCache& cache, const ImplInfo& impl, SeqId dropped, SeqId next_id,
                     InputStream& rows, int kind) {
  const ModelConfig& c = cache.config();
  const int dm = c.d_model, cap = c.capacity;
  const std::vector<SeqId> live = cache.sequences();
  std::vector<SeqId> open, full;
  for (SeqId id : live) (cache.length(id) < cap ? open : full).push_back(id);
  auto pick = [](const std::vector<SeqId>& from) {
    return from[static_cast<std::size_t>(draw_uniform(static_cast<int>(from.size())))];
  };
  // open is never empty (the preamble creates an empty sequence), full never empty either
  // (capacity is the longest sequence's length).
  if (kind == kPrefillWidth && dm < 2) kind = kDecodeWidth;  // every size is a multiple of 1
  if (kind == kReadKvRange && !impl.caps.holds_kv_cache) kind = kTruncateLength;

  BadCall b;
  switch (kind) {
    case kPrefillWidth: {
      const SeqId id = pick(live);
      const int n = *rc::gen::inRange(0, 3);
      const std::size_t size = static_cast<std::size_t>(n * dm + *rc::gen::inRange(1, dm));
      const std::vector<float> x = rows.rows(1, static_cast<int>(size));
      b.what = "prefill of " + std::to_string(size) + " floats (d_model " + std::to_string(dm) +
               ") on id " + std::to_string(id);
      b.call = [id, x](KvCache& k) { k.prefill(id, x); };
      b.needles = {std::to_string(size) + " floats", "d_model"};
      break;
    }
    case kDecodeWidth: {
      const std::vector<SeqId> ids = {pick(open)};
      const int sign = draw_uniform(2) ? 1 : -1;
      const std::size_t size =
          static_cast<std::size_t>(dm + sign * *rc::gen::inRange(1, dm + 1));
      const std::vector<float> x = rows.rows(1, static_cast<int>(size));
      b.what = "decode of ids " + ids_text(ids) + " with " + std::to_string(size) + " floats";
      b.call = [ids, x](KvCache& k) { k.decode(ids, x); };
      b.needles = {std::to_string(size) + " floats", "expected"};
      break;
    }
    case kDecodeFull: {
      std::vector<SeqId> ids = {pick(full)};
      if (draw_uniform(2)) ids.insert(ids.begin(), pick(open));
      const std::vector<float> x = rows.rows(static_cast<int>(ids.size()), dm);
      const SeqId bad = ids.back();
      b.what = "decode of ids " + ids_text(ids) + " where id " + std::to_string(bad) +
               " is full (capacity " + std::to_string(cap) + ")";
      b.call = [ids, x](KvCache& k) { k.decode(ids, x); };
      b.needles = {"sequence " + std::to_string(bad) + " is full", "capacity " +
                                                                        std::to_string(cap)};
      break;
    }
    case kPrefillPastCapacity: {
      const SeqId id = pick(live);
      const int n = cap - cache.length(id) + *rc::gen::inRange(1, 4);
      const std::vector<float> x = rows.rows(n, dm);
      b.what = "prefill of " + std::to_string(n) + " rows on id " + std::to_string(id) +
               " holding " + std::to_string(cache.length(id)) + " (capacity " +
               std::to_string(cap) + ")";
      b.call = [id, x](KvCache& k) { k.prefill(id, x); };
      b.needles = {std::to_string(n) + " more", "capacity " + std::to_string(cap)};
      break;
    }
    case kUnknownId: {
      const int which = draw_uniform(3);
      const SeqId id = which == 0   ? dropped
                       : which == 1 ? next_id + *rc::gen::inRange(0, 100)
                                    : -1 - *rc::gen::inRange(0, 100);
      const std::vector<float> x = rows.rows(1, dm);
      const int op = draw_uniform(impl.caps.holds_kv_cache ? 7 : 6);
      static const char* const names[] = {"prefill", "decode", "fork",  "drop",
                                          "truncate", "length", "read_kv"};
      b.what = std::string(names[op]) + " of unknown id " + std::to_string(id) +
               (which == 0 ? " (dropped)" : which == 1 ? " (never issued)" : " (negative)");
      const SeqId ok = pick(open);
      b.call = [op, id, ok, x](KvCache& k) {
        switch (op) {
          case 0: k.prefill(id, x); break;
          case 1: {  // a valid id first: the whole call must be rejected, not half done
            std::vector<float> two = x;
            two.insert(two.end(), x.begin(), x.end());
            k.decode({ok, id}, two);
            break;
          }
          case 2: k.fork(id); break;
          case 3: k.drop(id); break;
          case 4: k.truncate(id, 0); break;
          case 5: k.length(id); break;
          default: k.read_kv(id, 0, 0); break;
        }
      };
      b.needles = {"id " + std::to_string(id) + " is unknown"};
      break;
    }
    case kTruncateLength: {
      const SeqId id = pick(live);
      const int len = cache.length(id);
      const int length = draw_uniform(2) ? len + 1 + *rc::gen::inRange(0, 10)
                                                 : -1 - *rc::gen::inRange(0, 10);
      b.what = "truncate of id " + std::to_string(id) + " (" + std::to_string(len) +
               " tokens) to " + std::to_string(length);
      b.call = [id, length](KvCache& k) { k.truncate(id, length); };
      b.needles = {"length " + std::to_string(length), "out of range"};
      break;
    }
    case kDuplicateId: {
      const SeqId twice = pick(open);
      std::vector<SeqId> ids = {twice, twice};
      if (open.size() > 1 && draw_uniform(2)) {
        for (SeqId id : open) {
          if (id != twice) {
            ids.insert(ids.begin() + 1, id);
            break;
          }
        }
      }
      const std::vector<float> x = rows.rows(static_cast<int>(ids.size()), dm);
      b.what = "decode of ids " + ids_text(ids);
      b.call = [ids, x](KvCache& k) { k.decode(ids, x); };
      b.needles = {"id " + std::to_string(twice), "twice"};
      break;
    }
    case kNonFinite: {
      const int v = draw_uniform(3);
      const float bad = v == 0   ? std::numeric_limits<float>::quiet_NaN()
                        : v == 1 ? std::numeric_limits<float>::infinity()
                                 : -std::numeric_limits<float>::infinity();
      const char* shown = v == 0 ? "is nan" : v == 1 ? "is inf" : "is -inf";
      const bool by_decode = draw_uniform(2);
      const SeqId id = pick(open);
      const int n = by_decode ? 1 : *rc::gen::inRange(1, 4);
      std::vector<float> x = rows.rows(n, dm);
      const int at = *rc::gen::inRange(0, n * dm);
      x[static_cast<std::size_t>(at)] = bad;
      b.what = std::string(by_decode ? "decode" : "prefill") + " on id " + std::to_string(id) +
               " with row " + std::to_string(at / dm) + " column " + std::to_string(at % dm) +
               " " + shown;
      b.call = [by_decode, id, x](KvCache& k) {
        if (by_decode) {
          k.decode({id}, x);
        } else {
          k.prefill(id, x);
        }
      };
      b.needles = {"row " + std::to_string(at / dm) + " column " + std::to_string(at % dm) +
                       " " + shown,
                   "finite"};
      break;
    }
    default: {  // kReadKvRange
      const SeqId id = pick(live);
      const bool layer = draw_uniform(2);
      const int limit = layer ? c.layers : c.kv_heads;
      const int bad = draw_uniform(2) ? limit + *rc::gen::inRange(0, 5)
                                              : -1 - *rc::gen::inRange(0, 5);
      b.what = "read_kv of id " + std::to_string(id) + " with " +
               (layer ? "layer " : "kv_head ") + std::to_string(bad);
      b.call = [id, layer, bad](KvCache& k) {
        if (layer) {
          k.read_kv(id, bad, 0);
        } else {
          k.read_kv(id, 0, bad);
        }
      };
      b.needles = {(layer ? "layer " : "kv_head ") + std::to_string(bad), "out of range"};
      break;
    }
  }
  return b;
}

void bad_input_body(const ImplInfo& impl) {
  Limits limits;
  limits.batch = 3;
  limits.prompt = 8;
  limits.steps = 8;
  Workload w = gen_workload(impl, limits);
  w.config.capacity = w.max_tokens();  // the longest sequence ends full
  const auto weights = ModelWeights::from_seed(w.config);
  const auto tokens = w.histories();
  auto a = make_instance(impl, weights, w.options);
  auto b = make_instance(impl, weights, w.options);
  replay(*a, w, tokens);
  replay(*b, w, tokens);
  // Preamble, on both: a sequence created and dropped (an id that WAS valid), and an empty
  // one (so some sequence can always take a token).
  SeqId dropped = -1;
  for (KvCache* k : {a.get(), b.get()}) {
    dropped = k->create_sequence();
    k->drop(dropped);
    k->create_sequence();
  }
  SeqId next_id = 0;  // larger than every id issued so far
  for (SeqId id : a->sequences()) next_id = std::max(next_id, id + 1);
  next_id = std::max(next_id, dropped + 1);
  const bool holds_kv = impl.caps.holds_kv_cache;
  // b never sees a bad call: observed once, compared with a after each of them.
  const Observed twin = observe(*b, holds_kv);
  RC_ASSERT(differs(observe(*a, holds_kv), twin).empty());

  InputStream rows(w.input_seed + 77);
  const int family = draw_choice(Axis::variant, kFamilies, "bad call family");
  std::string context;
  for (int kind = family; kind < kKinds; kind += kFamilies) {
    const BadCall bad = gen_bad_call(*a, impl, dropped, next_id, rows, kind);
    context = "bad call: " + bad.what + "\n  case: " + w.describe();
    try {
      bad.call(*a);
      fail_case("accepted without an error: " + context);
    } catch (const Error& e) {
      const std::string msg = e.what();
      for (const std::string& needle : bad.needles) {
        if (msg.find(needle) == std::string::npos) {
          fail_case("the error message \"" + msg + "\" does not say \"" + needle + "\"; " +
                    context);
        }
      }
    } catch (const rc::detail::CaseResult&) {
      throw;  // RapidCheck's own control flow
    } catch (const std::exception& e) {
      fail_case(std::string("threw a std::exception that is not kvbench::Error: ") + e.what() +
                "; " + context);
    }
    const std::string diff = differs(observe(*a, holds_kv), twin);
    if (!diff.empty()) fail_case("the rejected call changed the state: " + diff + "; " + context);
  }

  // State unchanged (checked after each call above); the same next steps give the same bits.
  std::vector<SeqId> open;
  for (SeqId id : a->sequences()) {
    if (a->length(id) < w.config.capacity) open.push_back(id);
  }
  const std::vector<float> x = rows.rows(static_cast<int>(open.size()), w.config.d_model);
  if (!same_bits(a->decode(open, x), b->decode(open, x))) {
    fail_case("after the rejected call, decode of ids " + ids_text(open) +
            " differs from the twin that never saw it; " + context);
  }
  const SeqId na = a->create_sequence(), nb = b->create_sequence();
  if (na != nb) {
    fail_case("after the rejected call, create_sequence returned id " + std::to_string(na) +
            ", the twin " + std::to_string(nb) + "; " + context);
  }
  const std::vector<float> p = rows.rows(std::min(2, w.config.capacity), w.config.d_model);
  if (!same_bits(a->prefill(na, p), b->prefill(nb, p))) {
    fail_case("after the rejected call, a new sequence's prefill differs from the twin's; " +
            context);
  }
  const std::string diff = differs(observe(*a, holds_kv), observe(*b, holds_kv));
  if (!diff.empty()) fail_case("after the rejected calls and two more steps: " + diff + "; " + context);
}

// Construction with inconsistent dimensions: ModelWeights::from_seed rejects the config, and
// so does the implementation's create() when handed weights whose config is inconsistent
// (the KvCache constructor validates it before any implementation code runs).
void inconsistent_dims_body(const ImplInfo& impl) {
  Limits limits;
  ModelConfig good = gen_model(limits);
  good.capacity = 4;
  ModelConfig bad = good;
  std::vector<std::string> needles;
  switch (draw_choice(Axis::scenario, 5, "inconsistent dimension")) {
    case 0: {  // H not a multiple of H_kv
      bad.kv_heads = *rc::gen::inRange(2, 9);
      std::vector<int> heads;
      for (int h = 1; h <= 8; ++h) {
        if (h % bad.kv_heads != 0) heads.push_back(h);
      }
      bad.heads = *rc::gen::elementOf(heads);
      needles = {"heads (" + std::to_string(bad.heads) + ")",
                 "kv_heads=" + std::to_string(bad.kv_heads)};
      break;
    }
    case 1:
      bad.head_dim = -*rc::gen::inRange(0, 3);
      needles = {"head_dim must be >= 1, got " + std::to_string(bad.head_dim)};
      break;
    case 2:
      bad.d_model = -*rc::gen::inRange(0, 3);
      needles = {"d_model must be >= 1, got " + std::to_string(bad.d_model)};
      break;
    case 3:
      bad.kv_heads = -*rc::gen::inRange(0, 3);
      needles = {"kv_heads must be >= 1, got " + std::to_string(bad.kv_heads)};
      break;
    default:
      bad.layers = -*rc::gen::inRange(0, 3);
      needles = {"layers must be >= 1, got " + std::to_string(bad.layers)};
      break;
  }
  auto expect_error = [&](const std::string& what, const std::function<void()>& f) {
    try {
      f();
    } catch (const Error& e) {
      const std::string msg = e.what();
      for (const auto& n : needles) {
        if (msg.find(n) == std::string::npos) {
          fail_case(what + ": the message \"" + msg + "\" does not say \"" + n + "\"");
        }
      }
      return;
    } catch (const rc::detail::CaseResult&) {
      throw;
    } catch (const std::exception& e) {
      fail_case(what + " threw a std::exception that is not kvbench::Error: " + e.what());
    }
    fail_case(what + " accepted " + bad.describe());
  };
  expect_error("ModelWeights::from_seed", [&] { ModelWeights::from_seed(bad); });
  // Weights of the good shape with the bad config, as a plugin might hand them over.
  auto weights = std::make_shared<ModelWeights>(*ModelWeights::from_seed(good));
  weights->config = bad;
  ImplOptions options;
  options.poison_unused = true;
  expect_error(impl.name + ".create",
               [&] { impl.create(std::shared_ptr<const ModelWeights>(weights), options); });
}

}  // namespace

Property bad_input_rejected() {
  return {"bad_input_rejected",
          "wrong widths, capacity, unknown/duplicate ids, bad truncate/read_kv args, NaN/Inf: "
          "kvbench::Error naming the value, state bitwise unchanged",
          [](const ImplInfo&, std::string*) { return true; }, bad_input_body};
}

Property inconsistent_dims_rejected() {
  return {"inconsistent_dims_rejected",
          "H not a multiple of H_kv, d/d_model/L/H_kv < 1: rejected at construction with "
          "kvbench::Error",
          [](const ImplInfo&, std::string*) { return true; }, inconsistent_dims_body};
}

}  // namespace kvbench::props
