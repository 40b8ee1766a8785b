// STUB: replaced by the property suite's commands.
#include "harness/cli/commands.h"
#include "harness/error.h"

namespace kvbench::cli {
void add_verify_command(CLI::App& app) {
  app.add_subcommand("verify", "Run the property suite (not built yet)")->callback([] {
    kvbench::fail("verify is not built yet");
  });
}
}  // namespace kvbench::cli
