// The `kvbench gate` subcommand (added by the CLI, harness/cli/main.cpp).
#pragma once

#include <CLI/CLI.hpp>

#include "harness/command.h"  // CommandExit

namespace kvbench::cli {

void add_gate_command(CLI::App& app);  // ci/cmd_gate.cpp

}  // namespace kvbench::cli
