// STUB: replaced by the real command.
#include "harness/cli/commands.h"
#include "harness/error.h"

namespace kvbench::cli {
void add_bench_command(CLI::App& app) {
  app.add_subcommand("bench", "(not built yet)")->callback([] {
    kvbench::fail("bench is not built yet");
  });
}
}  // namespace kvbench::cli
