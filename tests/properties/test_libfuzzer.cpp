// Tests of the libFuzzer engine's target (properties/libfuzzer), without libFuzzer: the
// input format, the committed seed corpus (it must replay clean on every implementation and
// exercise every operation), and that bugs planted in a test-only wrapper are found, with a
// shrunk case, by the same checks and reporting path the fuzzer uses.
#include <gtest/gtest.h>

#include <dirent.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <map>
#include <set>

#include "harness/error.h"
#include "harness/registry.h"
#include "harness/weights.h"
#include "properties/libfuzzer/fuzz_case.h"
#include "properties/libfuzzer/fuzz_target.h"
#include "tests/planted/forwarding_cache.h"
#include "tests/planted/planted_caches.h"

namespace kvbench::fuzz {
namespace {

std::vector<std::uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(static_cast<bool>(in)) << "cannot read " << path;
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::set<std::string> files_in(const std::string& dir) {
  std::set<std::string> out;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return out;
  while (const dirent* e = readdir(d)) {
    if (e->d_name[0] != '.') out.insert(e->d_name);
  }
  closedir(d);
  return out;
}

// ---- the input format ---------------------------------------------------------------------

TEST(FuzzInput, DecodeEncodeRoundTrips) {
  InputStream rng(11);
  for (std::size_t size = 0; size < kMaxInputBytes + 20; ++size) {
    std::vector<std::uint8_t> bytes(size);
    for (auto& b : bytes) b = static_cast<std::uint8_t>(rng.next_u64());
    const Input in = decode(bytes.data(), bytes.size());
    const std::vector<std::uint8_t> enc = encode(in);
    EXPECT_EQ(decode(enc.data(), enc.size()), in) << "size " << size;
    // Every byte the format reads is the input's own: a prefix of the encoding.
    const std::size_t used = std::min(size, kMaxInputBytes);
    ASSERT_GE(enc.size(), used);
    EXPECT_TRUE(std::equal(bytes.begin(), bytes.begin() + static_cast<long>(used), enc.begin()));
    EXPECT_LE(in.ops.size(), kMaxOps);
  }
  // Missing bytes read as 0: the empty input is a valid one (the smallest model, no ops).
  const Input empty = decode(nullptr, 0);
  EXPECT_TRUE(empty.ops.empty());
  for (std::uint8_t b : empty.header) EXPECT_EQ(b, 0);
}

TEST(FuzzInput, MakeInputNamesTheFieldOutOfRange) {
  Header h;
  h.heads = 9;
  try {
    make_input(h, {});
    FAIL() << "heads 9 was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("heads 8 is out of range 0..7"), std::string::npos)
        << e.what();
  }
  h.heads = 4;
  h.kv_div = 3;  // 4 has the divisors 4, 2, 1
  EXPECT_THROW(make_input(h, {}), Error);
  h.kv_div = 0;
  h.capacity = 130;  // above 128 only 128 + 3k
  EXPECT_THROW(make_input(h, {}), Error);
  for (int b = 0; b < 256; ++b) {
    h.capacity = capacity_of(static_cast<std::uint8_t>(b));
    EXPECT_EQ(make_input(h, {}).header[6], b) << "capacity " << h.capacity;
  }
}

TEST(FuzzInput, HeaderDecodesToTheNarrowModel) {
  Header h;
  h.layers = 2;
  h.heads = 6;
  h.kv_div = 2;  // divisors of 6, largest first: 6, 3, 2, 1
  h.head_dim = 64;
  h.d_model = 32;
  h.capacity = 512;
  h.seed = 513;
  const Report r = run(Registry::global().get("naive"), make_input(h, {op(OpKind::create)}));
  EXPECT_FALSE(r.failed) << r.describe();
  EXPECT_NE(r.config.find("L=2 d_model=32 H=6 H_kv=2 d=64 cap=512 fp32 seed=513"),
            std::string::npos)
      << r.config;
}

// ---- the seed corpus ----------------------------------------------------------------------

TEST(FuzzCorpus, CommittedFilesAreTheGeneratedSeeds) {
  const std::string dir = KVBENCH_FUZZ_CORPUS;
  std::set<std::string> names;
  for (const Seed& s : seed_inputs()) {
    names.insert(s.name);
    EXPECT_EQ(read_bytes(dir + "/" + s.name), encode(s.input))
        << s.name << " differs from seed_inputs(); regenerate with "
        << "build/kvbench_fuzz_replay --write-seeds properties/libfuzzer/corpus";
  }
  EXPECT_EQ(files_in(dir), names);
}

TEST(FuzzCorpus, EverySeedPassesOnEveryImplementation) {
  for (const ImplInfo* impl : select_impls(Registry::global(), "all")) {
    for (const Seed& s : seed_inputs()) {
      const Report r = run(*impl, s.input);
      EXPECT_FALSE(r.failed) << s.name << " on " << impl->name << ":\n" << r.describe();
    }
  }
}

// The seeds are where fuzzing starts: between them they must execute every operation and
// every kind of bad call (a seed whose records are all skipped would teach the fuzzer
// nothing), on a K/V cache and on naive.
TEST(FuzzCorpus, SeedsExerciseEveryOperation) {
  for (const char* name : {"cpu_cached", "naive"}) {
    std::array<int, static_cast<int>(OpKind::count)> kinds{};
    std::set<int> bad_kinds;
    for (const Seed& s : seed_inputs()) {
      const Report r = run(Registry::global().get(name), s.input);
      for (std::size_t k = 0; k < kinds.size(); ++k) kinds[k] += r.op_kinds[k];
      EXPECT_GT(r.executed_ops, 0) << s.name;
      for (const Op& o : s.input.ops) {
        if (o.kind % static_cast<int>(OpKind::count) == static_cast<int>(OpKind::bad)) {
          bad_kinds.insert(o.a % static_cast<int>(BadKind::count));
        }
      }
    }
    for (std::size_t k = 0; k < kinds.size(); ++k) {
      EXPECT_GT(kinds[k], 0) << name << ": no seed executes operation kind " << k;
    }
    EXPECT_EQ(bad_kinds.size(), static_cast<std::size_t>(BadKind::count));
  }
}

TEST(FuzzImpls, SelectionNamesWhatCannotBeFuzzed) {
  EXPECT_THROW(select_impls(Registry::global(), "no_such_cache"), Error);
  const auto all = select_impls(Registry::global(), "all");
  for (const ImplInfo* impl : all) EXPECT_FALSE(impl->caps.planted) << impl->name;
  const auto one = select_impls(Registry::global(), "naive");
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0]->name, "naive");
}

