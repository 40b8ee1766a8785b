// The `kvbench report` subcommand (added by the CLI, harness/cli/main.cpp).
#pragma once

#include <CLI/CLI.hpp>

#include "harness/command.h"  // CommandExit

namespace kvbench::cli {

void add_report_command(CLI::App& app);  // reports/cmd_report.cpp

}  // namespace kvbench::cli
