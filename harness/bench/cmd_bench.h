// The `kvbench bench` subcommand (added by the CLI, harness/cli/main.cpp).
#pragma once

#include <CLI/CLI.hpp>

#include "harness/command.h"  // CommandExit

namespace kvbench::cli {

void add_bench_command(CLI::App& app);  // harness/bench/cmd_bench.cpp

}  // namespace kvbench::cli
