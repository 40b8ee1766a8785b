#include "properties/libfuzzer/fuzz_case.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <sstream>
#include <typeinfo>

#include "harness/error.h"
#include "harness/weights.h"
#include "properties/tolerance.h"
#include "properties/workload.h"

namespace kvbench::fuzz {

// ---- bytes <-> input ---------------------------------------------------------------------

Input decode(const std::uint8_t* data, std::size_t size) {
  Input in;
  size = std::min(size, kMaxInputBytes);
  auto at = [&](std::size_t i) -> std::uint8_t { return i < size ? data[i] : 0; };
  for (std::size_t i = 0; i < kHeaderBytes; ++i) in.header[i] = at(i);
  // A trailing partial record counts (its missing bytes are 0), so the fuzzer's one-byte
  // extensions of an input already add an operation.
  for (std::size_t p = kHeaderBytes; p < size; p += kOpBytes) {
    in.ops.push_back(Op{at(p), at(p + 1), at(p + 2), at(p + 3)});
  }
  return in;
}

std::vector<std::uint8_t> encode(const Input& input) {
  std::vector<std::uint8_t> out(input.header.begin(), input.header.end());
  for (std::size_t i = 0; i < input.ops.size() && i < kMaxOps; ++i) {
    const Op& o = input.ops[i];
    out.insert(out.end(), {o.kind, o.a, o.b, o.c});
  }
  return out;
}

namespace {

std::uint8_t byte_in(const char* field, int value, int lo, int hi) {
  require(value >= lo && value <= hi, "fuzz input: ", field, " ", value, " is out of range ", lo,
          "..", hi);
  return static_cast<std::uint8_t>(value);
}

std::vector<int> divisors_desc(int h) {
  std::vector<int> out;
  for (int g = h; g >= 1; --g) {
    if (h % g == 0) out.push_back(g);
  }
  return out;
}

}  // namespace

int capacity_of(std::uint8_t b) { return b < 128 ? 1 + b : 128 + 3 * (b - 127); }

Input make_input(const Header& h, std::vector<Op> ops) {
  Input in;
  in.header[0] = byte_in("impl", h.impl, 0, 255);
  in.header[1] = byte_in("layers", h.layers - 1, 0, 1);
  in.header[2] = byte_in("heads", h.heads - 1, 0, 7);
  const int divisors = static_cast<int>(divisors_desc(h.heads).size());
  in.header[3] = byte_in("kv_div", h.kv_div, 0, divisors - 1);
  in.header[4] = byte_in("head_dim", h.head_dim - 1, 0, 63);
  in.header[5] = byte_in("d_model", h.d_model - 1, 0, 31);
  int cap_byte = h.capacity - 1;
  if (h.capacity > 128) {
    require((h.capacity - 128) % 3 == 0 && h.capacity <= 512, "fuzz input: capacity ",
            h.capacity, " is not 1..128 or 128 + 3k up to 512");
    cap_byte = 127 + (h.capacity - 128) / 3;
  }
  in.header[6] = byte_in("capacity", cap_byte, 0, 255);
  in.header[7] = byte_in("threads", h.threads - 1, 0, 1);
  require(h.seed >= 0 && h.seed <= 65535, "fuzz input: seed ", h.seed, " is out of range 0..65535");
  in.header[8] = static_cast<std::uint8_t>(h.seed & 0xFF);
  in.header[9] = static_cast<std::uint8_t>(h.seed >> 8);
  require(ops.size() <= kMaxOps, "fuzz input: ", ops.size(), " operations, at most ", kMaxOps);
  in.ops = std::move(ops);
  return in;
}

Op op(OpKind kind, int a, int b, int c) {
  return Op{static_cast<std::uint8_t>(kind), byte_in("a", a, 0, 255), byte_in("b", b, 0, 255),
            byte_in("c", c, 0, 255)};
}

Op bad(BadKind kind, int b, int c) {
  return op(OpKind::bad, static_cast<int>(kind), b, c);
}

// ---- implementations ----------------------------------------------------------------------

std::vector<const ImplInfo*> select_impls(const Registry& registry, const std::string& list) {
  const bool all = list == "all";
  std::vector<const ImplInfo*> out;
  for (const ImplInfo* impl : registry.select(list)) {  // throws Error on an unknown name
    std::string why = impl->why_unavailable();
    if (why.empty() && !impl->caps.supports(DType::f32)) why = "no fp32 storage";
    if (why.empty()) {
      out.push_back(impl);
    } else if (!all) {
      fail("implementation '", impl->name, "' cannot be fuzzed here: ", why);
    }
  }
  require(!out.empty(), "no implementation in '", list, "' can be fuzzed here");
  return out;
}

const ImplInfo& pick_impl(const std::vector<const ImplInfo*>& impls, const Input& input) {
  require(!impls.empty(), "fuzz: no implementation to pick from");
  return *impls[input.header[0] % impls.size()];
}

// ---- the run --------------------------------------------------------------------------------

namespace {

// A failed check: ends the run.
struct Finding {
  std::string tag;
  std::string check;
};

[[noreturn]] void found(const std::string& tag, const std::string& check) {
  throw Finding{tag, check};
}

std::string ids_text(const std::vector<SeqId>& ids) {
  std::string s = "[";
  for (std::size_t i = 0; i < ids.size(); ++i) s += (i ? ", " : "") + std::to_string(ids[i]);
  return s + "]";
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() &&
         (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

// The token history behind a run of output rows. Fork and truncate start a new snapshot
// (a copy of the kept rows) and freeze the old one, so every output row stays attached to
// the exact history it was computed from (as in properties/prop_structure.cpp).
struct Snapshot {
  std::vector<float> tokens;    // [T, d_model]
  std::vector<float> outputs;   // [T, d_model]
  std::vector<int> emitted_by;  // [T] the record that returned the row, -1: none
  std::string origin;           // "id 2 (fork of id 0 at 5 tokens, op #3)"
};

struct Live {
  SeqId id;
  int snapshot;
};

// Everything a rejected call must leave as it was.
struct Observed {
  std::vector<SeqId> ids;
  std::vector<int> lengths;
  Stats stats;
  std::vector<float> kv;  // every cached row, flattened (K/V caches)
};

class Runner {
 public:
  Runner(const ImplInfo& impl, const Input& input) : impl_(impl), input_(input) {
    const auto& h = input.header;
    ModelConfig c;
    c.layers = 1 + h[1] % 2;
    c.heads = 1 + h[2] % 8;
    const std::vector<int> divisors = divisors_desc(c.heads);
    c.kv_heads = divisors[h[3] % divisors.size()];
    c.head_dim = 1 + h[4] % 64;
    c.d_model = 1 + h[5] % 32;
    c.capacity = capacity_of(h[6]);
    c.dtype = DType::f32;
    seed_ = static_cast<std::uint64_t>(h[8]) | static_cast<std::uint64_t>(h[9]) << 8;
    c.seed = seed_;
    options_.threads = impl.caps.threads ? 1 + h[7] % 2 : 1;
    options_.poison_unused = true;  // a read past a sequence then shows up as NaN
    config_ = c;
    stream_ = InputStream(seed_ * 0x9E3779B97F4A7C15ull + 1);
    report_.impl = impl.name;
    report_.records = static_cast<int>(input.ops.size());
    std::ostringstream desc;
    desc << c.describe() << "; threads " << options_.threads;
    report_.config = desc.str();
  }

  Report run() {
    try {
      weights_ = ModelWeights::from_seed(config_);
      try {
        cache_ = impl_.create(weights_, options_);
      } catch (const std::exception& e) {
        found("exception", impl_.name + ".create rejected a valid model: " + e.what());
      }
      if (!cache_) found("exception", impl_.name + ".create returned null");
      for (std::size_t i = 0; i < input_.ops.size(); ++i) {
        op_ = static_cast<int>(i);
        line_.str("");
        step(input_.ops[i]);
        report_.ops.push_back("#" + std::to_string(i) + " " + line_.str());
        check_state();
      }
      op_ = -1;
      final_checks();
    } catch (const Finding& f) {
      fail_report(f);
    } catch (const std::exception& e) {
      // From the implementation outside a call checked by valid() (stats, read_kv).
      fail_report(Finding{"exception", std::string("exception: ") + e.what()});
    }
    return report_;
  }

 private:
  void fail_report(const Finding& f) {
    if (op_ >= 0 && static_cast<int>(report_.ops.size()) == op_) {
      report_.ops.push_back("#" + std::to_string(op_) + " " + line_.str());
    }
    report_.failed = true;
    report_.failing_op = op_;
    report_.tag = f.tag;
    report_.check = f.check;
  }

  const ModelConfig& config() const { return config_; }
  int dm() const { return config_.d_model; }
  bool holds_kv() const { return impl_.caps.holds_kv_cache; }
  int length(const Live& s) const {
    return static_cast<int>(snapshots_[static_cast<std::size_t>(s.snapshot)].tokens.size() /
                            static_cast<std::size_t>(dm()));
  }
  Live& pick(std::uint8_t byte) { return live_[byte % live_.size()]; }
  std::string where() const { return "op #" + std::to_string(op_); }

  void executed(OpKind kind) {
    ++report_.executed_ops;
    ++report_.op_kinds[static_cast<std::size_t>(kind)];
  }

  int new_snapshot(std::vector<float> tokens, const std::string& origin) {
    Snapshot s;
    const std::size_t rows = tokens.size() / static_cast<std::size_t>(dm());
    s.outputs.assign(tokens.size(), 0.0f);
    s.emitted_by.assign(rows, -1);
    s.tokens = std::move(tokens);
    s.origin = origin;
    snapshots_.push_back(std::move(s));
    return static_cast<int>(snapshots_.size()) - 1;
  }

  void record(const Live& s, const float* x, const float* y, int n) {
    Snapshot& snap = snapshots_[static_cast<std::size_t>(s.snapshot)];
    const std::size_t width = static_cast<std::size_t>(dm());
    snap.tokens.insert(snap.tokens.end(), x, x + n * width);
    snap.outputs.insert(snap.outputs.end(), y, y + n * width);
    snap.emitted_by.insert(snap.emitted_by.end(), static_cast<std::size_t>(n), op_);
    report_.tokens += n;
  }

  // A valid call must not throw: an exception is a finding that names the call.
  template <typename F>
  auto valid(const char* what, F&& f) -> decltype(f()) {
    try {
      return f();
    } catch (const Finding&) {
      throw;
    } catch (const std::exception& e) {
      found("exception", std::string("a valid ") + what + " threw: " + e.what());
    }
  }

  std::vector<float> kv_rows(SeqId id) const {  // every (layer, kv_head): K then V rows
    std::vector<float> out;
    for (int l = 0; l < config().layers; ++l) {
      for (int g = 0; g < config().kv_heads; ++g) {
        const KvRows r = cache_->read_kv(id, l, g);
        out.insert(out.end(), r.k.begin(), r.k.end());
        out.insert(out.end(), r.v.begin(), r.v.end());
      }
    }
    return out;
  }

  // Ops that compute nothing must not bump the compute counters.
  void check_nothing_computed(const Stats& before, const char* op) {
    const Stats after = cache_->stats();
    if (after.kv_projection_rows != before.kv_projection_rows ||
        after.qk_dot_products != before.qk_dot_products) {
      std::ostringstream m;
      m << op << " changed the compute counters: kv_projection_rows " << before.kv_projection_rows
        << " -> " << after.kv_projection_rows << ", qk_dot_products " << before.qk_dot_products
        << " -> " << after.qk_dot_products << " (it computes nothing)";
      found("counters", m.str());
    }
  }

  void step(const Op& o) {
    const OpKind kind = static_cast<OpKind>(o.kind % static_cast<int>(OpKind::count));
    switch (kind) {
      case OpKind::create: return do_create();
      case OpKind::prefill: return do_prefill(o);
      case OpKind::decode: return do_decode(o);
      case OpKind::fork: return do_fork(o);
      case OpKind::truncate: return do_truncate(o);
      case OpKind::drop: return do_drop(o);
      default: return do_bad(o);
    }
  }

  void do_create() {
    if (static_cast<int>(live_.size()) >= kMaxLive) {
      line_ << "create: skipped (" << kMaxLive << " live sequences)";
      return;
    }
    const Stats before = cache_->stats();
    const SeqId id = valid("create_sequence", [&] { return cache_->create_sequence(); });
    line_ << "create -> id " << id;
    live_.push_back(
        {id, new_snapshot({}, "id " + std::to_string(id) + " (created at " + where() + ")")});
    executed(OpKind::create);
    check_nothing_computed(before, "create");
  }

  void do_prefill(const Op& o) {
    if (live_.empty()) {
      line_ << "prefill: skipped (no live sequence)";
      return;
    }
    const Live s = pick(o.a);
    const int len = length(s);
    const int room = std::min(config().capacity - len, kMaxTokens - report_.tokens);
    const int n = std::max(0, std::min(o.b % (kMaxPrefill + 1), room));
    line_ << "prefill id " << s.id << " (" << len << " tokens) with " << n << " rows";
    const std::vector<float> x = stream_.rows(n, dm());
    const std::vector<float> y = valid("prefill", [&] { return cache_->prefill(s.id, x); });
    if (y.size() != x.size()) {
      found("shape", "prefill of " + std::to_string(n) + " rows returned " +
                         std::to_string(y.size()) + " floats, expected " +
                         std::to_string(x.size()));
    }
    record(s, x.data(), y.data(), n);
    executed(OpKind::prefill);
  }

  void do_decode(const Op& o) {
    if (live_.empty()) {
      line_ << "decode: skipped (no live sequence)";
      return;
    }
    std::vector<std::size_t> chosen;
    for (std::size_t i = 0; i < live_.size(); ++i) {
      if (o.a & (1u << i)) chosen.push_back(i);
    }
    if (chosen.empty()) {
      for (std::size_t i = 0; i < live_.size(); ++i) chosen.push_back(i);
    }
    const int steps = 1 + o.b % 4;
    line_ << "decode";
    calls_ = 0;
    int done = 0;
    for (int st = 0; st < steps; ++st) {
      std::vector<std::size_t> active;
      for (std::size_t i : chosen) {
        if (length(live_[i]) < config().capacity) active.push_back(i);
      }
      const std::size_t budget = static_cast<std::size_t>(kMaxTokens - report_.tokens);
      if (active.size() > budget) active.resize(budget);
      if (active.empty()) break;
      // The order of ids within a call: a seeded Fisher-Yates (a cache must not care).
      InputStream order(static_cast<std::uint64_t>(o.c) * 131 + static_cast<std::uint64_t>(st));
      for (std::size_t i = active.size(); i > 1; --i) {
        std::swap(active[i - 1], active[order.next_u64() % i]);
      }
      decode_call(active);
      ++done;
    }
    if (done == 0) {
      line_ << ": skipped (every chosen sequence is full or the token budget is spent)";
      return;
    }
    executed(OpKind::decode);
  }

  // One decode call of live_[i] for i in `which`, in that order, with its exact counters.
  void decode_call(const std::vector<std::size_t>& which) {
    std::vector<SeqId> ids;
    std::vector<int> lens;
    std::uint64_t keys = 0;  // sum over the call of (t + 1), t = length before
    for (std::size_t i : which) {
      ids.push_back(live_[i].id);
      lens.push_back(length(live_[i]));
      keys += static_cast<std::uint64_t>(lens.back()) + 1;
    }
    line_ << (calls_++ ? "; " : " ") << ids_text(ids) << " at lengths [";
    for (std::size_t i = 0; i < lens.size(); ++i) line_ << (i ? ", " : "") << lens[i];
    line_ << "]";
    const std::size_t width = static_cast<std::size_t>(dm());
    const std::vector<float> x = stream_.rows(static_cast<int>(ids.size()), dm());
    const Stats before = cache_->stats();
    const std::vector<float> y = valid("decode", [&] { return cache_->decode(ids, x); });
    const Stats after = cache_->stats();
    if (y.size() != x.size()) {
      found("shape", "decode of " + std::to_string(ids.size()) + " ids returned " +
                         std::to_string(y.size()) + " floats, expected " +
                         std::to_string(x.size()));
    }
    for (std::size_t j = 0; j < which.size(); ++j) {
      record(live_[which[j]], x.data() + j * width, y.data() + j * width, 1);
    }
    // The op_counts property's formulas (prop_structure.cpp), per call.
    const ModelConfig& c = config();
    const std::uint64_t L = static_cast<std::uint64_t>(c.layers);
    const std::uint64_t dots = after.qk_dot_products - before.qk_dot_products;
    const std::uint64_t proj = after.kv_projection_rows - before.kv_projection_rows;
    const std::uint64_t want_dots = L * static_cast<std::uint64_t>(c.heads) * keys;
    const std::uint64_t want_proj = L * (holds_kv() ? ids.size() : keys);
    std::ostringstream m;
    if (dots != want_dots) {
      m << "qk_dot_products grew by " << dots << ", expected L*H*sum(t+1) = " << want_dots
        << " for decode " << ids_text(ids);
      found("counters", m.str());
    }
    if (proj != want_proj) {
      m << "kv_projection_rows grew by " << proj << ", expected "
        << (holds_kv() ? "L*batch = " : "L*sum(t+1) = ") << want_proj << " for decode "
        << ids_text(ids);
      found("counters", m.str());
    }
    // kv_bytes_read: exact when the implementation declares its read model (registry.h,
    // as op_counts checks it), else, for K/V caches, within one read per KV head .. per
    // query head. The range alone misses a count per query head of a cache that reads per
    // KV head (planted_gqa_overcount): both ends are legal reads of some implementation.
    const std::uint64_t read = after.kv_bytes_read - before.kv_bytes_read;
    const std::uint64_t row = 2ull * c.head_dim * dtype_size(c.dtype);
    const std::uint64_t reads = impl_.caps.kv_row_reads(c.heads, c.kv_heads);
    if (reads != 0) {
      const std::uint64_t want = L * keys * row * reads;
      if (read != want) {
        m << "kv_bytes_read grew by " << read << ", expected L*sum(t+1)*2*d*"
          << dtype_size(c.dtype) << "*" << reads << " = " << want << " (declared read model: "
          << "each K/V row read " << impl_.caps.describe_kv_reads() << ", " << reads
          << " reads for H=" << c.heads << ", H_kv=" << c.kv_heads << ") for decode "
          << ids_text(ids);
        found("counters", m.str());
      }
    } else if (holds_kv()) {
      const std::uint64_t lo = L * keys * row * c.kv_heads, hi = L * keys * row * c.heads;
      if (read < lo || read > hi) {
        m << "kv_bytes_read grew by " << read << ", outside [" << lo << ", " << hi
          << "] (each K/V row read once per KV head .. once per query head) for decode "
          << ids_text(ids);
        found("counters", m.str());
      }
    }
  }

  void do_fork(const Op& o) {
    if (!impl_.caps.fork) {
      line_ << "fork: skipped (" << impl_.name << " does not fork)";
      return;
    }
    if (live_.empty() || static_cast<int>(live_.size()) >= kMaxLive) {
      line_ << "fork: skipped (" << live_.size() << " live sequences)";
      return;
    }
    const Live parent = pick(o.a);
    const int len = length(parent);
    const Stats before = cache_->stats();
    const SeqId child = valid("fork", [&] { return cache_->fork(parent.id); });
    line_ << "fork id " << parent.id << " (" << len << " tokens) -> id " << child;
    const auto tokens = snapshots_[static_cast<std::size_t>(parent.snapshot)].tokens;
    live_.push_back({child, new_snapshot(tokens, "id " + std::to_string(child) + " (fork of id " +
                                                     std::to_string(parent.id) + " at " +
                                                     std::to_string(len) + " tokens, " +
                                                     where() + ")")});
    executed(OpKind::fork);
    check_nothing_computed(before, "fork");
    if (holds_kv() && !same_bits(kv_rows(child), kv_rows(parent.id))) {
      found("read_kv", "fork: the child's cached K/V rows differ from the parent's (bitwise)");
    }
  }

  void do_truncate(const Op& o) {
    if (!impl_.caps.truncate) {
      line_ << "truncate: skipped (" << impl_.name << " does not truncate)";
      return;
    }
    if (live_.empty()) {
      line_ << "truncate: skipped (no live sequence)";
      return;
    }
    Live& s = pick(o.a);
    const int len = length(s);
    const int keep = o.b % (len + 1);
    line_ << "truncate id " << s.id << " from " << len << " to " << keep;
    std::vector<float> old_rows;
    if (holds_kv()) old_rows = kv_rows(s.id);
    const Stats before = cache_->stats();
    valid("truncate", [&] { cache_->truncate(s.id, keep); });
    const auto& tokens = snapshots_[static_cast<std::size_t>(s.snapshot)].tokens;
    std::vector<float> kept(tokens.begin(), tokens.begin() + static_cast<long>(keep) * dm());
    const SeqId id = s.id;
    s.snapshot = new_snapshot(std::move(kept), "id " + std::to_string(id) + " (truncated to " +
                                                   std::to_string(keep) + " at " + where() + ")");
    executed(OpKind::truncate);
    check_nothing_computed(before, "truncate");
    if (!holds_kv()) return;
    // Each (layer, kv_head) block of K then V rows: the first `keep` rows must be the old ones.
    const std::vector<float> now = kv_rows(id);
    const std::size_t d = static_cast<std::size_t>(config().head_dim);
    const std::size_t blocks = static_cast<std::size_t>(config().layers * config().kv_heads);
    if (now.size() != blocks * 2 * static_cast<std::size_t>(keep) * d) {
      found("read_kv", "truncate: read_kv returns " + std::to_string(now.size() / blocks / 2 / std::max<std::size_t>(d, 1)) +
                           " rows after truncating to " + std::to_string(keep));
    }
    const std::size_t old_len = static_cast<std::size_t>(len) * d, new_len = keep * d;
    for (std::size_t b = 0; b < blocks; ++b) {
      for (int part = 0; part < 2; ++part) {  // K, V
        const float* was = old_rows.data() + b * 2 * old_len + part * old_len;
        const float* is = now.data() + b * 2 * new_len + part * new_len;
        if (new_len && std::memcmp(was, is, new_len * sizeof(float)) != 0) {
          found("read_kv", std::string("truncate: the kept ") + (part ? "V" : "K") +
                               " rows changed (layer " + std::to_string(b / config().kv_heads) +
                               ", kv_head " + std::to_string(b % config().kv_heads) + ")");
        }
      }
    }
  }

  void do_drop(const Op& o) {
    if (live_.empty()) {
      line_ << "drop: skipped (no live sequence)";
      return;
    }
    const std::size_t i = o.a % live_.size();
    const Live s = live_[i];
    line_ << "drop id " << s.id << " (" << length(s) << " tokens)";
    const Stats before = cache_->stats();
    valid("drop", [&] { cache_->drop(s.id); });
    live_.erase(live_.begin() + static_cast<long>(i));
    dropped_.push_back(s.id);
    executed(OpKind::drop);
    check_nothing_computed(before, "drop");
  }

  Observed observe() const {
    Observed ob;
    ob.ids = cache_->sequences();
    for (SeqId id : ob.ids) {
      ob.lengths.push_back(cache_->length(id));
      if (holds_kv()) {
        const std::vector<float> rows = kv_rows(id);
        ob.kv.insert(ob.kv.end(), rows.begin(), rows.end());
      }
    }
    ob.stats = cache_->stats();
    return ob;
  }

  static std::string differs(const Observed& a, const Observed& b) {
    if (a.ids != b.ids) return "live ids " + ids_text(a.ids) + " became " + ids_text(b.ids);
    if (a.lengths != b.lengths) return "sequence lengths changed";
    const Stats &s = a.stats, &t = b.stats;
    if (s.bytes_held != t.bytes_held) return "bytes_held changed";
    if (s.bytes_reserved != t.bytes_reserved) return "bytes_reserved changed";
    if (s.kv_projection_rows != t.kv_projection_rows) return "kv_projection_rows changed";
    if (s.qk_dot_products != t.qk_dot_products) return "qk_dot_products changed";
    if (s.kv_bytes_read != t.kv_bytes_read) return "kv_bytes_read changed";
    if (!same_bits(a.kv, b.kv)) return "cached K/V rows changed";
    return "";
  }

  // One bad call: what it is, the call, and words its message must contain.
  struct BadCall {
    std::string what;
    std::function<void(KvCache&)> call;
    std::vector<std::string> needles;
  };

  BadCall make_bad(const Op& o) {
    const ModelConfig& c = config();
    const int width = dm(), cap = c.capacity;
    // Its own stream: removing a bad call leaves the tokens of the valid calls unchanged.
    InputStream rows(seed_ * 31 + static_cast<std::uint64_t>(op_) * 7919 + o.c);
    std::vector<const Live*> open, full;
    for (const Live& s : live_) (length(s) < cap ? open : full).push_back(&s);
    BadKind kind = static_cast<BadKind>(o.a % static_cast<int>(BadKind::count));
    if (kind == BadKind::prefill_width && width < 2) kind = BadKind::decode_width;
    if (kind == BadKind::decode_full && full.empty()) kind = BadKind::prefill_capacity;
    if ((kind == BadKind::decode_width || kind == BadKind::duplicate_id ||
         kind == BadKind::non_finite) && open.empty()) {
      kind = BadKind::prefill_capacity;
    }
    if (kind == BadKind::read_kv_range && !holds_kv()) kind = BadKind::truncate_length;
    const Live& any = pick(o.b);
    const SeqId id = any.id;
    auto pick_of = [&](const std::vector<const Live*>& from, int byte) {
      return from[static_cast<std::size_t>(byte) % from.size()]->id;
    };
    BadCall b;
    switch (kind) {
      case BadKind::prefill_width: {
        const std::size_t size = static_cast<std::size_t>((o.c % 3) * width + 1 + o.c % (width - 1));
        const std::vector<float> x = rows.rows(1, static_cast<int>(size));
        b.what = "prefill of " + std::to_string(size) + " floats (d_model " +
                 std::to_string(width) + ") on id " + std::to_string(id);
        b.call = [id, x](KvCache& k) { k.prefill(id, x); };
        b.needles = {std::to_string(size) + " floats", "d_model"};
        break;
      }
      case BadKind::decode_width: {
        const SeqId target = pick_of(open, o.b);
        const int size = (o.c & 0x80) ? width + 1 + o.c % 4 : (width - 1 - o.c % width);
        const std::vector<float> x = rows.rows(1, size);
        b.what = "decode of id " + std::to_string(target) + " with " + std::to_string(size) +
                 " floats (d_model " + std::to_string(width) + ")";
        b.call = [target, x](KvCache& k) { k.decode({target}, x); };
        b.needles = {std::to_string(size) + " floats", "expected"};
        break;
      }
      case BadKind::decode_full: {
        std::vector<SeqId> ids = {pick_of(full, o.b)};
        if ((o.c & 1) && !open.empty()) ids.insert(ids.begin(), pick_of(open, o.c >> 1));
        const SeqId target = ids.back();
        const std::vector<float> x = rows.rows(static_cast<int>(ids.size()), width);
        b.what = "decode of ids " + ids_text(ids) + " where id " + std::to_string(target) +
                 " is full (capacity " + std::to_string(cap) + ")";
        b.call = [ids, x](KvCache& k) { k.decode(ids, x); };
        b.needles = {"sequence " + std::to_string(target) + " is full"};
        break;
      }
      case BadKind::prefill_capacity: {
        const int n = cap - length(any) + 1 + o.c % 3;
        const std::vector<float> x = rows.rows(n, width);
        b.what = "prefill of " + std::to_string(n) + " rows on id " + std::to_string(id) +
                 " holding " + std::to_string(length(any)) + " (capacity " +
                 std::to_string(cap) + ")";
        b.call = [id, x](KvCache& k) { k.prefill(id, x); };
        b.needles = {std::to_string(n) + " more", "capacity " + std::to_string(cap)};
        break;
      }
      case BadKind::unknown_id: {
        const int which = o.c % 3;
        SeqId unknown;
        std::string why;
        if (which == 0 && !dropped_.empty()) {
          unknown = dropped_[static_cast<std::size_t>(o.c / 3) % dropped_.size()];
          why = "dropped";
        } else if (which == 2) {
          unknown = -1 - (o.c / 3) % 100;
          why = "negative";
        } else {
          unknown = next_id() + (o.c / 3) % 100;
          why = "never issued";
        }
        int call = o.b % (holds_kv() ? 7 : 6);
        // decode pairs the unknown id with a valid, open one: the whole call must be
        // rejected, not half done (and not for the valid id being full).
        const SeqId ok = open.empty() ? -1 : pick_of(open, o.b / 7);
        if (call == 1 && open.empty()) call = 0;
        static const char* const names[] = {"prefill", "decode",   "fork",   "drop",
                                            "truncate", "length", "read_kv"};
        const std::vector<float> x = rows.rows(2, width);
        b.what = std::string(names[call]) + " of " + why + " id " + std::to_string(unknown) +
                 (call == 1 ? " after live id " + std::to_string(ok) : "");
        b.call = [call, unknown, ok, x](KvCache& k) {
          switch (call) {
            case 0: k.prefill(unknown, std::vector<float>(x.begin(), x.begin() + x.size() / 2)); break;
            case 1: k.decode({ok, unknown}, x); break;
            case 2: k.fork(unknown); break;
            case 3: k.drop(unknown); break;
            case 4: k.truncate(unknown, 0); break;
            case 5: k.length(unknown); break;
            default: k.read_kv(unknown, 0, 0); break;
          }
        };
        b.needles = {"id " + std::to_string(unknown) + " is unknown"};
        break;
      }
      case BadKind::truncate_length: {
        const int len = length(any);
        const int to = (o.c & 1) ? len + 1 + (o.c >> 1) % 10 : -1 - (o.c >> 1) % 10;
        b.what = "truncate of id " + std::to_string(id) + " (" + std::to_string(len) +
                 " tokens) to " + std::to_string(to);
        b.call = [id, to](KvCache& k) { k.truncate(id, to); };
        b.needles = {"length " + std::to_string(to), "out of range"};
        break;
      }
      case BadKind::duplicate_id: {
        const SeqId twice = pick_of(open, o.b);
        std::vector<SeqId> ids = {twice, twice};
        if ((o.c & 1) && open.size() > 1) {
          const SeqId other = pick_of(open, o.b + 1);
          if (other != twice) ids.insert(ids.begin() + 1, other);
        }
        const std::vector<float> x = rows.rows(static_cast<int>(ids.size()), width);
        b.what = "decode of ids " + ids_text(ids);
        b.call = [ids, x](KvCache& k) { k.decode(ids, x); };
        b.needles = {"id " + std::to_string(twice), "twice"};
        break;
      }
      case BadKind::non_finite: {
        const int v = o.c % 3;
        const float value = v == 0   ? std::numeric_limits<float>::quiet_NaN()
                            : v == 1 ? std::numeric_limits<float>::infinity()
                                     : -std::numeric_limits<float>::infinity();
        const char* shown = v == 0 ? "is nan" : v == 1 ? "is inf" : "is -inf";
        const bool by_decode = (o.c / 3) & 1;
        const SeqId target = pick_of(open, o.b);
        const int n = by_decode ? 1 : 1 + (o.c / 6) % 3;
        std::vector<float> x = rows.rows(n, width);
        const int at = static_cast<int>((o.c / 18 + o.b) % (n * width));
        x[static_cast<std::size_t>(at)] = value;
        b.what = std::string(by_decode ? "decode" : "prefill") + " on id " +
                 std::to_string(target) + " with row " + std::to_string(at / width) +
                 " column " + std::to_string(at % width) + " " + shown;
        b.call = [by_decode, target, x](KvCache& k) {
          if (by_decode) {
            k.decode({target}, x);
          } else {
            k.prefill(target, x);
          }
        };
        b.needles = {"row " + std::to_string(at / width) + " column " +
                         std::to_string(at % width) + " " + shown,
                     "finite"};
        break;
      }
      default: {  // read_kv_range
        const bool layer = o.c & 1;
        const int limit = layer ? c.layers : c.kv_heads;
        const int value = (o.c & 2) ? limit + (o.c >> 2) % 5 : -1 - (o.c >> 2) % 5;
        b.what = "read_kv of id " + std::to_string(id) + " with " +
                 (layer ? "layer " : "kv_head ") + std::to_string(value);
        b.call = [id, layer, value](KvCache& k) {
          if (layer) {
            k.read_kv(id, value, 0);
          } else {
            k.read_kv(id, 0, value);
          }
        };
        b.needles = {(layer ? "layer " : "kv_head ") + std::to_string(value), "out of range"};
        break;
      }
    }
    return b;
  }

  // The id the next create or fork returns: ids are issued in order and never reused.
  SeqId next_id() const {
    SeqId n = 0;
    for (const Live& s : live_) n = std::max(n, s.id + 1);
    for (SeqId d : dropped_) n = std::max(n, d + 1);
    return n;
  }

  void do_bad(const Op& o) {
    if (live_.empty()) {
      line_ << "bad call: skipped (no live sequence)";
      return;
    }
    const BadCall b = make_bad(o);
    line_ << "bad call: " << b.what << " -> must be rejected";
    const Observed before = observe();
    bool thrown = false;
    try {
      b.call(*cache_);
    } catch (const Error& e) {
      thrown = true;
      const std::string msg = e.what();
      for (const std::string& needle : b.needles) {
        if (msg.find(needle) == std::string::npos) {
          found("bad call", b.what + ": the error message does not name the problem ('" +
                                needle + "'): " + msg);
        }
      }
    } catch (const std::exception& e) {
      found("bad call", b.what + ": threw a " + std::string(typeid(e).name()) +
                            ", not kvbench::Error: " + e.what());
    }
    if (!thrown) found("bad call", b.what + " was accepted; it must raise kvbench::Error");
    const std::string changed = differs(before, observe());
    if (!changed.empty()) found("bad call", "the rejected " + b.what + " changed the state: " + changed);
    executed(OpKind::bad);
  }

  // After every record: ids and lengths as the shadow says, and the K/V memory formula.
  void check_state() {
    std::vector<SeqId> want;
    for (const Live& s : live_) want.push_back(s.id);
    std::sort(want.begin(), want.end());
    const std::vector<SeqId> have = cache_->sequences();
    if (have != want) found("ids", "live ids are " + ids_text(have) + ", expected " + ids_text(want));
    std::uint64_t tokens = 0;
    for (const Live& s : live_) {
      const int len = cache_->length(s.id);
      if (len != length(s)) {
        found("length", "id " + std::to_string(s.id) + " has length " + std::to_string(len) +
                            ", expected " + std::to_string(length(s)));
      }
      tokens += static_cast<std::uint64_t>(len);
    }
    if (!holds_kv()) return;
    const ModelConfig& c = config();
    const Stats st = cache_->stats();
    if (impl_.caps.blocks) {
      // A block pool: bytes follow the blocks in use (shared ones once), at most
      // ceil(T / block_size) of them per sequence. (The exact count against a model of the
      // history is the pool_accounting property's.)
      const std::uint64_t B = static_cast<std::uint64_t>(options_.block_size);
      const std::uint64_t block = B * c.kv_bytes_per_token();
      std::uint64_t most = 0;
      for (const Live& s : live_) most += (static_cast<std::uint64_t>(length(s)) + B - 1) / B;
      if (st.bytes_held != st.blocks_in_use * block || st.blocks_in_use > most ||
          st.bytes_reserved < st.bytes_held) {
        std::ostringstream m;
        m << "bytes_held " << st.bytes_held << ", blocks_in_use " << st.blocks_in_use
          << ": expected blocks_in_use x " << block << " bytes per block, at most " << most
          << " blocks (ceil(T / " << B << ") per sequence); bytes_reserved " << st.bytes_reserved;
        found("bytes_held", m.str());
      }
      return;
    }
    const std::uint64_t expected = c.kv_bytes_per_token() * tokens;
    if (st.bytes_held != expected || st.bytes_reserved < st.bytes_held) {
      std::ostringstream m;
      m << "bytes_held " << st.bytes_held << ", expected 2 x L " << c.layers << " x H_kv "
        << c.kv_heads << " x d " << c.head_dim << " x " << dtype_size(c.dtype) << " bytes x "
        << tokens << " tokens = " << expected << "; bytes_reserved " << st.bytes_reserved;
      found("bytes_held", m.str());
    }
  }

  // Every output row vs the reference of its history; every live sequence's cached rows
  // vs the reference projections. Each history's reference is computed once.
  void final_checks() {
    const int width = dm(), d = config().head_dim;
    for (std::size_t k = 0; k < snapshots_.size(); ++k) {
      const Snapshot& s = snapshots_[k];
      const int T = static_cast<int>(s.emitted_by.size());
      bool emitted = false;
      for (int e : s.emitted_by) emitted = emitted || e >= 0;
      std::vector<const Live*> holders;
      if (holds_kv()) {
        for (const Live& l : live_) {
          if (l.snapshot == static_cast<int>(k)) holders.push_back(&l);
        }
      }
      if (T == 0 || (!emitted && holders.empty())) continue;
      const props::Expected e = props::expected_outputs(*weights_, s.tokens);
      for (int r = 0; r < T; ++r) {
        const int by = s.emitted_by[static_cast<std::size_t>(r)];
        if (by < 0) continue;
        const std::size_t at = static_cast<std::size_t>(r) * width;
        const props::Comparison c = props::compare_rows(
            s.outputs.data() + at, e.f64.outputs.data() + at, 1, width, e.tol.data() + r);
        if (!c.ok) {
          op_ = by;
          // One row compared at a time: name it by its position, not as "worst row 0".
          std::string what = c.describe();
          const std::size_t w = what.find("worst row 0");
          if (w != std::string::npos) what.replace(w, 11, "row " + std::to_string(r));
          found("output", "output row " + std::to_string(r) + " of " + s.origin +
                              ", returned by op #" + std::to_string(by) +
                              ", vs the float64 reference of its history: " + what);
        }
      }
      for (const Live* l : holders) {
        for (int layer = 0; layer < config().layers; ++layer) {
          for (int g = 0; g < config().kv_heads; ++g) {
            const KvRows rows = valid("read_kv", [&] { return cache_->read_kv(l->id, layer, g); });
            const std::size_t n = static_cast<std::size_t>(T) * d;
            if (rows.length != T || rows.k.size() != n || rows.v.size() != n) {
              found("read_kv", "read_kv(id " + std::to_string(l->id) + ", layer " +
                                   std::to_string(layer) + ", kv_head " + std::to_string(g) +
                                   ") returned " + std::to_string(rows.length) + " rows (" +
                                   std::to_string(rows.k.size()) + " K floats), expected " +
                                   std::to_string(T) + " x d " + std::to_string(d));
            }
            const std::size_t block = static_cast<std::size_t>(layer * config().kv_heads + g);
            for (int part = 0; part < 2; ++part) {
              const auto tol = props::kv_tolerances(config(), s.tokens, e.f64, e.f32, layer, g,
                                                    part == 1);
              const props::Comparison c = props::compare_rows(
                  (part ? rows.v : rows.k).data(), (part ? e.f64.v : e.f64.k)[block].data(), T,
                  d, tol.data());
              if (!c.ok) {
                found("read_kv", std::string("cached ") + (part ? "V" : "K") + " rows of id " +
                                     std::to_string(l->id) + " (layer " + std::to_string(layer) +
                                     ", kv_head " + std::to_string(g) +
                                     ") vs the reference projections of " + s.origin +
                                     ": " + c.describe());
              }
            }
          }
        }
      }
    }
  }

  const ImplInfo& impl_;
  const Input& input_;
  ModelConfig config_;
  ImplOptions options_;
  std::uint64_t seed_ = 0;
  std::shared_ptr<const ModelWeights> weights_;
  std::unique_ptr<KvCache> cache_;
  InputStream stream_{0};
  std::vector<Snapshot> snapshots_;
  std::vector<Live> live_;  // creation order: input bytes pick sequences by this index
  std::vector<SeqId> dropped_;
  int op_ = -1;
  int calls_ = 0;  // decode calls of the current record (for its line)
  std::ostringstream line_;
  Report report_;
};

}  // namespace

Report run(const ImplInfo& impl, const Input& input) { return Runner(impl, input).run(); }

std::string Report::describe() const {
  std::ostringstream out;
  out << "implementation " << impl << "; " << config << "\n  operations (";
  if (static_cast<int>(ops.size()) < records) {
    out << ops.size() << " of " << records << " records run, up to the failure";
  } else {
    out << records << " records";
  }
  out << "; " << executed_ops << " executed, " << tokens << " token rows):";
  for (const std::string& line : ops) out << "\n    " << line;
  if (failed) {
    out << "\n  FAILED [" << tag << "] "
        << (failing_op >= 0 ? "at op #" + std::to_string(failing_op) : std::string("in the final checks"))
        << ": " << check;
  } else {
    out << "\n  all checks passed";
  }
  return out.str();
}

// ---- shrinking ------------------------------------------------------------------------------

Input shrink(const std::function<Report(const Input&)>& run_one, const Input& failing,
             int max_runs, int* runs_made) {
  int runs = 0;
  const auto start = std::chrono::steady_clock::now();
  const auto out_of_budget = [&] {
    // A minute at most: a shrink that takes longer than the fuzzing found it is no help.
    return runs >= max_runs ||
           std::chrono::steady_clock::now() - start > std::chrono::seconds(60);
  };
  const Report first = run_one(failing);
  ++runs;
  Input best = failing;
  if (first.failed) {
    const std::string tag = first.tag;
    auto fails = [&](const Input& candidate) {
      if (out_of_budget()) return false;
      ++runs;
      const Report r = run_one(candidate);
      return r.failed && r.tag == tag;
    };
    // Records after the failing one cannot matter, unless the failure is a final check.
    if (first.failing_op >= 0 &&
        static_cast<std::size_t>(first.failing_op) + 1 < best.ops.size()) {
      Input cut = best;
      cut.ops.resize(static_cast<std::size_t>(first.failing_op) + 1);
      if (fails(cut)) best = cut;
    }
    // Smaller candidates of a byte: 0, half, one less.
    auto smaller = [](std::uint8_t v) {
      std::vector<std::uint8_t> c;
      if (v > 0) c.push_back(0);
      if (v / 2 > 0 && v / 2 != v) c.push_back(static_cast<std::uint8_t>(v / 2));
      if (v > 1 && v - 1 != v / 2) c.push_back(static_cast<std::uint8_t>(v - 1));
      return c;
    };
    bool changed = true;
    while (changed && !out_of_budget()) {
      changed = false;
      for (std::size_t i = best.ops.size(); i-- > 0 && !out_of_budget();) {
        Input c = best;
        c.ops.erase(c.ops.begin() + static_cast<long>(i));
        if (fails(c)) {
          best = c;
          changed = true;
        }
      }
      // Header bytes 1.. (byte 0 picks the implementation: kept).
      for (std::size_t h = 1; h < kHeaderBytes && !out_of_budget(); ++h) {
        for (std::uint8_t v : smaller(best.header[h])) {
          Input c = best;
          c.header[h] = v;
          if (fails(c)) {
            best = c;
            changed = true;
            break;
          }
        }
      }
      for (std::size_t i = 0; i < best.ops.size() && !out_of_budget(); ++i) {
        for (std::uint8_t Op::*field : {&Op::a, &Op::b, &Op::c}) {
          for (std::uint8_t v : smaller(best.ops[i].*field)) {
            Input c = best;
            c.ops[i].*field = v;
            if (fails(c)) {
              best = c;
              changed = true;
              break;
            }
          }
        }
      }
    }
  }
  if (runs_made) *runs_made = runs;
  return best;
}

// ---- the seed corpus ------------------------------------------------------------------------

std::vector<Seed> seed_inputs() {
  using K = OpKind;
  using B = BadKind;
  std::vector<Seed> seeds;
  // Prefill then ragged batched decode; a second sequence prefilled with 0 rows.
  seeds.push_back({"prefill_decode",
                   make_input({0, 1, 2, 0, 4, 8, 32, 1, 1},
                              {op(K::create), op(K::prefill, 0, 5), op(K::decode, 0, 2),
                               op(K::create), op(K::prefill, 1, 0), op(K::decode, 0, 1, 3),
                               op(K::prefill, 1, 3), op(K::decode, 1, 0)})});
  // Fork, diverge, truncate (then prefill on the truncated sequence), drop the parent.
  seeds.push_back({"fork_truncate_drop",
                   make_input({1, 2, 4, 1, 3, 5, 24, 1, 2},
                              {op(K::create), op(K::prefill, 0, 6), op(K::fork, 0),
                               op(K::decode, 0, 1, 5), op(K::truncate, 1, 2), op(K::decode, 2, 0),
                               op(K::drop, 0), op(K::decode, 0, 2), op(K::prefill, 0, 4),
                               op(K::truncate, 0, 0), op(K::prefill, 0, 3)})});
  // GQA and MQA with three ragged sequences and partial decode masks.
  seeds.push_back({"gqa_ragged",
                   make_input({2, 1, 8, 2, 16, 16, 40, 2, 3},
                              {op(K::create), op(K::prefill, 0, 7), op(K::create),
                               op(K::create), op(K::prefill, 2, 2), op(K::decode, 5, 2, 1),
                               op(K::decode, 6, 1, 2), op(K::decode, 0, 3, 7)})});
  seeds.push_back({"mqa_two_layers",
                   make_input({3, 2, 6, 3, 8, 12, 20, 1, 4},
                              {op(K::create), op(K::prefill, 0, 9), op(K::decode, 0, 3),
                               op(K::fork, 0), op(K::decode, 2, 1)})});
  // Every kind of bad call, with a full sequence and a dropped id around.
  seeds.push_back({"bad_calls",
                   make_input({0, 1, 4, 1, 4, 6, 4, 1, 5},
                              {op(K::create), op(K::prefill, 0, 4), op(K::create),
                               op(K::prefill, 1, 1), op(K::create), op(K::drop, 2),
                               bad(B::prefill_width, 0, 4), bad(B::decode_width, 1, 0x81),
                               bad(B::decode_width, 1, 2), bad(B::decode_full, 0, 1),
                               bad(B::prefill_capacity, 1, 0), bad(B::unknown_id, 1, 0),
                               bad(B::unknown_id, 2, 4), bad(B::unknown_id, 6, 2),
                               bad(B::truncate_length, 0, 3), bad(B::truncate_length, 1, 2),
                               bad(B::duplicate_id, 1, 0), bad(B::non_finite, 1, 0),
                               bad(B::non_finite, 1, 4), bad(B::non_finite, 1, 8),
                               bad(B::read_kv_range, 0, 3), bad(B::read_kv_range, 0, 0),
                               op(K::decode, 2, 0)})});
  // A prefill past 64 rows (cpu_cached's prefill tiles) on a non-empty sequence, 2 threads.
  seeds.push_back({"long_prefill",
                   make_input({1, 1, 4, 2, 32, 32, 100, 2, 6},
                              {op(K::create), op(K::prefill, 0, 3), op(K::prefill, 0, 70),
                               op(K::decode, 0, 3)})});
  // Positions past a few hundred (an offset or precision bug that starts late), 2 threads.
  seeds.push_back({"long_context",
                   make_input({0, 1, 2, 1, 16, 8, 512, 2, 9},
                              {op(K::create), op(K::prefill, 0, 80), op(K::prefill, 0, 80),
                               op(K::prefill, 0, 80), op(K::prefill, 0, 80),
                               op(K::prefill, 0, 80), op(K::decode, 0, 3), op(K::fork, 0),
                               op(K::decode, 0, 1, 1)})});
  // Capacity 3: fill exactly, decode skips, truncate to 0 and fill again.
  seeds.push_back({"capacity_full",
                   make_input({2, 1, 3, 0, 2, 3, 3, 1, 7},
                              {op(K::create), op(K::decode, 0, 3), op(K::decode, 0, 1),
                               op(K::truncate, 0, 0), op(K::prefill, 0, 3),
                               bad(B::decode_full, 0, 0)})});
  // Fork of an empty sequence; the parent dropped while the child lives on.
  seeds.push_back({"fork_empty",
                   make_input({3, 1, 1, 0, 1, 1, 8, 1, 8},
                              {op(K::create), op(K::fork, 0), op(K::decode, 0, 1),
                               op(K::drop, 0), op(K::decode, 0, 1)})});
  return seeds;
}

}  // namespace kvbench::fuzz
