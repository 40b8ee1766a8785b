// `kvbench verify` and `kvbench fuzz`: the property suite on the command line.
//
// verify: every property over every selected implementation, one line each ending with the
//         coverage the run reached, then "coverage: ..." over the whole run, then
//         "N passed, M failed[, K skipped]" (the last line; CI parses it); exit 1 when
//         anything failed. --json FILE writes the same for machines, atomically.
// fuzz:   two engines. rapidcheck (default): the same properties round-robin with fresh
//         seeds until time is up; stops at the first failure with its reproduce string
//         (exit 1). libfuzzer: runs the coverage-guided target of properties/libfuzzer
//         (built separately with clang: `bash ci/fuzz.sh build`) for the same time.
// Both print RapidCheck's reproduce string for a failure; RC_PARAMS="reproduce=..." given
// back to verify (or to the gtest runner) replays exactly that case.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iomanip>
#include <iostream>
#include <memory>
#include <random>
#include <sstream>

#include <nlohmann/json.hpp>

#include "properties/cmd_verify.h"
#include "harness/atomic_file.h"
#include "harness/cli_validators.h"
#include "harness/error.h"
#include "harness/registry.h"
#include "harness/weights.h"
#include "properties/coverage.h"
#include "properties/libfuzzer/fuzz_case.h"  // kMaxInputBytes only (no link dependency)
#include "properties/property.h"
#include "properties/runner.h"

namespace kvbench::cli {
namespace {

using props::Coverage;
using props::Outcome;
using props::Property;
using props::Verdict;

struct SuiteArgs {
  std::string impls = "all";
  std::string properties = "all";
  std::vector<std::string> plugins;
  long long cases = 0;        // 0: RapidCheck's configuration (RC_PARAMS max_success or 100)
  std::uint64_t seed = 0;
  bool seed_given = false;
  bool list = false;
  std::string json;           // verify: --json FILE ("" = none)
  double seconds = 60;        // fuzz
  int per_round = 10;         // fuzz: cases per property and implementation per round
  int max_tokens = 8192;      // long_context: the longest sequence drawn
  std::string engine = "rapidcheck";  // fuzz: rapidcheck | libfuzzer
  std::string libfuzzer;      // fuzz --engine libfuzzer: the binary ("" = look for it)
  std::string corpus;         // fuzz --engine libfuzzer: the working corpus directory
  bool property_given = false;
  bool per_round_given = false;
};

std::vector<const Property*> select_properties(const std::string& list) {
  std::vector<const Property*> out;
  if (list == "all") {
    for (const Property& p : props::all_properties()) out.push_back(&p);
    return out;
  }
  std::stringstream in(list);
  std::string name;
  while (std::getline(in, name, ',')) {
    if (!name.empty()) out.push_back(&props::find_property(name));
  }
  require(!out.empty(), "no property named in '", list, "'");
  return out;
}

std::vector<const ImplInfo*> select_impls(const SuiteArgs& a) {
  Registry& registry = Registry::global();
  for (const auto& path : a.plugins) registry.load_plugin(path);
  return registry.select(a.impls);  // throws Error naming an unknown implementation
}

void print_properties() {
  for (const Property& p : props::all_properties()) {
    std::cout << std::left << std::setw(30) << p.name << p.description << "\n";
  }
}

// Progress on stderr: a line rewritten in place on a terminal, nothing otherwise.
class ProgressLine {
 public:
  ProgressLine() : tty_(isatty(STDERR_FILENO) == 1) {}
  void show(const std::string& text) {
    if (!tty_) return;
    std::cerr << "\r\033[K" << text << std::flush;
    shown_ = true;
  }
  void clear() {
    if (tty_ && shown_) std::cerr << "\r\033[K" << std::flush;
    shown_ = false;
  }

