// kvbench: verify and benchmark KV-cache implementations. See README.md.
#include <iostream>

#include "harness/cli/commands.h"
#include "harness/error.h"

int main(int argc, char** argv) {
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
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);  // --help prints and returns 0; usage errors return non-zero
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