// ---- planted bugs ---------------------------------------------------------------------------
//
// A test-only cache that forwards to cpu_cached and plants one bug; never registered in the
// global registry except by the session test below, under a planted name.

enum class Bug {
  none,            // a faithful wrapper: must pass (the wrapper is not the finding)
  output_error,    // decode outputs of sequences holding >= 4 tokens off by 1e-3 relative
  stale_kv,        // read_kv returns K row 3 off by 1e-3 (the cache itself is right)
  bytes_over,      // bytes_held 4 too many while a sequence holds >= 5 tokens
  batched_count,   // qk_dot_products one too many on batched decode calls
};

class Planted final : public testing::ForwardingCache {
 public:
  Planted(std::shared_ptr<const ModelWeights> w, const ImplOptions& o, Bug bug)
      : ForwardingCache("fuzz_planted", "cpu_cached", std::move(w), o), bug_(bug) {}

 private:
  void after_decode(const std::vector<SeqId>& ids, float* out) override {
    const std::size_t dm = static_cast<std::size_t>(config().d_model);
    for (std::size_t i = 0; i < ids.size(); ++i) {
      if (bug_ == Bug::output_error && inner().length(ids[i]) > 4) {
        for (std::size_t j = 0; j < dm; ++j) out[i * dm + j] *= 1.001f;
      }
    }
    if (bug_ == Bug::batched_count && ids.size() > 1) add_qk_dot_products(1);
  }
  void after_read_kv(KvRows& r) const override {
    if (bug_ == Bug::stale_kv && r.length > 3) r.k[3 * r.head_dim] *= 1.001f;
  }
  void adjust_memory(Memory& m) const override {
    if (bug_ != Bug::bytes_over) return;
    for (SeqId id : inner().sequences()) {
      if (inner().length(id) >= 5) {
        m.held += 4;
        m.reserved = std::max(m.reserved, m.held);
        return;
      }
    }
  }

  Bug bug_;
};

