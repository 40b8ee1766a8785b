// STUB: replaced by the real command.
#include "harness/cli/commands.h"
#include "harness/error.h"

namespace kvbench::cli {
void add_gate_command(CLI::App& app) {
  app.add_subcommand("gate", "(not built yet)")->callback([] {
    kvbench::fail("gate is not built yet");
  });
}
}  // namespace kvbench::cli
