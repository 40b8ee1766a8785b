// STUB: replaced by the real command.
#include "harness/cli/commands.h"
#include "harness/error.h"

namespace kvbench::cli {
void add_report_command(CLI::App& app) {
  app.add_subcommand("report", "(not built yet)")->callback([] {
    kvbench::fail("report is not built yet");
  });
}
}  // namespace kvbench::cli
