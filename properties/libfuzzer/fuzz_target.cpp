// The libFuzzer target: LLVMFuzzerTestOneInput decodes the bytes (fuzz_case.h), runs them
// against the implementation they pick, and aborts on a finding so that libFuzzer saves the
// input as a crash file. The same translation unit links into the standalone replayer.
#include "properties/libfuzzer/fuzz_target.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "harness/error.h"
#include "harness/registry.h"
#include "impls/impls.h"
#include "properties/libfuzzer/fuzz_case.h"

#ifdef KVBENCH_HAVE_PLANTED
#include "tests/planted/planted_caches.h"
#endif

namespace kvbench::fuzz {
namespace {

struct Session {
  std::vector<const ImplInfo*> impls;
  bool shrink = true;
  bool verbose = false;
  std::string artifacts = ".";
};

Session* session = nullptr;

std::string env(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v != nullptr ? v : fallback;
}

bool env_flag(const char* name, bool fallback) {
  const std::string v = env(name, fallback ? "1" : "0");
  require(v == "0" || v == "1", name, ": expected 0 or 1, got '", v, "'");
  return v == "1";
}

std::string hex64(const std::vector<std::uint8_t>& bytes) {
  std::uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a: a stable name for the same bytes
  for (std::uint8_t b : bytes) h = (h ^ b) * 0x100000001b3ull;
  std::ostringstream out;
  out << std::hex << std::setw(16) << std::setfill('0') << h;
  return out.str();
}

}  // namespace

void init_session() {
  if (session != nullptr) return;
  auto s = std::make_unique<Session>();
  Registry& registry = Registry::global();
#ifdef KVBENCH_HAVE_PLANTED
  // Deliberately broken variants (tests/planted): selectable by name, never by "all".
  kvbench::testing::register_planted_caches(registry);
#endif
  std::stringstream plugins(env("KVBENCH_FUZZ_PLUGINS", ""));
  for (std::string path; std::getline(plugins, path, ',');) {
    if (!path.empty()) registry.load_plugin(path);
  }
  const std::string list = env("KVBENCH_FUZZ_IMPLS", "all");
  try {
    s->impls = select_impls(registry, list);
  } catch (const Error& e) {
    fail("KVBENCH_FUZZ_IMPLS='", list, "': ", e.what());
  }
  s->shrink = env_flag("KVBENCH_FUZZ_SHRINK", true);
  s->verbose = env_flag("KVBENCH_FUZZ_VERBOSE", false);
  s->artifacts = env("KVBENCH_FUZZ_ARTIFACTS", ".");
  std::cerr << "kvbench fuzz target: implementations";
  for (const ImplInfo* impl : s->impls) std::cerr << " " << impl->name;
  std::cerr << " (KVBENCH_FUZZ_IMPLS=" << list << ")\n";
  session = s.release();
}

bool check_input(const std::uint8_t* data, std::size_t size) {
  const Input input = decode(data, size);
  const ImplInfo& impl = pick_impl(session->impls, input);
  const Report report = run(impl, input);
  if (session->verbose && !report.failed) std::cerr << report.describe() << "\n";
  if (!report.failed) return false;
  std::cerr << "\n==== kvbench fuzz: FINDING ====\n" << report.describe() << "\n";
  if (!session->shrink) return true;
  std::cerr << "shrinking (greedy: drop operation records, then lower sizes and arguments)..."
            << std::endl;
  int runs = 0;
  const auto start = std::chrono::steady_clock::now();
  const Input small =
      shrink([&impl](const Input& c) { return run(impl, c); }, input, 2000, &runs);
  const Report shrunk = run(impl, small);
  std::cerr << "==== shrunk: " << small.ops.size() << " of " << input.ops.size()
            << " operation records (" << runs << " runs, " << std::fixed
            << std::setprecision(1)
            << std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()
            << " s) ====\n"
            << shrunk.describe() << "\n";
  const std::vector<std::uint8_t> bytes = encode(small);
  const std::string path = session->artifacts + "/shrunk-" + hex64(bytes);
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (out) {
    std::cerr << "shrunk input: " << path << "\nreplay: KVBENCH_FUZZ_IMPLS=" << impl.name
              << " bash ci/fuzz.sh replay " << path << "\n";
  } else {
    std::cerr << "(could not write the shrunk input to " << path << ")\n";
  }
  return true;
}

}  // namespace kvbench::fuzz

// libFuzzer's main calls this first: the place of a main that fills the registry.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  try {
    kvbench::register_builtin_impls(kvbench::Registry::global());
    kvbench::fuzz::init_session();
  } catch (const std::exception& e) {
    std::cerr << "kvbench fuzz target: error: " << e.what() << "\n";
    std::exit(2);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // abort(), not a return code: libFuzzer saves the input that crashed as a file.
  if (kvbench::fuzz::check_input(data, size)) std::abort();
  return 0;
}
