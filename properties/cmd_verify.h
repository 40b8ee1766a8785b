// The `kvbench verify` and `kvbench fuzz` subcommands (added by the CLI, harness/cli/main.cpp).
#pragma once

#include <CLI/CLI.hpp>

#include "harness/command.h"  // CommandExit

namespace kvbench::cli {

void add_verify_command(CLI::App& app);  // properties/cmd_verify.cpp

}  // namespace kvbench::cli
