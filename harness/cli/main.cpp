// kvbench: verify and benchmark KV-cache implementations. See README.md.
#include <unistd.h>

#include <cstdlib>
#include <iostream>

#include "harness/cli/commands.h"
#include "harness/error.h"
#include "harness/registry.h"
#include "impls/impls.h"

namespace {
// libgomp reads OMP_WAIT_POLICY once, when it is loaded (LibTorch loads it before main), so
// the only way for kvbench to choose it is to run itself again with the variable set.
// Passive: LibTorch's OpenMP workers sleep between operations instead of spinning, which
// would otherwise steal the core that the measured (or verified) code runs on.
void ensure_passive_openmp(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;
  setenv("OMP_WAIT_POLICY", "passive", 1);
  execv("/proc/self/exe", argv);  // returns only on failure: then carry on as we are
}
// CLI11 answers a mistyped or missing command with "A subcommand is required"; name the
// word it did not know and the commands it does instead.
void require_known_command(CLI::App& app, int argc, char** argv) {
  std::string known;
  for (const CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) {
    known += (known.empty() ? "" : ", ") + sub->get_name();
  }
  if (argc < 2) kvbench::fail("a command is required: ", known, " (kvbench --help)");
  const std::string first = argv[1];
  if (first.empty() || first[0] == '-') return;  // --help, or an option CLI11 will reject
  for (const CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) {
    if (sub->check_name(first)) return;
  }
  kvbench::fail("unknown command '", first, "' (commands: ", known, ")");
}
}  // namespace

int main(int argc, char** argv) {
  ensure_passive_openmp(argv);
  CLI::App app{
      "kvbench: verify and benchmark KV-cache implementations for transformer decoding.\n"
      "Run `kvbench COMMAND --help` for a command's options."};
  app.require_subcommand(1);
  app.fallthrough(false);
  kvbench::cli::add_list_command(app);
  kvbench::cli::add_verify_command(app);
  kvbench::cli::add_bench_command(app);
  kvbench::cli::add_report_command(app);
  kvbench::cli::add_gate_command(app);
  kvbench::cli::add_memory_command(app);
  try {
    // The CLI fills the registry: the built-in implementations and their devices' probes
    // (plugins named by --plugin add theirs when a command loads them).
    kvbench::register_builtin_impls(kvbench::Registry::global());
    require_known_command(app, argc, argv);
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help / --help-all print and succeed; every usage error is a kvbench error (exit 2,
    // the README's contract) rather than CLI11's own codes 105-109.
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) return app.exit(e);
    std::cerr << "kvbench: error: " << e.what() << "\n"
              << "Run with --help for more information.\n";
    return 2;
  } catch (const kvbench::cli::CommandExit& e) {
    return e.code;
  } catch (const kvbench::Error& e) {
    std::cerr << "kvbench: error: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "kvbench: internal error: " << e.what() << "\n";
    return 3;
  }
  return 0;
}