ImplInfo planted(Bug bug, const std::string& name = "fuzz_planted") {
  ImplInfo info = *Registry::global().find("cpu_cached");
  info.name = name;
  info.caps.planted = true;
  info.create = [bug](std::shared_ptr<const ModelWeights> w, const ImplOptions& o) {
    return std::unique_ptr<KvCache>(new Planted(std::move(w), o, bug));
  };
  return info;
}

// The bug must be found on some seed with `tag`, and shrink to a shorter case that still
// fails with it; the shrunk case goes to the test log (it is what a user would read).
void expect_found(Bug bug, const std::string& tag, const std::string& words) {
  const ImplInfo impl = planted(bug);
  int found = 0;
  for (const Seed& s : seed_inputs()) {
    const Report r = run(impl, s.input);
    if (!r.failed) continue;
    ++found;
    EXPECT_EQ(r.tag, tag) << r.describe();
    EXPECT_NE(r.check.find(words), std::string::npos) << r.describe();
    int runs = 0;
    const Input small = shrink([&](const Input& c) { return run(impl, c); }, s.input, 2000, &runs);
    const Report again = run(impl, small);
    ASSERT_TRUE(again.failed) << "the shrunk case passes";
    EXPECT_EQ(again.tag, tag);
    EXPECT_LE(small.ops.size(), s.input.ops.size());
    std::cout << "[" << s.name << "] " << s.input.ops.size() << " records -> " << small.ops.size()
              << " after " << runs << " runs:\n" << again.describe() << "\n";
  }
  EXPECT_GT(found, 0) << "no seed finds the planted bug";
}

TEST(FuzzPlanted, FaithfulWrapperPasses) {
  const ImplInfo impl = planted(Bug::none);
  for (const Seed& s : seed_inputs()) {
    const Report r = run(impl, s.input);
    EXPECT_FALSE(r.failed) << s.name << ":\n" << r.describe();
  }
}

TEST(FuzzPlanted, OutputErrorIsFoundAgainstTheReference) {
  expect_found(Bug::output_error, "output", "x the bound");
}

TEST(FuzzPlanted, WrongCachedRowIsFoundByReadKv) {
  expect_found(Bug::stale_kv, "read_kv", "cached K rows");
}

TEST(FuzzPlanted, BytesHeldOverCountIsFound) {
  expect_found(Bug::bytes_over, "bytes_held", "expected 2 x L");
}

TEST(FuzzPlanted, BatchedCounterErrorIsFound) {
  expect_found(Bug::batched_count, "counters", "qk_dot_products grew by");
}

// ---- the planted K/V caches (tests/planted) ------------------------------------------------

// What `KVBENCH_FUZZ_IMPLS=<variant> bash ci/fuzz.sh run 60` starts with: the committed seed
// corpus. Every planted variant the fuzzer can reach (fp32, at most kMaxTokens token rows)
// must be found by some seed, by the check that names its bug; the rest are out of reach by
// construction (properties/README.md, "Coverage-guided fuzzing": the results table).
struct PlantedWant {
  const char* name;
  const char* tag;    // Report::tag of the finding
  const char* words;  // in Report::check
};
const PlantedWant kReachablePlanted[] = {
    {"planted_read_past_end", "output", "is not finite"},  // the NaN poison of the next slot
    {"planted_fp16_as_fp32", "output", "x the bound"},
    {"planted_bf16_as_fp32", "output", "x the bound"},
    {"planted_gqa_overcount", "counters", "declared read model"},
    {"planted_prefill_after_truncate_stale", "output", "x the bound"},
    {"planted_offset_after_300", "output", "x the bound"},  // the long_context seed
};

const Registry& planted_registry() {
  static const Registry* registry = [] {
    auto* r = new Registry;
    kvbench::testing::register_planted_caches(*r);
    return r;
  }();
  return *registry;
}

TEST(FuzzPlantedCaches, SeedCorpusFindsEveryReachableVariant) {
  for (const PlantedWant& want : kReachablePlanted) {
    SCOPED_TRACE(want.name);
    const ImplInfo& impl = planted_registry().get(want.name);
    bool found = false;
    for (const Seed& s : seed_inputs()) {
      const Report r = run(impl, s.input);
      if (!r.failed) continue;
      found = true;
      EXPECT_EQ(r.tag, want.tag) << s.name << ":\n" << r.describe();
      EXPECT_NE(r.check.find(want.words), std::string::npos) << s.name << ":\n" << r.describe();
      std::cout << want.name << ": found by seed " << s.name << " [" << r.tag << "]\n";
      break;
    }
    EXPECT_TRUE(found) << "no committed seed finds " << want.name;
  }
}