 private:
  bool tty_;
  bool shown_ = false;
};

std::string indent(const std::string& text) {
  std::string out = "    ";
  for (char c : text) {
    out += c;
    if (c == '\n') out += "    ";
  }
  while (!out.empty() && (out.back() == ' ' || out.back() == '\n')) out.pop_back();
  return out;
}

// The command line that replays a failure (its RC_PARAMS reproduce string set).
std::string reproduce_command(const Outcome& o, const Property& p, const ImplInfo& impl) {
  std::string command =
      o.reproduce + " kvbench verify --impl " + impl.name + " --property " + p.name;
  if (props::long_context_max_tokens() != 8192) {
    command += " --max-tokens " + std::to_string(props::long_context_max_tokens());
  }
  return command;
}

void print_failure(const Outcome& o, const Property& p, const ImplInfo& impl) {
  std::cout << indent(o.report) << "\n";
  if (!o.reproduce.empty()) {
    std::cout << "    To reproduce:\n    " << reproduce_command(o, p, impl) << "\n";
  }
}

// ---- --json FILE ----------------------------------------------------------------------------

nlohmann::ordered_json to_json(const Coverage& c) {
  nlohmann::ordered_json dtypes = nlohmann::ordered_json::array();
  for (DType t : c.dtypes) dtypes.push_back(dtype_name(t));
  const props::OpCounts& o = c.ops;
  return {
      {"max_tokens", c.max_tokens},
      {"max_decode_position",
       c.max_decode_position >= 0 ? nlohmann::ordered_json(c.max_decode_position) : nullptr},
      {"max_prefill_chunk", c.max_prefill_chunk},
      {"max_decode_batch", c.max_decode_batch},
      {"layers", c.layers},
      {"group_sizes", c.group_sizes},
      {"max_head_dim", c.max_head_dim},
      {"max_d_model", c.max_d_model},
      {"dtypes", dtypes},
      {"threads", c.threads},
      {"ops",
       {{"create", o.create},
        {"prefill", o.prefill},
        {"prefill_nonempty", o.prefill_nonempty},
        {"decode", o.decode},
        {"batched_decode", o.batched_decode},
        {"fork", o.fork},
        {"truncate", o.truncate},
        {"drop", o.drop},
        {"read_kv", o.read_kv},
        {"rejected", o.rejected}}},
  };
}

const char* verdict_name(Verdict v) {
  return v == Verdict::passed ? "passed" : v == Verdict::failed ? "failed" : "skipped";
}

nlohmann::ordered_json to_json(const Outcome& o, const Property& p, const ImplInfo& impl) {
  nlohmann::ordered_json j = {{"property", p.name},
                      {"implementation", impl.name},
                      {"verdict", verdict_name(o.verdict)},
                      {"cases", o.cases},
                      {"shrinks", o.shrinks},
                      {"seconds", o.seconds}};
  if (!o.reason.empty()) j["reason"] = o.reason;
  if (!o.note.empty()) j["note"] = o.note;
  if (o.verdict == Verdict::failed) {
    j["report"] = o.report;
    j["reproduce"] = o.reproduce;
    if (!o.reproduce.empty()) j["reproduce_command"] = reproduce_command(o, p, impl);
  }
  j["coverage"] = o.verdict == Verdict::skipped ? nlohmann::ordered_json(nullptr) : to_json(o.coverage);
  return j;
}

void run_verify(const SuiteArgs& a) {
  if (a.list) {
    print_properties();
    return;
  }
  const bool json_file = !a.json.empty();
  if (json_file) check_writable(a.json, "--json");  // before any work: a bad path fails at once
  const auto impls = select_impls(a);
  const auto properties = select_properties(a.properties);
  props::set_long_context_max_tokens(a.max_tokens);
  rc::detail::TestParams params = props::configured_params();
  if (a.cases > 0) params.maxSuccess = static_cast<int>(a.cases);
  if (a.seed_given) params.seed = a.seed;
  std::cerr << "verify: " << properties.size() << " properties x " << impls.size()
            << " implementations, " << params.maxSuccess << " cases each, seed " << params.seed
            << (props::reproducing() ? " (replaying RC_PARAMS reproduce=...)" : "") << "\n";

  int passed = 0, failed = 0, skipped = 0;
  long long total_cases = 0;
  double total_seconds = 0;
  Coverage total;  // over every property x implementation that ran
  nlohmann::ordered_json results = nlohmann::ordered_json::array();
  ProgressLine progress;
  for (const Property* p : properties) {
    for (const ImplInfo* impl : impls) {
      const std::string label = p->name + " / " + impl->name;
      const Outcome o = props::run_property(*p, *impl, params, [&](int cases, int shrinks) {
        progress.show(label + ": " + std::to_string(cases) + " cases" +
                      (shrinks ? ", " + std::to_string(shrinks) + " shrinks" : ""));
      });
      progress.clear();
      std::ostringstream line;
      line << std::left << std::setw(5)
           << (o.verdict == Verdict::passed   ? "PASS"
               : o.verdict == Verdict::failed ? "FAIL"
                                              : "SKIP")
           << " " << std::setw(30) << p->name << " " << std::setw(14) << impl->name << " ";
      if (o.verdict == Verdict::skipped) {
        line << o.reason;
      } else {
        line << std::right << std::setw(5) << o.cases << " cases";
        if (o.shrinks) line << ", " << o.shrinks << " shrinks";
        line << std::fixed << std::setprecision(2) << std::setw(8) << o.seconds << " s";
        if (!o.note.empty()) line << "  (" << o.note << ")";
        line << "  " << o.coverage.brief();
      }
      std::cout << line.str() << "\n";
      if (o.verdict == Verdict::failed) print_failure(o, *p, *impl);
      std::cout << std::flush;
      (o.verdict == Verdict::passed ? passed : o.verdict == Verdict::failed ? failed : skipped)++;
      total_cases += o.cases;
      total_seconds += o.seconds;
      if (o.verdict != Verdict::skipped) total.merge(o.coverage);
      if (json_file) results.push_back(to_json(o, *p, *impl));
    }
  }
  std::cout << "coverage: " << total.summary() << "\n";
  if (json_file) {
    const nlohmann::ordered_json doc = {
        {"command", "verify"},
        {"seed", params.seed},
        {"cases_per_pair", params.maxSuccess},
        {"reproducing", props::reproducing()},
        {"results", results},
        {"totals",
         {{"passed", passed},
          {"failed", failed},
          {"skipped", skipped},
          {"cases", total_cases},
          {"seconds", total_seconds},
          {"coverage", to_json(total)}}}};
    write_file_atomically(a.json, doc.dump(2) + "\n", "--json");
  }
  std::cout << passed << " passed, " << failed << " failed";
  if (skipped > 0) std::cout << ", " << skipped << " skipped";
  std::cout << std::endl;
  if (failed > 0) throw CommandExit{1};
}

// ---- fuzz --engine libfuzzer ---------------------------------------------------------------

bool is_executable(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(path.c_str(), X_OK) == 0;
}

std::string dirname_of(const std::string& path) {
  const std::size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

// The libFuzzer binary: --libfuzzer, else $KVBENCH_LIBFUZZER, else build-fuzz/ beside the
// directory of this kvbench binary (build/kvbench -> build-fuzz/kvbench_libfuzzer), else
// build-fuzz/ under the current directory.
std::string find_libfuzzer(const SuiteArgs& a) {
  if (!a.libfuzzer.empty()) {
    require(is_executable(a.libfuzzer), "fuzz: --libfuzzer '", a.libfuzzer,
            "' is not an executable file (build it with `bash ci/fuzz.sh build`)");
    return a.libfuzzer;
  }
  if (const char* env = std::getenv("KVBENCH_LIBFUZZER")) {
    require(is_executable(env), "fuzz: KVBENCH_LIBFUZZER '", env,
            "' is not an executable file (build it with `bash ci/fuzz.sh build`)");
    return env;
  }
  std::vector<std::string> candidates;
  std::string self(4096, '\0');
  const ssize_t n = readlink("/proc/self/exe", &self[0], self.size() - 1);
  if (n > 0) {
    self.resize(static_cast<std::size_t>(n));
    candidates.push_back(dirname_of(dirname_of(self)) + "/build-fuzz/kvbench_libfuzzer");
  }
  candidates.push_back("build-fuzz/kvbench_libfuzzer");
  std::string looked;
  for (const std::string& c : candidates) {
    if (is_executable(c)) return c;
    looked += (looked.empty() ? "" : ", ") + c;
  }
  fail("fuzz: --engine libfuzzer needs the libFuzzer binary, which is built separately: run "
       "`bash ci/fuzz.sh build` (clang, into build-fuzz/), or name it with --libfuzzer PATH "
       "(looked for ", looked, ")");
}

// Runs the libFuzzer target for --seconds (as `bash ci/fuzz.sh run` does) and exits 1 on a
// finding: its report (operation list, failing check, shrunk case) is the binary's output.
void run_libfuzzer(const SuiteArgs& a) {
  require(!a.property_given, "fuzz: --property applies to --engine rapidcheck only (the "
          "libFuzzer target checks every invariant on each input)");
  require(!a.per_round_given, "fuzz: --per-round applies to --engine rapidcheck only");
  require(!a.seed_given || a.seed <= 0xFFFFFFFFull, "fuzz: --seed for libFuzzer must be below "
          "2^32, got ", a.seed);
  const std::string binary = find_libfuzzer(a);
  const std::string dir = dirname_of(binary);
  const std::string corpus = a.corpus.empty() ? dir + "/corpus" : a.corpus;
  const std::string artifacts = dir + "/artifacts";
  for (const std::string& d : {corpus, artifacts}) {
    require(mkdir(d.c_str(), 0755) == 0 || errno == EEXIST, "fuzz: cannot create directory '",
            d, "': ", std::strerror(errno));
  }
  std::vector<std::string> args = {
      binary,
      "-max_total_time=" + std::to_string(static_cast<long long>(std::ceil(a.seconds))),
      "-max_len=" + std::to_string(fuzz::kMaxInputBytes),
      // A finding's shrinking runs inside the crashing execution, for up to a minute.
      "-timeout=150", "-rss_limit_mb=4096", "-print_final_stats=1",
      "-artifact_prefix=" + artifacts + "/"};
  if (a.seed_given) args.push_back("-seed=" + std::to_string(a.seed));
  args.push_back(corpus);  // receives new inputs
#ifdef KVBENCH_FUZZ_SEED_CORPUS
  if (access(KVBENCH_FUZZ_SEED_CORPUS, R_OK) == 0) {
    args.push_back(KVBENCH_FUZZ_SEED_CORPUS);  // the committed seeds, only read
  }
#endif
  std::string plugins;
  for (const auto& p : a.plugins) plugins += (plugins.empty() ? "" : ",") + p;
  setenv("KVBENCH_FUZZ_IMPLS", a.impls.c_str(), 1);
  if (!plugins.empty()) setenv("KVBENCH_FUZZ_PLUGINS", plugins.c_str(), 1);
  setenv("KVBENCH_FUZZ_ARTIFACTS", artifacts.c_str(), 0);
  setenv("OMP_NUM_THREADS", "1", 0);  // the reference runs one input at a time
  std::cerr << "fuzz: libFuzzer engine:";
  for (const auto& arg : args) std::cerr << " " << arg;
  std::cerr << "\n" << std::flush;
  std::vector<char*> argv;
  for (auto& arg : args) argv.push_back(&arg[0]);
  argv.push_back(nullptr);
  const pid_t pid = fork();
  require(pid >= 0, "fuzz: fork failed: ", std::strerror(errno));
  if (pid == 0) {
    execv(binary.c_str(), argv.data());
    std::perror("fuzz: exec of the libFuzzer binary failed");
    _exit(127);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    std::cout << "fuzz: libFuzzer ran " << a.seconds << " s, no finding" << std::endl;
    return;
  }
  std::cout << "FAIL  libFuzzer engine found a failing input (exit "
            << (WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status))
            << "); crash and shrunk inputs are in " << artifacts
            << "/; replay one with: bash ci/fuzz.sh replay FILE" << std::endl;
  throw CommandExit{1};
}

void run_fuzz(const SuiteArgs& a) {
  if (a.engine == "libfuzzer") return run_libfuzzer(a);
  require(a.engine == "rapidcheck", "fuzz: --engine must be rapidcheck or libfuzzer, got '",
          a.engine, "'");
  require(!props::reproducing(),
          "fuzz: RC_PARAMS holds reproduce=...; replay a failure with `kvbench verify` instead");
  require(a.seconds > 0, "fuzz: --seconds must be > 0, got ", a.seconds);
  require(a.per_round >= 1, "fuzz: --per-round must be >= 1, got ", a.per_round);
  const auto impls = select_impls(a);
  const auto properties = select_properties(a.properties);
  props::set_long_context_max_tokens(a.max_tokens);

  // The (property, implementation) pairs that can run here; the others are said once.
  std::vector<std::pair<const Property*, const ImplInfo*>> pairs;
  for (const Property* p : properties) {
    for (const ImplInfo* impl : impls) {
      std::string why;
      if (!impl->available()) {
        why = "unavailable: " + impl->why_unavailable();
      } else if (p->applies && !p->applies(*impl, &why)) {
        why = "not applicable: " + why;
      }
      if (why.empty()) {
        pairs.emplace_back(p, impl);
      } else {
        std::cerr << "fuzz: skipping " << p->name << " / " << impl->name << " (" << why << ")\n";
      }
    }
  }
  require(!pairs.empty(), "fuzz: no property applies to the selected implementations");

  const std::uint64_t base = a.seed_given ? a.seed : std::random_device{}();
  InputStream seeds(base);  // a platform-independent stream of per-run seeds
  rc::detail::TestParams params = props::configured_params();
  params.maxSuccess = a.per_round;
  std::cerr << "fuzz: " << pairs.size() << " property/implementation pairs, " << a.per_round
            << " cases per pair and round, " << a.seconds << " s, base seed " << base << "\n";

  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  long long total = 0;
  int round = 0;
  double next_report = 10;
  ProgressLine progress;
  while (elapsed() < a.seconds) {
    ++round;
    for (const auto& [p, impl] : pairs) {
      if (elapsed() >= a.seconds) break;
      params.seed = seeds.next_u64();
      const std::string label = p->name + " / " + impl->name;
      const Outcome o = props::run_property(*p, *impl, params, [&](int cases, int shrinks) {
        std::ostringstream s;
        s << "fuzz: round " << round << ", " << total + cases << " cases, " << std::fixed
          << std::setprecision(0) << elapsed() << " s, " << label;
        if (shrinks) s << " (shrinking: " << shrinks << ")";
        progress.show(s.str());
      });
      total += o.cases;
      if (o.verdict == Verdict::failed) {
        progress.clear();
        std::cout << "FAIL  " << p->name << " / " << impl->name << " (round " << round
                  << ", seed " << params.seed << ", after " << total << " cases, "
                  << std::fixed << std::setprecision(1) << elapsed() << " s)\n";
        print_failure(o, *p, *impl);
        std::cout << std::flush;
        throw CommandExit{1};
      }
    }
    if (isatty(STDERR_FILENO) != 1 && elapsed() >= next_report) {
      // Where nothing can be rewritten in place: a line every 10 seconds.
      std::cerr << "fuzz: round " << round << ", " << total << " cases, " << std::fixed
                << std::setprecision(0) << elapsed() << " s\n";
      next_report = elapsed() + 10;
    }
  }
  progress.clear();
  std::cout << "fuzz: " << total << " cases in " << round << " rounds, " << std::fixed
            << std::setprecision(1) << elapsed() << " s, no failure" << std::endl;
}

void add_common_options(CLI::App* cmd, SuiteArgs* a) {
  cmd->add_option("--max-tokens", a->max_tokens,
                  "Longest sequence the long_context property draws (its cases hold one "
                  "sequence of max/2..max tokens; the float64 reference costs O(max * 1500) "
                  "per case, the implementation what its decode costs)")
      ->capture_default_str()
      ->check(integer_in(64, 1 << 20));
  cmd->add_option("--impl", a->impls,
                  "Implementations to check: a comma-separated list of names, or 'all' (every "
                  "registered one; see `kvbench list`)")
      ->capture_default_str();
  cmd->add_option("--property", a->properties,
                  "Properties to run: a comma-separated list of names, or 'all' (see "
                  "`kvbench verify --list`)")
      ->capture_default_str()
      ->each([a](const std::string&) { a->property_given = true; });
  cmd->add_option("--plugin", a->plugins,
                  "Load implementations from a shared library first (it defines extern \"C\" "
                  "void kvbench_register(kvbench::Registry&)); may be repeated");
}

}  // namespace

void add_verify_command(CLI::App& app) {
  // Owned by the callbacks below, so it lives as long as the app, which keeps pointers into
  // it (options bind its fields); a bare new was reported by LeakSanitizer at exit.
  auto a = std::make_shared<SuiteArgs>();
  auto* verify = app.add_subcommand(
      "verify",
      "Run the property suite: every property over every selected implementation, with "
      "RapidCheck (random models, prompts, batches and operation sequences, shrunk to a "
      "minimal case on failure). Prints PASS/FAIL/SKIP per property and implementation, each "
      "line ending with the coverage that run reached ([T<=max tokens held, pos<=largest "
      "decode position, prefill<=longest chunk, batch<=largest decode batch, layers, "
      "H/H_kv ratios, largest d, dtypes, threads; ops: the operations called], counted from "
      "the calls that reached the implementation), then a 'coverage:' line over the whole "
      "run, and ends with 'N passed, M failed[, K skipped]'; exit status 1 when any failed. "
      "A failure prints RapidCheck's reproduce string: run again with "
      "RC_PARAMS=\"reproduce=...\" to replay exactly that case. RC_PARAMS (seed, max_success, max_size, noshrink, "
      "verbose_progress) is honoured; --cases and --seed override it. kvbench runs with "
      "OMP_WAIT_POLICY=passive unless you set it (LibTorch's OpenMP workers otherwise spin "
      "between the many small parallel regions and slow everything else down).");
  add_common_options(verify, a.get());
  verify->add_option("--cases", a->cases,
                     "Test cases per property and implementation (RapidCheck max_success; "
                     "default: RC_PARAMS max_success, else 100)")
      ->check(integer_in(1, 1000000));
  verify->add_option("--seed", a->seed,
                     "RapidCheck seed (default: RC_PARAMS seed, else random; the seed used is "
                     "printed on stderr)")
      ->check(unsigned_64())
      ->each([a](const std::string&) { a->seed_given = true; });
  verify->add_option("--json", a->json,
                     "Also write the results as JSON to FILE (per property and implementation: "
                     "verdict, cases, seconds, reason/report/reproduce, coverage; plus totals). "
                     "Written atomically (a temporary file renamed at the end); the path is "
                     "checked before anything runs")
      ->type_name("FILE");
  verify->add_flag("--list", a->list, "List the properties with a one-line description and exit");
  verify->callback([a] { run_verify(*a); });

  auto b = std::make_shared<SuiteArgs>();
  auto* fuzz = app.add_subcommand(
      "fuzz",
      "Search for failing cases until --seconds are up; exit 1 at the first failure, 0 when "
      "time runs out without one. Two engines:\n"
      "  --engine rapidcheck (default): the properties of `kvbench verify` round-robin over the "
      "selected implementations with fresh random seeds, progress on stderr. A failure is "
      "printed shrunk with its reproduce string (replay: RC_PARAMS=\"reproduce=...\" kvbench "
      "verify).\n"
      "  --engine libfuzzer: coverage-guided. The input bytes decode into a narrow model "
      "(L 1-2, H 1-8 with any divisor as H_kv, d 1-64, d_model 1-32, capacity, seed, "
      "threads) and up to 40 operations (create, prefill, ragged decode, fork, truncate, "
      "drop, bad calls), checked with a shadow model against the float64 reference: outputs "
      "and read_kv rows within the suite's tolerance, bytes_held, exact counters, bad calls "
      "rejected without a trace. libFuzzer mutates the inputs that reach new code of the "
      "implementations. Needs the separately built clang binary: `bash ci/fuzz.sh build` "
      "(build-fuzz/kvbench_libfuzzer; found beside this build or named by --libfuzzer). A "
      "finding prints its operation list, the failing check and a shrunk case, and leaves "
      "crash and shrunk inputs in build-fuzz/artifacts/; replay one with `bash ci/fuzz.sh "
      "replay FILE`. --impl, --plugin, --seconds and --seed apply; see properties/README.md.");
  add_common_options(fuzz, b.get());
  fuzz->add_option("--seconds", b->seconds, "How long to fuzz, in seconds")
      ->capture_default_str()
      ->check(number_above(0));
  fuzz->add_option("--seed", b->seed,
                   "Base seed of the sequence of per-run seeds (default: random; printed on "
                   "stderr), so that a fuzz session can be repeated")
      ->check(unsigned_64())
      ->each([b](const std::string&) { b->seed_given = true; });
  fuzz->add_option("--per-round", b->per_round,
                   "Cases per property and implementation before moving to the next pair "
                   "(rapidcheck engine)")
      ->capture_default_str()
      ->check(integer_in(1, 1000000))
      ->each([b](const std::string&) { b->per_round_given = true; });
  fuzz->add_option("--engine", b->engine,
                   "rapidcheck (the properties with fresh seeds) or libfuzzer (the "
                   "coverage-guided target; build it with `bash ci/fuzz.sh build`)")
      ->capture_default_str();
  fuzz->add_option("--libfuzzer", b->libfuzzer,
                   "The libFuzzer binary (default: $KVBENCH_LIBFUZZER, else "
                   "build-fuzz/kvbench_libfuzzer beside this build or in the current directory)");
  fuzz->add_option("--corpus", b->corpus,
                   "libfuzzer engine: the working corpus directory, which receives new inputs "
                   "(default: corpus/ beside the binary; the committed seeds are read too)");
  fuzz->callback([b] { run_fuzz(*b); });
}

}  // namespace kvbench::cli
