// The `kvbench` subcommands. Each add_*_command registers one subcommand on the app; its
// callback throws kvbench::Error for bad usage (exit 2) or CommandExit (harness/command.h)
// for a chosen code. The CLI is the top layer: it may include every layer's command, and no
// layer includes this file.
#pragma once

#include <CLI/CLI.hpp>

#include "ci/cmd_gate.h"               // add_gate_command
#include "harness/bench/cmd_bench.h"   // add_bench_command
#include "harness/command.h"
#include "properties/cmd_verify.h"     // add_verify_command (verify and fuzz)
#include "reports/cmd_report.h"        // add_report_command

namespace kvbench::cli {

void add_list_command(CLI::App& app);     // harness/cli/cmd_list.cpp
void add_memory_command(CLI::App& app);   // harness/cli/cmd_memory.cpp

}  // namespace kvbench::cli