// The control (and the fuzzer's checks on it): no seed fails on the bug-free planted cache.
TEST(FuzzPlantedCaches, ControlPassesEverySeed) {
  const ImplInfo& impl = planted_registry().get("planted_reference_cache");
  for (const Seed& s : seed_inputs()) {
    const Report r = run(impl, s.input);
    EXPECT_FALSE(r.failed) << s.name << ":\n" << r.describe();
  }
}

// kv_bytes_read is exact under a declared read model: counting per query head while reading
// per KV head stays inside the [H_kv, H] range an undeclared model gets, so only the exact
// check finds it, and the shrinker takes it down to one decode of an empty GQA sequence.
TEST(FuzzPlantedCaches, GqaOvercountIsFoundExactlyAndShrinks) {
  const ImplInfo& impl = planted_registry().get("planted_gqa_overcount");
  Header h;
  h.heads = 2;  // kv_div 1: H_kv = 1
  h.kv_div = 1;
  h.capacity = 4;
  const Input input = make_input(h, {op(OpKind::create), op(OpKind::prefill, 0, 2),
                                     op(OpKind::decode, 0, 1)});
  const Report r = run(impl, input);
  ASSERT_TRUE(r.failed) << r.describe();
  EXPECT_EQ(r.tag, "counters");
  EXPECT_NE(r.check.find("kv_bytes_read grew by"), std::string::npos) << r.check;
  EXPECT_NE(r.check.find("per KV head"), std::string::npos) << r.check;
  // The same counts from the control pass: the check is exact, not merely tighter.
  EXPECT_FALSE(run(planted_registry().get("planted_reference_cache"), input).failed);
  const Input small = shrink([&](const Input& c) { return run(impl, c); }, input);
  const Report again = run(impl, small);
  ASSERT_TRUE(again.failed);
  EXPECT_EQ(again.tag, "counters");
  EXPECT_LE(again.executed_ops, 2) << again.describe();
  std::cout << again.describe() << "\n";
}

// The path the fuzzer takes on a finding: a planted implementation named in
// KVBENCH_FUZZ_IMPLS, check_input() reports it, shrinks it and writes the shrunk input,
// which replays to the same failure.
TEST(FuzzSession, PlantedImplByNameIsReportedShrunkAndWritten) {
  Registry::global().add(planted(Bug::output_error, "fuzz_planted_output"));
  char dir[] = "/tmp/kvbench_fuzz_test_XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  setenv("KVBENCH_FUZZ_IMPLS", "fuzz_planted_output", 1);
  setenv("KVBENCH_FUZZ_ARTIFACTS", dir, 1);
  init_session();
  const std::vector<std::uint8_t> good = encode(make_input({}, {op(OpKind::create)}));
  EXPECT_FALSE(check_input(good.data(), good.size()));
  const std::vector<std::uint8_t> bytes = encode(seed_inputs()[0].input);  // prefill_decode
  ::testing::internal::CaptureStderr();
  const bool failed = check_input(bytes.data(), bytes.size());
  const std::string printed = ::testing::internal::GetCapturedStderr();
  std::cout << printed;
  ASSERT_TRUE(failed);
  EXPECT_NE(printed.find("FINDING"), std::string::npos);
  EXPECT_NE(printed.find("#0 create -> id 0"), std::string::npos);
  EXPECT_NE(printed.find("==== shrunk:"), std::string::npos);
  const std::set<std::string> files = files_in(dir);
  ASSERT_EQ(files.size(), 1u);
  const std::string path = std::string(dir) + "/" + *files.begin();
  EXPECT_NE(printed.find("replay: KVBENCH_FUZZ_IMPLS=fuzz_planted_output bash ci/fuzz.sh replay " +
                         path),
            std::string::npos);
  const std::vector<std::uint8_t> shrunk = read_bytes(path);
  EXPECT_LT(shrunk.size(), bytes.size());
  const Report r = run(*Registry::global().find("fuzz_planted_output"),
                       decode(shrunk.data(), shrunk.size()));
  EXPECT_TRUE(r.failed);
  EXPECT_EQ(r.tag, "output");
  unlink(path.c_str());
  rmdir(dir);
}

}  // namespace
}  // namespace kvbench::fuzz
